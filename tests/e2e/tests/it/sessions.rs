//! Client sessions that outlive what serves them: one session of the official `mcp` SDK and one of
//! the FastMCP `Client`, each held open by a client process, keep answering after the server scales
//! to zero, after its instance is killed with -9, after a redeploy, and after `skyport serve` itself
//! is killed with -9 and restarted; neither client ever re-initializes.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use skyport_e2e::{Skyport, command, copy_dir, example, python, signal, wait_until};

/// How long one call may take (a cold start and a replay included).
const CALL: Duration = Duration::from_secs(120);

/// A client process holding one MCP session open (`clients/session_client.py`).
struct SessionClient {
    kind: &'static str,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl SessionClient {
    fn open(kind: &'static str, url: &str) -> SessionClient {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/session_client.py");
        let mut child = command(python())
            .arg(script)
            .args([kind, url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the session client");
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
        let mut client = SessionClient {
            kind,
            child,
            stdin,
            lines,
        };
        let ready = client.answer();
        assert_eq!(
            ready["ready"], true,
            "{kind} client did not connect: {ready}"
        );
        client
    }

    fn answer(&mut self) -> serde_json::Value {
        let line = self
            .lines
            .recv_timeout(CALL)
            .unwrap_or_else(|e| panic!("{} client gave no answer: {e}", self.kind));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    /// Calls hello(NAME) on the open session; the answer's text.
    fn hello(&mut self, name: &str) -> String {
        writeln!(self.stdin, "call {name}").expect("write to the client");
        let answer = self.answer();
        assert_eq!(
            answer["ok"], true,
            "{} client, call {name}: {answer}",
            self.kind
        );
        answer["text"].as_str().unwrap_or_default().to_owned()
    }
}

impl Drop for SessionClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn one_session_survives_scale_to_zero_kill_redeploy_and_restart() {
    let mut sky = Skyport::serve();
    let source = sky.scratch().join("hello");
    copy_dir(&example("hello"), &source).expect("copy the example");
    let deployed = sky.deploy(&source, "hello", &["--idle-timeout", "2s"]);
    assert!(deployed.success, "{deployed}");
    let url = sky.mcp_url("hello");
    let mut clients = [
        SessionClient::open("sdk", &url),
        SessionClient::open("fastmcp", &url),
    ];
    let mut all_say = |step: &str, greeting: &str| {
        for client in &mut clients {
            let text = client.hello(step);
            assert_eq!(
                text,
                format!("{greeting}, {step}!"),
                "{} client after {step}",
                client.kind
            );
        }
    };
    all_say("first", "Hello");

    let idle = wait_until(Duration::from_secs(30), || sky.instances().is_empty());
    assert!(
        idle,
        "the server did not scale to zero\n{}",
        sky.log_tail(30)
    );
    all_say("after-scale-to-zero", "Hello");

    let instances = sky.instances();
    assert!(!instances.is_empty(), "no instance serves the session");
    for instance in &instances {
        signal(&instance.pid.to_string(), "KILL");
    }
    let replaced = wait_until(Duration::from_secs(10), || {
        sky.instances().iter().all(|i| !instances.contains(i))
    });
    assert!(replaced, "the killed instance is still listed");
    all_say("after-kill", "Hello");

    let server = source.join("main.py");
    let code = std::fs::read_to_string(&server).expect("read the example");
    std::fs::write(&server, code.replace("Hello, {name}!", "Howdy, {name}!")).expect("edit");
    let redeployed = sky.deploy(&source, "hello", &["--idle-timeout", "2s"]);
    assert!(redeployed.success, "{redeployed}");
    all_say("after-redeploy", "Howdy");

    sky.kill9();
    sky.restart();
    all_say("after-restart", "Howdy");
    assert!(
        sky.log().contains("replayed a session's initialize"),
        "no replay was logged\n{}",
        sky.log_tail(40)
    );
}
