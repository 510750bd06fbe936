//! Inspection: running the launcher in the built environment to import the server, find its
//! object, and ask it over an in-memory MCP session for `initialize`, `tools/list`,
//! `resources/list`, `resources/templates/list` and `prompts/list`. The launcher classifies the
//! user's mistakes (syntax, import, entrypoint, not a server, not answering); this module maps
//! them to failure kinds and never interprets Python itself.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use skyport_store::{EnvVar, FailureKind};

use crate::job::Failure;
use crate::process::{BuildLog, RunError, command, run_logged};

/// The launcher, written into every artifact so that an artifact runs without this binary.
pub(crate) const LAUNCHER: &str = include_str!("launcher.py");
/// File names inside an artifact.
pub(crate) const LAUNCHER_FILE: &str = "launcher.py";
const RESULT_FILE: &str = "inspection.json";
/// Importing a server should take seconds (FastMCP alone is ~1 s); more means work at import
/// time that would also delay every cold start.
const TIME_LIMIT: Duration = Duration::from_secs(120);
const ERROR_TAIL: usize = 20;

/// What inspection found.
#[derive(Debug)]
pub(crate) struct Inspected {
    /// The server object's name in the file.
    pub(crate) object: String,
    /// The launcher's description: server info, tools, resources, templates, prompts, versions.
    pub(crate) inspection: Value,
}

/// What the launcher imports.
pub(crate) struct Subject<'a> {
    /// A file's path or `module:NAME`.
    pub(crate) target: &'a str,
    /// The server object, when known.
    pub(crate) object: Option<&'a str>,
    /// Folders put first on the import path.
    pub(crate) paths: &'a [std::path::PathBuf],
}

/// Runs `launcher.py inspect` for `subject` with the environment's Python and the
/// deployment's `variables`.
pub(crate) async fn inspect(
    env: &Path,
    artifact: &Path,
    src: &Path,
    subject: &Subject<'_>,
    variables: &[EnvVar],
    log: &BuildLog,
) -> Result<Inspected, Failure> {
    let Subject {
        target,
        object,
        paths,
    } = *subject;
    let shown = target
        .strip_prefix(&*src.to_string_lossy())
        .map(|rest| rest.trim_start_matches('/'))
        .unwrap_or(target)
        .to_owned();
    let file = shown.as_str();
    let internal =
        |what: &str, e: std::io::Error| Failure::new(FailureKind::Internal, format!("{what}: {e}"));
    let launcher = artifact.join(LAUNCHER_FILE);
    tokio::fs::write(&launcher, LAUNCHER)
        .await
        .map_err(|e| internal("cannot write the launcher into the artifact", e))?;
    let result_path = artifact.join(RESULT_FILE);
    let python = env.join("bin").join("python");
    let mut cmd = command(&python);
    cmd.arg(&launcher)
        .arg("inspect")
        // Relative to the working directory, so messages name the file as the user knows it.
        .arg(file)
        .arg(object.unwrap_or("-"))
        .arg(&result_path)
        .args(paths)
        .current_dir(src)
        .env_clear()
        // The deployment's variables first, so that Skyport's own settings win a clash.
        .envs(variables.iter().map(|v| (&v.name, &v.value)))
        .envs(minimal_environment());
    log.info(&format!(
        "inspecting {file}{}",
        object.map(|o| format!(":{o}")).unwrap_or_default()
    ));
    let finished = match run_logged(cmd, log, TIME_LIMIT, ERROR_TAIL).await {
        Ok(finished) => finished,
        Err(RunError::Timeout) => {
            return Err(Failure::new(
                FailureKind::Timeout,
                format!(
                    "importing {file} and listing its tools took longer than {} s; move slow work \
                     out of import time (for example into a lifespan handler) and deploy again",
                    TIME_LIMIT.as_secs()
                ),
            ));
        }
        Err(e) => {
            return Err(Failure::new(
                FailureKind::Internal,
                format!("cannot run {}: {e}", python.display()),
            ));
        }
    };
    let result = tokio::fs::read(&result_path).await;
    let _ = tokio::fs::remove_file(&result_path).await;
    let parsed = result
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
    match parsed {
        Some(value) => interpret(value),
        None => {
            // The launcher reports every failure it understands in the result file; without
            // one, Python itself failed (or user code exited the process at import time).
            let tail = finished.stderr_tail_text();
            let reported: Vec<&str> = tail
                .lines()
                .filter_map(|line| line.strip_prefix("skyport: "))
                .collect();
            let message = if finished.status.code() == Some(3) && !reported.is_empty() {
                reported.join("\n")
            } else {
                format!(
                    "importing {file} stopped the inspection ({}) without a result:\n{tail}",
                    finished.exit()
                )
            };
            Err(Failure::new(FailureKind::Entrypoint, message))
        }
    }
}

/// Turns the launcher's result file into an inspection or a classified failure.
pub(crate) fn interpret(mut value: Value) -> Result<Inspected, Failure> {
    if value.get("ok").and_then(Value::as_bool) == Some(true) {
        let object = value
            .get("object")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if let Some(map) = value.as_object_mut() {
            map.remove("ok");
        }
        if object.is_empty() {
            return Err(Failure::new(
                FailureKind::Internal,
                "the launcher found a server but did not name its object".to_owned(),
            ));
        }
        return Ok(Inspected {
            object,
            inspection: value,
        });
    }
    let kind = match value.get("kind").and_then(Value::as_str) {
        Some("inspection") => FailureKind::Inspection,
        // Syntax and import errors, missing or wrong objects: the entrypoint cannot be loaded.
        _ => FailureKind::Entrypoint,
    };
    let message = value
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("inspecting the server failed without a message")
        .to_owned();
    Err(Failure::new(kind, message))
}

/// One line for the build log: "found server 'hello': 1 tool, 0 resources, 0 prompts".
pub(crate) fn summary(inspection: &Value) -> String {
    let count = |key: &str| {
        inspection
            .get(key)
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    };
    let name = inspection
        .pointer("/server/name")
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)");
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "found server '{name}': {}, {}, {}",
        plural(count("tools"), "tool", "tools"),
        plural(
            count("resources") + count("resource_templates"),
            "resource",
            "resources"
        ),
        plural(count("prompts"), "prompt", "prompts"),
    )
}

/// The variables the launcher runs with: nothing of Skyport's own environment leaks into the
/// user's code (it may hold credentials), only what Python needs to behave predictably.
///
/// Bytecode writing stays on: inspection imports exactly the modules an instance will, so
/// the `.pyc` files it leaves in the environment and the artifact (both owned by this build)
/// spare every later cold start from recompiling them. That is cheaper than compiling every
/// installed package at install time, most of which a server never imports.
pub(crate) fn minimal_environment() -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("LANG", "C.UTF-8".to_owned()),
        ("PYTHONUNBUFFERED", "1".to_owned()),
    ];
    for name in ["PATH", "HOME"] {
        if let Ok(value) = std::env::var(name) {
            vars.push((name, value));
        }
    }
    vars
}
