//! A repository's own `server.json` (the MCP registry's format, at the source's root): the
//! fields that describe the server (title, description, version, website, repository), read in
//! the resolve phase and kept in the artifact's manifest, so the catalog can show what the
//! server says about itself. Packages and remotes in it mean nothing to a hosted server and
//! are ignored.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use skyport_store::FailureKind;

use crate::job::Failure;

/// The file's name, at the source's root.
pub(crate) const SERVER_JSON: &str = "server.json";

/// What a repository's `server.json` says about the server; every field optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServerMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) website_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) repository: Option<Value>,
}

/// The metadata of `src/server.json`, `None` without one; a file that is not a JSON object
/// fails the build as a configuration error (it would be silently wrong in the catalog).
pub(crate) fn read(src: &Path) -> Result<Option<ServerMetadata>, Failure> {
    let path = src.join(SERVER_JSON);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Failure::new(
                FailureKind::Config,
                format!("cannot read {SERVER_JSON}: {e}"),
            ));
        }
    };
    let doc: Value = serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            FailureKind::Config,
            format!("{SERVER_JSON} at the source's root is not valid JSON ({e}); fix or remove it"),
        )
    })?;
    if !doc.is_object() {
        return Err(Failure::new(
            FailureKind::Config,
            format!("{SERVER_JSON} at the source's root is not a JSON object; fix or remove it"),
        ));
    }
    let text_of = |field: &str| {
        doc[field]
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let repository = doc["repository"]
        .get("url")
        .and_then(Value::as_str)
        .map(|_| doc["repository"].clone());
    Ok(Some(ServerMetadata {
        title: text_of("title"),
        description: text_of("description"),
        version: text_of("version"),
        website_url: text_of("websiteUrl"),
        repository,
    }))
}

#[cfg(test)]
mod tests;
