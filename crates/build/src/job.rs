//! The build job of one deployment: the phases in order, each logged, ending in exactly one
//! recorded outcome (ready and promoted, or failed with a classified message). A failure or a
//! panic anywhere still ends in `fail`, and a failed build leaves no artifact behind.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use skyport_store::{
    BuildFailure, BuildPhase, Built, Claim, Commit, Deployment, DeploymentId, DeploymentStatus,
    EnvVar, FailureKind, LaunchSpec, Redactor, ServerId, StoreError, Transport,
};
use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::artifact::{self, HashInputs, Manifest};
use crate::entrypoint::{self, Located, Target};
use crate::environment::{self, Requirements, Settings};
use crate::git::{self, Mirrors};
use crate::inspect::{self, LAUNCHER, LAUNCHER_FILE};
use crate::metadata::{self, ServerMetadata};
use crate::process::{self, BuildLog};
use crate::toolchain::{Interpreter, Toolchain};
use crate::unpack::{self, Limits, UnpackError};
use crate::{BuildRequest, Candidate, Inner, Source, Warmed, toolchain};

mod package;

/// How often a build waiting for another replica's build of its artifact checks again.
const CLAIM_RETRY: Duration = Duration::from_millis(250);

/// The folder of an artifact that holds its installed local projects.
pub(crate) const SITE: &str = "site";

/// A classified build failure: what the user sees on the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) kind: FailureKind,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(kind: FailureKind, message: String) -> Failure {
        Failure { kind, message }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::new(
            FailureKind::Internal,
            format!("the database failed during the build: {e}; deploy again"),
        )
    }
}

/// Runs the build of `deployment` to its recorded end: its own outcome, or cancelled when
/// `stop` fires, or timed out past [`crate::BuildLimits::timeout`]. Stopping drops the phases'
/// task, which kills its child processes (they are spawned with `kill_on_drop`).
pub(crate) async fn run(
    inner: Arc<Inner>,
    deployment: Deployment,
    request: BuildRequest,
    stop: CancellationToken,
) {
    let id = deployment.id.clone();
    let span = tracing::info_span!("build", deployment = %id, server = %deployment.server_id);
    async move {
        let log = BuildLog::new(
            inner.store.logs().writer(),
            deployment.server_id.clone(),
            id.clone(),
        );
        // The environment fixed when the deployment was created: what uv and the inspection
        // get, and the secrets every line of the log is cleaned of.
        let (env, log) = match inner.store.env().of_deployment(&id).await {
            Ok(env) => {
                let redactor = Redactor::new(&env);
                (Ok(env), log.redacting(redactor))
            }
            Err(e) => (Err(Failure::from(e)), log),
        };
        // The phases run in their own task so that a panic in them is caught here and still
        // recorded as a failure, instead of leaving the deployment "building" forever, and so
        // that cancelling or timing out can abort them.
        let outcome = match env {
            Ok(env) => {
                let task = tokio::spawn(process::recording(
                    inner.groups.clone(),
                    build(
                        inner.clone(),
                        log.clone(),
                        (deployment.server_id.clone(), id.clone()),
                        request,
                        env,
                    ),
                ));
                supervise(&inner, &id, task, &stop).await
            }
            Err(failure) => Ok(Err(failure)),
        };
        let failure = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(failure)) => failure,
            Err(e) => Failure::new(
                FailureKind::Internal,
                format!("the build crashed ({e}); this is a bug in Skyport, please report it"),
            ),
        };
        // Failure messages quote tool output, which may hold a secret value.
        let failure = Failure::new(failure.kind, log.redact(&failure.message));
        tracing::info!(kind = failure.kind.as_str(), "build failed");
        log.info(&failure.message);
        log.flush().await;
        let recorded = inner
            .store
            .deployments()
            .fail(
                &id,
                &BuildFailure {
                    kind: failure.kind,
                    message: failure.message,
                },
            )
            .await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, "cannot record the build failure");
        }
        let artifact = inner.dirs.artifacts.join(id.as_str());
        if let Err(e) = tokio::fs::remove_dir_all(&artifact).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, path = %artifact.display(), "cannot remove a failed artifact");
        }
    }
    .instrument(span)
    .await;
}

/// Waits for the phases' task, aborting it when `stop` fires or the time limit passes.
/// A build already promoting is let finish: aborting between its `succeed` and `promote`
/// records could fail a deployment that is live.
async fn supervise(
    inner: &Inner,
    id: &DeploymentId,
    mut task: JoinHandle<Result<(), Failure>>,
    stop: &CancellationToken,
) -> Result<Result<(), Failure>, JoinError> {
    let limit = inner.limits.timeout;
    let interrupted = tokio::select! {
        joined = &mut task => return joined,
        () = stop.cancelled() => Interrupted::Cancelled,
        () = tokio::time::sleep(limit) => Interrupted::TimedOut,
    };
    let phase = match inner.store.deployments().get(id).await {
        Ok(Some(deployment)) => deployment.phase,
        _ => None,
    };
    if phase == Some(BuildPhase::Promote) {
        tracing::info!("the build is going live; letting it finish instead of stopping it");
        return task.await;
    }
    task.abort();
    match task.await {
        // It ended on its own before the abort reached it.
        Ok(outcome) => Ok(outcome),
        Err(e) if e.is_cancelled() => {
            if promoted_meanwhile(inner, id).await {
                Ok(Ok(()))
            } else {
                Ok(Err(interrupted.failure(limit, phase)))
            }
        }
        Err(e) => Err(e),
    }
}

/// Why a build was stopped before its end.
#[derive(Clone, Copy)]
enum Interrupted {
    Cancelled,
    TimedOut,
}

impl Interrupted {
    fn failure(self, limit: Duration, phase: Option<BuildPhase>) -> Failure {
        match self {
            Interrupted::Cancelled => {
                Failure::new(FailureKind::Cancelled, "cancelled by request".to_owned())
            }
            Interrupted::TimedOut => Failure::new(
                FailureKind::Timeout,
                format!(
                    "the build did not finish within its time limit of {} (it was in its {} phase); \
                     make the build lighter, or raise the limit with `skyport serve --build-timeout`",
                    shown_duration(limit),
                    phase.map_or("queued", BuildPhase::as_str)
                ),
            ),
        }
    }
}

/// Whether the aborted build had already recorded its success (the abort landed after its
/// `succeed`); if so its promotion is completed here, so that it ends as it would have.
async fn promoted_meanwhile(inner: &Inner, id: &DeploymentId) -> bool {
    let deployments = inner.store.deployments();
    match deployments.get(id).await {
        Ok(Some(d)) if d.status == DeploymentStatus::Ready => {
            let live = match inner.store.servers().by_id(&d.server_id).await {
                Ok(Some(server)) => server.live_deployment.as_ref() == Some(id),
                _ => false,
            };
            if !live && let Err(e) = deployments.promote(id).await {
                tracing::error!(error = %e, "cannot promote a build stopped while promoting");
            }
            true
        }
        _ => false,
    }
}

/// `15m`, `90s`, `1h30m`: the way `--build-timeout` takes it.
fn shown_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut text = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            text.push_str(&format!("{n}{unit}"));
        }
    }
    if text.is_empty() {
        format!("{}ms", d.as_millis())
    } else {
        text
    }
}

/// The phases of one build, in order; each helper below is one of them.
async fn build(
    inner: Arc<Inner>,
    log: BuildLog,
    (server, id): (ServerId, DeploymentId),
    request: BuildRequest,
    env: Vec<EnvVar>,
) -> Result<(), Failure> {
    let job = Job {
        inner: &inner,
        log: &log,
        server: &server,
        id: &id,
        env: &env,
    };
    // The artifact is assembled under the deployment's id and renamed to its content hash
    // once complete; a failure removes this folder.
    let work = inner.dirs.artifacts.join(id.as_str());

    job.enter(BuildPhase::Source).await?;
    let (built, reuse_guard, new_environment) = match &request.source {
        Source::Package(package) => {
            let (built, reuse_guard) = job.build_package(package, &work).await?;
            (built, reuse_guard, None)
        }
        _ => {
            let commit = job.fetch_source(&request.source, &work.join("src")).await?;

            job.enter(BuildPhase::Resolve).await?;
            let (plan, toolchain) = job.resolve(&work.join("src"), &request).await?;
            let dest = inner.dirs.artifacts.join(&plan.hash);
            // Among replicas, one builds a given artifact: the others wait for its claim and
            // fetch what it stored.
            let _building = job.claim_artifact(&plan.hash).await?;
            let reuse_guard = inner.artifacts_in_use.read().await;
            let (assembled, reuse_guard) = match artifact::load(&dest) {
                Some((manifest, inspection)) => {
                    log.info(&format!(
                        "artifact {} was already built from the same source and dependencies: reusing it",
                        plan.hash
                    ));
                    // A large checkout takes a while to delete: not on the async workers.
                    let unused = work.clone();
                    let _ = tokio::task::spawn_blocking(move || artifact::remove(&unused)).await;
                    let reused = Assembled {
                        manifest,
                        inspection,
                        new_environment: None,
                    };
                    (reused, Some(reuse_guard))
                }
                None => {
                    // A new artifact is not referenced by any deployment until this one is recorded,
                    // so collection cannot touch it: no need to hold the guard through the install.
                    drop(reuse_guard);
                    let origin = (request.source.to_string(), commit);
                    let assembled = job.assemble(&plan, toolchain, &work, &dest, origin).await?;
                    (assembled, None)
                }
            };
            let built = built(
                &plan,
                &dest,
                &inner.dirs.envs,
                assembled.manifest,
                assembled.inspection,
            );
            (built, reuse_guard, assembled.new_environment)
        }
    };

    // The phase goes first: entering a phase marks the deployment "building" again, and only a
    // ready deployment can be promoted.
    job.enter(BuildPhase::Promote).await?;
    // Stored before it goes live, so that no replica sees a live deployment it cannot fetch.
    let environment = built.manifest["environment"].as_str().unwrap_or_default();
    inner.shared.upload(&built.artifact, environment).await?;
    let promoted = job.promote(&built).await;
    drop(reuse_guard);
    if promoted.is_ok()
        && let Some(env) = new_environment
    {
        inner.jobs.spawn(process::recording(
            inner.groups.clone(),
            environment::compile_bytecode(env),
        ));
    }
    // Housekeeping runs on its own so that it does not hold the build's queue slot. It runs
    // after a failed promotion too, which abandoned its artifact: otherwise that artifact
    // would stay on disk until the next successful build.
    let collector = inner.clone();
    inner.jobs.spawn(async move {
        let _exclusive = collector.artifacts_in_use.write().await;
        let kept = artifact::collect_garbage(
            collector.store.clone(),
            collector.dirs.artifacts.clone(),
            collector.dirs.envs.clone(),
            collector.limits.keep_deployments,
        )
        .await;
        if let Some(kept) = kept {
            collector.shared.collect_garbage(&kept).await;
        }
    });
    promoted
}

/// One build's context: where it logs, which deployment (of which server) it records, and its
/// environment.
struct Job<'a> {
    inner: &'a Inner,
    log: &'a BuildLog,
    server: &'a ServerId,
    id: &'a DeploymentId,
    env: &'a [EnvVar],
}

/// What the resolve phase decided: everything the artifact's hash covers.
struct Plan {
    located: Located,
    requirements: Requirements,
    python: Interpreter,
    environment: String,
    hash: String,
    /// What the source's `server.json` says about the server.
    metadata: Option<ServerMetadata>,
}

/// A finished artifact's description, and the environment this build created, if it did
/// (its bytecode is compiled after the deploy).
struct Assembled {
    manifest: Manifest,
    inspection: serde_json::Value,
    new_environment: Option<PathBuf>,
}

impl Job<'_> {
    async fn enter(&self, phase: BuildPhase) -> Result<(), Failure> {
        self.log.enter(phase);
        self.inner
            .store
            .deployments()
            .enter_phase(self.id, phase)
            .await?;
        Ok(())
    }

    /// Waits until this replica holds the claim on building artifact `hash` (at once on
    /// SQLite), then fetches it if another replica stored it meanwhile. The claim is held
    /// until it is dropped: past the artifact's upload.
    async fn claim_artifact(&self, hash: &str) -> Result<Claim, Failure> {
        let mut claim = self.inner.store.claim(format!("artifact:{hash}"));
        let mut told = false;
        // Bounded by the build's time limit, which aborts this task.
        while !claim.held().await {
            if !told {
                self.log.info(&format!(
                    "another replica is building artifact {hash}; waiting for it"
                ));
                told = true;
            }
            tokio::time::sleep(CLAIM_RETRY).await;
        }
        let shared = &self.inner.shared;
        let present = shared
            .fetch(hash)
            .await
            .map_err(|e| Failure::new(FailureKind::Internal, e))?;
        // Fetched now or ahead of need (another replica's promotion of it).
        if present && shared.was_fetched(hash) {
            self.log.info(&format!(
                "artifact {hash} was built by another replica: fetched it from the database"
            ));
        }
        Ok(claim)
    }

    /// Unpacks the upload or checks the commit out into `src`; returns the commit.
    async fn fetch_source(&self, source: &Source, src: &Path) -> Result<Option<Commit>, Failure> {
        match source {
            Source::Upload(upload) => {
                unpack_upload(&upload.path(&self.inner.dirs.uploads), src, self.log).await?;
                Ok(None)
            }
            Source::Git(git) => {
                let mirrors = Mirrors {
                    dir: &self.inner.dirs.git,
                    locks: self.inner.shared.env_locks(),
                };
                let commit = git::checkout(git, &mirrors, src, self.log).await?;
                self.inner
                    .store
                    .deployments()
                    .record_commit(self.id, &commit)
                    .await?;
                Ok(Some(commit))
            }
            Source::Artifact(hash) => {
                self.log
                    .info(&format!("copying the source of artifact {hash}"));
                // Another replica may have built the live artifact.
                self.inner
                    .shared
                    .fetch(hash)
                    .await
                    .map_err(|e| Failure::new(FailureKind::Internal, e))?;
                let from = artifact::source_of(&self.inner.dirs.artifacts, hash)?;
                let to = src.to_path_buf();
                tokio::task::spawn_blocking(move || artifact::copy_source(&from, &to))
                    .await
                    .map_err(|e| {
                        Failure::new(FailureKind::Internal, format!("copying crashed: {e}"))
                    })??;
                Ok(None)
            }
            Source::Package(package) => Err(Failure::new(
                FailureKind::Internal,
                format!("{package} has no source folder to fetch; this is a bug in Skyport"),
            )),
        }
    }

    /// Finds the entrypoint, the requirements and the interpreter, and hashes the artifact.
    async fn resolve(
        &self,
        src: &Path,
        request: &BuildRequest,
    ) -> Result<(Plan, &Toolchain), Failure> {
        let located = locate(src, request, self.log).await?;
        let metadata = metadata::read(src)?;
        if let Some(found) = &metadata {
            self.log.info(&format!(
                "{}: version {}, {}",
                metadata::SERVER_JSON,
                found.version.as_deref().unwrap_or("not given"),
                found
                    .title
                    .as_deref()
                    .map_or_else(|| "no title".to_owned(), |t| format!("title '{t}'"))
            ));
        }
        let requirements = {
            let (root, located) = (src.to_path_buf(), located.clone());
            tokio::task::spawn_blocking(move || Requirements::resolve(&root, &located))
                .await
                .map_err(|e| {
                    Failure::new(FailureKind::Internal, format!("resolving crashed: {e}"))
                })??
        };
        let toolchain = self
            .inner
            .shared
            .toolchain()
            .get_or_try_init(|| toolchain::discover(&self.inner.dirs.tools, self.log))
            .await?;
        let asked = requirements.python.as_ref();
        let python = toolchain.select(asked.map(|(r, origin)| (r.as_str(), origin.as_str())))?;
        self.log.info(&format!(
            "using Python {} at {}{} and {} at {}",
            python.version,
            python.path.display(),
            asked
                .map(|(request, origin)| format!(" ({origin} asks for {request})"))
                .unwrap_or_default(),
            toolchain.uv_version,
            toolchain.uv.display()
        ));
        let environment = environment::cache_key(toolchain, &python, &requirements, self.env);
        let projects: Vec<String> = requirements
            .projects
            .iter()
            .map(|p| format!("{}:{}", p.dir, p.buildable))
            .collect();
        let entry = format!(
            "{}:{}",
            located.shown(),
            located.object.as_deref().unwrap_or("-")
        );
        let (root, key) = (src.to_path_buf(), environment.clone());
        let hash = tokio::task::spawn_blocking(move || {
            artifact::hash(
                &root,
                &HashInputs {
                    environment: &key,
                    entrypoint: &entry,
                    launcher: LAUNCHER,
                    projects: &projects,
                },
            )
        })
        .await
        .map_err(|e| Failure::new(FailureKind::Internal, format!("hashing crashed: {e}")))??;
        let plan = Plan {
            located,
            requirements,
            python,
            environment,
            hash,
            metadata,
        };
        Ok((plan, toolchain))
    }

    /// The install and inspect phases: the environment, the source's projects, inspection,
    /// and the finished artifact at `dest`. `origin` is the source as shown and its commit.
    async fn assemble(
        &self,
        plan: &Plan,
        toolchain: &Toolchain,
        work: &Path,
        dest: &Path,
        (source, commit): (String, Option<Commit>),
    ) -> Result<Assembled, Failure> {
        let src = work.join("src");
        self.enter(BuildPhase::Install).await?;
        let settings = Settings {
            envs: &self.inner.dirs.envs,
            uv_cache: &self.inner.dirs.uv_cache,
            locks: self.inner.shared.env_locks(),
            variables: self.env,
        };
        let env = environment::ensure(
            toolchain,
            &plan.python,
            &plan.environment,
            &src,
            &plan.requirements,
            &settings,
            self.log,
        )
        .await?;
        let installed = environment::install_projects(
            toolchain,
            &env,
            &src,
            &work.join(SITE),
            &plan.requirements,
            &settings,
            self.log,
        )
        .await?;

        self.enter(BuildPhase::Inspect).await?;
        let paths = import_paths(
            work,
            &plan.located,
            &plan.requirements,
            !installed.is_empty(),
        );
        let target = launch_target(&src, &plan.located);
        let subject = inspect::Subject {
            target: &target,
            object: plan.located.object.as_deref(),
            paths: &paths,
        };
        let inspected =
            inspect::inspect(&env.path, work, &src, &subject, self.env, self.log).await?;
        self.log.info(&inspect::summary(&inspected.inspection));
        let manifest = Manifest {
            hash: plan.hash.clone(),
            source,
            commit,
            entrypoint: format!("{}:{}", plan.located.shown(), inspected.object),
            python: plan.python.version.clone(),
            environment: plan.environment.clone(),
            packages: env.packages.iter().chain(&installed).cloned().collect(),
            metadata: plan.metadata.clone(),
            package: None,
        };
        let (from, to, m, i) = (
            work.to_path_buf(),
            dest.to_path_buf(),
            manifest.clone(),
            inspected.inspection.clone(),
        );
        tokio::task::spawn_blocking(move || artifact::finish(&from, &to, &m, &i))
            .await
            .map_err(|e| {
                Failure::new(FailureKind::Internal, format!("finishing crashed: {e}"))
            })??;
        self.log.info(&format!("artifact {} stored", plan.hash));
        Ok(Assembled {
            manifest,
            inspection: inspected.inspection,
            new_environment: env.created.then_some(env.path),
        })
    }

    /// Readies the build's first instance, then records the build ready and makes it live
    /// (one transaction each, logged first).
    async fn promote(&self, built: &Built) -> Result<(), Failure> {
        let deployments = self.inner.store.deployments();
        self.log.info(&format!("built {}", built.entrypoint));
        self.log.flush().await;
        let candidate = Candidate {
            server: self.server,
            deployment: self.id,
            launch: &built.launch,
            patience: None,
        };
        match self.inner.warmup.warm_up(candidate).await {
            Ok(Warmed::Ready) => self
                .log
                .info("an instance of the new deployment is ready; promoting"),
            Ok(Warmed::Starting | Warmed::NotNeeded) => self.log.info("promoting"),
            Err(message) => {
                deployments
                    .abandon_artifact(self.id, &built.artifact)
                    .await?;
                return Err(Failure::new(
                    FailureKind::Start,
                    format!(
                        "the new deployment was not made live because its first instance failed to start: {message}\n\
                         The previous deployment keeps serving; fix the server's startup and deploy again"
                    ),
                ));
            }
        }
        deployments.succeed(self.id, built).await?;
        match deployments.promote(self.id).await? {
            Some(previous) => self.log.info(&format!(
                "promoted; previous live deployment {previous} will be retired"
            )),
            None => self
                .log
                .info("promoted; this is the server's first live deployment"),
        }
        self.log.flush().await;
        tracing::info!("build succeeded and was promoted");
        Ok(())
    }
}

/// What the store records of a finished artifact, with how the runtime starts it.
fn built(
    plan: &Plan,
    dest: &Path,
    envs: &Path,
    manifest: Manifest,
    inspection: serde_json::Value,
) -> Built {
    let object = manifest
        .entrypoint
        .rsplit_once(':')
        .map(|(_, object)| object.to_owned())
        .unwrap_or_default();
    let installed = dest.join(SITE).is_dir();
    let mut args = vec![
        dest.join(LAUNCHER_FILE).to_string_lossy().into_owned(),
        "serve".to_owned(),
        launch_target(&dest.join("src"), &plan.located),
        object,
    ];
    args.extend(
        import_paths(dest, &plan.located, &plan.requirements, installed)
            .iter()
            .map(|p| p.to_string_lossy().into_owned()),
    );
    Built {
        entrypoint: manifest.entrypoint.clone(),
        artifact: manifest.hash.clone(),
        launch: LaunchSpec {
            program: envs.join(&manifest.environment).join("bin").join("python"),
            args,
            working_dir: dest.join("src"),
            transport: Transport::Http,
        },
        manifest: serde_json::to_value(&manifest).unwrap_or_default(),
        inspection,
    }
}

/// The launcher's target: the server file's absolute path, or `module:NAME`.
fn launch_target(src: &Path, located: &Located) -> String {
    match &located.target {
        Target::Module(module) => format!("module:{module}"),
        Target::File(file) | Target::Config(file) => src.join(file).to_string_lossy().into_owned(),
    }
}

/// Folders instances import from, in order: the artifact's installed projects, then the
/// source folders of projects that are not packages and of a module entrypoint.
fn import_paths(
    artifact: &Path,
    located: &Located,
    requirements: &Requirements,
    installed: bool,
) -> Vec<PathBuf> {
    let src = artifact.join("src");
    let mut paths = Vec::new();
    if installed {
        paths.push(artifact.join(SITE));
    }
    let roots = requirements
        .projects
        .iter()
        .filter(|p| !p.buildable)
        .map(|p| p.import_root.as_str())
        .chain(located.import_root.as_deref());
    for root in roots {
        let path = if root.is_empty() {
            src.clone()
        } else {
            src.join(root)
        };
        if !paths.contains(&path) {
            paths.push(path);
        }
    }
    paths
}

/// Unpacks the upload into `src` and removes it: an upload serves one build.
async fn unpack_upload(upload: &Path, src: &Path, log: &BuildLog) -> Result<(), Failure> {
    log.info("unpacking the uploaded source");
    let (archive, dest) = (upload.to_path_buf(), src.to_path_buf());
    let unpacked =
        tokio::task::spawn_blocking(move || unpack::unpack(&archive, &dest, Limits::default()))
            .await
            .map_err(|e| Failure::new(FailureKind::Internal, format!("unpacking crashed: {e}")))?;
    let unpacked = match unpacked {
        Ok(unpacked) => unpacked,
        Err(UnpackError::Corrupt(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::new(
                FailureKind::Source,
                "the upload is gone (each upload is used by one build); upload the source again"
                    .to_owned(),
            ));
        }
        Err(e) => return Err(Failure::new(FailureKind::Source, e.to_string())),
    };
    if let Err(e) = tokio::fs::remove_file(upload).await {
        tracing::warn!(error = %e, "cannot remove a used upload");
    }
    for note in &unpacked.skipped {
        log.info(note);
    }
    log.info(&format!(
        "unpacked {} files ({} KiB)",
        unpacked.files,
        unpacked.bytes.div_ceil(1024)
    ));
    Ok(())
}

async fn locate(src: &Path, request: &BuildRequest, log: &BuildLog) -> Result<Located, Failure> {
    let (src, requested) = (src.to_path_buf(), request.entrypoint.clone());
    let located = tokio::task::spawn_blocking(move || entrypoint::locate(&src, requested.as_ref()))
        .await
        .map_err(|e| Failure::new(FailureKind::Internal, format!("locating crashed: {e}")))??;
    let how = match (&request.entrypoint, &located.config) {
        (_, Some(config)) => format!(" (from {})", config.file),
        (Some(_), None) => String::new(),
        (None, None) => " (default)".to_owned(),
    };
    match &located.object {
        Some(object) => log.info(&format!("entrypoint {}:{object}{how}", located.shown())),
        None => log.info(&format!(
            "entrypoint {}{how}; the server object is found by inspection",
            located.shown()
        )),
    }
    Ok(located)
}
