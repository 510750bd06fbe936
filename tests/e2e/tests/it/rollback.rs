//! Promotions and rollbacks end to end: `skyport rollback` brings an earlier deployment back
//! without a build (by default the previous one, or one named by id or prefix) and refuses with
//! what to do when it cannot; `skyport deployments` shows the history (commit, author, who) and
//! every move of the live pointer; a switch lets calls in flight finish and moves open sessions;
//! a build whose server crashes at start never goes live; removing a server leaves nothing
//! running and nothing on disk, and keeps its audit records.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use skyport_e2e::{GitRepo, HeldClient, Run, Skyport, deployments_of, http, wait_until};

/// A FastMCP server whose answers carry `greeting`: `hello` greets, `slow` sleeps then says
/// which version answered. `extra` is appended to the file.
fn server_source(greeting: &str, extra: &str) -> String {
    format!(
        r#"import asyncio
import os

from fastmcp import FastMCP

mcp = FastMCP("versioned")


@mcp.tool
def hello(name: str) -> str:
    """Greet someone."""
    return f"{greeting}, {{name}}!"


@mcp.tool
async def slow(seconds: float) -> str:
    """Answer after a while."""
    await asyncio.sleep(seconds)
    return "{greeting} after " + str(seconds) + "s"
{extra}"#
    )
}

/// Writes `server_source(greeting, extra)` as `main.py` of folder `name` in the scratch dir.
fn folder(sky: &Skyport, name: &str, greeting: &str, extra: &str) -> PathBuf {
    let dir = sky.scratch().join(name);
    fs::create_dir_all(&dir).expect("create the server folder");
    fs::write(dir.join("main.py"), server_source(greeting, extra)).expect("write main.py");
    dir
}

/// Calls `tool` with `args` through the gateway with the official SDK; the text it answered.
fn call(sky: &Skyport, server: &str, tool: &str, args: &str) -> String {
    let url = sky.mcp_url(server);
    let (run, v) = sky.client("sdk_client.py", &["call", &url, tool, args]);
    assert_eq!(
        v["ok"],
        true,
        "{tool} on {server}\n{run}\n{}",
        sky.log_tail(30)
    );
    v["text"].as_str().unwrap_or_default().to_owned()
}

fn hello(sky: &Skyport, server: &str) -> String {
    call(sky, server, "hello", r#"{"name":"r"}"#)
}

/// `skyport deployments N --json`: the deployments and the promotions, newest first.
fn history(sky: &Skyport, server: &str) -> (Vec<Value>, Vec<Value>) {
    let run = sky.cli(&["deployments", server, "--json"]);
    assert!(run.success, "{run}");
    let json = run.json();
    let promotions = json["promotions"].as_array().cloned().unwrap_or_default();
    (deployments_of(&json), promotions)
}

fn id_of(deployment: &Value) -> String {
    deployment["id"].as_str().unwrap_or_default().to_owned()
}

/// `skyport rollback ARGS…`, which must fail saying `expected`.
fn refused(sky: &Skyport, args: &[&str], expected: &str) {
    let mut all = vec!["rollback"];
    all.extend_from_slice(args);
    let run = sky.cli(&all);
    assert!(!run.success, "rollback {args:?} was not refused\n{run}");
    assert!(
        run.stderr.contains(expected),
        "rollback {args:?} did not say {expected:?}\n{run}"
    );
}

fn rollback(sky: &Skyport, args: &[&str]) -> Run {
    let mut all = vec!["rollback"];
    all.extend_from_slice(args);
    let run = sky.cli(&all);
    assert!(run.success, "{run}\n{}", sky.log_tail(30));
    run
}

fn deploy_git(sky: &Skyport, url: &str, name: &str) -> Run {
    sky.cli_bounded(
        &["deploy", url, "--name", name],
        skyport_e2e::DEPLOY_TIMEOUT,
    )
}

#[test]
fn rollback_serves_an_earlier_deployment_without_a_build_and_refuses_what_cannot_serve() {
    let sky = Skyport::serve_with(&["--keep-deployments", "2"]);
    let repo = GitRepo::new(sky.scratch(), "repo");
    repo.commit(
        "main.py",
        &server_source("Hello", ""),
        "Ada",
        "first version",
    );
    repo.push("main");
    let run = deploy_git(&sky, &repo.url(), "rb");
    assert!(run.success, "{run}");
    refused(&sky, &["rb"], "no ready deployment older than the live one");
    repo.commit("main.py", &server_source("Hi", ""), "Bob", "second version");
    repo.push("main");
    let run = deploy_git(&sky, &repo.url(), "rb");
    assert!(run.success, "{run}");
    assert_eq!(hello(&sky, "rb"), "Hi, r!");
    let (deployments, _) = history(&sky, "rb");
    let (v2, v1) = (id_of(&deployments[0]), id_of(&deployments[1]));

    // The previous deployment, with no build: still two deployments.
    let run = rollback(&sky, &["rb"]);
    assert!(run.stdout.contains(&v1), "{run}");
    assert_eq!(hello(&sky, "rb"), "Hello, r!");
    let (deployments, promotions) = history(&sky, "rb");
    assert_eq!(
        deployments.len(),
        2,
        "a rollback built something: {deployments:?}"
    );
    assert_eq!(deployments[1]["live"], true, "{deployments:?}");

    // History: commit, author and who for each deployment; the promotions with kind and who.
    for (deployment, author, message) in [
        (&deployments[0], "Bob", "second version"),
        (&deployments[1], "Ada", "first version"),
    ] {
        assert_eq!(deployment["commit"]["message"], message, "{deployment}");
        assert!(
            deployment["commit"]["author"]
                .as_str()
                .is_some_and(|a| a.starts_with(author)),
            "{deployment}"
        );
        assert_eq!(
            deployment["commit"]["short"].as_str().map(str::len),
            Some(12)
        );
        assert_eq!(deployment["created_by"], "admin", "{deployment}");
    }
    let kinds: Vec<(&str, &str, &str)> = promotions
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap_or_default(),
                p["deployment"].as_str().unwrap_or_default(),
                p["by"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("rollback", v1.as_str(), "admin"),
            ("deploy", v2.as_str(), "admin"),
            ("deploy", v1.as_str(), "admin"),
        ]
    );
    let table = sky.cli(&["deployments", "rb"]);
    assert!(
        table.success && table.stdout.contains("Ada") && table.stdout.contains("rollback"),
        "{table}"
    );

    // An explicit deployment, by a prefix of its id.
    let prefix = &v2[..v2.len() - 6];
    rollback(&sky, &["rb", prefix]);
    assert_eq!(hello(&sky, "rb"), "Hi, r!");

    // Refusals, each with what to do; none changes what serves.
    refused(&sky, &["rb", &v2], "already live");
    refused(&sky, &["rb", "dep_zzzz"], "no deployment of 'rb' matches");
    repo.commit("main.py", "this is not python\n", "Eve", "broken");
    repo.push("main");
    let run = deploy_git(&sky, &repo.url(), "rb");
    assert!(!run.success, "a broken commit deployed\n{run}");
    let (deployments, _) = history(&sky, "rb");
    let broken = id_of(&deployments[0]);
    assert_eq!(deployments[0]["status"], "failed");
    refused(&sky, &["rb", &broken], "failed to build");

    // A third good version: with --keep-deployments 2, v1's artifact is collected.
    repo.commit(
        "main.py",
        &server_source("Howdy", ""),
        "Ada",
        "third version",
    );
    repo.push("main");
    let run = deploy_git(&sky, &repo.url(), "rb");
    assert!(run.success, "{run}");
    let pruned = wait_until(Duration::from_secs(30), || {
        history(&sky, "rb")
            .0
            .iter()
            .any(|d| id_of(d) == v1 && d["pruned"] == true)
    });
    assert!(
        pruned,
        "v1's artifact was not collected\n{}",
        sky.log_tail(30)
    );
    refused(&sky, &["rb", &v1], "redeploy its source");
    assert_eq!(hello(&sky, "rb"), "Howdy, r!");
}

#[test]
fn a_switch_lets_calls_in_flight_finish_and_moves_open_sessions() {
    let sky = Skyport::serve();
    let v1 = folder(&sky, "v1", "Hello", "");
    let v2 = folder(&sky, "v2", "Hi", "");
    sky.deploy_ok(&v1, "zd");
    assert_eq!(hello(&sky, "zd"), "Hello, r!");
    let url = sky.mcp_url("zd");
    let (mut session, ready) = HeldClient::open("sdk", "session_client.py", &["sdk", &url]);
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(session.hello("s1")["text"], "Hello, s1!");

    // v1 has a warm instance, so v2 gets a ready one before it goes live.
    let run = sky.deploy(&v2, "zd", &["--json"]);
    assert!(run.success, "{run}");
    let v2_id = run.json()["id"].as_str().unwrap_or_default().to_owned();
    let log = sky.cli(&["logs", "zd", "--build", &v2_id]);
    assert!(
        log.stdout
            .contains("an instance of the new deployment is ready; promoting"),
        "{log}"
    );
    assert_eq!(session.hello("s2")["text"], "Hi, s2!");

    // A slow call on v2 is in flight while the server rolls back to v1: it finishes on v2.
    std::thread::scope(|scope| {
        let in_flight = scope.spawn(|| call(&sky, "zd", "slow", r#"{"seconds":6}"#));
        let started = wait_until(Duration::from_secs(60), || {
            sky.cli(&["servers", "show", "zd", "--json"]).json()["instances"]
                .as_array()
                .is_some_and(|i| i.iter().any(|i| i["in_flight"].as_u64() > Some(0)))
        });
        assert!(started, "the slow call never reached an instance");
        rollback(&sky, &["zd"]);
        assert_eq!(hello(&sky, "zd"), "Hello, r!");
        let answer = in_flight.join().expect("the in-flight call");
        assert_eq!(answer, "Hi after 6.0s");
    });
    // The open session moved to v1 on its next request, without initializing again.
    assert_eq!(session.hello("s3")["text"], "Hello, s3!");
}

#[test]
fn a_build_whose_server_crashes_at_start_never_goes_live() {
    let sky = Skyport::serve();
    let v1 = folder(&sky, "v1", "Hello", "");
    sky.deploy_ok(&v1, "crash");
    assert_eq!(hello(&sky, "crash"), "Hello, r!");
    // Importing (which the build's inspection does) works; serving does not, as with a server
    // whose startup needs something only a running instance reaches.
    let crashing = folder(
        &sky,
        "v2",
        "Hi",
        r#"
if "SKYPORT_LISTEN_FD" in os.environ or "SKYPORT_PORT" in os.environ:
    raise SystemExit("cannot reach the database at startup")
"#,
    );
    let run = sky.deploy(&crashing, "crash", &[]);
    assert!(!run.success, "a server that cannot start went live\n{run}");
    assert!(
        run.stderr.contains("(start:") && run.stderr.contains("failed to start"),
        "{run}"
    );
    assert!(run.stderr.contains("cannot reach the database"), "{run}");
    assert_eq!(hello(&sky, "crash"), "Hello, r!");
    let (deployments, _) = history(&sky, "crash");
    assert_eq!(deployments[0]["status"], "failed");
    assert_eq!(deployments[0]["failure"]["kind"], "start");
    assert_eq!(deployments[1]["live"], true);
    // The artifact of the build that never went live is collected; the live one's stays.
    let artifacts = sky.data_dir().join("artifacts");
    let stored = || fs::read_dir(&artifacts).map_or(0, |d| d.flatten().count());
    assert!(
        wait_until(Duration::from_secs(10), || stored() == 1),
        "{} artifacts are stored, not only the live one's\n{}",
        stored(),
        sky.log_tail(20)
    );
}

#[test]
fn removing_a_server_stops_it_deletes_its_artifacts_and_keeps_its_audit_records() {
    let mut sky = Skyport::serve();
    let v1 = folder(&sky, "v1", "Hello", "");
    sky.deploy_ok(&v1, "gone");
    assert_eq!(hello(&sky, "gone"), "Hello, r!");
    let instances = sky.instances();
    assert!(!instances.is_empty(), "no instance ran");
    let artifacts = sky.data_dir().join("artifacts");
    let stored = |dir: &Path| fs::read_dir(dir).map_or(0, |d| d.flatten().count());
    assert!(stored(&artifacts) > 0, "no artifact was stored");

    let run = sky.cli(&["servers", "rm", "gone"]);
    assert!(run.success, "{run}");
    let stopped = wait_until(Duration::from_secs(15), || {
        instances.iter().all(|p| !p.alive())
    });
    assert!(
        stopped,
        "an instance outlived its server\n{}",
        sky.log_tail(30)
    );
    assert_eq!(stored(&artifacts), 0, "artifacts outlived their server");
    let gone = http(
        &sky.addr(),
        "POST",
        "/servers/gone/mcp",
        &[("Content-Type", "application/json")],
        Some(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
    )
    .expect("POST after rm");
    assert_eq!(gone.status, 404, "{gone:?}");
    let audit = sky.cli(&["audit", "--server", "gone", "--json"]);
    assert!(audit.success, "{audit}");
    let calls = audit.json().as_array().map_or(0, |records| {
        records
            .iter()
            .filter(|r| r["method"] == "tools/call")
            .count()
    });
    assert!(
        calls > 0,
        "the audit log lost the removed server's calls\n{audit}"
    );
}
