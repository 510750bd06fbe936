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

const META: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"e2e","version":"0"},"io.modelcontextprotocol/clientCapabilities":{}}"#;

/// A raw stateless-era (2026-07-28) request with the headers that mirror its body.
fn stateless(sky: &Skyport, method: &str, name: Option<&str>, body: &str) -> HttpResponse {
    let mut headers = vec![
        ACCEPT,
        JSON,
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", method),
    ];
    if let Some(name) = name {
        headers.push(("Mcp-Name", name));
    }
    http(
        &sky.addr(),
        "POST",
        "/servers/hello/mcp",
        &headers,
        Some(body),
    )
    .unwrap_or_else(|e| panic!("POST {method}: {e}\n{}", sky.log_tail(40)))
}

#[test]
fn both_protocol_eras_batches_and_bad_input() {
    let sky = Skyport::serve();
    sky.deploy_ok(&example("hello"), "hello");
    let path = "/servers/hello/mcp";

    // The stateless era: discovery and a call, each on its own, and no session invented.
    let discover =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{{{META}}}}}"#);
    let found = stateless(&sky, "server/discover", None, &discover);
    assert_eq!(found.status, 200, "server/discover: {found:?}");
    assert!(found.body.contains("2026-07-28"), "{found:?}");
    assert!(found.header("mcp-session-id").is_none(), "{found:?}");
    let call = format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"hello","arguments":{{"name":"stateless"}},{META}}}}}"#
    );
    let called = stateless(&sky, "tools/call", Some("hello"), &call);
    assert_eq!(called.status, 200, "stateless tools/call: {called:?}");
    assert!(called.body.contains("Hello, stateless!"), "{called:?}");
    assert!(called.header("mcp-session-id").is_none(), "{called:?}");
    let mismatch = stateless(&sky, "tools/call", Some("other"), &call);
    assert_eq!(mismatch.status, 400, "{mismatch:?}");
    assert_eq!(
        mismatch.json().unwrap()["error"]["code"],
        -32020,
        "{mismatch:?}"
    );

    // The official SDK in each era.
    for mode in ["2026-07-28", "auto", "legacy"] {
        let (run, v) = sky.client(
            "sdk_client.py",
            &[
                "call",
                &sky.mcp_url("hello"),
                "hello",
                r#"{"name":"sdk"}"#,
                mode,
            ],
        );
        assert_eq!(v["text"], "Hello, sdk!", "mode {mode}: {run}");
    }

    // A 2025-03-26 batch: answered as one array, in the session.
    let init = post(&sky, path, None, INITIALIZE);
    let session = init.header("mcp-session-id").expect("a session").to_owned();
    let batch = format!("[{INITIALIZED},{LIST},{CALL}]");
    let answered = post(&sky, path, Some(&session), &batch);
    assert_eq!(answered.status, 200, "batch: {answered:?}");
    let answers = answered.json().expect("a JSON array");
    let ids: Vec<&serde_json::Value> = answers
        .as_array()
        .expect("an array")
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(ids, [2, 3], "{answers}");
    assert!(answered.body.contains("Hello, raw!"), "{answered:?}");

    // Bad input is answered with a clear error and the session keeps working.
    let wrong_type = http(
        &sky.addr(),
        "POST",
        path,
        &[
            ACCEPT,
            ("Content-Type", "text/plain"),
            ("Mcp-Session-Id", &session),
            VERSION,
        ],
        Some(CALL),
    )
    .expect("POST text/plain");
    assert!(
        (400..500).contains(&wrong_type.status),
        "wrong content type: {wrong_type:?}"
    );
    let no_accept = http(
        &sky.addr(),
        "POST",
        path,
        &[JSON, ("Mcp-Session-Id", &session), VERSION],
        Some(CALL),
    )
    .expect("POST without Accept");
    assert!(
        (400..500).contains(&no_accept.status),
        "missing Accept: {no_accept:?}"
    );
    let unknown = post(
        &sky,
        path,
        Some(&session),
        r#"{"jsonrpc":"2.0","id":4,"method":"no/such/method"}"#,
    );
    let error = unknown.json().unwrap_or_default();
    assert!(
        unknown.body.contains("-32601") || error["error"]["code"] == -32601,
        "unknown method: {unknown:?}"
    );
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{{"name":"hello","arguments":{{"name":"{}"}}}}}}"#,
        "x".repeat(7 * 1024 * 1024)
    );
    let refused = post(&sky, path, Some(&session), &huge);
    assert_eq!(refused.status, 413, "oversized body");
    assert_eq!(refused.json().unwrap()["error"]["code"], -32003);
    let still = post(&sky, path, Some(&session), CALL);
    assert!(
        still.body.contains("Hello, raw!"),
        "after bad input: {still:?}"
    );
}

#[test]
fn an_expired_session_is_a_404() {
    let sky = Skyport::serve_with(&["--session-ttl", "2s"]);
    sky.deploy_ok(&example("hello"), "hello");
    let path = "/servers/hello/mcp";
    let init = post(&sky, path, None, INITIALIZE);
    let session = init.header("mcp-session-id").expect("a session").to_owned();
    assert_eq!(post(&sky, path, Some(&session), CALL).status, 200);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let expired = post(&sky, path, Some(&session), CALL);
    assert_eq!(expired.status, 404, "{expired:?}");
}
