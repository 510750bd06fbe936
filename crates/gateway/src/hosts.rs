//! Host routing: with a base domain, `NAME.BASE/mcp` is the same endpoint as
//! `/servers/NAME/mcp`, for clients and deployments that want one host per server.

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::header;

use crate::error::GatewayError;
use crate::{Gateway, proxy};

/// The handler of `/mcp`: the server is named by the request's host.
pub(crate) async fn handle(State(gateway): State<Gateway>, request: Request) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().host())
        .unwrap_or_default()
        .to_owned();
    match server_of(&host, gateway.inner.options.base_domain.as_deref()) {
        Some(name) => proxy::handle(State(gateway), Path(name.to_owned()), request).await,
        None => GatewayError::UnknownHost(host).into_response(),
    }
}

/// The server a host names under `base`: the one label in front of it.
fn server_of<'h>(host: &'h str, base: Option<&str>) -> Option<&'h str> {
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

    #[test]
    fn one_label_in_front_of_the_base_domain_names_the_server() {
        let base = Some("mcp.example.com");
        assert_eq!(server_of("weather.mcp.example.com", base), Some("weather"));
        assert_eq!(
            server_of("weather.MCP.example.com:443", base),
            Some("weather")
        );
        assert_eq!(
            server_of("hello--main.mcp.example.com", base),
            Some("hello--main")
        );
        assert_eq!(server_of("a.b.mcp.example.com", base), None);
        assert_eq!(server_of("mcp.example.com", base), None);
        assert_eq!(server_of("weathermcp.example.com", base), None);
        assert_eq!(server_of("weather.mcp.example.com", None), None);
        assert_eq!(
            server_of("hello.localhost:8420", Some("localhost")),
            Some("hello")
        );
    }
}
