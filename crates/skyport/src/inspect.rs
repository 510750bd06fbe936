//! The read-and-manage commands: `servers`, `deployments`, `logs`. Each prints a table for
//! people or, with `--json`, the API's JSON for scripts.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;
use skyport_api::{DeploymentView, LogLineView, PutServer, ServerView};
use skyport_client::LogFilter;
use skyport_store::{LogSource, LogStream, Timestamp};

use crate::cli::{Connection, DeploymentsArgs, LogsArgs, ServersArgs, ServersCommand};
use crate::{config, deploy};

/// How often `logs -f` asks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(300);

pub(crate) async fn servers(
    connection: &Connection,
    args: ServersArgs,
) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let mut out = std::io::stdout().lock();
    match args.command.unwrap_or(ServersCommand::Ls) {
        ServersCommand::Ls => {
            let servers = client.servers().await?;
            if args.json {
                return print_json(&servers);
            }
            if servers.is_empty() {
                writeln!(
                    out,
                    "No servers yet. Deploy one: skyport deploy ./my-server --name my-server"
                )?;
            } else {
                writeln!(
                    out,
                    "{:<24} {:<10} {:>9}  URL",
                    "NAME", "STATE", "INSTANCES"
                )?;
                for server in &servers {
                    writeln!(
                        out,
                        "{:<24} {:<10} {:>9}  {}",
                        server.name,
                        state(server),
                        server.instances.len(),
                        server.url
                    )?;
                }
            }
        }
        ServersCommand::Show { name } => {
            let server = client.server(&name).await?;
            if args.json {
                return print_json(&server);
            }
            writeln!(out, "name:         {}", server.name)?;
            writeln!(out, "id:           {}", server.id)?;
            if !server.description.is_empty() {
                writeln!(out, "description:  {}", server.description)?;
            }
            writeln!(out, "url:          {}", server.url)?;
            writeln!(out, "state:        {}", state(&server))?;
            match &server.live_deployment {
                Some(live) => writeln!(out, "live:         {live}")?,
                None => writeln!(out, "live:         none")?,
            }
            writeln!(out, "created:      {}", server.created_at)?;
            print_settings(&mut out, &server)?;
            print_figures(&mut out, &server)?;
            for instance in &server.instances {
                writeln!(
                    out,
                    "instance:     {} pid {} since {} ({} in flight, {} memory)",
                    instance.id,
                    instance.pid.map_or("?".to_owned(), |p| p.to_string()),
                    instance.started_at,
                    instance.in_flight,
                    instance.memory_bytes.map_or("?".to_owned(), mib)
                )?;
            }
        }
        ServersCommand::Set { name, settings } => {
            let update = deploy::settings_update(&settings);
            if update.is_empty() {
                anyhow::bail!(
                    "nothing to change: pass --memory, --idle-timeout, --min-instances or --max-instances"
                );
            }
            let body = PutServer {
                description: None,
                settings: Some(update),
            };
            // PUT creates missing servers; `set` must only change existing ones.
            client.server(&name).await?;
            let server = client.put_server(&name, &body).await?;
            if args.json {
                return print_json(&server);
            }
            print_settings(&mut out, &server)?;
        }
        ServersCommand::Rm { name } => {
            client.remove_server(&name).await?;
            writeln!(out, "removed server '{name}'")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_settings(out: &mut impl Write, server: &ServerView) -> anyhow::Result<()> {
    let s = &server.settings;
    writeln!(
        out,
        "settings:     memory {} per instance, idle timeout {}s, instances {}..{}",
        mib(s.memory_bytes),
        s.idle_timeout_seconds,
        s.min_instances,
        s.max_instances
    )?;
    Ok(())
}

fn print_figures(out: &mut impl Write, server: &ServerView) -> anyhow::Result<()> {
    let m = &server.metrics;
    writeln!(
        out,
        "instances:    {} running, {} memory",
        m.instances,
        mib(m.memory_bytes)
    )?;
    writeln!(
        out,
        "cold starts:  {} (mean {:.0} ms), {} failed",
        m.cold_starts,
        m.cold_start_mean_seconds * 1000.0,
        m.failed_starts
    )?;
    writeln!(
        out,
        "requests:     {} (mean {:.1} ms), {} errors",
        m.requests,
        m.request_mean_seconds * 1000.0,
        m.errors
    )?;
    writeln!(
        out,
        "exits:        {} crashes, {} out-of-memory kills",
        m.crashes, m.oom_kills
    )?;
    Ok(())
}

fn mib(bytes: u64) -> String {
    format!("{}M", bytes / (1024 * 1024))
}

fn state(server: &ServerView) -> &'static str {
    match (&server.live_deployment, server.instances.is_empty()) {
        (None, _) => "no-deploy",
        (Some(_), true) => "idle",
        (Some(_), false) => "running",
    }
}

pub(crate) async fn deployments(
    connection: &Connection,
    args: DeploymentsArgs,
) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let deployments = client.deployments(&args.name).await?;
    if args.json {
        return print_json(&deployments);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<30} {:<9} {:<25} DETAIL", "ID", "STATUS", "CREATED")?;
    for deployment in &deployments {
        writeln!(
            out,
            "{:<30} {:<9} {:<25} {}",
            deployment.id,
            status(deployment),
            deployment.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            detail(deployment)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn status(deployment: &DeploymentView) -> String {
    if deployment.live {
        "live".to_owned()
    } else {
        serde_json::to_value(deployment.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

fn detail(deployment: &DeploymentView) -> String {
    match &deployment.failure {
        Some(failure) => format!(
            "{}: {}",
            failure.kind.as_str(),
            failure.message.lines().next().unwrap_or_default()
        ),
        None => deployment.entrypoint.clone().unwrap_or_default(),
    }
}

pub(crate) async fn logs(connection: &Connection, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let mut filter = LogFilter {
        source: args.build.as_ref().map(|_| "build".to_owned()),
        deployment: args.build.clone().filter(|id| !id.is_empty()),
        after: None,
        limit: Some(args.lines),
        since: args.since.map(|ago| (Timestamp::now() - ago).to_string()),
    };
    loop {
        let page = client.logs(&args.name, &filter).await?;
        {
            let mut out = std::io::stdout().lock();
            for line in &page.lines {
                print_line(&mut out, line, args.json)?;
            }
            out.flush()?;
        }
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        filter.after = Some(page.cursor);
        filter.limit = Some(1000);
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(FOLLOW_POLL) => {}
        }
    }
}

fn print_line(out: &mut impl Write, line: &LogLineView, json: bool) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(line)?)?;
        return Ok(());
    }
    let source = match (line.source, line.stream) {
        (LogSource::Build, _) => "build",
        (LogSource::Instance, LogStream::Skyport) => "skyport",
        (LogSource::Instance, LogStream::Stdout) => "stdout",
        (LogSource::Instance, LogStream::Stderr) => "stderr",
    };
    writeln!(
        out,
        "{} {:<7} {}",
        line.at.strftime("%H:%M:%S%.3f"),
        source,
        line.line
    )?;
    Ok(())
}

fn print_json(value: &impl Serialize) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string_pretty(value)?)?;
    Ok(ExitCode::SUCCESS)
}
