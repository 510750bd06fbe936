//! Who may reach which server, in memory: the store's [`AccessTable`] (grants, default roles,
//! group memberships, previews' parents), loaded at start and reloaded whole on
//! [`Change::Access`] (and on promotions, which is how a new preview first goes live) like the
//! route table and the keyring, so deciding a request's role costs map lookups, never a query.
//!
//! What a role permits beyond connecting (which tools) is the policy layer's business; this
//! module only answers "which role, if any".
//!
//! [`Change::Access`]: skyport_store::Change::Access

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use skyport_store::{AccessTable, Change, Store, StoreError};
use tokio::sync::broadcast::error::RecvError;

/// The current access table; reads are a lock-free pointer load.
pub(crate) struct Access {
    table: Arc<ArcSwap<AccessTable>>,
}

impl Access {
    /// The store's access table now; keeps following it until the change feed closes.
    pub(crate) async fn load(store: &Store) -> Result<Access, StoreError> {
        // Subscribe before reading, so no change between the read and the follow is missed.
        let changes = store.subscribe();
        let table = Arc::new(ArcSwap::from_pointee(store.access().table().await?));
        tokio::spawn(follow(store.clone(), table.clone(), changes));
        Ok(Access { table })
    }

    /// The table as it is now.
    pub(crate) fn table(&self) -> Guard<Arc<AccessTable>> {
        self.table.load()
    }
}

async fn follow(
    store: Store,
    table: Arc<ArcSwap<AccessTable>>,
    mut changes: tokio::sync::broadcast::Receiver<Change>,
) {
    loop {
        match changes.recv().await {
            Ok(Change::Access | Change::Promoted { .. } | Change::Catalog { .. })
            | Err(RecvError::Lagged(_)) => match store.access().table().await {
                Ok(fresh) => table.store(Arc::new(fresh)),
                Err(e) => tracing::error!("cannot reload access grants: {e}"),
            },
            Ok(_) => {}
            Err(RecvError::Closed) => return,
        }
    }
}
