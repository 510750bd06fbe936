//! `skyport policy`: add, remove and list a server's tool-level policy rules.

use std::io::Write;
use std::process::ExitCode;

use skyport_api::{CreatePolicy, PolicyView};

use crate::cli::{Connection, PolicyArgs, PolicyCommand};
use crate::config;

pub(crate) async fn policy(connection: &Connection, args: PolicyArgs) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let mut out = std::io::stdout().lock();
    match args.command {
        PolicyCommand::Ls { name } => {
            let rules = client.policies(&name).await?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&rules)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            if rules.is_empty() {
                writeln!(
                    out,
                    "'{name}' has no policy rules: every caller that may connect sees and uses everything."
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "{:<30} {:<6} {:<24} {:<32} {:<17} BY",
                "ID", "EFFECT", "SELECTOR", "CAPABILITY", "CREATED"
            )?;
            for rule in &rules {
                writeln!(
                    out,
                    "{:<30} {:<6} {:<24} {:<32} {:<17} {}",
                    rule.id,
                    rule.effect.as_str(),
                    rule.selector,
                    rule.capability,
                    rule.created_at.strftime("%Y-%m-%d %H:%MZ"),
                    rule.created_by.as_deref().unwrap_or("-"),
                )?;
            }
        }
        PolicyCommand::Add {
            name,
            effect,
            selector,
            capability,
        } => {
            let rule = CreatePolicy {
                effect,
                selector,
                capability,
            };
            let added = client.add_policy(&name, &rule).await?;
            print_rule(&mut out, args.json, "added to", &name, &added)?;
        }
        PolicyCommand::Rm { name, id } => {
            let removed = client.remove_policy(&name, &id).await?;
            print_rule(&mut out, args.json, "removed from", &name, &removed)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The rule a command added or removed: as JSON, or as written on the command line.
fn print_rule(
    out: &mut impl Write,
    json: bool,
    done: &str,
    server: &str,
    rule: &PolicyView,
) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(rule)?)?;
    } else {
        let (effect, selector, capability) =
            (rule.effect.as_str(), &rule.selector, &rule.capability);
        writeln!(
            out,
            "{done} '{server}': {effect} {selector} {capability} ({})",
            rule.id
        )?;
    }
    Ok(())
}
