//! `fastmcp.json`: the FastMCP project file that names the server (`source`) and what it needs
//! (`environment`). Only the parts a build uses are read; `deployment` settings are the
//! platform's business (listen address, transport) and are ignored. Paths in it are relative to
//! the file's folder, as in `fastmcp run`, and must stay inside the source.

use std::path::{Component, Path};

use serde::Deserialize;
use skyport_store::FailureKind;

use crate::job::Failure;

/// The file name `fastmcp run` looks for when given no file.
pub(crate) const FILE_NAME: &str = "fastmcp.json";

/// The parts of `fastmcp.json` a build uses, with paths resolved relative to the source root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProjectFile {
    /// The file's path relative to the source root, for messages.
    pub(crate) file: String,
    /// The server file, relative to the source root.
    pub(crate) source_path: Option<String>,
    /// The server object (or factory) in it.
    pub(crate) object: Option<String>,
    /// The environment section.
    pub(crate) environment: EnvironmentSection,
}

/// `environment` of `fastmcp.json`, paths relative to the source root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EnvironmentSection {
    /// A Python version request (`3.12`, `>=3.10,<3.13`).
    pub(crate) python: Option<String>,
    /// Extra packages (PEP 508).
    pub(crate) dependencies: Vec<String>,
    /// A requirements file.
    pub(crate) requirements: Option<String>,
    /// A project folder holding `pyproject.toml`.
    pub(crate) project: Option<String>,
    /// Project folders installed from the source as they are.
    pub(crate) editable: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(rename = "$schema")]
    _schema: Option<String>,
    source: Option<RawSource>,
    environment: Option<RawEnvironment>,
    deployment: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    #[serde(rename = "type")]
    kind: Option<String>,
    path: Option<String>,
    entrypoint: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    #[serde(rename = "type")]
    kind: Option<String>,
    python: Option<String>,
    #[serde(default)]
    dependencies: Vec<String>,
    requirements: Option<String>,
    project: Option<String>,
    #[serde(default)]
    editable: OneOrMany,
}

/// `"editable": "."` and `"editable": [".", "../lib"]` are both accepted by FastMCP.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum OneOrMany {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::None => Vec::new(),
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// Reads and checks `file` (relative to `root`); a `config` failure says what is wrong where.
pub(crate) fn read(root: &Path, file: &str) -> Result<ProjectFile, Failure> {
    let text = std::fs::read_to_string(root.join(file)).map_err(|e| {
        Failure::new(
            FailureKind::Config,
            format!("cannot read {file}: {e}; it must be a UTF-8 JSON file"),
        )
    })?;
    parse(file, &text)
}

/// Parses the text of `file` (a path relative to the source root).
pub(crate) fn parse(file: &str, text: &str) -> Result<ProjectFile, Failure> {
    let invalid = |why: String| {
        Failure::new(
            FailureKind::Config,
            format!(
                "{file} is invalid: {why}; see https://gofastmcp.com/deployment/server-configuration"
            ),
        )
    };
    let raw: Raw =
        serde_json::from_str(&strip_comments(text)).map_err(|e| invalid(format!("{e}")))?;
    let base = Path::new(file).parent().unwrap_or(Path::new(""));
    let inside = |what: &str, path: &str| -> Result<String, Failure> {
        within_source(base, path).ok_or_else(|| {
            invalid(format!(
                "{what} '{path}' points outside the source; use a path inside the repository"
            ))
        })
    };
    let mut project = ProjectFile {
        file: file.to_owned(),
        ..ProjectFile::default()
    };
    if let Some(source) = raw.source {
        if let Some(kind) = source.kind.filter(|k| k != "filesystem") {
            return Err(invalid(format!(
                "source type '{kind}' is not supported (only \"filesystem\"); point Skyport at the repository instead"
            )));
        }
        project.source_path = source
            .path
            .map(|path| inside("source.path", &path))
            .transpose()?;
        project.object = source.entrypoint;
    }
    if let Some(env) = raw.environment {
        if let Some(kind) = env.kind.filter(|k| k != "uv") {
            return Err(invalid(format!(
                "environment type '{kind}' is not supported (only \"uv\")"
            )));
        }
        project.environment = EnvironmentSection {
            python: env.python,
            dependencies: env.dependencies,
            requirements: env
                .requirements
                .map(|path| inside("environment.requirements", &path))
                .transpose()?,
            project: env
                .project
                .map(|path| inside("environment.project", &path))
                .transpose()?,
            editable: env
                .editable
                .into_vec()
                .iter()
                .map(|path| inside("environment.editable", path))
                .collect::<Result<_, _>>()?,
        };
    }
    let _ = raw.deployment;
    Ok(project)
}

/// `base/path` normalised to a `/`-separated path inside the source root, or `None` when it
/// leaves it (absolute, or too many `..`).
pub(crate) fn within_source(base: &Path, path: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for component in base.join(path).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// JSON with `//` and `/* */` comments (as FastMCP's examples write it) made plain JSON; the
/// comments become spaces so that error positions still match the file.
fn strip_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            out.push(b);
            if b == b'\\' && i + 1 < bytes.len() {
                out.push(bytes[i + 1]);
                i += 2;
                continue;
            }
            if b == b'"' {
                in_string = false;
            }
            i += 1;
        } else if b == b'"' {
            in_string = true;
            out.push(b);
            i += 1;
        } else if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if b == b'/' && bytes.get(i + 1) == Some(&b'*') {
            out.extend_from_slice(b"  ");
            i += 2;
            while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                out.push(if bytes[i] == b'\n' { b'\n' } else { b' ' });
                i += 1;
            }
            out.extend_from_slice(b"  ");
            i += 2;
        } else {
            out.push(b);
            i += 1;
        }
    }
    // Only ASCII bytes were replaced, so the text stays valid UTF-8.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file_with_comments() {
        let text = r#"{
            "$schema": "https://gofastmcp.com/public/schemas/fastmcp.json/v1.json",
            // WHERE does the server live?
            "source": { "path": "src/server.py", "entrypoint": "app" },
            /* WHAT does it need? */
            "environment": {
                "type": "uv", "python": ">=3.10",
                "dependencies": ["pandas>=2.0", "url//with-slashes"],
                "requirements": "reqs/prod.txt", "project": ".", "editable": "."
            },
            "deployment": { "transport": "http", "port": 8000 }
        }"#;
        let project = parse("fastmcp.json", text).unwrap();
        assert_eq!(project.source_path.as_deref(), Some("src/server.py"));
        assert_eq!(project.object.as_deref(), Some("app"));
        assert_eq!(project.environment.python.as_deref(), Some(">=3.10"));
        assert_eq!(
            project.environment.dependencies,
            ["pandas>=2.0", "url//with-slashes"]
        );
        assert_eq!(
            project.environment.requirements.as_deref(),
            Some("reqs/prod.txt")
        );
        assert_eq!(project.environment.project.as_deref(), Some(""));
        assert_eq!(project.environment.editable, [""]);
    }

    #[test]
    fn paths_are_relative_to_the_file() {
        let text =
            r#"{"source": {"path": "../main.py"}, "environment": {"requirements": "r.txt"}}"#;
        let project = parse("deploy/fastmcp.json", text).unwrap();
        assert_eq!(project.source_path.as_deref(), Some("main.py"));
        assert_eq!(
            project.environment.requirements.as_deref(),
            Some("deploy/r.txt")
        );
    }

    #[test]
    fn mistakes_are_config_failures_that_say_where() {
        for (text, says) in [
            ("{\"source\": {\"path\": \"main.py\",}}", "line 1"),
            ("{\"source\": {\"path\": 3}}", "invalid type"),
            ("{\"sauce\": {}}", "unknown field `sauce`"),
            (
                "{\"source\": {\"path\": \"../../etc/passwd\"}}",
                "outside the source",
            ),
            ("{\"source\": {\"type\": \"git\"}}", "source type 'git'"),
            (
                "{\"environment\": {\"editable\": [\"/abs\"]}}",
                "outside the source",
            ),
        ] {
            let failure = parse("fastmcp.json", text).unwrap_err();
            assert_eq!(failure.kind, FailureKind::Config);
            assert!(
                failure.message.contains(says),
                "{text}: {}",
                failure.message
            );
        }
    }
}
