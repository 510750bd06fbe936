//! `skyport deploy`: hand the source to Skyport (a folder is packed and uploaded; a git
//! repository is fetched by Skyport itself), start the build, and follow its live log stream
//! to the end.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use skyport_api::{
    CreateDeployment, DeploymentView, EnvAssignment, GitSpec, LogLineView, PackageSpec,
    SettingsUpdate, SourceSpec,
};
use skyport_build::PackageSource;
use skyport_client::{Client, ClientError, LogEvent};
use skyport_store::{DeploymentStatus, FailureKind, ServerName};

use crate::cli::{AuthArg, Connection, DeployArgs, Inherit, OnOff, SettingsArgs};
use crate::progress::Progress;
use crate::{config, env};

/// Build log lines shown when a build fails.
const FAILED_LOG_LINES: usize = 25;
/// A dropped log stream is reopened this many times before giving up.
const MAX_RECONNECTS: u32 = 5;
/// Pause before reopening a dropped log stream.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

pub(crate) async fn deploy(connection: &Connection, args: DeployArgs) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let source = match args.package {
        Some(index) => SourceArg::server_json(&args.source, index, &args.args)?,
        None => SourceArg::parse_with(&args.source, args.entrypoint.as_deref(), &args.args)?,
    };
    let source = match (source, args.port_env.as_deref()) {
        (
            SourceArg::Package {
                package,
                required_env,
            },
            Some(variable),
        ) => SourceArg::Package {
            package: package.serving_http_on(variable)?,
            required_env,
        },
        (_, Some(_)) => bail!("--port-env is for packaged servers (pypi:NAME, npm:NAME)"),
        (source, None) => source,
    };
    let request = Deploy {
        source: &source,
        reference: args.reference.as_deref(),
        branch: args.branch.as_deref(),
        name: &args.name,
        entrypoint: args.entrypoint.as_deref(),
        description: args.description.as_deref(),
        verbose: args.verbose,
        settings: settings_update(&args.settings),
        env: env::assignments(&args.env, args.secret)?,
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

/// What `skyport deploy SOURCE` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SourceArg {
    /// A folder on this machine, packed and uploaded.
    Folder(PathBuf),
    /// A git repository Skyport fetches: a URL, `user@host:path`, or a bare repository's
    /// absolute path.
    Git(String),
    /// A package Skyport installs from PyPI or npm, with the variables it needs.
    Package {
        /// The package, its command and its arguments.
        package: PackageSource,
        /// Variables the deploy needs set (declared required by a server.json).
        required_env: Vec<String>,
    },
}

impl SourceArg {
    /// A package (`pypi:…`, `npm:…`, with `command` and `args`), else what [`SourceArg::parse`]
    /// finds; arguments after `--` are only for packages.
    pub(crate) fn parse_with(
        text: &str,
        command: Option<&str>,
        args: &[String],
    ) -> anyhow::Result<SourceArg> {
        if let Some(package) = PackageSource::parse(text, command, args.to_vec()) {
            return Ok(SourceArg::Package {
                package: package?,
                required_env: Vec::new(),
            });
        }
        if !args.is_empty() {
            bail!(
                "arguments after -- are for packaged servers (pypi:NAME, npm:NAME); {text} is not one"
            );
        }
        SourceArg::parse(text)
    }

    /// Package `index` of the server.json at `path`, with `extra` arguments after its own.
    pub(crate) fn server_json(
        path: &str,
        index: usize,
        extra: &[String],
    ) -> anyhow::Result<SourceArg> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--package reads a server.json, but {path} cannot be read"))?;
        let declared = skyport_registry::declared_package(&text, index)?;
        let mut args = declared.args;
        args.extend(extra.iter().cloned());
        let package = PackageSource::new(
            declared.registry.parse()?,
            &declared.identifier,
            declared.version.as_deref(),
            None,
            args,
        )?;
        let package = match &declared.port_env {
            Some(variable) => package.serving_http_on(variable)?,
            None => package,
        };
        let required_env = declared
            .variables
            .iter()
            .filter(|v| v.required)
            .map(|v| v.name.clone())
            .collect();
        Ok(SourceArg::Package {
            package,
            required_env,
        })
    }

    /// Git when the text is a URL (`://`), a local bare repository, or scp-like
    /// `user@host:path`; otherwise a folder. A folder that is a git work tree is uploaded as
    /// it is on disk (uncommitted changes included), like any folder.
    pub(crate) fn parse(text: &str) -> anyhow::Result<SourceArg> {
        if text.contains("://") {
            return Ok(SourceArg::Git(text.to_owned()));
        }
        let path = Path::new(text);
        if path.is_dir() {
            if !is_bare_repository(path) {
                return Ok(SourceArg::Folder(path.to_path_buf()));
            }
            let absolute = std::fs::canonicalize(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let Some(absolute) = absolute.to_str() else {
                bail!(
                    "the repository path {} is not UTF-8; pass it as a file:// URL",
                    absolute.display()
                );
            };
            return Ok(SourceArg::Git(absolute.to_owned()));
        }
        if is_scp_like(text) {
            return Ok(SourceArg::Git(text.to_owned()));
        }
        Ok(SourceArg::Folder(path.to_path_buf()))
    }
}

/// A bare repository: git's own files at the top and no working tree.
fn is_bare_repository(path: &Path) -> bool {
    path.join("HEAD").is_file() && path.join("objects").is_dir() && path.join("refs").is_dir()
}

/// `user@host:path`, which git reads as ssh: a colon with no slash before it, after a user.
fn is_scp_like(text: &str) -> bool {
    text.split_once(':').is_some_and(|(before, after)| {
        !before.contains('/') && before.contains('@') && !after.is_empty()
    })
}

/// One deploy request.
pub(crate) struct Deploy<'a> {
    pub(crate) source: &'a SourceArg,
    /// The git ref to build; only for git sources.
    pub(crate) reference: Option<&'a str>,
    /// The branch pushes redeploy; only for git sources.
    pub(crate) branch: Option<&'a str>,
    pub(crate) name: &'a str,
    pub(crate) entrypoint: Option<&'a str>,
    pub(crate) description: Option<&'a str>,
    pub(crate) verbose: bool,
    pub(crate) settings: SettingsUpdate,
    /// Production variables set before the build.
    pub(crate) env: Vec<EnvAssignment>,
}

/// The API's form of the settings flags.
pub(crate) fn settings_update(args: &SettingsArgs) -> SettingsUpdate {
    SettingsUpdate {
        memory_bytes: args.memory,
        idle_timeout_seconds: args.idle_timeout.map(|d| d.as_secs().max(1)),
        min_instances: args.min_instances,
        max_instances: args.max_instances,
        stdio_sessions: args.stdio_sessions,
        stdio_shared: args.stdio_shared.map(|shared| shared == OnOff::On),
        auth: args.auth.map(|auth| match auth {
            AuthArg::On => Some(true),
            AuthArg::Off => Some(false),
            AuthArg::Default => None,
        }),
        request_timeout_seconds: args.request_timeout.map(|timeout| match timeout {
            Inherit::Set(timeout) => Some(timeout.as_secs()),
            Inherit::Default => None,
        }),
        identity_token: args.identity_token.map(|on| on == OnOff::On),
    }
}

/// Deploys and waits for the build; a failed build is returned, not an error, so callers can
/// show it their way. Progress and the failure go to stderr.
pub(crate) async fn run(client: &Client, request: &Deploy<'_>) -> anyhow::Result<DeploymentView> {
    let deployment = start(client, request).await?;
    wait(client, request.name, request.verbose, &deployment).await
}

/// Follows a started deployment of server `name` to its end and says how it ended (on
/// stderr); a failed build is returned, not an error.
pub(crate) async fn wait(
    client: &Client,
    name: &str,
    verbose: bool,
    deployment: &DeploymentView,
) -> anyhow::Result<DeploymentView> {
    let deployment = follow(client, name, verbose, deployment).await?;
    match (&deployment.status, &deployment.failure) {
        (DeploymentStatus::Failed, Some(failure)) => {
            eprintln!(
                "error: deploy of '{name}' failed ({}: {}):\n{}",
                failure.kind.as_str(),
                summary(failure.kind),
                indent(&failure.message)
            );
            eprintln!(
                "The previous deployment (if any) is still serving. Full build log: skyport logs {name} --build {}",
                deployment.id
            );
        }
        _ => eprintln!("✓ '{name}' is live ({})", deployment.id),
    }
    Ok(deployment)
}

/// What a class of build failure means, in one line.
fn summary(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Source => "the source could not be fetched or unpacked",
        FailureKind::Config => "fastmcp.json (or another build setting) is invalid",
        FailureKind::Dependencies => "the dependencies could not be resolved or installed",
        FailureKind::Entrypoint => {
            "the server file or object is missing, does not parse, or fails to import"
        }
        FailureKind::Inspection => "the server loaded but did not answer MCP requests",
        FailureKind::Start => "the server built but its first instance failed to start",
        FailureKind::Toolchain => "no Python on this machine fits what the source asks for",
        FailureKind::Timeout => "the build took longer than its time limit",
        FailureKind::Cancelled => "the build was cancelled or superseded by a newer one",
        FailureKind::Internal => "Skyport itself failed during the build",
        FailureKind::Interrupted => "Skyport stopped before the build finished; deploy again",
    }
}

async fn start(client: &Client, request: &Deploy<'_>) -> anyhow::Result<DeploymentView> {
    // Checked here too so a bad name fails before anything is packed and uploaded.
    let name: ServerName = request.name.parse()?;
    let source = match request.source {
        SourceArg::Folder(folder) => {
            if let Some(branch) = request.branch {
                bail!(
                    "--branch {branch} needs a git source, but {} is a folder; pass the repository's URL or path instead",
                    folder.display()
                );
            }
            if let Some(reference) = request.reference {
                bail!(
                    "--ref {reference} needs a git source, but {} is a folder; pass the repository's URL or path instead, or drop --ref to deploy the folder as it is",
                    folder.display()
                );
            }
            let packed = skyport_client::pack(folder)?;
            let upload = client
                .upload(packed.tarball)
                .await
                .context("cannot upload the source")?;
            SourceSpec::Upload(upload.id)
        }
        SourceArg::Git(url) => SourceSpec::Git(GitSpec {
            url: url.clone(),
            reference: request.reference.map(str::to_owned),
        }),
        SourceArg::Package {
            package,
            required_env,
        } => {
            if request.branch.is_some() || request.reference.is_some() {
                bail!(
                    "--branch and --ref are for git sources; {package} is a package (pin its version in the name instead)"
                );
            }
            SourceSpec::Package(PackageSpec {
                registry: package.registry.as_str().to_owned(),
                name: package.name.clone(),
                version: package.version.clone(),
                args: package.args.clone(),
                port_env: package.port_env.clone(),
                required_env: required_env.clone(),
            })
        }
    };
    let body = CreateDeployment {
        source,
        entrypoint: request.entrypoint.map(str::to_owned),
        description: request.description.map(str::to_owned),
        settings: (!request.settings.is_empty()).then(|| request.settings.clone()),
        env: request.env.clone(),
        branch: request.branch.map(str::to_owned),
    };
    Ok(client.deploy(name.as_str(), &body).await?)
}

/// Follows the build's live log stream until its `end` event, reopening it where it broke.
async fn follow(
    client: &Client,
    name: &str,
    verbose: bool,
    deployment: &DeploymentView,
) -> anyhow::Result<DeploymentView> {
    let mut shown = Shown {
        progress: Progress::new(),
        recent: VecDeque::new(),
        verbose,
    };
    let mut cursor = None;
    for _ in 0..=MAX_RECONNECTS {
        let mut stream = client.follow_build(deployment.id.as_str(), cursor).await?;
        loop {
            match stream.next().await {
                Ok(Some(LogEvent::Line(line))) => shown.line(line),
                Ok(Some(LogEvent::Deployment(d))) => shown.phase_of(&d),
                Ok(Some(LogEvent::End(d))) => {
                    shown.end(&d);
                    return Ok(*d);
                }
                Ok(None) => break,
                Err(ClientError::Protocol(_)) => break,
                Err(e) => return Err(e.into()),
            }
        }
        cursor = stream.cursor().or(cursor);
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
    bail!(
        "the build's log stream kept breaking; follow it with `skyport logs {name} --build {} -f`",
        deployment.id
    )
}

/// What a deploy shows while it waits: a progress line per phase, the raw log with `-v`,
/// and the last lines of the log when the build fails.
struct Shown {
    progress: Progress,
    recent: VecDeque<String>,
    verbose: bool,
}

impl Shown {
    fn line(&mut self, line: LogLineView) {
        if let Some(phase) = line.phase {
            self.progress.enter(phase);
        }
        if self.verbose {
            self.progress.line(&line.line);
        }
        if self.recent.len() == FAILED_LOG_LINES {
            self.recent.pop_front();
        }
        self.recent.push_back(line.line);
    }

    fn phase_of(&mut self, deployment: &DeploymentView) {
        if let Some(phase) = deployment.phase {
            self.progress.enter(phase);
        }
    }

    fn end(&mut self, deployment: &DeploymentView) {
        let failed = deployment.status == DeploymentStatus::Failed;
        self.progress.finish(!failed);
        if failed && !self.verbose && !self.recent.is_empty() {
            eprintln!("Build log (last {} lines):", self.recent.len());
            for line in &self.recent {
                eprintln!("  {line}");
            }
        }
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_git_when_they_look_like_repositories() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("server");
        std::fs::create_dir(&folder).unwrap();
        let bare = dir.path().join("repo.git");
        for sub in ["objects", "refs"] {
            std::fs::create_dir_all(bare.join(sub)).unwrap();
        }
        std::fs::write(bare.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        let text = |p: &Path| p.to_str().unwrap().to_owned();

        assert_eq!(
            SourceArg::parse(&text(&folder)).unwrap(),
            SourceArg::Folder(folder.clone())
        );
        let canonical = std::fs::canonicalize(&bare).unwrap();
        assert_eq!(
            SourceArg::parse(&text(&bare)).unwrap(),
            SourceArg::Git(text(&canonical))
        );
        for url in [
            "https://github.com/acme/weather.git",
            "file:///srv/repo.git",
            "git@github.com:acme/weather.git",
        ] {
            assert_eq!(
                SourceArg::parse(url).unwrap(),
                SourceArg::Git(url.to_owned())
            );
        }
        for folder in ["./missing", "dir/with:colon", "plain"] {
            assert_eq!(
                SourceArg::parse(folder).unwrap(),
                SourceArg::Folder(PathBuf::from(folder))
            );
        }
    }
}
