//! The read-and-manage commands: `servers`, `deployments`, `logs`, `builds`. Each prints a
//! table for people or, with `--json`, the API's JSON for scripts.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;
use skyport_api::{DeploymentView, LogLineView, PromotionView, PutServer, ServerView};
use skyport_client::{Client, LogEvent, LogFilter};
use skyport_store::{Health, LogSource, LogStream, Timestamp};

use crate::cli::{
    BuildsArgs, BuildsCommand, Connection, DeploymentsArgs, LogsArgs, ServersArgs, ServersCommand,
};
use crate::sources::{self, SourceChange};
use crate::{config, deploy};

/// Pause before `logs -f` reopens a dropped stream.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

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
                    "{:<24} {:<9} {:<10} {:>9}  URL",
                    "NAME", "KIND", "STATE", "INSTANCES"
                )?;
                for server in &servers {
                    writeln!(
                        out,
                        "{:<24} {:<9} {:<10} {:>9}  {}{}",
                        server.name,
                        server.kind,
                        state(server),
                        server.instances.len(),
                        server.url,
                        sources::mark(server)
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
            writeln!(out, "kind:         {}", server.kind)?;
            writeln!(out, "url:          {}", server.url)?;
            writeln!(out, "state:        {}", state(&server))?;
            if let Some(external) = &server.external {
                crate::registry::print_external(&mut out, external)?;
            }
            match &server.live_deployment {
                Some(live) => {
                    writeln!(out, "live:         {live}")?;
                    let deployment = client.deployment(live.as_str()).await?;
                    show_build(&mut out, &deployment)?;
                }
                None => writeln!(out, "live:         none")?,
            }
            writeln!(out, "created:      {}", server.created_at)?;
            sources::print(&mut out, &server)?;
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
        ServersCommand::Set {
            name,
            settings,
            source,
        } => {
            let update = deploy::settings_update(&settings);
            let change = SourceChange::from_args(&source);
            if update.is_empty() && change.update.is_empty() && source.description.is_none() {
                anyhow::bail!(
                    "nothing to change: pass --description, --entrypoint, --source, --branch, --webhook-secret, --poll, --preview-ttl, --memory, --idle-timeout, --min-instances, --max-instances, --auth, --request-timeout or --identity-token"
                );
            }
            let body = PutServer {
                description: source.description.clone(),
                settings: (!update.is_empty()).then_some(update),
                source: (!change.update.is_empty()).then(|| change.update.clone()),
            };
            // PUT creates missing servers; `set` must only change existing ones.
            client.server(&name).await?;
            let server = client.put_server(&name, &body).await?;
            if args.json {
                // The secret made here exists nowhere else: it goes to stderr beside the JSON.
                if let Some(secret) = &change.generated {
                    eprintln!("webhook secret (shown once): {secret}");
                }
                return print_json(&server);
            }
            sources::print(&mut out, &server)?;
            print_settings(&mut out, &server)?;
            change.explain(&mut out, &server)?;
        }
        ServersCommand::Rm { name } => {
            client.remove_server(&name).await?;
            writeln!(out, "removed server '{name}'")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The live deployment's build: where it came from and what inspection found in it.
fn show_build(out: &mut impl Write, deployment: &DeploymentView) -> anyhow::Result<()> {
    writeln!(out, "source:       {}", deployment.source)?;
    if let Some(reference) = &deployment.git_ref {
        writeln!(out, "ref:          {reference}")?;
    }
    if let Some(commit) = &deployment.commit {
        writeln!(
            out,
            "commit:       {} {} ({}, {})",
            commit.short,
            commit.message,
            commit.author,
            commit.committed_at.strftime("%Y-%m-%d %H:%M UTC")
        )?;
    }
    if let Some(entrypoint) = &deployment.entrypoint {
        writeln!(out, "entrypoint:   {entrypoint}")?;
    }
    if let Some(python) = &deployment.python {
        writeln!(
            out,
            "python:       {python} ({} packages)",
            deployment.packages.len()
        )?;
    }
    let Some(inspection) = &deployment.inspection else {
        return Ok(());
    };
    if let Some(name) = inspection.pointer("/server/name").and_then(|n| n.as_str()) {
        let version = inspection
            .pointer("/server/version")
            .and_then(|v| v.as_str())
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        writeln!(out, "mcp server:   {name}{version}")?;
    }
    for (label, key, field) in [
        ("tools", "tools", "name"),
        ("resources", "resources", "uri"),
        ("templates", "resource_templates", "uri_template"),
        ("prompts", "prompts", "name"),
    ] {
        let items: Vec<&str> = inspection
            .get(key)
            .and_then(|v| v.as_array())
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.get(field).and_then(|f| f.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        if !items.is_empty() {
            writeln!(out, "{:<14}{}", format!("{label}:"), items.join(", "))?;
        }
    }
    Ok(())
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
    let chosen = |own: bool| if own { "" } else { " (platform default)" };
    writeln!(
        out,
        "gateway:      auth {}{}, request timeout {}s{}, identity token {}",
        if s.auth_effective { "on" } else { "off" },
        chosen(s.auth.is_some()),
        s.request_timeout_effective_seconds,
        chosen(s.request_timeout_seconds.is_some()),
        if s.identity_token { "on" } else { "off" },
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
    if let Some(external) = &server.external {
        // An external server runs elsewhere: its state is what the last check found.
        return match external.health {
            Health::Up => "up",
            Health::Down => "down",
            Health::Unknown => "unchecked",
        };
    }
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
    let promotions = client.promotions(&args.name).await?;
    if args.json {
        return print_json(&History {
            deployments,
            promotions,
        });
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<30} {:<9} {:<25} {:<12} {:<16} {:<10} DETAIL",
        "ID", "STATUS", "CREATED", "COMMIT", "AUTHOR", "BY"
    )?;
    for deployment in &deployments {
        writeln!(
            out,
            "{:<30} {:<9} {:<25} {:<12} {:<16} {:<10} {}",
            deployment.id,
            status(deployment),
            deployment.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            deployment.commit.as_ref().map_or("-", |c| c.short.as_str()),
            deployment
                .commit
                .as_ref()
                .map_or("-", |c| author_name(&c.author)),
            deployment.created_by.as_deref().unwrap_or("-"),
            detail(deployment)
        )?;
    }
    if !promotions.is_empty() {
        writeln!(out, "\nPromotions (newest first):")?;
        for promotion in &promotions {
            writeln!(
                out,
                "  {}  {:<8} {}{}  by {}",
                promotion.at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                promotion.kind.as_str(),
                promotion.deployment,
                promotion
                    .previous
                    .as_ref()
                    .map(|p| format!(" (was {p})"))
                    .unwrap_or_default(),
                promotion.by.as_deref().unwrap_or("-")
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `deployments N --json`: the deployments and the moves of the live pointer, newest first.
#[derive(Serialize)]
struct History {
    deployments: Vec<DeploymentView>,
    promotions: Vec<PromotionView>,
}

/// `Ada Lovelace` of `Ada Lovelace <ada@example.com>`.
fn author_name(author: &str) -> &str {
    author.split(" <").next().unwrap_or(author)
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
    match (&deployment.failure, &deployment.commit) {
        (Some(failure), _) => format!(
            "{}: {}",
            failure.kind.as_str(),
            failure.message.lines().next().unwrap_or_default()
        ),
        (None, Some(commit)) => commit.message.clone(),
        (None, None) => match deployment.phase {
            Some(phase) if deployment.finished_at.is_none() => phase.as_str().to_owned(),
            _ => deployment.entrypoint.clone().unwrap_or_default(),
        },
    }
}

pub(crate) async fn logs(connection: &Connection, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let deployment = args.build.clone().filter(|id| !id.is_empty());
    if args.follow
        && let Some(id) = &deployment
    {
        return follow_build(&client, id, args.json).await;
    }
    let mut filter = LogFilter {
        source: args.build.as_ref().map(|_| "build".to_owned()),
        deployment,
        after: None,
        limit: Some(args.lines),
        since: args.since.map(|ago| (Timestamp::now() - ago).to_string()),
    };
    if !args.follow {
        let page = client.logs(&args.name, &filter).await?;
        let mut out = std::io::stdout().lock();
        for line in &page.lines {
            print_line(&mut out, line, args.json)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Follows until Ctrl-C, reopening the stream where it broke (Skyport restarting, say).
    loop {
        let mut stream = client.follow_logs(&args.name, &filter).await?;
        if let Followed::Interrupted = print_events(&mut stream, args.json).await? {
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(cursor) = stream.cursor() {
            filter.after = Some(cursor);
        }
        if pause_or_interrupt().await {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// `logs N --build ID -f`: the build's log as it is written, until the build is over; exits
/// non-zero when the build failed.
async fn follow_build(client: &Client, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let mut cursor = None;
    loop {
        let mut stream = client.follow_build(id, cursor).await?;
        match print_events(&mut stream, json).await? {
            Followed::Interrupted => return Ok(ExitCode::SUCCESS),
            Followed::Ended(deployment) => {
                return Ok(match &deployment.failure {
                    Some(failure) => {
                        eprintln!(
                            "build {id} failed ({}): {}",
                            failure.kind.as_str(),
                            failure.message.lines().next().unwrap_or_default()
                        );
                        ExitCode::FAILURE
                    }
                    None => ExitCode::SUCCESS,
                });
            }
            Followed::Broken => {}
        }
        cursor = stream.cursor().or(cursor);
        if pause_or_interrupt().await {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// How printing a log stream stopped.
enum Followed {
    /// Ctrl-C.
    Interrupted,
    /// The build it followed is over.
    Ended(Box<DeploymentView>),
    /// The connection ended; reopen it from the last cursor.
    Broken,
}

/// Prints a stream's lines as they come until it ends, breaks or the user interrupts.
async fn print_events(
    stream: &mut skyport_client::LogStream,
    json: bool,
) -> anyhow::Result<Followed> {
    loop {
        let event = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(Followed::Interrupted),
            event = stream.next() => event,
        };
        match event {
            Ok(Some(LogEvent::Line(line))) => {
                let mut out = std::io::stdout().lock();
                print_line(&mut out, &line, json)?;
                out.flush()?;
            }
            Ok(Some(LogEvent::End(deployment))) => return Ok(Followed::Ended(deployment)),
            Ok(Some(LogEvent::Deployment(_))) => {}
            Ok(None) | Err(_) => return Ok(Followed::Broken),
        }
    }
}

/// Waits before reconnecting; true when the user pressed Ctrl-C meanwhile.
async fn pause_or_interrupt() -> bool {
    tokio::select! {
        _ = tokio::signal::ctrl_c() => true,
        () = tokio::time::sleep(RECONNECT_PAUSE) => false,
    }
}

pub(crate) async fn builds(connection: &Connection, args: BuildsArgs) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let mut out = std::io::stdout().lock();
    match args.command.unwrap_or(BuildsCommand::Ls { name: None }) {
        BuildsCommand::Ls { name } => {
            let builds: Vec<DeploymentView> = client
                .builds()
                .await?
                .into_iter()
                .filter(|b| name.as_deref().is_none_or(|n| b.server.as_str() == n))
                .collect();
            if args.json {
                return print_json(&builds);
            }
            if builds.is_empty() {
                writeln!(out, "No builds are queued or running.")?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "{:<30} {:<24} {:<9} {:<8} {:<25} SOURCE",
                "ID", "SERVER", "STATUS", "PHASE", "CREATED"
            )?;
            for build in &builds {
                writeln!(
                    out,
                    "{:<30} {:<24} {:<9} {:<8} {:<25} {}{}",
                    build.id,
                    build.server,
                    status(build),
                    build.phase.map_or("-", |p| p.as_str()),
                    build.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                    build.source,
                    build
                        .git_ref
                        .as_deref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                )?;
            }
        }
        BuildsCommand::Cancel { id } => {
            let deployment = client.cancel(&id).await?;
            if args.json {
                return print_json(&deployment);
            }
            writeln!(
                out,
                "cancelled build {} of '{}'",
                deployment.id, deployment.server
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
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
