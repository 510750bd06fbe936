//! API authentication: every `/api/v1` request carries an API key as a bearer token; the
//! principal it acts as goes into the request's extensions for handlers that need it.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header;

use crate::{ApiError, AppState};

/// Lets the request through when it carries a valid API key.
pub(crate) async fn require_key(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let secret = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(secret) = secret else {
        return ApiError::Unauthorized.into_response();
    };
    match state.store.keys().authenticate(secret).await {
        Ok(Some(principal)) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Ok(None) => ApiError::Unauthorized.into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
