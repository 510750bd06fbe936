//! Browser clients: CORS for the gateway's routes, and refusing pages of other origins.
//!
//! A page may call the gateway when its origin is a loopback one (a local tool's UI) or one
//! of `--cors-origin`; requests from any other page are refused outright, not just left
//! unreadable, since a "simple" cross-origin POST runs without asking first and the MCP
//! transport says servers must check `Origin`. Clients that are not browsers send no `Origin`.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderValue};
use http::{Method, StatusCode};

use crate::Gateway;
use crate::error::GatewayError;

/// Headers a browser client may send.
const ALLOW_HEADERS: &str = "content-type, accept, authorization, mcp-session-id, \
     mcp-protocol-version, mcp-method, mcp-name, last-event-id";
/// Response headers a browser client may read.
const EXPOSE_HEADERS: &str = "mcp-session-id, mcp-protocol-version, www-authenticate, retry-after";

/// Answers preflights and marks responses readable by allowed origins.
pub(crate) async fn layer(
    State(gateway): State<Gateway>,
    request: Request,
    next: Next,
) -> Response {
    let Some(origin) = request.headers().get(header::ORIGIN).cloned() else {
        return next.run(request).await;
    };
    let allowed = origin
        .to_str()
        .is_ok_and(|o| allows(&gateway.inner.options.cors_origins, o));
    if !allowed {
        let origin = origin.to_str().unwrap_or("?").to_owned();
        return GatewayError::Origin(origin).into_response();
    }
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        response
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    response
}

/// Whether pages from `origin` may call the gateway.
fn allows(configured: &[String], origin: &str) -> bool {
    if configured
        .iter()
        .any(|c| c == "*" || c.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => rest.rsplit_once(':').map_or(rest, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::allows;

    #[test]
    fn loopback_and_configured_origins_are_allowed() {
        assert!(allows(&[], "http://localhost:6274"));
        assert!(allows(&[], "http://127.0.0.1:3000"));
        assert!(allows(&[], "http://[::1]:3000"));
        assert!(!allows(&[], "https://evil.example"));
        assert!(!allows(&[], "http://localhost.evil.example"));
        assert!(!allows(&[], "null"));
        let configured = ["https://app.example.com/".to_owned()];
        assert!(allows(&configured, "https://app.example.com"));
        assert!(!allows(&configured, "https://other.example.com"));
        assert!(allows(&["*".to_owned()], "https://anything.example"));
    }
}
