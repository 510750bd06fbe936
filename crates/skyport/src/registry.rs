//! `skyport registry`: the catalog's external servers.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use skyport_api::{CreateExternal, ExternalView, ServerView};

use crate::cli::{Connection, RegistryArgs, RegistryCommand};
use crate::{access, config};

pub(crate) async fn registry(
    connection: &Connection,
    args: RegistryArgs,
) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let mut out = std::io::stdout().lock();
    match args.command {
        RegistryCommand::AddExternal {
            name,
            remote,
            headers,
            bearer_env,
            bearer_stdin,
            description,
        } => {
            let bearer = match (bearer_env, bearer_stdin) {
                (Some(var), _) => Some(std::env::var(&var).with_context(|| {
                    format!("--bearer-env {var}: the variable is not set (or not UTF-8)")
                })?),
                (None, true) => Some(access::read_stdin_line()?),
                (None, false) => None,
            };
            let request = CreateExternal {
                name,
                url: remote,
                description,
                headers,
                bearer,
            };
            let server = client.add_external(&request).await?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&server)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "Added external server '{}'; clients connect to {}",
                server.name, server.url
            )?;
        }
        RegistryCommand::Check { name } => {
            let server = client.check_external(&name).await?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&server)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            print_summary(&mut out, &server)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(out: &mut impl Write, server: &ServerView) -> anyhow::Result<()> {
    writeln!(out, "name:         {}", server.name)?;
    writeln!(out, "url:          {}", server.url)?;
    if let Some(external) = &server.external {
        print_external(out, external)?;
    }
    Ok(())
}

/// The lines `servers show` and `registry check` print about an external server.
pub(crate) fn print_external(out: &mut impl Write, external: &ExternalView) -> std::io::Result<()> {
    writeln!(out, "remote:       {}", external.url)?;
    if !external.headers.is_empty() {
        writeln!(
            out,
            "headers:      {} (values hidden)",
            external.headers.join(", ")
        )?;
    }
    let checked = external
        .checked_at
        .map_or_else(|| "never checked".to_owned(), |at| format!("checked {at}"));
    writeln!(
        out,
        "health:       {} ({checked})",
        external.health.as_str()
    )?;
    if let Some(error) = &external.health_error {
        writeln!(out, "last error:   {error}")?;
    }
    let names: Vec<&str> = external.tools.iter().map(|t| t.name.as_str()).collect();
    writeln!(
        out,
        "tools:        {}",
        if names.is_empty() {
            "-".to_owned()
        } else {
            names.join(", ")
        }
    )?;
    Ok(())
}
