//! Which generation of MCP-over-HTTP a request speaks, and the checks the stateless one asks of
//! a gateway.
//!
//! Revisions 2025-03-26 … 2025-11-25 open a session with `initialize` and carry `Mcp-Session-Id`;
//! revision 2026-07-28 drops sessions: every request carries its protocol revision in
//! `params._meta` and mirrors its method (and the tool, prompt or resource it names) in headers,
//! which must agree with the body.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::jsonrpc::{Body, Envelope};

/// The first stateless revision; revisions compare as dates, which sort as text.
pub const FIRST_STATELESS: &str = "2026-07-28";

/// The JSON-RPC error code for headers that disagree with the body.
pub const HEADER_MISMATCH: i64 = -32020;

/// How a request is to be carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    /// Sessions: `initialize`, `Mcp-Session-Id`, GET streams, DELETE.
    Session,
    /// One self-contained request per POST, no session.
    Stateless,
}

impl Era {
    /// The era of a request, from its `MCP-Protocol-Version` header, whether it names a
    /// session, and its body. A session id always means the session era; otherwise a stateless
    /// revision in the header or in the body's `_meta`, or `server/discover`, means stateless.
    pub fn of(version_header: Option<&str>, has_session: bool, body: Option<&Body>) -> Era {
        if has_session {
            return Era::Session;
        }
        if let Some(version) = version_header {
            return if is_stateless(version) {
                Era::Stateless
            } else {
                Era::Session
            };
        }
        let stateless_body = body
            .and_then(|b| match b {
                Body::Single(envelope) => Some(envelope),
                Body::Batch(_) => None,
            })
            .is_some_and(|e| {
                e.meta_version.as_deref().is_some_and(is_stateless)
                    || e.method.as_deref() == Some("server/discover")
            });
        if stateless_body {
            Era::Stateless
        } else {
            Era::Session
        }
    }
}

fn is_stateless(version: &str) -> bool {
    version >= FIRST_STATELESS
}

/// Why a stateless request's headers were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HeaderMismatch(String);

/// Checks that a stateless request's mirrored headers agree with its body, as servers of that
/// revision do: `MCP-Protocol-Version` equals `_meta`'s revision, `Mcp-Method` the method, and
/// for `tools/call`, `prompts/get` and `resources/read`, `Mcp-Name` the name or URI (a value
/// that would not survive as a header travels as `=?base64?…?=`). `header` looks a header up
/// by its lowercase name.
pub fn check_mirrored_headers<'h>(
    header: impl Fn(&str) -> Option<&'h str>,
    envelope: &Envelope,
) -> Result<(), HeaderMismatch> {
    let mismatch = |what: &str| {
        HeaderMismatch(format!(
            "the {what} header is missing or does not match the request body; stateless \
             (2026-07-28) requests must mirror the body in their headers"
        ))
    };
    if envelope.meta_version.is_some()
        && header(crate::headers::PROTOCOL_VERSION) != envelope.meta_version.as_deref()
    {
        return Err(mismatch("MCP-Protocol-Version"));
    }
    if header(crate::headers::MCP_METHOD) != envelope.method.as_deref() {
        return Err(mismatch("Mcp-Method"));
    }
    let named = matches!(
        envelope.method.as_deref(),
        Some("tools/call" | "prompts/get" | "resources/read")
    );
    if named
        && envelope.target.is_some()
        && header(crate::headers::MCP_NAME).and_then(decode_header_value) != envelope.target.clone()
    {
        return Err(mismatch("Mcp-Name"));
    }
    Ok(())
}

/// A mirrored header's value: verbatim, or the UTF-8 inside a canonical `=?base64?…?=`.
fn decode_header_value(value: &str) -> Option<String> {
    let Some(payload) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(value.to_owned());
    };
    let bytes = STANDARD.decode(payload).ok()?;
    // Only the canonical encoding is accepted, so one value has one spelling.
    if STANDARD.encode(&bytes) != payload {
        return None;
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(body: &str) -> Envelope {
        Body::parse(body.as_bytes()).unwrap().envelopes()[0].clone()
    }

    const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"héllo","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;

    #[test]
    fn the_era_follows_the_session_then_the_header_then_the_body() {
        let call = Body::parse(CALL.as_bytes()).unwrap();
        assert_eq!(Era::of(None, false, Some(&call)), Era::Stateless);
        assert_eq!(Era::of(None, true, Some(&call)), Era::Session);
        assert_eq!(
            Era::of(Some("2025-06-18"), false, Some(&call)),
            Era::Session
        );
        assert_eq!(Era::of(Some("2026-07-28"), false, None), Era::Stateless);
        let init = Body::parse(br#"{"jsonrpc":"2.0","id":1,"method":"initialize"}"#).unwrap();
        assert_eq!(Era::of(None, false, Some(&init)), Era::Session);
        let discover =
            Body::parse(br#"{"jsonrpc":"2.0","id":1,"method":"server/discover"}"#).unwrap();
        assert_eq!(Era::of(None, false, Some(&discover)), Era::Stateless);
    }

    #[test]
    fn mirrored_headers_must_match_the_body() {
        let call = envelope(CALL);
        let encoded = format!("=?base64?{}?=", STANDARD.encode("héllo"));
        let headers = |method: &'static str, name: String| {
            move |h: &str| -> Option<&str> {
                match h {
                    "mcp-protocol-version" => Some("2026-07-28"),
                    "mcp-method" => Some(method),
                    "mcp-name" => Some(Box::leak(name.clone().into_boxed_str())),
                    _ => None,
                }
            }
        };
        assert!(check_mirrored_headers(headers("tools/call", encoded.clone()), &call).is_ok());
        assert!(check_mirrored_headers(headers("tools/call", "héllo".into()), &call).is_ok());
        assert!(check_mirrored_headers(headers("tools/list", encoded), &call).is_err());
        assert!(check_mirrored_headers(headers("tools/call", "other".into()), &call).is_err());
        assert!(check_mirrored_headers(|_| None, &call).is_err());
    }
}
