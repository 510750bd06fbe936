//! The audit log of MCP requests: rows appended in batches (one transaction per batch, written
//! by the gateway's writer task), read newest first with filters, and pruned by age and count.
//!
//! This module stores what the gateway decided about a request; it does not classify outcomes
//! or decide when to write.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{
    DeploymentId, PrincipalId, ServerId, ServerName, Store, StoreError, Timestamp, from_millis,
    to_millis,
};

/// Rows per `INSERT` statement: 15 parameters each stays far below SQLite's variable limit.
const ROWS_PER_STATEMENT: usize = 500;
/// Most rows one query returns, whatever the caller asks for.
pub const MAX_AUDIT_PAGE: u32 = 5_000;

/// How a request through the gateway ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// The server answered with a JSON-RPC result (or accepted a notification).
    Ok,
    /// A `tools/call` result with `isError: true`: the tool ran and reported a failure.
    ToolError,
    /// The server answered with a JSON-RPC error.
    RpcError,
    /// The server answered with an HTTP error status.
    HttpError,
    /// The response ended early: the instance died or the client went away.
    Cut,
    /// The gateway answered instead of the server (unknown server or session, bad body, limits).
    Refused,
    /// A tool-level policy forbade the call: the gateway answered as the server answers for an
    /// unknown tool, prompt or resource, and the server never saw it.
    Denied,
}

impl AuditOutcome {
    /// The outcome as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::ToolError => "tool_error",
            AuditOutcome::RpcError => "rpc_error",
            AuditOutcome::HttpError => "http_error",
            AuditOutcome::Cut => "cut",
            AuditOutcome::Refused => "refused",
            AuditOutcome::Denied => "denied",
        }
    }
}

/// One request to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAuditRecord {
    /// When the request arrived.
    pub at: Timestamp,
    /// The server, when the name belonged to one.
    pub server_id: Option<ServerId>,
    /// The server name in the request's path.
    pub server: ServerName,
    /// The deployment that answered, once routed.
    pub deployment_id: Option<DeploymentId>,
    /// Who called, when authenticated.
    pub principal_id: Option<PrincipalId>,
    /// The HTTP method (`POST`, `GET`, `DELETE`).
    pub http_method: String,
    /// The JSON-RPC method (the first message's, for a batch).
    pub method: Option<String>,
    /// The tool or prompt name, or the resource URI, the request names.
    pub target: Option<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The HTTP status the client got.
    pub status: u16,
    /// The JSON-RPC error code, for errors that carry one.
    pub error_code: Option<i64>,
    /// From arrival to the end of the response.
    pub duration: Duration,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
}

/// A stored request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the log; increases with every row.
    pub id: i64,
    /// The name of the principal who called, when it still exists.
    pub principal_name: Option<String>,
    /// The request as recorded.
    pub record: NewAuditRecord,
}

/// Which requests to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only requests to this server name.
    pub server: Option<ServerName>,
    /// Only requests that arrived at or after this time.
    pub since: Option<Timestamp>,
    /// At most this many (capped at [`MAX_AUDIT_PAGE`]).
    pub limit: u32,
}

/// How much of the log is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditRetention {
    /// Rows older than this are deleted.
    pub max_age: Duration,
    /// Beyond this many rows, the oldest are deleted.
    pub max_rows: u64,
}

impl Default for AuditRetention {
    /// Thirty days, and a million rows (a few hundred MB at most).
    fn default() -> AuditRetention {
        AuditRetention {
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_rows: 1_000_000,
        }
    }
}

/// Access to the audit log; obtained from [`Store::audit`].
pub struct Audit<'a> {
    pub(crate) store: &'a Store,
}

impl Audit<'_> {
    /// Appends `records` in one transaction: all are stored or none.
    pub async fn insert(&self, records: &[NewAuditRecord]) -> Result<(), StoreError> {
        let mut tx = self.store.write().await?;
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            // sqlx's `QueryBuilder` writes `?` for the `Any` driver, which PostgreSQL does not
            // take; the rows' placeholders are written here and numbered like every statement.
            let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let statement = format!(
                "INSERT INTO audit_log (at, server_id, server_name, deployment_id, principal_id, \
                 http_method, method, target, outcome, status, error_code, duration_us, bytes_in, \
                 bytes_out) VALUES {rows}"
            );
            let mut insert = crate::sql::query_built(&statement);
            for r in chunk {
                insert = insert
                    .bind(to_millis(r.at))
                    .bind(&r.server_id)
                    .bind(r.server.as_str())
                    .bind(&r.deployment_id)
                    .bind(&r.principal_id)
                    .bind(&r.http_method)
                    .bind(&r.method)
                    .bind(&r.target)
                    .bind(r.outcome.as_str())
                    .bind(i64::from(r.status))
                    .bind(r.error_code)
                    .bind(saturating_i64(r.duration.as_micros()))
                    .bind(saturating_i64(u128::from(r.bytes_in)))
                    .bind(saturating_i64(u128::from(r.bytes_out)));
            }
            insert.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest requests matching `query`, newest first.
    pub async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        crate::sql::query(
            "SELECT a.id, a.at, a.server_id, a.server_name, a.deployment_id, a.principal_id,
                    p.name AS principal_name, a.http_method, a.method, a.target, a.outcome,
                    a.status, a.error_code, a.duration_us, a.bytes_in, a.bytes_out
             FROM audit_log a LEFT JOIN principals p ON p.id = a.principal_id
             WHERE (?1 IS NULL OR a.server_name = ?1) AND (?2 IS NULL OR a.at >= ?2)
             ORDER BY a.at DESC, a.id DESC LIMIT ?3",
        )
        .bind(query.server.as_ref().map(ServerName::as_str))
        .bind(query.since.map(to_millis))
        .bind(i64::from(query.limit.min(MAX_AUDIT_PAGE)))
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(audit_record)
        .collect()
    }

    /// Deletes rows past `retention` (too old, or beyond the row cap); returns how many.
    pub async fn prune(&self, retention: &AuditRetention) -> Result<u64, StoreError> {
        prune(
            self.store,
            retention,
            "DELETE FROM audit_log WHERE at < ?",
            "DELETE FROM audit_log WHERE id <= (
                SELECT id FROM audit_log ORDER BY id DESC LIMIT 1 OFFSET ?)",
        )
        .await
    }
}

/// Runs a log's two pruning statements: `aged` deletes rows older than its parameter (the
/// cutoff in milliseconds), `excess` the rows beyond the newest N (its parameter).
pub(crate) async fn prune(
    store: &Store,
    retention: &AuditRetention,
    aged: &'static str,
    excess: &'static str,
) -> Result<u64, StoreError> {
    let cutoff = Timestamp::now()
        .checked_sub(retention.max_age)
        .unwrap_or(Timestamp::MIN);
    let aged = crate::sql::query(aged)
        .bind(to_millis(cutoff))
        .execute(&store.pool)
        .await?
        .rows_affected();
    // Ids follow insertion order, so the row cap keeps the most recently written rows.
    let excess = crate::sql::query(excess)
        .bind(saturating_i64(u128::from(retention.max_rows)))
        .execute(&store.pool)
        .await?
        .rows_affected();
    Ok(aged + excess)
}

fn saturating_i64(value: u128) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn audit_record(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    let outcome: String = row.try_get("outcome")?;
    let server: String = row.try_get("server_name")?;
    let status: i64 = row.try_get("status")?;
    let unsigned = |column: &str| -> Result<u64, StoreError> {
        let value: i64 = row.try_get(column)?;
        u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("audit {column} {value}")))
    };
    Ok(AuditRecord {
        id: row.try_get("id")?,
        principal_name: row.try_get("principal_name")?,
        record: NewAuditRecord {
            at: from_millis(row.try_get("at")?)?,
            server_id: row.try_get("server_id")?,
            server: server
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("audit server name '{server}'")))?,
            deployment_id: row.try_get("deployment_id")?,
            principal_id: row.try_get("principal_id")?,
            http_method: row.try_get("http_method")?,
            method: row.try_get("method")?,
            target: row.try_get("target")?,
            outcome: crate::deployments::parse_enum("audit outcome", &outcome)?,
            status: u16::try_from(status)
                .map_err(|_| StoreError::Corrupt(format!("audit status {status}")))?,
            error_code: row.try_get("error_code")?,
            duration: Duration::from_micros(unsigned("duration_us")?),
            bytes_in: unsigned("bytes_in")?,
            bytes_out: unsigned("bytes_out")?,
        },
    })
}

#[cfg(test)]
mod tests;
