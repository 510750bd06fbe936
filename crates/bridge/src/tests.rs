//! The bridge against a real stdio process (a small Python server, `tests/stdio_server.py`),
//! driven through its router.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::{BridgeConfig, Command, router};

const SERVER: &str = include_str!("tests/stdio_server.py");
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"sampling":{}},"clientInfo":{"name":"t","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

struct Check {
    app: Router,
    _dir: tempfile::TempDir,
}

/// What one request got back.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    session: Option<String>,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

fn check(max_sessions: usize) -> Check {
    check_with(max_sessions, false)
}

fn check_with(max_sessions: usize, shared: bool) -> Check {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("server.py");
    std::fs::write(&script, SERVER).unwrap();
    let app = router(BridgeConfig {
        command: Command {
            program: "python3".into(),
            args: vec![script.to_string_lossy().into_owned()],
        },
        max_sessions,
        shared,
    });
    Check { app, _dir: dir }
}

impl Check {
    async fn send(&self, method: &str, headers: &[(&str, &str)], body: Option<&str>) -> Answer {
        let mut request = Request::builder().method(method).uri("/mcp");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let session = header("mcp-session-id");
        let content_type = header("content-type").unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            session,
            content_type,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn post(&self, session: Option<&str>, body: &str) -> Answer {
        match session {
            Some(session) => {
                self.send("POST", &[("mcp-session-id", session)], Some(body))
                    .await
            }
            None => self.send("POST", &[], Some(body)).await,
        }
    }

    async fn open_session(&self) -> String {
        let init = self.post(None, INITIALIZE).await;
        assert_eq!(init.status, StatusCode::OK, "{init:?}");
        assert_eq!(init.json()["result"]["serverInfo"]["name"], "stdio-test");
        let session = init.session.expect("a session id");
        let notified = self.post(Some(&session), INITIALIZED).await;
        assert_eq!(notified.status, StatusCode::ACCEPTED, "{notified:?}");
        session
    }
}

fn call(id: u32, tool: &str, text: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{{"text":"{text}"}}}}}}"#
    )
}

#[tokio::test]
async fn a_session_gets_its_own_process_and_answers() {
    let check = check(4);
    let first = check.open_session().await;
    let second = check.open_session().await;
    assert_ne!(first, second);
    let echoed = check.post(Some(&first), &call(1, "echo", "one")).await;
    assert_eq!(echoed.content_type, "application/json", "{echoed:?}");
    assert_eq!(echoed.json()["result"]["content"][0]["text"], "one");
    assert_eq!(echoed.json()["id"], 1);

    let ended = check
        .send("DELETE", &[("mcp-session-id", &first)], None)
        .await;
    assert_eq!(ended.status, StatusCode::OK);
    let after = check.post(Some(&first), &call(2, "echo", "x")).await;
    assert_eq!(after.status, StatusCode::NOT_FOUND, "{after:?}");
    let other = check.post(Some(&second), &call(2, "echo", "two")).await;
    assert_eq!(other.json()["result"]["content"][0]["text"], "two");
}

#[tokio::test]
async fn sessions_have_their_own_process_unless_the_server_is_shared() {
    for shared in [false, true] {
        let check = check_with(4, shared);
        let (a, b) = (check.open_session().await, check.open_session().await);
        let pid_a = check.post(Some(&a), &call(1, "pid", "")).await.json();
        let pid_b = check.post(Some(&b), &call(1, "pid", "")).await.json();
        assert_eq!(pid_a["id"], 1);
        let (pid_a, pid_b) = (
            &pid_a["result"]["content"][0]["text"],
            &pid_b["result"]["content"][0]["text"],
        );
        assert!(pid_a.is_string(), "{pid_a}");
        assert_eq!(pid_a == pid_b, shared, "shared {shared}: {pid_a} {pid_b}");
    }
    // The shared process was initialized by the bridge; a client asking for an older revision
    // gets it back.
    let shared = check_with(4, true);
    let init = shared.post(None, INITIALIZE).await;
    assert_eq!(
        init.json()["result"]["protocolVersion"],
        "2025-06-18",
        "{init:?}"
    );
    let session = init.session.expect("a session");
    let stream = shared
        .send("GET", &[("mcp-session-id", &session)], None)
        .await;
    assert_eq!(stream.status, StatusCode::METHOD_NOT_ALLOWED);
    let ended = shared
        .send("DELETE", &[("mcp-session-id", &session)], None)
        .await;
    assert_eq!(ended.status, StatusCode::OK);
    let after = shared.post(Some(&session), &call(2, "pid", "")).await;
    assert_eq!(after.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_crash_answers_an_error_and_the_session_is_gone() {
    let check = check(4);
    let session = check.open_session().await;
    let crashed = check.post(Some(&session), &call(5, "crash", "")).await;
    assert_eq!(crashed.status, StatusCode::OK, "{crashed:?}");
    let error = &crashed.json()["error"];
    assert_eq!(crashed.json()["id"], 5);
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("exit code 3"), "{message}");
    assert!(
        message.contains("next request starts a new process"),
        "{message}"
    );
    // The gateway replays initialize on a 404: the next session works.
    let gone = check.post(Some(&session), &call(6, "echo", "x")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{gone:?}");
    let again = check.open_session().await;
    let echoed = check.post(Some(&again), &call(7, "echo", "back")).await;
    assert_eq!(echoed.json()["result"]["content"][0]["text"], "back");
}

#[tokio::test]
async fn server_requests_cross_the_bridge_both_ways() {
    let check = check(4);
    let session = check.open_session().await;
    // The sampling request goes out on the call's event stream; the client answers it with a
    // POST of its own, and the call's answer then ends that stream. The stream is read whole
    // only at its end, so the reply goes once the request is surely out.
    let ask = call(9, "ask", "");
    let reply = r#"{"jsonrpc":"2.0","id":"ask-1","result":{"role":"assistant","model":"m","content":{"type":"text","text":"sampled"}}}"#;
    let (asked, replied) = tokio::join!(check.post(Some(&session), &ask), async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        check.post(Some(&session), reply).await
    });
    assert_eq!(replied.status, StatusCode::ACCEPTED, "{replied:?}");
    assert_eq!(asked.content_type, "text/event-stream", "{asked:?}");
    let events: Vec<Value> = asked
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let methods: Vec<&str> = events
        .iter()
        .map(|e| e["method"].as_str().unwrap_or("(answer)"))
        .collect();
    assert_eq!(
        methods,
        [
            "notifications/message",
            "sampling/createMessage",
            "(answer)"
        ],
        "{asked:?}"
    );
    assert_eq!(events[2]["id"], 9);
    assert_eq!(events[2]["result"]["content"][0]["text"], "sampled");
}

#[tokio::test]
async fn at_the_limit_the_idlest_session_makes_room_unless_all_are_busy() {
    let check = check(1);
    let first = check.open_session().await;
    let second = check.open_session().await;
    let gone = check.post(Some(&first), &call(1, "echo", "x")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{gone:?}");
    let kept = check.post(Some(&second), &call(1, "echo", "kept")).await;
    assert_eq!(kept.json()["result"]["content"][0]["text"], "kept");

    // A session waiting for an answer (the server asked the client for sampling) is busy.
    let ask = call(2, "ask", "");
    let (asked, refused) = tokio::join!(check.post(Some(&second), &ask), async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let refused = check.post(None, INITIALIZE).await;
        let reply = r#"{"jsonrpc":"2.0","id":"ask-1","result":{"role":"assistant","model":"m","content":{"type":"text","text":"done"}}}"#;
        check.post(Some(&second), reply).await;
        refused
    });
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{refused:?}"
    );
    assert!(refused.body.contains("--stdio-sessions"), "{refused:?}");
    assert!(asked.body.contains("done"), "{asked:?}");
}

#[tokio::test]
async fn stateless_requests_share_a_process_with_their_own_ids() {
    let check = check(4);
    let headers = [("mcp-protocol-version", "2026-07-28")];
    let discover = r#"{"jsonrpc":"2.0","id":"d","method":"server/discover","params":{}}"#;
    let found = check.send("POST", &headers, Some(discover)).await;
    assert_eq!(found.status, StatusCode::OK, "{found:?}");
    assert!(found.session.is_none());
    let result = &found.json()["result"];
    assert_eq!(result["supportedVersions"][0], "2026-07-28");
    assert!(result["capabilities"]["tools"].is_object(), "{found:?}");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "stdio-test"
    );
    // Two clients using the same id at once each get their own answer.
    let enveloped = |text: &str| {
        call(1, "echo", text).replace(
            r#""arguments""#,
            r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"arguments""#,
        )
    };
    let (call_a, call_b) = (enveloped("a"), enveloped("b"));
    let (a, b) = tokio::join!(
        check.send("POST", &headers, Some(&call_a)),
        check.send("POST", &headers, Some(&call_b))
    );
    assert_eq!(a.json()["id"], 1);
    assert_eq!(a.json()["result"]["content"][0]["text"], "a");
    assert_eq!(b.json()["id"], 1);
    assert_eq!(b.json()["result"]["content"][0]["text"], "b");
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let check = check(4);
    let missing = check.post(None, &call(1, "echo", "x")).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(missing.body.contains("initialize first"), "{missing:?}");
    let garbage = check.post(None, "{nope").await;
    assert_eq!(garbage.json()["error"]["code"], -32700);
    let batch = check.post(None, "[]").await;
    assert!(batch.body.contains("one message per request"), "{batch:?}");
    let probe = check.send("GET", &[], None).await;
    assert_eq!(probe.status, StatusCode::METHOD_NOT_ALLOWED);
}
