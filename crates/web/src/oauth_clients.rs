//! `/api/v1/oauth/clients`: OAuth clients for service accounts (organisation admins), whose
//! `client_credentials` tokens act as the account. The secret is in the creation answer, once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use skyport_api::{CreateOAuthClient, OAuthClientCreated, OAuthClientView};
use skyport_oauth::OAuthError;
use skyport_store::{AccountError, ControlAction, NewControlEvent, OAuthClient, Principal};

use crate::access::require_org_admin;
use crate::{ApiError, AppState, control};

/// The routes (behind API-key authentication).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth/clients", get(list).post(create))
        .route("/oauth/clients/{id}", delete(remove))
}

async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<Vec<OAuthClientView>>, ApiError> {
    require_org_admin(&caller, "list OAuth clients")?;
    let clients = state.store.oauth().service_clients().await?;
    let mut views = Vec::with_capacity(clients.len());
    for client in clients {
        views.push(view(&state, client).await?);
    }
    Ok(Json(views))
}

async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Json(body): Json<CreateOAuthClient>,
) -> Result<(StatusCode, Json<OAuthClientCreated>), ApiError> {
    require_org_admin(&caller, "create OAuth clients")?;
    let account = state
        .store
        .users()
        .get(body.account.trim())
        .await?
        .ok_or_else(|| AccountError::NoPrincipal(body.account.clone()))?;
    let name = body.name.as_deref().unwrap_or(&account.name);
    let made = state
        .oauth
        .create_service_client(&account, name)
        .await
        .map_err(|e| match e {
            OAuthError::Store(e) => ApiError::Store(e),
            other => ApiError::BadRequest(other.to_string()),
        })?;
    let event = NewControlEvent::new(&caller, ControlAction::OAuthClientCreate, None)
        .subject(&made.client.id);
    control::record(&state, event).await;
    Ok((
        StatusCode::CREATED,
        Json(OAuthClientCreated {
            client: view(&state, made.client).await?,
            client_secret: made.secret,
            token_endpoint: format!("{}/oauth/token", state.oauth.issuer()),
        }),
    ))
}

async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_org_admin(&caller, "remove OAuth clients")?;
    if !state.store.oauth().remove_client(&id).await? {
        return Err(ApiError::NotFound(format!(
            "no OAuth client {id}; `skyport oauth clients ls` lists them"
        )));
    }
    let event = NewControlEvent::new(&caller, ControlAction::OAuthClientRemove, None).subject(&id);
    control::record(&state, event).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn view(state: &AppState, client: OAuthClient) -> Result<OAuthClientView, ApiError> {
    let account = match &client.principal {
        Some(id) => state
            .store
            .users()
            .by_id(id)
            .await?
            .map_or_else(|| id.to_string(), |p| p.name),
        None => String::new(),
    };
    Ok(OAuthClientView {
        client_id: client.id,
        name: client.name,
        account,
        created_at: client.created_at,
    })
}
