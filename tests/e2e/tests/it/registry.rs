//! The catalog end to end: a FastMCP server running outside Skyport (with its own bearer-token
//! check) added as an external server, then used through the real gateway by the official
//! `mcp` SDK: its tools listed and called with the configured token injected, a policy hiding a
//! tool, the token never shown by the API, the audit log or the serve log, and the remote
//! stopped: health says down, calls get a clear error, a hosted server keeps working. And the
//! official registry API: documents valid against the vendored `server.json` schema, pages,
//! search, versions, import; and catalog search by tool descriptions; both showing only what
//! the caller may see.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use skyport_e2e::{DirectServer, Skyport, copy_dir, example, http, wait_until};

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
    // The remote runs on this machine, which only a serve allowing private addresses accepts.
    let sky = Skyport::serve_with(&["--allow-private-externals"]);
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
        !deploy.success && deploy.output().contains("is an external server"),
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

/// The names of the servers `GET /api/v1/registry/search?q=WORDS` returns to `key`, with the
/// names of their matching tools.
fn search(sky: &Skyport, key: &str, words: &str) -> Vec<(String, Vec<String>)> {
    let (status, found) = get(
        sky,
        Some(key),
        &format!("/api/v1/registry/search?q={words}"),
    );
    assert_eq!(status, 200, "{found}");
    found["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let tools = s["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect();
            (s["name"].as_str().unwrap_or_default().to_owned(), tools)
        })
        .collect()
}

/// `GET PATH` with a bearer key (or none): status and JSON body.
fn get(sky: &Skyport, key: Option<&str>, path: &str) -> (u16, Value) {
    let bearer = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("Authorization", b)])
        .unwrap_or_default();
    let answer = http(&sky.addr(), "GET", path, &headers, None)
        .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", sky.log_tail(30)));
    (answer.status, answer.json().unwrap_or(Value::Null))
}

/// Validates a registry answer against the vendored official schema (`list` or `one`).
fn validate(sky: &Skyport, answer: &Value, shape: &str) {
    let file = sky.scratch().join(format!("answer-{shape}.json"));
    fs::write(&file, answer.to_string()).expect("write the answer");
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/server.schema.json");
    let (run, v) = sky.client(
        "validate_registry.py",
        &[&schema.to_string_lossy(), &file.to_string_lossy(), shape],
    );
    assert_eq!(v["ok"], true, "not valid server.json: {run}\n{answer}");
    assert!(v["checked"].as_u64() > Some(0), "{run}");
}

#[test]
fn the_registry_api_serves_valid_documents_of_what_the_caller_may_see() {
    let sky = Skyport::serve_with(&["--allow-private-externals"]);
    sky.deploy_ok(&example("hello"), "hello");
    let created = sky.cli(&["keys", "create", "--name", "registry-api"]);
    assert!(created.success, "{created}");
    let key = created.stdout.trim().to_owned();

    // A document imported from a file becomes an external entry: here one whose remote is
    // hello's own gateway URL, so calls go through the gateway twice.
    let doc = json!({
        "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
        "name": "com.example/Relay",
        "description": "Hello, relayed",
        "version": "2.0.0",
        "remotes": [{"type": "streamable-http", "url": sky.mcp_url("hello")}],
    });
    let file = sky.scratch().join("server.json");
    fs::write(&file, doc.to_string()).expect("write server.json");
    let imported = sky.cli(&["registry", "import", &file.to_string_lossy(), "--json"]);
    assert!(imported.success, "{imported}\n{}", sky.log_tail(30));
    assert_eq!(imported.json()["name"], "relay", "{imported}");
    assert_eq!(
        imported.json()["description"],
        "Hello, relayed",
        "{imported}"
    );
    sky.check_hello("relay", "relayed");

    // A repository's own server.json describes its server in the registry.
    let described = sky.scratch().join("described");
    copy_dir(&example("hello"), &described).expect("copy examples/hello");
    let own = json!({
        "name": "io.github.acme/described", "title": "Described hello",
        "description": "Greets, with metadata", "version": "3.2.1",
        "websiteUrl": "https://acme.example/hello",
        "repository": {"url": "https://github.com/acme/hello", "source": "github"}
    });
    fs::write(described.join("server.json"), own.to_string()).expect("write server.json");
    sky.deploy_ok(&described, "described");
    let (status, doc) = get(
        &sky,
        Some(&key),
        "/v0.1/servers/io.skyport.127.0.0.1%2Fdescribed/versions/3.2.1",
    );
    assert_eq!(status, 200, "{doc}");
    validate(&sky, &doc, "one");
    assert_eq!(doc["server"]["title"], "Described hello", "{doc}");
    assert_eq!(
        doc["server"]["description"], "Greets, with metadata",
        "{doc}"
    );
    assert_eq!(
        doc["server"]["websiteUrl"], "https://acme.example/hello",
        "{doc}"
    );
    assert_eq!(
        doc["server"]["repository"]["url"], "https://github.com/acme/hello",
        "{doc}"
    );
    assert!(sky.cli(&["servers", "rm", "described"]).success);

    // Search finds servers by their tools' descriptions: hello's own (from its inspection),
    // and relay's (from its health check, which lists hello's tools through the gateway).
    assert_eq!(check(&sky, "relay")["external"]["health"], "up");
    let mut found = Vec::new();
    let indexed = wait_until(Duration::from_secs(20), || {
        found = search(&sky, &key, "greet%20someone");
        found.len() == 2
    });
    assert!(indexed, "{found:?}");
    assert_eq!(
        found,
        [
            ("hello".to_owned(), vec!["hello".to_owned()]),
            ("relay".to_owned(), vec!["hello".to_owned()])
        ]
    );
    let cli = sky.cli(&["registry", "search", "relayed"]);
    assert!(
        cli.success && cli.stdout.starts_with("relay (external)"),
        "{cli}"
    );
    assert!(search(&sky, &key, "nonexistentword").is_empty());
    let (status, _) = get(&sky, Some(&key), "/api/v1/registry/search?q=%22%2A");
    assert_eq!(status, 400);

    // Like /api/v1, the registry needs a key.
    let (status, _) = get(&sky, None, "/v0.1/servers");
    assert_eq!(status, 401);

    let (status, listing) = get(&sky, Some(&key), "/v0.1/servers");
    assert_eq!(status, 200, "{listing}");
    validate(&sky, &listing, "list");
    let names: Vec<&str> = listing["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["server"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["io.skyport.127.0.0.1/hello", "io.skyport.127.0.0.1/relay"],
        "{listing}"
    );
    let hello = &listing["servers"][0];
    assert_eq!(
        hello["server"]["remotes"],
        json!([{"type": "streamable-http", "url": sky.mcp_url("hello")}]),
        "{hello}"
    );
    assert_eq!(hello["server"]["version"], "1.0.1", "{hello}");
    assert_eq!(
        hello["server"]["_meta"]["io.skyport/catalog"]["kind"],
        "hosted"
    );
    assert_eq!(
        listing["servers"][1]["server"]["_meta"]["io.skyport/catalog"]["kind"],
        "external"
    );

    // Pages, search and one version, by URL-encoded name.
    let (_, first) = get(&sky, Some(&key), "/v0.1/servers?limit=1");
    assert_eq!(
        first["servers"].as_array().map(Vec::len),
        Some(1),
        "{first}"
    );
    let cursor = first["metadata"]["nextCursor"]
        .as_str()
        .expect("a next cursor");
    let (_, second) = get(
        &sky,
        Some(&key),
        &format!(
            "/v0.1/servers?limit=1&cursor={}",
            cursor.replace('/', "%2F")
        ),
    );
    assert_eq!(
        second["servers"][0]["server"]["name"],
        "io.skyport.127.0.0.1/relay"
    );
    assert!(second["metadata"].get("nextCursor").is_none(), "{second}");
    let (_, found) = get(&sky, Some(&key), "/v0.1/servers?search=rela&version=latest");
    assert_eq!(
        found["servers"].as_array().map(Vec::len),
        Some(1),
        "{found}"
    );
    let (_, none) = get(
        &sky,
        Some(&key),
        "/v0.1/servers?updated_since=2999-01-01T00:00:00Z",
    );
    assert_eq!(none["servers"], json!([]), "{none}");
    let one = "/v0.1/servers/io.skyport.127.0.0.1%2Fhello/versions";
    let (status, latest) = get(&sky, Some(&key), &format!("{one}/latest"));
    assert_eq!(status, 200, "{latest}");
    validate(&sky, &latest, "one");
    let (status, exact) = get(&sky, Some(&key), &format!("{one}/1.0.1"));
    assert_eq!((status, &exact), (200, &latest));
    let (status, _) = get(&sky, Some(&key), &format!("{one}/9.9.9"));
    assert_eq!(status, 404);
    let (status, versions) = get(&sky, Some(&key), one);
    assert_eq!(status, 200, "{versions}");
    validate(&sky, &versions, "list");

    // A caller with no role on a server does not see it, here or by name.
    assert!(sky.cli(&["users", "add", "bot", "--service"]).success);
    let bot = sky.cli(&["keys", "create", "--for", "bot"]);
    assert!(bot.success, "{bot}");
    let bot = bot.stdout.trim().to_owned();
    let (status, empty) = get(&sky, Some(&bot), "/v0.1/servers");
    assert_eq!((status, &empty["servers"]), (200, &json!([])), "{empty}");
    let (status, _) = get(&sky, Some(&bot), &format!("{one}/latest"));
    assert_eq!(status, 404);
    assert!(search(&sky, &bot, "greet").is_empty());
    assert!(
        sky.cli(&["access", "grant", "relay", "bot", "viewer"])
            .success
    );
    let (_, granted) = get(&sky, Some(&bot), "/v0.1/servers");
    let names: Vec<&str> = granted["servers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["server"]["name"].as_str())
        .collect();
    assert_eq!(names, ["io.skyport.127.0.0.1/relay"], "{granted}");
    let found = search(&sky, &bot, "greet");
    assert_eq!(found, [("relay".to_owned(), vec!["hello".to_owned()])]);

    // A tool the server's policy hides from a caller is not found by that caller's search,
    // while others still find it.
    let deny = sky.cli(&[
        "policy",
        "add",
        "relay",
        "deny",
        "principal:bot",
        "tool:hello",
    ]);
    assert!(deny.success, "{deny}");
    let mut found = Vec::new();
    let hidden = wait_until(Duration::from_secs(10), || {
        found = search(&sky, &bot, "greet%20someone");
        found.is_empty()
    });
    assert!(hidden, "{found:?}");
    assert_eq!(
        search(&sky, &key, "greet%20someone"),
        [
            ("hello".to_owned(), vec!["hello".to_owned()]),
            ("relay".to_owned(), vec!["hello".to_owned()])
        ]
    );
}
