//! Skyport on PostgreSQL: `skyport serve --database-url postgres://…` on a fresh database
//! deploys the hello example, answers through the gateway with the official `mcp` SDK, and a
//! session held open by that client continues after serve is killed with -9 and restarted
//! (the session is read back from PostgreSQL and its initialize replayed).
//!
//! Two replicas (two serves, their own data dirs and ports, one database, one master key) in
//! front of one remote MCP server: a session initialized through A continues through B, and
//! through B alone once A is killed; a key revoked through A is refused by B at once; a
//! commit found by polling is built once although both replicas follow the source; a build left
//! by a replica killed with -9 is marked failed by the other.

use std::fs;
use std::time::Duration;

use skyport_e2e::{
    DEPLOY_TIMEOUT, DirectServer, GitRepo, HeldClient, HttpResponse, PostgresDatabase, Skyport,
    copy_dir, example, http, wait_until,
};

use crate::faults::write_held;

const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");
const JSON: (&str, &str) = ("Content-Type", "application/json");
const VERSION: (&str, &str) = ("MCP-Protocol-Version", "2025-06-18");
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
const MASTER_KEY: &str = "7c1f5e0a9b3d2c4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e";

/// A FastMCP server with the hello tool, run directly (`main.py --port P --host H`).
const REMOTE_MAIN: &str = r#"import argparse

from fastmcp import FastMCP

mcp = FastMCP("hello")


@mcp.tool
def hello(name: str) -> str:
    return f"Hello, {name}!"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int)
    parser.add_argument("--host")
    args = parser.parse_args()
    mcp.run(transport="http", host=args.host, port=args.port)
"#;

#[test]
fn serve_on_postgres_deploys_answers_and_keeps_a_session_across_a_restart() {
    let Some(database) = PostgresDatabase::create() else {
        return;
    };
    let mut sky = Skyport::serve_with(&["--database-url", database.url()]);
    assert_eq!(
        database.value("SELECT COUNT(*) FROM principals WHERE is_admin = 1"),
        "1",
        "serve did not make its admin in PostgreSQL\n{}",
        sky.log_tail(30)
    );
    let source = sky.scratch().join("hello");
    copy_dir(&example("hello"), &source).expect("copy the example");
    sky.deploy_ok(&source, "hello");
    assert_eq!(
        database.value(
            "SELECT d.status FROM servers s JOIN deployments d ON d.id = s.live_deployment_id \
             WHERE s.name = 'hello'"
        ),
        "ready",
        "the live deployment is not recorded in PostgreSQL"
    );
    sky.check_hello("hello", "postgres");

    let (mut client, ready) =
        HeldClient::open("sdk", "session_client.py", &["sdk", &sky.mcp_url("hello")]);
    assert_eq!(ready["ready"], true, "sdk client did not connect: {ready}");
    let first = client.hello("before-restart");
    assert_eq!(first["text"], "Hello, before-restart!", "{first}");
    assert_eq!(
        database.value("SELECT COUNT(*) FROM gateway_sessions"),
        "1",
        "the session is not in PostgreSQL"
    );

    sky.kill9();
    sky.restart();
    let after = client.hello("after-restart");
    assert_eq!(
        after["text"],
        "Hello, after-restart!",
        "the session did not survive the restart: {after}\n{}",
        sky.log_tail(40)
    );
    assert!(
        sky.log().contains("replayed a session's initialize"),
        "no replay was logged\n{}",
        sky.log_tail(40)
    );
}

/// POSTs one MCP message to `/servers/hello/mcp` of `replica` with `key`, in `session`.
fn post(replica: &Skyport, key: &str, session: Option<&str>, body: &str) -> HttpResponse {
    let bearer = format!("Bearer {key}");
    let mut headers = vec![ACCEPT, JSON, ("Authorization", bearer.as_str())];
    if let Some(id) = session {
        headers.push(("Mcp-Session-Id", id));
        headers.push(VERSION);
    }
    http(
        &replica.addr(),
        "POST",
        "/servers/hello/mcp",
        &headers,
        Some(body),
    )
    .unwrap_or_else(|e| panic!("POST to {}: {e}\n{}", replica.addr(), replica.log_tail(40)))
}

fn call_hello(who: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"hello","arguments":{{"name":"{who}"}}}}}}"#
    )
}

/// A new key made through `replica`: its id and its secret.
fn new_key(replica: &Skyport, name: &str) -> String {
    let created = replica.cli(&["keys", "create", "--name", name]);
    assert!(created.success, "{created}");
    created.stdout.trim().to_owned()
}

/// A `skyport serve` on `database` with `extra` flags, as one of several replicas: each has its
/// own data dir and port, and all have the same master key.
pub(crate) fn replica(database: &PostgresDatabase, extra: &[&str]) -> Skyport {
    let mut flags = vec!["--database-url", database.url()];
    flags.extend_from_slice(extra);
    Skyport::serve_with_env(&flags, &[("SKYPORT_MASTER_KEY", MASTER_KEY)])
}

/// Starts a FastMCP server with the hello tool and adds it through `replica` as the external
/// server `hello` (the replica needs `--allow-private-externals`).
pub(crate) fn external_hello(replica: &Skyport) -> DirectServer {
    let folder = replica.scratch().join("remote");
    fs::create_dir_all(&folder).expect("create the remote's folder");
    fs::write(folder.join("main.py"), REMOTE_MAIN).expect("write main.py");
    let remote = DirectServer::start(&folder, &replica.scratch().join("remote.log"));
    let added = replica.cli(&["registry", "add-external", "hello", &remote.mcp_url()]);
    assert!(added.success, "{added}\n{}", replica.log_tail(30));
    remote
}

#[test]
fn two_replicas_share_sessions_and_revocations() {
    let Some(database) = PostgresDatabase::create() else {
        return;
    };
    let mut a = replica(&database, &["--allow-private-externals"]);
    let b = replica(&database, &["--allow-private-externals"]);
    let _remote = external_hello(&a);
    let guarded = a.cli(&["servers", "set", "hello", "--auth", "on"]);
    assert!(guarded.success, "{guarded}");
    let key = new_key(&a, "replicas");

    // B learns of the server, its setting and the key from A's changes, without a restart.
    let mut on_b = None;
    let reached = wait_until(Duration::from_secs(10), || {
        let answer = post(&b, &key, None, INITIALIZE);
        let ok = answer.status == 200;
        on_b = Some(answer);
        ok
    });
    assert!(
        reached,
        "B does not serve hello with A's key: {on_b:?}\n{}",
        b.log_tail(30)
    );
    let anonymous = http(
        &b.addr(),
        "POST",
        "/servers/hello/mcp",
        &[ACCEPT, JSON],
        Some(INITIALIZE),
    )
    .expect("POST to B");
    assert_eq!(
        anonymous.status, 401,
        "B took a call without a key: {anonymous:?}"
    );

    // A session initialized through A continues through B.
    let init = post(&a, &key, None, INITIALIZE);
    assert_eq!(
        init.status,
        200,
        "initialize via A: {init:?}\n{}",
        a.log_tail(30)
    );
    let session = init
        .header("mcp-session-id")
        .unwrap_or_else(|| panic!("no session id from A: {init:?}"))
        .to_owned();
    let ack = post(&a, &key, Some(&session), INITIALIZED);
    assert!(
        (200..300).contains(&ack.status),
        "initialized via A: {ack:?}"
    );
    let via_b = post(&b, &key, Some(&session), &call_hello("via-b"));
    assert!(
        via_b.status == 200 && via_b.body.contains("Hello, via-b!"),
        "tools/call via B in A's session: {via_b:?}\n{}",
        b.log_tail(30)
    );

    // A key revoked through A is refused by B on the next request.
    let doomed = new_key(&a, "doomed");
    let mut before = None;
    let accepted = wait_until(Duration::from_secs(10), || {
        let answer = post(&b, &doomed, None, INITIALIZE);
        let ok = answer.status == 200;
        before = Some(answer);
        ok
    });
    assert!(accepted, "B does not take a new key made on A: {before:?}");
    let revoked = a.cli(&["keys", "revoke", "doomed"]);
    assert!(revoked.success, "{revoked}");
    let refused = post(&b, &doomed, None, INITIALIZE);
    assert_eq!(
        refused.status,
        401,
        "B took a key revoked through A: {refused:?}\n{}",
        b.log_tail(30)
    );

    // With A gone, B alone keeps the session.
    a.kill9();
    let after = post(&b, &key, Some(&session), &call_hello("after-a"));
    assert!(
        after.status == 200 && after.body.contains("Hello, after-a!"),
        "tools/call via B after A was killed: {after:?}\n{}",
        b.log_tail(30)
    );
}

/// A FastMCP server whose `version` tool answers `text`.
fn versioned_server(text: &str) -> String {
    format!(
        "from fastmcp import FastMCP\n\nmcp = FastMCP(\"pushed\")\n\n\n@mcp.tool\ndef version() -> str:\n    return \"{text}\"\n"
    )
}

#[test]
fn a_commit_found_by_polling_is_built_once_across_replicas() {
    let Some(database) = PostgresDatabase::create() else {
        return;
    };
    let a = replica(&database, &[]);
    let b = replica(&database, &[]);
    let repo = GitRepo::new(&a.scratch().join("repos"), "app");
    repo.commit("main.py", &versioned_server("v1"), "Pusher", "v1");
    repo.push("main");
    let deployed = a.cli_bounded(
        &[
            "deploy",
            &repo.bare.to_string_lossy(),
            "--name",
            "app",
            "--branch",
            "main",
        ],
        DEPLOY_TIMEOUT,
    );
    assert!(deployed.success, "{deployed}\n{}", a.log_tail(40));
    let polling = a.cli(&["servers", "set", "app", "--poll", "1s"]);
    assert!(polling.success, "{polling}");

    let v2 = repo.commit("main.py", &versioned_server("v2"), "Pusher", "v2");
    repo.push("main");
    let live_sha = "SELECT d.commit_sha FROM servers s JOIN deployments d \
                    ON d.id = s.live_deployment_id WHERE s.name = 'app'";
    let went_live = wait_until(DEPLOY_TIMEOUT, || database.value(live_sha) == v2);
    assert!(
        went_live,
        "the pushed commit did not go live\n{}\n{}",
        a.log_tail(40),
        b.log_tail(40)
    );
    // Both replicas poll every second; give them a few more rounds to build it again.
    std::thread::sleep(Duration::from_secs(3));
    let builds = database.value(&format!(
        "SELECT COUNT(*) FROM deployments WHERE commit_sha = '{v2}' OR git_ref = '{v2}'"
    ));
    assert_eq!(builds, "1", "the commit was built more than once");

    // Only one replica polls at all: with the repository gone, only it complains.
    let moved = repo.bare.with_extension("moved");
    fs::rename(&repo.bare, &moved).expect("move the repository away");
    let complaining = || {
        [&a, &b]
            .iter()
            .filter(|replica| replica.log().contains("cannot poll"))
            .count()
    };
    assert!(
        wait_until(Duration::from_secs(30), || complaining() > 0),
        "no replica noticed the repository was gone\n{}\n{}",
        a.log_tail(20),
        b.log_tail(20)
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(complaining(), 1, "both replicas polled the source");
}

/// A replica killed in the middle of a build leaves it to the others: they find it no longer
/// connected and mark its build failed, saying why, instead of showing it building for ever.
#[test]
fn a_build_left_by_a_killed_replica_is_marked_failed_by_another() {
    let Some(database) = PostgresDatabase::create() else {
        return;
    };
    let flags = ["--database-url", database.url()];
    let env = [("SKYPORT_MASTER_KEY", MASTER_KEY)];
    let mut a = Skyport::serve_with_env(&flags, &env);
    let b = Skyport::serve_with_env(&flags, &env);
    let folder = a.scratch().join("held");
    let hold = a.scratch().join("hold");
    fs::write(&hold, "").expect("create the hold file");
    write_held(&folder, &hold, "Hello");
    let path = folder.display().to_string();
    let run = a.cli_bounded(
        &["deploy", &path, "--name", "held", "--no-wait", "--json"],
        DEPLOY_TIMEOUT,
    );
    assert!(run.success, "{run}");
    let id = run.json()["id"]
        .as_str()
        .expect("a deployment id")
        .to_owned();
    let reached = wait_until(DEPLOY_TIMEOUT, || a.scratch().join("hold.reached").exists());
    assert!(
        reached,
        "the build never reached its inspection\n{}",
        a.log_tail(40)
    );

    a.kill9();
    // The held inspection outlives its serve; let it end.
    fs::remove_file(&hold).expect("remove the hold file");
    let status = format!("SELECT status FROM deployments WHERE id = '{id}'");
    let failed = wait_until(Duration::from_secs(60), || {
        database.value(&status) == "failed"
    });
    assert!(
        failed,
        "B left the build of the killed replica {}\n{}",
        database.value(&status),
        b.log_tail(30)
    );
    let kind = database.value(&format!(
        "SELECT failure_kind FROM deployments WHERE id = '{id}'"
    ));
    assert_eq!(kind, "interrupted");
    let message = database.value(&format!(
        "SELECT failure_message FROM deployments WHERE id = '{id}'"
    ));
    assert!(
        message.contains("replica") && message.contains("deploy again"),
        "{message}"
    );
    assert!(
        b.log().contains("no longer connected to the database"),
        "{}",
        b.log_tail(30)
    );
}
