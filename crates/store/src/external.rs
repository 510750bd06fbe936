//! External catalog entries: remote MCP servers that the gateway proxies, with the headers it
//! sends them (sealed at rest: they are credentials) and what the last health check found.
//!
//! A header value is opened only for the gateway (`Externals::connections`); listings and views
//! carry header names, never values.

use std::fmt;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{
    Change, DeploymentId, Server, ServerId, ServerKind, ServerName, Store, StoreError, Timestamp,
    from_millis, now, secrets, servers, to_millis,
};

/// A header sent to a remote server with every request, e.g. `Authorization: Bearer …`.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteHeader {
    /// Its name, as sent.
    pub name: String,
    /// Its value; a credential, so never printed.
    pub value: String,
}

impl fmt::Debug for RemoteHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteHeader({}: [redacted])", self.name)
    }
}

/// What creating an external entry needs.
#[derive(Clone, Debug)]
pub struct NewExternal {
    /// Its name in the catalog (and its gateway path).
    pub name: ServerName,
    /// What it is for.
    pub description: String,
    /// The remote's MCP endpoint (streamable HTTP), already checked to be an http(s) URL.
    pub url: String,
    /// Headers sent with every request.
    pub headers: Vec<RemoteHeader>,
}

/// What the last health check of an external entry found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not checked yet.
    Unknown,
    /// It answered `initialize` and `tools/list`.
    Up,
    /// It did not; `health_error` says why.
    Down,
}

impl Health {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// A tool as a catalog lists it (for search).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ToolSummary {
    /// The tool's name.
    pub name: String,
    /// Its description, empty when it has none.
    #[serde(default)]
    pub description: String,
}

/// An external entry as shown: no header values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct External {
    /// The catalog entry.
    pub server: Server,
    /// The remote's MCP endpoint.
    pub url: String,
    /// The names of the headers sent (their values are not shown).
    pub header_names: Vec<String>,
    /// The last health check's verdict.
    pub health: Health,
    /// Why it is down, when it is.
    pub health_error: Option<String>,
    /// When it was last checked.
    pub checked_at: Option<Timestamp>,
    /// The remote's tools at the last successful check.
    pub tools: Vec<ToolSummary>,
}

/// How the gateway reaches one external entry: its URL and opened headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// The catalog entry's id.
    pub server_id: ServerId,
    /// Its name.
    pub name: ServerName,
    /// The remote's MCP endpoint.
    pub url: String,
    /// Headers sent with every request, opened.
    pub headers: Vec<RemoteHeader>,
    /// Changes with the URL or headers; gateway sessions bound to another configuration open
    /// a new remote session.
    pub config: DeploymentId,
}

/// Access to external entries; obtained from [`Store::externals`].
pub struct Externals<'a> {
    pub(crate) store: &'a Store,
}

impl Externals<'_> {
    /// Creates an external entry; refuses a name any entry already has.
    pub async fn create(&self, new: &NewExternal) -> Result<External, StoreError> {
        let sealed = self.seal_all(&new.name, &new.headers)?;
        let at = to_millis(now());
        let id = ServerId::generate();
        let mut tx = self.store.write().await?;
        if let Some(existing) = servers::named(&mut tx, &new.name).await? {
            return Err(StoreError::Conflict(format!(
                "'{}' is already a server of kind {}, and names are unique across kinds; remove it first (skyport servers rm {}) or choose another name",
                new.name, existing.kind, new.name
            )));
        }
        crate::sql::query(
            "INSERT INTO servers (id, name, kind, description, created_at, updated_at)
             VALUES (?, ?, 'external', ?, ?, ?)",
        )
        .bind(&id)
        .bind(&new.name)
        .bind(&new.description)
        .bind(at)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        crate::sql::query(
            "INSERT INTO external_servers (server_id, url, config_id) VALUES (?, ?, ?)",
        )
        .bind(&id)
        .bind(&new.url)
        .bind(DeploymentId::generate())
        .execute(&mut *tx)
        .await?;
        for (name, value) in sealed {
            crate::sql::query(
                "INSERT INTO external_headers (server_id, name, sealed) VALUES (?, ?, ?)",
            )
            .bind(&id)
            .bind(name)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.store.publish(Change::Catalog {
            server: new.name.clone(),
        });
        self.get(&new.name)
            .await?
            .ok_or_else(|| StoreError::Conflict(format!("'{}' was removed meanwhile", new.name)))
    }

    /// The external entry named `name`, if there is one.
    pub async fn get(&self, name: &ServerName) -> Result<Option<External>, StoreError> {
        let Some(server) = self.store.servers().get(name).await? else {
            return Ok(None);
        };
        if server.kind != ServerKind::External {
            return Ok(None);
        }
        let row = crate::sql::query(
            "SELECT url, health, health_error, checked_at, tools FROM external_servers
             WHERE server_id = ?",
        )
        .bind(&server.id)
        .fetch_optional(&self.store.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let header_names = crate::sql::query_scalar(
            "SELECT name FROM external_headers WHERE server_id = ? ORDER BY name",
        )
        .bind(&server.id)
        .fetch_all(&self.store.pool)
        .await?;
        external(server, &row, header_names).map(Some)
    }

    /// Every external entry with its opened headers, for the gateway.
    pub async fn connections(&self) -> Result<Vec<Connection>, StoreError> {
        let rows = crate::sql::query(
            "SELECT e.server_id, s.name, e.url, e.config_id FROM external_servers e
             JOIN servers s ON s.id = e.server_id ORDER BY s.name",
        )
        .fetch_all(&self.store.pool)
        .await?;
        let headers = crate::sql::query(
            "SELECT server_id, name, sealed FROM external_headers ORDER BY server_id, name",
        )
        .fetch_all(&self.store.pool)
        .await?;
        let mut connections = Vec::with_capacity(rows.len());
        for row in rows {
            let server_id: ServerId = row.try_get("server_id")?;
            let server_name: ServerName = row.try_get("name")?;
            let mut opened = Vec::new();
            for header in headers
                .iter()
                .filter(|h| h.try_get::<ServerId, _>("server_id").ok().as_ref() == Some(&server_id))
            {
                let name: String = header.try_get("name")?;
                let sealed: Vec<u8> = header.try_get("sealed")?;
                let value = secrets::open(self.store.master_key()?, &aad(&server_name, &name), &sealed)
                    .ok_or_else(|| {
                        StoreError::Sealed(format!(
                            "cannot open the header {name} of an external server: the master key is not the one it was sealed with"
                        ))
                    })?;
                opened.push(RemoteHeader { name, value });
            }
            connections.push(Connection {
                server_id,
                name: server_name,
                url: row.try_get("url")?,
                headers: opened,
                config: row.try_get("config_id")?,
            });
        }
        Ok(connections)
    }

    /// Every external entry, by name (no header values).
    pub async fn list(&self) -> Result<Vec<External>, StoreError> {
        let mut out = Vec::new();
        for server in self.store.servers().list().await? {
            if server.kind == ServerKind::External
                && let Some(external) = self.get(&server.name).await?
            {
                out.push(external);
            }
        }
        Ok(out)
    }

    /// Records a health check of `server`: up with its tools, or down with why. A check that
    /// finds it down keeps the tools of the last good one (search still finds the entry).
    pub async fn record_health(
        &self,
        server: &ServerId,
        outcome: Result<&[ToolSummary], &str>,
    ) -> Result<(), StoreError> {
        let at = to_millis(now());
        match outcome {
            Ok(tools) => {
                let tools_json = serde_json::to_string(tools)
                    .map_err(|e| StoreError::Corrupt(format!("tools: {e}")))?;
                crate::sql::query(
                    "UPDATE external_servers SET health = 'up', health_error = NULL,
                     checked_at = ?, tools = ? WHERE server_id = ?",
                )
                .bind(at)
                .bind(tools_json)
                .bind(server)
                .execute(&self.store.pool)
                .await?;
                // Search finds an external server by the tools it has now.
                if let Some(entry) = self.store.servers().by_id(server).await? {
                    self.store
                        .search()
                        .index(&entry.name, &entry.description, tools)
                        .await?;
                }
            }
            Err(error) => {
                crate::sql::query(
                    "UPDATE external_servers SET health = 'down', health_error = ?,
                     checked_at = ? WHERE server_id = ?",
                )
                .bind(error)
                .bind(at)
                .bind(server)
                .execute(&self.store.pool)
                .await?;
            }
        }
        Ok(())
    }

    fn seal_all(
        &self,
        name: &ServerName,
        headers: &[RemoteHeader],
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        if headers.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.store.master_key()?;
        headers
            .iter()
            .map(|h| {
                secrets::seal(key, &aad(name, &h.name), &h.value)
                    .map(|sealed| (h.name.clone(), sealed))
                    .ok_or_else(|| StoreError::Sealed(format!("cannot encrypt header {}", h.name)))
            })
            .collect()
    }
}

/// The associated data a header value is sealed with: a sealed value copied to another entry
/// or header does not open. Entries are never renamed, so the name is as stable as the id.
fn aad(server: &ServerName, header: &str) -> String {
    format!("external:{server}:{header}")
}

fn external(
    server: Server,
    row: &AnyRow,
    header_names: Vec<String>,
) -> Result<External, StoreError> {
    let health: String = row.try_get("health")?;
    let health = match health.as_str() {
        "up" => Health::Up,
        "down" => Health::Down,
        "unknown" => Health::Unknown,
        other => return Err(StoreError::Corrupt(format!("health {other:?}"))),
    };
    let tools: String = row.try_get("tools")?;
    let checked_at: Option<i64> = row.try_get("checked_at")?;
    Ok(External {
        server,
        url: row.try_get("url")?,
        header_names,
        health,
        health_error: row.try_get("health_error")?,
        checked_at: checked_at.map(from_millis).transpose()?,
        tools: serde_json::from_str(&tools)
            .map_err(|e| StoreError::Corrupt(format!("tools of an external server: {e}")))?,
    })
}

#[cfg(test)]
mod tests;
