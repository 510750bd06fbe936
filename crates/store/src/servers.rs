//! The servers repository.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sources::{self, Preview, TrackedSource};
use crate::{
    Change, DeploymentId, GatewaySettings, RuntimeSettings, ServerId, ServerName, SettingsError,
    SettingsPatch, Store, StoreError, Timestamp, from_millis, now, to_millis,
};

/// A named MCP server; what clients connect to. Its code lives in deployments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// Stable id.
    pub id: ServerId,
    /// Unique name, used in URLs.
    pub name: ServerName,
    /// What kind of catalog entry it is.
    pub kind: ServerKind,
    /// Free text shown in listings.
    pub description: String,
    /// The deployment that serves requests, once one has been promoted.
    pub live_deployment: Option<DeploymentId>,
    /// How its instances run.
    pub settings: RuntimeSettings,
    /// How the gateway treats it.
    pub gateway: GatewaySettings,
    /// Where its code comes from for builds nobody typed (pushes, polling, previews).
    pub source: TrackedSource,
    /// What it previews, if it is a preview.
    pub preview: Option<Preview>,
    /// When it is removed, if it is a preview with a lifetime.
    pub expires_at: Option<Timestamp>,
    /// When the server was created.
    pub created_at: Timestamp,
    /// When its settings or live deployment last changed.
    pub updated_at: Timestamp,
}

/// What a catalog entry is; only hosted servers are built and run by Skyport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// Built from a source and run by Skyport's runtime.
    Hosted,
    /// A remote MCP server that the gateway proxies.
    External,
    /// A composition of tools, prompts and resources from other entries.
    Remix,
}

impl ServerKind {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Hosted => "hosted",
            ServerKind::External => "external",
            ServerKind::Remix => "remix",
        }
    }
}

impl std::fmt::Display for ServerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ServerKind {
    type Err = StoreError;

    fn from_str(kind: &str) -> Result<ServerKind, StoreError> {
        match kind {
            "hosted" => Ok(ServerKind::Hosted),
            "external" => Ok(ServerKind::External),
            "remix" => Ok(ServerKind::Remix),
            other => Err(StoreError::Corrupt(format!("server kind {other:?}"))),
        }
    }
}

/// Access to servers; obtained from [`Store::servers`].
pub struct Servers<'a> {
    pub(crate) store: &'a Store,
}

/// The selected columns, as a macro so that queries stay `&'static str` (sqlx refuses SQL built
/// at run time unless it is marked as audited).
macro_rules! select_servers {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, kind, description, live_deployment_id, created_at, updated_at, ",
            "memory_limit_bytes, idle_timeout_ms, min_instances, max_instances, stdio_sessions, stdio_shared, auth, ",
            "request_timeout_ms, identity_token, source_url, source_branch, entrypoint, ",
            "CASE WHEN webhook_secret_sealed IS NULL AND webhook_secret IS NULL THEN 0 ELSE 1 END AS webhook, ",
            "poll_interval_ms, preview_ttl_ms, parent_id, preview_branch, preview_expires_at ",
            "FROM servers ",
            $rest
        )
    };
}
pub(crate) use select_servers;

impl Servers<'_> {
    /// Returns the server named `name`, creating it if it does not exist; `true` when created.
    /// A given description replaces the stored one.
    pub async fn ensure(
        &self,
        name: &ServerName,
        description: Option<&str>,
    ) -> Result<(Server, bool), StoreError> {
        let at = to_millis(now());
        let inserted = crate::sql::query(
            "INSERT INTO servers (id, name, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(ServerId::generate())
        .bind(name)
        .bind(description.unwrap_or(""))
        .bind(at)
        .bind(at)
        .execute(&self.store.pool)
        .await?
        .rows_affected()
            == 1;
        if !inserted && let Some(description) = description {
            crate::sql::query("UPDATE servers SET description = ?, updated_at = ? WHERE name = ?")
                .bind(description)
                .bind(at)
                .bind(name)
                .execute(&self.store.pool)
                .await?;
        }
        let server = self.get(name).await?.ok_or_else(|| {
            StoreError::Conflict(format!("server '{name}' was removed while being created"))
        })?;
        Ok((server, inserted))
    }

    /// The server named `name`, if any.
    pub async fn get(&self, name: &ServerName) -> Result<Option<Server>, StoreError> {
        crate::sql::query(select_servers!("WHERE name = ?"))
            .bind(name)
            .fetch_optional(&self.store.pool)
            .await?
            .map(|row| server(&row))
            .transpose()
    }

    /// The server with id `id`, if any.
    pub async fn by_id(&self, id: &ServerId) -> Result<Option<Server>, StoreError> {
        crate::sql::query(select_servers!("WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.store.pool)
            .await?
            .map(|row| server(&row))
            .transpose()
    }

    /// All servers, by name.
    pub async fn list(&self) -> Result<Vec<Server>, StoreError> {
        crate::sql::query(select_servers!("ORDER BY name"))
            .fetch_all(&self.store.pool)
            .await?
            .iter()
            .map(server)
            .collect()
    }

    /// Applies `patch` to the settings of the server named `name` and returns the server, or
    /// `None` if there is no such server. Invalid settings change nothing.
    pub async fn set_settings(
        &self,
        name: &ServerName,
        patch: &SettingsPatch,
    ) -> Result<Option<Result<Server, SettingsError>>, StoreError> {
        let mut tx = self.store.write().await?;
        let Some(current) = named(&mut tx, name).await? else {
            return Ok(None);
        };
        let patched = current
            .settings
            .patched(patch)
            .and_then(|s| Ok((s, current.gateway.patched(patch)?)));
        let (settings, gateway) = match patched {
            Ok(patched) => patched,
            Err(e) => return Ok(Some(Err(e))),
        };
        crate::sql::query(
            "UPDATE servers SET memory_limit_bytes = ?, idle_timeout_ms = ?, min_instances = ?,
             max_instances = ?, stdio_sessions = ?, stdio_shared = ?, auth = ?,
             request_timeout_ms = ?, identity_token = ?, updated_at = ?
             WHERE id = ?",
        )
        .bind(i64::try_from(settings.memory_bytes).unwrap_or(i64::MAX))
        .bind(i64::try_from(settings.idle_timeout.as_millis()).unwrap_or(i64::MAX))
        .bind(i64::from(settings.min_instances))
        .bind(i64::from(settings.max_instances))
        .bind(i64::from(settings.stdio_sessions))
        .bind(i64::from(settings.stdio_shared))
        .bind(gateway.auth.map(i64::from))
        .bind(
            gateway
                .request_timeout
                .map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX)),
        )
        .bind(i64::from(gateway.identity_token))
        .bind(to_millis(now()))
        .bind(&current.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.store.publish(Change::SettingsChanged {
            server: current.name.clone(),
        });
        Ok(Some(Ok(Server {
            settings,
            gateway,
            ..current
        })))
    }

    /// Removes a server with its deployments, logs and previews; returns it, or `None` if it
    /// did not exist.
    pub async fn remove(&self, name: &ServerName) -> Result<Option<Server>, StoreError> {
        let mut tx = self.store.write().await?;
        let Some(removed) = named(&mut tx, name).await? else {
            return Ok(None);
        };
        let previews = sources::remove_previews(&mut tx, &removed.id).await?;
        crate::sql::query("DELETE FROM log_lines WHERE server_id = ?")
            .bind(&removed.id)
            .execute(&mut *tx)
            .await?;
        crate::sql::query("DELETE FROM servers WHERE id = ?")
            .bind(&removed.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.store.publish_removed(&previews);
        self.store.publish(Change::ServerRemoved {
            server: removed.name.clone(),
            previous: removed.live_deployment.clone(),
        });
        Ok(Some(removed))
    }
}

/// The server named `name`, read inside transaction `tx`.
pub(crate) async fn named(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &ServerName,
) -> Result<Option<Server>, StoreError> {
    crate::sql::query(select_servers!("WHERE name = ?"))
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?
        .map(|row| server(&row))
        .transpose()
}

pub(crate) fn server(row: &AnyRow) -> Result<Server, StoreError> {
    let (preview, expires_at) = sources::preview(row)?;
    Ok(Server {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: row.try_get::<String, _>("kind")?.parse()?,
        description: row.try_get("description")?,
        live_deployment: row.try_get("live_deployment_id")?,
        settings: settings(row)?,
        gateway: gateway(row)?,
        source: sources::tracked_source(row)?,
        preview,
        expires_at,
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
    })
}

/// The settings columns of a `servers` row (also selected by the deployments' route queries).
pub(crate) fn settings(row: &AnyRow) -> Result<RuntimeSettings, StoreError> {
    let number = |column: &str| -> Result<u64, StoreError> {
        let value: i64 = row.try_get(column)?;
        u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} {value}")))
    };
    let count = |column: &str| -> Result<u32, StoreError> {
        let value = number(column)?;
        u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{column} {value}")))
    };
    Ok(RuntimeSettings {
        memory_bytes: number("memory_limit_bytes")?,
        idle_timeout: std::time::Duration::from_millis(number("idle_timeout_ms")?),
        min_instances: count("min_instances")?,
        max_instances: count("max_instances")?,
        stdio_sessions: count("stdio_sessions")?,
        stdio_shared: crate::sql::flag(row, "stdio_shared")?,
    })
}

/// The gateway columns of a `servers` row (also selected by the deployments' route queries).
pub(crate) fn gateway(row: &AnyRow) -> Result<GatewaySettings, StoreError> {
    let timeout: Option<i64> = row.try_get("request_timeout_ms")?;
    let request_timeout = timeout
        .map(|ms| {
            u64::try_from(ms)
                .map(std::time::Duration::from_millis)
                .map_err(|_| StoreError::Corrupt(format!("request_timeout_ms {ms}")))
        })
        .transpose()?;
    Ok(GatewaySettings {
        auth: crate::sql::optional_flag(row, "auth")?,
        request_timeout,
        identity_token: crate::sql::flag(row, "identity_token")?,
    })
}
