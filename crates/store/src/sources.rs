//! Where a server's code comes from when nobody runs `skyport deploy` (the tracked git source,
//! webhook secret, polling, preview lifetime), and previews: child servers that build one
//! branch of their parent's source.
//!
//! It stores what the build and web crates decide; which event builds what is theirs.

use std::time::Duration;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::secrets;
use crate::servers::{named, select_servers, server};
use crate::{
    Change, ServerId, ServerName, Servers, Store, StoreError, Timestamp, from_millis, now,
    to_millis,
};

/// The branch a server tracks when none was chosen.
pub const DEFAULT_BRANCH: &str = "main";
/// Shortest polling interval accepted: each check runs `git ls-remote`.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// A server's tracked source and what follows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackedSource {
    /// The git repository builds fetch (without credentials), if the server has one.
    pub url: Option<String>,
    /// The branch whose pushes are production builds (previews: the branch they build).
    pub branch: String,
    /// The entrypoint builds use; `None` lets the build find it.
    pub entrypoint: Option<String>,
    /// Whether the server has a webhook secret, which deliveries are signed with; without
    /// one, webhooks are refused. The secret is sealed in the store: read it with
    /// [`Servers::webhook_secret`].
    pub webhook: bool,
    /// How often the tracked branch is checked for new commits; `None` is never.
    pub poll_interval: Option<Duration>,
    /// How long a preview lives after its last build; `None` is until its branch goes.
    pub preview_ttl: Option<Duration>,
}

/// What makes a server a preview.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preview {
    /// The server it previews.
    pub parent: ServerId,
    /// The git branch it builds.
    pub branch: String,
}

/// Changes to a server's [`TrackedSource`] and description; `None` keeps the current value,
/// `Some(None)` clears an optional one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourcePatch {
    /// New description.
    pub description: Option<String>,
    /// New repository URL.
    pub url: Option<Option<String>>,
    /// New tracked branch.
    pub branch: Option<String>,
    /// New entrypoint.
    pub entrypoint: Option<Option<String>>,
    /// New webhook secret.
    pub webhook_secret: Option<Option<String>>,
    /// New polling interval.
    pub poll_interval: Option<Option<Duration>>,
    /// New preview lifetime.
    pub preview_ttl: Option<Option<Duration>>,
}

impl SourcePatch {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == SourcePatch::default()
    }
}

impl TrackedSource {
    /// This source with `patch` applied, if the result is usable.
    pub fn patched(&self, patch: &SourcePatch) -> Result<TrackedSource, String> {
        let source = TrackedSource {
            url: patch.url.clone().unwrap_or_else(|| self.url.clone()),
            branch: patch.branch.clone().unwrap_or_else(|| self.branch.clone()),
            entrypoint: patch
                .entrypoint
                .clone()
                .unwrap_or_else(|| self.entrypoint.clone()),
            webhook: patch
                .webhook_secret
                .as_ref()
                .map_or(self.webhook, Option::is_some),
            poll_interval: patch.poll_interval.unwrap_or(self.poll_interval),
            preview_ttl: patch.preview_ttl.unwrap_or(self.preview_ttl),
        };
        if source.branch.trim().is_empty() {
            return Err("--branch must name a branch, e.g. --branch main".to_owned());
        }
        if source.poll_interval.is_some_and(|i| i < MIN_POLL_INTERVAL) {
            return Err("--poll must be at least 1s (or off)".to_owned());
        }
        if let Some(Some(secret)) = &patch.webhook_secret
            && secret.len() < 16
        {
            return Err(
                "--webhook-secret must be at least 16 characters; use --webhook-secret generate for a random one"
                    .to_owned(),
            );
        }
        Ok(source)
    }
}

/// Why [`Servers::ensure_preview`] could not make a preview.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// No valid name fits the parent and branch.
    #[error(transparent)]
    Name(#[from] crate::NameError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Servers<'_> {
    /// Applies `patch` to the source settings of the server named `name`; `None` if there is
    /// no such server, `Some(Err)` with the reason if the result is not usable.
    pub async fn set_source(
        &self,
        name: &ServerName,
        patch: &SourcePatch,
    ) -> Result<Option<Result<crate::Server, String>>, StoreError> {
        let mut tx = self.store.write().await?;
        let Some(current) = named(&mut tx, name).await? else {
            return Ok(None);
        };
        let source = match current.source.patched(patch) {
            Ok(source) => source,
            Err(e) => return Ok(Some(Err(e))),
        };
        let sealed = match &patch.webhook_secret {
            Some(Some(secret)) => Some(seal_webhook_secret(self.store, &current.id, secret)?),
            _ => None,
        };
        let description = patch
            .description
            .clone()
            .unwrap_or_else(|| current.description.clone());
        crate::sql::query(
            "UPDATE servers SET description = ?, source_url = ?, source_branch = ?, entrypoint = ?,
             poll_interval_ms = ?, preview_ttl_ms = ?, updated_at = ?
             WHERE id = ?",
        )
        .bind(&description)
        .bind(&source.url)
        .bind(&source.branch)
        .bind(&source.entrypoint)
        .bind(source.poll_interval.map(millis))
        .bind(source.preview_ttl.map(millis))
        .bind(to_millis(now()))
        .bind(&current.id)
        .execute(&mut *tx)
        .await?;
        if patch.webhook_secret.is_some() {
            crate::sql::query(
                "UPDATE servers SET webhook_secret_sealed = ?, webhook_secret = NULL WHERE id = ?",
            )
            .bind(sealed)
            .bind(&current.id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.store.publish(Change::SettingsChanged {
            server: current.name.clone(),
        });
        Ok(Some(Ok(crate::Server {
            description,
            source,
            ..current
        })))
    }

    /// The webhook secret of `server`, opened with the master key; `None` when it has none.
    pub async fn webhook_secret(&self, server: &ServerId) -> Result<Option<String>, StoreError> {
        let row = crate::sql::query(
            "SELECT webhook_secret_sealed, webhook_secret FROM servers WHERE id = ?",
        )
        .bind(server)
        .fetch_optional(&self.store.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let sealed: Option<Vec<u8>> = row.try_get("webhook_secret_sealed")?;
        match sealed {
            Some(sealed) => {
                let key = self.store.master_key()?;
                let secret = secrets::open(key, &webhook_aad(server), &sealed).ok_or_else(|| {
                    StoreError::Sealed(format!(
                        "cannot open the webhook secret of server {server} with this master key; set a new one with `skyport servers set NAME --webhook-secret generate`"
                    ))
                })?;
                Ok(Some(secret))
            }
            // Written before secrets were sealed, and not yet sealed by a start.
            None => Ok(row.try_get("webhook_secret")?),
        }
    }

    /// Seals the webhook secrets stored in plaintext by earlier versions, emptying the
    /// plaintext column; returns how many. `skyport serve` calls it at start.
    pub async fn seal_webhook_secrets(&self) -> Result<usize, StoreError> {
        let rows = crate::sql::query(
            "SELECT id, webhook_secret FROM servers WHERE webhook_secret IS NOT NULL",
        )
        .fetch_all(&self.store.pool)
        .await?;
        for row in &rows {
            let id: ServerId = row.try_get("id")?;
            let secret: String = row.try_get("webhook_secret")?;
            let sealed = seal_webhook_secret(self.store, &id, &secret)?;
            crate::sql::query(
                "UPDATE servers SET webhook_secret_sealed = ?, webhook_secret = NULL WHERE id = ?",
            )
            .bind(sealed)
            .bind(&id)
            .execute(&self.store.pool)
            .await?;
        }
        Ok(rows.len())
    }

    /// The preview of `parent` for `branch`, created if there is none (named by
    /// [`ServerName::preview`], or its hashed form when another branch holds that name, with
    /// the parent's runtime and gateway settings, source and entrypoint); `true` when created.
    /// Either way it expires `parent`'s preview TTL from now.
    pub async fn ensure_preview(
        &self,
        parent: &crate::Server,
        branch: &str,
    ) -> Result<(crate::Server, bool), PreviewError> {
        let expires = parent
            .source
            .preview_ttl
            .and_then(|ttl| jiff::SignedDuration::try_from(ttl).ok())
            .and_then(|ttl| now().checked_add(ttl).ok())
            .map(to_millis);
        if let Some(existing) = self.preview_of(&parent.id, branch).await? {
            crate::sql::query("UPDATE servers SET preview_expires_at = ? WHERE id = ?")
                .bind(expires)
                .bind(&existing.id)
                .execute(&self.store.pool)
                .await
                .map_err(StoreError::from)?;
            return Ok((
                crate::Server {
                    expires_at: expires.map(from_millis).transpose()?,
                    ..existing
                },
                false,
            ));
        }
        let plain = ServerName::preview(&parent.name, branch)?;
        let name = match self.get(&plain).await? {
            None => plain,
            Some(_) => ServerName::preview_hashed(&parent.name, branch)?,
        };
        let at = to_millis(now());
        let (settings, gateway) = (&parent.settings, &parent.gateway);
        crate::sql::query(
            "INSERT INTO servers (id, name, description, created_at, updated_at,
             memory_limit_bytes, idle_timeout_ms, min_instances, max_instances, stdio_sessions,
             stdio_shared, auth, request_timeout_ms, identity_token, source_url, source_branch,
             entrypoint, parent_id, preview_branch, preview_expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(ServerId::generate())
        .bind(&name)
        .bind(format!("preview of {} at branch {branch}", parent.name))
        .bind(at)
        .bind(at)
        .bind(i64::try_from(settings.memory_bytes).unwrap_or(i64::MAX))
        .bind(millis(settings.idle_timeout))
        .bind(i64::from(settings.min_instances))
        .bind(i64::from(settings.max_instances))
        .bind(i64::from(settings.stdio_sessions))
        .bind(i64::from(settings.stdio_shared))
        .bind(gateway.auth.map(i64::from))
        .bind(gateway.request_timeout.map(millis))
        .bind(i64::from(gateway.identity_token))
        .bind(&parent.source.url)
        .bind(branch)
        .bind(&parent.source.entrypoint)
        .bind(&parent.id)
        .bind(branch)
        .bind(expires)
        .execute(&self.store.pool)
        .await
        .map_err(StoreError::from)?;
        let created = self.get(&name).await?.ok_or_else(|| {
            StoreError::Conflict(format!("preview '{name}' was removed while being created"))
        })?;
        Ok((created, true))
    }

    /// The preview of `parent` for `branch`, if there is one.
    pub async fn preview_of(
        &self,
        parent: &ServerId,
        branch: &str,
    ) -> Result<Option<crate::Server>, StoreError> {
        crate::sql::query(select_servers!(
            "WHERE parent_id = ? AND preview_branch = ?"
        ))
        .bind(parent)
        .bind(branch)
        .fetch_optional(&self.store.pool)
        .await?
        .map(|row| server(&row))
        .transpose()
    }

    /// The previews whose lifetime ended before `at`.
    pub async fn expired_previews(&self, at: Timestamp) -> Result<Vec<crate::Server>, StoreError> {
        crate::sql::query(select_servers!(
            "WHERE parent_id IS NOT NULL AND preview_expires_at < ? ORDER BY name"
        ))
        .bind(to_millis(at))
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(server)
        .collect()
    }

    /// The servers that poll their source: with a repository and an interval, not previews.
    pub async fn polling(&self) -> Result<Vec<crate::Server>, StoreError> {
        crate::sql::query(select_servers!(
            "WHERE poll_interval_ms IS NOT NULL AND source_url IS NOT NULL AND parent_id IS NULL
             ORDER BY name"
        ))
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(server)
        .collect()
    }
}

/// The source columns of a `servers` row.
pub(crate) fn tracked_source(row: &AnyRow) -> Result<TrackedSource, StoreError> {
    let duration = |column: &str| -> Result<Option<Duration>, StoreError> {
        let ms: Option<i64> = row.try_get(column)?;
        ms.map(|ms| {
            u64::try_from(ms)
                .map(Duration::from_millis)
                .map_err(|_| StoreError::Corrupt(format!("{column} {ms}")))
        })
        .transpose()
    };
    Ok(TrackedSource {
        url: row.try_get("source_url")?,
        branch: row.try_get("source_branch")?,
        entrypoint: row.try_get("entrypoint")?,
        webhook: crate::sql::flag(row, "webhook")?,
        poll_interval: duration("poll_interval_ms")?,
        preview_ttl: duration("preview_ttl_ms")?,
    })
}

/// The preview columns of a `servers` row: what it previews, and until when.
pub(crate) fn preview(row: &AnyRow) -> Result<(Option<Preview>, Option<Timestamp>), StoreError> {
    let parent: Option<ServerId> = row.try_get("parent_id")?;
    let branch: Option<String> = row.try_get("preview_branch")?;
    let expires: Option<i64> = row.try_get("preview_expires_at")?;
    let preview = match (parent, branch) {
        (Some(parent), Some(branch)) => Some(Preview { parent, branch }),
        _ => None,
    };
    Ok((preview, expires.map(from_millis).transpose()?))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Removes, inside `tx`, the previews of the server `parent` with their logs; returns their
/// names and live deployments for the change feed.
pub(crate) async fn remove_previews(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    parent: &ServerId,
) -> Result<Vec<crate::Server>, StoreError> {
    let previews = crate::sql::query(select_servers!("WHERE parent_id = ?"))
        .bind(parent)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(server)
        .collect::<Result<Vec<_>, _>>()?;
    for preview in &previews {
        crate::sql::query("DELETE FROM log_lines WHERE server_id = ?")
            .bind(&preview.id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(previews)
}

impl Store {
    /// Tells followers that the previews in `removed` are gone.
    pub(crate) fn publish_removed(&self, removed: &[crate::Server]) {
        for server in removed {
            self.publish(Change::ServerRemoved {
                server: server.name.clone(),
                previous: server.live_deployment.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests;

/// `secret` sealed for the webhook of `server`.
fn seal_webhook_secret(
    store: &Store,
    server: &ServerId,
    secret: &str,
) -> Result<Vec<u8>, StoreError> {
    secrets::seal(store.master_key()?, &webhook_aad(server), secret)
        .ok_or_else(|| StoreError::Sealed("the webhook secret is too large to seal".to_owned()))
}

/// The associated data a webhook secret is sealed with: a sealed secret copied to another
/// server does not open there.
fn webhook_aad(server: &ServerId) -> String {
    format!("webhook:{server}")
}
