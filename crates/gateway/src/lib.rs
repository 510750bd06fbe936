//! The MCP front door: `/servers/{name}/mcp`, and `/servers/{name}/sse` + `/messages` for
//! legacy HTTP+SSE clients.
//!
//! A request is routed by server name to the live deployment (an in-memory table that follows
//! the store's change feed, so routing costs no query), gets a [`Lease`] on an instance from
//! the runtime (which starts one if needed), and is forwarded over a pooled HTTP/1 connection.
//! Response bodies stream back untouched, so SSE passes through unbuffered; the lease lives as
//! long as the response body, so an instance is never stopped under an open stream.
//!
//! Tool-level policies (`policy.rs`) are applied on the way: a denied call is answered by the
//! gateway as the server answers an unknown name, and lists are filtered; a request no rule
//! applies to streams through untouched.
//!
//! The gateway owns the session ids clients see. An upstream `Mcp-Session-Id` never leaves
//! Skyport: it is mapped to an id the gateway issues at `initialize`, bound to the instance
//! that created it.
//!
//! This crate does not run SQL or builds; it reads routes through the store's repositories and
//! asks the runtime for instances.
//!
//! [`Lease`]: skyport_runtime::Lease

mod access;
mod audit;
mod auth;
mod caller;
mod cors;
mod error;
mod external;
mod hosts;
mod identity;
mod legacy;
mod metrics;
mod oauth;
pub mod policy;
mod proxy;
mod ratelimit;
mod remix;
mod routes;
mod samples;
mod sessions;

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::routing::{any, get, post};
use axum::{Router, middleware};
use skyport_runtime::Runtime;
use skyport_store::{
    AuditRetention, CapabilityKind, Principal, ServerId, ServerRole, Store, StoreError,
};
use tokio_util::sync::CancellationToken;

pub use caller::Caller;
pub use error::GatewayError;
pub use ratelimit::{RateLimit, RateLimitError, RateLimitScope};
pub use samples::{SamplerOptions, record_metric_samples};

use crate::access::Access;
use crate::audit::AuditLog;
use crate::auth::Keyring;
use crate::external::Remotes;
use crate::identity::IdentityTokens;
use crate::legacy::LegacySessions;
use crate::metrics::GatewayMetrics;
use crate::oauth::AccessTokens;
use crate::policy::PolicyTable;
use crate::proxy::Upstream;
use crate::remix::{RemixSessions, RemixTable};
use crate::routes::RouteTable;
use crate::sessions::Sessions;

/// How the gateway behaves; `Default` is what `skyport serve` uses without flags.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    /// The largest request body accepted; MCP requests are small, so more is a mistake or abuse.
    pub max_body: usize,
    /// How long a request may wait for its response to finish (event streams opened with
    /// `GET` excepted).
    pub request_timeout: Duration,
    /// How long an unused session is kept.
    pub session_ttl: Duration,
    /// With a base domain, `NAME.BASE/mcp` serves server `NAME` too.
    pub base_domain: Option<String>,
    /// Web origins whose pages may call the gateway (CORS), besides loopback ones; `*` allows
    /// any.
    pub cors_origins: Vec<String>,
    /// Whether servers that do not set `--auth` require a credential: off while Skyport
    /// listens only on loopback, on once it is reachable from elsewhere.
    pub default_auth: bool,
    /// The address clients reach Skyport at, without a trailing slash (for the URLs of
    /// protected resource metadata).
    pub public_url: String,
    /// Requests each API key may make; `None` does not limit.
    pub rate_limit: Option<RateLimit>,
    /// Whether that limit is counted per replica or shared by every replica on the database.
    pub rate_limit_scope: RateLimitScope,
    /// How long MCP requests and control-plane changes stay in the audit logs.
    pub audit_retention: AuditRetention,
    /// How often external servers are checked (`initialize` + `tools/list`).
    pub health_interval: Duration,
    /// Whether external servers may be reached on loopback, private and link-local
    /// addresses (closed networks, tests); otherwise only public ones are connected to.
    pub allow_private_externals: bool,
}

impl Default for GatewayOptions {
    fn default() -> GatewayOptions {
        GatewayOptions {
            max_body: 6 * 1024 * 1024,
            request_timeout: Duration::from_secs(170),
            session_ttl: Duration::from_secs(24 * 3600),
            base_domain: None,
            cors_origins: Vec::new(),
            default_auth: false,
            public_url: "http://127.0.0.1:8420".to_owned(),
            rate_limit: None,
            rate_limit_scope: RateLimitScope::Replica,
            audit_retention: AuditRetention::default(),
            health_interval: Duration::from_secs(60),
            allow_private_externals: false,
        }
    }
}

/// How often session uses are written to the store and expired sessions deleted.
const SESSION_FLUSH: Duration = Duration::from_secs(30);

/// The gateway's shared state; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    routes: RouteTable,
    keys: Keyring,
    access: Access,
    /// Every server's tool-level policy, compiled; follows the store.
    policies: PolicyTable,
    sessions: Sessions,
    /// Every remix's definition; follows the store.
    remixes: RemixTable,
    /// Client sessions of remixes, backed by the store.
    remix_sessions: RemixSessions,
    /// How to reach external servers; follows the store.
    remotes: Remotes,
    runtime: Arc<dyn Runtime>,
    upstream: Upstream,
    audit: AuditLog,
    /// Sessions of legacy HTTP+SSE (2024-11-05) clients, bridged to the streamable path.
    legacy: LegacySessions,
    metrics: Arc<GatewayMetrics>,
    /// Signs the identity tokens of servers that ask for them; its keys verify access tokens.
    identity: IdentityTokens,
    /// Verified OAuth access tokens and revoked ones.
    tokens: AccessTokens,
    options: GatewayOptions,
    /// Cancelled at shutdown: ends server-to-client event streams, which would otherwise
    /// hold a graceful shutdown open until its deadline.
    closing: CancellationToken,
}

impl Gateway {
    /// Loads the route table and keeps it following the store until the store closes, and
    /// loads the key that signs identity tokens (making one on first start: the store needs
    /// its master key).
    pub async fn new(
        store: Store,
        runtime: Arc<dyn Runtime>,
        options: GatewayOptions,
    ) -> Result<Gateway, StoreError> {
        let routes = RouteTable::load(&store).await?;
        let keys = Keyring::load(&store, options.rate_limit_scope).await?;
        let access = Access::load(&store).await?;
        let identity = IdentityTokens::load(store.clone(), options.public_url.clone()).await?;
        let tokens = AccessTokens::load(store.clone(), options.public_url.clone()).await?;
        let policies = PolicyTable::load(&store).await?;
        let remixes = RemixTable::load(&store).await?;
        let remotes = Remotes::load(&store, options.allow_private_externals).await?;
        routes.follow(store.clone());
        remotes.follow(store.clone());
        let metrics = Arc::new(GatewayMetrics::default());
        let audit = AuditLog::start(
            store.clone(),
            routes.clone(),
            metrics.clone(),
            options.audit_retention,
        );
        let gateway = Gateway {
            inner: Arc::new(Inner {
                routes,
                keys,
                access,
                policies,
                remixes,
                remix_sessions: RemixSessions::new(store.clone(), options.session_ttl),
                sessions: Sessions::new(store.clone(), options.session_ttl),
                remotes,
                runtime,
                upstream: Upstream::new(),
                audit,
                legacy: LegacySessions::default(),
                metrics,
                identity,
                tokens,
                options,
                closing: CancellationToken::new(),
            }),
        };
        tokio::spawn(flush_sessions(Arc::downgrade(&gateway.inner)));
        tokio::spawn(external::watch_health(
            Arc::downgrade(&gateway.inner),
            store,
            gateway.inner.options.health_interval,
        ));
        Ok(gateway)
    }

    /// The gateway's routes, to merge into the application's router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/servers/{name}/mcp", any(proxy::handle))
            .route("/servers/{name}/mcp/", any(proxy::handle))
            .route("/servers/{name}/sse", get(legacy::open))
            .route("/servers/{name}/sse/", get(legacy::open))
            .route("/servers/{name}/messages", post(legacy::message))
            .route("/mcp", any(hosts::handle))
            .route("/mcp/", any(hosts::handle))
            .route_layer(middleware::from_fn_with_state(
                self.clone(),
                auth::authenticate,
            ))
            .route(
                &format!("{}/servers/{{name}}/mcp", auth::METADATA_PREFIX),
                get(auth::metadata),
            )
            // RFC 9728 puts the well-known segment first; some clients append it to the
            // server's URL instead. Both name the same document.
            .route(
                &format!("/servers/{{name}}/mcp{}", auth::METADATA_PREFIX),
                get(auth::metadata),
            )
            .route(auth::METADATA_PREFIX, get(auth::root_metadata))
            .route("/.well-known/jwks.json", get(identity::jwks))
            .layer(middleware::from_fn_with_state(self.clone(), cors::layer))
            .with_state(self.clone())
    }

    /// Ends open `GET` event streams now; requests in flight carry on. Call when shutting
    /// down, so waiting for in-flight work does not mean waiting for idle listeners.
    pub fn close_streams(&self) {
        self.inner.closing.cancel();
    }

    /// Writes what is only in memory about sessions (when each was last used) to the store;
    /// call at shutdown, before the store closes.
    pub async fn flush(&self) {
        flush_all_sessions(&self.inner).await;
    }

    /// Waits until the audit records of requests finished so far are stored. Call at shutdown
    /// after the HTTP server stopped and before the store closes, and before reading the audit
    /// log when it must show the latest requests.
    pub async fn flush_audit(&self) {
        self.inner.audit.flush().await;
    }

    /// Audit records lost since the gateway started (dropped at a full queue, or not stored).
    pub fn audit_lost(&self) -> u64 {
        self.inner.metrics.lost()
    }

    /// Appends the gateway's per-server metrics to `out` in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        let names = self.inner.routes.names();
        let sessions = self.inner.sessions.count_by_server();
        let sessions = sessions
            .into_iter()
            .filter_map(|(id, count)| Some((names.get(&id)?.clone(), count)))
            .collect();
        self.inner.metrics.render(&sessions, out);
    }

    /// Makes a new key sign identity tokens from now on; the previous one stays in the JWKS
    /// (for a day) so that tokens it signed still verify. Returns the new key's id.
    pub async fn rotate_signing_key(&self) -> Result<String, StoreError> {
        self.inner.identity.rotate().await
    }

    /// Client sessions in memory (open and used recently).
    pub fn session_count(&self) -> usize {
        self.inner.sessions.len()
    }

    /// Whether `tools/list` of `server` would show `tool` to `principal`: its role and groups as
    /// the gateway resolves them for a request, then the server's tool-level policy. Lets other
    /// views of tools (catalog search) hide exactly what the gateway hides.
    pub fn lists_tool(&self, principal: &Principal, server: &ServerId, tool: &str) -> bool {
        let access = self.inner.access.table();
        // A caller with no grant on a public server is an ordinary client there: a viewer.
        let role = access
            .role(&principal.id, principal.is_admin, server)
            .unwrap_or(ServerRole::Viewer);
        let caller = Caller {
            principal: principal.id.clone(),
            name: principal.name.clone(),
            email: principal.email.clone(),
            roles: vec![role.as_str().to_owned()],
            groups: access.groups(&principal.id),
            key: None,
        };
        self.inner
            .policies
            .decider(server, Some(&caller))
            .is_none_or(|decider| decider.permits(CapabilityKind::Tool, tool))
    }
}

/// Session uses are counted in memory; this writes them out now and then, and deletes
/// sessions unused for their time to live.
async fn flush_sessions(gateway: Weak<Inner>) {
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + SESSION_FLUSH, SESSION_FLUSH);
    loop {
        tick.tick().await;
        let Some(inner) = gateway.upgrade() else {
            return;
        };
        flush_all_sessions(&inner).await;
    }
}

/// Flushes gateway and remix sessions alike (uses, eviction, expiry).
async fn flush_all_sessions(inner: &Inner) {
    if let Err(e) = inner.sessions.flush().await {
        tracing::warn!("cannot record session uses: {e}");
    }
    if let Err(e) = inner.remix_sessions.flush().await {
        tracing::warn!("cannot record remix session uses: {e}");
    }
}

#[cfg(test)]
mod tests;
