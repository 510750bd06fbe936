//! Rollbacks and the record of promotions: `POST /api/v1/servers/{name}/rollback` and
//! `GET /api/v1/servers/{name}/promotions`.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::json;
use skyport_api::{DeploymentView, PromotionView, RollBack};
use skyport_build::RollbackError;
use skyport_store::{ControlAction, NewControlEvent, Principal, Promotion, RollbackRefusal};

use crate::access::{Permission, authorize};
use crate::api::existing_server;
use crate::{ApiError, AppState, control, views};

/// The rollback and promotion routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/servers/{name}/rollback", post(roll_back))
        .route("/servers/{name}/promotions", get(promotions))
}

/// Makes an earlier deployment live again; answers it, live.
async fn roll_back(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    body: Option<Json<RollBack>>,
) -> Result<Json<DeploymentView>, ApiError> {
    let server = authorize(&state, &caller, &name, Permission::Rollback).await?;
    let chosen = body.and_then(|Json(body)| body.deployment);
    let target = state
        .builder
        .roll_back(&server, chosen.as_deref(), &caller.id)
        .await
        .map_err(rollback_error)?;
    let event = NewControlEvent::new(&caller, ControlAction::Rollback, Some(&server.name))
        .subject(target.id.as_str())
        .before(json!({ "live": server.live_deployment }))
        .after(json!({ "live": target.id }));
    control::record(&state, event).await;
    let server = existing_server(&state, &name).await?;
    Ok(Json(views::deployment(target, &server)))
}

async fn promotions(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Vec<PromotionView>>, ApiError> {
    let server = authorize(&state, &caller, &name, Permission::View).await?;
    let promotions = state.store.deployments().promotions(&server.id).await?;
    Ok(Json(promotions.into_iter().map(promotion).collect()))
}

fn promotion(promotion: Promotion) -> PromotionView {
    PromotionView {
        deployment: promotion.deployment,
        previous: promotion.previous,
        kind: promotion.kind,
        by: promotion.by.map(views::actor),
        at: promotion.at,
    }
}

/// Unknown deployments are not found; everything else a rollback refuses conflicts with the
/// deployment's state.
fn rollback_error(error: RollbackError) -> ApiError {
    match error {
        RollbackError::Refused(refusal @ RollbackRefusal::Unknown { .. }) => {
            ApiError::NotFound(refusal.to_string())
        }
        RollbackError::Refused(refusal) => ApiError::Conflict(refusal.to_string()),
        RollbackError::Start { .. } => ApiError::Conflict(error.to_string()),
        RollbackError::Store(e) => ApiError::Store(e),
    }
}
