//! Keeps running instances in line with the store: when a server's live deployment moves (a
//! promotion, a rollback, a removal), the deployment it moved away from is retired; every live
//! deployment's settings reach the runtime, which keeps `min_instances` of each warm.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use skyport_store::{Store, StoreError};
use tokio::sync::broadcast::error::RecvError;

use crate::{Runtime, Target};

/// Retires instances whose deployment no longer serves its server and passes live deployments
/// to [`Runtime::keep_warm`], now and after every change, until the store closes. In-flight
/// requests to a retired instance get `grace` to finish.
pub async fn follow_live_deployments(store: Store, runtime: Arc<dyn Runtime>, grace: Duration) {
    let mut changes = store.subscribe();
    if let Err(e) = retire_superseded(&store, &runtime, grace).await {
        tracing::warn!("cannot read live deployments: {e}");
    }
    loop {
        match changes.recv().await {
            // Any change (or missed changes) is handled the same way: compare with the store,
            // which is the truth, rather than trusting each event's details.
            Ok(_) | Err(RecvError::Lagged(_)) => {
                if let Err(e) = retire_superseded(&store, &runtime, grace).await {
                    tracing::warn!("cannot compare instances with live deployments: {e}");
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

async fn retire_superseded(
    store: &Store,
    runtime: &Arc<dyn Runtime>,
    grace: Duration,
) -> Result<(), StoreError> {
    let targets: Vec<Target> = store
        .deployments()
        .routes()
        .await?
        .into_iter()
        .filter_map(Target::live)
        .collect();
    runtime.keep_warm(&targets);
    let live: HashSet<_> = targets.into_iter().map(|t| t.deployment).collect();
    let superseded: HashSet<_> = runtime
        .instances()
        .into_iter()
        .map(|instance| instance.deployment)
        .filter(|deployment| !live.contains(deployment))
        .collect();
    for deployment in superseded {
        let runtime = runtime.clone();
        tokio::spawn(async move { runtime.retire(&deployment, grace).await });
    }
    Ok(())
}
