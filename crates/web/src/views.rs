//! From the store's records to the API's views.

use skyport_api::{CommitView, DeploymentView, FailureView, InstanceView, LogLineView, ServerView};
use skyport_runtime::InstanceInfo;
use skyport_store::{Commit, Deployment, DeploymentStatus, LogLine, Server};

/// A server with its URL and the instances of its live deployment.
pub(crate) fn server(server: Server, public_url: &str, running: &[InstanceInfo]) -> ServerView {
    let instances = running
        .iter()
        .filter(|i| i.server == server.name)
        .map(|i| InstanceView {
            id: i.id.to_string(),
            deployment: i.deployment.clone(),
            pid: i.pid,
            started_at: i.started_at,
            in_flight: i.in_flight,
        })
        .collect();
    ServerView {
        url: format!("{public_url}/servers/{}/mcp", server.name),
        id: server.id,
        name: server.name,
        description: server.description,
        live_deployment: server.live_deployment,
        instances,
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
