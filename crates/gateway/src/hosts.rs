//! Host routing: with a base domain, `NAME.BASE/mcp` is the same endpoint as
//! `/servers/NAME/mcp`, for clients and deployments that want one host per server.

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::header;

use crate::error::GatewayError;
use crate::{Gateway, proxy};

/// The handler of `/mcp`: the server is named by the request's host.
pub(crate) async fn handle(State(gateway): State<Gateway>, request: Request) -> Response {
    let base = gateway.inner.options.base_domain.as_deref();
    match server_of(&request, base) {
        Some(name) => proxy::handle(State(gateway), Path(name), request).await,
        None => {
            GatewayError::UnknownHost(host(&request).unwrap_or_default().to_owned()).into_response()
        }
    }
}

/// The server a host-routed request (`NAME.BASE/mcp`) is for, lowercased (host names are not
/// case-sensitive, server names are lowercase).
pub(crate) fn server_of(request: &Request, base: Option<&str>) -> Option<String> {
    label_under(host(request)?, base).map(str::to_ascii_lowercase)
}

fn host(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().host())
}

/// The one label in front of `base` in `host`.
fn label_under<'h>(host: &'h str, base: Option<&str>) -> Option<&'h str> {
    let base = base?.trim_matches('.');
    let name = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    let label = name
        .len()
        .checked_sub(base.len() + 1)
        .filter(|&at| name.as_bytes()[at] == b'.' && name[at + 1..].eq_ignore_ascii_case(base))
        .map(|at| &name[..at])?;
    (!label.is_empty() && !label.contains('.')).then_some(label)
}

#[cfg(test)]
mod tests {
    use super::server_of;

    fn server(host: &str, base: Option<&str>) -> Option<String> {
        let request = axum::extract::Request::builder()
            .header("host", host)
            .body(axum::body::Body::empty())
            .unwrap();
        server_of(&request, base)
    }

    #[test]
    fn one_label_in_front_of_the_base_domain_names_the_server() {
        let base = Some("mcp.example.com");
        assert_eq!(
            server("weather.mcp.example.com", base),
            Some("weather".into())
        );
        assert_eq!(
            server("weather.MCP.example.com:443", base),
            Some("weather".into())
        );
        assert_eq!(
            server("hello--main.mcp.example.com", base),
            Some("hello--main".into())
        );
        assert_eq!(server("a.b.mcp.example.com", base), None);
        assert_eq!(server("mcp.example.com", base), None);
        assert_eq!(server("weathermcp.example.com", base), None);
        assert_eq!(server("weather.mcp.example.com", None), None);
        assert_eq!(
            server("Weather.mcp.example.com:8420", base),
            Some("weather".into())
        );
        assert_eq!(server("weather.other.com", base), None);
        assert_eq!(
            server("hello.localhost:8420", Some("localhost")),
            Some("hello".into())
        );
    }
}
