//! The Kubernetes objects of one deployment, built from its [`Target`] alone (pure: no API
//! calls), so that what Skyport creates is reviewable in snapshots.
//!
//! Every object carries the same labels and the Deployment's selector is the deployment's own
//! label, so two deployments of a server never share pods. Object names are derived from the
//! server's name and the deployment id and always fit the 63 characters of a Service name.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar as KubeEnvVar,
    EnvVarSource, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, Secret, SecretKeySelector, SecurityContext, Service, ServicePort, ServiceSpec,
    TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;
use skyport_runtime::Target;

use crate::KubeRuntimeConfig;

/// The port the MCP server listens on inside its pod (`/mcp` over HTTP).
pub const MCP_PORT: i32 = 8000;

/// Label: which program manages the object.
pub(crate) const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Label value of [`MANAGED_BY`].
pub(crate) const SKYPORT: &str = "skyport";
/// Label: the deployment id (the selector of its pods).
pub(crate) const DEPLOYMENT_LABEL: &str = "skyport.dev/deployment";
/// Annotation: unix seconds of the last request any Skyport replica leased.
pub(crate) const LAST_USED: &str = "skyport.dev/last-used";
/// Annotation: the server's idle timeout in seconds.
pub(crate) const IDLE_TIMEOUT: &str = "skyport.dev/idle-timeout-seconds";
/// Annotation: the server's `min_instances`.
pub(crate) const MIN_INSTANCES: &str = "skyport.dev/min-instances";
/// The name of the server's container in every pod (the log endpoint's `container`).
pub(crate) const CONTAINER: &str = "server";
/// Scratch space for `HOME` and `TMPDIR`: the root filesystem is read-only.
const SCRATCH: &str = "/tmp";

/// The objects of one deployment run as a Deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct Objects {
    /// Runs the pods; created with zero replicas, scaled by the runtime.
    pub deployment: Deployment,
    /// Names the pods' MCP port; its EndpointSlices say which pods are ready.
    pub service: Service,
    /// The deployment's secret variables, referenced from the pod's environment; `None` when
    /// it has none.
    pub secret: Option<Secret>,
}

/// The name of every object of `target`: `skyport-SERVER-ULID`, the server's name cut so the
/// whole fits a DNS label of 63 characters (and a Service name starts with a letter).
pub fn object_name(target: &Target) -> String {
    let ulid = deployment_ulid(target);
    let server: String = target.server_name.as_str().chars().take(28).collect();
    format!("skyport-{server}-{ulid}")
}

/// The image of `target`: `PREFIX/SERVER:DEPLOYMENT_ID`.
pub(crate) fn image(target: &Target, config: &KubeRuntimeConfig) -> String {
    format!(
        "{}/{}:{}",
        config.image_prefix, target.server_name, target.deployment
    )
}

/// The Deployment, Service and Secret that run `target`.
pub fn objects(target: &Target, config: &KubeRuntimeConfig) -> Objects {
    let name = object_name(target);
    let labels = labels(target);
    let selector = BTreeMap::from([(DEPLOYMENT_LABEL.to_owned(), target.deployment.to_string())]);
    let annotations = settings_annotations(target);
    let meta = |annotations: Option<BTreeMap<String, String>>| ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(config.namespace.clone()),
        labels: Some(labels.clone()),
        annotations,
        ..ObjectMeta::default()
    };
    let secret = secret_data(target).map(|data| Secret {
        metadata: meta(None),
        data: Some(data),
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    });
    let deployment = Deployment {
        metadata: meta(Some(annotations)),
        spec: DeploymentSpec {
            // No replicas: they belong to the scale subresource, where the runtime sets them
            // (an apply that set them would undo a scale-up another Skyport replica just
            // made). A Deployment is only ever created to run a pod, and the API server
            // creates it with one.
            revision_history_limit: Some(1),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            // A deployment's pod template never changes (a new build is a new Deployment),
            // so a rollout strategy only matters for pods of one template.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(target, config, &name)),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    };
    let service = Service {
        metadata: meta(None),
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("mcp".to_owned()),
                port: MCP_PORT,
                target_port: Some(IntOrString::String("mcp".to_owned())),
                protocol: Some("TCP".to_owned()),
                app_protocol: Some("http".to_owned()),
                ..ServicePort::default()
            }]),
            type_: Some("ClusterIP".to_owned()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    Objects {
        deployment,
        service,
        secret,
    }
}

/// The Knative Service that runs `target` instead of a Deployment and a Service: Knative's
/// autoscaler then does what the runtime does for Deployments (scale on concurrency, to zero
/// after the idle timeout). Secrets go in the same Secret as for a Deployment.
pub fn knative_service(target: &Target, config: &KubeRuntimeConfig) -> serde_json::Value {
    let name = object_name(target);
    let pod = pod_spec(target, config, &name);
    let settings = target.settings;
    let mut annotations = BTreeMap::from([
        (
            "autoscaling.knative.dev/min-scale".to_owned(),
            settings.min_instances.to_string(),
        ),
        (
            "autoscaling.knative.dev/max-scale".to_owned(),
            settings.max_instances.to_string(),
        ),
        (
            "autoscaling.knative.dev/scale-to-zero-pod-retention-period".to_owned(),
            format!("{}s", settings.idle_timeout.as_secs().max(1)),
        ),
    ]);
    annotations.extend(settings_annotations(target));
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": config.namespace,
            "labels": labels(target),
            // Reachable inside the cluster only: Skyport's gateway is the front door.
            "annotations": { "networking.knative.dev/visibility": "cluster-local" },
        },
        "spec": {
            "template": {
                "metadata": { "labels": labels(target), "annotations": annotations },
                "spec": {
                    "containerConcurrency": config.concurrency,
                    "automountServiceAccountToken": pod.automount_service_account_token,
                    "enableServiceLinks": pod.enable_service_links,
                    "securityContext": pod.security_context,
                    "containers": pod.containers,
                    "volumes": pod.volumes,
                },
            },
        },
    })
}

/// Labels shared by every object of `target` and its pods.
pub(crate) fn labels(target: &Target) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "mcp-server".to_owned()),
        (MANAGED_BY.to_owned(), SKYPORT.to_owned()),
        (
            "app.kubernetes.io/instance".to_owned(),
            target.server_name.to_string(),
        ),
        (
            "skyport.dev/server".to_owned(),
            target.server_name.to_string(),
        ),
        (
            "skyport.dev/server-id".to_owned(),
            target.server_id.to_string(),
        ),
        (DEPLOYMENT_LABEL.to_owned(), target.deployment.to_string()),
    ])
}

/// The settings another Skyport replica needs to scale the deployment down when idle.
fn settings_annotations(target: &Target) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            IDLE_TIMEOUT.to_owned(),
            target.settings.idle_timeout.as_secs().to_string(),
        ),
        (
            MIN_INSTANCES.to_owned(),
            target.settings.min_instances.to_string(),
        ),
    ])
}

/// The ULID part of the deployment id (ids are `dep_` + 26 lowercase characters; the
/// underscore is not allowed in object names).
fn deployment_ulid(target: &Target) -> &str {
    let id = target.deployment.as_str();
    id.split_once('_').map_or(id, |(_, ulid)| ulid)
}

fn secret_data(target: &Target) -> Option<BTreeMap<String, ByteString>> {
    let data: BTreeMap<_, _> = target
        .env
        .iter()
        .filter(|var| var.secret)
        .map(|var| (var.name.clone(), ByteString(var.value.clone().into_bytes())))
        .collect();
    (!data.is_empty()).then_some(data)
}

fn pod_spec(target: &Target, config: &KubeRuntimeConfig, name: &str) -> PodSpec {
    let launch = &target.launch;
    let memory = Quantity(quantity(target.settings.memory_bytes));
    PodSpec {
        // Instances see nothing of Skyport (ARCHITECTURE.md): no API token, no variables
        // naming the namespace's other services.
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65534),
            run_as_group: Some(65534),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        containers: vec![Container {
            name: CONTAINER.to_owned(),
            image: Some(image(target, config)),
            command: Some(vec![launch.program.to_string_lossy().into_owned()]),
            args: Some(launch.args.clone()),
            working_dir: Some(launch.working_dir.to_string_lossy().into_owned()),
            env: Some(container_env(target, name)),
            ports: Some(vec![ContainerPort {
                name: Some("mcp".to_owned()),
                container_port: MCP_PORT,
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            }]),
            // The launcher binds its port only once the server is imported and built, so an
            // open port means the server answers; an HTTP probe of `/mcp` would get 4xx.
            readiness_probe: Some(Probe {
                tcp_socket: Some(TCPSocketAction {
                    port: IntOrString::String("mcp".to_owned()),
                    ..TCPSocketAction::default()
                }),
                period_seconds: Some(1),
                failure_threshold: Some(3),
                ..Probe::default()
            }),
            // Requests equal limits: the memory cap is the server's, not an overcommit.
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([("memory".to_owned(), memory.clone())])),
                requests: Some(BTreeMap::from([("memory".to_owned(), memory)])),
                ..ResourceRequirements::default()
            }),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".to_owned()]),
                    ..Capabilities::default()
                }),
                ..SecurityContext::default()
            }),
            volume_mounts: Some(vec![VolumeMount {
                name: "scratch".to_owned(),
                mount_path: SCRATCH.to_owned(),
                ..VolumeMount::default()
            }]),
            ..Container::default()
        }],
        volumes: Some(vec![Volume {
            name: "scratch".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        }]),
        ..PodSpec::default()
    }
}

/// The instance's variables: the deployment's own (secrets by reference to the Secret, so
/// their values are in no pod spec), then Skyport's launch variables, which win.
fn container_env(target: &Target, secret_name: &str) -> Vec<KubeEnvVar> {
    let mut env: Vec<KubeEnvVar> = target
        .env
        .iter()
        .filter(|var| !var.name.starts_with("SKYPORT_"))
        .map(|var| {
            if var.secret {
                KubeEnvVar {
                    name: var.name.clone(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: secret_name.to_owned(),
                            key: var.name.clone(),
                            optional: Some(false),
                        }),
                        ..EnvVarSource::default()
                    }),
                    ..KubeEnvVar::default()
                }
            } else {
                plain(&var.name, &var.value)
            }
        })
        .collect();
    env.extend([
        plain("HOME", SCRATCH),
        plain("TMPDIR", SCRATCH),
        plain("LANG", "C.UTF-8"),
        plain("SKYPORT_HOST", "0.0.0.0"),
        plain("SKYPORT_PORT", &MCP_PORT.to_string()),
        plain("SKYPORT_SERVER", target.server_name.as_str()),
        plain("SKYPORT_DEPLOYMENT_ID", target.deployment.as_str()),
    ]);
    env
}

/// Bytes as a Kubernetes quantity, in MiB when that is exact (as `--memory` is usually given).
fn quantity(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes.is_multiple_of(MIB) {
        format!("{}Mi", bytes / MIB)
    } else {
        bytes.to_string()
    }
}

fn plain(name: &str, value: &str) -> KubeEnvVar {
    KubeEnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..KubeEnvVar::default()
    }
}

#[cfg(test)]
mod tests;
