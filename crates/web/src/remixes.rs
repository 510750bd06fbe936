//! Remix servers: `POST /api/v1/remixes`, `GET` and `PATCH /api/v1/remixes/{name}`.
//!
//! A remix is parsed into a `RemixSpec` here, at the edge. Creating one needs the right to
//! see each source (viewer or more on it): a remix shows its sources' tools to whoever may
//! use the remix, so only someone who sees them may publish them. Its creator becomes its
//! admin; editing it takes admin on the remix (and, for new sources, viewer on each). Who may
//! *use* a remix is decided by roles on the remix alone.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::json;
use skyport_api::{CreateRemix, EditRemix, RemixView};
use skyport_store::{
    ControlAction, Grantee, NewControlEvent, Principal, Remix, RemixError, RemixSpec, ServerName,
    ServerRole, SourceSpec,
};

use crate::access::{Permission, authorize, require};
use crate::api::existing_server;
use crate::{ApiError, AppState, control};

/// The remix routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/remixes", post(create))
        .route("/remixes/{name}", get(show).patch(edit))
}

/// Creates a remix; answers it.
async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Json(body): Json<CreateRemix>,
) -> Result<(StatusCode, Json<RemixView>), ApiError> {
    let spec = RemixSpec::new(body.sources)?;
    may_see_sources(&state, &caller, &spec).await?;
    let remix = state
        .store
        .remixes()
        .create(&body.name, &body.description, &spec)
        .await?;
    let creator = Grantee::Principal(caller.name.clone());
    state
        .store
        .access()
        .grant(&remix.server.id, &creator, ServerRole::Admin)
        .await?;
    let event = NewControlEvent::new(&caller, ControlAction::ServerSettings, Some(&body.name))
        .after(described(&remix));
    control::record(&state, event).await;
    Ok((StatusCode::CREATED, Json(view(&state, remix))))
}

/// A remix with its sources.
async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<RemixView>, ApiError> {
    let server = authorize(&state, &caller, &name, Permission::View).await?;
    let remix = remix(&state, &server.name).await?;
    Ok(Json(view(&state, remix)))
}

/// Changes a remix's description or replaces its sources; answers it.
async fn edit(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<EditRemix>,
) -> Result<Json<RemixView>, ApiError> {
    let spec = body.sources.map(RemixSpec::new).transpose()?;
    let server = authorize(&state, &caller, &name, Permission::Settings).await?;
    let before = remix(&state, &server.name).await?;
    if let Some(spec) = &spec {
        may_see_sources(&state, &caller, spec).await?;
    }
    let after = state
        .store
        .remixes()
        .update(&server.name, body.description.as_deref(), spec.as_ref())
        .await?;
    let event = NewControlEvent::new(&caller, ControlAction::ServerSettings, Some(&server.name))
        .before(described(&before))
        .after(described(&after));
    control::record(&state, event).await;
    Ok(Json(view(&state, after)))
}

/// Refuses unless `caller` may see every source of `spec`.
async fn may_see_sources(
    state: &AppState,
    caller: &Principal,
    spec: &RemixSpec,
) -> Result<(), ApiError> {
    for source in spec.sources() {
        let server = existing_server(state, source.server.as_str()).await?;
        require(state, caller, &server, Permission::View).await?;
    }
    Ok(())
}

/// Remix `name` (a server of another kind is not one).
async fn remix(state: &AppState, name: &ServerName) -> Result<Remix, ApiError> {
    state
        .store
        .remixes()
        .get(name)
        .await?
        .ok_or_else(|| RemixError::NotFound(name.clone()).into())
}

/// What the control audit log shows of a remix.
fn described(remix: &Remix) -> serde_json::Value {
    let sources: Vec<&SourceSpec> = remix.sources.iter().map(|s| &s.spec).collect();
    json!({
        "kind": "remix",
        "description": remix.server.description,
        "sources": sources,
    })
}

fn view(state: &AppState, remix: Remix) -> RemixView {
    RemixView {
        url: format!("{}/servers/{}/mcp", state.public_url, remix.server.name),
        name: remix.server.name,
        description: remix.server.description,
        sources: remix.sources.into_iter().map(|s| s.spec).collect(),
        created_at: remix.server.created_at,
        updated_at: remix.server.updated_at,
    }
}
