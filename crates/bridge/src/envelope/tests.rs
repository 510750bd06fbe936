//! The envelope reading and the rewriting of stateless-era messages.

use super::{Envelope, Kind, error_response, for_handshake_era, for_stateless_client};

#[test]
fn kinds_follow_method_and_id() {
    let kind = |text: &str| Envelope::parse(text).unwrap().kind();
    assert_eq!(
        kind(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
        Some(Kind::Request)
    );
    assert_eq!(
        kind(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
        Some(Kind::Notification)
    );
    assert_eq!(
        kind(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#),
        Some(Kind::Response)
    );
    assert_eq!(kind(r#"{"jsonrpc":"2.0"}"#), None);
}

#[test]
fn ids_keep_their_json_spelling() {
    let number = Envelope::parse(r#"{"id":1,"result":{}}"#).unwrap();
    let string = Envelope::parse(r#"{"id":"1","result":{}}"#).unwrap();
    assert_eq!(number.id_text(), "1");
    assert_eq!(string.id_text(), r#""1""#);
    assert_ne!(number.id_text(), string.id_text());
}

#[test]
fn error_responses_are_valid_json_with_the_id() {
    let text = error_response(r#""x""#, -32603, "the \"server\" exited");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["id"], "x");
    assert_eq!(value["error"]["code"], -32603);
    assert_eq!(value["error"]["message"], "the \"server\" exited");
}

#[test]
fn the_stateless_envelope_is_taken_out_for_a_handshake_era_server() {
    let text = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"t","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"c"},"io.modelcontextprotocol/clientCapabilities":{},"progressToken":7}}}"#;
    let rewritten: serde_json::Value =
        serde_json::from_str(&for_handshake_era(text, r#""skyport-1""#).unwrap()).unwrap();
    assert_eq!(
        rewritten,
        serde_json::json!({"jsonrpc":"2.0","id":"skyport-1","method":"tools/call","params":{"name":"t","_meta":{"progressToken":7}}})
    );
    let bare = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    let rewritten: serde_json::Value =
        serde_json::from_str(&for_handshake_era(bare, "5").unwrap()).unwrap();
    assert_eq!(
        rewritten,
        serde_json::json!({"jsonrpc":"2.0","id":5,"method":"tools/list","params":{}})
    );
}

#[test]
fn answers_for_stateless_clients_get_their_id_and_a_result_type() {
    let answer = r#"{"jsonrpc":"2.0","id":"skyport-4","result":{"tools":[]}}"#;
    let rewritten: serde_json::Value =
        serde_json::from_str(&for_stateless_client(answer, "7", "tools/list").unwrap()).unwrap();
    assert_eq!(
        rewritten,
        serde_json::json!({"jsonrpc":"2.0","id":7,"result":{"tools":[],"resultType":"complete","ttlMs":0,"cacheScope":"private"}})
    );
    let called = r#"{"jsonrpc":"2.0","id":"skyport-5","result":{"content":[]}}"#;
    let rewritten: serde_json::Value =
        serde_json::from_str(&for_stateless_client(called, "8", "tools/call").unwrap()).unwrap();
    assert_eq!(
        rewritten,
        serde_json::json!({"jsonrpc":"2.0","id":8,"result":{"content":[],"resultType":"complete"}})
    );
    let error = r#"{"jsonrpc":"2.0","id":"skyport-4","error":{"code":-1,"message":"x"}}"#;
    let rewritten: serde_json::Value =
        serde_json::from_str(&for_stateless_client(error, r#""a""#, "tools/call").unwrap())
            .unwrap();
    assert_eq!(
        rewritten,
        serde_json::json!({"jsonrpc":"2.0","id":"a","error":{"code":-1,"message":"x"}})
    );
}
