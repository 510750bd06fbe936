//! Python environments built with uv, shared between deployments whose dependencies are the
//! same. An environment is keyed by everything that determines its contents (interpreter, uv,
//! dependency files, this recipe); it is built in a temporary folder and renamed into place
//! complete, so a reader never sees half an environment. Environments are never modified once
//! complete: artifacts refer to them.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use skyport_store::FailureKind;
use tokio::time::Instant;

use crate::job::Failure;
use crate::process::{BuildLog, RunError, command, run_logged, shown};
use crate::toolchain::Toolchain;

/// Changes whenever what goes into an environment changes (the commands below, the always
/// installed packages), so that old environments are not reused for the new recipe.
const RECIPE: &str =
    "skyport-env-4: uv venv --relocatable; uv pip install --compile-bytecode [-r DEPS] fastmcp";
/// Packages every environment gets: the launcher needs FastMCP to load and serve the server.
const ALWAYS_INSTALLED: &str = "fastmcp";
/// The marker written last into a finished environment.
const COMPLETE: &str = ".complete";
/// Limit for creating and filling one environment.
const TIME_LIMIT: Duration = Duration::from_secs(600);
/// Lines of uv's standard error quoted in a failure (its resolution errors are the useful part).
const ERROR_TAIL: usize = 15;

/// The dependency files that decide an environment's contents, as read from a source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DependencyFiles {
    pub(crate) requirements: Option<Vec<u8>>,
    pub(crate) pyproject: Option<Vec<u8>>,
}

impl DependencyFiles {
    /// Reads `requirements.txt` and `pyproject.toml` at the top of `src`, where present.
    pub(crate) async fn read(src: &Path) -> Result<DependencyFiles, Failure> {
        Ok(DependencyFiles {
            requirements: read_optional(&src.join("requirements.txt")).await?,
            pyproject: read_optional(&src.join("pyproject.toml")).await?,
        })
    }

    /// The file uv installs from: `requirements.txt` when present (it pins what the author
    /// tested), else the dependencies declared in `pyproject.toml`. The project itself is not
    /// installed: the launcher loads it from the source by path.
    fn install_from(&self) -> Option<&'static str> {
        if self.requirements.is_some() {
            Some("requirements.txt")
        } else if self.pyproject.is_some() {
            Some("pyproject.toml")
        } else {
            None
        }
    }
}

async fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, Failure> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Failure::new(
            FailureKind::Source,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

/// The cache key of an environment: 16 hex digits of a SHA-256 over its inputs.
pub(crate) fn cache_key(toolchain: &Toolchain, deps: &DependencyFiles) -> String {
    let mut hash = Sha256::new();
    // Each field is tagged and length-prefixed so that no two different inputs hash the same
    // byte stream (e.g. moving bytes from one file to the other).
    let mut field = |tag: &str, bytes: &[u8]| {
        hash.update(tag.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    field("recipe", RECIPE.as_bytes());
    field("python", toolchain.python.as_os_str().as_encoded_bytes());
    field("python-version", toolchain.python_version.as_bytes());
    field("uv-version", toolchain.uv_version.as_bytes());
    if let Some(bytes) = &deps.requirements {
        field("requirements.txt", bytes);
    }
    if let Some(bytes) = &deps.pyproject {
        field("pyproject.toml", bytes);
    }
    hex::encode(&hash.finalize()[..8])
}

/// One lock per cache key, so that concurrent builds with the same dependencies build the
/// environment once and the others reuse it.
#[derive(Default)]
pub(crate) struct KeyLocks {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl KeyLocks {
    fn get(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(key.to_owned()).or_default().clone()
    }
}

/// Where environments live and how uv is run.
pub(crate) struct Settings<'a> {
    pub(crate) envs: &'a Path,
    pub(crate) uv_cache: &'a Path,
    pub(crate) locks: &'a KeyLocks,
}

/// Returns the environment for `src`'s dependencies, building it if no complete one exists.
pub(crate) async fn ensure(
    toolchain: &Toolchain,
    src: &Path,
    settings: &Settings<'_>,
    log: &BuildLog,
) -> Result<PathBuf, Failure> {
    let deps = DependencyFiles::read(src).await?;
    let key = cache_key(toolchain, &deps);
    let env = settings.envs.join(&key);
    let lock = settings.locks.get(&key);
    let _building = lock.lock().await;
    if env.join(COMPLETE).is_file() {
        log.info(&format!("reusing environment {key} (cached)"));
        return Ok(env);
    }
    match deps.install_from() {
        Some(file) => log.info(&format!(
            "creating environment {key}: installing {file} and {ALWAYS_INSTALLED}"
        )),
        None => log.info(&format!(
            "creating environment {key}: no requirements.txt or pyproject.toml, installing {ALWAYS_INSTALLED} only"
        )),
    }
    let internal =
        |what: &str, e: std::io::Error| Failure::new(FailureKind::Internal, format!("{what}: {e}"));
    if env.exists() {
        // Only the rename below creates this folder, and it moves a complete environment, so
        // an incomplete one was damaged or edited by hand: build it again.
        tokio::fs::remove_dir_all(&env)
            .await
            .map_err(|e| internal(&format!("cannot remove incomplete {}", env.display()), e))?;
    }
    tokio::fs::create_dir_all(settings.envs)
        .await
        .map_err(|e| internal("cannot create the environments folder", e))?;
    let tmp = settings.envs.join(format!(
        ".tmp-{key}-{}",
        ulid::Ulid::new().to_string().to_ascii_lowercase()
    ));
    let started = Instant::now();
    let built = fill(toolchain, src, &tmp, &deps, settings, log).await;
    let result = match built {
        Ok(()) => match tokio::fs::rename(&tmp, &env).await {
            Ok(()) => Ok(env),
            // Another Skyport process sharing the data folder finished the same key first.
            Err(_) if env.join(COMPLETE).is_file() => Ok(env),
            Err(e) => Err(internal(
                &format!("cannot move the environment into {}", env.display()),
                e,
            )),
        },
        Err(failure) => Err(failure),
    };
    if tmp.exists() {
        let _ = tokio::fs::remove_dir_all(&tmp).await;
    }
    if result.is_ok() {
        log.info(&format!(
            "environment {key} ready in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
    }
    result
}

/// Creates the virtual environment at `tmp` and installs the dependencies into it.
async fn fill(
    toolchain: &Toolchain,
    src: &Path,
    tmp: &Path,
    deps: &DependencyFiles,
    settings: &Settings<'_>,
    log: &BuildLog,
) -> Result<(), Failure> {
    let deadline = Instant::now() + TIME_LIMIT;
    let venv_args = [
        OsStr::new("venv"),
        OsStr::new("--relocatable"),
        OsStr::new("--python"),
        toolchain.python.as_os_str(),
        tmp.as_os_str(),
    ];
    let finished = uv(toolchain, src, settings, &venv_args, deadline, log).await?;
    if !finished.status.success() {
        return Err(Failure::new(
            FailureKind::Toolchain,
            format!(
                "uv could not create a virtual environment with {} ({}):\n{}\ncheck that this Python works, or set SKYPORT_PYTHON to another one",
                toolchain.python.display(),
                finished.exit(),
                finished.stderr_tail_text()
            ),
        ));
    }
    let python = tmp.join("bin").join("python");
    let mut install_args = vec![
        OsStr::new("pip"),
        OsStr::new("install"),
        // Instances start from an environment that is never written again: without compiled
        // bytecode every cold start would compile each imported module anew.
        OsStr::new("--compile-bytecode"),
        OsStr::new("--python"),
        python.as_os_str(),
    ];
    if let Some(file) = deps.install_from() {
        install_args.extend([OsStr::new("-r"), OsStr::new(file)]);
    }
    install_args.push(OsStr::new(ALWAYS_INSTALLED));
    let finished = uv(toolchain, src, settings, &install_args, deadline, log).await?;
    if !finished.status.success() {
        let fix = match deps.install_from() {
            Some(file) => format!("fix {file} and deploy again"),
            None => "check the package index settings and deploy again".to_owned(),
        };
        return Err(Failure::new(
            FailureKind::Dependencies,
            format!(
                "installing dependencies failed (uv: {}):\n{}\n{fix}",
                finished.exit(),
                uv_errors(&finished.stderr_tail)
            ),
        ));
    }
    tokio::fs::write(tmp.join(COMPLETE), toolchain.uv_version.as_bytes())
        .await
        .map_err(|e| {
            Failure::new(
                FailureKind::Internal,
                format!("cannot mark the environment complete: {e}"),
            )
        })
}

/// uv's error output without its "Using Python … environment at: <temporary folder>" preamble,
/// which names a folder that no longer exists when the user reads it.
fn uv_errors(tail: &[String]) -> String {
    tail.iter()
        .filter(|line| !line.starts_with("Using Python "))
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs uv with `args` in `src`, logged, until `deadline`.
async fn uv(
    toolchain: &Toolchain,
    src: &Path,
    settings: &Settings<'_>,
    args: &[&OsStr],
    deadline: Instant,
    log: &BuildLog,
) -> Result<crate::process::Finished, Failure> {
    log.info(&shown(&toolchain.uv, args));
    let mut cmd = command(&toolchain.uv);
    cmd.args(args).current_dir(src);
    for (name, value) in uv_environment(settings.uv_cache, |name| std::env::var(name).ok()) {
        cmd.env(name, value);
    }
    // These would make uv (or the Python it probes) look at another environment.
    for name in ["VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME"] {
        cmd.env_remove(name);
    }
    let limit = deadline.saturating_duration_since(Instant::now());
    run_logged(cmd, log, limit, ERROR_TAIL)
        .await
        .map_err(|e| match e {
            RunError::Timeout => Failure::new(
                FailureKind::Timeout,
                format!(
                    "creating the environment took longer than {} minutes; check the network and the package index, or trim the dependencies",
                    TIME_LIMIT.as_secs() / 60
                ),
            ),
            other => Failure::new(
                FailureKind::Toolchain,
                format!(
                    "cannot run uv ({}): {other}; install uv (pip install uv) or set SKYPORT_UV",
                    toolchain.uv.display()
                ),
            ),
        })
}

/// Variables set for uv on top of the inherited environment. uv reads its own settings, not
/// pip's, so an operator's pip configuration (index, extra wheels, certificate) is carried
/// over when the matching uv setting is unset; without this, a machine that reaches PyPI only
/// through a mirror would fail every build.
pub(crate) fn uv_environment(
    uv_cache: &Path,
    var: impl Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    let mut set = vec![
        ("UV_PYTHON_DOWNLOADS".to_owned(), "never".to_owned()),
        ("UV_NO_PROGRESS".to_owned(), "1".to_owned()),
        ("NO_COLOR".to_owned(), "1".to_owned()),
    ];
    if var("UV_CACHE_DIR").is_none() {
        set.push((
            "UV_CACHE_DIR".to_owned(),
            uv_cache.to_string_lossy().into_owned(),
        ));
    }
    let unset = |names: &[&str]| names.iter().all(|name| var(name).is_none());
    if let Some(index) = var("PIP_INDEX_URL")
        && unset(&["UV_DEFAULT_INDEX", "UV_INDEX_URL"])
    {
        set.push(("UV_DEFAULT_INDEX".to_owned(), index));
    }
    if let Some(extra) = var("PIP_EXTRA_INDEX_URL")
        && unset(&["UV_INDEX", "UV_EXTRA_INDEX_URL"])
    {
        // Both are space-separated lists.
        set.push(("UV_INDEX".to_owned(), extra));
    }
    if let Some(links) = var("PIP_FIND_LINKS")
        && unset(&["UV_FIND_LINKS"])
    {
        // pip separates with spaces, uv with commas.
        let links: Vec<&str> = links.split_whitespace().collect();
        set.push(("UV_FIND_LINKS".to_owned(), links.join(",")));
    }
    if let Some(cert) = var("PIP_CERT")
        && unset(&["SSL_CERT_FILE"])
    {
        set.push(("SSL_CERT_FILE".to_owned(), cert));
    }
    set
}
