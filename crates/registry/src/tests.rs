//! Unit tests of the catalog domain: remote settings parsing.

use crate::{RemoteError, parse_header, parse_remote_url, shown_url};

#[test]
fn remote_urls_are_absolute_http_without_credentials() {
    assert_eq!(
        parse_remote_url(" https://mcp.example.com/mcp ").as_deref(),
        Ok("https://mcp.example.com/mcp")
    );
    assert!(parse_remote_url("http://127.0.0.1:8000/mcp").is_ok());
    assert!(parse_remote_url("http://[::1]:8000/mcp").is_ok());
    for bad in [
        "ftp://x/mcp",
        "mcp.example.com",
        "https:///mcp",
        "http://a b/",
    ] {
        assert!(
            matches!(parse_remote_url(bad), Err(RemoteError::Url(_))),
            "{bad}"
        );
    }
    assert_eq!(
        parse_remote_url("https://u:p@x.example/mcp"),
        Err(RemoteError::UrlCredentials)
    );
}

#[test]
fn shown_urls_hide_their_query() {
    assert_eq!(shown_url("https://x/mcp?key=s3cret"), "https://x/mcp?…");
    assert_eq!(shown_url("https://x/mcp"), "https://x/mcp");
}

#[test]
fn headers_parse_and_reserved_ones_are_refused() {
    let header = parse_header("X-Api-Key:  abc def ").expect("a header");
    assert_eq!(
        (header.name.as_str(), header.value.as_str()),
        ("X-Api-Key", "abc def")
    );
    assert_eq!(
        parse_header("nocolon"),
        Err(RemoteError::Header("nocolon".into()))
    );
    assert_eq!(
        parse_header("X-Empty:"),
        Err(RemoteError::Header("X-Empty".into()))
    );
    assert_eq!(
        parse_header("Bad Name: v"),
        Err(RemoteError::Header("Bad Name".into()))
    );
    assert_eq!(
        parse_header("Mcp-Session-Id: 1"),
        Err(RemoteError::Reserved("Mcp-Session-Id".into()))
    );
    assert_eq!(
        parse_header("skyport-user-id: x"),
        Err(RemoteError::Reserved("skyport-user-id".into()))
    );
    // The value never shows in an error.
    let error = parse_header("X-Key: s3cret\u{1}").expect_err("a control character");
    assert!(!error.to_string().contains("s3cret"), "{error}");
}
