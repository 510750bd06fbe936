//! `skyport connect N --client K [--write]`: the MCP client configuration for a server's URL,
//! printed, or merged into the client's configuration file (the file's previous content is
//! kept as `FILE.bak`; other servers and settings in it stay as they were).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use skyport_mcp::clients::{self, ClientKind};

use crate::cli::{ConnectArgs, Connection};
use crate::config;

pub(crate) async fn connect(
    connection: &Connection,
    args: ConnectArgs,
) -> anyhow::Result<ExitCode> {
    let kind = ClientKind::from_slug(&args.client).with_context(|| {
        let known: Vec<&str> = ClientKind::ALL.iter().map(|k| k.slug()).collect();
        format!(
            "unknown client '{}': use one of {}",
            args.client,
            known.join(", ")
        )
    })?;
    let server = config::client(connection).server(&args.name).await?;
    let name = server.name.to_string();
    let key = args.key.as_deref();
    if key.is_none() && server.settings.auth_effective {
        eprintln!(
            "note: '{name}' requires a key; pass --key (create one with `skyport keys create {name}-client`)"
        );
    }
    if !args.write {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&kind.document(&name, &server.url, key))?
        )?;
        if kind == ClientKind::ClaudeCode {
            writeln!(
                out,
                "\nor run: {}",
                clients::claude_code_command(&name, &server.url)
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let path = match args.config {
        Some(path) => path,
        None => default_file(kind)?,
    };
    write(kind, &path, &name, &server.url, key)?;
    writeln!(
        std::io::stdout().lock(),
        "✓ added '{name}' to {}",
        path.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Merges the server into the file at `path` (created when absent), keeping a backup.
fn write(
    kind: ClientKind,
    path: &Path,
    name: &str,
    url: &str,
    key: Option<&str>,
) -> anyhow::Result<()> {
    let current = match std::fs::read_to_string(path) {
        Ok(text) => {
            let backup = PathBuf::from(format!("{}.bak", path.display()));
            std::fs::write(&backup, &text)
                .with_context(|| format!("cannot write the backup {}", backup.display()))?;
            if text.trim().is_empty() {
                serde_json::json!({})
            } else {
                serde_json::from_str(&text).with_context(|| {
                    format!(
                        "{} is not JSON; fix or move it, then run this again",
                        path.display()
                    )
                })?
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let merged = kind.merge(current, name, url, key).with_context(|| {
        format!(
            "{} does not hold a JSON object; fix or move it, then run this again",
            path.display()
        )
    })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(
        path,
        format!("{}\n", serde_json::to_string_pretty(&merged)?),
    )
    .with_context(|| format!("cannot write {}", path.display()))
}

/// Where each client reads its servers from: per user for the desktop apps, the current
/// project for Claude Code (`.mcp.json`) and VS Code (`.vscode/mcp.json`).
fn default_file(kind: ClientKind) -> anyhow::Result<PathBuf> {
    let home = || dirs::home_dir().context("cannot find the home directory: pass --config FILE");
    Ok(match kind {
        ClientKind::ClaudeDesktop => {
            let dir = if cfg!(target_os = "macos") {
                home()?.join("Library/Application Support")
            } else {
                dirs::config_dir()
                    .context("cannot find the config directory: pass --config FILE")?
            };
            dir.join("Claude/claude_desktop_config.json")
        }
        ClientKind::ClaudeCode => PathBuf::from(".mcp.json"),
        ClientKind::Cursor => home()?.join(".cursor/mcp.json"),
        ClientKind::VsCode => PathBuf::from(".vscode/mcp.json"),
    })
}
