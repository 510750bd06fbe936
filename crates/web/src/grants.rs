//! `/api/v1/servers/{name}/access`: a server's default role and its grants, read by anyone
//! who sees the server and changed by its admins.

use axum::extract::{Path, State};
use axum::routing::{delete, get, put};
use axum::{Extension, Json, Router};
use serde_json::json;
use skyport_api::{AccessView, GrantView, SetDefaultRole};
use skyport_store::{ControlAction, Grantee, NewControlEvent, Principal, Server, ServerRole};

use crate::access::{Permission, authorize};
use crate::{ApiError, AppState, control};

/// The access routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/servers/{name}/access", get(show))
        .route("/servers/{name}/access/grants", axum::routing::post(grant))
        .route("/servers/{name}/access/grants/{who}", delete(revoke))
        .route("/servers/{name}/access/default", put(set_default))
}

async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<AccessView>, ApiError> {
    let server = authorize(&state, &caller, &name, Permission::View).await?;
    view(&state, &server).await
}

async fn grant(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<GrantView>,
) -> Result<Json<AccessView>, ApiError> {
    let server = authorize(&state, &caller, &name, Permission::Access).await?;
    let role = parse_role(&body.role)?.ok_or_else(|| {
        ApiError::BadRequest(format!(
            "'none' is not a role to grant; remove the grant with `skyport access revoke {} {}`",
            server.name, body.who
        ))
    })?;
    let grantee = Grantee::parse(body.who.trim());
    let before = role_of(&state, &server, &grantee).await?;
    state
        .store
        .access()
        .grant(&server.id, &grantee, role)
        .await?;
    let event = NewControlEvent::new(&caller, ControlAction::AccessGrant, Some(&server.name))
        .subject(grantee.to_string())
        .before(json!({ "role": before }))
        .after(json!({ "role": role.as_str() }));
    control::record(&state, event).await;
    view(&state, &server).await
}

async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path((name, who)): Path<(String, String)>,
) -> Result<Json<AccessView>, ApiError> {
    let server = authorize(&state, &caller, &name, Permission::Access).await?;
    let grantee = Grantee::parse(&who);
    let before = role_of(&state, &server, &grantee).await?;
    if !state.store.access().revoke(&server.id, &grantee).await? {
        return Err(ApiError::NotFound(format!(
            "{grantee} has no grant on '{}'; `skyport access ls {}` lists the grants",
            server.name, server.name
        )));
    }
    let event = NewControlEvent::new(&caller, ControlAction::AccessRevoke, Some(&server.name))
        .subject(grantee.to_string())
        .before(json!({ "role": before }));
    control::record(&state, event).await;
    view(&state, &server).await
}

async fn set_default(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<SetDefaultRole>,
) -> Result<Json<AccessView>, ApiError> {
    let server = authorize(&state, &caller, &name, Permission::Access).await?;
    let role = parse_role(&body.role)?;
    let before = state
        .store
        .access()
        .of_server(&server.id)
        .await?
        .default_role;
    state.store.access().set_default(&server.id, role).await?;
    let name = |role: Option<ServerRole>| role.map_or("none", ServerRole::as_str);
    let event = NewControlEvent::new(&caller, ControlAction::AccessDefault, Some(&server.name))
        .before(json!({ "default_role": name(before) }))
        .after(json!({ "default_role": name(role) }));
    control::record(&state, event).await;
    view(&state, &server).await
}

/// The role granted to `grantee` on `server` now, for the audit log's `before`.
async fn role_of(
    state: &AppState,
    server: &Server,
    grantee: &Grantee,
) -> Result<Option<&'static str>, ApiError> {
    let access = state.store.access().of_server(&server.id).await?;
    Ok(access
        .grants
        .into_iter()
        .find(|g| g.grantee == *grantee)
        .map(|g| g.role.as_str()))
}

async fn view(state: &AppState, server: &Server) -> Result<Json<AccessView>, ApiError> {
    let access = state.store.access().of_server(&server.id).await?;
    Ok(Json(AccessView {
        server: server.name.to_string(),
        default_role: access
            .default_role
            .map_or("none", ServerRole::as_str)
            .to_owned(),
        grants: access
            .grants
            .into_iter()
            .map(|g| GrantView {
                who: g.grantee.to_string(),
                role: g.role.as_str().to_owned(),
            })
            .collect(),
    }))
}

/// A role name, or `none` (`None`).
fn parse_role(text: &str) -> Result<Option<ServerRole>, ApiError> {
    match text.trim() {
        "none" => Ok(None),
        role => role
            .parse()
            .map(Some)
            .map_err(|e: skyport_store::RoleError| {
                ApiError::BadRequest(format!("{e} (or none for the default role)"))
            }),
    }
}
