//! Scaling idle deployments down: a sweeper per Skyport process lists the namespace's managed
//! Deployments and scales to `min_instances` those no replica used for their idle timeout,
//! judged from the `last-used` annotation that every replica using a deployment refreshes
//! (`touch`). See the parent module and `README.md` for why the cluster, not memory, decides.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Instant;

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use skyport_runtime::Target;
use skyport_store::DeploymentId;
use tokio::sync::watch;

use super::{Inner, managed, next_sweep, touch_every, unix_seconds};
use crate::Workload;
use crate::objects::{DEPLOYMENT_LABEL, IDLE_TIMEOUT, LAST_USED, MIN_INSTANCES};

/// Sweeps every `sweep_interval` until Skyport stops (or the runtime is dropped).
pub(super) async fn sweep(inner: Weak<Inner>, mut stopped: watch::Receiver<bool>) {
    while let Some(inner) = next_sweep(&inner, &mut stopped).await {
        if let Err(e) = inner.sweep_once().await {
            tracing::warn!("cannot check Kubernetes deployments for idleness: {e}");
        }
    }
}

impl Inner {
    /// Marks the Deployment used now, for every replica's idle judgement.
    pub(super) async fn touch(&self, name: &str) {
        if self.config.workload != Workload::Deployment {
            return;
        }
        let deployments: Api<Deployment> = self.api();
        let patch =
            json!({ "metadata": { "annotations": { LAST_USED: unix_seconds().to_string() } } });
        if let Err(e) = deployments
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!("cannot mark {name} as used: {e}");
        }
    }

    /// Scales down every managed Deployment that nobody used for its idle timeout, and
    /// refreshes the endpoints of those this replica runs.
    async fn sweep_once(&self) -> Result<(), kube::Error> {
        if self.config.workload != Workload::Deployment {
            return Ok(());
        }
        let deployments: Api<Deployment> = self.api();
        let list = deployments
            .list(&ListParams::default().labels(&managed()))
            .await?;
        let now = unix_seconds();
        for deployment in list.items {
            let name = deployment.name_any();
            let replicas = deployment.spec.replicas.unwrap_or(0).max(0) as u32;
            let annotations = deployment.annotations();
            let number = |key: &str| annotations.get(key).and_then(|v| v.parse::<u64>().ok());
            let id = deployment
                .labels()
                .get(DEPLOYMENT_LABEL)
                .and_then(|id| id.parse::<DeploymentId>().ok());
            let (busy, local_use, target) = self.local_use(id.as_ref());
            // Settings changed since the Deployment was applied are known here first.
            let (min, idle_timeout) = match &target {
                Some(target) => (
                    target.settings.min_instances,
                    target.settings.idle_timeout.as_secs(),
                ),
                None => (
                    number(MIN_INSTANCES).unwrap_or(0) as u32,
                    number(IDLE_TIMEOUT).unwrap_or(300),
                ),
            };
            if busy {
                if let Some(target) = &target
                    && self.needs_touch(&target.deployment)
                {
                    self.touch(&name).await;
                }
            } else if replicas > min {
                let last_used = number(LAST_USED).unwrap_or(0).max(local_use);
                if now.saturating_sub(last_used) >= idle_timeout {
                    tracing::info!("{name} idle for {idle_timeout}s: scaling to {min} pod(s)");
                    self.scale(&name, min).await?;
                    if let Some(id) = &id
                        && let Some(entry) = self.state.lock().deployments.get_mut(id)
                    {
                        // Which pods go is the ReplicaSet's choice: no lease goes to any of
                        // them until the next refresh says which stay.
                        entry.replicas = min;
                        entry.pods.clear();
                    }
                    continue;
                }
            }
            if let Some(target) = target {
                self.refresh(&target).await?;
            }
        }
        Ok(())
    }

    /// Whether this replica has leases on `id`'s pods, when it last used it (unix seconds),
    /// and its target if known.
    fn local_use(&self, id: Option<&DeploymentId>) -> (bool, u64, Option<Target>) {
        let state = self.state.lock();
        let Some(entry) = id.and_then(|id| state.deployments.get(id)) else {
            return (false, 0, None);
        };
        let busy = entry
            .pods
            .iter()
            .any(|pod| pod.in_flight.load(Ordering::Relaxed) > 0);
        let last = entry.activity.load(Ordering::Relaxed) / 1000;
        let starting = entry.starting.is_some();
        (busy || starting, last, Some(entry.target.clone()))
    }

    fn needs_touch(&self, id: &DeploymentId) -> bool {
        let mut state = self.state.lock();
        let Some(entry) = state.deployments.get_mut(id) else {
            return false;
        };
        if entry
            .touched
            .is_some_and(|at| at.elapsed() < touch_every(&entry.target))
        {
            return false;
        }
        entry.touched = Some(Instant::now());
        true
    }
}
