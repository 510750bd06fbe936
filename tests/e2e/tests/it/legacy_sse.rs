//! Legacy HTTP+SSE (2024-11-05) clients through the gateway's `/servers/{name}/sse` bridge: the
//! official `mcp` SDK's `sse_client` and the FastMCP `Client`'s `SSETransport` list and call tools,
//! and keep their session when the instance behind it is killed; bad messages are refused.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use skyport_e2e::{Skyport, command, example, python, signal, wait_until};

/// How long one call may take (a cold start and a replay included).
const CALL: Duration = Duration::from_secs(120);

fn sse_url(sky: &Skyport, server: &str) -> String {
    format!("{}/servers/{server}/sse", sky.url())
}

/// A client process holding one legacy SSE session open (`clients/legacy_client.py hold`).
struct LegacyClient {
    kind: &'static str,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl LegacyClient {
    /// Connects; returns the client and its first line (`ready`, with the tools listed).
    fn open(kind: &'static str, url: &str) -> (LegacyClient, serde_json::Value) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/legacy_client.py");
        let mut child = command(python())
            .arg(script)
            .args(["hold", kind, url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the legacy client");
        let stdin = child.stdin.take().expect("client stdin");
        let stdout = child.stdout.take().expect("client stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut client = LegacyClient {
            kind,
            child,
            stdin,
            lines,
        };
        let ready = client.answer();
        (client, ready)
    }

    fn answer(&mut self) -> serde_json::Value {
        let line = self
            .lines
            .recv_timeout(CALL)
            .unwrap_or_else(|e| panic!("{} client gave no answer: {e}", self.kind));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    /// Calls hello(NAME) on the open session; the whole answer line.
    fn hello(&mut self, name: &str) -> serde_json::Value {
        writeln!(self.stdin, "call {name}").expect("write to the client");
        self.answer()
    }
}

impl Drop for LegacyClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn legacy_sse_clients_keep_their_session_across_an_instance_kill() {
    let mut sky = Skyport::serve();
    sky.deploy_ok(&example("hello"), "hello");
    let url = sse_url(&sky, "hello");
    let mut clients = Vec::new();
    for kind in ["sdk", "fastmcp"] {
        let (client, ready) = LegacyClient::open(kind, &url);
        assert_eq!(
            ready["ready"],
            true,
            "{kind} client did not connect over legacy SSE: {ready}\n{}",
            sky.log_tail(40)
        );
        assert_eq!(
            ready["tools"],
            serde_json::json!(["hello"]),
            "{kind}: {ready}"
        );
        clients.push(client);
    }
    let mut all_say = |step: &str, sky: &Skyport| {
        for client in &mut clients {
            let answer = client.hello(step);
            assert_eq!(
                answer["text"],
                format!("Hello, {step}!"),
                "{} client over legacy SSE, {step}: {answer}\n{}",
                client.kind,
                sky.log_tail(40)
            );
        }
    };
    all_say("first", &sky);

    let instances = sky.instances();
    assert!(!instances.is_empty(), "no instance serves the sessions");
    for instance in &instances {
        signal(&instance.pid.to_string(), "KILL");
    }
    // Gone from the process table is not yet seen by the runtime (a forked instance is reaped by
    // its zygote, which then reports it): wait for the runtime's own record of the exit, so the
    // call tests the session's replay rather than a request racing the news of the death.
    let noticed = wait_until(Duration::from_secs(10), || {
        sky.instances().iter().all(|i| !instances.contains(i))
            && sky.log().matches("exited (killed by signal 9)").count() >= instances.len()
    });
    assert!(
        noticed,
        "the runtime did not notice the killed instance\n{}",
        sky.log_tail(20)
    );
    all_say("after-kill", &sky);
}

#[test]
fn legacy_sse_refuses_bad_messages() {
    let sky = Skyport::serve();
    sky.deploy_ok(&example("hello"), "hello");
    let (run, v) = sky.client("legacy_client.py", &["raw", &sse_url(&sky, "hello")]);
    assert_eq!(v["ok"], true, "raw SSE client\n{run}\n{}", sky.log_tail(40));
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["content_type"], "text/event-stream", "{v}");
    let endpoint = v["endpoint"].as_str().unwrap_or_default();
    assert!(
        endpoint.starts_with("/servers/hello/messages?sessionId="),
        "endpoint event: {v}"
    );
    assert_eq!(v["malformed"]["status"], 400, "malformed JSON: {v}");
    assert_eq!(
        v["malformed"]["body"]["error"]["code"], -32700,
        "malformed JSON: {v}"
    );
    assert_eq!(v["unknown"]["status"], 404, "unknown sessionId: {v}");
    assert_eq!(v["unknown"]["body"]["id"], 9, "unknown sessionId: {v}");
    assert_eq!(
        v["unknown"]["body"]["error"]["code"], -32001,
        "unknown sessionId: {v}"
    );
}
