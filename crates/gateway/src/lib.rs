//! The MCP front door: `/servers/{name}/mcp`.
//!
//! A request is routed by server name to the live deployment (an in-memory table that follows
//! the store's change feed, so routing costs no query), gets a [`Lease`] on an instance from
//! the runtime (which starts one if needed), and is forwarded over a pooled HTTP/1 connection.
//! Response bodies stream back untouched, so SSE passes through unbuffered; the lease lives as
//! long as the response body, so an instance is never stopped under an open stream.
//!
//! The gateway owns the session ids clients see. An upstream `Mcp-Session-Id` never leaves
//! Skyport: it is mapped to an id the gateway issues at `initialize`, bound to the instance
//! that created it.
//!
//! This crate does not run SQL or builds; it reads routes through the store's repositories and
//! asks the runtime for instances.
//!
//! [`Lease`]: skyport_runtime::Lease

mod audit;
mod caller;
mod cors;
mod error;
mod hosts;
mod proxy;
mod routes;
mod sessions;

use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::routing::any;
use axum::{Router, middleware};
use skyport_runtime::Runtime;
use skyport_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

pub use caller::Caller;
pub use error::GatewayError;

use crate::audit::AuditLog;
use crate::proxy::Upstream;
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
}

impl Default for GatewayOptions {
    fn default() -> GatewayOptions {
        GatewayOptions {
            max_body: 6 * 1024 * 1024,
            request_timeout: Duration::from_secs(170),
            session_ttl: Duration::from_secs(24 * 3600),
            base_domain: None,
            cors_origins: Vec::new(),
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
    sessions: Sessions,
    runtime: Arc<dyn Runtime>,
    upstream: Upstream,
    audit: AuditLog,
    options: GatewayOptions,
    /// Cancelled at shutdown: ends server-to-client event streams, which would otherwise
    /// hold a graceful shutdown open until its deadline.
    closing: CancellationToken,
}

impl Gateway {
    /// Loads the route table and keeps it following the store until the store closes.
    pub async fn new(
        store: Store,
        runtime: Arc<dyn Runtime>,
        options: GatewayOptions,
    ) -> Result<Gateway, StoreError> {
        let routes = RouteTable::load(&store).await?;
        routes.follow(store.clone());
        let gateway = Gateway {
            inner: Arc::new(Inner {
                routes,
                sessions: Sessions::new(store, options.session_ttl),
                runtime,
                upstream: Upstream::new(),
                audit: AuditLog::start(),
                options,
                closing: CancellationToken::new(),
            }),
        };
        tokio::spawn(flush_sessions(Arc::downgrade(&gateway.inner)));
        Ok(gateway)
    }

    /// The gateway's routes, to merge into the application's router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/servers/{name}/mcp", any(proxy::handle))
            .route("/servers/{name}/mcp/", any(proxy::handle))
            .route("/mcp", any(hosts::handle))
            .route("/mcp/", any(hosts::handle))
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
        if let Err(e) = self.inner.sessions.flush().await {
            tracing::warn!("cannot record session uses: {e}");
        }
    }

    /// Client sessions in memory (open and used recently).
    pub fn session_count(&self) -> usize {
        self.inner.sessions.len()
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
        if let Err(e) = inner.sessions.flush().await {
            tracing::warn!("cannot record session uses: {e}");
        }
    }
}

#[cfg(test)]
mod tests;
