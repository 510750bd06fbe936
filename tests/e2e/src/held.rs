//! A client process that holds one MCP session open and answers commands on stdin with JSON
//! lines (`clients/session_client.py`, `clients/legacy_client.py hold`), so a test can break
//! things between calls and see whether the session lives on.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use crate::{command, python};

/// How long one call may take (a cold start and a replay included).
const CALL: Duration = Duration::from_secs(120);

/// One client process and its open session.
pub struct HeldClient {
    /// Which client library it runs, for messages.
    pub kind: String,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl HeldClient {
    /// Starts `clients/SCRIPT ARGS…`; returns it with its first line (its `ready` report).
    pub fn open(kind: &str, script: &str, args: &[&str]) -> (HeldClient, serde_json::Value) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("clients")
            .join(script);
        let mut child = command(python())
            .arg(script)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the client");
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
        let mut client = HeldClient {
            kind: kind.to_owned(),
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
    pub fn hello(&mut self, name: &str) -> serde_json::Value {
        writeln!(self.stdin, "call {name}").expect("write to the client");
        self.answer()
    }

    /// Calls TOOL(name=NAME) on the open session (`session_client.py` only); the whole
    /// answer line.
    pub fn call(&mut self, tool: &str, name: &str) -> serde_json::Value {
        writeln!(self.stdin, "tool {tool} {name}").expect("write to the client");
        self.answer()
    }
}

impl Drop for HeldClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
