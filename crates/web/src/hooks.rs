//! `POST /hooks/github/{name}`: GitHub-format webhooks that redeploy a server on push and
//! build and remove its previews. Not behind the API-key middleware: a delivery proves itself
//! with the HMAC-SHA256 of its body under the server's webhook secret, and a delivery that
//! does not is refused before anything is parsed.
//!
//! The handler reads like the others: extract, verify, parse (`github.rs`), hand the event to
//! the builder ([`skyport_build::Builder::react`]), map the outcome.

pub(crate) mod github;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use skyport_api::HookAnswer;
use skyport_build::Reaction;
use skyport_store::{Server, ServerName};

use crate::{ApiError, AppState};

use self::github::Delivery;

/// Largest delivery accepted. GitHub caps payloads at 25 MB, but pushes that large list
/// thousands of commits, none of which a build needs.
const MAX_DELIVERY_BYTES: usize = 5 * 1024 * 1024;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/hooks/github/{name}", post(github))
        .layer(DefaultBodyLimit::max(MAX_DELIVERY_BYTES))
}

async fn github(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<HookAnswer>), ApiError> {
    let server = hooked_server(&state, &name).await?;
    let body = body.map_err(|e| {
        ApiError::TooLarge(format!(
            "the delivery could not be read ({e}); deliveries of up to {} MiB are accepted",
            MAX_DELIVERY_BYTES / (1024 * 1024)
        ))
    })?;
    let secret = state
        .store
        .servers()
        .webhook_secret(&server.id)
        .await?
        .unwrap_or_default();
    github::verify(
        secret.as_bytes(),
        &body,
        header(&headers, "x-hub-signature-256"),
    )
    .map_err(|e| ApiError::BadSignature(e.to_string()))?;
    let event = header(&headers, "x-github-event").ok_or_else(|| {
        ApiError::BadRequest(
            "the delivery has no X-GitHub-Event header; send GitHub-format deliveries".to_owned(),
        )
    })?;
    let delivery = github::parse(event, &body).map_err(ApiError::BadRequest)?;
    let reaction = match delivery {
        Delivery::Ping => {
            return Ok(answer("ping", "pong: the webhook is set up"));
        }
        Delivery::Ignored(reason) => Reaction::Ignored(reason),
        Delivery::Event(event) => state.builder.react(&server, event).await?,
    };
    Ok(answered(&state, &server, reaction))
}

/// The server named `name`, if its webhook is on (it has a secret).
async fn hooked_server(state: &AppState, name: &str) -> Result<Server, ApiError> {
    let name: ServerName = name.parse()?;
    let server = state.store.servers().get(&name).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no server named '{name}'; deploy it first, then point the webhook at /hooks/github/{name}"
        ))
    })?;
    if !server.source.webhook {
        return Err(ApiError::NotFound(format!(
            "server '{name}' has no webhook secret, so its webhook is off; set one with `skyport servers set {name} --webhook-secret generate` and enter it as the webhook's secret"
        )));
    }
    Ok(server)
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn answered(
    state: &AppState,
    server: &Server,
    reaction: Reaction,
) -> (StatusCode, Json<HookAnswer>) {
    let url = |name: &ServerName| Some(format!("{}/servers/{name}/mcp", state.public_url));
    let (status, answer) = match reaction {
        Reaction::Production(deployment) => (
            StatusCode::ACCEPTED,
            HookAnswer {
                outcome: "production".to_owned(),
                url: url(&server.name),
                message: format!(
                    "building deployment {deployment} of '{}'; it goes live when the build succeeds",
                    server.name
                ),
                server: Some(server.name.clone()),
                deployment: Some(deployment),
            },
        ),
        Reaction::Preview {
            preview,
            deployment,
        } => (
            StatusCode::ACCEPTED,
            HookAnswer {
                outcome: "preview".to_owned(),
                url: url(&preview),
                message: format!("building deployment {deployment} of preview '{preview}'"),
                server: Some(preview),
                deployment: Some(deployment),
            },
        ),
        Reaction::PreviewRemoved(name) => (
            StatusCode::OK,
            HookAnswer {
                outcome: "removed".to_owned(),
                message: format!("removed preview '{name}'"),
                server: Some(name),
                deployment: None,
                url: None,
            },
        ),
        Reaction::Ignored(reason) => return answer("ignored", &format!("ignored: {reason}")),
    };
    (status, Json(answer))
}

/// A `200` answer that built nothing.
fn answer(outcome: &str, message: &str) -> (StatusCode, Json<HookAnswer>) {
    (
        StatusCode::OK,
        Json(HookAnswer {
            outcome: outcome.to_owned(),
            server: None,
            deployment: None,
            url: None,
            message: message.to_owned(),
        }),
    )
}
