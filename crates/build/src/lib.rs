//! Builds: turning a source (an uploaded gzip tarball of a folder, for now) into an immutable
//! artifact — the unpacked source, a uv-built Python environment, the launcher — inspecting the
//! server in it, recording the outcome in the store, and promoting it.
//!
//! This crate spawns processes (uv, pip, Python) and owns the data folder's `uploads`,
//! `artifacts`, `envs`, `tools` and `cache/uv`. It must not know HTTP (the web crate streams
//! bodies in), must not write SQL (the store does), and must not start instances: the runtime
//! follows the store's change feed after a promotion, and readies a deployment before its
//! promotion through the [`Warmup`] hook the binary implements.
//!
//! Layout of an artifact, `DATA/artifacts/<deployment id>/`: `src/` (the source, never
//! modified after unpacking) and `launcher.py`. Its environment lives in `DATA/envs/<key>/`,
//! shared by every artifact with the same dependencies.

mod artifact;
mod config;
mod departed;
mod entrypoint;
mod environment;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod git;
mod inspect;
mod job;
mod metadata;
mod package;
mod process;
mod promote;
mod queue;
mod redeploy;
mod removal;
mod shared;
mod toolchain;
mod unpack;
mod upload;
mod watch;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use skyport_store::{
    BuildFailure, Deployment, DeploymentId, FailureKind, NameError, NewDeployment, PrincipalId,
    Server, ServerName, Store, StoreError,
};
use tokio::sync::futures::Notified;
use tokio_util::task::TaskTracker;

pub use departed::{DEPARTED_INTERVAL, fail_builds_of_departed_replicas};
pub use entrypoint::{DEFAULT_FILES, Entrypoint, Target};
pub use git::{GitRef, GitSource, GitUrl};
pub use package::{PackageSource, Registry};
pub use promote::{Candidate, RollbackError, Warmed, Warmup};
pub use queue::Cancellation;
pub use redeploy::{Reaction, SourceEvent};
pub use shared::{SharedArtifacts, Starting, prefetch_promoted};
/// A preview build's origin, which decides its environment; defined by the store, which
/// resolves the variables.
pub use skyport_store::Preview;
pub use upload::{MAX_UPLOAD_BYTES, UploadId};
pub use watch::{SWEEP_INTERVAL, follow_sources};

/// Why a build could not be started. Failures of the build itself are recorded on the
/// deployment (with a `FailureKind`), not returned.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The entrypoint is not `FILE.py[:OBJECT]` inside the source.
    #[error("{0}")]
    InvalidEntrypoint(String),
    /// The text is not an upload id.
    #[error(
        "'{0}' is not an upload id (expected 'upl_' followed by 26 lowercase letters and digits); use the id returned by the upload"
    )]
    InvalidUploadId(String),
    /// The upload exceeded the size limit.
    #[error(
        "the upload is larger than {} MiB; deploy a smaller folder (leave out virtual environments, build outputs and data files)",
        .limit / (1024 * 1024)
    )]
    UploadTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The upload body could not be read to its end.
    #[error("reading the upload failed: {0}; send it again")]
    UploadBody(String),
    /// No upload with this id is waiting (never made, or already used by a build).
    #[error(
        "upload {0} does not exist (each upload is used by one build); upload the source again"
    )]
    UnknownUpload(UploadId),
    /// The data folder could not be written.
    #[error("{context}: {source}{}", full_disk_advice(.source))]
    Io {
        /// What was being done.
        context: String,
        /// What the operating system reported.
        source: std::io::Error,
    },
    /// The git URL is not one Skyport can fetch.
    #[error("{0}")]
    InvalidGitUrl(String),
    /// The git ref could be read by git as an option or a refspec.
    #[error("{0}")]
    InvalidGitRef(String),
    /// There is nothing to rebuild: no live deployment, or its source cannot be fetched again.
    #[error("{0}")]
    NotRedeployable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A build of the server's tracked source was asked for, but it has none.
    #[error(
        "server '{0}' has no git source to build; set one with `skyport servers set {0} --source URL`"
    )]
    NoSource(ServerName),
    /// No preview name fits the server and branch.
    #[error("{0}")]
    PreviewName(#[from] NameError),
    /// The package name, version or command is not one Skyport can install.
    #[error("{0}")]
    InvalidPackage(String),
}

impl BuildError {
    /// Whether the data folder's filesystem is full (the API answers 507 then: nothing is
    /// wrong with the request, and the operator has to free space).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, BuildError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull)
    }
}

/// What to do when a write failed because the disk is full; empty for other errors.
fn full_disk_advice(error: &std::io::Error) -> &'static str {
    if error.kind() == std::io::ErrorKind::StorageFull {
        "; the disk holding Skyport's data directory is full: free space on it and try again"
    } else {
        ""
    }
}

/// Where a deployment's source comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A tarball uploaded with [`Builder::save_upload`].
    Upload(UploadId),
    /// A git repository.
    Git(GitSource),
    /// The source folder of an existing artifact (named by its content hash): how an uploaded
    /// source is built again, since each upload is consumed by its build.
    Artifact(String),
    /// A package published on PyPI or npm.
    Package(PackageSource),
}

impl Source {
    /// The branch, tag or commit asked for, for git sources.
    pub fn git_ref(&self) -> Option<&str> {
        match self {
            Source::Upload(_) | Source::Artifact(_) | Source::Package(_) => None,
            Source::Git(git) => git.reference.as_ref().map(GitRef::as_str),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Upload(id) => write!(f, "upload:{id}"),
            Source::Git(git) => write!(f, "{}", git.url),
            Source::Artifact(hash) => write!(f, "artifact:{hash}"),
            Source::Package(package) => write!(f, "{package}"),
        }
    }
}

/// What to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildRequest {
    /// The source.
    pub source: Source,
    /// The server file and object; `None` tries main.py, server.py, app.py.
    pub entrypoint: Option<Entrypoint>,
    /// `None` builds a production deployment, whose environment is the server's production
    /// scope; `Some` a preview, whose environment is its parent's preview scope overridden by
    /// the branch's scope.
    pub preview: Option<Preview>,
}

/// How many builds run at once and how long each may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildLimits {
    /// Builds running at once (at least one); later ones wait in a queue.
    pub concurrency: usize,
    /// The longest a build may run, from leaving the queue to its recorded end.
    pub timeout: Duration,
    /// Ready deployments per server whose artifacts are kept (besides the live one); older
    /// artifacts are removed, and those deployments can no longer run.
    pub keep_deployments: u32,
}

impl Default for BuildLimits {
    fn default() -> BuildLimits {
        BuildLimits {
            concurrency: 2,
            timeout: Duration::from_secs(15 * 60),
            keep_deployments: 10,
        }
    }
}

/// Runs builds; cheap to clone.
#[derive(Clone)]
pub struct Builder {
    inner: Arc<Inner>,
}

/// The folders under the data folder that builds use.
pub(crate) struct Dirs {
    pub(crate) uploads: PathBuf,
    pub(crate) artifacts: PathBuf,
    pub(crate) envs: PathBuf,
    pub(crate) tools: PathBuf,
    pub(crate) uv_cache: PathBuf,
    /// npm's download cache, for packages from npm.
    pub(crate) npm_cache: PathBuf,
    /// One bare mirror per git source, reused so that a redeploy fetches only new objects.
    pub(crate) git: PathBuf,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) dirs: Dirs,
    /// Garbage collection takes it for writing; a build that reuses an existing artifact
    /// holds it for reading until its deployment is recorded, so the artifact cannot be
    /// collected in between.
    pub(crate) artifacts_in_use: tokio::sync::RwLock<()>,
    pub(crate) jobs: TaskTracker,
    pub(crate) queue: queue::Queue,
    pub(crate) limits: BuildLimits,
    /// Readies each deployment before it goes live.
    pub(crate) warmup: Arc<dyn Warmup>,
    /// The process groups running builds started (`DATA/build-processes`), recorded until
    /// they end.
    pub(crate) groups: Arc<skyport_leftovers::Records>,
    /// Finished artifacts stored for the other replicas, and fetched from them.
    pub(crate) shared: SharedArtifacts,
}

impl Builder {
    /// A builder storing into `store` and under `data_dir` (uploads, artifacts, envs, tools,
    /// cache/uv), with the default [`BuildLimits`].
    pub fn new(store: Store, data_dir: PathBuf) -> Builder {
        Builder::with_limits(store, data_dir, BuildLimits::default())
    }

    /// Like [`Builder::new`], with the given limits.
    pub fn with_limits(store: Store, data_dir: PathBuf, limits: BuildLimits) -> Builder {
        Builder::with_warmup(store, data_dir, limits, Arc::new(promote::ColdStart))
    }

    /// Like [`Builder::with_limits`], readying every deployment with `warmup` before it goes
    /// live (a failed warm-up fails the build, or refuses the rollback).
    pub fn with_warmup(
        store: Store,
        data_dir: PathBuf,
        limits: BuildLimits,
        warmup: Arc<dyn Warmup>,
    ) -> Builder {
        let shared = SharedArtifacts::new(store, &data_dir);
        Builder::with_shared_artifacts(&shared, limits, warmup)
    }

    /// Like [`Builder::with_warmup`], with the store and data dir of `shared`, which this
    /// builder fills (and fetches from: another replica's build of the same artifact).
    pub fn with_shared_artifacts(
        shared: &SharedArtifacts,
        limits: BuildLimits,
        warmup: Arc<dyn Warmup>,
    ) -> Builder {
        let (store, data_dir) = (shared.store().clone(), shared.data_dir().to_path_buf());
        let dirs = Dirs {
            uploads: data_dir.join("uploads"),
            artifacts: data_dir.join("artifacts"),
            envs: data_dir.join("envs"),
            tools: data_dir.join("tools"),
            uv_cache: data_dir.join("cache").join("uv"),
            npm_cache: data_dir.join("cache").join("npm"),
            git: data_dir.join("git"),
        };
        let groups = Arc::new(skyport_leftovers::Records::new(
            &data_dir.join("build-processes"),
        ));
        Builder {
            inner: Arc::new(Inner {
                store,
                dirs,
                groups,
                artifacts_in_use: tokio::sync::RwLock::new(()),
                jobs: TaskTracker::new(),
                queue: queue::Queue::new(limits.concurrency),
                limits,
                warmup,
                shared: shared.clone(),
            }),
        }
    }

    /// Clears what builds of a previous run of Skyport left when it died (a `kill -9` runs no
    /// clean-up): ends the processes they started (see `process::GROUPS`) and removes their
    /// unfinished work folders. Returns how many processes were ended. Call it at start,
    /// before any build runs; the store's `fail_interrupted` marks those builds failed.
    pub async fn clean_up_interrupted_builds(&self) -> usize {
        let groups = self.inner.groups.clone();
        let artifacts = self.inner.dirs.artifacts.clone();
        tokio::task::spawn_blocking(move || {
            let ended = groups.sweep();
            // A build works in a folder named after its deployment, a fetch from another
            // replica in one named `.fetch-…`; finished artifacts are named by their hash.
            for entry in std::fs::read_dir(&artifacts)
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = entry.file_name();
                if name.to_str().is_some_and(|n| {
                    n.parse::<DeploymentId>().is_ok() || n.starts_with(shared::FETCH_PREFIX)
                }) {
                    artifact::remove(&entry.path());
                }
            }
            ended
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "cleaning up after interrupted builds failed");
            0
        })
    }

    /// Streams a gzip tarball into `DATA/uploads` (at most [`MAX_UPLOAD_BYTES`]) and returns
    /// its id for [`Builder::start`].
    pub async fn save_upload<S, E>(&self, body: S) -> Result<UploadId, BuildError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: fmt::Display,
    {
        upload::save(&self.inner.dirs.uploads, body, MAX_UPLOAD_BYTES).await
    }

    /// Records a queued deployment of `server` that nobody asked for through the API (a push,
    /// a poll) and queues its build; see [`Builder::start_as`].
    pub async fn start(
        &self,
        server: &Server,
        request: BuildRequest,
    ) -> Result<Deployment, BuildError> {
        self.queue_build(server, request, None).await
    }

    /// Records a queued deployment of `server`, created by `principal`, fixes its environment
    /// (a snapshot of the variables it resolves to now) and queues its build (it starts at once
    /// when fewer than [`BuildLimits::concurrency`] builds run); returns the deployment at once. A waiting build of the same server and git ref is superseded:
    /// recorded as cancelled. Follow it through the store (status, phase, build log).
    pub async fn start_as(
        &self,
        server: &Server,
        request: BuildRequest,
        principal: &PrincipalId,
    ) -> Result<Deployment, BuildError> {
        self.queue_build(server, request, Some(principal.clone()))
            .await
    }

    async fn queue_build(
        &self,
        server: &Server,
        request: BuildRequest,
        created_by: Option<PrincipalId>,
    ) -> Result<Deployment, BuildError> {
        if let Source::Upload(id) = &request.source {
            let exists = tokio::fs::try_exists(id.path(&self.inner.dirs.uploads))
                .await
                .unwrap_or(false);
            if !exists {
                return Err(BuildError::UnknownUpload(id.clone()));
            }
        }
        let new = NewDeployment {
            source: request.source.to_string(),
            git_ref: request.source.git_ref().map(str::to_owned),
            entrypoint: request.entrypoint.as_ref().map(ToString::to_string),
            created_by,
        };
        let deployments = self.inner.store.deployments();
        let deployment = deployments.create(&server.id, &new).await?;
        let snapshot = self
            .inner
            .store
            .env()
            .snapshot(&deployment.id, &server.id, request.preview.as_ref())
            .await;
        if let Err(e) = snapshot {
            let failure = BuildFailure {
                kind: FailureKind::Internal,
                message: format!("the environment could not be fixed for the build: {e}"),
            };
            // The deployment is recorded failed so that it does not stay queued forever.
            if let Err(recorded) = deployments.fail(&deployment.id, &failure).await {
                tracing::error!(error = %recorded, "cannot record a failed start");
            }
            return Err(e.into());
        }
        queue::submit(&self.inner, deployment.clone(), request).await;
        Ok(deployment)
    }

    /// Starts a new deployment of `server` built from what its live deployment was built
    /// from (the same git URL at the same commit, or the live artifact's source for an
    /// upload), with the server's environment as it is now: how a change of variables takes
    /// effect. Git credentials are never stored, so a private https repository must be
    /// deployed again with its credentials instead.
    pub async fn redeploy(&self, server: &Server) -> Result<Deployment, BuildError> {
        let none = || {
            BuildError::NotRedeployable(format!(
                "server '{}' has no live deployment to build again; deploy it first with `skyport deploy SOURCE --name {}`",
                server.name, server.name
            ))
        };
        let live_id = server.live_deployment.as_ref().ok_or_else(none)?;
        let live = self
            .inner
            .store
            .deployments()
            .get(live_id)
            .await?
            .ok_or_else(none)?;
        let entrypoint = live
            .requested_entrypoint
            .as_deref()
            .map(str::parse::<Entrypoint>)
            .transpose()?;
        let request = BuildRequest {
            source: redeploy_source(&live)?,
            entrypoint,
            preview: server.preview.clone(),
        };
        self.start(server, request).await
    }

    /// Cancels the build of `id`: a waiting one leaves the queue, a running one is stopped
    /// (its processes killed, its partial artifact removed). Returns once the deployment is
    /// recorded as cancelled; a build already going live is let finish.
    pub async fn cancel(&self, id: &DeploymentId) -> Cancellation {
        queue::cancel(&self.inner, id).await
    }

    /// The deployments whose builds are running, then those waiting, in queue order.
    pub fn active(&self) -> Vec<DeploymentId> {
        self.inner.queue.active()
    }

    /// Whether the build of `id` is waiting or running in this builder.
    pub fn is_active(&self, id: &DeploymentId) -> bool {
        self.inner.queue.contains(id)
    }

    /// Completes when a build next leaves the queue (finished, cancelled or superseded).
    /// Create it before checking, so that an end in between is not missed.
    pub fn settled(&self) -> Notified<'_> {
        self.inner.queue.settled.notified()
    }

    /// Stops starting waiting builds (they are recorded as not built) and waits until no
    /// build is running; the caller bounds it with a deadline at shutdown.
    pub async fn drain(&self) {
        queue::close(&self.inner).await;
        // A closed tracker still tracks builds started later; closing only lets `wait` finish
        // once none is running. It is never reopened, so concurrent drains cannot starve.
        self.inner.jobs.close();
        self.inner.jobs.wait().await;
    }
}

/// Where a redeploy of `live` takes its source from.
fn redeploy_source(live: &Deployment) -> Result<Source, BuildError> {
    // A package is installed again at the version its live deployment resolved.
    if let Some(package) = live
        .built
        .as_ref()
        .and_then(|built| built.manifest.get("package"))
        .and_then(|package| package.get("source"))
        .and_then(|source| serde_json::from_value::<PackageSource>(source.clone()).ok())
    {
        return Ok(Source::Package(package));
    }
    if let Some(commit) = &live.commit {
        return Ok(Source::Git(GitSource {
            url: live.source.parse()?,
            reference: Some(commit.sha.parse()?),
            commit: None,
        }));
    }
    match &live.built {
        Some(built) if live.pruned_at.is_none() => Ok(Source::Artifact(built.artifact.clone())),
        _ => Err(BuildError::NotRedeployable(format!(
            "the live deployment {} has no source left to build again; deploy the source again with `skyport deploy`",
            live.id
        ))),
    }
}

#[cfg(test)]
mod tests;
