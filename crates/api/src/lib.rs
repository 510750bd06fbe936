//! The JSON shapes of the REST API under `/api/v1/`: what the `web` crate serialises and the
//! `client` crate (and the CLI's `--json`) reads back.
//!
//! These are views, not the store's types: they add what a caller needs (a server's MCP URL)
//! and leave out what it must not see (launch commands, artifact paths). Field names are part
//! of the public contract; change them only with a new API version.

mod access;
mod agents;
mod chat;
mod control;
mod env;
mod metrics;
mod policies;
mod promotions;
mod registry;
mod remixes;
mod sources;

pub use access::{
    AccessView, CreateGroup, CreateUser, GrantView, GroupView, Login, SetDefaultRole, UserCreated,
    UserView,
};
pub use agents::{
    AgentView, CreateAgent, CreateProvider, ProviderView, UpdateAgent, UpdateProvider,
};
pub use chat::{
    ChatApp, ChatEvent, ChatMessage, ChatRequest, ChatStop, ChatToolCall, ConversationDetail,
    ConversationView,
};
pub use control::{ControlAuditPage, ControlEventView};
pub use env::{EnvAssignment, EnvChanged, EnvList, EnvVarView, SetEnv};

use serde::{Deserialize, Serialize};
use skyport_store::{
    ApiKeyId, AuditOutcome, BuildPhase, DeploymentId, DeploymentStatus, FailureKind, LogSource,
    LogStream, PrincipalId, ServerId, ServerKind, ServerName, Timestamp,
};

pub use metrics::{MetricPoint, MetricSeries};
pub use policies::{CreatePolicy, PolicyView};
pub use promotions::{PromotionView, RollBack};
pub use registry::{CreateExternal, ExternalView, SearchMatch, SearchResults};
pub use remixes::{CreateRemix, EditRemix, RemixView};
pub use sources::{HookAnswer, PreviewView, SourceUpdate, SourceView};

/// A server as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerView {
    /// Its id.
    pub id: ServerId,
    /// Its name, which is also its path under `/servers/`.
    pub name: ServerName,
    /// What kind of catalog entry it is: `hosted`, `external` or `remix`.
    #[serde(default = "hosted")]
    pub kind: ServerKind,
    /// The remote and its health, for an external server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalView>,
    /// What it is for.
    pub description: String,
    /// The MCP endpoint clients connect to.
    pub url: String,
    /// The deployment serving it, if any.
    pub live_deployment: Option<DeploymentId>,
    /// Running instances of its live deployment.
    pub instances: Vec<InstanceView>,
    /// How its instances run.
    pub settings: SettingsView,
    /// What its instances have done since Skyport started, and use now.
    pub metrics: ServerMetricsView,
    /// Where its code comes from for builds nobody typed (pushes, polling, previews).
    #[serde(default)]
    pub source: SourceView,
    /// What it previews, if it is a preview.
    #[serde(default)]
    pub preview: Option<PreviewView>,
    /// When it was first deployed.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

fn hosted() -> ServerKind {
    ServerKind::Hosted
}

/// A running instance of a server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceView {
    /// Its id (as in the logs).
    pub id: String,
    /// The deployment it runs.
    pub deployment: DeploymentId,
    /// Its operating-system process id.
    pub pid: Option<u32>,
    /// When it started.
    pub started_at: Timestamp,
    /// Requests it is serving right now.
    pub in_flight: u64,
    /// Memory it uses now, in bytes (cgroup usage, else resident set).
    pub memory_bytes: Option<u64>,
}

/// How a server's instances run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsView {
    /// Memory cap of each instance, in bytes.
    pub memory_bytes: u64,
    /// Seconds an instance may sit idle before it is stopped.
    pub idle_timeout_seconds: u64,
    /// Instances kept running even when idle.
    pub min_instances: u32,
    /// Most instances run at once.
    pub max_instances: u32,
    /// For a stdio server: sessions one instance serves at once, each its own process.
    #[serde(default)]
    pub stdio_sessions: u32,
    /// For a stdio server: whether one process serves every session.
    #[serde(default)]
    pub stdio_shared: bool,
    /// Whether the gateway requires a credential; `null` follows the platform's default.
    #[serde(default)]
    pub auth: Option<bool>,
    /// Whether the gateway requires a credential now (the server's choice, else the default).
    #[serde(default)]
    pub auth_effective: bool,
    /// Seconds a request may take; `null` follows the platform's default.
    #[serde(default)]
    pub request_timeout_seconds: Option<u64>,
    /// Seconds a request may take now (the server's choice, else the default).
    #[serde(default)]
    pub request_timeout_effective_seconds: u64,
    /// Whether requests carry a signed identity token (`skyport-identity`).
    #[serde(default)]
    pub identity_token: bool,
}

/// Changes to a server's settings; absent fields keep their value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsUpdate {
    /// Memory cap of each instance, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Seconds an instance may sit idle before it is stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u64>,
    /// Instances kept running even when idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_instances: Option<u32>,
    /// Most instances run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
    /// For a stdio server: sessions one instance serves at once, each its own process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdio_sessions: Option<u32>,
    /// For a stdio server: whether one process serves every session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdio_shared: Option<bool>,
    /// Whether the gateway requires a credential; `null` returns to the platform's default.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub auth: Option<Option<bool>>,
    /// Seconds a request may take; `null` returns to the platform's default.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub request_timeout_seconds: Option<Option<u64>>,
    /// Whether requests carry a signed identity token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_token: Option<bool>,
}

/// A field that is present (`Some`), even as `null` (`Some(None)`): absent fields are `None`
/// through `#[serde(default)]`, so "keep" and "reset to the default" stay apart.
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl SettingsUpdate {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == SettingsUpdate::default()
    }
}

/// A server's live figures, summed over its deployments since Skyport started.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerMetricsView {
    /// Instances running now.
    pub instances: u64,
    /// Memory its instances use now, in bytes.
    pub memory_bytes: u64,
    /// Successful cold starts.
    pub cold_starts: u64,
    /// Their mean duration, in seconds (0 without any).
    pub cold_start_mean_seconds: f64,
    /// Starts that failed.
    pub failed_starts: u64,
    /// Requests served.
    pub requests: u64,
    /// Their mean duration, in seconds (0 without any).
    pub request_mean_seconds: f64,
    /// Requests that failed.
    pub errors: u64,
    /// Instances that exited without being asked to.
    pub crashes: u64,
    /// Instances killed for exceeding their memory limit.
    pub oom_kills: u64,
}

/// A deployment as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentView {
    /// Its id.
    pub id: DeploymentId,
    /// The server it deploys.
    pub server: ServerName,
    /// Where it is in its life.
    pub status: DeploymentStatus,
    /// Whether it is the one serving its server.
    pub live: bool,
    /// The build step it is in or failed in.
    pub phase: Option<BuildPhase>,
    /// Where the code came from.
    pub source: String,
    /// The git branch, tag or commit asked for (git sources; `None` is the default branch).
    #[serde(default)]
    pub git_ref: Option<String>,
    /// The commit built, for git sources once fetched.
    #[serde(default)]
    pub commit: Option<CommitView>,
    /// The entrypoint: as resolved by the build, else as requested.
    pub entrypoint: Option<String>,
    /// The content hash of the built artifact.
    #[serde(default)]
    pub artifact: Option<String>,
    /// The Python version the server runs on, once built.
    #[serde(default)]
    pub python: Option<String>,
    /// The installed packages as `name==version`, once built.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Whether garbage collection removed the artifact: it can no longer serve.
    #[serde(default)]
    pub pruned: bool,
    /// Why the build failed, if it did.
    pub failure: Option<FailureView>,
    /// What the server offers, as found by the build.
    pub inspection: Option<serde_json::Value>,
    /// Who asked for it (the name of the API key's principal); `null` for builds nobody
    /// asked for through the API.
    #[serde(default)]
    pub created_by: Option<String>,
    /// When it was requested.
    pub created_at: Timestamp,
    /// When the build started.
    pub started_at: Option<Timestamp>,
    /// When the build finished.
    pub finished_at: Option<Timestamp>,
}

/// The git commit a deployment was built from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommitView {
    /// Its full SHA.
    pub sha: String,
    /// Its first 12 hex digits, for people.
    pub short: String,
    /// `Name <email>` of its author.
    pub author: String,
    /// The first line of its message.
    pub message: String,
    /// When it was committed.
    pub committed_at: Timestamp,
}

/// A classified build failure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailureView {
    /// What kind of problem it is.
    pub kind: FailureKind,
    /// What went wrong and what to do.
    pub message: String,
}

/// `PUT /api/v1/servers/{name}`: creates a server or updates it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PutServer {
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Changes to how its instances run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<SettingsUpdate>,
    /// Changes to where its code comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceUpdate>,
}

/// `POST /api/v1/servers/{name}/deployments`: builds and promotes a new deployment; creates the
/// server if it does not exist.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateDeployment {
    /// Where the code comes from.
    pub source: SourceSpec,
    /// `FILE.py[:OBJECT]`, `MODULE:OBJECT` or `fastmcp.json`, as `fastmcp run` takes it;
    /// default `fastmcp.json`, `main.py`, `server.py`, `app.py`.
    #[serde(default)]
    pub entrypoint: Option<String>,
    /// The server's description, set when given.
    #[serde(default)]
    pub description: Option<String>,
    /// The server's settings, changed when given (before the build starts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<SettingsUpdate>,
    /// Production variables (and secrets) set on the server before the build starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvAssignment>,
    /// The branch whose pushes redeploy the server (git sources); built when no `ref` is
    /// given. The git URL and the entrypoint are recorded as the server's tracked source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
}

/// Where a deployment's code comes from: `{"upload": "upl_…"}`,
/// `{"git": {"url": "…", "ref": "…"}}` or `{"package": {…}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceSpec {
    /// A gzip tarball sent earlier to `POST /api/v1/uploads`.
    Upload(String),
    /// A git repository.
    Git(GitSpec),
    /// A package published on PyPI or npm (a stdio MCP server).
    Package(PackageSpec),
}

/// A packaged server: `{"package": {"registry": "pypi", "name": "mcp-server-time"}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PackageSpec {
    /// `pypi` or `npm`.
    pub registry: String,
    /// The package's name in that registry.
    pub name: String,
    /// An exact version; the newest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Arguments given to the server on every start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// For a package that serves streamable HTTP itself: the environment variable it reads
    /// its port from (`{port}` in an argument works too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_env: Option<String>,
    /// Production variables the server cannot start without (from a `server.json`): the
    /// deploy is refused while any is unset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_env: Vec<String>,
}

/// A git source of a deployment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GitSpec {
    /// Anything `git clone` takes: https, ssh, `user@host:path`, `file://`, an absolute path.
    /// HTTPS credentials in it are used for fetching and never shown or stored.
    pub url: String,
    /// Branch, tag or commit; the remote's default branch when absent.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// `POST /api/v1/uploads` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UploadCreated {
    /// Pass it as `source.upload` of a deployment.
    pub id: String,
}

/// One log line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLineView {
    /// Cursor: pass it as `after` to get only newer lines.
    pub id: i64,
    /// When it was written.
    pub at: Timestamp,
    /// Build or instance.
    pub source: LogSource,
    /// stdout, stderr, or Skyport's own note.
    pub stream: LogStream,
    /// The build phase that wrote it (build lines only).
    #[serde(default)]
    pub phase: Option<BuildPhase>,
    /// The deployment it belongs to.
    pub deployment: Option<DeploymentId>,
    /// The instance that printed it.
    pub instance: Option<String>,
    /// The text, without its newline.
    pub line: String,
}

/// A page of log lines, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogPage {
    /// The lines.
    pub lines: Vec<LogLineView>,
    /// Pass as `after` to continue; unchanged when there was nothing new.
    pub cursor: i64,
}

/// One MCP request through the gateway, from the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecordView {
    /// Position in the log; increases with every request recorded.
    pub id: i64,
    /// When the request arrived.
    pub at: Timestamp,
    /// The server name in the request's path.
    pub server: ServerName,
    /// The server's id, when the name belonged to a server.
    pub server_id: Option<ServerId>,
    /// The deployment that answered, once routed.
    pub deployment: Option<DeploymentId>,
    /// Who called, when authenticated.
    pub principal: Option<PrincipalId>,
    /// The caller's name, when it still exists.
    pub principal_name: Option<String>,
    /// `POST`, `GET` (the server's event stream) or `DELETE` (ending a session).
    pub http_method: String,
    /// The JSON-RPC method (the first message's, for a batch).
    pub method: Option<String>,
    /// The tool or prompt name, or the resource URI.
    pub target: Option<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The HTTP status the client got.
    pub status: u16,
    /// The JSON-RPC error code, for errors that carry one.
    pub error_code: Option<i64>,
    /// From arrival to the end of the response, in milliseconds.
    pub duration_ms: f64,
    /// Request body bytes.
    pub bytes_in: u64,
    /// Response body bytes.
    pub bytes_out: u64,
}

/// `GET /api/v1/audit` answer: requests newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    /// The requests, newest first.
    pub records: Vec<AuditRecordView>,
    /// Records lost since Skyport started (the writer's queue was full, or the store failed):
    /// when it is not 0, the log misses requests.
    pub lost: u64,
}

/// The names of the Server-Sent Events of a log stream (`Accept: text/event-stream`).
///
/// Each log line is an unnamed event (`message` to an `EventSource`) whose `id:` is the
/// line's cursor (reconnect with `Last-Event-ID` to resume) and whose data is a
/// [`LogLineView`]. A deployment's build log also sends `deployment` events (a
/// [`DeploymentView`]) when its status or phase changes, and ends with one `end` event (the
/// final [`DeploymentView`]) once the build is over.
pub mod events {
    /// The deployment changed status or phase.
    pub const DEPLOYMENT: &str = "deployment";
    /// The build is over; the stream closes after it.
    pub const END: &str = "end";
}

/// An API key as the API shows it (never with its secret).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyView {
    /// Its id.
    pub id: ApiKeyId,
    /// What it is for.
    pub name: String,
    /// The name of who it acts as.
    pub principal: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was last used, to about a minute.
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
}

/// `POST /api/v1/keys`: creates an API key acting as the caller (or, for org admins, as
/// another principal).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateKey {
    /// What it is for; unique among live keys. Default: `key-` and the end of its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Seconds until it stops working; never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    /// The user or service account it acts as, when not the caller (org admins only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

/// `POST /api/v1/keys` answer: the key and its secret, which is shown this once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyCreated {
    /// The key.
    pub key: KeyView,
    /// Send it as `Authorization: Bearer SECRET`; it cannot be shown again.
    pub secret: String,
}

/// `POST /api/v1/signing-keys/rotate` answer: the key that signs identity tokens from now on
/// (the previous one stays in the JWKS for a day).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRotated {
    /// The new key's id, as tokens name it in their `kid`.
    pub kid: String,
}

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong, for machines (`code`) and people (`message`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable, snake_case: `not_found`, `invalid_name`, `unauthorized`, …
    pub code: String,
    /// What went wrong and what to do about it.
    pub message: String,
}

/// `GET /healthz` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok` when it answers.
    pub status: String,
    /// Skyport's version.
    pub version: String,
}

/// `POST /api/v1/oauth/clients` body: an OAuth client for a service account
/// (`client_credentials`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOAuthClient {
    /// The service account its tokens act as.
    #[serde(rename = "for")]
    pub account: String,
    /// What it is for [default: the account's name].
    #[serde(default)]
    pub name: Option<String>,
}

/// An OAuth client made for a service account, as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthClientView {
    /// Its `client_id`.
    pub client_id: String,
    /// What it is for.
    pub name: String,
    /// The service account its tokens act as.
    pub account: String,
    /// When it was made.
    pub created_at: Timestamp,
}

/// `POST /api/v1/oauth/clients` answer: the client and its secret, shown this once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthClientCreated {
    /// The client.
    pub client: OAuthClientView,
    /// Its secret (HTTP Basic or `client_secret` at the token endpoint); it cannot be shown
    /// again.
    pub client_secret: String,
    /// Where to ask for tokens.
    pub token_endpoint: String,
}
