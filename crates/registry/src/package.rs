//! The packages of a `server.json` (`packages[]` of the official registry's schema): which
//! registry and version, the arguments the server is started with, and the environment
//! variables it declares. Pure reading and checking; installing is the build's.

use serde::Deserialize;
use serde_json::Value;

/// Why a `server.json` package cannot be deployed.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The document is not a `server.json` with packages.
    #[error("{0}")]
    Invalid(String),
    /// The index names no package.
    #[error("server.json has {count} package(s) (indexes 0 to {}); pick one with --package INDEX", .count.saturating_sub(1))]
    NoSuchPackage {
        /// How many packages the document lists.
        count: usize,
    },
    /// The package is of a kind Skyport does not install.
    #[error("{0}")]
    Unsupported(String),
}

/// One package of a `server.json`, as Skyport deploys it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredPackage {
    /// `pypi` or `npm`.
    pub registry: String,
    /// The package's name there.
    pub identifier: String,
    /// Its version, if the document pins one.
    pub version: Option<String>,
    /// `stdio` or `streamable-http`.
    pub transport: String,
    /// For `streamable-http`: the declared variable that carries the port, when the
    /// transport's URL names one (`{port}` in an argument says it otherwise).
    pub port_env: Option<String>,
    /// The server's arguments, in order, from `packageArguments`.
    pub args: Vec<String>,
    /// The environment variables it declares.
    pub variables: Vec<DeclaredVariable>,
}

/// An environment variable a package declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeclaredVariable {
    /// Its name.
    pub name: String,
    /// Whether the server cannot start without it (and the document gives no default).
    pub required: bool,
    /// Whether it holds a secret (to be set with `--secret`).
    pub secret: bool,
    /// What it is for.
    pub description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Package {
    registry_type: Option<String>,
    identifier: Option<String>,
    version: Option<String>,
    transport: Option<Transport>,
    #[serde(default)]
    package_arguments: Vec<Argument>,
    #[serde(default)]
    environment_variables: Vec<Variable>,
}

#[derive(Deserialize)]
struct Transport {
    #[serde(rename = "type")]
    kind: Option<String>,
    url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Argument {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    value: Option<String>,
    default: Option<String>,
    value_hint: Option<String>,
    #[serde(default)]
    is_required: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Variable {
    name: String,
    description: Option<String>,
    default: Option<String>,
    #[serde(default)]
    is_required: bool,
    #[serde(default)]
    is_secret: bool,
}

/// Package `index` of the `server.json` document `text`.
pub fn declared_package(text: &str, index: usize) -> Result<DeclaredPackage, PackageError> {
    let document: Value = serde_json::from_str(text)
        .map_err(|e| PackageError::Invalid(format!("server.json is not valid JSON: {e}")))?;
    let packages = document
        .get("packages")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            PackageError::Invalid(
                "server.json lists no packages (\"packages\": [...]); deploy a package as pypi:NAME or npm:NAME instead".to_owned(),
            )
        })?;
    let package = packages.get(index).ok_or(PackageError::NoSuchPackage {
        count: packages.len(),
    })?;
    let package: Package = serde_json::from_value(package.clone()).map_err(|e| {
        PackageError::Invalid(format!("package {index} of server.json is malformed: {e}"))
    })?;
    let registry = package.registry_type.unwrap_or_default();
    if registry != "pypi" && registry != "npm" {
        return Err(PackageError::Unsupported(format!(
            "package {index} comes from '{registry}'; Skyport installs pypi and npm packages (pick another with --package)"
        )));
    }
    let identifier = package
        .identifier
        .filter(|i| !i.is_empty())
        .ok_or_else(|| {
            PackageError::Invalid(format!("package {index} of server.json has no identifier"))
        })?;
    let (transport, url) = match package.transport {
        Some(t) => (t.kind.unwrap_or_else(|| "stdio".to_owned()), t.url),
        None => ("stdio".to_owned(), None),
    };
    // The URL of a package serving HTTP names its port as a `{variable}`.
    let port_variable = match transport.as_str() {
        "stdio" => None,
        "streamable-http" => Some(port_variable(index, url.as_deref())?),
        other => {
            return Err(PackageError::Unsupported(format!(
                "package {index} serves MCP over '{other}'; Skyport runs stdio and streamable-http packages (pick another with --package)"
            )));
        }
    };
    let mut args = Vec::new();
    let placeholder = port_variable.as_ref().map(|v| format!("{{{v}}}"));
    for argument in package.package_arguments {
        // The port variable in an argument becomes the runtime's `{port}`.
        let value = argument
            .value
            .or(argument.default)
            .map(|value| match &placeholder {
                Some(placeholder) => value.replace(placeholder.as_str(), "{port}"),
                None => value,
            });
        match argument.kind.as_deref() {
            Some("named") => {
                let Some(name) = argument.name else {
                    return Err(PackageError::Invalid(format!(
                        "a named argument of package {index} has no name"
                    )));
                };
                args.push(name);
                args.extend(value);
            }
            _ => match value {
                Some(value) => args.push(value),
                None if argument.is_required => {
                    return Err(PackageError::Invalid(format!(
                        "package {index} needs a value for its argument '{}', which server.json does not give; deploy it as {registry}:{identifier} with the arguments after --",
                        argument.value_hint.or(argument.name).unwrap_or_default()
                    )));
                }
                None => {}
            },
        }
    }
    let port_env = port_variable.clone().filter(|variable| {
        package
            .environment_variables
            .iter()
            .any(|declared| &declared.name == variable)
    });
    if let Some(variable) = &port_variable
        && port_env.is_none()
        && !args.iter().any(|a| a.contains("{port}"))
    {
        return Err(PackageError::Invalid(format!(
            "package {index} serves HTTP on '{{{variable}}}', which none of its arguments or environment variables declares"
        )));
    }
    let variables = package
        .environment_variables
        .into_iter()
        // The port is Skyport's to choose, never the user's to set.
        .filter(|v| Some(&v.name) != port_env.as_ref())
        .map(|v| DeclaredVariable {
            required: v.is_required && v.default.is_none(),
            secret: v.is_secret,
            description: v.description,
            name: v.name,
        })
        .collect();
    Ok(DeclaredPackage {
        registry,
        identifier,
        version: package.version.filter(|v| !v.is_empty()),
        transport,
        port_env,
        args,
        variables,
    })
}

/// The `{variable}` of a streamable-http transport's URL (`http://localhost:{PORT}/mcp`).
fn port_variable(index: usize, url: Option<&str>) -> Result<String, PackageError> {
    let variable = url
        .and_then(|url| url.split_once('{'))
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(variable, _)| variable.to_owned())
        .filter(|variable| !variable.is_empty());
    variable.ok_or_else(|| {
        PackageError::Invalid(format!(
            "package {index} serves streamable-http but its transport URL names no {{port}} variable; deploy it as a package with --port-env VAR"
        ))
    })
}

#[cfg(test)]
mod tests;
