//! The deployments repository: build lifecycle, artifacts' launch specs, and promotion.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::dialect::Dialect;
use crate::promotions::{Actor, PromotionKind};
use crate::{
    Change, DeploymentId, EnvVar, GatewaySettings, PrincipalId, RuntimeSettings, ServerId,
    ServerKind, ServerName, Store, StoreError, Timestamp, from_millis, now, to_millis,
};

/// Where a deployment is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentStatus {
    /// Accepted, not started.
    Queued,
    /// The build is running.
    Building,
    /// Built and inspected: can be promoted and serve.
    Ready,
    /// The build failed; see its failure.
    Failed,
}

/// The steps of a build, in order; the one a failure happened in is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildPhase {
    /// Fetching (git) or unpacking (upload) the source into the artifact.
    Source,
    /// Reading `fastmcp.json`, finding the entrypoint, the Python version and the dependencies.
    Resolve,
    /// Creating or reusing the Python environment with the dependencies.
    Install,
    /// Starting the server once and listing what it offers.
    Inspect,
    /// Making the deployment live.
    Promote,
}

impl BuildPhase {
    /// The phase as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildPhase::Source => "source",
            BuildPhase::Resolve => "resolve",
            BuildPhase::Install => "install",
            BuildPhase::Inspect => "inspect",
            BuildPhase::Promote => "promote",
        }
    }
}

/// What kind of problem failed a build; each maps to a different fix for the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The source could not be fetched (clone, ref) or unpacked.
    Source,
    /// `fastmcp.json` (or another build setting in the source) is invalid.
    Config,
    /// Dependencies could not be resolved or installed.
    Dependencies,
    /// The server file, module or object is missing, does not parse, or fails to import.
    Entrypoint,
    /// The server imported but did not answer the inspection's MCP requests.
    Inspection,
    /// The build succeeded but its first instance failed to start before going live.
    Start,
    /// No usable Python interpreter (or uv) satisfies what the source asks for.
    Toolchain,
    /// The build took longer than its time limit.
    Timeout,
    /// Someone cancelled the build, or a newer build of the same branch superseded it.
    Cancelled,
    /// Skyport itself failed.
    Internal,
    /// Skyport, or the replica running the build, stopped before the build finished.
    Interrupted,
}

impl FailureKind {
    /// The kind as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Source => "source",
            FailureKind::Config => "config",
            FailureKind::Dependencies => "dependencies",
            FailureKind::Entrypoint => "entrypoint",
            FailureKind::Inspection => "inspection",
            FailureKind::Start => "start",
            FailureKind::Toolchain => "toolchain",
            FailureKind::Timeout => "timeout",
            FailureKind::Cancelled => "cancelled",
            FailureKind::Internal => "internal",
            FailureKind::Interrupted => "interrupted",
        }
    }
}

/// Why a build failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildFailure {
    /// The class of problem.
    pub kind: FailureKind,
    /// What went wrong and what to do, for the user.
    pub message: String,
}

/// A Skyport replica on a shared database, named by its connections' `application_name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Replica(String);

impl std::fmt::Display for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How to start an instance of a built deployment. The build decides it; the runtime runs it
/// without knowing what a virtual environment or an entrypoint is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// The executable (the environment's Python).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// The working directory (the artifact's copy of the source).
    pub working_dir: PathBuf,
    /// How the program speaks MCP; launch specs recorded before packaged servers are HTTP.
    #[serde(default, skip_serializing_if = "Transport::is_http")]
    pub transport: Transport,
}

/// How an instance's program speaks MCP.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Streamable HTTP on the listening socket the runtime passes (a FastMCP server).
    #[default]
    Http,
    /// JSON-RPC lines on stdin and stdout (a packaged stdio server): the runtime runs it
    /// behind the stdio bridge.
    Stdio,
    /// Streamable HTTP at `/mcp` on a port the program binds itself (a packaged server with an
    /// HTTP server of its own): the runtime picks a free port and gives it as `{port}` in the
    /// arguments and, when `env` names one, as that environment variable.
    HttpPort {
        /// The variable that carries the port.
        env: Option<String>,
    },
}

impl Transport {
    fn is_http(&self) -> bool {
        *self == Transport::Http
    }

    /// `{port}` in a launch argument: where a program that binds its own port is told which.
    pub const PORT_PLACEHOLDER: &str = "{port}";
}

/// What a new deployment builds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewDeployment {
    /// Where the source comes from, for people (a git URL never carries credentials here).
    pub source: String,
    /// The git branch, tag or commit asked for; `None` for uploads and the default branch.
    pub git_ref: Option<String>,
    /// The entrypoint the user asked for, if any.
    pub entrypoint: Option<String>,
    /// Who asked for it through the API; `None` when nobody did (a push, a poll).
    pub created_by: Option<PrincipalId>,
}

/// The git commit a deployment was built from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// Its full SHA.
    pub sha: String,
    /// `Name <email>` of its author.
    pub author: String,
    /// The first line of its message.
    pub message: String,
    /// When it was committed.
    pub committed_at: Timestamp,
}

/// What a successful build produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Built {
    /// The entrypoint actually used, as `FILE.py:OBJECT` or `MODULE:OBJECT`.
    pub entrypoint: String,
    /// The content hash naming the artifact directory.
    pub artifact: String,
    /// The artifact's manifest (commit, entrypoint, Python, packages, hash).
    pub manifest: serde_json::Value,
    /// How to run it.
    pub launch: LaunchSpec,
    /// What inspection found (server info, tools, resources, prompts).
    pub inspection: serde_json::Value,
}

/// One deployment of a server.
#[derive(Clone, Debug, PartialEq)]
pub struct Deployment {
    /// Its id.
    pub id: DeploymentId,
    /// The server it belongs to.
    pub server_id: ServerId,
    /// Where it is in its life.
    pub status: DeploymentStatus,
    /// The build phase running now, or the one that failed.
    pub phase: Option<BuildPhase>,
    /// Where the source came from, for people.
    pub source: String,
    /// The git branch, tag or commit asked for.
    pub git_ref: Option<String>,
    /// The commit built, for git sources once fetched.
    pub commit: Option<Commit>,
    /// The entrypoint the user asked for, if any.
    pub requested_entrypoint: Option<String>,
    /// Set when garbage collection removed the artifact: it can no longer run.
    pub pruned_at: Option<Timestamp>,
    /// What was built, once the build succeeded.
    pub built: Option<Built>,
    /// Why the build failed, if it did.
    pub failure: Option<BuildFailure>,
    /// Who asked for it through the API, if someone did.
    pub created_by: Option<Actor>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its build started.
    pub started_at: Option<Timestamp>,
    /// When its build ended.
    pub finished_at: Option<Timestamp>,
}

/// A server with the deployment that serves it, as the gateway routes to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// The server.
    pub server_id: ServerId,
    /// Its name.
    pub name: ServerName,
    /// What kind of entry it is; only a hosted server has deployments.
    pub kind: ServerKind,
    /// Its live deployment, if one was promoted.
    pub live: Option<LiveDeployment>,
    /// How its instances run.
    pub settings: RuntimeSettings,
    /// How the gateway treats it.
    pub gateway: GatewaySettings,
}

/// A deployment that serves requests, with what the runtime needs to start it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveDeployment {
    /// The deployment.
    pub id: DeploymentId,
    /// How to start an instance of it.
    pub launch: LaunchSpec,
    /// Its environment, fixed when its build started (secrets opened); shared, because every
    /// request's route and target carry it.
    pub env: Arc<[EnvVar]>,
}

/// Access to deployments; obtained from [`Store::deployments`].
pub struct Deployments<'a> {
    pub(crate) store: &'a Store,
}

/// The selected columns; a macro so that queries stay `&'static str`.
macro_rules! select_deployments {
    ($rest:literal) => {
        concat!(
            "SELECT id, server_id, status, phase, source, entrypoint, resolved_entrypoint, ",
            "failure_kind, failure_message, launch, inspection, created_at, started_at, finished_at, ",
            "git_ref, commit_sha, commit_author, commit_message, commit_at, artifact, manifest, ",
            "pruned_at, created_by, ",
            "(SELECT p.name FROM principals p WHERE p.id = deployments.created_by) AS created_by_name ",
            "FROM deployments ",
            $rest
        )
    };
}

impl Deployments<'_> {
    /// Records a new, queued deployment of `server`.
    pub async fn create(
        &self,
        server: &ServerId,
        new: &NewDeployment,
    ) -> Result<Deployment, StoreError> {
        let id = DeploymentId::generate();
        crate::sql::query(
            "INSERT INTO deployments (id, server_id, status, source, git_ref, entrypoint, created_by,
             created_at, builder) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(server)
        .bind(&new.source)
        .bind(&new.git_ref)
        .bind(&new.entrypoint)
        .bind(&new.created_by)
        .bind(to_millis(now()))
        .bind(self.store.replica.as_deref())
        .execute(&self.store.pool)
        .await?;
        self.get(&id)
            .await?
            .ok_or_else(|| StoreError::Conflict(format!("deployment {id} vanished after insert")))
    }

    /// The deployment with id `id`, if any.
    pub async fn get(&self, id: &DeploymentId) -> Result<Option<Deployment>, StoreError> {
        crate::sql::query(select_deployments!("WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.store.pool)
            .await?
            .map(|row| deployment(&row))
            .transpose()
    }

    /// A server's deployments, newest first.
    pub async fn list(&self, server: &ServerId) -> Result<Vec<Deployment>, StoreError> {
        // Ids are random within a millisecond, so insertion order (rowid) breaks the ties
        // between deployments created in the same one.
        crate::sql::query(select_deployments!(
            "WHERE server_id = ? ORDER BY created_at DESC, rowid DESC"
        ))
        .bind(server)
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(deployment)
        .collect()
    }

    /// Marks the build as running `phase`.
    pub async fn enter_phase(
        &self,
        id: &DeploymentId,
        phase: BuildPhase,
    ) -> Result<(), StoreError> {
        crate::sql::query(
            "UPDATE deployments SET status = 'building', phase = ?, started_at = COALESCE(started_at, ?)
             WHERE id = ?",
        )
        .bind(phase.as_str())
        .bind(to_millis(now()))
        .bind(id)
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// Records the commit a git build fetched.
    pub async fn record_commit(
        &self,
        id: &DeploymentId,
        commit: &Commit,
    ) -> Result<(), StoreError> {
        crate::sql::query(
            "UPDATE deployments SET commit_sha = ?, commit_author = ?, commit_message = ?, commit_at = ?
             WHERE id = ?",
        )
        .bind(&commit.sha)
        .bind(&commit.author)
        .bind(&commit.message)
        .bind(to_millis(commit.committed_at))
        .bind(id)
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// Records a successful build; the deployment becomes ready (not yet live).
    pub async fn succeed(&self, id: &DeploymentId, built: &Built) -> Result<(), StoreError> {
        let launch = serde_json::to_string(&built.launch)
            .map_err(|e| StoreError::Corrupt(format!("launch spec: {e}")))?;
        crate::sql::query(
            "UPDATE deployments SET status = 'ready', resolved_entrypoint = ?, launch = ?, inspection = ?,
             artifact = ?, manifest = ?, finished_at = ? WHERE id = ?",
        )
        .bind(&built.entrypoint)
        .bind(launch)
        .bind(built.inspection.to_string())
        .bind(&built.artifact)
        .bind(built.manifest.to_string())
        .bind(to_millis(now()))
        .bind(id)
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// Records the artifact a build made although the deployment never became ready, so that
    /// garbage collection removes it once no other deployment uses it.
    pub async fn abandon_artifact(
        &self,
        id: &DeploymentId,
        artifact: &str,
    ) -> Result<(), StoreError> {
        crate::sql::query("UPDATE deployments SET artifact = ? WHERE id = ? AND status <> 'ready'")
            .bind(artifact)
            .bind(id)
            .execute(&self.store.pool)
            .await?;
        Ok(())
    }

    /// Records a failed build.
    pub async fn fail(&self, id: &DeploymentId, failure: &BuildFailure) -> Result<(), StoreError> {
        crate::sql::query(
            "UPDATE deployments SET status = 'failed', failure_kind = ?, failure_message = ?, finished_at = ?
             WHERE id = ?",
        )
        .bind(failure.kind.as_str())
        .bind(&failure.message)
        .bind(to_millis(now()))
        .bind(id)
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// Builds that were running when Skyport stopped cannot finish: marks them failed.
    ///
    /// On PostgreSQL another replica may be running or queueing builds right now, and builds
    /// are in the memory of the replica that queued them; so they are marked only when no
    /// other Skyport is connected to the database (its connections carry another
    /// `application_name`). A replica that dies takes its connections with it, so the next
    /// replica to start alone marks what it left; running replicas mark it sooner, with
    /// [`Deployments::departed_builders`].
    pub async fn fail_interrupted(&self) -> Result<u64, StoreError> {
        if let Some(replica) = &self.store.replica {
            let others: i64 = crate::sql::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()
                 AND application_name LIKE 'skyport-%' AND application_name <> ?",
            )
            .bind(replica.as_ref())
            .fetch_one(&self.store.pool)
            .await?;
            if others > 0 {
                return Ok(0);
            }
        }
        let done = crate::sql::query(
            "UPDATE deployments SET status = 'failed', failure_kind = 'interrupted',
             failure_message = 'the build was interrupted because Skyport stopped; deploy again',
             finished_at = ? WHERE status IN ('queued', 'building')",
        )
        .bind(to_millis(now()))
        .execute(&self.store.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The replicas that queued builds still unfinished but hold no connection to the
    /// database any more (PostgreSQL only; always empty on SQLite, where this process is the
    /// only builder). A replica's builds live in its memory, so these will never finish.
    pub async fn departed_builders(&self) -> Result<Vec<Replica>, StoreError> {
        if self.store.replica.is_none() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = crate::sql::query_scalar(
            "SELECT DISTINCT builder FROM deployments
             WHERE status IN ('queued', 'building') AND builder IS NOT NULL
             AND builder NOT IN (SELECT application_name FROM pg_stat_activity
                                 WHERE datname = current_database())",
        )
        .fetch_all(&self.store.pool)
        .await?;
        Ok(names.into_iter().map(Replica).collect())
    }

    /// Marks failed the unfinished builds that `builder`, a replica that has gone, queued;
    /// returns how many.
    pub async fn fail_builds_of(&self, builder: &Replica) -> Result<u64, StoreError> {
        let done = crate::sql::query(
            "UPDATE deployments SET status = 'failed', failure_kind = 'interrupted',
             failure_message = ?, finished_at = ?
             WHERE status IN ('queued', 'building') AND builder = ?",
        )
        .bind(format!(
            "the build was interrupted because the Skyport replica running it ({builder}) stopped; deploy again"
        ))
        .bind(to_millis(now()))
        .bind(&builder.0)
        .execute(&self.store.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Makes a freshly built deployment its server's live one, atomically, recording the
    /// promotion as a deploy by whoever created the deployment; returns the previous live one.
    pub async fn promote(&self, id: &DeploymentId) -> Result<Option<DeploymentId>, StoreError> {
        self.switch(id, PromotionKind::Deploy, None).await
    }

    /// Makes an earlier deployment its server's live one again, atomically, recording the
    /// promotion as a rollback by `by`; returns the previous live one. Choose the deployment
    /// with [`Deployments::rollback_target`].
    pub async fn roll_back_to(
        &self,
        id: &DeploymentId,
        by: &PrincipalId,
    ) -> Result<Option<DeploymentId>, StoreError> {
        self.switch(id, PromotionKind::Rollback, Some(by)).await
    }

    /// Moves the live pointer to `id` and records the promotion in the same transaction; `by`
    /// defaults to the deployment's creator.
    async fn switch(
        &self,
        id: &DeploymentId,
        kind: PromotionKind,
        by: Option<&PrincipalId>,
    ) -> Result<Option<DeploymentId>, StoreError> {
        let mut tx = self.store.write().await?;
        let row = crate::sql::query(
            "SELECT d.status, d.pruned_at, d.created_by, d.server_id, s.name, s.live_deployment_id
             FROM deployments d JOIN servers s ON s.id = d.server_id WHERE d.id = ?",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("deployment {id} does not exist")))?;
        let status: String = row.try_get("status")?;
        if status != "ready" {
            return Err(StoreError::Conflict(format!(
                "deployment {id} is {status}; only a ready deployment can be promoted"
            )));
        }
        if row.try_get::<Option<i64>, _>("pruned_at")?.is_some() {
            return Err(StoreError::Conflict(format!(
                "the artifact of deployment {id} was removed; deploy its source again"
            )));
        }
        let server: ServerName = row.try_get("name")?;
        let server_id: ServerId = row.try_get("server_id")?;
        let previous: Option<DeploymentId> = row.try_get("live_deployment_id")?;
        let by = match by {
            Some(by) => Some(by.clone()),
            None => row.try_get::<Option<PrincipalId>, _>("created_by")?,
        };
        crate::sql::query("UPDATE servers SET live_deployment_id = ?, updated_at = ? WHERE id = ?")
            .bind(id)
            .bind(to_millis(now()))
            .bind(&server_id)
            .execute(&mut *tx)
            .await?;
        crate::sql::query(
            "INSERT INTO promotions (server_id, deployment_id, previous_id, kind, principal_id, at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&server_id)
        .bind(id)
        .bind(&previous)
        .bind(kind.as_str())
        .bind(&by)
        .bind(to_millis(now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let previous = previous.filter(|p| p != id);
        self.store.publish(Change::Promoted {
            server,
            live: id.clone(),
            previous: previous.clone(),
        });
        Ok(previous)
    }

    /// Removes a deployment that is neither live nor building; returns whether it existed.
    pub async fn remove(&self, id: &DeploymentId) -> Result<bool, StoreError> {
        let mut tx = self.store.write().await?;
        let row = crate::sql::query(
            "SELECT d.status, s.live_deployment_id FROM deployments d
             JOIN servers s ON s.id = d.server_id WHERE d.id = ?",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let live: Option<DeploymentId> = row.try_get("live_deployment_id")?;
        if live.as_ref() == Some(id) {
            return Err(StoreError::Conflict(format!(
                "deployment {id} is live; promote another deployment or remove the server instead"
            )));
        }
        let status: String = row.try_get("status")?;
        if status == "queued" || status == "building" {
            return Err(StoreError::Conflict(format!(
                "deployment {id} is still building; wait for it to finish"
            )));
        }
        crate::sql::query("DELETE FROM log_lines WHERE deployment_id = ? AND source = 'build'")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        crate::sql::query("DELETE FROM deployments WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Artifacts that garbage collection must keep: those of every server's live deployment,
    /// of its `keep` newest ready deployments, and of builds still running.
    pub async fn retained_artifacts(&self, keep: u32) -> Result<Vec<String>, StoreError> {
        let rows = crate::sql::query(
            "SELECT DISTINCT artifact FROM (
                SELECT d.artifact FROM deployments d JOIN servers s ON s.live_deployment_id = d.id
                UNION ALL
                SELECT artifact FROM (
                    SELECT artifact, ROW_NUMBER() OVER (
                        PARTITION BY server_id ORDER BY created_at DESC, rowid DESC) AS n
                    FROM deployments WHERE status = 'ready' AND pruned_at IS NULL) AS newest
                WHERE n <= ?
            ) AS kept WHERE artifact IS NOT NULL",
        )
        .bind(i64::from(keep))
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter()
            .map(|row| row.try_get("artifact").map_err(StoreError::from))
            .collect()
    }

    /// Marks every ready deployment whose artifact is not in `kept` as pruned; returns the
    /// artifacts that no deployment can use any more.
    pub async fn prune_artifacts(&self, kept: &[String]) -> Result<Vec<String>, StoreError> {
        let kept = serde_json::to_string(kept)
            .map_err(|e| StoreError::Corrupt(format!("artifact list: {e}")))?;
        let mut tx = self.store.write().await?;
        // The kept list goes as one JSON array: a statement with one placeholder per artifact
        // could outgrow SQLite's limit on bound values.
        let (unused, prune) = match self.store.dialect {
            Dialect::Sqlite => (
                "SELECT DISTINCT artifact FROM deployments WHERE artifact IS NOT NULL AND pruned_at IS NULL
                 AND artifact NOT IN (SELECT value FROM json_each(?))",
                "UPDATE deployments SET pruned_at = ? WHERE artifact IS NOT NULL AND pruned_at IS NULL
                 AND artifact NOT IN (SELECT value FROM json_each(?))",
            ),
            Dialect::Postgres => (
                "SELECT DISTINCT artifact FROM deployments WHERE artifact IS NOT NULL AND pruned_at IS NULL
                 AND artifact NOT IN (SELECT jsonb_array_elements_text(CAST(? AS jsonb)))",
                "UPDATE deployments SET pruned_at = ? WHERE artifact IS NOT NULL AND pruned_at IS NULL
                 AND artifact NOT IN (SELECT jsonb_array_elements_text(CAST(? AS jsonb)))",
            ),
        };
        let rows = crate::sql::query(unused)
            .bind(&kept)
            .fetch_all(&mut *tx)
            .await?;
        crate::sql::query(prune)
            .bind(to_millis(now()))
            .bind(&kept)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| row.try_get("artifact").map_err(StoreError::from))
            .collect()
    }

    /// Whether `server` has a deployment built (or being built) from commit `sha`: asked for
    /// by that SHA, or recorded with it after fetching.
    pub async fn has_commit(&self, server: &ServerId, sha: &str) -> Result<bool, StoreError> {
        let found: Option<i64> = crate::sql::query_scalar(
            "SELECT 1 FROM deployments WHERE server_id = ? AND (commit_sha = ? OR git_ref = ?) LIMIT 1",
        )
        .bind(server)
        .bind(sha)
        .bind(sha)
        .fetch_optional(&self.store.pool)
        .await?;
        Ok(found.is_some())
    }

    /// Every server with its live deployment, for the gateway's route table.
    pub async fn routes(&self) -> Result<Vec<Route>, StoreError> {
        let rows = crate::sql::query(
            "SELECT s.id AS server_id, s.name, s.kind, d.id AS deployment_id, d.launch, s.memory_limit_bytes,
             s.idle_timeout_ms, s.min_instances, s.max_instances, s.stdio_sessions, s.stdio_shared,
             s.auth, s.request_timeout_ms,
             s.identity_token
             FROM servers s
             LEFT JOIN deployments d ON d.id = s.live_deployment_id",
        )
        .fetch_all(&self.store.pool)
        .await?;
        let mut env = self.store.env().live().await?;
        rows.iter().map(|row| route(row, &mut env)).collect()
    }

    /// One server's route, or `None` if there is no such server.
    pub async fn route(&self, name: &ServerName) -> Result<Option<Route>, StoreError> {
        let row = crate::sql::query(
            "SELECT s.id AS server_id, s.name, s.kind, d.id AS deployment_id, d.launch, s.memory_limit_bytes,
             s.idle_timeout_ms, s.min_instances, s.max_instances, s.stdio_sessions, s.stdio_shared,
             s.auth, s.request_timeout_ms,
             s.identity_token
             FROM servers s
             LEFT JOIN deployments d ON d.id = s.live_deployment_id WHERE s.name = ?",
        )
        .bind(name)
        .fetch_optional(&self.store.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut env = match row.try_get::<Option<DeploymentId>, _>("deployment_id")? {
            Some(id) => BTreeMap::from([(id.clone(), self.store.env().of_deployment(&id).await?)]),
            None => BTreeMap::new(),
        };
        route(&row, &mut env).map(Some)
    }
}

/// A route from its row; `env` holds the live deployments' environments (taken from it).
fn route(row: &AnyRow, env: &mut BTreeMap<DeploymentId, Vec<EnvVar>>) -> Result<Route, StoreError> {
    let deployment: Option<DeploymentId> = row.try_get("deployment_id")?;
    let launch: Option<String> = row.try_get("launch")?;
    let live = match (deployment, launch) {
        (Some(id), Some(launch)) => Some(LiveDeployment {
            env: env.remove(&id).unwrap_or_default().into(),
            id,
            launch: parse_launch(&launch)?,
        }),
        _ => None,
    };
    Ok(Route {
        server_id: row.try_get("server_id")?,
        name: row.try_get("name")?,
        kind: row.try_get::<String, _>("kind")?.parse()?,
        live,
        settings: crate::servers::settings(row)?,
        gateway: crate::servers::gateway(row)?,
    })
}

fn parse_launch(text: &str) -> Result<LaunchSpec, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("launch spec: {e}")))
}

pub(crate) fn parse_enum<T: serde::de::DeserializeOwned>(
    what: &str,
    s: &str,
) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| StoreError::Corrupt(format!("unknown {what} '{s}'")))
}

fn deployment(row: &AnyRow) -> Result<Deployment, StoreError> {
    let status: String = row.try_get("status")?;
    let phase: Option<String> = row.try_get("phase")?;
    let failure_kind: Option<String> = row.try_get("failure_kind")?;
    let failure = match failure_kind {
        Some(kind) => Some(BuildFailure {
            kind: parse_enum("failure kind", &kind)?,
            message: row
                .try_get::<Option<String>, _>("failure_message")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    let launch: Option<String> = row.try_get("launch")?;
    let built = match (
        launch,
        row.try_get::<Option<String>, _>("resolved_entrypoint")?,
    ) {
        (Some(launch), Some(entrypoint)) => Some(Built {
            entrypoint,
            artifact: row
                .try_get::<Option<String>, _>("artifact")?
                .unwrap_or_default(),
            manifest: match row.try_get::<Option<String>, _>("manifest")? {
                Some(text) => serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("manifest: {e}")))?,
                None => serde_json::Value::Null,
            },
            launch: parse_launch(&launch)?,
            inspection: match row.try_get::<Option<String>, _>("inspection")? {
                Some(text) => serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("inspection: {e}")))?,
                None => serde_json::Value::Null,
            },
        }),
        _ => None,
    };
    let optional_time = |column: &str| -> Result<Option<Timestamp>, StoreError> {
        row.try_get::<Option<i64>, _>(column)?
            .map(from_millis)
            .transpose()
    };
    let commit = match row.try_get::<Option<String>, _>("commit_sha")? {
        Some(sha) => Some(Commit {
            sha,
            author: row
                .try_get::<Option<String>, _>("commit_author")?
                .unwrap_or_default(),
            message: row
                .try_get::<Option<String>, _>("commit_message")?
                .unwrap_or_default(),
            committed_at: from_millis(
                row.try_get::<Option<i64>, _>("commit_at")?
                    .unwrap_or_default(),
            )?,
        }),
        None => None,
    };
    Ok(Deployment {
        id: row.try_get("id")?,
        server_id: row.try_get("server_id")?,
        status: parse_enum("status", &status)?,
        phase: phase.map(|p| parse_enum("phase", &p)).transpose()?,
        source: row.try_get("source")?,
        git_ref: row.try_get("git_ref")?,
        commit,
        requested_entrypoint: row.try_get("entrypoint")?,
        pruned_at: optional_time("pruned_at")?,
        created_by: row
            .try_get::<Option<PrincipalId>, _>("created_by")?
            .map(|id| -> Result<Actor, StoreError> {
                Ok(Actor {
                    id,
                    name: row.try_get("created_by_name")?,
                })
            })
            .transpose()?,
        built,
        failure,
        created_at: from_millis(row.try_get("created_at")?)?,
        started_at: optional_time("started_at")?,
        finished_at: optional_time("finished_at")?,
    })
}
