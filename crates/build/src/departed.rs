//! Builds of departed replicas. On a shared database each replica runs the builds it queued,
//! in its own memory; a replica that stops (killed, crashed, cut off from the database) leaves
//! them queued or building for ever. Every replica looks for such builds now and then and
//! marks them failed, so the user sees why and can deploy again.
//!
//! A replica counts as departed when it holds no connection to the database. Its listener's
//! connection is re-established after a network hiccup, so a replica is declared gone only
//! when two looks in a row find it absent.

use std::collections::HashSet;
use std::time::Duration;

use skyport_store::{Replica, Store};
use tokio_util::sync::CancellationToken;

/// How often the builds of departed replicas are looked for.
pub const DEPARTED_INTERVAL: Duration = Duration::from_secs(10);

/// Marks failed, every `tick` until `stop`, the builds of replicas found gone twice in a row.
pub async fn fail_builds_of_departed_replicas(
    store: Store,
    tick: Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut absent_before = HashSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => absent_before = look(&store, &absent_before).await,
        }
    }
}

/// One look: fails the builds of the replicas absent now and at the last look; returns the
/// replicas absent now.
async fn look(store: &Store, absent_before: &HashSet<Replica>) -> HashSet<Replica> {
    let absent: HashSet<Replica> = match store.deployments().departed_builders().await {
        Ok(replicas) => replicas.into_iter().collect(),
        Err(e) => {
            tracing::warn!("cannot look for builds of departed replicas: {e}");
            return absent_before.clone();
        }
    };
    for replica in absent.intersection(absent_before) {
        match store.deployments().fail_builds_of(replica).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                "{n} build(s) of replica {replica} are marked failed: it is no longer connected to the database"
            ),
            Err(e) => tracing::warn!("cannot mark the builds of replica {replica} failed: {e}"),
        }
    }
    absent
}
