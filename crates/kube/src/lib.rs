//! Runs deployments on Kubernetes: each deployment becomes a Deployment and a Service (and a
//! Secret for its secret variables) in one namespace, scaled between zero and the server's
//! `max_instances` by Skyport through the API, or a Knative Service that scales itself.
//! Also packages an artifact as an OCI image layout, the input of the image a cluster pulls.
//!
//! [`KubeRuntime`] implements [`skyport_runtime::Runtime`], so the gateway and the build's
//! warm-up see no difference from the local runtime. This crate knows the Kubernetes API and
//! nothing of the gateway's HTTP, the store's SQL or how builds lay out an artifact: it gets a
//! [`Target`] (a `LaunchSpec`, settings, environment) and the [`kube::Client`] the binary made.
//! Decisions and assumptions: `README.md` beside this file.

mod objects;
mod oci;
mod runtime;

use std::path::PathBuf;
use std::time::Duration;

pub use objects::{MCP_PORT, Objects, knative_service, object_name, objects};
pub use oci::{ImageConfig, ImageLayout, OciError, write_layout};
pub use runtime::KubeRuntime;
pub use skyport_runtime::Target;

/// What runs a deployment's pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// A Deployment and a Service; Skyport scales replicas 0↔N through the scale subresource.
    Deployment,
    /// A Knative Service (`serving.knative.dev/v1`); Knative's autoscaler scales it, to zero too.
    Knative,
}

/// Settings of the Kubernetes runtime.
#[derive(Clone, Debug)]
pub struct KubeRuntimeConfig {
    /// The namespace that holds every server's objects.
    pub namespace: String,
    /// Images are `PREFIX/SERVER:DEPLOYMENT_ID`, e.g. `registry.example.com/skyport`.
    pub image_prefix: String,
    /// What to create per deployment.
    pub workload: Workload,
    /// How long a deployment may take from scale-up to a ready endpoint.
    pub start_timeout: Duration,
    /// Requests one pod takes at once before another is asked for (up to `max_instances`).
    pub concurrency: u64,
    /// How often endpoints are refreshed and idle deployments scaled down.
    pub sweep_interval: Duration,
    /// Where the OCI image layout of each deployment is written before its first start, to be
    /// pushed to the registry under `image_prefix` (`docs/kubernetes.md`); `None` writes none.
    pub image_dir: Option<PathBuf>,
}

impl KubeRuntimeConfig {
    /// The defaults for `namespace` and `image_prefix`.
    pub fn new(namespace: &str, image_prefix: &str) -> KubeRuntimeConfig {
        KubeRuntimeConfig {
            namespace: namespace.to_owned(),
            image_prefix: image_prefix.trim_end_matches('/').to_owned(),
            workload: Workload::Deployment,
            start_timeout: Duration::from_secs(120),
            concurrency: 16,
            sweep_interval: Duration::from_secs(2),
            image_dir: None,
        }
    }
}

/// A client configured the way `kubectl` finds its cluster: `$KUBECONFIG` or `~/.kube/config`,
/// else the pod's service account (in-cluster); with the namespace that configuration names
/// (`default` when it names none).
pub async fn client_from_environment() -> Result<(kube::Client, String), KubeError> {
    let config = kube::Config::infer().await.map_err(KubeError::Kubeconfig)?;
    let namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(|source| KubeError::Api {
        namespace: namespace.clone(),
        source,
    })?;
    Ok((client, namespace))
}

/// Why the Kubernetes runtime cannot start.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The API server refused or could not be reached.
    #[error(
        "cannot reach the Kubernetes API in namespace {namespace}: {source}; check the kubeconfig (or the pod's service account and RBAC, see docs/kubernetes.md)"
    )]
    Api {
        /// The namespace asked for.
        namespace: String,
        /// What the client said.
        source: kube::Error,
    },
    /// Neither a kubeconfig nor an in-cluster service account was found.
    #[error(
        "cannot find a Kubernetes cluster: {0}; set KUBECONFIG, or run Skyport in a pod with a service account"
    )]
    Kubeconfig(kube::config::InferConfigError),
    /// A setting cannot name Kubernetes objects or images.
    #[error("{0}")]
    Config(String),
}
