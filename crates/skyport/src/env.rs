//! `skyport env set/unset/ls`: a server's environment variables and secrets, and `--redeploy`,
//! which builds the live deployment's source again so that a change takes effect now.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use skyport_api::{DeploymentView, EnvAssignment, EnvChanged, SetEnv};
use skyport_client::Client;
use skyport_store::{DeploymentStatus, EnvKey, Timestamp};

use crate::cli::{Connection, EnvArgs, EnvChangeArgs, EnvCommand};
use crate::{config, deploy};

/// How a secret's value is shown: never, not even its length.
const MASKED: &str = "••••••";

pub(crate) async fn env(connection: &Connection, args: EnvArgs) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    match args.command {
        EnvCommand::Set {
            name,
            vars,
            secret,
            change,
        } => {
            let request = SetEnv {
                scope: Some(change.scope.to_string()),
                vars: assignments(&vars, secret)?,
                redeploy: change.redeploy,
            };
            let changed = client.set_env(&name, &request).await?;
            finish(&client, &change, changed, "set").await
        }
        EnvCommand::Unset { name, keys, change } => {
            for key in &keys {
                key.parse::<EnvKey>()?;
            }
            let scope = change.scope.to_string();
            let mut last = None;
            for (i, key) in keys.iter().enumerate() {
                // One request per name; the redeploy goes with the last, once all are gone.
                let redeploy = change.redeploy && i + 1 == keys.len();
                last = Some(client.unset_env(&name, key, Some(&scope), redeploy).await?);
            }
            let mut changed = last.context("no variable names given")?;
            changed.changed = keys;
            finish(&client, &change, changed, "removed").await
        }
        EnvCommand::Ls { name, scope, json } => {
            let scope = scope.map(|s| s.to_string());
            let list = client.env(&name, scope.as_deref()).await?;
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            if list.vars.is_empty() {
                writeln!(out, "no variables set for '{}'", list.server)?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "{:<20} {:<30} {:<30} {:<18}",
                "SCOPE", "NAME", "VALUE", "UPDATED"
            )?;
            for var in &list.vars {
                let value = var.value.as_deref().unwrap_or(MASKED);
                writeln!(
                    out,
                    "{:<20} {:<30} {:<30} {:<18}",
                    var.scope,
                    var.name,
                    value,
                    minute(var.updated_at)
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `KEY=VALUE` texts as assignments, every one a secret when `secret`; names are checked here
/// so that a typo fails before anything is uploaded.
pub(crate) fn assignments(texts: &[String], secret: bool) -> anyhow::Result<Vec<EnvAssignment>> {
    texts
        .iter()
        .map(|text| {
            let (name, value) = text.split_once('=').with_context(|| {
                let shown: String = text.chars().take(40).collect();
                format!("'{shown}' is not KEY=VALUE; write e.g. API_KEY=abc123")
            })?;
            let name: EnvKey = name.parse()?;
            Ok(EnvAssignment {
                name: name.to_string(),
                value: value.to_owned(),
                secret,
            })
        })
        .collect()
}

/// Prints what changed and follows the redeploy, if one was started.
async fn finish(
    client: &Client,
    args: &EnvChangeArgs,
    changed: EnvChanged,
    done: &str,
) -> anyhow::Result<ExitCode> {
    let mut deployment: Option<DeploymentView> = None;
    if let Some(started) = &changed.deployment {
        eprintln!(
            "{done} {} in the {} scope of '{}'; redeploying ({})",
            changed.changed.join(", "),
            changed.scope,
            changed.server,
            started.id
        );
        deployment =
            Some(deploy::wait(client, changed.server.as_str(), args.verbose, started).await?);
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let answer = EnvChanged {
            deployment: deployment.clone().or(changed.deployment.clone()),
            ..changed
        };
        writeln!(out, "{}", serde_json::to_string_pretty(&answer)?)?;
    } else if deployment.is_none() {
        writeln!(
            out,
            "{done} {} in the {} scope of '{}'; {}",
            changed.changed.join(", "),
            changed.scope,
            changed.server,
            changed.note
        )?;
    }
    let failed = deployment.is_some_and(|d| d.status == DeploymentStatus::Failed);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A time to the minute, UTC.
fn minute(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%MZ").to_string()
}
