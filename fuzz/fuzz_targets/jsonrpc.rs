//! A POST body as the gateway reads it: any bytes parse to envelopes or to an error with a
//! JSON-RPC code, never a panic; what parses keeps its first id through an error answer, and a
//! stateless request whose headers mirror its body passes the mirror check.

#![no_main]

use libfuzzer_sys::fuzz_target;
use skyport_mcp::era::{Era, check_mirrored_headers};
use skyport_mcp::jsonrpc::{Body, error_body};

fuzz_target!(|bytes: &[u8]| {
    let body = match Body::parse(bytes) {
        Ok(body) => body,
        Err(error) => {
            assert!(error.code() < 0, "{error}");
            return;
        }
    };
    let _ = Era::of(Some("2026-07-28"), false, Some(&body));
    let _ = body.is_initialize();
    let answer = error_body(body.first_id(), -32600, "x");
    let answered = Body::parse(&answer).expect("an error answer parses");
    assert_eq!(answered.first_id(), body.first_id());
    if let Body::Single(envelope) = &body {
        let mirrored = |name: &str| match name {
            "mcp-protocol-version" => envelope.meta_version.as_deref(),
            "mcp-method" => envelope.method.as_deref(),
            "mcp-name" => envelope.target.as_deref(),
            _ => None,
        };
        // A name that is not a valid header value travels base64-encoded; only plain ones
        // are mirrored verbatim here.
        let plain = envelope
            .target
            .as_deref()
            .is_none_or(|t| !t.starts_with("=?base64?"));
        if plain {
            assert!(check_mirrored_headers(mirrored, envelope).is_ok());
        }
    }
});
