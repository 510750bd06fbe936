//! The gateway over raw HTTP, without an SDK: session ids it issues, ids it never issued, unknown
//! servers, malformed bodies, and ended sessions.

use skyport_e2e::{HttpResponse, Skyport, example, http};

const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");
const JSON: (&str, &str) = ("Content-Type", "application/json");
const VERSION: (&str, &str) = ("MCP-Protocol-Version", "2025-06-18");
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
const CALL: &str = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"hello","arguments":{"name":"raw"}}}"#;

fn post(sky: &Skyport, path: &str, session: Option<&str>, body: &str) -> HttpResponse {
    let mut headers = vec![ACCEPT, JSON];
    if let Some(id) = session {
        headers.push(("Mcp-Session-Id", id));
        headers.push(VERSION);
    }
    http(&sky.addr(), "POST", path, &headers, Some(body))
        .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", sky.log_tail(40)))
}

#[test]
fn gateway_sessions_and_errors() {
    let sky = Skyport::serve();
    sky.deploy_ok(&example("hello"), "hello");
    let path = "/servers/hello/mcp";

    let init = post(&sky, path, None, INITIALIZE);
    assert_eq!(
        init.status,
        200,
        "initialize: {init:?}\n{}",
        sky.log_tail(40)
    );
    let session = init.header("mcp-session-id").map(str::to_owned);
    let session =
        session.unwrap_or_else(|| panic!("initialize returned no Mcp-Session-Id: {init:?}"));
    let ack = post(&sky, path, Some(&session), INITIALIZED);
    assert!(
        (200..300).contains(&ack.status),
        "notifications/initialized: {ack:?}"
    );
    let call = post(&sky, path, Some(&session), CALL);
    assert_eq!(call.status, 200, "tools/call: {call:?}");
    assert!(
        call.body.contains("Hello, raw!"),
        "tools/call answer: {call:?}"
    );

    let made_up = post(&sky, path, Some("not-a-session-the-gateway-issued"), LIST);
    assert_eq!(
        made_up.status, 404,
        "a session id the gateway never issued: {made_up:?}"
    );

    let nope = post(&sky, "/servers/nope/mcp", None, INITIALIZE);
    assert_eq!(nope.status, 404, "unknown server: {nope:?}");
    let body = nope
        .json()
        .unwrap_or_else(|| panic!("unknown server: body is not JSON: {nope:?}"));
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("nope"),
        "the JSON-RPC error does not name the server: {body}"
    );

    let malformed = post(&sky, path, None, "{this is not json");
    assert_eq!(malformed.status, 400, "malformed body: {malformed:?}");
    let body = malformed
        .json()
        .unwrap_or_else(|| panic!("malformed body: answer is not JSON: {malformed:?}"));
    assert_eq!(
        body["error"]["code"], -32700,
        "malformed body: not a parse error: {body}"
    );

    let headers = [ACCEPT, ("Mcp-Session-Id", session.as_str()), VERSION];
    let ended = http(&sky.addr(), "DELETE", path, &headers, None).expect("DELETE the session");
    assert!(
        (200..300).contains(&ended.status),
        "DELETE the session: {ended:?}"
    );
    let after = post(&sky, path, Some(&session), LIST);
    assert_eq!(
        after.status, 404,
        "a request in an ended session: {after:?}"
    );
}
