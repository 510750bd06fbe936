//! Skyport's HTTP application: `/healthz`, `/metrics`, the REST API under `/api/v1/`, the OAuth
//! authorization server (`/oauth/*` and its metadata), the gateway's `/servers/{name}/mcp` and
//! the web UI (`/` and `/ui/`) mounted beside them, behind a host check.
//!
//! Handlers read like a paragraph: extract, check the caller's permission (`access.rs`, the
//! only place that decides it), call the domain (store repositories, the builder, the
//! runtime), map the error ([`ApiError`]). No SQL and no process handling here.

mod access;
mod agents;
mod api;
mod audit;
mod auth;
mod chat;
mod control;
mod env;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod grants;
mod hooks;
mod host;
mod keys;
mod metrics;
mod oauth;
mod oauth_clients;
mod policies;
mod promotions;
mod registry;
mod registry_api;
mod remixes;
mod sources;
mod stream;
mod ui;
mod users;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::middleware;
use axum::routing::get;
use axum::{Extension, Router};
use skyport_build::Builder;
use skyport_gateway::Gateway;
use skyport_oauth::AuthorizationServer;
use skyport_runtime::Runtime;
use skyport_store::Store;

pub use error::ApiError;

/// What the handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Starts builds.
    pub builder: Builder,
    /// Reports instances.
    pub runtime: Arc<dyn Runtime>,
    /// The address clients reach Skyport at, without a trailing slash (for MCP URLs).
    pub public_url: String,
    /// What servers get for the settings they leave to the platform.
    pub server_defaults: ServerDefaults,
    /// The OAuth authorization server.
    pub oauth: AuthorizationServer,
    /// External servers may be on loopback, private and link-local addresses (else they are
    /// refused when added, against request forgery through the gateway).
    pub allow_private_externals: bool,
}

/// The platform's defaults for per-server gateway settings (flags of `skyport serve`), shown
/// beside a server's own choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerDefaults {
    /// Whether the gateway requires a credential.
    pub auth: bool,
    /// How long a request may take.
    pub request_timeout: Duration,
}

/// How the application is exposed.
#[derive(Clone, Debug)]
pub struct AppOptions {
    /// Skyport listens only on loopback: requests must then name a loopback host, which stops
    /// web pages from reaching it through DNS rebinding.
    pub loopback_only: bool,
}

/// The whole application.
pub fn app(state: AppState, gateway: &Gateway, options: &AppOptions) -> Router {
    let state_for_hooks = state.clone();
    let api = api::router()
        .merge(audit::router())
        .merge(promotions::router())
        .merge(users::router())
        .merge(grants::router())
        .merge(policies::router())
        .merge(remixes::router())
        .merge(agents::router())
        .merge(oauth_clients::router())
        .merge(registry::router())
        .merge(chat::router())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        // A login authenticates by password: it is how a user without a key gets one.
        .merge(users::login_router())
        .layer(Extension(gateway.clone()))
        .with_state(state.clone());
    let ui = ui::router(ui::UiState {
        app: state.clone(),
        upstreams: ui::Upstreams {
            api: api.clone(),
            gateway: gateway.router(),
        },
        logins: ui::LoginLimiter::default(),
    });
    // The official registry API has its own path, behind the same keys as `/api/v1`.
    let registry_api = registry_api::router()
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .with_state(state.clone());
    // Metrics name every server: open on loopback (like any local tool), else behind a key.
    let metrics = Router::new()
        .route("/metrics", get(api::metrics))
        .layer(Extension(gateway.clone()));
    let metrics = if options.loopback_only {
        metrics.with_state(state)
    } else {
        metrics
            .route_layer(middleware::from_fn_with_state(
                state.clone(),
                auth::require_key,
            ))
            .with_state(state)
    };
    // The OpenAI-compatible facade authenticates by API key too, but answers errors in
    // OpenAI's shape, so it checks the key itself.
    let facade = chat::facade_router()
        .layer(Extension(gateway.clone()))
        .with_state(state_for_hooks.clone());
    let app = Router::new()
        .route("/healthz", get(api::health))
        .merge(facade)
        .merge(registry_api)
        .merge(metrics)
        .nest("/api/v1", api)
        // Webhooks authenticate by signature, not by API key.
        .merge(hooks::router().with_state(state_for_hooks.clone()))
        // OAuth is how clients without a key get a credential.
        .merge(oauth::router().with_state(state_for_hooks))
        .merge(gateway.router())
        .merge(ui);
    if options.loopback_only {
        app.layer(middleware::from_fn(host::loopback_only))
    } else {
        app
    }
}

#[cfg(test)]
mod tests;
