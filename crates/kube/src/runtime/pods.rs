//! What the cluster says about one pod, in Skyport's terms: its instance id (the same on
//! every replica), and why it cannot serve — its container killed for memory, exiting and
//! restarted in a back-off loop, its image not pulled, no node for it — as a [`StartError`] of
//! the kinds the local runtime gives for a crash or an out-of-memory kill at start. Pure: no
//! API calls.

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};
use kube::ResourceExt;
use sha2::{Digest, Sha256};
use skyport_runtime::{Exit, StartError, Target};
use skyport_store::{InstanceId, Timestamp};

use crate::objects::CONTAINER;

/// Waiting reasons of a container whose image the node cannot pull.
const IMAGE_REASONS: [&str; 4] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];
/// Waiting reasons of a container that cannot be made from its spec (a missing Secret, say).
const CONFIG_REASONS: [&str; 2] = ["CreateContainerConfigError", "CreateContainerError"];
/// The reason the kubelet gives a container killed for exceeding its memory limit.
const OOM_KILLED: &str = "OOMKilled";
/// The waiting reason of a container restarted after exits, with a growing delay.
const CRASH_LOOP: &str = "CrashLoopBackOff";

/// The instance id of pod `pod` in `namespace`: a hash of the two, so every Skyport replica
/// gives the pod the same id (a session's affinity, `instances()` and the pod's log lines
/// agree across replicas). A ReplicaSet never reuses a pod name.
pub(crate) fn instance_id(namespace: &str, pod: &str) -> InstanceId {
    let digest = Sha256::digest(format!("{namespace}/{pod}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let ulid = ulid::Ulid::from_bytes(bytes)
        .to_string()
        .to_ascii_lowercase();
    format!("ins_{ulid}")
        .parse()
        .unwrap_or_else(|_| InstanceId::generate())
}

/// Why a pod cannot serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PodFailure {
    /// Its container was killed for going over its memory limit.
    OutOfMemory {
        /// The pod's name.
        pod: String,
        /// How the container ended.
        exit: Ended,
    },
    /// Its container exited; Kubernetes restarts it after a growing delay.
    Exited {
        /// The pod's name.
        pod: String,
        /// How the container ended.
        exit: Ended,
    },
    /// The node cannot pull the pod's image.
    Image {
        /// The pod's name.
        pod: String,
        /// The image asked for.
        image: String,
        /// The kubelet's reason (`ErrImagePull`, `ImagePullBackOff`…) and message.
        why: String,
    },
    /// The kubelet cannot make the container from its spec.
    Config {
        /// The pod's name.
        pod: String,
        /// The kubelet's reason and message.
        why: String,
    },
    /// No node can take the pod.
    Unschedulable {
        /// The pod's name.
        pod: String,
        /// The scheduler's message.
        why: String,
    },
}

/// How a container ended, as its status tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ended {
    /// The exit code.
    pub(crate) code: i32,
    /// Times the kubelet restarted the container so far.
    pub(crate) restarts: i32,
    /// Whether the container shown now is a later one than the one that ended (its output is
    /// the log's `previous`).
    pub(crate) restarted: bool,
    /// The kubelet's waiting reason after the exit (`CrashLoopBackOff`), if any.
    pub(crate) waiting: Option<String>,
}

impl PodFailure {
    /// The pod that failed.
    pub(crate) fn pod(&self) -> &str {
        match self {
            PodFailure::OutOfMemory { pod, .. }
            | PodFailure::Exited { pod, .. }
            | PodFailure::Image { pod, .. }
            | PodFailure::Config { pod, .. }
            | PodFailure::Unschedulable { pod, .. } => pod,
        }
    }

    /// The container whose output explains the failure: `Some(previous)` when its log is
    /// worth quoting (`previous`: the container that ended was replaced since).
    pub(crate) fn output(&self) -> Option<bool> {
        match self {
            PodFailure::OutOfMemory { exit, .. } | PodFailure::Exited { exit, .. } => {
                Some(exit.restarted)
            }
            _ => None,
        }
    }

    /// The error a start of `target` fails with; `tail` is the container's last output
    /// (secrets redacted).
    pub(crate) fn start_error(&self, target: &Target, namespace: &str, tail: String) -> StartError {
        match self {
            PodFailure::OutOfMemory { pod, exit } => StartError::Exited {
                exit: Exit {
                    status: format!("pod {pod}: {OOM_KILLED}, {}", exit.describe()),
                    out_of_memory: Some(target.settings.memory_bytes),
                    stderr_tail: tail,
                },
            },
            PodFailure::Exited { pod, exit } => {
                let mut status = format!("pod {pod}: {}", exit.describe());
                if tail.is_empty() {
                    // The log could not be read here; whoever can run kubectl can.
                    status.push_str(&format!(
                        "; its output: `kubectl -n {namespace} logs {pod}{}`",
                        if exit.restarted { " --previous" } else { "" },
                    ));
                }
                StartError::Exited {
                    exit: Exit {
                        status,
                        out_of_memory: None,
                        stderr_tail: tail,
                    },
                }
            }
            PodFailure::Image { pod, image, why } => StartError::Spawn(format!(
                "pod {pod} cannot pull its image {image} ({why}); push the deployment's image layout to that registry (docs/kubernetes.md, \"Images of servers\") and check that the cluster's nodes may pull from it"
            )),
            PodFailure::Config { pod, why } => StartError::Spawn(format!(
                "Kubernetes cannot create the container of pod {pod} ({why}); see `kubectl -n {namespace} describe pod {pod}`"
            )),
            PodFailure::Unschedulable { pod, why } => StartError::Spawn(format!(
                "no node can run pod {pod} ({why}); it asks for {} MiB of memory: lower that with `skyport servers set {} --memory …`, or add capacity to the cluster",
                target.settings.memory_bytes / (1024 * 1024),
                target.server_name,
            )),
        }
    }
}

impl Ended {
    fn describe(&self) -> String {
        let mut text = format!("exit code {}", self.code);
        if self.restarts > 0 {
            text.push_str(&format!(", restarted {} time(s)", self.restarts));
        }
        if let Some(waiting) = &self.waiting {
            text.push_str(&format!(", {waiting}"));
        }
        text
    }
}

/// Why `pod` cannot serve, if its status says so. A container that ended before `since` and
/// runs again is history (an earlier crash under load), not a failure of a start at `since`.
pub(crate) fn failure(pod: &Pod, since: Timestamp) -> Option<PodFailure> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let name = pod.name_any();
    let status = pod.status.as_ref()?;
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    if let Some(condition) = unschedulable {
        return Some(PodFailure::Unschedulable {
            pod: name,
            why: condition.message.clone().unwrap_or_default(),
        });
    }
    let container = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == CONTAINER)?;
    // `finishedAt` has whole seconds.
    let since = Timestamp::from_second(since.as_second()).unwrap_or(since);
    container_failure(name, container, since)
}

fn container_failure(
    pod: String,
    container: &ContainerStatus,
    since: Timestamp,
) -> Option<PodFailure> {
    let state = container.state.clone().unwrap_or_default();
    let waiting = state.waiting.as_ref().and_then(|w| w.reason.clone());
    let why = |reason: &str| {
        let message = state
            .waiting
            .as_ref()
            .and_then(|w| w.message.clone())
            .unwrap_or_default();
        if message.is_empty() {
            reason.to_owned()
        } else {
            format!("{reason}: {message}")
        }
    };
    if let Some(reason) = waiting.as_deref() {
        if IMAGE_REASONS.contains(&reason) {
            return Some(PodFailure::Image {
                image: container.image.clone(),
                why: why(reason),
                pod,
            });
        }
        if CONFIG_REASONS.contains(&reason) {
            return Some(PodFailure::Config {
                why: why(reason),
                pod,
            });
        }
    }
    let crash_looping = waiting.as_deref() == Some(CRASH_LOOP);
    let recent = |t: &ContainerStateTerminated| {
        crash_looping || t.finished_at.as_ref().is_none_or(|at| at.0 >= since)
    };
    let (terminated, restarted) = match (&state.terminated, &container.last_state) {
        (Some(now), _) => (now.clone(), false),
        (None, Some(last)) => (last.terminated.clone().filter(recent)?, true),
        (None, None) => return None,
    };
    let exit = Ended {
        code: terminated.exit_code,
        restarts: container.restart_count,
        restarted,
        waiting,
    };
    if terminated.reason.as_deref() == Some(OOM_KILLED) {
        Some(PodFailure::OutOfMemory { pod, exit })
    } else {
        Some(PodFailure::Exited { pod, exit })
    }
}

#[cfg(test)]
mod tests;
