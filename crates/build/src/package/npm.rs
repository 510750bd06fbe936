//! npm packages: `npm install` into the artifact's `node/` with an exact version saved in its
//! `package.json` and the resolution in `package-lock.json`, run with the machine's Node.js
//! (`node` on `PATH`, or `SKYPORT_NODE`). Install scripts run, as `npx` would run them.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use skyport_store::FailureKind;

use super::{InstallContext, Installed, PackageSource, choose_command};
use crate::job::Failure;
use crate::process::{RunError, command, run_logged, shown};

/// The artifact's folder holding the installation.
const NODE: &str = "node";
/// Limit for `npm install`.
const TIME_LIMIT: Duration = Duration::from_secs(600);
/// Limit for `node --version`.
const PROBE_LIMIT: Duration = Duration::from_secs(20);
const ERROR_TAIL: usize = 15;

/// Installs `package` with npm into `ctx.work/node`.
pub(crate) async fn install(
    package: &PackageSource,
    ctx: &InstallContext<'_>,
) -> Result<Installed, Failure> {
    let node = find_tool("SKYPORT_NODE", "node").ok_or_else(|| {
        Failure::new(
            FailureKind::Toolchain,
            format!(
                "{package} needs Node.js, but there is no `node` on this machine's PATH; install Node.js 18 or newer, or set SKYPORT_NODE to its path"
            ),
        )
    })?;
    let npm = find_tool("SKYPORT_NPM", "npm").ok_or_else(|| {
        Failure::new(
            FailureKind::Toolchain,
            format!(
                "{package} is installed with npm, but there is no `npm` on this machine's PATH; install npm (it comes with Node.js) or set SKYPORT_NPM to its path"
            ),
        )
    })?;
    let version = node_version(&node).await?;
    ctx.log.info(&format!(
        "using Node.js {version} at {} and {}",
        node.display(),
        npm.display()
    ));
    let dir = ctx.work.join(NODE);
    let internal =
        |what: &str, e: std::io::Error| Failure::new(FailureKind::Internal, format!("{what}: {e}"));
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| internal("cannot create the package folder", e))?;
    // A manifest of its own keeps npm from looking for one in the folders above.
    tokio::fs::write(
        dir.join("package.json"),
        br#"{"name":"skyport-package","private":true}"#,
    )
    .await
    .map_err(|e| internal("cannot write package.json", e))?;
    let spec = format!(
        "{}@{}",
        package.name,
        package.version.as_deref().unwrap_or("latest")
    );
    let args = [
        OsStr::new("install"),
        OsStr::new("--save-exact"),
        OsStr::new("--omit=dev"),
        OsStr::new("--no-audit"),
        OsStr::new("--no-fund"),
        OsStr::new("--no-update-notifier"),
        OsStr::new(&spec),
    ];
    ctx.log.info(&shown(&npm, &args));
    let mut cmd = command(&npm);
    cmd.args(args).current_dir(&dir);
    cmd.envs(ctx.variables.iter().map(|v| (&v.name, &v.value)));
    cmd.env("npm_config_cache", ctx.npm_cache)
        .env("NO_COLOR", "1")
        .env("npm_config_progress", "false");
    let finished = run_logged(cmd, ctx.log, TIME_LIMIT, ERROR_TAIL)
        .await
        .map_err(|e| match e {
            RunError::Timeout => Failure::new(
                FailureKind::Timeout,
                format!(
                    "npm install took longer than {} minutes; check the network and the registry",
                    TIME_LIMIT.as_secs() / 60
                ),
            ),
            other => Failure::new(
                FailureKind::Toolchain,
                format!(
                    "cannot run npm ({}): {other}; install npm or set SKYPORT_NPM",
                    npm.display()
                ),
            ),
        })?;
    if !finished.status.success() {
        return Err(install_failure(
            package,
            &finished.stderr_tail,
            &finished.exit(),
        ));
    }
    let installed = dir.join("node_modules").join(&package.name);
    let manifest = read_json(&installed.join("package.json")).await?;
    let resolved_version = manifest
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let unscoped = package.name.rsplit('/').next().unwrap_or(&package.name);
    let bins = bins(&manifest, unscoped);
    let names: Vec<String> = bins.iter().map(|(name, _)| name.clone()).collect();
    let command = choose_command(package, unscoped, &names)?;
    let script = bins
        .iter()
        .find(|(name, _)| *name == command)
        .map(|(_, path)| installed.join(path))
        .unwrap_or_default();
    let lock = tokio::fs::read(dir.join("package-lock.json"))
        .await
        .map_err(|e| internal("npm wrote no package-lock.json", e))?;
    let packages = locked_packages(&lock);
    ctx.log.info(&format!(
        "installed {}@{resolved_version} ({} packages); its command: {command}",
        package.name,
        packages.len()
    ));
    let resolved = PackageSource {
        version: Some(resolved_version),
        command: Some(command),
        ..package.clone()
    };
    Ok(Installed {
        resolved,
        program: node,
        leading_args: vec![script],
        runtime: format!("Node.js {version}"),
        python: String::new(),
        packages,
        lock,
    })
}

/// What npm's error output says, classified: a missing package or version is the user's to
/// fix, anything else may be the network or the registry.
fn install_failure(package: &PackageSource, tail: &[String], exit: &str) -> Failure {
    let text = tail.join("\n");
    let fix = if text.contains("E404") || text.contains("404 Not Found") {
        format!(
            "{} does not exist on the npm registry; check its name (https://www.npmjs.com/package/{})",
            package.name, package.name
        )
    } else if text.contains("ETARGET") {
        format!(
            "{} has no version {}; leave the version out for the newest or pick a published one",
            package.name,
            package.version.as_deref().unwrap_or("latest")
        )
    } else {
        "check the network, the registry settings (NPM_CONFIG_REGISTRY) and the package, and deploy again".to_owned()
    };
    Failure::new(
        FailureKind::Dependencies,
        format!("{package} could not be installed from npm (npm: {exit}):\n{text}\n{fix}"),
    )
}

/// The package's commands: `bin` as a map, or as one path named after the package.
fn bins(manifest: &Value, unscoped: &str) -> Vec<(String, PathBuf)> {
    match manifest.get("bin") {
        Some(Value::String(path)) => vec![(unscoped.to_owned(), PathBuf::from(path))],
        Some(Value::Object(map)) => map
            .iter()
            .filter_map(|(name, path)| Some((name.clone(), PathBuf::from(path.as_str()?))))
            .collect(),
        _ => Vec::new(),
    }
}

/// `name@version` of every package in a `package-lock.json` (format 2 or 3).
fn locked_packages(lock: &[u8]) -> Vec<String> {
    let Ok(lock) = serde_json::from_slice::<Value>(lock) else {
        return Vec::new();
    };
    let Some(packages) = lock.get("packages").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut listed: Vec<String> = packages
        .iter()
        .filter_map(|(path, entry)| {
            let name = path.rsplit_once("node_modules/")?.1;
            let version = entry.get("version")?.as_str()?;
            Some(format!("{name}@{version}"))
        })
        .collect();
    listed.sort();
    listed.dedup();
    listed
}

async fn read_json(path: &Path) -> Result<Value, Failure> {
    let bytes = tokio::fs::read(path).await.map_err(|e| {
        Failure::new(
            FailureKind::Dependencies,
            format!("npm finished but {} cannot be read: {e}", path.display()),
        )
    })?;
    serde_json::from_slice(&bytes).map_err(|e| {
        Failure::new(
            FailureKind::Dependencies,
            format!("{} is not valid JSON: {e}", path.display()),
        )
    })
}

/// `variable` if set, else `name` found on `PATH`, as an absolute path: instances get the
/// interpreter the build used even if their `PATH` differs.
fn find_tool(variable: &str, name: &str) -> Option<PathBuf> {
    if let Some(chosen) = std::env::var_os(variable).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(chosen));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `v20.20.2`.
async fn node_version(node: &Path) -> Result<String, Failure> {
    let mut cmd = command(node);
    cmd.arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let unusable = |why: String| {
        Failure::new(
            FailureKind::Toolchain,
            format!(
                "Node.js at {} is not usable ({why}); install Node.js 18 or newer, or set SKYPORT_NODE",
                node.display()
            ),
        )
    };
    let output = tokio::time::timeout(PROBE_LIMIT, cmd.output())
        .await
        .map_err(|_| unusable("`node --version` did not answer".to_owned()))?
        .map_err(|e| unusable(e.to_string()))?;
    if !output.status.success() {
        return Err(unusable(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
