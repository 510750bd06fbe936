//! The web UI: server-rendered pages (maud) under `/ui/`, a few hand-written JavaScript
//! modules and one stylesheet embedded in the binary (`assets.rs`), behind a browser session.
//!
//! The UI is an in-process client of the REST API and of the gateway: a page reads the same
//! `/api/v1` views a CLI reads, every action the browser takes goes to `/ui/api/*` (the API
//! router, called with the session's key as bearer) or is a form posted to `/ui/…` whose
//! handler calls that same router (`forms.rs`), and the Inspector's MCP traffic goes to
//! `/ui/mcp/{name}` (the gateway's router, same key). So every page and action is authorized
//! by the handler the API would run (`access.rs`), and no credential reaches JavaScript.
//! This module must not run SQL, decide permissions, or add a cookie to `/servers/*`.

mod agents;
mod assets;
mod charts;
mod forms;
mod forward;
mod headers;
mod layout;
mod pages;
mod registry;
mod session;

use axum::Router;
use axum::middleware;
use axum::routing::{any, get, post};

use crate::AppState;
use pages::Tab;

pub(crate) use session::LoginLimiter;

/// The routers the UI forwards to, in-process.
#[derive(Clone)]
pub(crate) struct Upstreams {
    /// The `/api/v1` router (its paths without the prefix), with key authentication.
    pub(crate) api: Router,
    /// The gateway's router (`/servers/{name}/mcp`).
    pub(crate) gateway: Router,
}

/// What the UI's handlers share.
#[derive(Clone)]
pub(crate) struct UiState {
    pub(crate) app: AppState,
    pub(crate) upstreams: Upstreams,
    pub(crate) logins: LoginLimiter,
}

/// `/` (a redirect) and everything under `/ui/`.
pub(crate) fn router(state: UiState) -> Router {
    let behind_login = Router::new()
        .route("/ui/servers", get(pages::servers))
        .route("/ui/deploy", get(pages::deploy))
        .route("/ui/servers/{name}", pages::plain_tab(Tab::Overview))
        .route(
            "/ui/servers/{name}/deployments",
            pages::plain_tab(Tab::Deployments),
        )
        .route("/ui/servers/{name}/logs", pages::plain_tab(Tab::Logs))
        .route(
            "/ui/servers/{name}/inspector",
            pages::plain_tab(Tab::Inspector),
        )
        .route("/ui/servers/{name}/chat", pages::plain_tab(Tab::Chat))
        .route("/ui/servers/{name}/metrics", get(pages::metrics))
        .route(
            "/ui/servers/{name}/env",
            get(pages::env).post(forms::env_set),
        )
        .route("/ui/servers/{name}/env/unset", post(forms::env_unset))
        .route("/ui/servers/{name}/access", get(pages::access))
        .route("/ui/servers/{name}/access/grant", post(forms::grant))
        .route("/ui/servers/{name}/access/revoke", post(forms::revoke))
        .route("/ui/servers/{name}/policies", post(forms::policy_add))
        .route(
            "/ui/servers/{name}/policies/remove",
            post(forms::policy_remove),
        )
        .route("/ui/servers/{name}/audit", pages::plain_tab(Tab::Audit))
        .route("/ui/settings", get(pages::settings))
        .route("/ui/settings/keys", post(forms::key_create))
        .route("/ui/settings/keys/revoke", post(forms::key_revoke))
        .route("/ui/registry", get(registry::registry))
        .route("/ui/agents", get(agents::agents).post(agents::create))
        .route("/ui/agents/{name}", get(agents::chat))
        .route(
            "/ui/agents/{name}/edit",
            get(agents::edit_page).post(agents::update),
        )
        .route("/ui/agents/{name}/remove", post(agents::remove))
        .route("/ui/logout", post(session::logout))
        .route("/ui/api/{*path}", any(forward::api))
        .route("/ui/mcp/{name}", any(forward::mcp))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            session::require_session,
        ));
    Router::new()
        .route("/", get(pages::root))
        .route("/ui", get(pages::root))
        .route("/ui/", get(pages::root))
        .route("/ui/login", get(session::login_page).post(session::login))
        .route("/ui/assets/{hash}/{file}", get(assets::serve))
        .merge(behind_login)
        .layer(middleware::from_fn(session::same_origin_writes))
        .layer(middleware::from_fn(headers::security_headers))
        .with_state(state)
}

#[cfg(test)]
mod tests;
