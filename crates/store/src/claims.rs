//! Claims on work that one process among the replicas sharing a database must do (polling
//! sources, removing expired previews): whoever holds a claim does the work, the others wait
//! and take it over when the holder goes away.
//!
//! On PostgreSQL a claim is a session-level advisory lock held on a connection of its own,
//! outside the pool: it is released when that connection ends, so a replica that crashes or
//! is killed frees its claims without anyone cleaning up. On SQLite one process owns the
//! database, and it always holds every claim.

use std::borrow::Cow;

use sha2::{Digest, Sha256};
use sqlx::{Any, Connection, pool::PoolConnection};

use crate::{Dialect, Store};

/// A claim on one kind of work, held or waited for; obtained from [`Store::claim`].
pub struct Claim {
    store: Store,
    name: Cow<'static, str>,
    key: i64,
    /// The connection that holds the lock while the claim is held (PostgreSQL).
    holder: Option<PoolConnection<Any>>,
}

impl Claim {
    pub(crate) fn new(store: Store, name: Cow<'static, str>) -> Claim {
        let digest = Sha256::digest(format!("skyport-claim:{name}").as_bytes());
        let mut key = [0u8; 8];
        key.copy_from_slice(&digest[..8]);
        Claim {
            store,
            name,
            key: i64::from_be_bytes(key),
            holder: None,
        }
    }

    /// Whether this process holds the claim now: it checks that a held claim's connection is
    /// still alive, and tries to take a free one. Call it before each piece of the work.
    pub async fn held(&mut self) -> bool {
        if self.store.dialect == Dialect::Sqlite {
            return true;
        }
        if let Some(holder) = &mut self.holder {
            if holder.ping().await.is_ok() {
                return true;
            }
            tracing::warn!(claim = %self.name, "lost the connection that held a claim");
            self.holder = None;
        }
        match take(&self.store, self.key).await {
            Ok(Some(holder)) => {
                tracing::info!(claim = %self.name, "this replica now does this work");
                self.holder = Some(holder);
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(claim = %self.name, error = %e, "cannot claim work");
                false
            }
        }
    }
}

/// Takes the lock `key` on a connection of its own, if no other session holds it. (A free
/// function: a claim's holding connection is not `Sync`, so no `&Claim` may live across an
/// await in a spawned task.)
async fn take(store: &Store, key: i64) -> Result<Option<PoolConnection<Any>>, sqlx::Error> {
    let mut conn = store.pool.acquire().await?;
    let taken: bool = crate::sql::query_scalar("SELECT pg_try_advisory_lock(?)")
        .bind(key)
        .fetch_one(&mut *conn)
        .await?;
    Ok(taken.then_some(conn))
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Closing the holding connection (rather than returning it to the pool, where the
        // lock would stay with it) releases the claim.
        if let Some(holder) = self.holder.take() {
            let conn = holder.detach();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = conn.close().await;
                });
            }
        }
    }
}
