//! Entrypoints with the rules of `fastmcp run`: `FILE.py[:OBJECT]`, `package.module[:OBJECT]`,
//! or a `fastmcp.json` file whose `source` names the server; with none given, `fastmcp.json` at
//! the top of the source, else the first of `main.py`, `server.py`, `app.py`. Parsing checks
//! the syntax; [`locate`] finds the target in an unpacked source. Whether the object exists and
//! is a server is the launcher's job at inspection time, because only Python can tell.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use skyport_store::FailureKind;

use crate::BuildError;
use crate::config::{self, ProjectFile};
use crate::job::Failure;

/// Files tried, in order, when the user names no entrypoint and the source has no
/// `fastmcp.json` (the same defaults as common FastMCP examples).
pub const DEFAULT_FILES: [&str; 3] = ["main.py", "server.py", "app.py"];

/// How many top-level names a "not found" message lists before it abbreviates.
const LISTED_NAMES: usize = 12;
const USAGE: &str =
    "use FILE.py[:OBJECT], package.module[:OBJECT] or a fastmcp.json file, e.g. main.py:mcp";
const HINT: &str = "pass --entrypoint FILE.py[:OBJECT] (or package.module:OBJECT, or fastmcp.json)";

/// What an entrypoint points at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A Python file, relative to the source root, `/`-separated.
    File(String),
    /// A dotted module name, imported from the source (or its `src/` folder).
    Module(String),
    /// A `fastmcp.json` file, relative to the source root.
    Config(String),
}

/// A server the user asked for: a target and, optionally, the object in it that is the server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entrypoint {
    target: Target,
    object: Option<String>,
}

impl Entrypoint {
    /// What it points at.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The object name, if one was given.
    pub fn object(&self) -> Option<&str> {
        self.object.as_deref()
    }
}

impl FromStr for Entrypoint {
    type Err = BuildError;

    fn from_str(s: &str) -> Result<Self, BuildError> {
        let invalid = |why: &str| {
            Err(BuildError::InvalidEntrypoint(format!(
                "entrypoint '{s}' {why}; {USAGE}"
            )))
        };
        let text = s.trim();
        if text.is_empty() {
            return Err(BuildError::InvalidEntrypoint(format!(
                "the entrypoint is empty; {USAGE}"
            )));
        }
        let (path, object) = match text.split_once(':') {
            Some((path, object)) => (path, Some(object)),
            None => (text, None),
        };
        if let Some(object) = object {
            if object.is_empty() {
                return invalid("has an empty object name after ':'");
            }
            if !is_identifier(object) {
                return invalid(&format!(
                    "names the object '{object}', which is not a Python identifier"
                ));
            }
        }
        if !path.contains('/') && !path.ends_with(".py") && !path.ends_with(".json") {
            if path.split('.').all(is_identifier) {
                return Ok(Entrypoint {
                    target: Target::Module(path.to_owned()),
                    object: object.map(str::to_owned),
                });
            }
            return invalid("is neither a .py file, a module name nor a .json file");
        }
        if path.contains('\\') || path.contains('\0') {
            return invalid("must use '/' to separate folders");
        }
        if path.starts_with('/') {
            return invalid("must be a path inside the source folder, not an absolute path");
        }
        let mut parts = Vec::new();
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => return invalid("must stay inside the source folder ('..' is not allowed)"),
                part => parts.push(part),
            }
        }
        let name = parts.last().copied().unwrap_or_default();
        let file = parts.join("/");
        // Spaces around the whole entrypoint are trimmed, so a path that starts with one once
        // `./` is gone would be shown as one that reads back as another file.
        if file.trim() != file {
            return invalid("names a file or folder that starts with a space");
        }
        if name.len() > 5 && name.ends_with(".json") {
            if object.is_some() {
                return invalid(
                    "names an object after a .json file; put it in the file's source.entrypoint",
                );
            }
            return Ok(Entrypoint {
                target: Target::Config(file),
                object: None,
            });
        }
        if !(name.len() > 3 && name.ends_with(".py")) {
            return invalid("does not name a .py file");
        }
        Ok(Entrypoint {
            target: Target::File(file),
            object: object.map(str::to_owned),
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::File(path) | Target::Config(path) | Target::Module(path) => f.write_str(path),
        }
    }
}

impl fmt::Display for Entrypoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.object {
            Some(object) => write!(f, "{}:{object}", self.target),
            None => write!(f, "{}", self.target),
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The server found in a source: a file or a module, the object asked for, and the
/// `fastmcp.json` that named it, if one did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Located {
    /// The file (relative to the source root, `/`-separated) or the module name.
    pub(crate) target: Target,
    /// Absolute path of the file (for a module: of the file that defines it).
    pub(crate) path: PathBuf,
    /// The object the user (or `fastmcp.json`) asked for, if any.
    pub(crate) object: Option<String>,
    /// Folders (relative to the source root) to import a module target from.
    pub(crate) import_root: Option<String>,
    /// The `fastmcp.json` used, if any.
    pub(crate) config: Option<ProjectFile>,
}

impl Located {
    /// The file or module as the user knows it, for messages.
    pub(crate) fn shown(&self) -> String {
        self.target.to_string()
    }
}

/// Finds the requested target (or the default one) in `src`.
pub(crate) fn locate(src: &Path, requested: Option<&Entrypoint>) -> Result<Located, Failure> {
    let not_found = |message: String| Failure::new(FailureKind::Entrypoint, message);
    let root = src.canonicalize().map_err(|e| {
        Failure::new(
            FailureKind::Internal,
            format!("cannot read the source: {e}"),
        )
    })?;
    let found = |file: &str| -> Result<Option<PathBuf>, Failure> {
        match root.join(file).canonicalize() {
            // Unpacking never creates symlinks, but a resolved path outside the source must
            // still be refused rather than trusted.
            Ok(path) if !path.starts_with(&root) => Err(not_found(format!(
                "entrypoint {file} resolves outside the source folder; {HINT}"
            ))),
            Ok(path) if path.is_file() => Ok(Some(path)),
            Ok(_) => Err(not_found(format!(
                "entrypoint {file} is not a file; {HINT}"
            ))),
            Err(_) => Ok(None),
        }
    };
    let file_target =
        |file: String, object: Option<String>, config: Option<ProjectFile>| match found(&file)? {
            Some(path) => Ok(Located {
                target: Target::File(file),
                path,
                object,
                import_root: None,
                config,
            }),
            None => Err(not_found(format!(
                "entrypoint {file} not found in the source ({}); {HINT}",
                top_level(&root)
            ))),
        };
    let from_config = |file: String| -> Result<Located, Failure> {
        if found(&file)?.is_none() {
            return Err(not_found(format!(
                "entrypoint {file} not found in the source ({}); {HINT}",
                top_level(&root)
            )));
        }
        let project = config::read(&root, &file)?;
        let Some(source) = project.source_path.clone() else {
            return Err(Failure::new(
                FailureKind::Config,
                format!(
                    "{file} has no source.path; name the server file in it, e.g. \"source\": {{\"path\": \"server.py\", \"entrypoint\": \"mcp\"}}"
                ),
            ));
        };
        let object = project.object.clone();
        file_target(source, object, Some(project))
    };
    match requested.map(|e| (e.target(), e.object())) {
        Some((Target::File(file), object)) => {
            file_target(file.clone(), object.map(str::to_owned), None)
        }
        Some((Target::Config(file), _)) => from_config(file.clone()),
        Some((Target::Module(module), object)) => {
            let relative = module.replace('.', "/");
            for root_folder in ["", "src"] {
                for candidate in [format!("{relative}.py"), format!("{relative}/__init__.py")] {
                    let file = config::within_source(Path::new(root_folder), &candidate)
                        .unwrap_or_default();
                    if let Some(path) = found(&file)? {
                        return Ok(Located {
                            target: Target::Module(module.clone()),
                            path,
                            object: object.map(str::to_owned),
                            import_root: Some(root_folder.to_owned()),
                            config: None,
                        });
                    }
                }
            }
            Err(not_found(format!(
                "module {module} not found in the source: looked for {relative}.py and {relative}/__init__.py at the top and under src/ ({}); {HINT}",
                top_level(&root)
            )))
        }
        None => {
            if found(config::FILE_NAME)?.is_some() {
                return from_config(config::FILE_NAME.to_owned());
            }
            for file in DEFAULT_FILES {
                if found(file)?.is_some() {
                    return file_target(file.to_owned(), None, None);
                }
            }
            Err(not_found(format!(
                "no entrypoint given and no fastmcp.json, main.py, server.py or app.py in the source ({}); {HINT}",
                top_level(&root)
            )))
        }
    }
}

/// "files at the top level: a.py, b.txt, src/" for "not found" messages.
fn top_level(root: &Path) -> String {
    let mut names: Vec<String> = match std::fs::read_dir(root) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    format!("{name}/")
                } else {
                    name
                }
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    if names.is_empty() {
        return "the source is empty".to_owned();
    }
    names.sort();
    let more = names.len().saturating_sub(LISTED_NAMES);
    names.truncate(LISTED_NAMES);
    let mut text = format!("files at the top level: {}", names.join(", "));
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}
