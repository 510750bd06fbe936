//! `/api/v1/servers/{name}/access`: a server's default role and its grants, read by anyone
//! who sees the server and changed by its admins.

use axum::extract::{Path, State};
use axum::routing::{delete, get, put};
use axum::{Extension, Json, Router};
use skyport_api::{AccessView, GrantView, SetDefaultRole};
use skyport_store::{Grantee, Principal, Server, ServerRole};

use crate::access::{Permission, authorize};
use crate::{ApiError, AppState};

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
    state
        .store
        .access()
        .grant(&server.id, &grantee, role)
        .await?;
    view(&state, &server).await
}

async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path((name, who)): Path<(String, String)>,
) -> Result<Json<AccessView>, ApiError> {
    let server = authorize(&state, &caller, &name, Permission::Access).await?;
    let grantee = Grantee::parse(&who);
    if !state.store.access().revoke(&server.id, &grantee).await? {
        return Err(ApiError::NotFound(format!(
            "{grantee} has no grant on '{}'; `skyport access ls {}` lists the grants",
            server.name, server.name
        )));
    }
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
    state.store.access().set_default(&server.id, role).await?;
    view(&state, &server).await
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
