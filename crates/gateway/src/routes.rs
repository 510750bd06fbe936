//! Which deployment serves each server name, in memory. Reloaded whole from the store on
//! every change event (changes are rare: deploys, rollbacks, removals), so it can never drift
//! from the store by applying an event wrongly.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use skyport_store::{Route, ServerId, ServerKind, ServerName, Store, StoreError};
use tokio::sync::broadcast::error::RecvError;

/// The route table; lookups are a lock-free pointer load.
#[derive(Clone)]
pub(crate) struct RouteTable {
    routes: Arc<ArcSwap<HashMap<ServerName, Route>>>,
    store: Store,
}

impl RouteTable {
    /// The table as the store has it now.
    pub(crate) async fn load(store: &Store) -> Result<RouteTable, StoreError> {
        Ok(RouteTable {
            routes: Arc::new(ArcSwap::from_pointee(read(store).await?)),
            store: store.clone(),
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

    /// The route of `name`, if the server exists. A miss (or a server without a live
    /// deployment) is checked against the store: the table follows the change feed a moment
    /// after a commit, and a client told "deployed" must not be refused in that moment.
    pub(crate) async fn get(&self, name: &ServerName) -> Result<Option<Route>, StoreError> {
        if let Some(route) = self
            .routes
            .load()
            .get(name)
            // Only a hosted server has deployments; the others are served as soon as they exist.
            .filter(|r| r.live.is_some() || r.kind != ServerKind::Hosted)
        {
            return Ok(Some(route.clone()));
        }
        self.store.deployments().route(name).await
    }

    /// The id of the server named `name`, as the table has it now (no query).
    /// The name of every server by id, as the table has it.
    pub(crate) fn names(&self) -> HashMap<ServerId, ServerName> {
        self.routes
            .load()
            .values()
            .map(|route| (route.server_id.clone(), route.name.clone()))
            .collect()
    }

    /// The id of server `name`, as the table has it.
    pub(crate) fn server_id(&self, name: &ServerName) -> Option<ServerId> {
        self.routes.load().get(name).map(|r| r.server_id.clone())
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
