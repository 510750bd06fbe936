//! `/api/v1/users`, `/api/v1/groups` (organisation admins) and `/api/v1/login` (anyone with
//! a password: it answers a new API key).
//!
//! Passwords go straight to the store, which keeps only their hash; a generated password is
//! answered once, when the user is created. A failed login does not say whether the user
//! exists.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json, Router};
use skyport_api::{CreateGroup, CreateUser, GroupView, KeyCreated, Login, UserCreated, UserView};
use skyport_store::{
    Account, AccountError, Group, NewPrincipal, Principal, PrincipalKind, generate_password,
};

use crate::access::require_org_admin;
use crate::{ApiError, AppState, keys};

/// The user and group routes (behind API-key authentication).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{name}", delete(remove))
        .route("/groups", get(groups).post(create_group))
        .route("/groups/{name}", delete(remove_group))
        .route(
            "/groups/{name}/members/{member}",
            put(add_member).delete(remove_member),
        )
}

/// `POST /login`, which authenticates by password instead of a key.
pub(crate) fn login_router() -> Router<AppState> {
    Router::new().route("/login", post(login))
}

/// Most characters a password may have: argon2 takes any length, but a megabyte of
/// "password" is abuse.
const MAX_PASSWORD: usize = 1024;

/// The name every key made by a login gets, so `skyport keys ls` tells them apart.
const LOGIN_KEY_NAME: &str = "login";

async fn login(
    State(state): State<AppState>,
    Json(body): Json<Login>,
) -> Result<(StatusCode, Json<KeyCreated>), ApiError> {
    if body.password.len() > MAX_PASSWORD {
        return Err(ApiError::WrongLogin);
    }
    let principal = state
        .store
        .users()
        .verify_password(body.user.trim(), &body.password)
        .await?
        .ok_or(ApiError::WrongLogin)?;
    let (key, secret) = state
        .store
        .keys()
        .create(&principal.id, LOGIN_KEY_NAME, None)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(KeyCreated {
            key: keys::view(key),
            secret,
        }),
    ))
}

async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<Vec<UserView>>, ApiError> {
    require_org_admin(&caller, "list users")?;
    let accounts = state.store.users().list().await?;
    Ok(Json(accounts.into_iter().map(user_view).collect()))
}

async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Json(body): Json<CreateUser>,
) -> Result<(StatusCode, Json<UserCreated>), ApiError> {
    require_org_admin(&caller, "create users")?;
    let kind = if body.service {
        PrincipalKind::Service
    } else {
        PrincipalKind::User
    };
    if body
        .password
        .as_ref()
        .is_some_and(|p| p.len() > MAX_PASSWORD)
    {
        return Err(ApiError::BadRequest(
            "the password is longer than 1024 characters; choose a shorter one".to_owned(),
        ));
    }
    if body.password.as_ref().is_some_and(String::is_empty) {
        return Err(ApiError::BadRequest(
            "the password is empty; leave it out for a generated one".to_owned(),
        ));
    }
    let generated =
        (kind == PrincipalKind::User && body.password.is_none()).then(generate_password);
    let new = NewPrincipal {
        name: body.name.trim(),
        email: body
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty()),
        kind,
        is_admin: body.admin,
    };
    let password = body.password.as_deref().or(generated.as_deref());
    let principal = state.store.users().create(&new, password).await?;
    let account = state
        .store
        .users()
        .list()
        .await?
        .into_iter()
        .find(|a| a.principal.id == principal.id)
        .ok_or_else(|| AccountError::NoPrincipal(principal.name.clone()))?;
    let user = user_view(account);
    Ok((
        StatusCode::CREATED,
        Json(UserCreated {
            user,
            password: generated,
        }),
    ))
}

async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_org_admin(&caller, "remove users")?;
    state.store.users().remove(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn groups(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<Vec<GroupView>>, ApiError> {
    require_org_admin(&caller, "list groups")?;
    let groups = state.store.users().groups().await?;
    Ok(Json(groups.into_iter().map(group_view).collect()))
}

async fn create_group(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Json(body): Json<CreateGroup>,
) -> Result<(StatusCode, Json<GroupView>), ApiError> {
    require_org_admin(&caller, "create groups")?;
    let group = state.store.users().create_group(body.name.trim()).await?;
    Ok((StatusCode::CREATED, Json(group_view(group))))
}

async fn remove_group(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_org_admin(&caller, "remove groups")?;
    state.store.users().remove_group(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_member(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path((group, member)): Path<(String, String)>,
) -> Result<Json<GroupView>, ApiError> {
    require_org_admin(&caller, "change groups")?;
    state.store.users().add_member(&group, &member).await?;
    current_group(&state, &group).await
}

async fn remove_member(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path((group, member)): Path<(String, String)>,
) -> Result<Json<GroupView>, ApiError> {
    require_org_admin(&caller, "change groups")?;
    state.store.users().remove_member(&group, &member).await?;
    current_group(&state, &group).await
}

async fn current_group(state: &AppState, name: &str) -> Result<Json<GroupView>, ApiError> {
    state
        .store
        .users()
        .groups()
        .await?
        .into_iter()
        .find(|g| g.name == name)
        .map(|g| Json(group_view(g)))
        .ok_or_else(|| AccountError::NoGroup(name.to_owned()).into())
}

fn user_view(account: Account) -> UserView {
    let p = account.principal;
    UserView {
        name: p.name,
        kind: p.kind.as_str().to_owned(),
        email: p.email,
        admin: p.is_admin,
        groups: account.groups,
        created_at: account.created_at,
    }
}

fn group_view(group: Group) -> GroupView {
    GroupView {
        name: group.name,
        members: group.members,
    }
}
