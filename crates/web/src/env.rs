//! `/api/v1/servers/{name}/env` (list, set, remove a server's variables and secrets) and
//! `/api/v1/servers/{name}/redeploy` (a new deployment from the live one's source, which is how
//! a change of variables takes effect).
//!
//! A secret's value is accepted and never answered: listings come from the store without it.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use skyport_api::{DeploymentView, EnvAssignment, EnvChanged, EnvList, EnvVarView, SetEnv};
use skyport_store::{
    ControlAction, EnvEntry, EnvKey, EnvScope, NewControlEvent, NewEnvVar, Principal, Server,
    ServerName,
};

use crate::access::{Permission, authorize};
use crate::{ApiError, AppState, control, views};

/// Query of the listing and removal endpoints.
#[derive(Debug, Deserialize)]
pub(crate) struct ScopeParams {
    /// One scope; every scope when listing without it, production when removing without it.
    scope: Option<String>,
    /// Redeploy after removing.
    #[serde(default)]
    redeploy: bool,
}

/// `GET /api/v1/servers/{name}/env`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    Query(params): Query<ScopeParams>,
) -> Result<Json<EnvList>, ApiError> {
    let server = authorize(&state, &caller, &name, Permission::Env).await?;
    let scope = params
        .scope
        .as_deref()
        .map(str::parse::<EnvScope>)
        .transpose()?;
    let vars = state.store.env().list(&server.id, scope.as_ref()).await?;
    Ok(Json(EnvList {
        server: server.name,
        vars: vars.into_iter().map(view).collect(),
    }))
}

/// `PUT /api/v1/servers/{name}/env`: sets the variables, then redeploys when asked.
pub(crate) async fn set(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<SetEnv>,
) -> Result<Json<EnvChanged>, ApiError> {
    let scope = parse_scope(body.scope.as_deref())?;
    let vars = parse_assignments(&body.vars)?;
    if vars.is_empty() {
        return Err(ApiError::BadRequest(
            "no variables given; send at least one {name, value}".to_owned(),
        ));
    }
    let server = authorize(&state, &caller, &name, Permission::Env).await?;
    refuse_preview(&state, &server).await?;
    check_redeploy(&server, &scope, body.redeploy)?;
    set_recorded(&state, &caller, &server, &scope, &vars).await?;
    let changed = vars.iter().map(|v| v.name().to_string()).collect();
    changed_answer(&state, &caller, server, &scope, changed, body.redeploy).await
}

/// `DELETE /api/v1/servers/{name}/env/{key}?scope=…`: removes one variable.
pub(crate) async fn unset(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path((name, key)): Path<(String, String)>,
    Query(params): Query<ScopeParams>,
) -> Result<Json<EnvChanged>, ApiError> {
    let scope = parse_scope(params.scope.as_deref())?;
    let key: EnvKey = key.parse()?;
    let server = authorize(&state, &caller, &name, Permission::Env).await?;
    refuse_preview(&state, &server).await?;
    check_redeploy(&server, &scope, params.redeploy)?;
    let removed = state
        .store
        .env()
        .unset(&server.id, &scope, std::slice::from_ref(&key))
        .await?;
    if removed.is_empty() {
        return Err(ApiError::NotFound(format!(
            "{key} is not set in the {scope} scope of '{}'; `skyport env ls {}` lists what is",
            server.name, server.name
        )));
    }
    for key in &removed {
        let event = NewControlEvent::env_unset(&caller, &server.name, &scope, key);
        control::record(&state, event).await;
    }
    let changed = removed.iter().map(ToString::to_string).collect();
    changed_answer(&state, &caller, server, &scope, changed, params.redeploy).await
}

/// `POST /api/v1/servers/{name}/redeploy`: a new deployment from the live one's source, with
/// the server's variables as they are now.
pub(crate) async fn redeploy(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<DeploymentView>), ApiError> {
    let server = authorize(&state, &caller, &name, Permission::Deploy).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(redeploy_recorded(&state, &caller, &server).await?),
    ))
}

/// A new deployment from the live one's source, recorded as `caller`'s `redeploy`.
async fn redeploy_recorded(
    state: &AppState,
    caller: &Principal,
    server: &Server,
) -> Result<DeploymentView, ApiError> {
    let deployment = state.builder.redeploy(server).await?;
    let view = views::deployment(deployment, server);
    control::build_started(state, caller, ControlAction::Redeploy, server, &view).await;
    Ok(view)
}

/// Sets the production variables a deploy request carries (before its build starts).
pub(crate) async fn set_for_deploy(
    state: &AppState,
    caller: &Principal,
    server: &Server,
    vars: &[NewEnvVar],
) -> Result<(), ApiError> {
    if !vars.is_empty() {
        set_recorded(state, caller, server, &EnvScope::Production, vars).await?;
    }
    Ok(())
}

/// Refuses a deploy while a variable the server cannot start without is unset: in `given`
/// (set by this deploy) or already in the production scope of `server` (when it exists).
pub(crate) async fn require(
    state: &AppState,
    name: &ServerName,
    server: Option<&Server>,
    given: &[NewEnvVar],
    required: &[String],
) -> Result<(), ApiError> {
    if required.is_empty() {
        return Ok(());
    }
    let stored = match server {
        Some(server) => {
            state
                .store
                .env()
                .list(&server.id, Some(&EnvScope::Production))
                .await?
        }
        None => Vec::new(),
    };
    let missing: Vec<&str> = required
        .iter()
        .map(String::as_str)
        .filter(|name| {
            !given.iter().any(|v| v.name().as_str() == *name)
                && !stored.iter().any(|v| v.name == *name)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let server_name = name;
    let how: Vec<String> = missing
        .iter()
        .map(|name| format!("  skyport env set {server_name} {name}=VALUE [--secret]"))
        .collect();
    Err(ApiError::BadRequest(format!(
        "the server needs {} to be set before it is deployed: {}; set {} with\n{}\n(or pass --env {}=VALUE to the deploy), then deploy again",
        if missing.len() == 1 {
            "this environment variable"
        } else {
            "these environment variables"
        },
        missing.join(", "),
        if missing.len() == 1 { "it" } else { "each" },
        how.join("\n"),
        missing[0]
    )))
}

/// Sets `vars` and records each as `caller`'s `env.set` or `secret.set`, saying whether it
/// replaced a variable (and whether that was a secret); values are never recorded.
async fn set_recorded(
    state: &AppState,
    caller: &Principal,
    server: &Server,
    scope: &EnvScope,
    vars: &[NewEnvVar],
) -> Result<(), ApiError> {
    let existing = state.store.env().list(&server.id, Some(scope)).await?;
    state.store.env().set(&server.id, scope, vars).await?;
    for var in vars {
        let was = existing
            .iter()
            .find(|e| e.name == var.name().as_str())
            .map(|e| e.secret);
        let event = NewControlEvent::env_set(caller, &server.name, scope, var, was);
        control::record(state, event).await;
    }
    Ok(())
}

/// Checks names and values of assignments, in order; the first bad one is the error.
pub(crate) fn parse_assignments(vars: &[EnvAssignment]) -> Result<Vec<NewEnvVar>, ApiError> {
    vars.iter()
        .map(|v| Ok(NewEnvVar::new(v.name.parse()?, v.value.clone(), v.secret)?))
        .collect()
}

/// A preview's builds read its parent's variables, so variables set on the preview itself
/// would never be used: the error says where to set them instead.
async fn refuse_preview(state: &AppState, server: &Server) -> Result<(), ApiError> {
    let Some(preview) = &server.preview else {
        return Ok(());
    };
    let parent = match state.store.servers().by_id(&preview.parent).await? {
        Some(parent) => parent.name.to_string(),
        None => "its parent".to_owned(),
    };
    Err(ApiError::BadRequest(format!(
        "'{}' is a preview of '{parent}', whose variables it uses; set them there: `skyport env set {parent} KEY=VALUE --scope branch:{}` (or --scope preview for every preview)",
        server.name, preview.branch
    )))
}

/// A redeploy after a change is asked for before anything changes, so that a request that
/// cannot redeploy changes nothing.
fn check_redeploy(server: &Server, scope: &EnvScope, redeploy: bool) -> Result<(), ApiError> {
    if !redeploy {
        return Ok(());
    }
    if *scope != EnvScope::Production {
        return Err(ApiError::BadRequest(format!(
            "redeploy rebuilds the production deployment, which does not use the {scope} scope; leave --redeploy out (previews take the change when they are built again)"
        )));
    }
    if server.live_deployment.is_none() {
        return Err(ApiError::Conflict(format!(
            "server '{}' has no live deployment to build again; leave --redeploy out and deploy it with `skyport deploy SOURCE --name {}`",
            server.name, server.name
        )));
    }
    Ok(())
}

fn parse_scope(scope: Option<&str>) -> Result<EnvScope, ApiError> {
    Ok(scope
        .map(str::parse)
        .transpose()?
        .unwrap_or(EnvScope::Production))
}

/// What a change answers: a redeploy when asked (and possible), else what to do for it to
/// take effect.
async fn changed_answer(
    state: &AppState,
    caller: &Principal,
    server: Server,
    scope: &EnvScope,
    changed: Vec<String>,
    redeploy: bool,
) -> Result<Json<EnvChanged>, ApiError> {
    let deployment = if redeploy {
        Some(redeploy_recorded(state, caller, &server).await?)
    } else {
        None
    };
    let note = match (&deployment, scope) {
        (Some(_), _) => String::new(),
        (None, EnvScope::Production) => format!(
            "takes effect on the next deployment; run the same `skyport env` command with --redeploy, or deploy '{}' again",
            server.name
        ),
        (None, _) => format!(
            "takes effect on the next {scope} deployment of '{}' (previews are built when their branch is pushed)",
            server.name
        ),
    };
    Ok(Json(EnvChanged {
        server: server.name,
        scope: scope.to_string(),
        changed,
        note,
        deployment,
    }))
}

fn view(entry: EnvEntry) -> EnvVarView {
    EnvVarView {
        name: entry.name,
        scope: entry.scope.to_string(),
        secret: entry.secret,
        value: entry.value,
        updated_at: entry.updated_at,
    }
}
