//! Finding the Python interpreter and uv that builds use, and installing uv from PyPI when the
//! machine has none. Discovery runs once per `Builder` (the caller caches the result); it never
//! downloads a Python, because servers must run on the interpreter the operator chose.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use skyport_store::FailureKind;

use crate::job::Failure;
use crate::process::{BuildLog, command, run_logged, shown};

/// Interpreters tried, in order, when `SKYPORT_PYTHON` is unset.
const PYTHON_CANDIDATES: [&str; 6] = [
    "python3.14",
    "python3.13",
    "python3.12",
    "python3.11",
    "python3.10",
    "python3",
];
/// Oldest Python that FastMCP supports.
const MIN_PYTHON: (u32, u32) = (3, 10);
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

/// The interpreter and uv that builds use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Toolchain {
    /// The interpreter's real path (`sys.executable`), so that shims such as pyenv's, which
    /// pick an interpreter by working directory, cannot change it between builds.
    pub(crate) python: PathBuf,
    /// `3.11.7`.
    pub(crate) python_version: String,
    /// uv, as a path or a name found on `PATH`.
    pub(crate) uv: PathBuf,
    /// What `uv --version` printed, e.g. `uv 0.13.9`.
    pub(crate) uv_version: String,
    /// Every usable interpreter found (the default one first), for sources that ask for a
    /// particular Python version.
    pub(crate) interpreters: Vec<Interpreter>,
}

/// A Python interpreter on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Interpreter {
    /// Its real path.
    pub(crate) path: PathBuf,
    /// `3.11.7`.
    pub(crate) version: String,
}

impl Toolchain {
    /// The interpreter for a source's Python `request` (`3.12`, `>=3.10,<3.13`, `cpython@3.11`);
    /// the default one when there is no request. `origin` names where the request came from.
    pub(crate) fn select(&self, request: Option<(&str, &str)>) -> Result<Interpreter, Failure> {
        let default = Interpreter {
            path: self.python.clone(),
            version: self.python_version.clone(),
        };
        let Some((request, origin)) = request else {
            return Ok(default);
        };
        let wanted = VersionRequest::parse(request).ok_or_else(|| {
            Failure::new(
                FailureKind::Config,
                format!(
                    "{origin} asks for Python '{request}', which is not a version or a version range such as 3.12 or >=3.10,<3.13"
                ),
            )
        })?;
        let candidates = std::iter::once(&default).chain(&self.interpreters);
        for interpreter in candidates {
            if wanted.matches(&interpreter.version) {
                return Ok(interpreter.clone());
            }
        }
        let available: Vec<String> = self
            .interpreters
            .iter()
            .map(|i| format!("{} ({})", i.version, i.path.display()))
            .collect();
        Err(toolchain(format!(
            "{origin} asks for Python {request}, but this machine has only {}; install a matching Python (for example python{}) or change the request",
            if available.is_empty() {
                format!("{} ({})", default.version, default.path.display())
            } else {
                available.join(", ")
            },
            wanted.example()
        )))
    }
}

/// A Python version request in the forms sources use: a bare version (`.python-version`,
/// `fastmcp.json`), optionally with an implementation prefix, or PEP 440 specifiers
/// (`requires-python`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum VersionRequest {
    /// `3.12` matches every 3.12.x.
    Prefix(Vec<u32>),
    /// All of these must hold.
    Specifiers(Vec<(Op, Vec<u32>, bool)>),
}

/// A PEP 440 comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
    Ne,
    Compatible,
}

impl VersionRequest {
    pub(crate) fn parse(text: &str) -> Option<VersionRequest> {
        let text = text.trim();
        let bare = text
            .trim_start_matches("cpython")
            .trim_start_matches("python")
            .trim_start_matches(['-', '@']);
        if let Some(version) = numbers(bare) {
            return Some(VersionRequest::Prefix(version));
        }
        let mut specifiers = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let (op, rest) = [
                (">=", Op::Ge),
                ("<=", Op::Le),
                ("==", Op::Eq),
                ("!=", Op::Ne),
                ("~=", Op::Compatible),
                (">", Op::Gt),
                ("<", Op::Lt),
            ]
            .iter()
            .find_map(|(prefix, op)| part.strip_prefix(prefix).map(|rest| (*op, rest.trim())))?;
            let (rest, wildcard) = match rest.strip_suffix(".*") {
                Some(rest) => (rest, true),
                None => (rest, false),
            };
            specifiers.push((op, numbers(rest)?, wildcard));
        }
        (!specifiers.is_empty()).then_some(VersionRequest::Specifiers(specifiers))
    }

    pub(crate) fn matches(&self, version: &str) -> bool {
        let Some(have) = numbers(version) else {
            return false;
        };
        match self {
            VersionRequest::Prefix(want) => have.starts_with(want),
            VersionRequest::Specifiers(all) => all.iter().all(|(op, want, wildcard)| {
                let padded = |v: &[u32], n: usize| {
                    let mut v = v.to_vec();
                    v.resize(n.max(v.len()), 0);
                    v
                };
                let n = have.len().max(want.len());
                let (h, w) = (padded(&have, n), padded(want, n));
                match op {
                    Op::Eq if *wildcard => have.starts_with(want),
                    Op::Ne if *wildcard => !have.starts_with(want),
                    Op::Eq => h == w,
                    Op::Ne => h != w,
                    Op::Ge => h >= w,
                    Op::Gt => h > w,
                    Op::Le => h <= w,
                    Op::Lt => h < w,
                    Op::Compatible => {
                        h >= w && have.starts_with(&want[..want.len().saturating_sub(1).max(1)])
                    }
                }
            }),
        }
    }

    /// A version that satisfies the request, for the error message's install hint.
    fn example(&self) -> String {
        let version = match self {
            VersionRequest::Prefix(v) => v.clone(),
            VersionRequest::Specifiers(all) => all
                .iter()
                .find(|(op, _, _)| matches!(op, Op::Ge | Op::Eq | Op::Compatible | Op::Gt))
                .map(|(_, v, _)| v.clone())
                .unwrap_or_else(|| vec![3]),
        };
        version
            .iter()
            .take(2)
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// `3.12.1` → `[3, 12, 1]`; `None` unless it is only dot-separated numbers.
fn numbers(text: &str) -> Option<Vec<u32>> {
    let parts: Option<Vec<u32>> = text.split('.').map(|n| n.parse().ok()).collect();
    parts.filter(|p| !p.is_empty())
}

/// Finds Python and uv, installing uv into `tools/uv` if there is none.
pub(crate) async fn discover(tools: &Path, log: &BuildLog) -> Result<Toolchain, Failure> {
    // Every candidate at once: through shims (pyenv) a probe takes a few hundred milliseconds.
    let probes = futures_util::future::join_all(
        PYTHON_CANDIDATES
            .iter()
            .map(|candidate| probe_python(Path::new(candidate))),
    )
    .await;
    let (python, python_version) = find_python(&probes).await?;
    let (uv, uv_version) = find_uv(tools, &python, log).await?;
    let mut interpreters = vec![Interpreter {
        path: python.clone(),
        version: python_version.clone(),
    }];
    for (path, version) in probes.into_iter().flatten() {
        if !interpreters.iter().any(|i| i.path == path) {
            interpreters.push(Interpreter { path, version });
        }
    }
    Ok(Toolchain {
        python,
        python_version,
        uv,
        uv_version,
        interpreters,
    })
}

/// `SKYPORT_PYTHON`, else the first usable of the probed candidates (in preference order).
async fn find_python(
    probes: &[Result<(PathBuf, String), String>],
) -> Result<(PathBuf, String), Failure> {
    if let Some(chosen) = std::env::var_os("SKYPORT_PYTHON") {
        let chosen = PathBuf::from(chosen);
        return probe_python(&chosen).await.map_err(|why| {
            toolchain(format!(
                "SKYPORT_PYTHON={} is not usable: {why}; point it at Python {}.{} or newer",
                chosen.display(),
                MIN_PYTHON.0,
                MIN_PYTHON.1
            ))
        });
    }
    let mut tried = Vec::new();
    for (candidate, probe) in PYTHON_CANDIDATES.iter().zip(probes) {
        match probe {
            Ok(found) => return Ok(found.clone()),
            Err(why) => tried.push(format!("{candidate}: {why}")),
        }
    }
    Err(toolchain(format!(
        "no Python {}.{} or newer found on PATH ({}); install one or set SKYPORT_PYTHON to its path",
        MIN_PYTHON.0,
        MIN_PYTHON.1,
        tried.join("; ")
    )))
}

/// Runs `python` to learn its version and real path; the error says why it is unusable.
async fn probe_python(python: &Path) -> Result<(PathBuf, String), String> {
    let mut cmd = command(python);
    cmd.args([
        "-c",
        "import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.executable)",
    ]);
    let output = probe(cmd).await?;
    let mut lines = output.lines();
    let version = lines.next().unwrap_or_default().trim().to_owned();
    let executable = lines.next().unwrap_or_default().trim().to_owned();
    let mut numbers = version.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
    let major_minor = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    if major_minor < MIN_PYTHON {
        return Err(format!("it is Python {version}"));
    }
    let executable = if executable.is_empty() {
        python.to_path_buf()
    } else {
        PathBuf::from(executable)
    };
    Ok((executable, version))
}

async fn find_uv(
    tools: &Path,
    python: &Path,
    log: &BuildLog,
) -> Result<(PathBuf, String), Failure> {
    if let Some(chosen) = std::env::var_os("SKYPORT_UV") {
        let chosen = chosen_uv(&chosen)?;
        return match uv_version(&chosen).await {
            Ok(version) => Ok((chosen, version)),
            Err(why) => Err(toolchain(format!(
                "SKYPORT_UV={} is not usable: {why}; point it at a uv binary or unset it",
                chosen.display()
            ))),
        };
    }
    let on_path = PathBuf::from("uv");
    if let Ok(version) = uv_version(&on_path).await {
        return Ok((on_path, version));
    }
    let installed = installed_uv(tools);
    if installed.is_file()
        && let Ok(version) = uv_version(&installed).await
    {
        return Ok((installed, version));
    }
    install_uv(tools, python, log).await?;
    match uv_version(&installed).await {
        Ok(version) => Ok((installed, version)),
        Err(why) => Err(toolchain(format!(
            "uv was installed into {} but does not run: {why}; install uv yourself (pip install uv) or set SKYPORT_UV",
            installed.display()
        ))),
    }
}

fn installed_uv(tools: &Path) -> PathBuf {
    tools.join("uv").join("bin").join("uv")
}

async fn uv_version(uv: &Path) -> Result<String, String> {
    let mut cmd = command(uv);
    cmd.arg("--version");
    Ok(probe(cmd).await?.trim().to_owned())
}

/// Installs uv from PyPI into its own virtual environment under `tools`, with the operator's
/// pip configuration (index, certificates, proxies), which is why the environment is inherited.
async fn install_uv(tools: &Path, python: &Path, log: &BuildLog) -> Result<(), Failure> {
    let venv = tools.join("uv");
    log.info(&format!(
        "uv not found; installing it from PyPI into {}",
        venv.display()
    ));
    // A half-made environment from an interrupted install would make `venv` or pip fail.
    if venv.exists() {
        tokio::fs::remove_dir_all(&venv)
            .await
            .map_err(|e| toolchain(format!("cannot remove {}: {e}", venv.display())))?;
    }
    tokio::fs::create_dir_all(tools)
        .await
        .map_err(|e| toolchain(format!("cannot create {}: {e}", tools.display())))?;
    let steps: [(PathBuf, Vec<&OsStr>); 2] = [
        (
            python.to_path_buf(),
            vec![OsStr::new("-m"), OsStr::new("venv"), venv.as_os_str()],
        ),
        (
            venv.join("bin").join("pip"),
            vec![
                OsStr::new("install"),
                OsStr::new("--quiet"),
                OsStr::new("uv"),
            ],
        ),
    ];
    for (program, args) in steps {
        log.info(&shown(&program, &args));
        let mut cmd = command(&program);
        cmd.args(&args);
        let failed = |why: String| {
            toolchain(format!(
                "could not install uv from PyPI: {why}; install uv yourself (pip install uv) or set SKYPORT_UV"
            ))
        };
        match run_logged(cmd, log, INSTALL_TIMEOUT, 15).await {
            Ok(done) if done.status.success() => {}
            Ok(done) => {
                return Err(failed(format!(
                    "{} failed ({}):\n{}",
                    program.display(),
                    done.exit(),
                    done.stderr_tail_text()
                )));
            }
            Err(e) => return Err(failed(format!("{}: {e}", program.display()))),
        }
    }
    log.info("installed uv");
    Ok(())
}

/// Runs a short command and returns its standard output; the error says what went wrong.
async fn probe(mut command: tokio::process::Command) -> Result<String, String> {
    command
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(PROBE_TIMEOUT, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("not found".to_owned());
        }
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("it did not answer within 20 s".to_owned()),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().next().unwrap_or_default().trim();
        return Err(format!("it exited with {} ({first})", output.status));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn toolchain(message: String) -> Failure {
    Failure::new(FailureKind::Toolchain, message)
}

/// `SKYPORT_UV` as an absolute path: uv runs from each build's own work folder, where a path
/// relative to where Skyport started would name nothing.
fn chosen_uv(value: &OsStr) -> Result<PathBuf, Failure> {
    std::path::absolute(value).map_err(|why| {
        toolchain(format!(
            "SKYPORT_UV={} is not a usable path: {why}; point it at a uv binary or unset it",
            Path::new(value).display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_skyport_uv_is_made_absolute_and_an_empty_one_refused() {
        let chosen = chosen_uv(OsStr::new("target/e2e/venv/bin/uv")).expect("a relative path");
        assert!(chosen.is_absolute(), "{}", chosen.display());
        assert!(chosen.ends_with("target/e2e/venv/bin/uv"));
        let refused = chosen_uv(OsStr::new("")).expect_err("an empty path");
        assert!(refused.to_string().contains("SKYPORT_UV"), "{refused}");
    }
}
