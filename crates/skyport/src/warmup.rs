//! The build's warm-up hook wired to the runtime: a deployment about to go live (a fresh build or
//! a rollback) gets a ready instance first when its server's live deployment has warm ones, so
//! the switch costs no cold start. The instance then stays like any other: warm until its idle
//! timeout. The build crate never sees the runtime; this is the one place they meet.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use skyport_build::{Candidate, Warmed, Warmup};
use skyport_runtime::{Runtime, Target};
use skyport_store::{LiveDeployment, Route, Store};

/// Readies candidates with a runtime lease.
pub(crate) struct RuntimeWarmup {
    pub(crate) store: Store,
    pub(crate) runtime: Arc<dyn Runtime>,
}

impl Warmup for RuntimeWarmup {
    fn warm_up<'a>(
        &'a self,
        candidate: Candidate<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Warmed, String>> + Send + 'a>> {
        Box::pin(self.ready(candidate))
    }
}

impl RuntimeWarmup {
    async fn ready(&self, candidate: Candidate<'_>) -> Result<Warmed, String> {
        let Some(route) = self.route(&candidate).await? else {
            return Ok(Warmed::NotNeeded);
        };
        let warm = route.live.as_ref().is_some_and(|live| {
            self.runtime
                .instances()
                .iter()
                .any(|instance| instance.deployment == live.id)
        });
        if !warm {
            return Ok(Warmed::NotNeeded);
        }
        // The candidate's target is its server's route with the candidate as the live
        // deployment: the same settings and environment it gets once promoted.
        let env = self
            .store
            .env()
            .of_deployment(candidate.deployment)
            .await
            .map_err(|e| e.to_string())?;
        let target = Target::live(Route {
            live: Some(LiveDeployment {
                id: candidate.deployment.clone(),
                launch: candidate.launch.clone(),
                env: env.into(),
            }),
            ..route
        })
        .ok_or_else(|| "the candidate has no launch spec".to_owned())?;
        let acquired = match candidate.patience {
            // The start runs in the runtime's own task: giving up waiting does not stop it.
            Some(patience) => {
                match tokio::time::timeout(patience, self.runtime.acquire(&target, None)).await {
                    Ok(acquired) => acquired,
                    Err(_) => return Ok(Warmed::Starting),
                }
            }
            None => self.runtime.acquire(&target, None).await,
        };
        match acquired {
            Ok(lease) => {
                drop(lease);
                Ok(Warmed::Ready)
            }
            Err(e) => {
                // Nothing of a deployment that never went live may linger (a backing-off pool).
                self.runtime
                    .retire(candidate.deployment, Duration::ZERO)
                    .await;
                Err(e.to_string())
            }
        }
    }

    async fn route(&self, candidate: &Candidate<'_>) -> Result<Option<Route>, String> {
        let server = self
            .store
            .servers()
            .by_id(candidate.server)
            .await
            .map_err(|e| e.to_string())?;
        let Some(server) = server else {
            return Ok(None);
        };
        self.store
            .deployments()
            .route(&server.name)
            .await
            .map_err(|e| e.to_string())
    }
}
