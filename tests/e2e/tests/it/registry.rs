//! The catalog end to end: a FastMCP server running outside Skyport (with its own bearer-token
//! check) added as an external server, then used through the real gateway by the official
//! `mcp` SDK: its tools listed and called with the configured token injected, a policy hiding a
//! tool, the token never shown by the API, the audit log or the serve log, and the remote
//! stopped: health says down, calls get a clear error, a hosted server keeps working.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use skyport_e2e::{DirectServer, Skyport, example, wait_until};

use crate::policy::{NOTES_SERVER, seen, unknown_tool, view};

/// The bearer token the remote accepts; it must never leave Skyport's store but to the remote.
const TOKEN: &str = "remote-s3cret-7f1c9a";

/// Serves `notes.py` (the policy test's server) over streamable HTTP behind a bearer check,
/// as a third party would; notes which `skyport-*` headers reached it.
const REMOTE_MAIN: &str = r#"import argparse
import os
import pathlib

here = pathlib.Path(__file__).parent
os.environ["SEEN_FILE"] = str(here / "seen.txt")
TOKEN = (here / "token.txt").read_text().strip()

import uvicorn
from notes import mcp


class BearerCheck:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            for name in headers:
                if name.startswith(b"skyport-"):
                    with open(os.environ["SEEN_FILE"], "a") as f:
                        f.write("header:" + name.decode() + "\n")
            if headers.get(b"authorization", b"").decode() != f"Bearer {TOKEN}":
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": b'{"error": "unauthorized"}'})
                return
        await self.app(scope, receive, send)


parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int)
parser.add_argument("--host")
args = parser.parse_args()
uvicorn.run(BearerCheck(mcp.http_app(path="/mcp")), host=args.host, port=args.port, log_level="warning")
"#;

/// The remote's folder, written into the serve's scratch dir.
fn remote_folder(sky: &Skyport) -> PathBuf {
    let dir = sky.scratch().join("remote");
    fs::create_dir_all(&dir).expect("create the remote's folder");
    fs::write(dir.join("notes.py"), NOTES_SERVER).expect("write notes.py");
    fs::write(dir.join("main.py"), REMOTE_MAIN).expect("write main.py");
    fs::write(dir.join("token.txt"), TOKEN).expect("write the token");
    dir
}

/// `registry check NAME --json`, which must succeed.
fn check(sky: &Skyport, name: &str) -> Value {
    let run = sky.cli(&["registry", "check", name, "--json"]);
    assert!(run.success, "{run}\n{}", sky.log_tail(30));
    run.json()
}

#[test]
fn an_external_server_is_served_with_skyports_auth_policies_and_health() {
    let sky = Skyport::serve();
    sky.deploy_ok(&example("hello"), "hello");
    let folder = remote_folder(&sky);
    let remote = DirectServer::start(&folder, &sky.scratch().join("remote.log"));
    let seen_file = folder.join("seen.txt");
    let created = sky.cli(&["keys", "create", "--name", "registry-e2e"]);
    assert!(created.success, "{created}");
    let key = created.stdout.trim().to_owned();
    let home = sky.scratch().join("home");

    // Settings are parsed at the edge.
    let bad = sky.cli(&["registry", "add-external", "notes", "ftp://example.com/mcp"]);
    assert!(
        !bad.success && bad.output().contains("http:// or https://"),
        "{bad}"
    );
    let reserved = sky.cli(&[
        "registry",
        "add-external",
        "notes",
        &remote.mcp_url(),
        "--header",
        "Mcp-Session-Id: x",
    ]);
    assert!(
        !reserved.success && reserved.output().contains("cannot be configured"),
        "{reserved}"
    );

    // The token comes from a variable, the way a script would pass it.
    let add = sky.cli_as(
        &home,
        &[("SKYPORT_TOKEN", key.as_str()), ("NOTES_TOKEN", TOKEN)],
        &[
            "registry",
            "add-external",
            "notes",
            &remote.mcp_url(),
            "--bearer-env",
            "NOTES_TOKEN",
            "--description",
            "Notes kept by a third party",
            "--json",
        ],
    );
    assert!(add.success, "{add}\n{}", sky.log_tail(30));
    let added = add.json();
    assert_eq!(added["kind"], "external", "{added}");
    assert_eq!(
        added["external"]["headers"],
        json!(["Authorization"]),
        "{added}"
    );

    // Names are unique across kinds, both ways.
    let again = sky.cli(&["registry", "add-external", "hello", &remote.mcp_url()]);
    assert!(
        !again.success && again.output().contains("already a server of kind hosted"),
        "{again}"
    );
    let deploy = sky.deploy(&example("hello"), "notes", &[]);
    assert!(
        !deploy.success && deploy.output().contains("not a hosted server"),
        "{deploy}"
    );

    // A check lists the remote's tools.
    let checked = check(&sky, "notes");
    assert_eq!(checked["external"]["health"], "up", "{checked}");
    let tools: Vec<&str> = checked["external"]["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(tools, ["read_note", "delete_note"], "{checked}");

    // The SDK uses it through the gateway, with and without a key, in both eras.
    let open = view(&sky, "-", "legacy");
    assert_eq!(open["tools"], json!(["delete_note", "read_note"]), "{open}");
    assert_eq!(
        open["calls"]["read_note"],
        json!({"text": "note 1", "is_error": false}),
        "{open}"
    );
    let keyed = view(&sky, &key, "2026-07-28");
    assert_eq!(keyed["calls"]["read_note"]["text"], "note 1", "{keyed}");

    // A policy on it hides a tool and answers its calls as an unknown name's.
    let rule = sky.cli(&["policy", "add", "notes", "deny", "*", "tool:delete_*"]);
    assert!(rule.success, "{rule}");
    fs::remove_file(&seen_file).expect("reset what the remote saw");
    let mut denied = Value::Null;
    let applied = wait_until(Duration::from_secs(20), || {
        denied = view(&sky, "-", "legacy");
        denied["tools"] == json!(["read_note"])
    });
    assert!(applied, "the policy did not apply: {denied}");
    assert_eq!(
        denied["calls"]["delete_note"],
        unknown_tool("delete_note"),
        "{denied}"
    );
    let saw = seen(&seen_file);
    assert!(saw.iter().any(|s| s == "read_note"), "{saw:?}");
    assert!(!saw.iter().any(|s| s == "delete_note"), "{saw:?}");
    // Neither the client's key nor Skyport's identity headers reached the third party.
    assert!(!saw.iter().any(|s| s.starts_with("header:")), "{saw:?}");

    // The token is shown nowhere.
    let shown = sky.cli(&["servers", "show", "notes", "--json"]);
    let listed = sky.cli(&["servers", "ls", "--json"]);
    let audit = sky.cli(&["audit", "--json", "-n", "500"]);
    let control = sky.cli(&["audit", "--kind", "control", "--json"]);
    for text in [
        &shown.stdout,
        &listed.stdout,
        &audit.stdout,
        &control.stdout,
        &add.output(),
        &sky.log(),
    ] {
        assert!(!text.contains(TOKEN), "the token leaked: {text}");
    }
    assert!(shown.stdout.contains("Authorization"), "{shown}");

    // The remote stops: health says so, calls get a clear error, hosted servers carry on.
    drop(remote);
    let down = check(&sky, "notes");
    assert_eq!(down["external"]["health"], "down", "{down}");
    assert!(
        down["external"]["health_error"]
            .as_str()
            .is_some_and(|e| e.contains("unreachable")),
        "{down}"
    );
    let table = sky.cli(&["servers", "ls"]);
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("notes") && l.contains("external") && l.contains("down")),
        "{table}"
    );
    let (run, failed) = sky.client(
        "sdk_client.py",
        &["call", &sky.mcp_url("notes"), "read_note", r#"{"id":"1"}"#],
    );
    assert_eq!(failed["ok"], false, "{run}");
    assert!(
        run.output()
            .contains("external server 'notes' did not answer"),
        "{run}"
    );
    sky.check_hello("hello", "still-here");
}
