//! The DNS-rebinding guard: a page on `evil.example` that resolves its name to 127.0.0.1 can
//! make a browser send requests to a loopback Skyport, but it cannot make them name a
//! loopback host, so such requests are refused.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use skyport_mcp::jsonrpc::{codes, error_body};

/// Refuses requests whose `Host` is not a loopback name.
pub(crate) async fn loopback_only(request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().host());
    if host.is_none_or(is_loopback) {
        return next.run(request).await;
    }
    let body = error_body(
        None,
        codes::FORBIDDEN,
        "this Skyport listens on loopback only and refuses requests for other host names \
         (DNS rebinding protection); use http://127.0.0.1 or http://localhost",
    );
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    // Names under .localhost resolve to loopback (RFC 6761): host routing uses them locally.
    name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_names() {
        for host in [
            "localhost",
            "127.0.0.1:8420",
            "LOCALHOST:1",
            "[::1]:8420",
            "127.3.4.5",
            "hello.localhost:8420",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8420",
            "10.0.0.1",
            "[fe80::1]:80",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
