use super::{Envelope, Kind, error_response, replace_id};

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
fn an_id_is_replaced_in_place() {
    let text = r#"{"jsonrpc":"2.0", "id" : 7 ,"result":{"id":7}}"#;
    let envelope = Envelope::parse(text).unwrap();
    let replaced = replace_id(text, envelope.id.unwrap(), r#""skyport-1""#).unwrap();
    assert_eq!(
        replaced,
        r#"{"jsonrpc":"2.0", "id" : "skyport-1" ,"result":{"id":7}}"#
    );
}

#[test]
fn error_responses_are_valid_json_with_the_id() {
    let text = error_response(r#""x""#, -32603, "the \"server\" exited");
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["id"], "x");
    assert_eq!(value["error"]["code"], -32603);
    assert_eq!(value["error"]["message"], "the \"server\" exited");
}
