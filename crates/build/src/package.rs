//! Packaged servers: an MCP server published on PyPI or npm, named as `pypi:NAME[==VERSION]`
//! or `npm:NAME[@VERSION]`, installed at build time into the artifact (a relocatable uv
//! virtual environment in `venv/`, or `node/` with npm's `package-lock.json`) at the exact
//! version resolved then, which the manifest records and a redeploy reuses. The server
//! speaks stdio; its launch spec says so and the runtime puts the stdio bridge in front of it.
//! Nothing is fetched after the build.
//!
//! This module parses and checks package names at the edge (they become command arguments,
//! so nothing that could read as an option gets through) and assembles the artifact; it must
//! not decide how instances run (the runtime does).

mod npm;
mod pypi;
mod stdio;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use skyport_store::{EnvVar, FailureKind, Transport};

use crate::BuildError;
use crate::job::Failure;
use crate::process::BuildLog;

pub(crate) use npm::install as install_npm;
pub(crate) use pypi::install as install_pypi;
pub(crate) use stdio::inspect;

/// Changes when the layout of a package artifact or the way it is installed changes, so that
/// older artifacts are not reused for the new recipe.
const RECIPE: &str = "skyport-package-1";

/// The registry a package comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registry {
    /// The Python Package Index, installed with uv.
    Pypi,
    /// The npm registry, installed with npm and run with the machine's Node.js.
    Npm,
}

impl Registry {
    /// `pypi` or `npm`, as in a source (`pypi:NAME`) and `server.json`'s `registryType`.
    pub fn as_str(self) -> &'static str {
        match self {
            Registry::Pypi => "pypi",
            Registry::Npm => "npm",
        }
    }
}

impl std::str::FromStr for Registry {
    type Err = BuildError;

    fn from_str(text: &str) -> Result<Registry, BuildError> {
        match text {
            "pypi" => Ok(Registry::Pypi),
            "npm" => Ok(Registry::Npm),
            other => Err(BuildError::InvalidPackage(format!(
                "'{other}' is not a package registry Skyport installs from; use pypi or npm"
            ))),
        }
    }
}

/// A package to deploy: which one, at which version, and how to run it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageSource {
    /// Where it is published.
    pub registry: Registry,
    /// Its name in that registry (`mcp-server-time`, `@scope/server`).
    pub name: String,
    /// The exact version; the newest when absent (and the one resolved is recorded).
    pub version: Option<String>,
    /// The command of the package to run (a console script or an npm `bin`); by default the
    /// one named like the package, or its only one.
    pub command: Option<String>,
    /// Arguments given to the server on every start.
    #[serde(default)]
    pub args: Vec<String>,
    /// For a package that serves streamable HTTP itself: the environment variable it reads
    /// its port from (a `{port}` argument says it too). `None` and no `{port}`: stdio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_env: Option<String>,
}

impl PackageSource {
    /// A checked package source.
    pub fn new(
        registry: Registry,
        name: &str,
        version: Option<&str>,
        command: Option<&str>,
        args: Vec<String>,
    ) -> Result<PackageSource, BuildError> {
        let invalid = |what: String| Err(BuildError::InvalidPackage(what));
        let name_ok = match registry {
            Registry::Pypi => is_pypi_name(name),
            Registry::Npm => is_npm_name(name),
        };
        if !name_ok {
            return invalid(format!(
                "'{name}' is not a valid {} package name; {}",
                registry.as_str(),
                match registry {
                    Registry::Pypi =>
                        "use letters, digits, '.', '_' and '-', e.g. pypi:mcp-server-time",
                    Registry::Npm =>
                        "use lowercase letters, digits, '.', '_', '~' and '-', with an optional @scope/, e.g. npm:@modelcontextprotocol/server-memory",
                }
            ));
        }
        if let Some(version) = version
            && !is_exact_version(version)
        {
            return invalid(format!(
                "'{version}' is not an exact version of {name}; pin one ({}) or leave it out for the newest",
                match registry {
                    Registry::Pypi => format!("pypi:{name}==1.2.3"),
                    Registry::Npm => format!("npm:{name}@1.2.3"),
                }
            ));
        }
        if let Some(command) = command
            && !is_command_name(command)
        {
            return invalid(format!(
                "'{command}' is not a command name; name one of the package's commands (letters, digits, '.', '_', '-')"
            ));
        }
        if args.iter().any(|a| a.contains('\0')) {
            return invalid("a server argument contains a NUL byte".to_owned());
        }
        Ok(PackageSource {
            registry,
            name: name.to_owned(),
            version: version.map(str::to_owned),
            command: command.map(str::to_owned),
            args,
            port_env: None,
        })
    }

    /// This package serving streamable HTTP itself on the port given in the environment
    /// variable `variable` (and wherever its arguments say `{port}`).
    pub fn serving_http_on(mut self, variable: &str) -> Result<PackageSource, BuildError> {
        let valid = !variable.is_empty()
            && !variable.starts_with(|c: char| c.is_ascii_digit())
            && variable
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(BuildError::InvalidPackage(format!(
                "'{variable}' is not an environment variable name; use letters, digits and '_', e.g. PORT"
            )));
        }
        self.port_env = Some(variable.to_owned());
        Ok(self)
    }

    /// How the server speaks MCP: HTTP on a port of its own when told one (a port variable,
    /// or `{port}` in an argument), else stdio.
    pub fn transport(&self) -> Transport {
        let placeholder = self
            .args
            .iter()
            .any(|a| a.contains(Transport::PORT_PLACEHOLDER));
        match (&self.port_env, placeholder) {
            (None, false) => Transport::Stdio,
            (env, _) => Transport::HttpPort { env: env.clone() },
        }
    }

    /// Parses `pypi:NAME[==VERSION]` or `npm:NAME[@VERSION]`; `None` when `text` names no
    /// registry (it is then some other kind of source).
    pub fn parse(
        text: &str,
        command: Option<&str>,
        args: Vec<String>,
    ) -> Option<Result<PackageSource, BuildError>> {
        if let Some(spec) = text.strip_prefix("pypi:") {
            if spec.contains(['<', '>', '~', '!', '^', '*']) || spec.matches("==").count() > 1 {
                return Some(Err(BuildError::InvalidPackage(format!(
                    "'{text}' is not a package with an exact version; use pypi:NAME or pypi:NAME==VERSION"
                ))));
            }
            let (name, version) = match spec.split_once("==") {
                Some((name, version)) => (name, Some(version)),
                None => (spec, None),
            };
            return Some(PackageSource::new(
                Registry::Pypi,
                name,
                version,
                command,
                args,
            ));
        }
        let spec = text.strip_prefix("npm:")?;
        // A scope starts with '@'; the version follows the last '@' after it.
        let (name, version) = match spec.get(1..).and_then(|rest| rest.rfind('@')) {
            Some(at) => (&spec[..=at], Some(&spec[at + 2..])),
            None => (spec, None),
        };
        Some(PackageSource::new(
            Registry::Npm,
            name,
            version,
            command,
            args,
        ))
    }
}

impl fmt::Display for PackageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.registry.as_str(), self.name)?;
        match (self.registry, &self.version) {
            (Registry::Pypi, Some(version)) => write!(f, "=={version}"),
            (Registry::Npm, Some(version)) => write!(f, "@{version}"),
            (_, None) => Ok(()),
        }
    }
}

/// What a package artifact's manifest records of the package, for people and redeploys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PackageManifest {
    /// The package as installed, with the version resolved at build time.
    pub(crate) source: PackageSource,
    /// The interpreter it runs on (`Python 3.11.7`, `Node.js v20.20.2`).
    pub(crate) runtime: String,
}

/// An installed package in a build's work folder, ready to inspect and finish.
pub(crate) struct Installed {
    /// The package with its resolved version.
    pub(crate) resolved: PackageSource,
    /// The program to run, in the work folder (its final place is the same path under the
    /// artifact's folder).
    pub(crate) program: PathBuf,
    /// Its arguments before the server's own (the script run by the interpreter).
    pub(crate) leading_args: Vec<PathBuf>,
    /// `Python 3.11.7`, `Node.js v20.20.2`.
    pub(crate) runtime: String,
    /// The Python version, for the manifest; empty for npm packages.
    pub(crate) python: String,
    /// `name==version` or `name@version` of everything installed.
    pub(crate) packages: Vec<String>,
    /// What pins the installation (uv's freeze output, npm's lockfile), hashed.
    pub(crate) lock: Vec<u8>,
}

impl Installed {
    /// The artifact's content hash: the package at its resolved version, the command and its
    /// arguments, the interpreter and the lock.
    pub(crate) fn hash(&self) -> String {
        let mut hasher = Sha256::new();
        let args = self.resolved.args.join("\0");
        for part in [
            RECIPE,
            &self.resolved.to_string(),
            self.resolved.command.as_deref().unwrap_or(""),
            &args,
            self.resolved.port_env.as_deref().unwrap_or(""),
            &self.runtime,
        ] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        hasher.update(&self.lock);
        hex::encode(&hasher.finalize()[..12])
    }

    /// `program` and its arguments with the work folder `work` moved to `dest`.
    pub(crate) fn command_in(&self, work: &Path, dest: &Path) -> (PathBuf, Vec<String>) {
        let moved = |path: &Path| match path.strip_prefix(work) {
            Ok(inside) => dest.join(inside),
            Err(_) => path.to_path_buf(),
        };
        let args = self
            .leading_args
            .iter()
            .map(|p| moved(p).to_string_lossy().into_owned())
            .chain(self.resolved.args.iter().cloned())
            .collect();
        (moved(&self.program), args)
    }
}

/// Where and with what a package is installed.
pub(crate) struct InstallContext<'a> {
    pub(crate) work: &'a Path,
    pub(crate) log: &'a BuildLog,
    pub(crate) variables: &'a [EnvVar],
    /// npm's cache folder (`DATA/cache/npm`).
    pub(crate) npm_cache: &'a Path,
}

/// The command to run among `commands` (a package's console scripts or npm bins): the one
/// asked for, else the one named like the package, else the only one.
fn choose_command(
    package: &PackageSource,
    unscoped: &str,
    commands: &[String],
) -> Result<String, Failure> {
    let listed = || commands.join(", ");
    if let Some(asked) = &package.command {
        return if commands.contains(asked) {
            Ok(asked.clone())
        } else {
            Err(Failure::new(
                FailureKind::Entrypoint,
                format!(
                    "{package} has no command '{asked}'; its commands: {}",
                    if commands.is_empty() {
                        "none".to_owned()
                    } else {
                        listed()
                    }
                ),
            ))
        };
    }
    if let Some(named) = commands.iter().find(|c| c.as_str() == unscoped) {
        return Ok(named.clone());
    }
    match commands {
        [only] => Ok(only.clone()),
        [] => Err(Failure::new(
            FailureKind::Entrypoint,
            format!(
                "{package} installs no command to run; Skyport runs packages that provide a server command (as `uvx`/`npx` would)"
            ),
        )),
        _ => Err(Failure::new(
            FailureKind::Entrypoint,
            format!(
                "{package} has several commands ({}); choose one with --entrypoint NAME",
                listed()
            ),
        )),
    }
}

fn is_pypi_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 200
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn is_npm_name(name: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && !p.starts_with(['.', '_', '-'])
            && p.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'.' | b'_' | b'-' | b'~')
            })
    };
    if name.len() > 214 {
        return false;
    }
    match name.strip_prefix('@') {
        Some(scoped) => scoped
            .split_once('/')
            .is_some_and(|(scope, rest)| part(scope) && part(rest)),
        None => part(name),
    }
}

fn is_exact_version(version: &str) -> bool {
    !version.is_empty()
        && version.len() <= 100
        && version.as_bytes()[0].is_ascii_alphanumeric()
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
}

fn is_command_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// PyPI's normalized form of a name (PEP 503): lowercase, runs of `-_.` as one `-`.
pub(crate) fn normalized(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests;
