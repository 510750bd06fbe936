//! The gateway's client sessions, durably: what opened each one (its `initialize` request) and
//! where it is bound now (deployment, instance, upstream session id), so that a session survives
//! its instance and Skyport's own restart. Rows are keyed by a hash of the client-facing id.

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{
    DeploymentId, InstanceId, PrincipalId, ServerId, Store, StoreError, Timestamp, from_millis,
    to_millis,
};

/// One stored session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSession {
    /// The server it was opened on.
    pub server: ServerId,
    /// Who opened it, when the request was authenticated; only they may use it.
    pub principal: Option<PrincipalId>,
    /// Where it is bound now.
    pub binding: SessionBinding,
    /// The client's `initialize` request body, replayed on a new instance.
    pub initialize: Vec<u8>,
    /// The protocol revision the client uses on it.
    pub protocol_version: Option<String>,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When a request last used it.
    pub last_used_at: Timestamp,
}

/// Where a session lives upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionBinding {
    /// The deployment whose instance holds it.
    pub deployment: DeploymentId,
    /// That instance, when known.
    pub instance: Option<InstanceId>,
    /// The upstream server's own session id, when it issued one.
    pub upstream: Option<String>,
}

/// Access to stored sessions; obtained from [`Store::sessions`].
pub struct Sessions<'a> {
    pub(crate) store: &'a Store,
}

impl Sessions<'_> {
    /// Records a new session under the client-facing id `id`.
    pub async fn insert(&self, id: &str, session: &StoredSession) -> Result<(), StoreError> {
        crate::sql::query(
            "INSERT INTO gateway_sessions (id_hash, server_id, principal_id, deployment_id,
                 instance_id, upstream_session, initialize, protocol_version, created_at,
                 last_used_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(hash(id))
        .bind(&session.server)
        .bind(&session.principal)
        .bind(&session.binding.deployment)
        .bind(&session.binding.instance)
        .bind(&session.binding.upstream)
        .bind(&session.initialize)
        .bind(&session.protocol_version)
        .bind(to_millis(session.created_at))
        .bind(to_millis(session.last_used_at))
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// The session with client-facing id `id`, if it exists and was used after `since`.
    pub async fn get(
        &self,
        id: &str,
        since: Timestamp,
    ) -> Result<Option<StoredSession>, StoreError> {
        crate::sql::query(
            "SELECT server_id, principal_id, deployment_id, instance_id, upstream_session,
                    initialize, protocol_version, created_at, last_used_at
             FROM gateway_sessions WHERE id_hash = ? AND last_used_at > ?",
        )
        .bind(hash(id))
        .bind(to_millis(since))
        .fetch_optional(&self.store.pool)
        .await?
        .map(|row| {
            Ok(StoredSession {
                server: row.try_get("server_id")?,
                principal: row.try_get("principal_id")?,
                binding: SessionBinding {
                    deployment: row.try_get("deployment_id")?,
                    instance: row.try_get("instance_id")?,
                    upstream: row.try_get("upstream_session")?,
                },
                initialize: row.try_get("initialize")?,
                protocol_version: row.try_get("protocol_version")?,
                created_at: from_millis(row.try_get("created_at")?)?,
                last_used_at: from_millis(row.try_get("last_used_at")?)?,
            })
        })
        .transpose()
    }

    /// Moves session `id` to a new upstream (after its `initialize` was replayed there).
    pub async fn rebind(&self, id: &str, binding: &SessionBinding) -> Result<(), StoreError> {
        crate::sql::query(
            "UPDATE gateway_sessions SET deployment_id = ?, instance_id = ?, upstream_session = ?
             WHERE id_hash = ?",
        )
        .bind(&binding.deployment)
        .bind(&binding.instance)
        .bind(&binding.upstream)
        .bind(hash(id))
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// Records when sessions were last used (and the protocol revision their clients send),
    /// in one transaction; the gateway batches these rather than writing per request.
    pub async fn touch(&self, uses: &[SessionUse]) -> Result<(), StoreError> {
        let mut tx = self.store.write().await?;
        for used in uses {
            crate::sql::query(
                "UPDATE gateway_sessions
                 SET last_used_at = CASE WHEN last_used_at > ?1 THEN last_used_at ELSE ?1 END,
                     protocol_version = COALESCE(?2, protocol_version)
                 WHERE id_hash = ?3",
            )
            .bind(to_millis(used.at))
            .bind(&used.protocol_version)
            .bind(hash(&used.id))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Ends session `id`.
    pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
        delete_by_id(
            self.store,
            "DELETE FROM gateway_sessions WHERE id_hash = ?",
            id,
        )
        .await
    }

    /// Deletes sessions not used since `before`; returns how many.
    pub async fn expire(&self, before: Timestamp) -> Result<u64, StoreError> {
        delete_unused(
            self.store,
            "DELETE FROM gateway_sessions WHERE last_used_at <= ?",
            before,
        )
        .await
    }

    /// How many sessions are stored.
    pub async fn count(&self) -> Result<u64, StoreError> {
        let row = crate::sql::query("SELECT COUNT(*) AS n FROM gateway_sessions")
            .fetch_one(&self.store.pool)
            .await?;
        Ok(u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or_default())
    }
}

/// A use of a session to record with [`Sessions::touch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionUse {
    /// The client-facing id.
    pub id: String,
    /// When.
    pub at: Timestamp,
    /// The `MCP-Protocol-Version` the client sent, if any.
    pub protocol_version: Option<String>,
}

/// Runs `statement`, a `DELETE` whose one placeholder is a session's id hash, for `id`.
pub(crate) async fn delete_by_id(
    store: &Store,
    statement: &'static str,
    id: &str,
) -> Result<(), StoreError> {
    crate::sql::query(statement)
        .bind(hash(id))
        .execute(&store.pool)
        .await?;
    Ok(())
}

/// Runs `statement`, a `DELETE` whose one placeholder is a last use, for sessions unused
/// since `before`; returns how many it deleted.
pub(crate) async fn delete_unused(
    store: &Store,
    statement: &'static str,
    before: Timestamp,
) -> Result<u64, StoreError> {
    let done = crate::sql::query(statement)
        .bind(to_millis(before))
        .execute(&store.pool)
        .await?;
    Ok(done.rows_affected())
}

/// The form a client-facing session id is stored in.
pub(crate) fn hash(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}
