//! Tool-level policies of a server: `GET/POST /api/v1/servers/{name}/policies` and
//! `DELETE /api/v1/servers/{name}/policies/{id}`.
//!
//! Rules arrive as text in the rule language and are parsed here, at the edge; a part that does
//! not parse is a 400 saying what to write instead. The gateway picks changes up from the
//! store's change feed.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use serde_json::json;
use skyport_api::{CreatePolicy, PolicyView};
use skyport_store::{
    ControlAction, NewControlEvent, NewPolicyRule, PolicyId, PolicyRule, Principal,
};

use crate::access::{Permission, authorize};
use crate::{ApiError, AppState, control, views};

/// The policy routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/servers/{name}/policies", get(list).post(add))
        .route("/servers/{name}/policies/{id}", delete(remove))
}

/// The server's rules, oldest first.
async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Vec<PolicyView>>, ApiError> {
    let server = authorize(&state, &caller, &name, Permission::Access).await?;
    let rules = state.store.policies().list(&server.id).await?;
    Ok(Json(rules.into_iter().map(view).collect()))
}

/// Adds a rule; answers it.
async fn add(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<CreatePolicy>,
) -> Result<(StatusCode, Json<PolicyView>), ApiError> {
    let rule = NewPolicyRule {
        effect: body.effect.trim().parse()?,
        selector: body.selector.trim().parse()?,
        capability: body.capability.trim().parse()?,
    };
    let server = authorize(&state, &caller, &name, Permission::Access).await?;
    let added = state
        .store
        .policies()
        .add(&server.id, &rule, Some(&caller.id))
        .await?;
    let event = NewControlEvent::new(&caller, ControlAction::PolicyAdd, Some(&server.name))
        .subject(added.id.as_str())
        .after(described(&added));
    control::record(&state, event).await;
    Ok((StatusCode::CREATED, Json(view(added))))
}

/// Removes a rule; answers it, removed.
async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<PolicyView>, ApiError> {
    let server = authorize(&state, &caller, &name, Permission::Access).await?;
    let not_found = || {
        ApiError::NotFound(format!(
            "'{name}' has no policy rule '{id}'; `skyport policy ls {name}` lists them"
        ))
    };
    let id: PolicyId = id.parse().map_err(|_| not_found())?;
    let removed = state
        .store
        .policies()
        .remove(&server.id, &id)
        .await?
        .ok_or_else(not_found)?;
    let event = NewControlEvent::new(&caller, ControlAction::PolicyRemove, Some(&server.name))
        .subject(removed.id.as_str())
        .before(described(&removed));
    control::record(&state, event).await;
    Ok(Json(view(removed)))
}

/// What the audit log shows of a rule.
fn described(rule: &PolicyRule) -> serde_json::Value {
    json!({
        "effect": rule.rule.effect,
        "selector": rule.rule.selector.to_string(),
        "capability": rule.rule.capability.to_string(),
    })
}

fn view(rule: PolicyRule) -> PolicyView {
    PolicyView {
        id: rule.id,
        effect: rule.rule.effect,
        selector: rule.rule.selector.to_string(),
        capability: rule.rule.capability.to_string(),
        created_at: rule.created_at,
        created_by: rule.created_by.map(views::actor),
    }
}
