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
use skyport_store::{EnvVar, FailureKind};
use tokio::time::Instant;

use crate::config::EnvironmentSection;
use crate::entrypoint::Located;
use crate::job::Failure;
use crate::process::{BuildLog, GroupGuard, RunError, command, run_logged, shown};
use crate::toolchain::{Interpreter, Toolchain};

/// Changes whenever what goes into an environment changes (the commands below, the always
/// installed packages), so that old environments are not reused for the new recipe.
const RECIPE: &str = "skyport-env-6: uv venv --relocatable; uv pip install [-r FILE]... [DEP]... [fastmcp]; uv pip freeze; compileall later";
/// The package every environment gets unless the source already asks for it: the launcher
/// needs FastMCP to load and serve the server.
const ALWAYS_INSTALLED: &str = "fastmcp";
/// The marker written last into a finished environment.
const COMPLETE: &str = ".complete";
/// `uv pip freeze` of a finished environment.
const PACKAGES: &str = "packages.txt";
/// Limit for creating and filling one environment.
const TIME_LIMIT: Duration = Duration::from_secs(600);
/// Lines of uv's standard error quoted in a failure (its resolution errors are the useful part).
const ERROR_TAIL: usize = 15;
/// Given to build backends that derive the version from git tags (setuptools-scm, hatch-vcs):
/// an artifact has no `.git`, and a shallow clone has no tags.
const FALLBACK_VERSION: &str = "0.0.0+skyport";

/// What an environment must contain, resolved from the source: the inputs of its cache key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Requirements {
    /// Files uv installs with `-r` (requirements files, and `pyproject.toml` of local
    /// projects, whose dependencies uv reads), relative to the source root, with contents.
    pub(crate) files: Vec<(String, Vec<u8>)>,
    /// Packages named directly (`fastmcp.json` dependencies).
    pub(crate) packages: Vec<String>,
    /// Local projects (folders relative to the source root) installed into the artifact.
    pub(crate) projects: Vec<LocalProject>,
    /// The Python version asked for and where: (`>=3.10`, `pyproject.toml requires-python`).
    pub(crate) python: Option<(String, String)>,
    /// Whether the source already asks for FastMCP itself.
    pub(crate) has_fastmcp: bool,
}

/// A folder with a `pyproject.toml` in the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LocalProject {
    /// The folder, relative to the source root (`""` for the root).
    pub(crate) dir: String,
    /// Whether it declares a build system, i.e. can be built and installed as a package;
    /// otherwise (an application folder) it is imported from the source as it is.
    pub(crate) buildable: bool,
    /// Where its modules are imported from: `dir/src` for a src layout, else `dir`.
    pub(crate) import_root: String,
}

impl Requirements {
    /// What to install for `located`: `fastmcp.json`'s environment when it has one, else the
    /// nearest `requirements.txt`, else the nearest `pyproject.toml` (as a project), searching
    /// from the server file's folder up to the source root.
    pub(crate) fn resolve(root: &Path, located: &Located) -> Result<Requirements, Failure> {
        let mut req = Requirements::default();
        let section = located.config.as_ref().map(|c| (&c.environment, &c.file));
        let configured = section.is_some_and(|(env, _)| *env != EnvironmentSection::default());
        if let Some((env, file)) = section.filter(|_| configured) {
            if let Some(requirements) = &env.requirements {
                req.add_file(root, requirements, file)?;
            }
            for dir in env.project.iter().chain(&env.editable) {
                req.add_project(root, dir, file)?;
            }
            req.packages.clone_from(&env.dependencies);
            if let Some(python) = &env.python {
                req.python = Some((python.clone(), file.clone()));
            }
        } else {
            let start = located
                .path
                .strip_prefix(root)
                .ok()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            if let Some(dir) = nearest(root, &start, "requirements.txt") {
                let file = join(&dir, "requirements.txt");
                req.add_file(root, &file, "the source")?;
            } else if let Some(dir) = nearest(root, &start, "pyproject.toml") {
                req.add_project(root, &dir, "the source")?;
            }
        }
        if req.python.is_none() {
            req.python = python_version_file(root, &req);
        }
        req.has_fastmcp |= req.packages.iter().any(|p| names_fastmcp(p));
        Ok(req)
    }

    fn add_file(&mut self, root: &Path, file: &str, named_by: &str) -> Result<(), Failure> {
        let bytes = std::fs::read(root.join(file)).map_err(|e| {
            Failure::new(
                FailureKind::Config,
                format!("{named_by} names {file}, which cannot be read: {e}"),
            )
        })?;
        let text = String::from_utf8_lossy(&bytes);
        self.has_fastmcp |= text.lines().any(names_fastmcp);
        self.files.push((file.to_owned(), bytes));
        Ok(())
    }

    fn add_project(&mut self, root: &Path, dir: &str, named_by: &str) -> Result<(), Failure> {
        let file = join(dir, "pyproject.toml");
        let bytes = std::fs::read(root.join(&file)).map_err(|e| {
            Failure::new(
                FailureKind::Config,
                format!(
                    "{named_by} names the project {}, but {file} cannot be read: {e}",
                    shown_dir(dir)
                ),
            )
        })?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let parsed: toml::Table = toml::from_str(&text).map_err(|e| {
            Failure::new(
                FailureKind::Config,
                format!("{file} is not valid TOML: {e}"),
            )
        })?;
        let project = parsed.get("project").and_then(toml::Value::as_table);
        let dependencies = project
            .and_then(|p| p.get("dependencies"))
            .and_then(toml::Value::as_array);
        self.has_fastmcp |= dependencies
            .into_iter()
            .flatten()
            .filter_map(toml::Value::as_str)
            .any(names_fastmcp);
        if self.python.is_none()
            && let Some(requires) = project
                .and_then(|p| p.get("requires-python"))
                .and_then(toml::Value::as_str)
        {
            self.python = Some((requires.to_owned(), format!("{file} requires-python")));
        }
        let src_layout = root.join(dir).join("src").is_dir();
        self.projects.push(LocalProject {
            dir: dir.to_owned(),
            buildable: parsed.contains_key("build-system") && project.is_some(),
            import_root: if src_layout {
                join(dir, "src")
            } else {
                dir.to_owned()
            },
        });
        if project.is_some() {
            self.files.push((file, bytes));
        }
        Ok(())
    }

    /// The files and packages uv installs, as shown in the log.
    fn describe(&self) -> String {
        let mut parts: Vec<String> = self.files.iter().map(|(f, _)| f.clone()).collect();
        parts.extend(self.packages.iter().cloned());
        if !self.has_fastmcp {
            parts.push(ALWAYS_INSTALLED.to_owned());
        }
        parts.join(", ")
    }
}

/// `.python-version` in the first local project's folder or at the root.
fn python_version_file(root: &Path, req: &Requirements) -> Option<(String, String)> {
    let dirs = req.projects.iter().map(|p| p.dir.as_str()).chain([""]);
    for dir in dirs {
        let file = join(dir, ".python-version");
        if let Ok(text) = std::fs::read_to_string(root.join(&file))
            && let Some(line) = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
        {
            return Some((line.to_owned(), file));
        }
    }
    None
}

/// The folder (relative to `root`) nearest to `start` going up that holds `name`.
fn nearest(root: &Path, start: &Path, name: &str) -> Option<String> {
    let mut dir = Some(start);
    while let Some(current) = dir {
        if root.join(current).join(name).is_file() {
            return Some(current.to_string_lossy().into_owned());
        }
        dir = current.parent();
    }
    None
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

fn shown_dir(dir: &str) -> &str {
    if dir.is_empty() { "." } else { dir }
}

/// Whether a requirement line names the `fastmcp` distribution (any version or extras).
fn names_fastmcp(requirement: &str) -> bool {
    let name: String = requirement
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    name.to_ascii_lowercase().replace(['_', '.'], "-") == "fastmcp"
}

/// The cache key of an environment: 16 hex digits of a SHA-256 over its inputs. Of the
/// deployment's variables, those uv and pip read (`UV_*`, `PIP_*`: a private index, its
/// credentials, find-links) are inputs, since they can change what gets installed; secrets
/// among them too, which only a SHA-256 of many fields ever shows. Other variables do not
/// change the environment, so changing them reuses it (and the artifact).
pub(crate) fn cache_key(
    toolchain: &Toolchain,
    python: &Interpreter,
    req: &Requirements,
    variables: &[EnvVar],
) -> String {
    let mut hash = Sha256::new();
    // Each field is tagged and length-prefixed so that no two different inputs hash the same
    // byte stream (e.g. moving bytes from one file to the other).
    let mut field = |tag: &str, bytes: &[u8]| {
        hash.update(tag.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    field("recipe", RECIPE.as_bytes());
    field("python", python.path.as_os_str().as_encoded_bytes());
    field("python-version", python.version.as_bytes());
    field("uv-version", toolchain.uv_version.as_bytes());
    for (file, bytes) in &req.files {
        field("file", file.as_bytes());
        field("contents", bytes);
    }
    for package in &req.packages {
        field("package", package.as_bytes());
    }
    field("fastmcp", &[u8::from(req.has_fastmcp)]);
    for var in variables.iter().filter(|v| reads_variable(&v.name)) {
        field("variable", var.name.as_bytes());
        field("value", var.value.as_bytes());
    }
    hex::encode(&hash.finalize()[..8])
}

/// Whether uv or pip reads the variable `name` (and so it may change what gets installed).
fn reads_variable(name: &str) -> bool {
    name.starts_with("UV_") || name.starts_with("PIP_")
}

/// A complete environment.
#[derive(Clone, Debug)]
pub(crate) struct Environment {
    /// Its folder.
    pub(crate) path: PathBuf,
    /// `name==version` of every installed package.
    pub(crate) packages: Vec<String>,
    /// Whether this build created it (so its bytecode is not compiled yet).
    pub(crate) created: bool,
}

/// Compiles the bytecode of every module in a new environment, so that cold starts never
/// compile. It runs after the deploy that created the environment, one process at a time;
/// Python writes each `.pyc` atomically, so instances importing meanwhile are unaffected.
pub(crate) async fn compile_bytecode(env: PathBuf) {
    let mut cmd = command(env.join("bin").join("python"));
    cmd.args(["-m", "compileall", "-q", "-j", "1"])
        .arg(env.join("lib"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            tracing::warn!(error = %e, "cannot compile an environment's bytecode");
            return;
        }
    };
    let group = GroupGuard::new(&child);
    let finished = tokio::time::timeout(TIME_LIMIT, child.wait()).await;
    if matches!(finished, Ok(Ok(_))) {
        group.disarm();
    }
    match finished {
        Ok(Ok(status)) => tracing::info!(
            environment = %env.display(),
            %status,
            seconds = started.elapsed().as_secs_f64(),
            "compiled the environment's bytecode"
        ),
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot compile an environment's bytecode"),
        Err(_) => tracing::warn!("compiling an environment's bytecode did not finish in time"),
    }
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

    /// Holds the lock of `key` until the guard is dropped.
    pub(crate) async fn lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        self.get(key).lock_owned().await
    }
}

/// Where environments live and how uv is run.
pub(crate) struct Settings<'a> {
    pub(crate) envs: &'a Path,
    pub(crate) uv_cache: &'a Path,
    pub(crate) locks: &'a KeyLocks,
    /// The deployment's variables, which uv gets (a private index and its credentials).
    pub(crate) variables: &'a [EnvVar],
}

/// Whether `envs` holds the complete environment `key`.
pub(crate) fn is_complete(envs: &Path, key: &str) -> bool {
    envs.join(key).join(COMPLETE).is_file()
}

/// Returns the environment `key` (its [`cache_key`]) for `req`, building it if no complete one
/// exists.
pub(crate) async fn ensure(
    toolchain: &Toolchain,
    python: &Interpreter,
    key: &str,
    src: &Path,
    req: &Requirements,
    settings: &Settings<'_>,
    log: &BuildLog,
) -> Result<Environment, Failure> {
    let env = settings.envs.join(key);
    let _building = settings.locks.lock(key).await;
    let created = !env.join(COMPLETE).is_file();
    if created {
        create(toolchain, python, src, req, settings, key, log).await?;
    } else {
        log.info(&format!("reusing environment {key} (cached)"));
    }
    let packages = tokio::fs::read_to_string(env.join(PACKAGES))
        .await
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    Ok(Environment {
        path: env,
        packages,
        created,
    })
}

async fn create(
    toolchain: &Toolchain,
    python: &Interpreter,
    src: &Path,
    req: &Requirements,
    settings: &Settings<'_>,
    key: &str,
    log: &BuildLog,
) -> Result<(), Failure> {
    let internal =
        |what: &str, e: std::io::Error| Failure::new(FailureKind::Internal, format!("{what}: {e}"));
    let env = settings.envs.join(key);
    log.info(&format!(
        "creating environment {key} with Python {}: installing {}",
        python.version,
        req.describe()
    ));
    if env.exists() {
        // An earlier attempt (or a crash) left it incomplete.
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
    let built = fill(toolchain, python, src, &tmp, req, settings, log).await;
    let result = match built {
        Ok(()) => match tokio::fs::rename(&tmp, &env).await {
            Ok(()) => Ok(()),
            // Another Skyport process sharing the data folder finished the same key first.
            Err(_) if env.join(COMPLETE).is_file() => Ok(()),
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

/// Creates the virtual environment at `tmp`, installs the requirements into it and records
/// what got installed.
async fn fill(
    toolchain: &Toolchain,
    interpreter: &Interpreter,
    src: &Path,
    tmp: &Path,
    req: &Requirements,
    settings: &Settings<'_>,
    log: &BuildLog,
) -> Result<(), Failure> {
    let deadline = Instant::now() + TIME_LIMIT;
    let venv_args = [
        OsStr::new("venv"),
        OsStr::new("--relocatable"),
        OsStr::new("--python"),
        interpreter.path.as_os_str(),
        tmp.as_os_str(),
    ];
    let finished = uv(toolchain, src, settings, &venv_args, deadline, log).await?;
    if !finished.status.success() {
        return Err(Failure::new(
            FailureKind::Toolchain,
            format!(
                "uv could not create a virtual environment with {} ({}):\n{}\ncheck that this Python works, or set SKYPORT_PYTHON to another one",
                interpreter.path.display(),
                finished.exit(),
                finished.stderr_tail_text()
            ),
        ));
    }
    let python = tmp.join("bin").join("python");
    // Bytecode is compiled after the deploy (see `compile_bytecode`), not here: it is seconds
    // of work that the first deploy of new dependencies need not wait for.
    let mut install_args = vec![
        OsStr::new("pip"),
        OsStr::new("install"),
        OsStr::new("--python"),
        python.as_os_str(),
    ];
    for (file, _) in &req.files {
        install_args.extend([OsStr::new("-r"), OsStr::new(file)]);
    }
    install_args.extend(req.packages.iter().map(OsStr::new));
    if !req.has_fastmcp {
        install_args.push(OsStr::new(ALWAYS_INSTALLED));
    }
    let finished = uv(toolchain, src, settings, &install_args, deadline, log).await?;
    if !finished.status.success() {
        let named: Vec<&str> = req.files.iter().map(|(f, _)| f.as_str()).collect();
        let fix = if named.is_empty() && req.packages.is_empty() {
            "check the package index settings and deploy again".to_owned()
        } else if named.is_empty() {
            "fix the dependencies in fastmcp.json and deploy again".to_owned()
        } else {
            format!("fix {} and deploy again", named.join(", "))
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
    let freeze = [
        OsStr::new("pip"),
        OsStr::new("freeze"),
        OsStr::new("--python"),
        python.as_os_str(),
    ];
    let packages = uv_output(toolchain, src, settings, &freeze).await?;
    let write = |name: &str, bytes: Vec<u8>| {
        let path = tmp.join(name);
        async move {
            tokio::fs::write(&path, bytes).await.map_err(|e| {
                Failure::new(
                    FailureKind::Internal,
                    format!("cannot write {}: {e}", path.display()),
                )
            })
        }
    };
    write(PACKAGES, packages.into_bytes()).await?;
    write(COMPLETE, toolchain.uv_version.clone().into_bytes()).await
}

/// Installs the source's buildable local projects (without their dependencies, which the
/// environment has) into `site`, a folder of the artifact that instances put on their import
/// path. This is what makes a package's own metadata and entry points visible to it, while a
/// code change costs one wheel build instead of a new environment. Returns `name==version` of
/// what it installed.
pub(crate) async fn install_projects(
    toolchain: &Toolchain,
    env: &Environment,
    src: &Path,
    site: &Path,
    req: &Requirements,
    settings: &Settings<'_>,
    log: &BuildLog,
) -> Result<Vec<String>, Failure> {
    let buildable: Vec<&LocalProject> = req.projects.iter().filter(|p| p.buildable).collect();
    if buildable.is_empty() {
        return Ok(Vec::new());
    }
    let deadline = Instant::now() + TIME_LIMIT;
    let python = env.path.join("bin").join("python");
    let dirs: Vec<PathBuf> = buildable.iter().map(|p| src.join(&p.dir)).collect();
    let mut args = vec![
        OsStr::new("pip"),
        OsStr::new("install"),
        OsStr::new("--no-deps"),
        OsStr::new("--compile-bytecode"),
        OsStr::new("--python"),
        python.as_os_str(),
        OsStr::new("--target"),
        site.as_os_str(),
    ];
    args.extend(dirs.iter().map(|d| d.as_os_str()));
    log.info(&format!(
        "installing the project {} into the artifact",
        buildable
            .iter()
            .map(|p| shown_dir(&p.dir))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let finished = uv(toolchain, src, settings, &args, deadline, log).await?;
    if !finished.status.success() {
        return Err(Failure::new(
            FailureKind::Dependencies,
            format!(
                "building the project failed (uv: {}):\n{}\nfix its pyproject.toml (build-system, packages) and deploy again",
                finished.exit(),
                uv_errors(&finished.stderr_tail)
            ),
        ));
    }
    // `freeze` names a local project by its path; `list` gives name==version.
    let freeze = [
        OsStr::new("pip"),
        OsStr::new("list"),
        OsStr::new("--format"),
        OsStr::new("freeze"),
        OsStr::new("--target"),
        site.as_os_str(),
    ];
    let installed = uv_output(toolchain, src, settings, &freeze).await?;
    Ok(installed.lines().map(str::to_owned).collect())
}

/// uv's error output without its "Using Python … environment at: <temporary folder>" preamble,
/// which names a folder that no longer exists when the user reads it.
pub(crate) fn uv_errors(tail: &[String]) -> String {
    tail.iter()
        .filter(|line| !line.starts_with("Using Python "))
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs uv with `args` in `src`, logged, until `deadline`.
pub(crate) async fn uv(
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
    prepare_uv(&mut cmd, settings);
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

/// What every uv command gets: the deployment's variables, then Skyport's settings for uv
/// (which read the deployment's variables before Skyport's own environment, so a deployment's
/// `PIP_INDEX_URL` is carried over like an operator's).
fn prepare_uv(cmd: &mut tokio::process::Command, settings: &Settings<'_>) {
    let variables = settings.variables;
    cmd.envs(variables.iter().map(|v| (&v.name, &v.value)));
    let lookup = |name: &str| {
        variables
            .iter()
            .find(|v| v.name == name)
            .map(|v| v.value.clone())
            .or_else(|| std::env::var(name).ok())
    };
    for (name, value) in uv_environment(settings.uv_cache, lookup) {
        cmd.env(name, value);
    }
    // These would make uv (or the Python it probes) look at another environment.
    for name in ["VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME"] {
        cmd.env_remove(name);
    }
    for name in [
        "SETUPTOOLS_SCM_PRETEND_VERSION",
        "HATCH_VCS_PRETEND_VERSION",
        "PDM_BUILD_SCM_VERSION",
    ] {
        if std::env::var_os(name).is_none() {
            cmd.env(name, FALLBACK_VERSION);
        }
    }
}

/// Runs a quick uv command and returns its standard output (not logged: it is data).
pub(crate) async fn uv_output(
    toolchain: &Toolchain,
    src: &Path,
    settings: &Settings<'_>,
    args: &[&OsStr],
) -> Result<String, Failure> {
    let mut cmd = command(&toolchain.uv);
    cmd.args(args).current_dir(src).kill_on_drop(true);
    prepare_uv(&mut cmd, settings);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd
        .spawn()
        .map_err(|e| Failure::new(FailureKind::Toolchain, format!("cannot run uv: {e}")))?;
    let group = GroupGuard::new(&child);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .map_err(|_| {
            Failure::new(
                FailureKind::Internal,
                "uv did not finish in 60 s".to_owned(),
            )
        })?
        .map_err(|e| Failure::new(FailureKind::Toolchain, format!("cannot run uv: {e}")))?;
    group.disarm();
    if !output.status.success() {
        return Err(Failure::new(
            FailureKind::Internal,
            format!(
                "uv pip freeze failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
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
