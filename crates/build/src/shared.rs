//! Artifacts shared between replicas (several `skyport serve` on one PostgreSQL database, each
//! with its own data dir). A build stores its finished artifact folder in the database, packed
//! as a gzip tarball, before the deployment goes live; a replica that must start an instance of
//! an artifact it does not have fetches it, unpacks it (the upload's safe unpacking: nothing
//! outside the folder, no link leading out but a venv's link to a Python this machine has),
//! renames it into `DATA/artifacts/<hash>/` and recreates its uv environment from the
//! manifest's Python version and `name==version` freeze. Launch specs hold
//! the building replica's absolute paths; [`SharedArtifacts::prepare`] rewrites that data dir
//! (found from the spec's `…/artifacts/<hash>` working directory) into this one's, so stored
//! specs, old ones included, run on every replica.
//!
//! On SQLite (one replica) nothing is stored or fetched. This module must not start instances.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use skyport_store::{
    DeploymentId, Dialect, EnvVar, FailureKind, LaunchSpec, Redactor, ServerId, Store, Timestamp,
};
use tokio::sync::OnceCell;

use crate::artifact::{self, MANIFEST, Manifest};
use crate::environment::{self, KeyLocks, Requirements, Settings};
use crate::job::{Failure, SITE};
use crate::package::normalized;
use crate::process::BuildLog;
use crate::toolchain::{self, Toolchain};
use crate::unpack::{self, Limits};

/// Stored artifacts younger than this are never collected: a build may have stored one
/// and not yet recorded the deployment that uses it.
const BLOB_GRACE: Duration = Duration::from_secs(60 * 60);
/// Bounds on a fetched artifact: far above a source's, since it holds installed projects.
const FETCH_LIMITS: Limits = Limits {
    entries: 1_000_000,
    bytes: 8 * 1024 * 1024 * 1024,
};

/// The start of the name of an artifact being unpacked, beside the finished ones.
pub(crate) const FETCH_PREFIX: &str = ".fetch-";

/// One fetch of an artifact, shared by everyone on this replica who needs it meanwhile.
type Fetch = Shared<BoxFuture<'static, Result<bool, String>>>;

/// The artifacts of this replica's data dir and of the database; cheap to clone.
#[derive(Clone)]
pub struct SharedArtifacts {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    data_dir: PathBuf,
    artifacts: PathBuf,
    envs: PathBuf,
    tools: PathBuf,
    uv_cache: PathBuf,
    /// Found (or installed) on the first build or recreation that needs it. The cell also
    /// serialises the uv installation: concurrent builds wait for the first one's attempt
    /// instead of installing twice. A failed attempt is not cached, so fixing the machine
    /// needs no restart.
    toolchain: OnceCell<Toolchain>,
    /// Held while an environment is created, by builds and recreations alike.
    env_locks: KeyLocks,
    /// Held while an environment is recreated (outside `env_locks`, which creating takes).
    recreating: KeyLocks,
    fetches: Mutex<HashMap<String, Fetch>>,
    /// The artifacts this process fetched (rather than built), for build logs.
    fetched: Mutex<HashSet<String>>,
}

/// Who an instance start is for: where the environment's recreation is logged, and the
/// variables uv reads (a private index).
#[derive(Clone, Copy, Debug)]
pub struct Starting<'a> {
    /// The deployment's server.
    pub server: &'a ServerId,
    /// The deployment.
    pub deployment: &'a DeploymentId,
    /// Its environment variables.
    pub env: &'a [EnvVar],
}

impl SharedArtifacts {
    /// The artifacts under `data_dir` (`artifacts/`, `envs/`) and in `store`.
    pub fn new(store: Store, data_dir: &Path) -> SharedArtifacts {
        let data_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        SharedArtifacts {
            inner: Arc::new(Inner {
                store,
                artifacts: data_dir.join("artifacts"),
                envs: data_dir.join("envs"),
                tools: data_dir.join("tools"),
                uv_cache: data_dir.join("cache").join("uv"),
                data_dir,
                toolchain: OnceCell::new(),
                env_locks: KeyLocks::default(),
                recreating: KeyLocks::default(),
                fetches: Mutex::new(HashMap::new()),
                fetched: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// The store artifacts are shared through.
    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The data dir (absolute: launch specs hold absolute paths, since the runtime starts
    /// instances from its own working directory).
    pub(crate) fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// The machine's Pythons and uv, shared by builds and recreations.
    pub(crate) fn toolchain(&self) -> &OnceCell<Toolchain> {
        &self.inner.toolchain
    }

    /// The locks environments are created under, shared by builds and recreations.
    pub(crate) fn env_locks(&self) -> &KeyLocks {
        &self.inner.env_locks
    }

    /// Whether replicas share the database (PostgreSQL), and so artifacts go through it.
    fn replicated(&self) -> bool {
        self.inner.store.dialect() == Dialect::Postgres
    }

    /// `launch` as it runs on this replica: its paths moved into this data dir, its artifact
    /// fetched if another replica built it, its environment recreated if missing.
    pub async fn prepare(
        &self,
        launch: &LaunchSpec,
        starting: Starting<'_>,
    ) -> Result<LaunchSpec, String> {
        let Some((home, hash)) = artifact_home(&launch.working_dir) else {
            return Ok(launch.clone());
        };
        let local = if home == self.inner.data_dir {
            launch.clone()
        } else {
            relocated(launch, &home, &self.inner.data_dir)
        };
        // One replica built everything it runs: a start reads nothing more.
        if !self.replicated() {
            return Ok(local);
        }
        let dir = self.inner.artifacts.join(&hash);
        if !dir.join(MANIFEST).is_file() && !self.fetch(&hash).await? {
            return Err(format!(
                "artifact {hash} is not in this replica's data dir ({}) and no replica stored it in the database; deploy the server again",
                self.inner.data_dir.display()
            ));
        }
        let manifest = artifact::read_manifest(&dir).ok_or_else(|| {
            format!(
                "artifact {hash} in {} has no readable manifest; remove that folder (this replica fetches it again) or deploy the server again",
                dir.display()
            )
        })?;
        if !manifest.environment.is_empty() {
            self.ensure_environment(&manifest, &dir, starting).await?;
        }
        Ok(local)
    }

    /// Fetches `hash` from the database into `DATA/artifacts/<hash>/` unless it is there;
    /// `false` when no replica stored it (or replicas do not share one). Concurrent calls
    /// for one hash share one fetch, which goes on when its callers give up.
    pub(crate) async fn fetch(&self, hash: &str) -> Result<bool, String> {
        if self.inner.artifacts.join(hash).join(MANIFEST).is_file() {
            return Ok(true);
        }
        if !self.replicated() || !artifact::is_hash(hash) {
            return Ok(false);
        }
        let fetch = {
            let mut fetches = self
                .inner
                .fetches
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            fetches
                .entry(hash.to_owned())
                .or_insert_with(|| {
                    let (this, hash) = (self.clone(), hash.to_owned());
                    let task = tokio::spawn(async move {
                        let fetched = this.download(&hash).await;
                        this.inner
                            .fetches
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .remove(&hash);
                        fetched
                    });
                    async move {
                        task.await
                            .unwrap_or_else(|e| Err(format!("fetching crashed: {e}")))
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        fetch.await
    }

    /// Whether this process fetched artifact `hash` from the database.
    pub(crate) fn was_fetched(&self, hash: &str) -> bool {
        self.inner
            .fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(hash)
    }

    async fn download(&self, hash: &str) -> Result<bool, String> {
        let Some(bytes) = self
            .inner
            .store
            .artifact_blobs()
            .read(hash)
            .await
            .map_err(|e| format!("cannot read artifact {hash} from the database: {e}"))?
        else {
            return Ok(false);
        };
        let started = std::time::Instant::now();
        let (artifacts, name, size) = (self.inner.artifacts.clone(), hash.to_owned(), bytes.len());
        tokio::task::spawn_blocking(move || install(&bytes, &artifacts, &name))
            .await
            .map_err(|e| format!("unpacking crashed: {e}"))??;
        tracing::info!(
            artifact = %hash,
            bytes = size,
            ms = started.elapsed().as_millis() as u64,
            "fetched an artifact another replica built"
        );
        self.inner
            .fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(hash.to_owned());
        Ok(true)
    }

    /// Stores the finished artifact `hash` in the database for the other replicas, unless
    /// it is stored already; nothing on SQLite.
    pub(crate) async fn upload(&self, hash: &str, environment: &str) -> Result<(), Failure> {
        if !self.replicated() {
            return Ok(());
        }
        let blobs = self.inner.store.artifact_blobs();
        if blobs.get(hash).await?.is_some() {
            return Ok(());
        }
        let dir = self.inner.artifacts.join(hash);
        let packed = tokio::task::spawn_blocking(move || pack(&dir))
            .await
            .map_err(|e| Failure::new(FailureKind::Internal, format!("packing crashed: {e}")))?
            .map_err(|e| {
                Failure::new(
                    FailureKind::Internal,
                    format!("cannot pack artifact {hash} for the other replicas: {e}"),
                )
            })?;
        blobs.put(hash, environment, &packed).await?;
        Ok(())
    }

    /// Deletes stored artifacts that none of `kept` names, older than an hour; done by one
    /// replica at a time (claim `artifact-blobs`), nothing on SQLite.
    pub(crate) async fn collect_garbage(&self, kept: &[String]) {
        if !self.replicated() {
            return;
        }
        let mut claim = self.inner.store.claim("artifact-blobs");
        if !claim.held().await {
            return;
        }
        let blobs = self.inner.store.artifact_blobs();
        let stored = match blobs.list().await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list stored artifacts");
                return;
            }
        };
        let cutoff = Timestamp::now() - BLOB_GRACE;
        for old in stored
            .iter()
            .filter(|a| a.stored_at < cutoff && !kept.contains(&a.hash))
        {
            match blobs.delete(&old.hash).await {
                Ok(_) => {
                    tracing::info!(artifact = %old.hash, "deleted a stored artifact no retained deployment uses")
                }
                Err(e) => {
                    tracing::warn!(artifact = %old.hash, error = %e, "cannot delete a stored artifact")
                }
            }
        }
    }

    /// Recreates the environment `manifest` runs in when this replica has none: the same
    /// Python version, the packages of its freeze (less the projects installed into the
    /// artifact's `site/`), built like any environment and logged on the deployment.
    async fn ensure_environment(
        &self,
        manifest: &Manifest,
        dir: &Path,
        starting: Starting<'_>,
    ) -> Result<(), String> {
        let key = &manifest.environment;
        if environment::is_complete(&self.inner.envs, key) {
            return Ok(());
        }
        // One recreation per key: a start and the prefetch of a promotion often meet here.
        let _recreating = self.inner.recreating.lock(key).await;
        if environment::is_complete(&self.inner.envs, key) {
            return Ok(());
        }
        let log = BuildLog::new(
            self.inner.store.logs().writer(),
            starting.server.clone(),
            starting.deployment.clone(),
        )
        .redacting(Redactor::new(starting.env));
        let recreated = self.recreate(manifest, dir, starting.env, &log).await;
        if let Err(failure) = &recreated {
            log.info(&failure.message);
        }
        log.flush().await;
        recreated.map_err(|f| f.message)
    }

    async fn recreate(
        &self,
        manifest: &Manifest,
        dir: &Path,
        variables: &[EnvVar],
        log: &BuildLog,
    ) -> Result<(), Failure> {
        let key = &manifest.environment;
        log.info(&format!(
            "artifact {} was built on another replica: recreating its environment {key} here",
            manifest.hash
        ));
        let toolchain = self
            .inner
            .toolchain
            .get_or_try_init(|| toolchain::discover(&self.inner.tools, log))
            .await?;
        let python = toolchain.select(Some((
            &format!("=={}", manifest.python),
            "the artifact's manifest",
        )))?;
        let projects = installed_projects(&dir.join(SITE));
        let pins: String = manifest
            .packages
            .iter()
            .filter(|p| !projects.contains(&project_of(p)))
            .map(|p| format!("{p}\n"))
            .collect();
        // uv reads the freeze from a folder of its own; a leftover is collected like an
        // abandoned environment (`.tmp-`).
        let scratch = self.inner.envs.join(format!(
            ".tmp-freeze-{}",
            ulid::Ulid::new().to_string().to_ascii_lowercase()
        ));
        let write = std::fs::create_dir_all(&scratch)
            .and_then(|()| std::fs::write(scratch.join("requirements.txt"), &pins));
        if let Err(e) = write {
            return Err(Failure::new(
                FailureKind::Internal,
                format!("cannot write the environment's freeze: {e}"),
            ));
        }
        let requirements = Requirements {
            files: vec![("requirements.txt".to_owned(), pins.into_bytes())],
            has_fastmcp: true,
            ..Requirements::default()
        };
        let settings = Settings {
            envs: &self.inner.envs,
            uv_cache: &self.inner.uv_cache,
            locks: &self.inner.env_locks,
            variables,
        };
        let ensured = environment::ensure(
            toolchain,
            &python,
            key,
            &scratch,
            &requirements,
            &settings,
            log,
        )
        .await;
        let _ = std::fs::remove_dir_all(&scratch);
        ensured.map(drop)
    }
}

/// Fetches the artifact of every deployment promoted anywhere (the change feed crosses
/// replicas on PostgreSQL), and recreates its environment, in the background: the first
/// request on this replica then finds them in place. Runs until the store's feed closes;
/// nothing on SQLite.
pub async fn prefetch_promoted(shared: SharedArtifacts) {
    if !shared.replicated() {
        return;
    }
    let mut changes = shared.inner.store.subscribe();
    loop {
        let live = match changes.recv().await {
            Ok(skyport_store::Change::Promoted { live, .. }) => live,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = shared.prefetch(&live).await {
                tracing::warn!(deployment = %live, "cannot fetch a promoted deployment's artifact ahead of need: {e}");
            }
        });
    }
}

impl SharedArtifacts {
    async fn prefetch(&self, id: &DeploymentId) -> Result<(), String> {
        let store = &self.inner.store;
        let deployment = store
            .deployments()
            .get(id)
            .await
            .map_err(|e| e.to_string())?;
        let Some((deployment, built)) = deployment.and_then(|d| d.built.clone().map(|b| (d, b)))
        else {
            return Ok(());
        };
        let env = store
            .env()
            .of_deployment(id)
            .await
            .map_err(|e| e.to_string())?;
        let starting = Starting {
            server: &deployment.server_id,
            deployment: id,
            env: &env,
        };
        self.prepare(&built.launch, starting).await.map(drop)
    }
}

/// The data dir and artifact hash a launch spec's working directory lies in
/// (`DATA/artifacts/<hash>` or a folder inside it); `None` for a spec not run from an artifact.
fn artifact_home(working_dir: &Path) -> Option<(PathBuf, String)> {
    working_dir.ancestors().find_map(|dir| {
        let name = dir.file_name()?.to_str()?;
        let artifacts = dir.parent()?;
        (artifacts.file_name()? == "artifacts" && artifact::is_hash(name))
            .then(|| Some((artifacts.parent()?.to_path_buf(), name.to_owned())))
            .flatten()
    })
}

/// `launch` with every path under `from` moved under `to`.
fn relocated(launch: &LaunchSpec, from: &Path, to: &Path) -> LaunchSpec {
    let moved = |path: &Path| match path.strip_prefix(from) {
        Ok(inside) => to.join(inside),
        Err(_) => path.to_path_buf(),
    };
    LaunchSpec {
        program: moved(&launch.program),
        args: launch
            .args
            .iter()
            .map(|arg| match Path::new(arg).strip_prefix(from) {
                Ok(inside) => to.join(inside).to_string_lossy().into_owned(),
                Err(_) => arg.clone(),
            })
            .collect(),
        working_dir: moved(&launch.working_dir),
        transport: launch.transport.clone(),
    }
}

/// The artifact folder `dir` as a gzip tarball (links kept as links, so that unpacking
/// refuses them rather than following them here).
fn pack(dir: &Path) -> std::io::Result<Vec<u8>> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(encoder);
    tar.follow_symlinks(false);
    tar.append_dir_all(".", dir)?;
    tar.into_inner()?.finish()
}

/// Unpacks a fetched tarball beside the artifacts and renames it to `artifacts/<hash>`,
/// finished (read-only) like a built one. A concurrent fetch that got there first wins.
fn install(bytes: &[u8], artifacts: &Path, hash: &str) -> Result<(), String> {
    let tmp = artifacts.join(format!(
        "{FETCH_PREFIX}{hash}-{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    ));
    let unpacked = unpack::unpack_artifact(bytes, &tmp, FETCH_LIMITS);
    let outcome = match unpacked {
        Ok(unpacked) if unpacked.skipped.is_empty() => match artifact::load(&tmp) {
            Some((manifest, inspection)) if manifest.hash == hash => {
                artifact::finish(&tmp, &artifacts.join(hash), &manifest, &inspection)
                    .map_err(|f| f.message)
            }
            _ => Err(format!("stored artifact {hash} has no manifest naming it")),
        },
        Ok(unpacked) => Err(format!(
            "stored artifact {hash} holds entries this replica cannot unpack ({}); run every replica from the same image (the same Pythons at the same paths)",
            unpacked.skipped.join("; ")
        )),
        Err(e) => Err(format!("cannot unpack stored artifact {hash}: {e}")),
    };
    if outcome.is_err() {
        artifact::remove(&tmp);
    }
    outcome
}

/// The normalized project name of a freeze line (`Name==1.0`, `name @ URL`).
fn project_of(pin: &str) -> String {
    normalized(pin.split(['=', ' ', '@']).next().unwrap_or_default())
}

/// The normalized names of the projects a build installed into an artifact's `site/`.
fn installed_projects(site: &Path) -> Vec<String> {
    std::fs::read_dir(site)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".dist-info")?;
            let (project, _version) = stem.rsplit_once('-')?;
            Some(normalized(project))
        })
        .collect()
}

#[cfg(test)]
mod tests;
