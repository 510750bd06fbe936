//! `skyport audit`: the MCP requests made through the gateway, newest first, as a table for
//! people or, with `--json`, the API's records for scripts.

use std::io::Write;
use std::process::ExitCode;

use skyport_api::AuditRecordView;
use skyport_client::AuditFilter;
use skyport_store::{AuditOutcome, Timestamp};

use crate::cli::{AuditArgs, Connection};
use crate::config;

pub(crate) async fn audit(connection: &Connection, args: AuditArgs) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let filter = AuditFilter {
        server: args.server,
        since: args.since.map(|ago| (Timestamp::now() - ago).to_string()),
        limit: Some(args.limit),
    };
    let page = client.audit(&filter).await?;
    if page.lost > 0 {
        eprintln!(
            "note: {} request(s) since Skyport started are missing from the audit log (its queue was full or the database failed; see its log)",
            page.lost
        );
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&page.records)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if page.records.is_empty() {
        writeln!(out, "No requests recorded (for this filter).")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<19} {:<16} {:<12} {:<26} {:<24} {:<18} {:>9} {:>15}",
        "TIME (UTC)", "SERVER", "PRINCIPAL", "METHOD", "TARGET", "OUTCOME", "MS", "BYTES IN/OUT"
    )?;
    for record in &page.records {
        writeln!(
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
        )?;
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
