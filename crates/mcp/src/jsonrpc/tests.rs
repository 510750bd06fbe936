//! JSON-RPC parsing and error bodies, on the shapes clients actually send.

use super::*;

#[test]
fn parses_a_single_initialize_request() {
    let body = Body::parse(
        br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#,
    )
    .unwrap();
    assert!(body.is_initialize());
    assert_eq!(body.first_id(), Some(&Id::Number(1)));
}

#[test]
fn a_notification_is_not_initialize() {
    let body = Body::parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
    assert!(!body.is_initialize());
    assert_eq!(body.first_id(), None);
}

#[test]
fn batches_keep_order_and_find_the_first_request_id() {
    let body = Body::parse(
        br#"[{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":"b","method":"tools/list"}]"#,
    )
    .unwrap();
    assert_eq!(body.envelopes().len(), 2);
    assert_eq!(body.first_id(), Some(&Id::String("b".into())));
    assert!(!body.is_initialize());
}

#[test]
fn rejects_what_is_not_json_rpc() {
    assert_eq!(
        Body::parse(b"{nope").unwrap_err().code(),
        codes::PARSE_ERROR
    );
    assert_eq!(Body::parse(b"[]").unwrap_err(), ParseError::EmptyBatch);
    assert_eq!(Body::parse(b"42").unwrap_err(), ParseError::NotAMessage);
    assert_eq!(Body::parse(br#"[1]"#).unwrap_err(), ParseError::NotAMessage);
    assert_eq!(
        Body::parse(br#"{"method":5}"#).unwrap_err(),
        ParseError::NotAMessage
    );
}

#[test]
fn error_bodies_carry_the_request_id() {
    let body = error_body(
        Some(&Id::String("x".into())),
        codes::NOT_FOUND,
        "no server named 'a'",
    );
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"jsonrpc":"2.0","id":"x","error":{"code":-32001,"message":"no server named 'a'"}})
    );
    let value: serde_json::Value =
        serde_json::from_slice(&error_body(None, codes::PARSE_ERROR, "bad")).unwrap();
    assert_eq!(value["id"], serde_json::Value::Null);
}

#[test]
fn finds_what_a_request_acts_on_and_its_stateless_version() {
    let body = Body::parse(
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"name":"x"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
    )
    .unwrap();
    let envelope = &body.envelopes()[0];
    assert_eq!(envelope.target.as_deref(), Some("echo"));
    assert_eq!(envelope.meta_version.as_deref(), Some("2026-07-28"));
    let read = Body::parse(
        br#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///a"}}"#,
    )
    .unwrap();
    assert_eq!(read.envelopes()[0].target.as_deref(), Some("file:///a"));
    // A `name` beside a resource's URI does not stand in for it.
    let named = Body::parse(
        br#"{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"name":"ok","uri":"file:///secret"}}"#,
    )
    .unwrap();
    assert_eq!(
        named.envelopes()[0].target.as_deref(),
        Some("file:///secret")
    );
    let positional =
        Body::parse(br#"{"jsonrpc":"2.0","id":3,"method":"x","params":[1,2]}"#).unwrap();
    assert_eq!(positional.envelopes()[0].target, None);
}

#[test]
fn a_completion_acts_on_its_reference() {
    let of = |params: &str| {
        let body = Body::parse(
            format!(
                r#"{{"jsonrpc":"2.0","id":4,"method":"completion/complete","params":{params}}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        let envelope = body.envelopes()[0].clone();
        (envelope.completes, envelope.target)
    };
    assert_eq!(
        of(r#"{"ref":{"type":"ref/prompt","name":"secret"},"argument":{"name":"a","value":""}}"#),
        (Some(Reference::Prompt), Some("secret".to_owned()))
    );
    // The argument's `name` does not stand in for the reference.
    assert_eq!(
        of(
            r#"{"ref":{"type":"ref/resource","uri":"notes://{id}"},"argument":{"name":"id","value":"1"}}"#
        ),
        (
            Some(Reference::ResourceTemplate),
            Some("notes://{id}".to_owned())
        )
    );
    assert_eq!(of(r#"{"ref":{"type":"ref/other"}}"#), (None, None));
}
