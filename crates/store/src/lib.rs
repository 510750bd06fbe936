//! Skyport's durable state: the schema, its migrations and one typed repository per aggregate
//! (servers, deployments and their promotions, logs, principals and keys, users, groups and
//! per-server roles, tool-level policies, gateway sessions and remix sessions, the audit logs of MCP requests and
//! of control-plane changes, environment variables and sealed secrets, the keys that sign
//! identity tokens, the rate-limit buckets replicas share, metric samples for charts, language-model providers, agents and their
//! conversations), plus the change feed that tells the gateway
//! and the runtime when a server's live deployment moved.
//!
//! All SQL of the project lives here. Callers get domain types (`Server`, `Deployment`,
//! `ServerName`, the id newtypes) and never see rows, pools or transactions. This crate knows
//! nothing about HTTP, processes or builds: it stores what they decide.

mod access;
mod agents;
mod artifacts;
mod audit;
mod changes;
mod claims;
mod control;
mod conversations;
mod deployments;
mod dialect;
mod env;
mod external;
mod feed;
mod ids;
mod keys;
mod logs;
mod names;
mod oauth;
mod policies;
mod promotions;
mod providers;
mod rate_buckets;
mod redact;
mod remix;
mod remix_sessions;
mod samples;
mod search;
mod secrets;
mod servers;
mod sessions;
mod settings;
mod signing;
mod sources;
mod sql;
mod users;

#[cfg(test)]
pub(crate) mod testdb;

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyConnectOptions;
use sqlx::pool::PoolOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, Pool};
use sqlx::{ConnectOptions, Executor};
use tokio::sync::broadcast;

pub use dialect::Dialect;

pub use access::{
    Access, AccessTable, Grant, GrantError, Grantee, RoleError, ServerAccess, ServerRole,
    resolve_role,
};
pub use agents::{
    Agent, AgentError, AgentPatch, Agents, ChatPrincipal, DEFAULT_STEP_LIMIT, MAX_AGENT_SERVERS,
    MAX_STEP_LIMIT, NewAgent,
};
pub use artifacts::{ArtifactBlobs, PART_BYTES, StoredArtifact};
pub use audit::{
    Audit, AuditOutcome, AuditQuery, AuditRecord, AuditRetention, MAX_AUDIT_PAGE, NewAuditRecord,
};
pub use changes::Change;
pub use claims::Claim;
pub use control::{
    ControlAction, ControlAudit, ControlEvent, ControlQuery, NewControlEvent, UnknownAction,
};
pub use conversations::{Conversation, ConversationSubject, Conversations, MAX_TITLE_CHARS};
pub use deployments::{
    BuildFailure, BuildPhase, Built, Commit, Deployment, DeploymentStatus, Deployments,
    FailureKind, LaunchSpec, LiveDeployment, NewDeployment, Replica, Route, Transport,
};
pub use env::{
    Env, EnvEntry, EnvError, EnvKey, EnvScope, EnvVar, MAX_VALUE_BYTES, NewEnvVar, resolve,
};
pub use external::{
    Connection, External, Externals, Health, NewExternal, RemoteHeader, ToolSummary,
};
pub use ids::{
    AgentId, ApiKeyId, ConversationId, DeploymentId, GroupId, InstanceId, PolicyId, PrincipalId,
    ProviderId, ServerId,
};
pub use keys::{
    ApiKey, Credential, KeyHash, KeyRef, Keys, LAST_USED_PRECISION, Principal, SECRET_PREFIXES,
};
pub use logs::{LogLine, LogQuery, LogSource, LogStream, LogWriter, Logs, NewLogLine, OutputEnd};
pub use names::{AgentName, NameError, ProviderName, ServerName};
pub use oauth::{
    NewOAuthClient, NewOAuthCode, NewRefreshToken, OAuth, OAuthClient, OAuthGrant, Rotation,
    SpentOAuthCode,
};
pub use policies::{
    Capability, CapabilityKind, NewPolicyRule, POLICY_ROLES, Policies, PolicyEffect, PolicyError,
    PolicyRule, PolicySelector,
};
pub use promotions::{Actor, Promotion, PromotionKind, RollbackRefusal};
pub use providers::{
    MAX_PROVIDER_RETRIES, NewProvider, Provider, ProviderConnection, ProviderError, ProviderKind,
    ProviderPatch, Providers, UnknownProviderKind,
};
pub use rate_buckets::{BucketLease, Leased, RateBuckets};
pub use redact::Redactor;
pub use remix::{
    MAX_REMIX_SOURCES, Remix, RemixError, RemixSource, RemixSpec, Remixes, Selection, SourceSpec,
};
pub use remix_sessions::{RemixLink, RemixSessionUse, RemixSessions, StoredRemixSession};
pub use samples::{MetricSample, MetricSamples};
pub use search::{Search, SearchHit};
pub use secrets::{KeySource, MASTER_KEY_FILE, MasterKey, MasterKeyError};
pub use servers::{Server, ServerKind, Servers};
pub use sessions::{SessionBinding, SessionUse, Sessions, StoredSession};
pub use settings::{
    GatewaySettings, MAX_INSTANCES, MAX_REQUEST_TIMEOUT, MAX_STDIO_SESSIONS, MIN_MEMORY_BYTES,
    RuntimeSettings, SettingsError, SettingsPatch,
};
pub use signing::{NewSigningKey, SigningKeyRecord, SigningKeys, SigningSecret};
pub use sources::{
    DEFAULT_BRANCH, MIN_POLL_INTERVAL, Preview, PreviewError, SourcePatch, TrackedSource,
};
pub use users::{
    Account, AccountError, Group, NewPrincipal, PrincipalKind, Users, generate_password,
};

/// A point in time, as stored (milliseconds since the Unix epoch) and shown (RFC 3339).
pub type Timestamp = jiff::Timestamp;

/// Errors from the store. Messages say what failed; callers add what the user should do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("cannot open the database at {path}: {source}")]
    Open {
        /// The database file.
        path: String,
        /// What SQLite reported.
        source: sqlx::Error,
    },
    /// The database server could not be reached or refused the connection.
    #[error(
        "cannot connect to the database at {url}: {source}; check that PostgreSQL runs there and that the URL's user, password and database are right"
    )]
    Connect {
        /// The database URL, without its password.
        url: String,
        /// What the driver reported.
        source: sqlx::Error,
    },
    /// The database URL names no database Skyport supports.
    #[error(
        "'{0}' is not a database URL Skyport supports; give postgres://USER@HOST/DATABASE (or sqlite://PATH)"
    )]
    UnsupportedUrl(String),
    /// Applying the schema migrations failed.
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The change conflicts with the current state (for example, removing a live deployment).
    #[error("{0}")]
    Conflict(String),
    /// A stored value no longer parses; the database was edited by hand or by a newer Skyport.
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    /// A secret cannot be sealed or opened (no master key, or not the one it was sealed with).
    #[error("{0}")]
    Sealed(String),
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool<Any>,
    dialect: Dialect,
    changes: broadcast::Sender<Change>,
    /// Carries changes to and from other processes on the same database (PostgreSQL only).
    feed: Option<Arc<feed::Feed>>,
    /// The `application_name` of this process's connections (PostgreSQL only), by which it
    /// tells its own connections from other replicas'.
    replica: Option<Arc<str>>,
    logs: logs::Shared,
    /// Seals and opens secrets; without it, secrets can be neither set nor read.
    master_key: Option<Arc<MasterKey>>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        let url = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .to_url_lossy();
        let opened = sqlite_pool(url.as_str(), 8)
            .await
            .map_err(|source| StoreError::Open {
                path: path.display().to_string(),
                source,
            })?;
        Store::with_pool(opened, Dialect::Sqlite).await
    }

    /// Opens a private in-memory database, for tests.
    pub async fn open_in_memory() -> Result<Store, StoreError> {
        // One connection: each new connection to `:memory:` would be a different, empty database.
        let opened =
            sqlite_pool("sqlite::memory:", 1)
                .await
                .map_err(|source| StoreError::Open {
                    path: ":memory:".into(),
                    source,
                })?;
        Store::with_pool(opened, Dialect::Sqlite).await
    }

    /// Connects to the database at `url` (`postgres://…`, or `sqlite://PATH`) and applies
    /// migrations. Several Skyports may share one PostgreSQL database.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        match Dialect::of_url(url) {
            Some(Dialect::Postgres) => {
                sqlx::any::install_default_drivers();
                let replica = format!("skyport-{:016x}", rand::random::<u64>());
                let named = with_application_name(url, &replica);
                let pool = PoolOptions::<Any>::new()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(&named)
                    .await
                    .map_err(|source| StoreError::Connect {
                        url: without_password(url),
                        source,
                    })?;
                let mut store = Store::with_pool(pool, Dialect::Postgres).await?;
                store.replica = Some(Arc::from(replica));
                let feed = feed::Feed::start(&named, store.pool.clone(), store.changes.clone())
                    .await
                    .map_err(|source| StoreError::Connect {
                        url: without_password(url),
                        source,
                    })?;
                store.feed = Some(Arc::new(feed));
                Ok(store)
            }
            Some(Dialect::Sqlite) => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:");
                Store::open(Path::new(path)).await
            }
            None => Err(StoreError::UnsupportedUrl(without_password(url))),
        }
    }

    async fn with_pool(pool: Pool<Any>, dialect: Dialect) -> Result<Store, StoreError> {
        match dialect {
            Dialect::Sqlite => sqlx::migrate!("./migrations").run(&pool).await?,
            Dialect::Postgres => sqlx::migrate!("./migrations-postgres").run(&pool).await?,
        }
        let (changes, _) = broadcast::channel(1024);
        Ok(Store {
            pool,
            dialect,
            changes,
            feed: None,
            replica: None,
            logs: logs::Shared::default(),
            master_key: None,
        })
    }

    /// Which database this store runs on.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// This store, sealing and opening secrets with `key`; call it before cloning the store.
    pub fn with_master_key(mut self, key: MasterKey) -> Store {
        self.master_key = Some(Arc::new(key));
        self
    }

    /// Servers: names, descriptions, live pointers.
    pub fn servers(&self) -> Servers<'_> {
        Servers { store: self }
    }

    /// Deployments: builds, their outcome, and promotion.
    pub fn deployments(&self) -> Deployments<'_> {
        Deployments { store: self }
    }

    /// Build output and instance logs.
    pub fn logs(&self) -> Logs<'_> {
        Logs { store: self }
    }

    /// Principals and their API keys.
    pub fn keys(&self) -> Keys<'_> {
        Keys { store: self }
    }

    /// Users, service accounts and groups.
    pub fn users(&self) -> Users<'_> {
        Users { store: self }
    }

    /// Per-server roles: grants and default roles.
    pub fn access(&self) -> Access<'_> {
        Access { store: self }
    }

    /// The gateway's client sessions.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions { store: self }
    }

    /// Environment variables and secrets, and deployments' snapshots of them.
    pub fn env(&self) -> Env<'_> {
        Env { store: self }
    }

    /// The audit log of MCP requests.
    pub fn audit(&self) -> Audit<'_> {
        Audit { store: self }
    }

    /// The audit log of control-plane changes.
    pub fn control_audit(&self) -> ControlAudit<'_> {
        ControlAudit { store: self }
    }

    /// The keys that sign identity tokens.
    pub fn signing_keys(&self) -> SigningKeys<'_> {
        SigningKeys { store: self }
    }

    /// Remix servers and their sources.
    pub fn remixes(&self) -> Remixes<'_> {
        Remixes { store: self }
    }

    /// The client sessions of remix servers and their links to sources.
    pub fn remix_sessions(&self) -> RemixSessions<'_> {
        RemixSessions { store: self }
    }

    /// OAuth clients, authorization codes, refresh tokens and revoked access tokens.
    pub fn oauth(&self) -> OAuth<'_> {
        OAuth { store: self }
    }

    /// External catalog entries: remote servers the gateway proxies.
    pub fn externals(&self) -> Externals<'_> {
        Externals { store: self }
    }

    /// The catalog's full-text search index.
    pub fn search(&self) -> Search<'_> {
        Search { store: self }
    }

    /// Artifacts packed for replicas that did not build them.
    pub fn artifact_blobs(&self) -> ArtifactBlobs<'_> {
        ArtifactBlobs { store: self }
    }

    /// Metrics over time: one sample per server and sampling period.
    pub fn metric_samples(&self) -> MetricSamples<'_> {
        MetricSamples { store: self }
    }

    /// Language-model providers, their keys sealed.
    pub fn providers(&self) -> Providers<'_> {
        Providers { store: self }
    }

    /// Agents: their provider, model, servers and who may chat with them.
    pub fn agents(&self) -> Agents<'_> {
        Agents { store: self }
    }

    /// Conversations with agents and servers, per principal.
    pub fn conversations(&self) -> Conversations<'_> {
        Conversations { store: self }
    }

    /// Per-key rate-limit buckets that replicas share and lease requests from.
    pub fn rate_buckets(&self) -> RateBuckets<'_> {
        RateBuckets { store: self }
    }

    /// Tool-level policies: rules per server.
    pub fn policies(&self) -> Policies<'_> {
        Policies { store: self }
    }

    /// A claim on the work named `name` that one replica among those sharing the database
    /// must do (see [`Claim::held`]); on SQLite always held.
    pub fn claim(&self, name: impl Into<Cow<'static, str>>) -> Claim {
        Claim::new(self.clone(), name.into())
    }

    /// Follows changes to live deployments, server settings and keys made through this store
    /// (and, on PostgreSQL, through every other store on the same database).
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Closes the pool, waiting for connections to return; call once at shutdown.
    pub async fn close(&self) {
        if let Some(feed) = &self.feed {
            feed.stop();
        }
        self.pool.close().await;
    }

    /// The master key, or an error saying how to give Skyport one.
    fn master_key(&self) -> Result<&MasterKey, StoreError> {
        self.master_key.as_deref().ok_or_else(|| {
            StoreError::Sealed(
                "secrets need a master key, and this Skyport has none; start it with SKYPORT_MASTER_KEY or a data directory (which holds master.key)"
                    .to_owned(),
            )
        })
    }

    /// Starts a transaction that writes. IMMEDIATE takes the write lock first: a deferred
    /// transaction that reads and then writes fails at once with SQLITE_BUSY ("database is
    /// locked"), without waiting, when another connection (the audit or log writer, a build)
    /// wrote in between.
    ///
    /// PostgreSQL has no such mode: there every write transaction takes one transaction-level
    /// advisory lock first, which gives the same order (one writer at a time, readers never
    /// blocked) across every replica sharing the database, so that read-then-write sequences
    /// written for SQLite keep their meaning without per-statement row locks.
    async fn write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => {
                let mut tx = self.pool.begin().await?;
                sql::query("SELECT pg_advisory_xact_lock(?)")
                    .bind(dialect::WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    fn publish(&self, change: Change) {
        if let Some(feed) = &self.feed {
            feed.send(change.clone());
        }
        // No subscribers is fine: nothing is running that caches routes.
        let _ = self.changes.send(change);
    }
}

/// A pool of SQLite connections set up as Skyport needs them: write-ahead log (readers do not
/// wait for the writer), a busy timeout instead of failing at once, foreign keys enforced.
async fn sqlite_pool(url: &str, connections: u32) -> Result<Pool<Any>, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let options: AnyConnectOptions = url.parse()?;
    PoolOptions::<Any>::new()
        .max_connections(connections)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA foreign_keys = ON").await?;
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
}

/// `url` with `application_name` set to `name` (a later parameter overrides an earlier one).
fn with_application_name(url: &str, name: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={name}")
}

/// `url` without its password, for messages.
fn without_password(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((credentials, host)) => {
                let user = credentials.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}@{host}")
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn now() -> Timestamp {
    Timestamp::now()
}

fn to_millis(at: Timestamp) -> i64 {
    at.as_millisecond()
}

fn from_millis(ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt(format!("timestamp {ms}: {e}")))
}

#[cfg(test)]
mod tests;
