//! From the store's records to the API's views.

use crate::ServerDefaults;
use skyport_api::{
    CommitView, DeploymentView, FailureView, InstanceView, LogLineView, PreviewView,
    ServerMetricsView, ServerView, SettingsUpdate, SettingsView, SourceView,
};
use skyport_runtime::{DeploymentMetrics, InstanceInfo};
use skyport_store::{
    Actor, Commit, Deployment, DeploymentStatus, GatewaySettings, LogLine, RuntimeSettings, Server,
    SettingsPatch, TrackedSource,
};

/// What the runtime reports right now, read once per request.
pub(crate) struct Live {
    pub(crate) instances: Vec<InstanceInfo>,
    pub(crate) metrics: Vec<DeploymentMetrics>,
}

/// A server with its URL, settings, the instances of its live deployment and its figures.
pub(crate) fn server(
    server: Server,
    public_url: &str,
    defaults: &ServerDefaults,
    live: &Live,
) -> ServerView {
    let running = &live.instances;
    let instances = running
        .iter()
        .filter(|i| i.server == server.name)
        .map(|i| InstanceView {
            id: i.id.to_string(),
            deployment: i.deployment.clone(),
            pid: i.pid,
            started_at: i.started_at,
            in_flight: i.in_flight,
            memory_bytes: i.memory_bytes,
        })
        .collect();
    let metrics = server_metrics(live.metrics.iter().filter(|m| m.server == server.name));
    let preview = preview(&server);
    ServerView {
        url: format!("{public_url}/servers/{}/mcp", server.name),
        id: server.id,
        name: server.name,
        kind: server.kind,
        external: None,
        description: server.description,
        live_deployment: server.live_deployment,
        instances,
        settings: settings(&server.settings, &server.gateway, defaults),
        metrics,
        source: source(&server.source),
        preview,
        created_at: server.created_at,
        updated_at: server.updated_at,
    }
}

/// A deployment of `server`.
pub(crate) fn deployment(deployment: Deployment, server: &Server) -> DeploymentView {
    let live = server.live_deployment.as_ref() == Some(&deployment.id);
    let pruned = deployment.pruned_at.is_some();
    let (entrypoint, inspection, artifact, manifest) = match deployment.built {
        Some(built) => (
            Some(built.entrypoint),
            Some(built.inspection),
            Some(built.artifact).filter(|a| !a.is_empty()),
            built.manifest,
        ),
        None => (
            deployment.requested_entrypoint,
            None,
            None,
            serde_json::Value::Null,
        ),
    };
    DeploymentView {
        id: deployment.id,
        server: server.name.clone(),
        status: deployment.status,
        live,
        phase: deployment.phase,
        source: deployment.source,
        git_ref: deployment.git_ref,
        commit: deployment.commit.map(commit),
        entrypoint,
        artifact,
        python: manifest["python"].as_str().map(str::to_owned),
        packages: manifest["packages"]
            .as_array()
            .map(|p| {
                p.iter()
                    .filter_map(|p| p.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        pruned,
        failure: deployment.failure.map(|f| FailureView {
            kind: f.kind,
            message: f.message,
        }),
        inspection,
        created_by: deployment.created_by.map(actor),
        created_at: deployment.created_at,
        started_at: deployment.started_at,
        finished_at: deployment.finished_at,
    }
}

/// The status as the API spells it.
pub(crate) fn status(status: DeploymentStatus) -> &'static str {
    match status {
        DeploymentStatus::Queued => "queued",
        DeploymentStatus::Building => "building",
        DeploymentStatus::Ready => "ready",
        DeploymentStatus::Failed => "failed",
    }
}

/// Who did something, by name (by id when the principal is gone).
pub(crate) fn actor(actor: Actor) -> String {
    actor.name.unwrap_or_else(|| actor.id.to_string())
}

fn commit(commit: Commit) -> CommitView {
    CommitView {
        short: commit.sha.chars().take(12).collect(),
        sha: commit.sha,
        author: commit.author,
        message: commit.message,
        committed_at: commit.committed_at,
    }
}

/// A log line.
pub(crate) fn log_line(line: LogLine) -> LogLineView {
    LogLineView {
        id: line.id,
        at: line.line.at,
        source: line.line.source,
        stream: line.line.stream,
        phase: line.line.phase,
        deployment: line.line.deployment_id,
        instance: line.line.instance_id.map(|i| i.to_string()),
        line: line.line.line,
    }
}

/// A server's settings as the API shows them, with the defaults it follows filled in.
pub(crate) fn settings(
    settings: &RuntimeSettings,
    gateway: &GatewaySettings,
    defaults: &ServerDefaults,
) -> SettingsView {
    SettingsView {
        memory_bytes: settings.memory_bytes,
        idle_timeout_seconds: settings.idle_timeout.as_secs(),
        min_instances: settings.min_instances,
        max_instances: settings.max_instances,
        stdio_sessions: settings.stdio_sessions,
        stdio_shared: settings.stdio_shared,
        auth: gateway.auth,
        auth_effective: gateway.auth.unwrap_or(defaults.auth),
        request_timeout_seconds: gateway.request_timeout.map(|t| t.as_secs()),
        request_timeout_effective_seconds: gateway
            .request_timeout
            .unwrap_or(defaults.request_timeout)
            .as_secs(),
        identity_token: gateway.identity_token,
    }
}

/// What a preview previews; its parent's name is the part of its own before `--`.
fn preview(server: &Server) -> Option<PreviewView> {
    let preview = server.preview.as_ref()?;
    let (parent, _) = server.name.as_str().split_once("--")?;
    Some(PreviewView {
        parent: parent.parse().ok()?,
        branch: preview.branch.clone(),
        expires_at: server.expires_at,
    })
}

/// A tracked source as the API shows it: never the webhook secret itself.
pub(crate) fn source(source: &TrackedSource) -> SourceView {
    SourceView {
        url: source.url.clone(),
        branch: source.branch.clone(),
        entrypoint: source.entrypoint.clone(),
        webhook: source.webhook,
        poll_interval_seconds: source.poll_interval.map(|d| d.as_secs()),
        preview_ttl_seconds: source.preview_ttl.map(|d| d.as_secs()),
    }
}

/// An API settings update as the store takes it.
pub(crate) fn settings_patch(update: &SettingsUpdate) -> SettingsPatch {
    SettingsPatch {
        memory_bytes: update.memory_bytes,
        idle_timeout: update
            .idle_timeout_seconds
            .map(std::time::Duration::from_secs),
        min_instances: update.min_instances,
        max_instances: update.max_instances,
        stdio_sessions: update.stdio_sessions,
        stdio_shared: update.stdio_shared,
        auth: update.auth,
        request_timeout: update
            .request_timeout_seconds
            .map(|t| t.map(std::time::Duration::from_secs)),
        identity_token: update.identity_token,
    }
}

/// The figures of a server's deployments, summed.
fn server_metrics<'a>(
    deployments: impl Iterator<Item = &'a DeploymentMetrics>,
) -> ServerMetricsView {
    let mut view = ServerMetricsView::default();
    let (mut start_sum, mut request_sum) = (0.0, 0.0);
    for m in deployments {
        view.instances += m.instances;
        view.memory_bytes += m.memory_bytes;
        view.cold_starts += m.cold_starts.count;
        start_sum += m.cold_starts.sum.as_secs_f64();
        view.failed_starts += m.failed_starts;
        view.requests += m.requests.count;
        request_sum += m.requests.sum.as_secs_f64();
        view.errors += m.errors;
        view.crashes += m.crashes;
        view.oom_kills += m.oom_kills;
    }
    let mean = |sum: f64, count: u64| if count == 0 { 0.0 } else { sum / count as f64 };
    view.cold_start_mean_seconds = mean(start_sum, view.cold_starts);
    view.request_mean_seconds = mean(request_sum, view.requests);
    view
}
