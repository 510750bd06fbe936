//! An external entry's settings, parsed at the edge: the remote's URL and the headers the
//! gateway sends it.

use skyport_store::RemoteHeader;

/// Why an external entry's settings cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RemoteError {
    /// Not an absolute http(s) URL.
    #[error(
        "'{0}' is not an MCP endpoint URL: write an absolute http:// or https:// URL, e.g. https://mcp.example.com/mcp"
    )]
    Url(String),
    /// A URL with a user name or password in it.
    #[error(
        "the URL carries credentials (user:password@); give them as a header instead, e.g. --bearer-stdin or --header 'Authorization: Basic …'"
    )]
    UrlCredentials,
    /// A header not written `Name: value`.
    #[error("'{0}' is not a header: write NAME: VALUE, e.g. 'X-Api-Key: abc'")]
    Header(String),
    /// A header the gateway sets itself.
    #[error(
        "the header {0} cannot be configured: the gateway sets it for every request (choose another header)"
    )]
    Reserved(String),
}

/// The remote's URL when it is an absolute http(s) URL without credentials.
pub fn parse_remote_url(text: &str) -> Result<String, RemoteError> {
    let text = text.trim();
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(|| RemoteError::Url(shown_url(text)))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(RemoteError::UrlCredentials);
    }
    let host_ok = !authority.is_empty()
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
    if !host_ok || text.contains(char::is_whitespace) || text.contains('#') {
        return Err(RemoteError::Url(shown_url(text)));
    }
    Ok(text.to_owned())
}

/// A URL as listings show it: without its query, which may carry a token.
pub fn shown_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    }
}

/// Headers the gateway manages on every request to a remote.
const RESERVED: [&str; 13] = [
    "host",
    "content-length",
    "content-type",
    "accept",
    "connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

/// A header written `Name: value`.
pub fn parse_header(text: &str) -> Result<RemoteHeader, RemoteError> {
    let shown = || RemoteError::Header(text.split(':').next().unwrap_or_default().to_owned());
    let (name, value) = text.split_once(':').ok_or_else(shown)?;
    let name = name.trim();
    let value = value.trim();
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    let printable = value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
    if !token || value.is_empty() || !printable {
        return Err(shown());
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED.contains(&lower.as_str()) || lower.starts_with("skyport-") {
        return Err(RemoteError::Reserved(name.to_owned()));
    }
    Ok(RemoteHeader {
        name: name.to_owned(),
        value: value.to_owned(),
    })
}
