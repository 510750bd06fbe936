//! PyPI packages: a relocatable uv virtual environment in the artifact's `venv/` with the
//! package at one exact version, and the console script that runs the server (run by the
//! environment's Python directly, which spares a shell and `realpath` per start).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use skyport_store::FailureKind;
use tokio::time::Instant;

use super::{InstallContext, Installed, PackageSource, choose_command, normalized};
use crate::environment::{Settings, uv, uv_errors, uv_output};
use crate::job::Failure;
use crate::toolchain::Toolchain;

/// The artifact's folder holding the environment.
const VENV: &str = "venv";
/// Limit for creating and filling the environment.
const TIME_LIMIT: Duration = Duration::from_secs(600);

/// Installs `package` with uv into `ctx.work/venv`.
pub(crate) async fn install(
    package: &PackageSource,
    ctx: &InstallContext<'_>,
    toolchain: &Toolchain,
    settings: &Settings<'_>,
) -> Result<Installed, Failure> {
    let deadline = Instant::now() + TIME_LIMIT;
    let venv = ctx.work.join(VENV);
    let python = &toolchain.python;
    let create = [
        OsStr::new("venv"),
        OsStr::new("--relocatable"),
        OsStr::new("--python"),
        python.as_os_str(),
        venv.as_os_str(),
    ];
    let created = uv(toolchain, ctx.work, settings, &create, deadline, ctx.log).await?;
    if !created.status.success() {
        return Err(Failure::new(
            FailureKind::Toolchain,
            format!(
                "uv could not create a virtual environment with {} ({}):\n{}\ncheck that this Python works, or set SKYPORT_PYTHON to another one",
                python.display(),
                created.exit(),
                created.stderr_tail_text()
            ),
        ));
    }
    let venv_python = venv.join("bin").join("python");
    let requirement = match &package.version {
        Some(version) => format!("{}=={version}", package.name),
        None => package.name.clone(),
    };
    let install = [
        OsStr::new("pip"),
        OsStr::new("install"),
        OsStr::new("--compile-bytecode"),
        OsStr::new("--python"),
        venv_python.as_os_str(),
        OsStr::new(&requirement),
    ];
    let installed = uv(toolchain, ctx.work, settings, &install, deadline, ctx.log).await?;
    if !installed.status.success() {
        return Err(Failure::new(
            FailureKind::Dependencies,
            format!(
                "{package} could not be installed from PyPI (uv: {}):\n{}\ncheck the package's name and version (https://pypi.org/project/{}/) and deploy again",
                installed.exit(),
                uv_errors(&installed.stderr_tail),
                package.name
            ),
        ));
    }
    let freeze = [
        OsStr::new("pip"),
        OsStr::new("freeze"),
        OsStr::new("--python"),
        venv_python.as_os_str(),
    ];
    let frozen = uv_output(toolchain, ctx.work, settings, &freeze).await?;
    let wanted = normalized(&package.name);
    let version = frozen
        .lines()
        .filter_map(|line| line.split_once("=="))
        .find(|(name, _)| normalized(name) == wanted)
        .map(|(_, version)| version.trim().to_owned())
        .ok_or_else(|| {
            Failure::new(
                FailureKind::Dependencies,
                format!("uv installed {package} but does not list it among the installed packages; deploy again"),
            )
        })?;
    let scripts = {
        let venv = venv.clone();
        tokio::task::spawn_blocking(move || console_scripts(&venv, &wanted))
            .await
            .map_err(|e| {
                Failure::new(
                    FailureKind::Internal,
                    format!("reading the package crashed: {e}"),
                )
            })?
    };
    let command = choose_command(package, &package.name, &scripts)?;
    ctx.log.info(&format!(
        "installed {}=={version}; its command: {command}",
        package.name
    ));
    let resolved = PackageSource {
        version: Some(version),
        command: Some(command.clone()),
        ..package.clone()
    };
    Ok(Installed {
        resolved,
        program: venv_python,
        leading_args: vec![venv.join("bin").join(&command)],
        runtime: format!("Python {}", toolchain.python_version),
        python: toolchain.python_version.clone(),
        packages: frozen.lines().map(str::to_owned).collect(),
        lock: frozen.into_bytes(),
    })
}

/// The console scripts of the installed distribution whose normalized name is `wanted`.
fn console_scripts(venv: &Path, wanted: &str) -> Vec<String> {
    let Some(info) = dist_info(venv, wanted) else {
        return Vec::new();
    };
    let Ok(text) = std::fs::read_to_string(info.join("entry_points.txt")) else {
        return Vec::new();
    };
    let mut in_scripts = false;
    let mut scripts = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_scripts = line == "[console_scripts]";
        } else if in_scripts && let Some((name, _)) = line.split_once('=') {
            scripts.push(name.trim().to_owned());
        }
    }
    scripts
}

/// `venv/lib/pythonX.Y/site-packages/NAME-VERSION.dist-info` of the distribution `wanted`.
fn dist_info(venv: &Path, wanted: &str) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    for python in lib.flatten() {
        let Ok(entries) = std::fs::read_dir(python.path().join("site-packages")) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            let Some(stem) = file.strip_suffix(".dist-info") else {
                continue;
            };
            let name = stem.rsplit_once('-').map_or(stem, |(name, _)| name);
            if normalized(name) == wanted {
                return Some(entry.path());
            }
        }
    }
    None
}
