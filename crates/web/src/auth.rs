//! API authentication: every `/api/v1` request carries an API key as a bearer token; the
//! principal it acts as goes into the request's extensions for handlers that need it.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, header};
use skyport_store::Principal;

use crate::{ApiError, AppState};

/// Lets the request through when it carries a valid API key.
pub(crate) async fn require_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match principal(&state, request.headers()).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

/// The principal whose API key `headers` carry as a bearer token.
pub(crate) async fn principal(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    let secret = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    state
        .store
        .keys()
        .authenticate(secret)
        .await?
        .ok_or(ApiError::Unauthorized)
}
