//! `skyport registry`: the catalog's external servers.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use skyport_api::{CreateExternal, ExternalView, ServerView};

use crate::cli::{Connection, RegistryArgs, RegistryCommand, RemoteCredentials};
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
            credentials,
            description,
        } => {
            let request = CreateExternal {
                name,
                url: remote,
                description,
                headers: credentials.headers.clone(),
                bearer: bearer(&credentials)?,
            };
            let server = client.add_external(&request).await?;
            print_added(&mut out, args.json, &server)?;
        }
        RegistryCommand::Import {
            file,
            name,
            credentials,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let imported = skyport_registry::import(&text)?;
            let bearer = bearer(&credentials)?;
            let given = |header: &str| {
                (header.eq_ignore_ascii_case("authorization") && bearer.is_some())
                    || credentials.headers.iter().any(|h| {
                        h.split(':')
                            .next()
                            .is_some_and(|n| n.trim().eq_ignore_ascii_case(header))
                    })
            };
            let missing: Vec<&str> = imported
                .needs
                .iter()
                .map(String::as_str)
                .filter(|h| !given(h))
                .collect();
            if !missing.is_empty() {
                anyhow::bail!(
                    "the server needs the header(s) {} with your values: add --header 'NAME: VALUE' (or --bearer-env VAR for Authorization)",
                    missing.join(", ")
                );
            }
            let mut headers = imported.headers;
            headers.retain(|h| !credentials.headers.iter().any(|c| same_name(c, h)));
            headers.extend(credentials.headers.iter().cloned());
            let request = CreateExternal {
                name: name.unwrap_or(imported.name),
                url: imported.url,
                description: Some(imported.description).filter(|d| !d.is_empty()),
                headers,
                bearer,
            };
            let server = client.add_external(&request).await?;
            print_added(&mut out, args.json, &server)?;
        }
        RegistryCommand::Search { words } => {
            let results = client.search(&words).await?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&results)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            if results.servers.is_empty() {
                writeln!(out, "Nothing you can see matches '{words}'.")?;
            }
            for found in &results.servers {
                writeln!(out, "{} ({})  {}", found.name, found.kind, found.url)?;
                if !found.description.is_empty() {
                    writeln!(out, "    {}", found.description)?;
                }
                for tool in &found.tools {
                    writeln!(out, "    tool {}: {}", tool.name, tool.description)?;
                }
            }
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

/// The bearer token the flags point at, if any.
fn bearer(credentials: &RemoteCredentials) -> anyhow::Result<Option<String>> {
    match (&credentials.bearer_env, credentials.bearer_stdin) {
        (Some(var), _) => Ok(Some(std::env::var(var).with_context(|| {
            format!("--bearer-env {var}: the variable is not set (or not UTF-8)")
        })?)),
        (None, true) => Ok(Some(access::read_stdin_line()?)),
        (None, false) => Ok(None),
    }
}

/// Whether two `Name: value` headers have the same name.
fn same_name(a: &str, b: &str) -> bool {
    let name = |h: &str| {
        h.split(':')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    };
    name(a) == name(b)
}

fn print_added(out: &mut impl Write, json: bool, server: &ServerView) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(server)?)?;
    } else {
        writeln!(
            out,
            "Added external server '{}'; clients connect to {}",
            server.name, server.url
        )?;
    }
    Ok(())
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
