//! `skyport deploy`: pack the folder, upload it, start the build, follow it to the end.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use skyport_api::{CreateDeployment, DeploymentView, SettingsUpdate, SourceSpec};
use skyport_client::{Client, LogFilter};
use skyport_store::{DeploymentStatus, ServerName};

use crate::cli::{Connection, DeployArgs, SettingsArgs};
use crate::config;
use crate::progress::Progress;

/// How often a waiting deploy asks for news.
const POLL: Duration = Duration::from_millis(100);
/// Build log lines shown when a build fails.
const FAILED_LOG_LINES: usize = 25;
/// A build that succeeded is promoted at once; longer than this means something is wrong.
const PROMOTE_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) async fn deploy(connection: &Connection, args: DeployArgs) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let request = Deploy {
        source: &args.source,
        name: &args.name,
        entrypoint: args.entrypoint.as_deref(),
        description: args.description.as_deref(),
        verbose: args.verbose,
        settings: settings_update(&args.settings),
    };
    let deployment = if args.no_wait {
        start(&client, &request).await?
    } else {
        run(&client, &request).await?
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&deployment)?)?;
    }
    if deployment.status == DeploymentStatus::Failed {
        return Ok(ExitCode::FAILURE);
    }
    if !args.json {
        let server = client.server(deployment.server.as_str()).await?;
        writeln!(out, "{}", server.url)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One deploy request.
pub(crate) struct Deploy<'a> {
    pub(crate) source: &'a Path,
    pub(crate) name: &'a str,
    pub(crate) entrypoint: Option<&'a str>,
    pub(crate) description: Option<&'a str>,
    pub(crate) verbose: bool,
    pub(crate) settings: SettingsUpdate,
}

/// The API's form of the settings flags.
pub(crate) fn settings_update(args: &SettingsArgs) -> SettingsUpdate {
    SettingsUpdate {
        memory_bytes: args.memory,
        idle_timeout_seconds: args.idle_timeout.map(|d| d.as_secs().max(1)),
        min_instances: args.min_instances,
        max_instances: args.max_instances,
    }
}

/// Deploys and waits for the build; a failed build is returned, not an error, so callers can
/// show it their way. Progress and the failure go to stderr.
pub(crate) async fn run(client: &Client, request: &Deploy<'_>) -> anyhow::Result<DeploymentView> {
    let deployment = start(client, request).await?;
    let deployment = follow(client, request, deployment).await?;
    match (&deployment.status, &deployment.failure) {
        (DeploymentStatus::Failed, Some(failure)) => {
            eprintln!(
                "error: deploy of '{}' failed ({}):\n{}",
                request.name,
                failure.kind.as_str(),
                indent(&failure.message)
            );
            eprintln!(
                "The previous deployment (if any) is still serving. Full build log: skyport logs {} --build {}",
                request.name, deployment.id
            );
        }
        _ => eprintln!("✓ '{}' is live ({})", request.name, deployment.id),
    }
    Ok(deployment)
}

async fn start(client: &Client, request: &Deploy<'_>) -> anyhow::Result<DeploymentView> {
    // Checked here too so a bad name fails before anything is packed and uploaded.
    let name: ServerName = request.name.parse()?;
    let packed = skyport_client::pack(request.source)?;
    let upload = client
        .upload(packed.tarball)
        .await
        .context("cannot upload the source")?;
    let body = CreateDeployment {
        source: SourceSpec::Upload(upload.id),
        entrypoint: request.entrypoint.map(str::to_owned),
        description: request.description.map(str::to_owned),
        settings: (!request.settings.is_empty()).then(|| request.settings.clone()),
    };
    Ok(client.deploy(name.as_str(), &body).await?)
}

/// Polls the deployment and its build log until the build ends.
async fn follow(
    client: &Client,
    request: &Deploy<'_>,
    mut deployment: DeploymentView,
) -> anyhow::Result<DeploymentView> {
    let mut progress = Progress::new();
    let mut log = LogFilter {
        source: Some("build".to_owned()),
        deployment: Some(deployment.id.to_string()),
        after: Some(0),
        limit: Some(1000),
        since: None,
    };
    let mut recent: Vec<String> = Vec::new();
    let mut ready_since: Option<std::time::Instant> = None;
    loop {
        if let Some(phase) = deployment.phase {
            progress.enter(phase);
        }
        let page = client.logs(request.name, &log).await?;
        log.after = Some(page.cursor);
        for line in page.lines {
            if request.verbose {
                progress.line(&line.line);
            }
            recent.push(line.line);
        }
        if recent.len() > FAILED_LOG_LINES {
            recent.drain(..recent.len() - FAILED_LOG_LINES);
        }
        match deployment.status {
            // Promotion follows right after the build succeeds; "deployed" means live.
            DeploymentStatus::Ready if deployment.live => {
                progress.finish(true);
                return Ok(deployment);
            }
            DeploymentStatus::Ready
                if ready_since
                    .get_or_insert_with(std::time::Instant::now)
                    .elapsed()
                    > PROMOTE_TIMEOUT =>
            {
                progress.finish(false);
                bail!(
                    "deployment {} was built but did not go live within {PROMOTE_TIMEOUT:?}; see `skyport deployments {}`",
                    deployment.id,
                    request.name
                );
            }
            DeploymentStatus::Ready => {}
            DeploymentStatus::Failed => {
                progress.finish(false);
                if !request.verbose && !recent.is_empty() {
                    eprintln!("Build log (last {} lines):", recent.len());
                    for line in &recent {
                        eprintln!("  {line}");
                    }
                }
                return Ok(deployment);
            }
            DeploymentStatus::Queued | DeploymentStatus::Building => {}
        }
        tokio::time::sleep(POLL).await;
        deployment = client.deployment(deployment.id.as_str()).await?;
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
