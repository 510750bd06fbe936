//! Client sessions of remix servers, durably: who opened each one, the client's `initialize`,
//! and per source the gateway session it holds there (a link), so that a remix session
//! survives Skyport's restart and continues on another replica. Rows are keyed by a hash of the
//! client-facing id, as gateway sessions are; a link's gateway session id is a credential of
//! the same kind, so it is stored sealed under a key derived from the client-facing id: the
//! database alone does not give a source session away.

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::secrets::{open_with, seal_with};
use crate::sessions::{delete_by_id, delete_unused, hash};
use crate::{PrincipalId, ServerId, Store, StoreError, Timestamp, from_millis, to_millis};

/// Domain separation of the key that seals links from the hash that names the session: the
/// stored hash must not be the key.
const LINK_KEY_CONTEXT: &[u8] = b"skyport remix session link key\0";

/// One stored remix session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRemixSession {
    /// The remix it was opened on.
    pub remix: ServerId,
    /// Who opened it, when the request was authenticated; only they may use it.
    pub principal: Option<PrincipalId>,
    /// The client's `initialize` request body, sent to each source to open a session there.
    pub initialize: Vec<u8>,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When a request last used it (as last recorded).
    pub last_used_at: Timestamp,
    /// The gateway sessions it holds on its sources, in no particular order.
    pub links: Vec<RemixLink>,
}

/// The gateway session a remix session holds on one source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemixLink {
    /// The source.
    pub source: ServerId,
    /// The gateway session id on the source (`Mcp-Session-Id` of `/servers/{source}/mcp`).
    pub session: String,
    /// The protocol revision the source chose.
    pub protocol_version: Option<String>,
    /// What the source offers (its `initialize` result's `capabilities`).
    pub capabilities: serde_json::Value,
}

/// A use of a remix session to record with [`RemixSessions::touch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemixSessionUse {
    /// The client-facing id.
    pub id: String,
    /// When.
    pub at: Timestamp,
}

/// Access to stored remix sessions; obtained from [`Store::remix_sessions`].
pub struct RemixSessions<'a> {
    pub(crate) store: &'a Store,
}

impl RemixSessions<'_> {
    /// Records a new session under the client-facing id `id`, with its links.
    pub async fn insert(&self, id: &str, session: &StoredRemixSession) -> Result<(), StoreError> {
        let mut tx = self.store.write().await?;
        crate::sql::query(
            "INSERT INTO remix_sessions (id_hash, remix_id, principal_id, initialize, created_at,
                 last_used_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(hash(id))
        .bind(&session.remix)
        .bind(&session.principal)
        .bind(&session.initialize)
        .bind(to_millis(session.created_at))
        .bind(to_millis(session.last_used_at))
        .execute(&mut *tx)
        .await?;
        for link in &session.links {
            upsert_link(id, link)?.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records the link of session `id` to a source, replacing the one it held there (the
    /// source's session ended and another was opened).
    pub async fn link(&self, id: &str, link: &RemixLink) -> Result<(), StoreError> {
        upsert_link(id, link)?.execute(&self.store.pool).await?;
        Ok(())
    }

    /// The session with client-facing id `id` and its links, if it exists and was used after
    /// `since`.
    pub async fn get(
        &self,
        id: &str,
        since: Timestamp,
    ) -> Result<Option<StoredRemixSession>, StoreError> {
        let Some(row) = crate::sql::query(
            "SELECT remix_id, principal_id, initialize, created_at, last_used_at
             FROM remix_sessions WHERE id_hash = ? AND last_used_at > ?",
        )
        .bind(hash(id))
        .bind(to_millis(since))
        .fetch_optional(&self.store.pool)
        .await?
        else {
            return Ok(None);
        };
        let rows = crate::sql::query(
            "SELECT source_id, sealed_session, protocol_version, capabilities
             FROM remix_session_links WHERE session_hash = ?",
        )
        .bind(hash(id))
        .fetch_all(&self.store.pool)
        .await?;
        let key = link_key(id);
        let mut links = Vec::with_capacity(rows.len());
        for link in rows {
            let source: ServerId = link.try_get("source_id")?;
            let sealed: Vec<u8> = link.try_get("sealed_session")?;
            let session = open_with(&key, source.as_str(), &sealed).ok_or_else(|| {
                StoreError::Corrupt(format!("a remix session's link to {source} does not open"))
            })?;
            let capabilities: String = link.try_get("capabilities")?;
            links.push(RemixLink {
                source,
                session,
                protocol_version: link.try_get("protocol_version")?,
                capabilities: serde_json::from_str(&capabilities)
                    .map_err(|e| StoreError::Corrupt(format!("link capabilities: {e}")))?,
            });
        }
        Ok(Some(StoredRemixSession {
            remix: row.try_get("remix_id")?,
            principal: row.try_get("principal_id")?,
            initialize: row.try_get("initialize")?,
            created_at: from_millis(row.try_get("created_at")?)?,
            last_used_at: from_millis(row.try_get("last_used_at")?)?,
            links,
        }))
    }

    /// Records when sessions were last used, in one transaction; the gateway batches these
    /// rather than writing per request.
    pub async fn touch(&self, uses: &[RemixSessionUse]) -> Result<(), StoreError> {
        let mut tx = self.store.write().await?;
        for used in uses {
            crate::sql::query(
                "UPDATE remix_sessions
                 SET last_used_at = CASE WHEN last_used_at > ?1 THEN last_used_at ELSE ?1 END
                 WHERE id_hash = ?2",
            )
            .bind(to_millis(used.at))
            .bind(hash(&used.id))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Ends session `id` (its links go with it).
    pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
        delete_by_id(
            self.store,
            "DELETE FROM remix_sessions WHERE id_hash = ?",
            id,
        )
        .await
    }

    /// Deletes sessions not used since `before` (with their links); returns how many.
    pub async fn expire(&self, before: Timestamp) -> Result<u64, StoreError> {
        delete_unused(
            self.store,
            "DELETE FROM remix_sessions WHERE last_used_at <= ?",
            before,
        )
        .await
    }
}

/// The statement that records `link` of session `id`, its gateway session id sealed.
fn upsert_link<'q>(
    id: &str,
    link: &RemixLink,
) -> Result<sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>, StoreError> {
    let sealed = seal_with(&link_key(id), link.source.as_str(), &link.session)
        .ok_or_else(|| StoreError::Corrupt("a remix link too large to seal".to_owned()))?;
    Ok(crate::sql::query(
        "INSERT INTO remix_session_links (session_hash, source_id, sealed_session,
             protocol_version, capabilities)
         VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (session_hash, source_id) DO UPDATE SET
             sealed_session = excluded.sealed_session,
             protocol_version = excluded.protocol_version,
             capabilities = excluded.capabilities",
    )
    .bind(hash(id))
    .bind(link.source.clone())
    .bind(sealed)
    .bind(link.protocol_version.clone())
    .bind(link.capabilities.to_string()))
}

/// The key that seals the links of session `id`: only a holder of the id can derive it.
fn link_key(id: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(LINK_KEY_CONTEXT)
        .chain_update(id.as_bytes())
        .finalize()
        .into()
}

#[cfg(test)]
mod tests;
