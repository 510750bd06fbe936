//! `server.json` documents as the official MCP registry API serves them (schema
//! `2025-12-11`), built from catalog entries, and read back for `skyport registry import`.
//!
//! Names are reverse-DNS: `io.skyport.<host>/<server>`, where `<host>` is the host of the
//! public URL (so two Skyports' catalogs do not collide when a client merges them). The one
//! version of an entry is its live one: registry clients list what serves now.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use skyport_store::{ServerKind, ServerName, Timestamp};

/// The schema documents point at.
pub const SCHEMA_URL: &str =
    "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json";

/// The `_meta` key of Skyport's own fields in a document.
pub const META_KEY: &str = "io.skyport/catalog";

/// The `_meta` key of a registry's own fields in a listing, as the official registry has it.
pub const OFFICIAL_META_KEY: &str = "io.modelcontextprotocol.registry/official";

/// The schema's limit on a description's length.
const MAX_DESCRIPTION: usize = 100;

/// What a document is made from: one catalog entry as it serves now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Its name in the catalog.
    pub name: ServerName,
    /// What kind of entry it is.
    pub kind: ServerKind,
    /// Its description (may be empty).
    pub description: String,
    /// The version that serves now.
    pub version: String,
    /// Its gateway URL (absolute).
    pub url: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// What a hosted server's own `server.json` says about it (title, description, version,
    /// websiteUrl, repository), as its live deployment's manifest keeps it; `Null` without.
    pub metadata: Value,
}

/// One entry of a listing: the document and the registry's fields about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerResponse {
    /// The `server.json` document.
    pub server: Value,
    /// The registry's fields (status, dates, whether it is the latest version).
    #[serde(rename = "_meta")]
    pub meta: Value,
}

/// The reverse-DNS namespace of a catalog served at `public_url`: `io.skyport.<host>`.
pub fn namespace(public_url: &str) -> String {
    let rest = public_url
        .split_once("://")
        .map_or(public_url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        // An IPv6 literal: its colons are not allowed in a name.
        Some(v6) => v6.split(']').next().unwrap_or_default().replace(':', "-"),
        None => authority.split(':').next().unwrap_or_default().to_owned(),
    };
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        .collect::<String>()
        .to_ascii_lowercase();
    if host.is_empty() {
        "io.skyport".to_owned()
    } else {
        format!("io.skyport.{host}")
    }
}

/// The registry name of catalog entry `server`: `<namespace>/<server>`.
pub fn registry_name(namespace: &str, server: &ServerName) -> String {
    format!("{namespace}/{server}")
}

/// The catalog name a registry name refers to, when it is in `namespace`.
pub fn catalog_name(namespace: &str, registry_name: &str) -> Option<ServerName> {
    let (ns, name) = registry_name.rsplit_once('/')?;
    if ns != namespace {
        return None;
    }
    name.parse().ok()
}

/// The `server.json` document of `entry`.
/// The server's own metadata wins over what Skyport derives, except the name and remotes,
/// which say where this catalog serves it.
pub fn document(namespace: &str, entry: &CatalogEntry) -> Value {
    let own = |field: &str| entry.metadata.get(field).and_then(Value::as_str);
    let mut doc = json!({
        "$schema": SCHEMA_URL,
        "name": registry_name(namespace, &entry.name),
        "title": fit(own("title").unwrap_or(entry.name.as_str())),
        "description": description(entry, own("description")),
        "version": own("version").unwrap_or(&entry.version),
        "remotes": [{"type": "streamable-http", "url": entry.url}],
        "_meta": {
            META_KEY: {
                "name": entry.name.as_str(),
                "kind": entry.kind.as_str(),
                "createdAt": entry.created_at.to_string(),
            }
        }
    });
    if let Some(website) = own("websiteUrl") {
        doc["websiteUrl"] = Value::String(website.to_owned());
    }
    if let Some(repository) = entry
        .metadata
        .get("repository")
        .filter(|r| r["url"].is_string())
    {
        doc["repository"] = repository.clone();
    }
    doc
}

/// `entry` as one item of a listing, with the registry's fields.
pub fn response(namespace: &str, entry: &CatalogEntry) -> ServerResponse {
    ServerResponse {
        server: document(namespace, entry),
        meta: json!({
            OFFICIAL_META_KEY: {
                "status": "active",
                "publishedAt": entry.created_at.to_string(),
                "updatedAt": entry.updated_at.to_string(),
                "isLatest": true,
            }
        }),
    }
}

/// A description the schema accepts (1 to 100 characters): the one set in Skyport, else the
/// server's own, else a generic one.
fn description(entry: &CatalogEntry, own: Option<&str>) -> String {
    let text = Some(entry.description.trim())
        .filter(|d| !d.is_empty())
        .or(own.map(str::trim).filter(|d| !d.is_empty()));
    match text {
        Some(text) => fit(text),
        None => format!("MCP server {} served by Skyport", entry.name),
    }
}

/// `text` cut to the schema's 100 characters.
fn fit(text: &str) -> String {
    if text.chars().count() <= MAX_DESCRIPTION {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(MAX_DESCRIPTION - 1).collect();
    cut.push('…');
    cut
}

/// What `skyport registry import` takes from a `server.json` document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// The catalog name: the part of the registry name after its `/`, as a DNS label.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its first streamable-http remote.
    pub url: String,
    /// The remote's headers that have a fixed value (`Name: value`); templated ones
    /// (`{api_key}`) need the user's value and are listed in `needs` instead.
    pub headers: Vec<String>,
    /// The headers the user must give (templated or without a value).
    pub needs: Vec<String>,
}

/// Why a document cannot be imported.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    /// Not a JSON object with a name.
    #[error("the file is not a server.json document: {0}")]
    NotADocument(String),
    /// No remote Skyport can proxy.
    #[error(
        "'{0}' has no streamable-http remote; only remote servers can be imported (packages are run by their clients)"
    )]
    NoRemote(String),
}

/// Reads a `server.json` document for import.
pub fn import(text: &str) -> Result<Imported, ImportError> {
    let doc: Value =
        serde_json::from_str(text).map_err(|e| ImportError::NotADocument(e.to_string()))?;
    let name = doc["name"]
        .as_str()
        .ok_or_else(|| ImportError::NotADocument("it has no \"name\"".to_owned()))?;
    let remote = doc["remotes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["type"] == "streamable-http" && r["url"].is_string())
        .ok_or_else(|| ImportError::NoRemote(name.to_owned()))?;
    let mut headers = Vec::new();
    let mut needs = Vec::new();
    for header in remote["headers"].as_array().into_iter().flatten() {
        let Some(header_name) = header["name"].as_str() else {
            continue;
        };
        match header["value"].as_str() {
            Some(value) if !value.contains('{') => headers.push(format!("{header_name}: {value}")),
            _ => needs.push(header_name.to_owned()),
        }
    }
    let short = name.rsplit('/').next().unwrap_or(name);
    let label: String = short
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    Ok(Imported {
        name: label.trim_matches('-').chars().take(63).collect(),
        description: doc["description"].as_str().unwrap_or_default().to_owned(),
        url: remote["url"].as_str().unwrap_or_default().to_owned(),
        headers,
        needs,
    })
}
