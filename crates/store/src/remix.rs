//! Remix servers: a `servers` row of kind `remix` and its ordered sources, each with what the
//! remix takes from it (tools, prompts, resources), renames and description overrides.
//!
//! The definition is parsed into a [`RemixSpec`] at the edge (at most
//! [`MAX_REMIX_SOURCES`] sources, each once, renames that do not clash); this repository adds
//! the checks that need the database (sources exist and are not remixes, the name is free)
//! inside the transaction that writes. How the definition composes lists at run time is the
//! gateway's business (`gateway/src/remix/compose.rs`), not this module's.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::servers::{named, select_servers, server};
use crate::{Change, Server, ServerId, ServerKind, ServerName, Store, StoreError, now, to_millis};

/// The most sources one remix may compose.
pub const MAX_REMIX_SOURCES: usize = 10;

/// Which items of one kind (tools, prompts or resources) a remix takes from a source.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Selection {
    /// Every item the source offers, now and after it changes.
    #[default]
    All,
    /// Only these names (tools, prompts) or URIs (resources); the empty set takes none.
    Only(BTreeSet<String>),
}

impl Selection {
    /// Whether the item named `name` is taken.
    pub fn includes(&self, name: &str) -> bool {
        match self {
            Selection::All => true,
            Selection::Only(names) => names.contains(name),
        }
    }
}

/// What a remix takes from one source, as its author wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSpec {
    /// The source server (hosted or external; never a remix).
    pub server: ServerName,
    /// The tools taken.
    #[serde(default)]
    pub tools: Selection,
    /// The prompts taken.
    #[serde(default)]
    pub prompts: Selection,
    /// The resources (and resource templates) taken, by URI (or URI template).
    #[serde(default)]
    pub resources: Selection,
    /// New names of tools and prompts, by their name at the source.
    #[serde(default)]
    pub renames: BTreeMap<String, String>,
    /// New descriptions of tools and prompts, by their name at the source.
    #[serde(default)]
    pub descriptions: BTreeMap<String, String>,
}

/// A remix's sources, checked: one to [`MAX_REMIX_SOURCES`] distinct servers, renames and
/// overrides naming items the source selection takes, no two renames to one name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RemixSpec(Vec<SourceSpec>);

impl RemixSpec {
    /// Checks `sources` (in the order the remix lists them).
    pub fn new(sources: Vec<SourceSpec>) -> Result<RemixSpec, RemixError> {
        if sources.is_empty() {
            return Err(RemixError::NoSources);
        }
        if sources.len() > MAX_REMIX_SOURCES {
            return Err(RemixError::TooManySources(sources.len()));
        }
        let mut seen = BTreeSet::new();
        let mut targets: HashMap<&str, String> = HashMap::new();
        for source in &sources {
            if !seen.insert(&source.server) {
                return Err(RemixError::DuplicateSource(source.server.clone()));
            }
            let keys = source.renames.keys().chain(source.descriptions.keys());
            for name in keys {
                let taken = source.tools.includes(name) || source.prompts.includes(name);
                if !taken {
                    return Err(RemixError::NotSelected {
                        server: source.server.clone(),
                        name: name.clone(),
                    });
                }
            }
            for (from, to) in &source.renames {
                check_name(to)?;
                let here = format!("{}.{from}", source.server);
                if let Some(first) = targets.insert(to, here.clone()) {
                    return Err(RemixError::RenameClash {
                        name: to.clone(),
                        first,
                        second: here,
                    });
                }
            }
        }
        Ok(RemixSpec(sources))
    }

    /// The sources, in order.
    pub fn sources(&self) -> &[SourceSpec] {
        &self.0
    }
}

/// A tool or prompt name is what clients type and match policies against: printable, no
/// spaces, at most 128 characters (the limit MCP's tool-name guidance gives).
fn check_name(name: &str) -> Result<(), RemixError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    if ok {
        Ok(())
    } else {
        Err(RemixError::BadName(name.chars().take(140).collect()))
    }
}

/// A remix as stored: its server row and its sources, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remix {
    /// The remix's own server row (kind `remix`).
    pub server: Server,
    /// Its sources, in order.
    pub sources: Vec<RemixSource>,
}

/// One source of a stored remix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemixSource {
    /// The source server's id.
    pub id: ServerId,
    /// What the remix takes from it (with the source's current name).
    pub spec: SourceSpec,
}

/// Why a remix cannot be created or changed as asked.
#[derive(Debug, thiserror::Error)]
pub enum RemixError {
    /// No source was given.
    #[error("a remix needs at least one source: --source SERVER[:tool,…]")]
    NoSources,
    /// More sources than [`MAX_REMIX_SOURCES`].
    #[error("a remix composes at most {MAX_REMIX_SOURCES} sources, and {0} were given")]
    TooManySources(usize),
    /// A source was listed twice.
    #[error("source '{0}' is listed twice; give each source once, with all its tools")]
    DuplicateSource(ServerName),
    /// A rename or description names an item the source's selection does not take.
    #[error(
        "'{server}.{name}' is renamed or described but not taken: add '{name}' to the tools of --source {server}:…"
    )]
    NotSelected {
        /// The source.
        server: ServerName,
        /// The item's name at the source.
        name: String,
    },
    /// Two renames give one name.
    #[error("'{first}' and '{second}' are both renamed to '{name}'; give them different names")]
    RenameClash {
        /// The name given twice.
        name: String,
        /// The first item renamed to it (`SOURCE.NAME`).
        first: String,
        /// The second one.
        second: String,
    },
    /// A new name clients could not type or policies could not match.
    #[error(
        "'{0}' is not a usable tool or prompt name: use 1-128 letters, digits, '_', '-', '.' or '/'"
    )]
    BadName(String),
    /// A source names no server.
    #[error("no server named '{0}' to take tools from; `skyport servers ls` lists them")]
    UnknownSource(ServerName),
    /// A source is itself a remix.
    #[error("'{0}' is a remix; a remix composes hosted and external servers, not other remixes")]
    SourceIsRemix(ServerName),
    /// The remix lists itself.
    #[error("remix '{0}' cannot be its own source")]
    OwnSource(ServerName),
    /// The name is taken by another server.
    #[error("a server named '{0}' exists already; choose another name, or `skyport remix edit` it")]
    Exists(ServerName),
    /// No remix has this name.
    #[error("no remix named '{0}'; `skyport remix create` makes one")]
    NotFound(ServerName),
    /// The server exists but is not a remix.
    #[error(
        "server '{0}' is not a remix (it is {1}); only remixes are edited with `skyport remix`"
    )]
    NotARemix(ServerName, ServerKind),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RemixError {
    fn from(e: sqlx::Error) -> RemixError {
        RemixError::Store(e.into())
    }
}

/// Access to remixes; obtained from [`Store::remixes`].
pub struct Remixes<'a> {
    pub(crate) store: &'a Store,
}

/// The part of a [`SourceSpec`] stored as JSON (the server is a column).
#[derive(Serialize, Deserialize)]
struct Stored {
    tools: Selection,
    prompts: Selection,
    resources: Selection,
    renames: BTreeMap<String, String>,
    descriptions: BTreeMap<String, String>,
}

impl Remixes<'_> {
    /// Creates remix `name` composing `spec`.
    pub async fn create(
        &self,
        name: &ServerName,
        description: &str,
        spec: &RemixSpec,
    ) -> Result<Remix, RemixError> {
        let mut tx = self.store.write().await?;
        if named(&mut tx, name).await?.is_some() {
            return Err(RemixError::Exists(name.clone()));
        }
        let id = ServerId::generate();
        let at = to_millis(now());
        crate::sql::query(
            "INSERT INTO servers (id, name, kind, description, created_at, updated_at)
             VALUES (?, ?, 'remix', ?, ?, ?)",
        )
        .bind(&id)
        .bind(name)
        .bind(description)
        .bind(at)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        write_sources(&mut tx, &id, name, spec).await?;
        tx.commit().await?;
        self.store.publish(Change::Remix { server: id });
        self.get(name)
            .await?
            .ok_or(RemixError::NotFound(name.clone()))
    }

    /// Changes remix `name`: its description, its sources (replaced whole), or both.
    pub async fn update(
        &self,
        name: &ServerName,
        description: Option<&str>,
        spec: Option<&RemixSpec>,
    ) -> Result<Remix, RemixError> {
        let mut tx = self.store.write().await?;
        let remix = named(&mut tx, name)
            .await?
            .ok_or_else(|| RemixError::NotFound(name.clone()))?;
        if remix.kind != ServerKind::Remix {
            return Err(RemixError::NotARemix(name.clone(), remix.kind));
        }
        if let Some(description) = description {
            crate::sql::query("UPDATE servers SET description = ?, updated_at = ? WHERE id = ?")
                .bind(description)
                .bind(to_millis(now()))
                .bind(&remix.id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(spec) = spec {
            crate::sql::query("DELETE FROM remix_sources WHERE remix_id = ?")
                .bind(&remix.id)
                .execute(&mut *tx)
                .await?;
            write_sources(&mut tx, &remix.id, name, spec).await?;
        }
        tx.commit().await?;
        self.store.publish(Change::Remix { server: remix.id });
        self.get(name)
            .await?
            .ok_or(RemixError::NotFound(name.clone()))
    }

    /// Remix `name`, if there is one (`None` also for a server of another kind).
    pub async fn get(&self, name: &ServerName) -> Result<Option<Remix>, StoreError> {
        let row = crate::sql::query(select_servers!("WHERE name = ? AND kind = 'remix'"))
            .bind(name)
            .fetch_optional(&self.store.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let server = server(&row)?;
        let sources = self.sources(&server.id).await?;
        Ok(Some(Remix { server, sources }))
    }

    /// Every remix, by name.
    pub async fn list(&self) -> Result<Vec<Remix>, StoreError> {
        let rows = crate::sql::query(select_servers!("WHERE kind = 'remix' ORDER BY name"))
            .fetch_all(&self.store.pool)
            .await?;
        let mut remixes = Vec::with_capacity(rows.len());
        for row in rows {
            let server = server(&row)?;
            let sources = self.sources(&server.id).await?;
            remixes.push(Remix { server, sources });
        }
        Ok(remixes)
    }

    async fn sources(&self, remix: &ServerId) -> Result<Vec<RemixSource>, StoreError> {
        let rows = crate::sql::query(
            "SELECT r.source_id, s.name, r.spec FROM remix_sources r
             JOIN servers s ON s.id = r.source_id
             WHERE r.remix_id = ? ORDER BY r.position",
        )
        .bind(remix)
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let spec: String = row.try_get("spec")?;
                let stored: Stored = serde_json::from_str(&spec)
                    .map_err(|e| StoreError::Corrupt(format!("remix source: {e}")))?;
                Ok(RemixSource {
                    id: row.try_get("source_id")?,
                    spec: SourceSpec {
                        server: row.try_get("name")?,
                        tools: stored.tools,
                        prompts: stored.prompts,
                        resources: stored.resources,
                        renames: stored.renames,
                        descriptions: stored.descriptions,
                    },
                })
            })
            .collect()
    }
}

/// Writes `spec`'s sources of remix `id` (named `name`), checking each is a server that is
/// not a remix.
async fn write_sources(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &ServerId,
    name: &ServerName,
    spec: &RemixSpec,
) -> Result<(), RemixError> {
    for (position, source) in spec.sources().iter().enumerate() {
        if source.server == *name {
            return Err(RemixError::OwnSource(name.clone()));
        }
        let found = named(tx, &source.server)
            .await?
            .ok_or_else(|| RemixError::UnknownSource(source.server.clone()))?;
        if found.kind == ServerKind::Remix {
            return Err(RemixError::SourceIsRemix(source.server.clone()));
        }
        let stored = Stored {
            tools: source.tools.clone(),
            prompts: source.prompts.clone(),
            resources: source.resources.clone(),
            renames: source.renames.clone(),
            descriptions: source.descriptions.clone(),
        };
        let stored = serde_json::to_string(&stored)
            .map_err(|e| StoreError::Corrupt(format!("remix source: {e}")))?;
        crate::sql::query(
            "INSERT INTO remix_sources (remix_id, position, source_id, spec) VALUES (?, ?, ?, ?)",
        )
        .bind(id)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .bind(&found.id)
        .bind(stored)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
