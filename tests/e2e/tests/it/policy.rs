//! Tool-level policies end to end: rules added with `skyport policy`, applied by the real
//! gateway to a real FastMCP server and the official `mcp` SDK (sessions and the stateless
//! revision): lists filtered, denied calls answered like unknown names without reaching the
//! server, a raw batch mixing allowed and denied calls, `denied` in the audit log, and rules
//! taking and losing effect as they are added and removed.
//!
//! The admin key is the only principal here, so `principal:` and `role:` rules are written for
//! it; the anonymous caller shows that such rules do not reach others.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use skyport_e2e::{HttpResponse, Skyport, http, wait_until};

/// A FastMCP server with two tools, two prompts, two resources and two templates; each one
/// that runs writes its name to `$SEEN_FILE`, so the test knows what reached the server.
pub(crate) const NOTES_SERVER: &str = r#"import os

from fastmcp import FastMCP

mcp = FastMCP("notes")


def saw(what):
    with open(os.environ["SEEN_FILE"], "a") as f:
        f.write(what + "\n")


@mcp.tool
def read_note(id: str) -> str:
    saw("read_note")
    return f"note {id}"


@mcp.tool
def delete_note(id: str) -> str:
    saw("delete_note")
    return f"deleted {id}"


@mcp.prompt
def summary(topic: str) -> str:
    saw("summary")
    return f"Summarize {topic}"


@mcp.prompt
def secret_plan(topic: str) -> str:
    saw("secret_plan")
    return f"The secret plan for {topic}"


@mcp.resource("notes://index")
def index() -> str:
    saw("notes://index")
    return "the index"


@mcp.resource("notes://private")
def private() -> str:
    saw("notes://private")
    return "private notes"


@mcp.resource("notes://{id}")
def note(id: str) -> str:
    return f"note {id}"


@mcp.resource("notes://public/{id}")
def public_note(id: str) -> str:
    return f"public note {id}"
"#;

/// The rules under test, as `skyport policy add notes …` takes them.
const RULES: [[&str; 3]; 4] = [
    ["deny", "role:admin", "tool:delete_*"],
    ["deny", "*", "prompt:secret_*"],
    ["deny", "principal:admin", "resource:notes://priv*"],
    ["allow", "*", "template:notes://public/*"],
];

fn notes_server(sky: &Skyport) -> PathBuf {
    let dir = sky.scratch().join("notes");
    fs::create_dir_all(&dir).expect("create the server folder");
    fs::write(dir.join("main.py"), NOTES_SERVER).expect("write the server");
    dir
}

/// What the server saw, one name per line.
pub(crate) fn seen(file: &Path) -> Vec<String> {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Everything `policy_client.py` reports for a caller (`-` is anonymous) in a protocol mode.
pub(crate) fn view(sky: &Skyport, key: &str, mode: &str) -> Value {
    let (run, v) = sky.client("policy_client.py", &[&sky.mcp_url("notes"), key, mode]);
    assert_eq!(
        v["ok"],
        true,
        "policy client ({mode}) failed\n{run}\n{}",
        sky.log_tail(40)
    );
    v
}

/// The answer FastMCP gives for a tool it does not know.
pub(crate) fn unknown_tool(name: &str) -> Value {
    json!({"text": format!("Unknown tool: '{name}'"), "is_error": true})
}

/// The answer FastMCP gives for a resource URI it does not have.
pub(crate) fn not_found(uri: &str) -> Value {
    json!({"code": -32602, "message": format!("Resource not found: '{uri}'"), "data": {"uri": uri}})
}

/// The answer FastMCP gives for a prompt it does not know.
pub(crate) fn unknown_prompt(name: &str) -> Value {
    json!({"code": -32602, "message": format!("Unknown prompt: '{name}'"), "data": null})
}

/// What the admin key sees with every rule in place, in either protocol era.
fn check_admin_view(v: &Value) {
    assert_eq!(v["tools"], json!(["read_note"]), "{v}");
    assert_eq!(v["prompts"], json!(["summary"]), "{v}");
    assert_eq!(v["resources"], json!(["notes://index"]), "{v}");
    assert_eq!(v["templates"], json!(["notes://public/{id}"]), "{v}");
    let calls = &v["calls"];
    assert_eq!(
        calls["read_note"],
        json!({"text": "note 1", "is_error": false}),
        "{v}"
    );
    // A denied name is answered exactly as a name the server does not have.
    assert_eq!(calls["delete_note"], unknown_tool("delete_note"), "{v}");
    assert_eq!(calls["no_such_tool"], unknown_tool("no_such_tool"), "{v}");
    assert_eq!(calls["secret_plan"], unknown_prompt("secret_plan"), "{v}");
    assert_eq!(
        calls["no_such_prompt"],
        unknown_prompt("no_such_prompt"),
        "{v}"
    );
    assert_eq!(
        calls["notes://private"],
        not_found("notes://private"),
        "{v}"
    );
    assert_eq!(calls["memo://nope"], not_found("memo://nope"), "{v}");
    assert_eq!(calls["summary"], json!({"text": "Summarize t"}), "{v}");
    assert_eq!(calls["notes://index"], json!({"text": "the index"}), "{v}");
}

/// A raw session-era POST with the key.
pub(crate) fn post(sky: &Skyport, key: &str, session: Option<&str>, body: &str) -> HttpResponse {
    let bearer = format!("Bearer {key}");
    let mut headers = vec![
        ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"),
        ("Authorization", bearer.as_str()),
        ("MCP-Protocol-Version", "2025-03-26"),
    ];
    if let Some(session) = session {
        headers.push(("Mcp-Session-Id", session));
    }
    http(
        &sky.addr(),
        "POST",
        "/servers/notes/mcp",
        &headers,
        Some(body),
    )
    .unwrap_or_else(|e| panic!("POST /servers/notes/mcp: {e}\n{}", sky.log_tail(40)))
}

/// Opens a session of revision 2025-03-26 with the key (initialize, then initialized): its id,
/// or the answer to `initialize` when that was not a success.
pub(crate) fn open_session(sky: &Skyport, key: &str) -> Result<String, HttpResponse> {
    let init = post(
        sky,
        key,
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"e2e","version":"0"}}}"#,
    );
    let Some(session) = init.header("mcp-session-id").filter(|_| init.status == 200) else {
        return Err(init);
    };
    let session = session.to_owned();
    let initialized = post(
        sky,
        key,
        Some(&session),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert!(initialized.status < 300, "{initialized:?}");
    Ok(session)
}

/// A batch (revision 2025-03-26) of an allowed call, a denied call and a denied prompt: each
/// element is judged on its own and the answers come back as one array.
fn check_batch(sky: &Skyport, key: &str) {
    let session = open_session(sky, key).unwrap_or_else(|init| panic!("{init:?}"));
    let batch = post(
        sky,
        key,
        Some(&session),
        r#"[{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_note","arguments":{"id":"b"}}},
            {"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"delete_note","arguments":{"id":"b"}}},
            {"jsonrpc":"2.0","id":4,"method":"prompts/get","params":{"name":"secret_plan","arguments":{"topic":"b"}}}]"#,
    );
    assert_eq!(batch.status, 200, "{batch:?}");
    let answers = batch.json().expect("a JSON batch answer");
    let by_id = |id: i64| {
        answers
            .as_array()
            .and_then(|all| all.iter().find(|a| a["id"] == id))
            .unwrap_or_else(|| panic!("no answer {id} in {answers}"))
            .clone()
    };
    assert_eq!(
        by_id(2)["result"]["content"][0]["text"],
        "note b",
        "{answers}"
    );
    assert_eq!(by_id(2)["result"]["isError"], false, "{answers}");
    assert_eq!(
        by_id(3)["result"]["content"][0]["text"],
        "Unknown tool: 'delete_note'",
        "{answers}"
    );
    assert_eq!(by_id(3)["result"]["isError"], true, "{answers}");
    assert_eq!(by_id(4)["error"]["code"], -32602, "{answers}");
    assert_eq!(
        by_id(4)["error"]["message"],
        "Unknown prompt: 'secret_plan'",
        "{answers}"
    );
}

#[test]
fn policies_filter_lists_and_deny_calls_through_the_gateway() {
    let sky = Skyport::serve();
    let seen_file = sky.scratch().join("seen.txt");
    let env = format!("SEEN_FILE={}", seen_file.display());
    let run = sky.deploy(&notes_server(&sky), "notes", &["--env", &env]);
    assert!(run.success, "deploy failed\n{run}");
    let created = sky.cli(&["keys", "create", "--name", "policy-e2e"]);
    assert!(created.success, "{created}");
    let key = created.stdout.trim().to_owned();

    // Nothing is denied before a rule exists.
    let open = view(&sky, &key, "legacy");
    assert_eq!(open["tools"], json!(["delete_note", "read_note"]), "{open}");
    fs::remove_file(&seen_file).expect("reset what the server saw");

    // Rules are parsed at the edge: a typo gets what to write instead.
    let typo = sky.cli(&["policy", "add", "notes", "deny", "role:owner", "tool:x"]);
    assert!(
        !typo.success && typo.stderr.contains("role:viewer"),
        "{typo}"
    );
    let bearer = format!("Bearer {key}");
    let refused = http(
        &sky.addr(),
        "POST",
        "/api/v1/servers/notes/policies",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &bearer),
        ],
        Some(r#"{"effect":"deny","selector":"*","capability":"tools:x"}"#),
    )
    .expect("POST a bad rule");
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(
        refused.body.contains("invalid_policy") && refused.body.contains("tool:GLOB"),
        "{refused:?}"
    );

    let mut ids = Vec::new();
    for [effect, selector, capability] in RULES {
        let add = sky.cli(&[
            "policy", "add", "notes", effect, selector, capability, "--json",
        ]);
        assert!(add.success, "{add}");
        ids.push(add.json()["id"].as_str().expect("a rule id").to_owned());
    }
    let listed = sky.cli(&["policy", "ls", "notes", "--json"]);
    assert!(listed.success, "{listed}");
    let listed = listed.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(4), "{listed}");
    assert_eq!(listed[0]["capability"], "tool:delete_*", "{listed}");
    assert_eq!(listed[0]["created_by"], "admin", "{listed}");

    // The gateway follows the store's change feed a moment after the commit.
    let mut admin = Value::Null;
    let applied = wait_until(Duration::from_secs(20), || {
        admin = view(&sky, &key, "legacy");
        admin["templates"] == json!(["notes://public/{id}"])
    });
    assert!(applied, "the rules did not take effect: {admin}");
    check_admin_view(&admin);
    check_admin_view(&view(&sky, &key, "2026-07-28"));
    check_batch(&sky, &key);

    // Denied calls never reached the server; allowed ones did.
    let saw = seen(&seen_file);
    for denied in ["delete_note", "secret_plan", "notes://private"] {
        assert!(
            !saw.iter().any(|s| s == denied),
            "the server saw {denied}: {saw:?}"
        );
    }
    for allowed in ["read_note", "summary", "notes://index"] {
        assert!(
            saw.iter().any(|s| s == allowed),
            "the server never saw {allowed}: {saw:?}"
        );
    }

    // Rules for the admin's role and name do not reach an anonymous caller; `*` ones do.
    let anonymous = view(&sky, "-", "legacy");
    assert_eq!(
        anonymous["tools"],
        json!(["delete_note", "read_note"]),
        "{anonymous}"
    );
    assert_eq!(anonymous["prompts"], json!(["summary"]), "{anonymous}");
    assert_eq!(
        anonymous["resources"],
        json!(["notes://index", "notes://private"]),
        "{anonymous}"
    );
    assert_eq!(
        anonymous["templates"],
        json!(["notes://public/{id}"]),
        "{anonymous}"
    );

    // Denials are in the audit log, with who and what.
    let mut records = Value::Null;
    let audited = wait_until(Duration::from_secs(20), || {
        let run = sky.cli(&["audit", "--server", "notes", "--json", "-n", "500"]);
        records = run.json();
        records.as_array().is_some_and(|all| {
            all.iter()
                .any(|r| r["outcome"] == "denied" && r["target"] == "secret_plan")
        })
    });
    assert!(audited, "no denied prompts/get in the audit log: {records}");
    let all = records.as_array().cloned().unwrap_or_default();
    let denied_call = all
        .iter()
        .find(|r| r["outcome"] == "denied" && r["target"] == "delete_note")
        .unwrap_or_else(|| panic!("no denied tools/call: {records}"));
    assert_eq!(denied_call["method"], "tools/call", "{denied_call}");
    assert_eq!(denied_call["principal_name"], "admin", "{denied_call}");
    let table = sky.cli(&["audit", "--server", "notes"]);
    assert!(table.stdout.contains("denied"), "{table}");

    // Removing a rule gives the tool back.
    let rm = sky.cli(&["policy", "rm", "notes", &ids[0]]);
    assert!(rm.success && rm.stdout.contains("tool:delete_*"), "{rm}");
    let mut after = Value::Null;
    let restored = wait_until(Duration::from_secs(20), || {
        after = view(&sky, &key, "legacy");
        after["tools"] == json!(["delete_note", "read_note"])
    });
    assert!(restored, "the removed rule still applies: {after}");
    let missing = sky.cli(&["policy", "rm", "notes", &ids[0]]);
    assert!(
        !missing.success && missing.stderr.contains("skyport policy ls notes"),
        "{missing}"
    );
}
