//! The access-control matrix end to end: real principals (the org admin, an editor, a viewer, a
//! service account that is a viewer through a group, and a member without any grant) use one
//! auth-on FastMCP server through the real gateway, with the official `mcp` SDK and with a raw
//! JSON-RPC batch, under overlapping tool-level policies. Every cell of [`MATRIX`] is asserted:
//! the lists each principal gets, the calls the server answers, the calls a policy denies without
//! the server seeing them, and the `403` for everything of a caller without a role. Then forged
//! identity headers, and the `denied` entries of the audit log with their callers.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use skyport_e2e::{Skyport, wait_until};

use crate::access::Person;
use crate::keys::headers_via;
use crate::policy::{
    NOTES_SERVER, not_found, open_session, post, seen, unknown_prompt, unknown_tool,
};

/// Appended to [`NOTES_SERVER`]: a tool answering with its request's headers, named `read_*` so
/// that the viewers' allow-list admits it.
const READ_HEADERS: &str = r#"

from fastmcp.server.dependencies import get_http_headers


@mcp.tool
def read_headers() -> dict:
    return get_http_headers(include_all=True)
"#;

/// The rules, as `skyport policy add notes …` takes them: an allow glob, a deny glob for a
/// group, an allow and a deny that overlap (the deny wins), a resource rule, and one naming the
/// org admin.
const RULES: [[&str; 3]; 6] = [
    ["allow", "role:viewer", "tool:read_*"],
    ["deny", "group:bots", "prompt:secret_*"],
    ["allow", "principal:ed", "tool:*"],
    ["deny", "role:editor", "tool:delete_*"],
    ["deny", "role:viewer", "resource:notes://priv*"],
    ["deny", "principal:admin", "prompt:summary"],
];

/// What becomes of one principal's call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cell {
    /// The server answers it.
    Allowed,
    /// A policy denies it: the gateway answers as the server does for a name it does not have.
    Denied,
    /// The caller has no role on the server: the gateway answers `403`.
    Forbidden,
}

use Cell::{Allowed as A, Denied as D, Forbidden as F};

/// A call every principal makes, with the SDK (`policy_client.py`) and again in a batch.
struct Call {
    method: &'static str,
    name: &'static str,
    /// The text the server answers with; `None` for a name it does not have.
    answer: Option<&'static str>,
}

/// The columns of [`MATRIX`].
const CALLS: [Call; 9] = [
    Call {
        method: "tools/call",
        name: "read_note",
        answer: Some("note 1"),
    },
    Call {
        method: "tools/call",
        name: "delete_note",
        answer: Some("deleted 1"),
    },
    Call {
        method: "prompts/get",
        name: "summary",
        answer: Some("Summarize t"),
    },
    Call {
        method: "prompts/get",
        name: "secret_plan",
        answer: Some("The secret plan for t"),
    },
    Call {
        method: "resources/read",
        name: "notes://index",
        answer: Some("the index"),
    },
    Call {
        method: "resources/read",
        name: "notes://private",
        answer: Some("private notes"),
    },
    Call {
        method: "tools/call",
        name: "no_such_tool",
        answer: None,
    },
    Call {
        method: "prompts/get",
        name: "no_such_prompt",
        answer: None,
    },
    Call {
        method: "resources/read",
        name: "memo://nope",
        answer: None,
    },
];

/// One principal: what its lists show and what becomes of each of [`CALLS`].
struct Row {
    who: &'static str,
    tools: &'static [&'static str],
    prompts: &'static [&'static str],
    resources: &'static [&'static str],
    calls: [Cell; 9],
}

/// The expectation: principal × method. The last three columns name nothing the server has:
/// the answer is the same either way, but outside an allow-list the gateway gives it (and the
/// audit log says `denied`).
const MATRIX: [Row; 5] = [
    // Org admin: everything but what a rule names it for.
    Row {
        who: "admin",
        tools: &["delete_note", "read_headers", "read_note"],
        prompts: &["secret_plan"],
        resources: &["notes://index", "notes://private"],
        calls: [A, A, D, A, A, A, A, A, A],
    },
    // Editor: allowed every tool by name, but the editors' deny wins for delete_*.
    Row {
        who: "ed",
        tools: &["read_headers", "read_note"],
        prompts: &["secret_plan", "summary"],
        resources: &["notes://index", "notes://private"],
        calls: [A, D, A, A, A, A, A, A, A],
    },
    // Viewer: only read_* tools, no private resources.
    Row {
        who: "vi",
        tools: &["read_headers", "read_note"],
        prompts: &["secret_plan", "summary"],
        resources: &["notes://index"],
        calls: [A, D, A, A, A, D, D, A, A],
    },
    // A viewer through the group `bots`: the viewers' rules and the group's.
    Row {
        who: "svc",
        tools: &["read_headers", "read_note"],
        prompts: &["summary"],
        resources: &["notes://index"],
        calls: [A, D, A, D, A, D, D, A, A],
    },
    // A member without a grant: refused at the gateway.
    Row {
        who: "nobody",
        tools: &[],
        prompts: &[],
        resources: &[],
        calls: [F; 9],
    },
];

/// No rule is about templates: everyone with a role sees both.
const TEMPLATES: [&str; 2] = ["notes://public/{id}", "notes://{id}"];

/// The answer `policy_client.py` reports for `call` when it goes as `cell` says.
fn expected(call: &Call, cell: Cell) -> Value {
    let answer = call.answer.filter(|_| cell == A);
    match (call.method, answer) {
        ("tools/call", Some(text)) => json!({"text": text, "is_error": false}),
        ("tools/call", None) => unknown_tool(call.name),
        (_, Some(text)) => json!({"text": text}),
        ("prompts/get", None) => unknown_prompt(call.name),
        _ => not_found(call.name),
    }
}

/// All of [`CALLS`] as one JSON-RPC batch, with the arguments `policy_client.py` sends; the
/// request for `CALLS[i]` has the id `i`.
fn batch_body() -> String {
    let requests: Vec<Value> = CALLS
        .iter()
        .enumerate()
        .map(|(id, call)| {
            let params = match call.method {
                "tools/call" => json!({"name": call.name, "arguments": {"id": "1"}}),
                "prompts/get" => json!({"name": call.name, "arguments": {"topic": "t"}}),
                _ => json!({"uri": call.name}),
            };
            json!({"jsonrpc": "2.0", "id": id, "method": call.method, "params": params})
        })
        .collect();
    Value::from(requests).to_string()
}

/// A JSON-RPC answer in the shape `policy_client.py` reports, so one expectation fits both.
fn reported(method: &str, answer: &Value) -> Value {
    if let Some(e) = answer.get("error") {
        let data = e.get("data").cloned().unwrap_or(Value::Null);
        return json!({"code": e["code"], "message": e["message"], "data": data});
    }
    let result = &answer["result"];
    match method {
        "tools/call" => {
            json!({"text": result["content"][0]["text"], "is_error": result["isError"]})
        }
        "prompts/get" => json!({"text": result["messages"][0]["content"]["text"]}),
        _ => json!({"text": result["contents"][0]["text"]}),
    }
}

/// The lists a principal's view shows, as the row says they should look.
fn lists_match(row: &Row, v: &Value) -> bool {
    v["ok"] == true
        && v["tools"] == json!(row.tools)
        && v["prompts"] == json!(row.prompts)
        && v["resources"] == json!(row.resources)
        && v["templates"] == json!(TEMPLATES)
}

fn policy_view(sky: &Skyport, key: &str) -> Value {
    let (_, v) = sky.client("policy_client.py", &[&sky.mcp_url("notes"), key, "legacy"]);
    v
}

/// Asserts one row: lists, the SDK's calls, the batch, and what reached the server.
fn check_row(sky: &Skyport, key: &str, row: &Row, seen_file: &Path) {
    let who = row.who;
    if seen_file.exists() {
        fs::remove_file(seen_file).expect("reset what the server saw");
    }
    if row.calls == [F; 9] {
        // The SDK shows the gateway's refusal, which says which grant would help.
        let v = policy_view(sky, key);
        let error = v["error"].as_str().unwrap_or_default();
        let grant = format!("skyport access grant notes {who} viewer");
        assert!(v["ok"] == false && error.contains(&grant), "{who}: {v}");
        let init = open_session(sky, key).expect_err("a session without a role");
        assert_eq!(init.status, 403, "{who}: {init:?}");
        let refused = post(sky, key, None, &batch_body());
        assert_eq!(refused.status, 403, "{who}: {refused:?}");
        assert_eq!(
            seen(seen_file),
            Vec::<String>::new(),
            "{who} reached the server"
        );
        return;
    }
    assert!(
        !row.calls.contains(&F),
        "{who}: a caller is refused everything or nothing"
    );

    let v = policy_view(sky, key);
    assert!(lists_match(row, &v), "{who}'s lists: {v}");
    for (call, &cell) in CALLS.iter().zip(&row.calls) {
        let want = expected(call, cell);
        assert_eq!(
            v["calls"][call.name], want,
            "{who}: {} {}",
            call.method, call.name
        );
    }

    let session = open_session(sky, key).unwrap_or_else(|r| panic!("{who}'s session: {r:?}"));
    let answered = post(sky, key, Some(&session), &batch_body());
    assert_eq!(answered.status, 200, "{who}'s batch: {answered:?}");
    let answers = answered.json().unwrap_or_default();
    let all = answers.as_array().cloned().unwrap_or_default();
    assert_eq!(all.len(), CALLS.len(), "{who}'s batch: {answers}");
    for (id, (call, &cell)) in CALLS.iter().zip(&row.calls).enumerate() {
        let answer = all
            .iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("{who}: no answer {id} in {answers}"));
        let got = reported(call.method, answer);
        let want = expected(call, cell);
        assert_eq!(
            got, want,
            "{who}'s batch: {} {}: {answer}",
            call.method, call.name
        );
    }

    // Allowed calls reached the server (twice: SDK and batch); denied ones never did.
    let saw: BTreeSet<String> = seen(seen_file).into_iter().collect();
    let allowed: BTreeSet<String> = CALLS
        .iter()
        .zip(&row.calls)
        .filter(|(call, cell)| **cell == A && call.answer.is_some())
        .map(|(call, _)| call.name.to_owned())
        .collect();
    assert_eq!(saw, allowed, "what the server saw of {who}'s calls");
}

/// A password `skyport users add` printed.
fn add_user(sky: &Skyport, name: &str) -> String {
    let added = sky.cli(&["users", "add", name]);
    assert!(added.success, "{added}");
    added.stdout.trim().to_owned()
}

fn cli_ok(sky: &Skyport, args: &[&str]) {
    let run = sky.cli(args);
    assert!(run.success, "skyport {}\n{run}", args.join(" "));
}

#[test]
fn every_principal_gets_what_its_role_and_the_policies_allow() {
    let sky = Skyport::serve();
    let dir = sky.scratch().join("notes");
    fs::create_dir_all(&dir).expect("create the server folder");
    fs::write(dir.join("main.py"), format!("{NOTES_SERVER}{READ_HEADERS}")).expect("write it");
    let seen_file = sky.scratch().join("seen.txt");
    let env = format!("SEEN_FILE={}", seen_file.display());
    let run = sky.deploy(&dir, "notes", &["--auth", "on", "--env", &env]);
    assert!(run.success, "deploy failed\n{run}\n{}", sky.log_tail(40));

    // One key each: the org admin's, people's after `skyport login`, the service account's
    // from an org admin.
    let mut keys = BTreeMap::new();
    let created = sky.cli(&["keys", "create", "--name", "matrix"]);
    assert!(created.success, "{created}");
    keys.insert("admin", created.stdout.trim().to_owned());
    for name in ["ed", "vi", "nobody"] {
        let password = add_user(&sky, name);
        let person = Person::new(&sky, name);
        let logged = person.login(name, &password);
        assert!(logged.success, "{logged}");
        keys.insert(name, person.key());
    }
    cli_ok(&sky, &["users", "add", "svc", "--service"]);
    cli_ok(&sky, &["groups", "create", "bots"]);
    cli_ok(&sky, &["groups", "add", "bots", "svc"]);
    let created = sky.cli(&["keys", "create", "--for", "svc"]);
    assert!(created.success, "{created}");
    keys.insert("svc", created.stdout.trim().to_owned());

    cli_ok(&sky, &["access", "grant", "notes", "ed", "editor"]);
    cli_ok(&sky, &["access", "grant", "notes", "vi", "viewer"]);
    cli_ok(&sky, &["access", "grant", "notes", "group:bots", "viewer"]);
    for [effect, selector, capability] in RULES {
        cli_ok(
            &sky,
            &["policy", "add", "notes", effect, selector, capability],
        );
    }

    // Grants and rules reach the gateway a moment after their commit.
    for row in &MATRIX[..4] {
        let mut v = Value::Null;
        let applied = wait_until(Duration::from_secs(30), || {
            v = policy_view(&sky, &keys[row.who]);
            lists_match(row, &v)
        });
        assert!(applied, "{}'s lists never matched: {v}", row.who);
    }
    for row in &MATRIX {
        check_row(&sky, &keys[row.who], row, &seen_file);
    }

    // The viewer's forged identity never reaches the server: it sees vi's own id and role.
    let forged = ["skyport-user-id=forged", "skyport-roles=admin"];
    let headers = headers_via(&sky, "notes", "read_headers", Some(&keys["vi"]), &forged)
        .unwrap_or_else(|e| panic!("vi could not call read_headers: {e}"));
    assert_eq!(headers["skyport-roles"], "viewer", "{headers}");
    let vi_id = headers["skyport-user-id"].as_str().unwrap_or_default();
    assert!(vi_id.starts_with("prn_"), "{headers}");

    // Each denied cell is a `denied` entry of the audit log under its caller, and no other is.
    let want: BTreeSet<(String, String, String)> = MATRIX
        .iter()
        .flat_map(|row| {
            CALLS
                .iter()
                .zip(&row.calls)
                .filter(|(_, cell)| **cell == D)
                .map(|(call, _)| (row.who.into(), call.method.into(), call.name.into()))
        })
        .collect();
    let mut records = Value::Null;
    let mut denied = BTreeSet::new();
    let audited = wait_until(Duration::from_secs(20), || {
        records = sky.cli(&["audit", "--json", "-n", "2000"]).json();
        denied = records
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["outcome"] == "denied")
            .map(|r| {
                let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                (
                    text(&r["principal_name"]),
                    text(&r["method"]),
                    text(&r["target"]),
                )
            })
            .collect();
        denied == want
    });
    assert!(
        audited,
        "denied in the audit log: {denied:?}, want {want:?}"
    );
    let by_vi = records
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["principal_name"] == "vi")
        .unwrap_or_else(|| panic!("no entry of vi: {records}"));
    assert_eq!(by_vi["principal"], vi_id, "{by_vi}");
}
