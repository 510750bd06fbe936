//! Which deployment serves each server name, in memory. Reloaded whole from the store on
//! every change event (changes are rare: deploys, rollbacks, removals), so it can never drift
//! from the store by applying an event wrongly.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use skyport_store::{Route, ServerName, Store, StoreError};
use tokio::sync::broadcast::error::RecvError;

/// The route table; lookups are a lock-free pointer load.
#[derive(Clone)]
pub(crate) struct RouteTable {
    routes: Arc<ArcSwap<HashMap<ServerName, Route>>>,
}

impl RouteTable {
    /// The table as the store has it now.
    pub(crate) async fn load(store: &Store) -> Result<RouteTable, StoreError> {
        Ok(RouteTable {
            routes: Arc::new(ArcSwap::from_pointee(read(store).await?)),
        })
    }

    /// Keeps the table current until the store's change feed closes.
    pub(crate) fn follow(&self, store: Store) {
        let routes = self.routes.clone();
        // Subscribe before the task starts so no change between load and follow is missed.
        let mut changes = store.subscribe();
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(_) | Err(RecvError::Lagged(_)) => match read(&store).await {
                        Ok(table) => routes.store(Arc::new(table)),
                        Err(e) => tracing::error!("cannot reload routes: {e}"),
                    },
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    /// The route of `name`, if the server exists.
    pub(crate) fn get(&self, name: &ServerName) -> Option<Route> {
        self.routes.load().get(name).cloned()
    }
}

async fn read(store: &Store) -> Result<HashMap<ServerName, Route>, StoreError> {
    Ok(store
        .deployments()
        .routes()
        .await?
        .into_iter()
        .map(|route| (route.name.clone(), route))
        .collect())
}
