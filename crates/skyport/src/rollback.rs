//! `skyport rollback N [DEPLOYMENT]`: make an earlier deployment live again, without a build.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{Connection, RollbackArgs};
use crate::config;

pub(crate) async fn rollback(
    connection: &Connection,
    args: RollbackArgs,
) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let live = client
        .roll_back(&args.name, args.deployment.as_deref())
        .await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&live)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let what = match &live.commit {
        Some(commit) => format!(" (commit {}: {})", commit.short, commit.message),
        None => format!(
            " (built {})",
            live.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        ),
    };
    writeln!(out, "✓ '{}' rolled back to {}{what}", args.name, live.id)?;
    Ok(ExitCode::SUCCESS)
}
