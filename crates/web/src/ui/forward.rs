//! The browser's way to the REST API and the gateway: a request to `/ui/api/PATH` or
//! `/ui/mcp/NAME` is sent, in-process, to the API router (`/PATH`) or the gateway's router
//! (`/servers/NAME/mcp`) with the session's key as its bearer credential and only the headers
//! those need. The answer (streams included) comes back as it is.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use http::{HeaderValue, header};
use tower::ServiceExt;

use super::UiState;
use super::session::Session;

/// Headers a browser request keeps on its way in: what the API and MCP read.
const KEPT: [&str; 7] = [
    "accept",
    "content-type",
    "last-event-id",
    "mcp-session-id",
    "mcp-protocol-version",
    "mcp-method",
    "mcp-name",
];

/// `ANY /ui/api/{*path}`.
pub(crate) async fn api(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Path(path): Path<String>,
    request: Request,
) -> Response {
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    send(
        &state.upstreams.api,
        &session,
        &format!("/{path}{query}"),
        request,
    )
    .await
}

/// `ANY /ui/mcp/{name}`.
pub(crate) async fn mcp(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    request: Request,
) -> Response {
    send(
        &state.upstreams.gateway,
        &session,
        &format!("/servers/{name}/mcp"),
        request,
    )
    .await
}

/// Calls `router` with `request`'s method, body and kept headers at `uri`, as the session.
pub(crate) async fn send(
    router: &Router,
    session: &Session,
    uri: &str,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let mut builder = http::Request::builder().method(parts.method).uri(uri);
    for name in KEPT {
        for value in parts.headers.get_all(name) {
            builder = builder.header(name, value);
        }
    }
    if let Some(host) = parts.headers.get(header::HOST) {
        builder = builder.header(header::HOST, host);
    }
    let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {}", session.secret)) else {
        return crate::ApiError::Unauthorized.into_response();
    };
    builder = builder.header(header::AUTHORIZATION, bearer);
    match builder.body(Body::new(body)) {
        Ok(inner) => match router.clone().oneshot(inner).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        Err(_) => internal("the request could not be forwarded"),
    }
}

/// A JSON answer of the API to a GET of `path`, as the session; `Err` is the API's refusal.
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    state: &UiState,
    session: &Session,
    path: &str,
) -> Result<T, Response> {
    let request = Request::new(Body::empty());
    let response = send(&state.upstreams.api, session, path, request).await;
    if !response.status().is_success() {
        return Err(response);
    }
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .map_err(|_| internal("the API's answer was cut off"))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        tracing::error!("the UI could not read the API's answer to {path}: {e}");
        internal("the API's answer could not be read")
    })
}

fn internal(message: &'static str) -> Response {
    (http::StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
}

/// What a form's call to the API got: its JSON answer, or its refusal (status and message).
pub(crate) type Answer = Result<serde_json::Value, Refusal>;

/// The API's refusal of a call: its status and the message of its error body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: http::StatusCode,
    pub(crate) message: String,
}

/// Calls the API as the session: `method path` with `body` as JSON (none when `Null`).
pub(crate) async fn call(
    state: &UiState,
    session: &Session,
    method: http::Method,
    path: &str,
    body: &serde_json::Value,
) -> Answer {
    let mut request = Request::new(if body.is_null() {
        Body::empty()
    } else {
        Body::from(body.to_string())
    });
    *request.method_mut() = method;
    request.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let response = send(&state.upstreams.api, session, path, request).await;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .unwrap_or_default();
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if status.is_success() {
        return Ok(value);
    }
    let message = value["error"]["message"]
        .as_str()
        .map_or_else(|| status.to_string(), str::to_owned);
    Err(Refusal { status, message })
}

/// `text` as one path segment: everything but unreserved characters percent-encoded, so a
/// name typed in a form cannot reach another path.
pub(crate) fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
