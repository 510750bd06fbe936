//! `serve --runtime`: which [`Runtime`] runs instances, made from the command line. The local
//! runtime (child processes of Skyport) is the default; `kubernetes` runs each deployment as a
//! Deployment and Service in one namespace (`skyport_kube`).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use skyport_kube::{KubeRuntime, KubeRuntimeConfig, Workload};
use skyport_runtime::{Artifacts, LocalRuntime, LocalRuntimeConfig, Runtime};
use skyport_store::Store;

use crate::cli::{RuntimeKind, ServeArgs};

/// Requests one instance takes at once before another starts: a FastMCP server keeps its
/// latency flat up to about this many concurrent requests on these machines.
const INSTANCE_CONCURRENCY: u64 = 16;

/// The runtime `args` ask for, started.
pub(crate) async fn start(
    args: &ServeArgs,
    data_dir: &Path,
    store: &Store,
    artifacts: Arc<dyn Artifacts>,
) -> anyhow::Result<Arc<dyn Runtime>> {
    match args.runtime {
        RuntimeKind::Local => {
            let config = LocalRuntimeConfig {
                scratch_dir: data_dir.join("run"),
                state_dir: data_dir.join("instances"),
                start_timeout: args.start_timeout,
                path: std::env::var_os("PATH"),
                concurrency: INSTANCE_CONCURRENCY,
                cgroup_name: cgroup_name(data_dir),
                zygotes: !args.no_zygotes,
                // Stdio servers run behind this same binary's `bridge` command.
                stdio_bridge: std::env::current_exe().ok(),
                artifacts: Some(artifacts),
            };
            Ok(Arc::new(
                LocalRuntime::start(config, store.logs().writer()).await,
            ))
        }
        RuntimeKind::Kubernetes => {
            let Some(prefix) = &args.kube_image_prefix else {
                bail!(
                    "--runtime kubernetes needs --kube-image-prefix REGISTRY/PATH: the registry repository the cluster pulls server images from"
                );
            };
            let (client, default_namespace) = skyport_kube::client_from_environment().await?;
            let namespace = args.kube_namespace.as_deref().unwrap_or(&default_namespace);
            let image_dir = data_dir.join("images");
            let config = KubeRuntimeConfig {
                workload: if args.kube_knative {
                    Workload::Knative
                } else {
                    Workload::Deployment
                },
                start_timeout: args.start_timeout,
                concurrency: INSTANCE_CONCURRENCY,
                image_dir: Some(image_dir.clone()),
                ..KubeRuntimeConfig::new(namespace, prefix)
            };
            let runtime = KubeRuntime::start(client, config, store)
                .await
                .context("cannot start the Kubernetes runtime")?;
            tracing::info!(
                "servers run in Kubernetes namespace {namespace} from images {prefix}/SERVER:DEPLOYMENT_ID (layouts to push in {})",
                image_dir.display()
            );
            Ok(Arc::new(runtime))
        }
    }
}

/// Skyport's cgroup name for a data directory: stable across restarts (so a restart finds what
/// a crashed run left) and distinct between data directories (so two Skyports never meet).
fn cgroup_name(data_dir: &Path) -> String {
    let path = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    // FNV-1a: a fixed hash, unlike std's, whose output may change between Rust releases.
    let hash = path
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("skyport-{hash:016x}")
}
