//! Remix servers end to end: two real hosted FastMCP servers whose `echo` tools collide and an
//! external one, composed into one remix with a rename and a description override, seen through the real
//! gateway by the official `mcp` SDK and the FastMCP `Client`: the composed list (prefixes
//! only where names collide), calls answered by the right source, a policy on the remix, a
//! caller without a role on the remix refused, and a source that goes down (its tools vanish,
//! a call to one of them names it, the other source keeps working) and is then removed.
//!
//! Sources are a list of blocks (`Source`): the third is an external server, a FastMCP server
//! running outside Skyport that the catalog proxies.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use skyport_e2e::{DirectServer, Skyport, wait_until};

/// Source `alpha`: `echo` (collides with beta's), `forecast` (renamed), a prompt, a resource.
const ALPHA: &str = r#"from fastmcp import FastMCP

mcp = FastMCP("alpha")


@mcp.tool
def echo(text: str) -> str:
    """Echo from alpha."""
    return f"alpha: {text}"


@mcp.tool
def forecast(city: str) -> str:
    """The weather."""
    return f"sunny in {city}"


@mcp.prompt
def greet(name: str) -> str:
    return f"Hello {name}"


@mcp.resource("alpha://about")
def about() -> str:
    return "about alpha"
"#;

/// Source `beta`: `echo`, a described tool, a tool a policy hides, one the remix does not
/// take; `crash` (called directly, not through the remix) makes every later start fail.
const BETA: &str = r#"import os
from pathlib import Path

from fastmcp import FastMCP

if Path(os.environ["CRASH_FILE"]).exists():
    raise SystemExit("beta was told to stay down")

mcp = FastMCP("beta")


@mcp.tool
def echo(text: str) -> str:
    """Echo from beta."""
    return f"beta: {text}"


@mcp.tool
def add_note(text: str) -> str:
    """Stores a note."""
    return f"noted {text}"


@mcp.tool
def secret_tool() -> str:
    return "secret"


@mcp.tool
def unlisted() -> str:
    return "not taken"


@mcp.tool
def crash() -> str:
    Path(os.environ["CRASH_FILE"]).write_text("down")
    os._exit(1)
"#;

/// Source `gamma`: a FastMCP server running outside Skyport, added to the catalog as an
/// external server.
const GAMMA: &str = r#"import argparse

import uvicorn
from fastmcp import FastMCP

mcp = FastMCP("gamma")


@mcp.tool
def shout(text: str) -> str:
    """Shouts, from outside Skyport."""
    return text.upper()


parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int)
parser.add_argument("--host")
args = parser.parse_args()
uvicorn.run(mcp.http_app(path="/mcp"), host=args.host, port=args.port, log_level="warning")
"#;

/// One source of the remix under test: how it is created, the flag that takes it into the
/// remix, and the tools it adds to the composed list (name → text of a call with
/// `{"text": "hi"}` or `{"city": "Paris"}`).
struct Source {
    name: &'static str,
    flags: Vec<&'static str>,
    tools: Vec<(&'static str, &'static str)>,
}

fn sources() -> Vec<Source> {
    vec![
        Source {
            name: "alpha",
            flags: vec!["--source", "alpha", "--rename", "alpha.forecast=weather"],
            tools: vec![("alpha_echo", "alpha: hi"), ("weather", "sunny in Paris")],
        },
        Source {
            name: "beta",
            flags: vec![
                "--source",
                "beta:echo,add_note,secret_tool",
                "--describe",
                "beta.add_note=Adds a note to beta.",
            ],
            tools: vec![
                ("beta_echo", "beta: hi"),
                ("add_note", "noted hi"),
                ("secret_tool", "secret"),
            ],
        },
        Source {
            name: "gamma",
            flags: vec!["--source", "gamma"],
            tools: vec![("shout", "HI")],
        },
    ]
}

fn server_dir(sky: &Skyport, name: &str, code: &str) -> PathBuf {
    let dir = sky.scratch().join(name);
    fs::create_dir_all(&dir).expect("create the server folder");
    fs::write(dir.join("main.py"), code).expect("write the server");
    dir
}

/// Arguments every composed tool takes in this test.
fn arguments(tool: &str) -> Value {
    if tool == "weather" {
        json!({"city": "Paris"})
    } else if tool == "secret_tool" {
        json!({})
    } else {
        json!({"text": "hi"})
    }
}

/// What `remix_client.py` reports for `key` with `library`, calling `calls`.
fn view(sky: &Skyport, key: &str, library: &str, calls: &[&str]) -> (bool, Value) {
    let calls: serde_json::Map<String, Value> = calls
        .iter()
        .map(|tool| ((*tool).to_owned(), arguments(tool)))
        .collect();
    let calls = Value::Object(calls).to_string();
    let (run, v) = sky.client(
        "remix_client.py",
        &[&sky.mcp_url("mix"), key, library, &calls],
    );
    (run.success, v)
}

fn check_ok(sky: &Skyport, ok: bool, v: &Value) {
    assert!(ok, "the remix client failed: {v}\n{}", sky.log_tail(60));
}

#[test]
fn a_remix_composes_hosted_and_external_servers() {
    let sky = Skyport::serve_with(&["--allow-private-externals"]);
    let crash_file = sky.scratch().join("beta-down");
    let env = format!("CRASH_FILE={}", crash_file.display());
    let run = sky.deploy(&server_dir(&sky, "alpha", ALPHA), "alpha", &[]);
    assert!(run.success, "deploy alpha failed\n{run}");
    let run = sky.deploy(&server_dir(&sky, "beta", BETA), "beta", &["--env", &env]);
    assert!(run.success, "deploy beta failed\n{run}");
    let gamma = DirectServer::start(
        &server_dir(&sky, "gamma", GAMMA),
        &sky.scratch().join("gamma.log"),
    );
    let added = sky.cli(&["registry", "add-external", "gamma", &gamma.mcp_url()]);
    assert!(added.success, "{added}");

    // Definitions are checked before anything is stored.
    let bad = sky.cli(&[
        "remix",
        "create",
        "bad",
        "--source",
        "alpha:echo",
        "--prompts",
        "alpha:",
        "--rename",
        "alpha.forecast=x",
    ]);
    assert!(!bad.success && bad.stderr.contains("not taken"), "{bad}");
    let bad = sky.cli(&["remix", "create", "bad", "--source", "nope"]);
    assert!(
        !bad.success && bad.stderr.contains("no server named 'nope'"),
        "{bad}"
    );

    let sources = sources();
    let mut create = vec![
        "remix",
        "create",
        "mix",
        "--description",
        "alpha and beta",
        "--json",
    ];
    for source in &sources {
        create.extend(source.flags.iter().copied());
    }
    let created = sky.cli(&create);
    assert!(created.success, "{created}");
    let shown = sky.cli(&["remix", "show", "mix", "--json"]).json();
    assert_eq!(shown["description"], "alpha and beta", "{shown}");
    let names: Vec<&str> = sources.iter().map(|s| s.name).collect();
    let listed: Vec<&str> = shown["sources"]
        .as_array()
        .map(|all| all.iter().filter_map(|s| s["server"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(listed, names, "{shown}");
    let nested = sky.cli(&["remix", "create", "nested", "--source", "mix"]);
    assert!(
        !nested.success && nested.stderr.contains("is a remix"),
        "{nested}"
    );

    // The official SDK sees the composed list and every call answered by its own source.
    let tools: Vec<&str> = sources
        .iter()
        .flat_map(|s| s.tools.iter().map(|t| t.0))
        .collect();
    let mut calls = tools.clone();
    calls.push("unlisted");
    let (ok, v) = view(&sky, "-", "sdk", &calls);
    check_ok(&sky, ok, &v);
    let mut seen: Vec<&str> = v["tools"]
        .as_object()
        .map(|t| t.keys().map(String::as_str).collect())
        .unwrap_or_default();
    seen.sort_unstable();
    let mut want = tools.clone();
    want.sort_unstable();
    assert_eq!(seen, want, "{v}");
    assert_eq!(v["tools"]["add_note"], "Adds a note to beta.", "{v}");
    assert_eq!(v["tools"]["alpha_echo"], "Echo from alpha.", "{v}");
    assert_eq!(v["tools"]["weather"], "The weather.", "{v}");
    for (tool, text) in sources.iter().flat_map(|s| s.tools.iter()) {
        assert_eq!(
            v["calls"][tool],
            json!({"text": text, "is_error": false}),
            "{tool}: {v}"
        );
    }
    // A tool the remix does not take is unknown to its clients.
    assert_eq!(
        v["calls"]["unlisted"],
        json!({"text": "Unknown tool: 'unlisted'", "is_error": true}),
        "{v}"
    );
    assert_eq!(v["prompts"], json!(["greet"]), "{v}");
    assert_eq!(v["resources"], json!(["alpha://about"]), "{v}");
    assert_eq!(v["read"], "about alpha", "{v}");

    // So does the FastMCP client.
    let (ok, v) = view(&sky, "-", "fastmcp", &["alpha_echo", "beta_echo"]);
    check_ok(&sky, ok, &v);
    assert_eq!(v["calls"]["beta_echo"]["text"], "beta: hi", "{v}");
    assert_eq!(
        v["tools"].as_object().map(|t| t.len()),
        Some(tools.len()),
        "{v}"
    );

    // A policy on the remix hides a composed name and denies its call.
    let add = sky.cli(&["policy", "add", "mix", "deny", "*", "tool:secret_*"]);
    assert!(add.success, "{add}");
    let mut v = Value::Null;
    let hidden = wait_until(Duration::from_secs(20), || {
        let (ok, seen) = view(&sky, "-", "sdk", &["secret_tool", "add_note"]);
        v = seen;
        ok && v["tools"].get("secret_tool").is_none()
    });
    assert!(hidden, "the policy did not hide secret_tool: {v}");
    assert_eq!(
        v["calls"]["secret_tool"],
        json!({"text": "Unknown tool: 'secret_tool'", "is_error": true}),
        "{v}"
    );
    assert_eq!(v["calls"]["add_note"]["text"], "noted hi", "{v}");

    // An anonymous caller of a remix never reaches a source that requires a credential.
    assert!(
        sky.cli(&["servers", "set", "alpha", "--auth", "on"])
            .success
    );
    let mut v = Value::Null;
    let kept_out = wait_until(Duration::from_secs(20), || {
        let (ok, seen) = view(&sky, "-", "sdk", &["beta_echo"]);
        v = seen;
        ok && v["tools"].get("weather").is_none()
    });
    assert!(
        kept_out,
        "an anonymous caller reached a protected source: {v}"
    );
    assert_eq!(v["calls"]["beta_echo"]["text"], "beta: hi", "{v}");
    assert!(
        sky.cli(&["servers", "set", "alpha", "--auth", "off"])
            .success
    );

    // Access to a remix is the caller's role on the remix.
    let set = sky.cli(&["servers", "set", "mix", "--auth", "on"]);
    assert!(set.success, "{set}");
    let bot = sky.cli(&["users", "add", "bot", "--service"]);
    assert!(bot.success, "{bot}");
    let key = sky.cli(&["keys", "create", "--for", "bot"]);
    assert!(key.success, "{key}");
    let bot_key = key.stdout.trim().to_owned();
    let mut v = Value::Null;
    let refused = wait_until(Duration::from_secs(20), || {
        let (ok, seen) = view(&sky, &bot_key, "sdk", &[]);
        v = seen;
        !ok
    });
    assert!(refused, "a caller without a role used the remix: {v}");
    assert!(
        v["error"]
            .to_string()
            .contains("bot has no role on server 'mix'"),
        "{v}"
    );
    let grant = sky.cli(&["access", "grant", "mix", "bot", "viewer"]);
    assert!(grant.success, "{grant}");
    let mut v = Value::Null;
    let admitted = wait_until(Duration::from_secs(20), || {
        let (ok, seen) = view(&sky, &bot_key, "sdk", &["beta_echo"]);
        v = seen;
        ok
    });
    assert!(admitted, "a viewer of the remix was refused: {v}");
    assert_eq!(v["calls"]["beta_echo"]["text"], "beta: hi", "{v}");

    // The remix's calls are audited under the remix, its sources' under each source, with the
    // same caller.
    let mut records = Value::Null;
    let audited = wait_until(Duration::from_secs(20), || {
        records = sky.cli(&["audit", "--json", "-n", "500"]).json();
        let all = records.as_array().cloned().unwrap_or_default();
        let has = |server: &str, target: &str| {
            all.iter().any(|r| {
                r["server"] == server
                    && r["method"] == "tools/call"
                    && r["target"] == target
                    && r["principal_name"] == "bot"
            })
        };
        has("mix", "beta_echo") && has("beta", "echo")
    });
    assert!(audited, "no remix call and source call by bot: {records}");

    // A source that goes down: its tools leave the list, the others keep their names and work,
    // and a call to one of its tools names it.
    let crashed = sky.client("key_client.py", &[&sky.mcp_url("beta"), "-", "crash", "{}"]);
    assert!(!crashed.0.success, "crash answered\n{}", crashed.0);
    let mut v = Value::Null;
    let dropped = wait_until(Duration::from_secs(60), || {
        let (ok, seen) = view(&sky, &bot_key, "sdk", &["alpha_echo", "beta_echo"]);
        v = seen;
        ok && v["tools"].get("beta_echo").is_none()
    });
    assert!(
        dropped,
        "beta's tools stayed listed: {v}\n{}",
        sky.log_tail(40)
    );
    assert!(v["tools"].get("alpha_echo").is_some(), "{v}");
    assert_eq!(v["calls"]["alpha_echo"]["text"], "alpha: hi", "{v}");
    let down = &v["calls"]["beta_echo"];
    assert_eq!(down["code"], -32002, "{v}");
    assert!(
        down["message"]
            .as_str()
            .is_some_and(|m| m.contains("source 'beta' of remix 'mix'")),
        "{v}"
    );
    assert!(
        sky.log().contains("source 'beta' of remix 'mix'"),
        "no warning in the log\n{}",
        sky.log_tail(40)
    );

    // A removed source leaves the remix: nothing collides any more.
    let rm = sky.cli(&["servers", "rm", "beta"]);
    assert!(rm.success, "{rm}");
    let shown = sky.cli(&["remix", "show", "mix", "--json"]).json();
    assert_eq!(
        shown["sources"].as_array().map(Vec::len),
        Some(sources.len() - 1),
        "{shown}"
    );
    let mut v = Value::Null;
    let alone = wait_until(Duration::from_secs(20), || {
        let (ok, seen) = view(&sky, &bot_key, "sdk", &["echo"]);
        v = seen;
        ok && v["calls"]["echo"]["text"] == "alpha: hi"
    });
    assert!(alone, "alpha's echo is not plain echo once beta left: {v}");

    // Editing: the description alone, or the whole source list.
    let edit = sky.cli(&["remix", "edit", "mix", "--rename", "alpha.echo=say"]);
    assert!(
        !edit.success && edit.stderr.contains("whole source list"),
        "{edit}"
    );
    let edit = sky.cli(&[
        "remix",
        "edit",
        "mix",
        "--description",
        "alpha alone",
        "--source",
        "alpha:echo",
        "--rename",
        "alpha.echo=say",
        "--json",
    ]);
    assert!(edit.success, "{edit}");
    assert_eq!(edit.json()["description"], "alpha alone", "{edit}");
    let mut v = Value::Null;
    let edited = wait_until(Duration::from_secs(20), || {
        let (ok, seen) = view(&sky, &bot_key, "sdk", &["say"]);
        v = seen;
        ok && v["tools"].as_object().map(|t| t.len()) == Some(1)
    });
    assert!(edited, "the edit did not take effect: {v}");
    assert_eq!(v["calls"]["say"]["text"], "alpha: hi", "{v}");
}
