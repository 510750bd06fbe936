//! Language-model providers: where agents' models are served (an OpenAI-compatible Chat
//! Completions endpoint or the Anthropic Messages API), with the API key sealed at rest.
//!
//! The key is opened only for the agent loop ([`Providers::connection`]); every listing says
//! whether a key is set, never what it is. At most one provider is the default (the one ad-hoc
//! chats over a single server use); making one the default unsets the previous one.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{
    AgentName, ProviderId, ProviderName, Store, StoreError, Timestamp, from_millis, now, secrets,
    to_millis,
};

/// The API a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI-compatible Chat Completions (`POST BASE/chat/completions`).
    OpenAi,
    /// The Anthropic Messages API (`POST BASE/v1/messages`).
    Anthropic,
}

impl ProviderKind {
    /// The kind as stored and typed: `openai` or `anthropic`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that is not a provider kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider kind '{0}': use openai (any Chat Completions endpoint) or anthropic")]
pub struct UnknownProviderKind(String);

impl FromStr for ProviderKind {
    type Err = UnknownProviderKind;

    fn from_str(s: &str) -> Result<ProviderKind, UnknownProviderKind> {
        match s {
            "openai" => Ok(ProviderKind::OpenAi),
            "anthropic" => Ok(ProviderKind::Anthropic),
            other => Err(UnknownProviderKind(other.chars().take(40).collect())),
        }
    }
}

/// The most retries a provider may be given: each one can wait a whole timeout.
pub const MAX_PROVIDER_RETRIES: u32 = 10;

/// A provider to create.
#[derive(Clone)]
pub struct NewProvider {
    /// Its unique name.
    pub name: ProviderName,
    /// The API it speaks.
    pub kind: ProviderKind,
    /// Its base URL, already checked to be http(s).
    pub base_url: String,
    /// Its API key; `None` for endpoints that need none.
    pub api_key: Option<String>,
    /// The model used when an agent names none.
    pub default_model: Option<String>,
    /// How long one request to it may take.
    pub timeout: Duration,
    /// How often a failed request is tried again.
    pub retries: u32,
    /// Whether it becomes the default provider.
    pub is_default: bool,
}

impl fmt::Debug for NewProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewProvider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("default_model", &self.default_model)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("is_default", &self.is_default)
            .finish()
    }
}

/// A change to a provider: what is `Some` is replaced.
#[derive(Clone, Default)]
pub struct ProviderPatch {
    /// A new base URL.
    pub base_url: Option<String>,
    /// A new API key (`Some(None)` removes it).
    pub api_key: Option<Option<String>>,
    /// A new default model (`Some(None)` removes it).
    pub default_model: Option<Option<String>>,
    /// A new timeout.
    pub timeout: Option<Duration>,
    /// A new number of retries.
    pub retries: Option<u32>,
    /// Make it the default (`true`) or no longer the default (`false`).
    pub is_default: Option<bool>,
}

impl fmt::Debug for ProviderPatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderPatch")
            .field("base_url", &self.base_url)
            .field(
                "api_key",
                &self
                    .api_key
                    .as_ref()
                    .map(|k| k.as_ref().map(|_| "[redacted]")),
            )
            .field("default_model", &self.default_model)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("is_default", &self.is_default)
            .finish()
    }
}

/// A provider as listed: whether it has a key, not the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provider {
    /// Its id.
    pub id: ProviderId,
    /// Its name.
    pub name: ProviderName,
    /// The API it speaks.
    pub kind: ProviderKind,
    /// Its base URL.
    pub base_url: String,
    /// Whether an API key is stored.
    pub has_api_key: bool,
    /// The model used when an agent names none.
    pub default_model: Option<String>,
    /// How long one request may take.
    pub timeout: Duration,
    /// How often a failed request is tried again.
    pub retries: u32,
    /// Whether it is the default provider.
    pub is_default: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// How the agent loop reaches a provider: its settings and the opened key.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderConnection {
    /// Its name.
    pub name: ProviderName,
    /// The API it speaks.
    pub kind: ProviderKind,
    /// Its base URL.
    pub base_url: String,
    /// Its API key, opened; a credential, so never printed.
    pub api_key: Option<String>,
    /// The model used when an agent names none.
    pub default_model: Option<String>,
    /// How long one request may take.
    pub timeout: Duration,
    /// How often a failed request is tried again.
    pub retries: u32,
}

impl fmt::Debug for ProviderConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConnection")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("default_model", &self.default_model)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

/// Why a provider cannot be created, changed or removed as asked.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The name is taken.
    #[error("a provider named '{0}' exists already; change it with `skyport providers set {0}`")]
    Exists(ProviderName),
    /// No provider has this name.
    #[error("no provider named '{0}'; `skyport providers ls` lists them")]
    NotFound(ProviderName),
    /// Agents use it.
    #[error(
        "provider '{name}' is used by the agents {}; move them to another provider (skyport agents edit NAME --provider P) or remove them first",
        agents.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(", ")
    )]
    InUse {
        /// The provider.
        name: ProviderName,
        /// The agents that use it.
        agents: Vec<AgentName>,
    },
    /// The timeout is zero or absurdly long.
    #[error("a provider's timeout must be between 1 second and 1 hour, not {0:?}")]
    BadTimeout(Duration),
    /// Too many retries.
    #[error("a provider is retried at most {MAX_PROVIDER_RETRIES} times, not {0}")]
    TooManyRetries(u32),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ProviderError {
    fn from(e: sqlx::Error) -> ProviderError {
        ProviderError::Store(e.into())
    }
}

/// Access to providers; obtained from [`Store::providers`].
pub struct Providers<'a> {
    pub(crate) store: &'a Store,
}

macro_rules! select_providers {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, kind, base_url, CASE WHEN api_key IS NULL THEN 0 ELSE 1 END AS has_key,
             default_model, timeout_ms, retries, is_default, created_at, updated_at
             FROM providers ",
            $rest
        )
    };
}

impl Providers<'_> {
    /// Creates a provider; making it the default unsets the previous default.
    pub async fn create(&self, new: &NewProvider) -> Result<Provider, ProviderError> {
        check_limits(Some(new.timeout), Some(new.retries))?;
        let sealed = self.seal(&new.name, new.api_key.as_deref())?;
        let at = to_millis(now());
        let mut tx = self.store.write().await?;
        let taken: Option<String> =
            crate::sql::query_scalar("SELECT id FROM providers WHERE name = ?")
                .bind(&new.name)
                .fetch_optional(&mut *tx)
                .await?;
        if taken.is_some() {
            return Err(ProviderError::Exists(new.name.clone()));
        }
        if new.is_default {
            crate::sql::query("UPDATE providers SET is_default = 0 WHERE is_default = 1")
                .execute(&mut *tx)
                .await?;
        }
        crate::sql::query(
            "INSERT INTO providers (id, name, kind, base_url, api_key, default_model, timeout_ms,
             retries, is_default, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(ProviderId::generate())
        .bind(&new.name)
        .bind(new.kind.as_str())
        .bind(&new.base_url)
        .bind(sealed)
        .bind(&new.default_model)
        .bind(millis(new.timeout))
        .bind(i64::from(new.retries))
        .bind(i64::from(new.is_default))
        .bind(at)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.find(&new.name)
            .await?
            .ok_or_else(|| ProviderError::NotFound(new.name.clone()))
    }

    /// Changes provider `name` as `patch` says; answers it changed.
    pub async fn update(
        &self,
        name: &ProviderName,
        patch: &ProviderPatch,
    ) -> Result<Provider, ProviderError> {
        check_limits(patch.timeout, patch.retries)?;
        let sealed = match &patch.api_key {
            Some(key) => Some(self.seal(name, key.as_deref())?),
            None => None,
        };
        let mut tx = self.store.write().await?;
        let id: ProviderId = crate::sql::query_scalar("SELECT id FROM providers WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| ProviderError::NotFound(name.clone()))?;
        if patch.is_default == Some(true) {
            crate::sql::query("UPDATE providers SET is_default = 0 WHERE is_default = 1")
                .execute(&mut *tx)
                .await?;
        }
        // `?N IS NULL` keeps a column as it was; the api key and default model need a
        // separate "given" flag since NULL is also a value they can be set to.
        crate::sql::query(
            "UPDATE providers SET
                 base_url = coalesce(?2, base_url),
                 api_key = CASE WHEN ?3 = 1 THEN ?4 ELSE api_key END,
                 default_model = CASE WHEN ?5 = 1 THEN ?6 ELSE default_model END,
                 timeout_ms = coalesce(?7, timeout_ms),
                 retries = coalesce(?8, retries),
                 is_default = coalesce(?9, is_default),
                 updated_at = ?10
             WHERE id = ?1",
        )
        .bind(&id)
        .bind(&patch.base_url)
        .bind(i64::from(sealed.is_some()))
        .bind(sealed.flatten())
        .bind(i64::from(patch.default_model.is_some()))
        .bind(patch.default_model.clone().flatten())
        .bind(patch.timeout.map(millis))
        .bind(patch.retries.map(i64::from))
        .bind(patch.is_default.map(i64::from))
        .bind(to_millis(now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.find(name)
            .await?
            .ok_or_else(|| ProviderError::NotFound(name.clone()))
    }

    /// Every provider, by name.
    pub async fn list(&self) -> Result<Vec<Provider>, StoreError> {
        let rows = crate::sql::query(select_providers!("ORDER BY name"))
            .fetch_all(&self.store.pool)
            .await?;
        rows.iter().map(provider).collect()
    }

    /// Provider `name`, if there is one.
    pub async fn find(&self, name: &ProviderName) -> Result<Option<Provider>, StoreError> {
        let row = crate::sql::query(select_providers!("WHERE name = ?"))
            .bind(name)
            .fetch_optional(&self.store.pool)
            .await?;
        row.as_ref().map(provider).transpose()
    }

    /// Removes provider `name`; refused while agents use it.
    pub async fn remove(&self, name: &ProviderName) -> Result<(), ProviderError> {
        let mut tx = self.store.write().await?;
        let id: ProviderId = crate::sql::query_scalar("SELECT id FROM providers WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| ProviderError::NotFound(name.clone()))?;
        let agents: Vec<AgentName> =
            crate::sql::query_scalar("SELECT name FROM agents WHERE provider_id = ? ORDER BY name")
                .bind(&id)
                .fetch_all(&mut *tx)
                .await?;
        if !agents.is_empty() {
            return Err(ProviderError::InUse {
                name: name.clone(),
                agents,
            });
        }
        crate::sql::query("DELETE FROM providers WHERE id = ?")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How to reach provider `name`, its key opened; `None` when there is no such provider.
    pub async fn connection(
        &self,
        name: &ProviderName,
    ) -> Result<Option<ProviderConnection>, StoreError> {
        let row = crate::sql::query(
            "SELECT name, kind, base_url, api_key, default_model, timeout_ms, retries
             FROM providers WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.store.pool)
        .await?;
        row.map(|row| self.connect(&row)).transpose()
    }

    /// How to reach the default provider; `None` when no provider is the default.
    pub async fn default_connection(&self) -> Result<Option<ProviderConnection>, StoreError> {
        let row = crate::sql::query(
            "SELECT name, kind, base_url, api_key, default_model, timeout_ms, retries
             FROM providers WHERE is_default = 1",
        )
        .fetch_optional(&self.store.pool)
        .await?;
        row.map(|row| self.connect(&row)).transpose()
    }

    fn connect(&self, row: &AnyRow) -> Result<ProviderConnection, StoreError> {
        let name: ProviderName = row.try_get("name")?;
        let sealed: Option<Vec<u8>> = row.try_get("api_key")?;
        let api_key = match sealed {
            Some(sealed) => Some(
                secrets::open(self.store.master_key()?, &aad(&name), &sealed).ok_or_else(|| {
                    StoreError::Sealed(format!(
                        "cannot open the API key of provider {name}: the master key is not the one it was sealed with; set it again with `skyport providers set {name} --api-key-stdin`"
                    ))
                })?,
            ),
            None => None,
        };
        Ok(ProviderConnection {
            kind: kind(row)?,
            base_url: row.try_get("base_url")?,
            api_key,
            default_model: row.try_get("default_model")?,
            timeout: duration(row)?,
            retries: retries(row)?,
            name,
        })
    }

    fn seal(&self, name: &ProviderName, key: Option<&str>) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(key) = key else {
            return Ok(None);
        };
        secrets::seal(self.store.master_key()?, &aad(name), key)
            .map(Some)
            .ok_or_else(|| StoreError::Sealed(format!("cannot encrypt the API key of {name}")))
    }
}

/// The associated data a key is sealed with: a sealed key copied to another provider does
/// not open. Providers are never renamed.
fn aad(name: &ProviderName) -> String {
    format!("provider:{name}")
}

fn check_limits(timeout: Option<Duration>, retries: Option<u32>) -> Result<(), ProviderError> {
    if let Some(timeout) = timeout
        && !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&timeout)
    {
        return Err(ProviderError::BadTimeout(timeout));
    }
    if let Some(retries) = retries
        && retries > MAX_PROVIDER_RETRIES
    {
        return Err(ProviderError::TooManyRetries(retries));
    }
    Ok(())
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn provider(row: &AnyRow) -> Result<Provider, StoreError> {
    Ok(Provider {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: kind(row)?,
        base_url: row.try_get("base_url")?,
        has_api_key: crate::sql::flag(row, "has_key")?,
        default_model: row.try_get("default_model")?,
        timeout: duration(row)?,
        retries: retries(row)?,
        is_default: crate::sql::flag(row, "is_default")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
    })
}

fn kind(row: &AnyRow) -> Result<ProviderKind, StoreError> {
    let kind: String = row.try_get("kind")?;
    kind.parse()
        .map_err(|e: UnknownProviderKind| StoreError::Corrupt(e.to_string()))
}

fn duration(row: &AnyRow) -> Result<Duration, StoreError> {
    let ms: i64 = row.try_get("timeout_ms")?;
    u64::try_from(ms)
        .map(Duration::from_millis)
        .map_err(|_| StoreError::Corrupt(format!("provider timeout {ms} ms")))
}

fn retries(row: &AnyRow) -> Result<u32, StoreError> {
    let retries: i64 = row.try_get("retries")?;
    u32::try_from(retries).map_err(|_| StoreError::Corrupt(format!("provider retries {retries}")))
}
