//! `GET /api/v1/audit`: the gateway's audit log of MCP requests, and `GET
//! /api/v1/audit/control`: the log of control-plane changes (deploys, rollbacks, settings,
//! variables, keys); both newest first, filtered by server and time.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Deserialize;
use skyport_api::{AuditPage, AuditRecordView, ControlAuditPage, ControlEventView};
use skyport_gateway::Gateway;
use skyport_store::{
    AuditQuery, AuditRecord, ControlAction, ControlEvent, ControlQuery, MAX_AUDIT_PAGE, Principal,
    ServerName, Timestamp,
};

use crate::access::{Permission, authorize, require_org_admin};
use crate::{ApiError, AppState};

/// Requests one page holds when no limit is given.
const DEFAULT_LIMIT: u32 = 100;
/// How long a read waits for records still queued in the gateway's writer.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// The audit routes (they need the [`Gateway`] as an extension).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/audit", get(list))
        .route("/audit/control", get(control))
}

/// Query of `GET /audit`.
#[derive(Debug, Deserialize)]
struct AuditParams {
    /// Only requests to this server.
    server: Option<String>,
    /// Only requests since this time: an RFC 3339 timestamp, or a duration back from now
    /// (`90s`, `15m`, `1h30m`, `7d`).
    since: Option<String>,
    /// At most this many requests.
    limit: Option<u32>,
}

async fn list(
    State(state): State<AppState>,
    Extension(gateway): Extension<Gateway>,
    Extension(caller): Extension<Principal>,
    Query(params): Query<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    may_read(&state, &caller, params.server.as_deref()).await?;
    let (server, since, limit) = filters(params.server, params.since, params.limit)?;
    let query = AuditQuery {
        server,
        since,
        limit,
    };
    // Requests that just finished are still in the writer's batch: reading right after a
    // call should show it. A writer slow to answer only makes the page less fresh.
    let _ = tokio::time::timeout(FLUSH_WAIT, gateway.flush_audit()).await;
    let records = state.store.audit().query(&query).await?;
    Ok(Json(AuditPage {
        records: records.into_iter().map(view).collect(),
        lost: gateway.audit_lost(),
    }))
}

/// Query of `GET /audit/control`: those of `GET /audit`, and one action.
#[derive(Debug, Deserialize)]
struct ControlParams {
    /// Only changes to this server.
    server: Option<String>,
    /// Only changes since this time (as for `GET /audit`).
    since: Option<String>,
    /// Only changes of this kind (`deploy`, `env.set`, …).
    action: Option<String>,
    /// At most this many changes.
    limit: Option<u32>,
}

async fn control(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Query(params): Query<ControlParams>,
) -> Result<Json<ControlAuditPage>, ApiError> {
    may_read(&state, &caller, params.server.as_deref()).await?;
    let (server, since, limit) = filters(params.server, params.since, params.limit)?;
    let query = ControlQuery {
        server,
        action: params
            .action
            .as_deref()
            .map(str::parse::<ControlAction>)
            .transpose()
            .map_err(|e| ApiError::BadRequest(e.to_string()))?,
        since,
        limit,
    };
    let events = state.store.control_audit().query(&query).await?;
    Ok(Json(ControlAuditPage {
        events: events.into_iter().map(control_view).collect(),
    }))
}

/// Org admins read either whole log (removed servers' rows too); a server's admins read that
/// server's.
async fn may_read(
    state: &AppState,
    caller: &Principal,
    server: Option<&str>,
) -> Result<(), ApiError> {
    match server {
        Some(server) if !caller.is_admin => {
            authorize(state, caller, server, Permission::Audit).await?;
        }
        Some(_) => {}
        None => require_org_admin(
            caller,
            "read the whole audit log; pass --server NAME for a server you administer",
        )?,
    }
    Ok(())
}

fn control_view(event: ControlEvent) -> ControlEventView {
    let e = event.event;
    ControlEventView {
        id: event.id,
        at: event.at,
        actor: e.actor,
        actor_name: e.actor_name,
        action: e.action,
        server: e.server,
        subject: e.subject,
        before: e.before,
        after: e.after,
    }
}

fn view(record: AuditRecord) -> AuditRecordView {
    let r = record.record;
    AuditRecordView {
        id: record.id,
        at: r.at,
        server: r.server,
        server_id: r.server_id,
        deployment: r.deployment_id,
        principal: r.principal_id,
        principal_name: record.principal_name,
        http_method: r.http_method,
        method: r.method,
        target: r.target,
        outcome: r.outcome,
        status: r.status,
        error_code: r.error_code,
        duration_ms: r.duration.as_secs_f64() * 1000.0,
        bytes_in: r.bytes_in,
        bytes_out: r.bytes_out,
    }
}

/// The filters both logs take, parsed: a server name, a start time, a page size.
fn filters(
    server: Option<String>,
    since_text: Option<String>,
    limit: Option<u32>,
) -> Result<(Option<ServerName>, Option<Timestamp>, u32), ApiError> {
    Ok((
        server.as_deref().map(str::parse).transpose()?,
        since_text.as_deref().map(since).transpose()?,
        limit.unwrap_or(DEFAULT_LIMIT).min(MAX_AUDIT_PAGE),
    ))
}

/// The start of a `since` filter: a timestamp, or now minus a duration.
pub(crate) fn since(text: &str) -> Result<Timestamp, ApiError> {
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    let ago = duration(text).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "since '{text}' is neither an RFC 3339 time nor a duration: write e.g. 15m, 1h30m, 7d or 2026-01-31T12:00:00Z"
        ))
    })?;
    Timestamp::now()
        .checked_sub(ago)
        .map_err(|_| ApiError::BadRequest(format!("since '{text}' is too far back")))
}

/// A duration written as numbers with units (`ms`, `s`, `m`, `h`, `d`), e.g. `1h30m`.
fn duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ms" => {
                total = total.checked_add(Duration::from_millis(number))?;
                rest = &rest[unit_len..];
                continue;
            }
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return None,
        };
        total = total.checked_add(Duration::from_secs(number.checked_mul(seconds)?))?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::duration;

    #[test]
    fn since_durations_read_like_the_cli_writes_them() {
        assert_eq!(duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(duration("7d"), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(duration("250ms"), Some(Duration::from_millis(250)));
        for bad in ["", "h", "15x", "1.5h", "-3s", "5 minutes"] {
            assert_eq!(duration(bad), None, "{bad:?} was accepted");
        }
    }
}
