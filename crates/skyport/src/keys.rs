//! `skyport keys`: create (printing the secret once), list and revoke API keys; rotate the key
//! that signs identity tokens.

use std::io::Write;
use std::process::ExitCode;

use skyport_api::{CreateKey, KeyView};
use skyport_store::Timestamp;

use crate::cli::{Connection, KeysArgs, KeysCommand};
use crate::config;

pub(crate) async fn keys(connection: &Connection, args: KeysArgs) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let mut out = std::io::stdout().lock();
    match args.command.unwrap_or(KeysCommand::Ls) {
        KeysCommand::Ls => {
            let keys = client.keys().await?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&keys)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "{:<30} {:<20} {:<10} {:<8} {:<20} {:<20} {:<20}",
                "ID", "NAME", "PRINCIPAL", "STATE", "CREATED", "EXPIRES", "LAST USED"
            )?;
            for key in &keys {
                writeln!(
                    out,
                    "{:<30} {:<20} {:<10} {:<8} {:<20} {:<20} {:<20}",
                    key.id,
                    key.name,
                    key.principal,
                    key.state,
                    minute(Some(key.created_at)),
                    key.expires_at
                        .map_or_else(|| "never".to_owned(), |at| minute(Some(at))),
                    minute(key.last_used_at),
                )?;
            }
        }
        KeysCommand::Create {
            name,
            expires,
            principal,
        } => {
            let request = CreateKey {
                name,
                expires_in: expires.map(|d| d.as_secs().max(1)),
                principal,
            };
            let created = client.create_key(&request).await?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&created)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(out, "{}", created.secret)?;
            // The note goes to stderr so that `KEY=$(skyport keys create)` captures the secret.
            eprintln!(
                "created key '{}' ({}) acting as {}{}; the secret above will not be shown again. \
                 Send it as `Authorization: Bearer …`",
                created.key.name,
                created.key.id,
                created.key.principal,
                expiry(&created.key)
            );
        }
        KeysCommand::Revoke { key } => {
            let revoked = client.revoke_key(&key).await?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&revoked)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(out, "revoked key '{}' ({})", revoked.name, revoked.id)?;
        }
        KeysCommand::RotateSigning => {
            let rotated = client.rotate_signing_key().await?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&rotated)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "identity tokens are signed with key {} from now on",
                rotated.kid
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A time to the minute, UTC, or `-` for none.
fn minute(at: Option<Timestamp>) -> String {
    at.map_or_else(
        || "-".to_owned(),
        |t| t.strftime("%Y-%m-%d %H:%MZ").to_string(),
    )
}

fn expiry(key: &KeyView) -> String {
    key.expires_at
        .map(|at| format!(", valid until {}", minute(Some(at))))
        .unwrap_or_default()
}
