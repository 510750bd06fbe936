//! `skyport providers add|ls|set|rm` and `skyport agents create|edit|ls|show|rm`: the
//! language-model providers agents use, and the agents. API keys are read from an
//! environment variable or standard input, never from the command line (which other users
//! of the machine can read), and are never printed.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use skyport_api::{
    AgentView, CreateAgent, CreateProvider, ProviderView, UpdateAgent, UpdateProvider,
};

use crate::access::read_stdin_line;
use crate::cli::{
    AgentFlags, AgentsArgs, AgentsCommand, ApiKeyFlags, Connection, ProvidersArgs, ProvidersCommand,
};
use crate::config;

pub(crate) async fn providers(
    connection: &Connection,
    args: ProvidersArgs,
) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let mut out = std::io::stdout().lock();
    let (done, provider) = match args.command {
        ProvidersCommand::Add {
            name,
            kind,
            base_url,
            key,
            model,
            timeout,
            retries,
            default,
        } => {
            let create = CreateProvider {
                name: name.parse()?,
                kind,
                base_url,
                api_key: api_key(&key)?,
                default_model: model,
                timeout_seconds: Some(timeout.as_secs().max(1)),
                retries: Some(retries),
                default,
            };
            ("added", client.create_provider(&create).await?)
        }
        ProvidersCommand::Set {
            name,
            base_url,
            key,
            clear_api_key,
            model,
            timeout,
            retries,
            default,
            not_default,
        } => {
            let api_key = match api_key(&key)? {
                Some(key) => Some(Some(key)),
                None if clear_api_key => Some(None),
                None => None,
            };
            let update = UpdateProvider {
                base_url,
                api_key,
                default_model: model.map(Some),
                timeout_seconds: timeout.map(|t| t.as_secs().max(1)),
                retries,
                default: (default || not_default).then_some(default),
            };
            ("changed", client.update_provider(&name, &update).await?)
        }
        ProvidersCommand::Ls => {
            let providers = client.providers().await?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&providers)?)?;
            } else {
                print_providers(&mut out, &providers)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        ProvidersCommand::Rm { name } => {
            client.remove_provider(&name).await?;
            writeln!(out, "Provider '{name}' removed.")?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&provider)?)?;
    } else {
        writeln!(out, "Provider '{}' {done}.", provider.name)?;
        print_providers(&mut out, &[provider])?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn agents(connection: &Connection, args: AgentsArgs) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let mut out = std::io::stdout().lock();
    let (done, agent) = match args.command {
        AgentsCommand::Create {
            name,
            provider,
            flags,
        } => {
            let create = CreateAgent {
                name: name.parse()?,
                instructions: instructions(&flags)?.unwrap_or_default(),
                description: flags.description.unwrap_or_default(),
                provider: provider.parse()?,
                model: flags.model,
                servers: parse_servers(&flags.servers)?,
                step_limit: flags.step_limit,
                allowed: flags.allow,
            };
            ("created", client.create_agent(&create).await?)
        }
        AgentsCommand::Edit {
            name,
            provider,
            flags,
            default_model,
            clear_allow,
        } => {
            let instructions = instructions(&flags)?;
            let model = match flags.model {
                Some(model) => Some(Some(model)),
                None if default_model => Some(None),
                None => None,
            };
            let allowed = if clear_allow {
                Some(Vec::new())
            } else {
                (!flags.allow.is_empty()).then(|| flags.allow.clone())
            };
            let update = UpdateAgent {
                instructions,
                description: flags.description,
                provider: provider.map(|p| p.parse()).transpose()?,
                model,
                servers: (!flags.servers.is_empty())
                    .then(|| parse_servers(&flags.servers))
                    .transpose()?,
                step_limit: flags.step_limit,
                allowed,
            };
            ("changed", client.update_agent(&name, &update).await?)
        }
        AgentsCommand::Ls => {
            let agents = client.agents().await?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&agents)?)?;
            } else {
                print_agents(&mut out, &agents)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        AgentsCommand::Show { name } => ("", client.agent(&name).await?),
        AgentsCommand::Rm { name } => {
            client.remove_agent(&name).await?;
            writeln!(out, "Agent '{name}' removed, with its conversations.")?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&agent)?)?;
    } else {
        if !done.is_empty() {
            writeln!(out, "Agent '{}' {done}.", agent.name)?;
        }
        print_agent(&mut out, &agent)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The API key the flags point at, if any.
fn api_key(flags: &ApiKeyFlags) -> anyhow::Result<Option<String>> {
    match (&flags.api_key_env, flags.api_key_stdin) {
        (Some(var), _) => Ok(Some(std::env::var(var).with_context(|| {
            format!("--api-key-env {var}: the variable is not set (or not UTF-8)")
        })?)),
        (None, true) => Ok(Some(read_stdin_line()?)),
        (None, false) => Ok(None),
    }
}

/// The instructions given inline or in a file, if any.
fn instructions(flags: &AgentFlags) -> anyhow::Result<Option<String>> {
    match (&flags.instructions, &flags.instructions_file) {
        (Some(text), _) => Ok(Some(text.clone())),
        (None, Some(file)) => std::fs::read_to_string(file)
            .map(Some)
            .with_context(|| format!("cannot read --instructions-file {}", file.display())),
        (None, None) => Ok(None),
    }
}

fn parse_servers(servers: &[String]) -> anyhow::Result<Vec<skyport_store::ServerName>> {
    servers
        .iter()
        .map(|s| s.parse().map_err(anyhow::Error::from))
        .collect()
}

fn print_providers(out: &mut impl Write, providers: &[ProviderView]) -> anyhow::Result<()> {
    if providers.is_empty() {
        writeln!(
            out,
            "No providers yet. Add one: skyport providers add NAME --kind openai --base-url URL --api-key-env VAR --model MODEL --default"
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<20} {:<10} {:<8} {:<4} {:<24} {:>8} {:>7}  BASE URL",
        "NAME", "KIND", "DEFAULT", "KEY", "MODEL", "TIMEOUT", "RETRIES"
    )?;
    for p in providers {
        writeln!(
            out,
            "{:<20} {:<10} {:<8} {:<4} {:<24} {:>8} {:>7}  {}",
            p.name.as_str(),
            p.kind.as_str(),
            if p.default { "yes" } else { "" },
            if p.has_api_key { "set" } else { "-" },
            p.default_model.as_deref().unwrap_or("-"),
            format!("{}s", p.timeout_seconds),
            p.retries,
            p.base_url
        )?;
    }
    Ok(())
}

fn print_agents(out: &mut impl Write, agents: &[AgentView]) -> anyhow::Result<()> {
    if agents.is_empty() {
        writeln!(
            out,
            "No agents you may chat with. An org admin creates one: skyport agents create NAME --provider P --server S"
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:<16} {:<24} {:>5}  SERVERS",
        "NAME", "PROVIDER", "MODEL", "STEPS"
    )?;
    for a in agents {
        let servers: Vec<&str> = a.servers.iter().map(|s| s.as_str()).collect();
        writeln!(
            out,
            "{:<24} {:<16} {:<24} {:>5}  {}",
            a.name.as_str(),
            a.provider.as_str(),
            a.effective_model.as_deref().unwrap_or("-"),
            a.step_limit,
            servers.join(", ")
        )?;
    }
    Ok(())
}

fn print_agent(out: &mut impl Write, agent: &AgentView) -> anyhow::Result<()> {
    writeln!(out, "{}", agent.name)?;
    if !agent.description.is_empty() {
        writeln!(out, "  {}", agent.description)?;
    }
    let model = match (&agent.model, &agent.effective_model) {
        (Some(model), _) => model.clone(),
        (None, Some(default)) => format!("{default} (the provider's default)"),
        (None, None) => "none: set --model, or a default model on the provider".to_owned(),
    };
    writeln!(out, "  {:<14}{}", "provider:", agent.provider)?;
    writeln!(out, "  {:<14}{model}", "model:")?;
    writeln!(out, "  {:<14}{}", "step limit:", agent.step_limit)?;
    let servers: Vec<&str> = agent.servers.iter().map(|s| s.as_str()).collect();
    writeln!(
        out,
        "  {:<14}{}",
        "servers:",
        if servers.is_empty() {
            "none (each was removed)".to_owned()
        } else {
            servers.join(", ")
        }
    )?;
    writeln!(
        out,
        "  {:<14}{}",
        "who may chat:",
        if agent.allowed.is_empty() {
            "every signed-in user".to_owned()
        } else {
            agent.allowed.join(", ")
        }
    )?;
    if !agent.instructions.is_empty() {
        writeln!(out, "  instructions:")?;
        for line in agent.instructions.lines() {
            writeln!(out, "    {line}")?;
        }
    }
    Ok(())
}
