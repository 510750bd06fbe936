//! Every way a gateway request fails, mapped in one place to an HTTP status and a JSON-RPC
//! error body that carries the request's id.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use skyport_mcp::era::{HEADER_MISMATCH, HeaderMismatch};
use skyport_mcp::jsonrpc::{Id, ParseError, codes, error_body};
use skyport_runtime::{Exit, StartError};

/// Why the gateway answered instead of the server.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The path names no server.
    #[error("no server named '{0}' on this Skyport; `skyport servers ls` lists them")]
    UnknownServer(String),
    /// Host routing found no server name in the request's host.
    #[error(
        "no server is routed by host '{0}'; use /servers/NAME/mcp, or NAME.BASE_DOMAIN/mcp with `skyport serve --base-domain`"
    )]
    UnknownHost(String),
    /// A web page of an origin that may not call the gateway.
    #[error(
        "requests from web pages of origin '{0}' are refused; allow it with `skyport serve --cors-origin {0}`"
    )]
    Origin(String),
    /// The server has never been deployed successfully (or its live deployment was removed).
    #[error("server '{0}' has no live deployment; deploy it with `skyport deploy`")]
    NotDeployed(String),
    /// The session id was not issued by this gateway, was ended, or its instance is gone.
    #[error("session not found; it expired or was ended: start a new session with initialize")]
    UnknownSession,
    /// A legacy (HTTP+SSE) message names no open legacy session: it ended, expired, or was
    /// opened by someone else.
    #[error(
        "no open SSE session has this sessionId; it ended or expired: connect to the server's /sse URL again"
    )]
    UnknownLegacySession,
    /// A legacy message URL without its `sessionId`.
    #[error(
        "the message URL has no sessionId: POST to the URL the endpoint event of the /sse stream names"
    )]
    MissingLegacySession,
    /// A second `initialize` on a legacy session.
    #[error(
        "this SSE session is already initialized: connect to the server's /sse URL again to start another"
    )]
    AlreadyInitialized,
    /// The server answered a bridged legacy message with an HTTP error and no JSON-RPC message.
    #[error(
        "server '{server}' answered HTTP {status} without a JSON-RPC message; `skyport logs {server}` shows its output"
    )]
    UpstreamStatus {
        /// The server.
        server: String,
        /// The HTTP status it answered.
        status: u16,
    },
    /// The request body is not JSON-RPC.
    #[error("{0}")]
    Malformed(ParseError),
    /// The request body is larger than the gateway accepts (`GatewayOptions::max_body`).
    #[error(
        "the request body is larger than the gateway's limit of {} bytes; send large data by reference (a resource URI or URL), not inline",
        .0
    )]
    TooLarge(usize),
    /// The request body could not be read.
    #[error("cannot read the request body: {0}")]
    BadBody(String),
    /// The method is not one MCP's HTTP transport uses.
    #[error("method not allowed: MCP over HTTP uses POST, GET and DELETE")]
    Method,
    /// No instance could be started.
    #[error("server '{server}' could not start: {error}")]
    Start {
        /// The server.
        server: String,
        /// Why.
        error: StartError,
    },
    /// The instance ended while handling the request (crashed, or killed for exceeding its
    /// memory limit); the next request starts a fresh one.
    #[error(
        "server '{server}' stopped while handling the request: {exit}. The next request starts a fresh instance; `skyport logs {server}` shows its output"
    )]
    InstanceExited {
        /// The server.
        server: String,
        /// How the instance ended.
        exit: Exit,
    },
    /// A stateless request's mirrored headers disagree with its body.
    #[error("{0}")]
    HeaderMismatch(HeaderMismatch),
    /// The request did not finish within the request timeout.
    #[error(
        "server '{server}' did not finish answering within the request timeout of {}s; raise it with `skyport servers set {server} --request-timeout` if the tool needs longer",
        limit.as_secs()
    )]
    Timeout {
        /// The server.
        server: String,
        /// The limit that was reached.
        limit: std::time::Duration,
    },
    /// A session's `initialize` could not be replayed on a new instance.
    #[error(
        "server '{server}' could not resume the session on a new instance: {detail}. Start a new session with initialize; `skyport logs {server}` shows the server's side"
    )]
    Replay {
        /// The server.
        server: String,
        /// What went wrong.
        detail: String,
    },
    /// Skyport itself failed (its database); details are in its log.
    #[error("Skyport could not route the request; see its log")]
    Internal(String),
    /// The server requires a credential and the request had none that works.
    #[error(
        "{}: send an API key as `Authorization: Bearer sk_…` (create one with `skyport keys create`) or an OAuth access token for this server (its protected resource metadata names the authorization server)",
        refusal(.presented)
    )]
    Unauthorized {
        /// The URL of the server's protected resource metadata, for `WWW-Authenticate`.
        metadata: String,
        /// Whether a credential was sent (then it was wrong, not missing).
        presented: bool,
    },
    /// The caller is known but has no role on the server, whose auth is on.
    #[error(
        "{principal} has no role on server '{server}'; ask an org admin or an admin of the server to run `skyport access grant {server} {principal} viewer`"
    )]
    Forbidden {
        /// The server.
        server: String,
        /// The caller's name.
        principal: String,
    },
    /// The API key made more requests than `--rate-limit` allows.
    #[error("rate limit of this API key exceeded: retry in {retry_after}s")]
    RateLimited {
        /// Seconds until a request would pass, for `Retry-After`.
        retry_after: u64,
    },
    /// A remix got a JSON-RPC batch.
    #[error("remix servers take one JSON-RPC message per request, not batches")]
    RemixBatch,
    /// A remix got a stateless-era (2026-07-28) request.
    #[error(
        "remix '{0}' speaks the session era (protocol revisions 2024-11-05 to 2025-11-25): send initialize first"
    )]
    RemixStateless(String),
    /// A `GET` stream was asked of a remix.
    #[error("remix '{0}' opens no server-to-client stream: its answers come with each request")]
    RemixStream(String),
    /// The source that owns a remix's tool, prompt or resource did not answer a call.
    /// Answered with HTTP 200: the remix itself answered, and clients show a JSON-RPC error
    /// where they would raise on an HTTP one.
    #[error("source '{server}' of remix '{remix}' is unavailable: {detail}")]
    SourceUnavailable {
        /// The remix.
        remix: String,
        /// The source.
        server: String,
        /// What the source (or the gateway in front of it) said.
        detail: String,
    },
    /// The instance did not answer the forwarded request.
    #[error("server '{server}' did not answer: {detail}. `skyport logs {server}` shows its output")]
    Upstream {
        /// The server.
        server: String,
        /// What the connection reported.
        detail: String,
    },
    /// An external server did not answer.
    #[error(
        "external server '{server}' did not answer: {detail}. `skyport registry check {server}` checks it again"
    )]
    Remote {
        /// The catalog entry.
        server: String,
        /// What the connection reported (never its headers or its URL's query).
        detail: String,
    },
}

impl GatewayError {
    fn status(&self) -> StatusCode {
        match self {
            GatewayError::UnknownServer(_)
            | GatewayError::UnknownSession
            | GatewayError::UnknownLegacySession
            | GatewayError::UnknownHost(_) => StatusCode::NOT_FOUND,
            GatewayError::Origin(_) | GatewayError::Forbidden { .. } => StatusCode::FORBIDDEN,
            GatewayError::NotDeployed(_) | GatewayError::Start { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            GatewayError::Malformed(_)
            | GatewayError::BadBody(_)
            | GatewayError::MissingLegacySession
            | GatewayError::AlreadyInitialized
            | GatewayError::HeaderMismatch(_)
            | GatewayError::RemixBatch
            | GatewayError::RemixStateless(_) => StatusCode::BAD_REQUEST,
            GatewayError::RemixStream(_) => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::SourceUnavailable { .. } => StatusCode::OK,
            GatewayError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::Method => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::Upstream { .. }
            | GatewayError::Remote { .. }
            | GatewayError::InstanceExited { .. }
            | GatewayError::UpstreamStatus { .. }
            | GatewayError::Replay { .. } => StatusCode::BAD_GATEWAY,
            GatewayError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            GatewayError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            GatewayError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The JSON-RPC error code this error answers with.
    pub(crate) fn code(&self) -> i64 {
        match self {
            GatewayError::UnknownServer(_)
            | GatewayError::UnknownSession
            | GatewayError::UnknownLegacySession
            | GatewayError::UnknownHost(_) => codes::NOT_FOUND,
            GatewayError::Origin(_) | GatewayError::Forbidden { .. } => codes::FORBIDDEN,
            GatewayError::NotDeployed(_)
            | GatewayError::Start { .. }
            | GatewayError::Upstream { .. }
            | GatewayError::Remote { .. }
            | GatewayError::InstanceExited { .. }
            | GatewayError::UpstreamStatus { .. }
            | GatewayError::Replay { .. }
            | GatewayError::SourceUnavailable { .. } => codes::UNAVAILABLE,
            GatewayError::Timeout { .. } => codes::TIMEOUT,
            GatewayError::HeaderMismatch(_) => HEADER_MISMATCH,
            GatewayError::Malformed(e) => e.code(),
            GatewayError::BadBody(_)
            | GatewayError::Method
            | GatewayError::MissingLegacySession
            | GatewayError::AlreadyInitialized
            | GatewayError::RemixBatch
            | GatewayError::RemixStateless(_)
            | GatewayError::RemixStream(_) => codes::INVALID_REQUEST,
            GatewayError::TooLarge(_) => codes::TOO_LARGE,
            GatewayError::Internal(_) => codes::INTERNAL_ERROR,
            GatewayError::Unauthorized { .. } => codes::FORBIDDEN,
            // No JSON-RPC code says "slow down"; the HTTP status and Retry-After do.
            GatewayError::RateLimited { .. } => codes::UNAVAILABLE,
        }
    }

    /// The header that tells the client what to do next, for errors that have one.
    fn advice(&self) -> Option<(header::HeaderName, HeaderValue)> {
        match self {
            GatewayError::Unauthorized {
                metadata,
                presented,
            } => {
                // RFC 6750 §3.1: a wrong token is `invalid_token`; a missing one gets no code.
                let error = if *presented {
                    "error=\"invalid_token\", "
                } else {
                    ""
                };
                let challenge = format!("Bearer {error}resource_metadata=\"{metadata}\"");
                HeaderValue::from_str(&challenge)
                    .ok()
                    .map(|v| (header::WWW_AUTHENTICATE, v))
            }
            GatewayError::RateLimited { retry_after } => {
                Some((header::RETRY_AFTER, HeaderValue::from(*retry_after)))
            }
            _ => None,
        }
    }

    /// The response to send, answering the request with id `id` when it is known.
    pub fn into_response_for(self, id: Option<&Id>) -> Response {
        if let GatewayError::Internal(detail) = &self {
            tracing::error!("gateway failed: {detail}");
        }
        let body = error_body(id, self.code(), &self.to_string());
        let mut response = (self.status(), body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some((name, value)) = self.advice() {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl GatewayError {
    /// The error as a JSON-RPC response value, for one answer among a batch's.
    pub(crate) fn into_value_for(self, id: Option<&Id>) -> serde_json::Value {
        serde_json::from_slice(&error_body(id, self.code(), &self.to_string())).unwrap_or_default()
    }

    /// The error as a server-sent event answering the request with id `id`, for a response
    /// whose status already went out as an event stream. The leading blank lines end whatever
    /// event the stream was cut in the middle of.
    pub(crate) fn into_event_for(self, id: Option<&Id>) -> bytes::Bytes {
        tracing::debug!("gateway ends an event stream with an error: {self}");
        let body = error_body(id, self.code(), &self.to_string());
        let mut event = b"\n\nevent: message\ndata: ".to_vec();
        event.extend_from_slice(&body);
        event.extend_from_slice(b"\n\n");
        event.into()
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        self.into_response_for(None)
    }
}

/// Why a request without a working credential was refused.
fn refusal(presented: &bool) -> &'static str {
    if *presented {
        "the API key or access token is not valid here (unknown, expired, revoked, or for another server)"
    } else {
        "this server requires an API key"
    }
}
