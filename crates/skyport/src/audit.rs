//! `skyport audit`: the MCP requests made through the gateway and the changes made through the
//! API (deploys, rollbacks, settings, variables, keys), merged newest first, as a table for
//! people or, with `--json` / `--jsonl`, as events tagged with their `kind` for scripts and
//! log shippers.

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;
use skyport_api::{AuditRecordView, ControlEventView};
use skyport_client::AuditFilter;
use skyport_store::{AuditOutcome, Timestamp};

use crate::cli::{AuditArgs, AuditKind, Connection};
use crate::config;

/// One event of either log, as `--json` and `--jsonl` print it: the API's record with a
/// `kind` field (`mcp` or `control`).
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Event {
    Mcp(AuditRecordView),
    Control(ControlEventView),
}

impl Event {
    fn at(&self) -> Timestamp {
        match self {
            Event::Mcp(record) => record.at,
            Event::Control(event) => event.at,
        }
    }
}

pub(crate) async fn audit(connection: &Connection, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let filter = AuditFilter {
        server: args.server,
        since: args.since.map(|ago| (Timestamp::now() - ago).to_string()),
        limit: Some(args.limit),
    };
    let mut events = Vec::new();
    if args.kind != Some(AuditKind::Control) {
        let page = client.audit(&filter).await?;
        if page.lost > 0 {
            eprintln!(
                "note: {} request(s) since Skyport started are missing from the audit log (its queue was full or the database failed; see its log)",
                page.lost
            );
        }
        events.extend(page.records.into_iter().map(Event::Mcp));
    }
    if args.kind != Some(AuditKind::Mcp) {
        let page = client.control_audit(&filter).await?;
        events.extend(page.events.into_iter().map(Event::Control));
    }
    // Each page is newest first already; merged, the newest `limit` of both are shown.
    events.sort_by_key(|e| std::cmp::Reverse(e.at()));
    events.truncate(usize::try_from(args.limit).unwrap_or(usize::MAX));

    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&events)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.jsonl {
        for event in &events {
            writeln!(out, "{}", serde_json::to_string(event)?)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if events.is_empty() {
        writeln!(out, "No events recorded (for this filter).")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<19} {:<16} {:<12} {:<26} {:<24} {:<18} {:>9} {:>15}",
        "TIME (UTC)", "SERVER", "PRINCIPAL", "METHOD", "TARGET", "OUTCOME", "MS", "BYTES IN/OUT"
    )?;
    for event in &events {
        match event {
            Event::Mcp(record) => writeln!(
                out,
                "{:<19} {:<16} {:<12} {:<26} {:<24} {:<18} {:>9.1} {:>15}",
                record.at.strftime("%Y-%m-%d %H:%M:%S"),
                record.server.as_str(),
                principal(record),
                record.method.as_deref().unwrap_or(&record.http_method),
                record.target.as_deref().unwrap_or("-"),
                outcome(record),
                record.duration_ms,
                format!("{}/{}", record.bytes_in, record.bytes_out),
            )?,
            // A change has no duration or size; its action stands where a request's method does.
            Event::Control(change) => writeln!(
                out,
                "{:<19} {:<16} {:<12} {:<26} {:<24} {:<18} {:>9} {:>15}",
                change.at.strftime("%Y-%m-%d %H:%M:%S"),
                change.server.as_ref().map_or("-", |s| s.as_str()),
                change.actor_name,
                change.action.as_str(),
                change.subject.as_deref().unwrap_or("-"),
                "changed",
                "-",
                "-",
            )?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn principal(record: &AuditRecordView) -> String {
    match (&record.principal_name, &record.principal) {
        (Some(name), _) => name.clone(),
        (None, Some(id)) => id.to_string(),
        (None, None) => "-".to_owned(),
    }
}

/// The outcome with what makes it specific: the JSON-RPC code of an error, the HTTP status of
/// an HTTP error.
fn outcome(record: &AuditRecordView) -> String {
    let name = record.outcome.as_str();
    match (record.outcome, record.error_code) {
        (AuditOutcome::HttpError, _) => format!("{name} {}", record.status),
        (_, Some(code)) => format!("{name} {code}"),
        (_, None) => name.to_owned(),
    }
}
