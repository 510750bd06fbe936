//! Entrypoints in `fastmcp run` syntax (`FILE.py[:OBJECT]`): parsing what the user asked for,
//! and finding the file in an unpacked source. Whether the object exists and is a server is the
//! launcher's job at inspection time, because only Python can tell.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::BuildError;

/// Files tried, in order, when the user names no entrypoint (the same defaults as common
/// FastMCP examples).
pub const DEFAULT_FILES: [&str; 3] = ["main.py", "server.py", "app.py"];

/// How many top-level names a "not found" message lists before it abbreviates.
const LISTED_NAMES: usize = 12;

/// A server file in the source and, optionally, the object in it that is the server.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entrypoint {
    file: String,
    object: Option<String>,
}

impl Entrypoint {
    /// The file, relative to the source root, with `/` separators.
    pub fn file(&self) -> &str {
        &self.file
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
                "entrypoint '{s}' {why}; use a path to a .py file, e.g. main.py:mcp"
            )))
        };
        let text = s.trim();
        if text.is_empty() {
            return Err(BuildError::InvalidEntrypoint(
                "the entrypoint is empty; use a path to a .py file, e.g. main.py:mcp".to_owned(),
            ));
        }
        let (file, object) = match text.split_once(':') {
            Some((file, object)) => (file, Some(object)),
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
        if file.contains('\\') || file.contains('\0') {
            return invalid("must use '/' to separate folders");
        }
        if file.starts_with('/') {
            return invalid("must be a path inside the source folder, not an absolute path");
        }
        let mut parts = Vec::new();
        for part in file.split('/') {
            match part {
                "" | "." => {}
                ".." => return invalid("must stay inside the source folder ('..' is not allowed)"),
                part => parts.push(part),
            }
        }
        let valid_name = parts
            .last()
            .is_some_and(|name| name.len() > 3 && name.ends_with(".py"));
        if !valid_name {
            if !file.contains('/') && file.contains('.') && file.split('.').all(is_identifier) {
                return invalid(
                    "does not name a .py file (module syntax such as pkg.mod:obj is not supported)",
                );
            }
            return invalid("does not name a .py file");
        }
        Ok(Entrypoint {
            file: parts.join("/"),
            object: object.map(str::to_owned),
        })
    }
}

impl fmt::Display for Entrypoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.object {
            Some(object) => write!(f, "{}:{object}", self.file),
            None => f.write_str(&self.file),
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

/// The server file found in a source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Located {
    /// Relative to the source root, `/`-separated.
    pub(crate) file: String,
    /// Absolute path of the file.
    pub(crate) path: PathBuf,
    /// The object the user asked for, if any.
    pub(crate) object: Option<String>,
}

/// Finds the requested file (or the first default one) in `src`; the error is the message
/// for the user.
pub(crate) fn locate(src: &Path, requested: Option<&Entrypoint>) -> Result<Located, String> {
    let root = src
        .canonicalize()
        .map_err(|e| format!("cannot read the unpacked source: {e}"))?;
    let found = |file: &str| -> Result<Option<PathBuf>, String> {
        match root.join(file).canonicalize() {
            // Unpacking never creates symlinks, but a resolved path outside the source must
            // still be refused rather than trusted.
            Ok(path) if !path.starts_with(&root) => Err(format!(
                "entrypoint {file} resolves outside the source folder; pass --entrypoint FILE.py[:OBJECT]"
            )),
            Ok(path) if path.is_file() => Ok(Some(path)),
            Ok(_) => Err(format!(
                "entrypoint {file} is not a file; pass --entrypoint FILE.py[:OBJECT]"
            )),
            Err(_) => Ok(None),
        }
    };
    match requested {
        Some(entrypoint) => match found(entrypoint.file())? {
            Some(path) => Ok(Located {
                file: entrypoint.file().to_owned(),
                path,
                object: entrypoint.object().map(str::to_owned),
            }),
            None => Err(format!(
                "entrypoint {} not found in the source ({}); pass --entrypoint FILE.py[:OBJECT]",
                entrypoint.file(),
                top_level(&root)
            )),
        },
        None => {
            for file in DEFAULT_FILES {
                if let Some(path) = found(file)? {
                    return Ok(Located {
                        file: file.to_owned(),
                        path,
                        object: None,
                    });
                }
            }
            Err(format!(
                "no entrypoint given and no main.py, server.py or app.py in the source ({}); \
                 pass --entrypoint FILE.py[:OBJECT]",
                top_level(&root)
            ))
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
