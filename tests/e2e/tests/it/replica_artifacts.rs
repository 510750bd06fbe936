//! Hosted servers across replicas (two serves, their own data dirs and ports, one PostgreSQL
//! database, one master key): a deployment built through A serves through B, which fetches
//! its artifact from the database and recreates its environment, and goes on serving once A
//! is killed with -9; the same commit deployed through A and B at the same moment is
//! installed once, the other build reusing the artifact the first one stored; packaged PyPI
//! and npm servers built through A run on B too.

use std::time::Duration;

use skyport_e2e::{
    DEPLOY_TIMEOUT, GitRepo, PostgresDatabase, Run, Skyport, copy_dir, example, http, wait_until,
};

const MASTER_KEY: &str = "3e0c9a7b1d5f4e2a8c6b0d9f7e1a3c5b2d4f6a8c0e9b7d5f3a1c2e4b6d8f0a9c";
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"0"}}}"#;

/// Two replicas on `database`.
fn replicas(database: &PostgresDatabase) -> (Skyport, Skyport) {
    let flags = ["--database-url", database.url()];
    let env = [("SKYPORT_MASTER_KEY", MASTER_KEY)];
    (
        Skyport::serve_with_env(&flags, &env),
        Skyport::serve_with_env(&flags, &env),
    )
}

/// Waits until `replica` routes `server` (it learns of it from the change feed).
fn routed(replica: &Skyport, server: &str) -> bool {
    let path = format!("/servers/{server}/mcp");
    wait_until(Duration::from_secs(20), || {
        http(
            &replica.addr(),
            "POST",
            &path,
            &[
                ("Accept", "application/json, text/event-stream"),
                ("Content-Type", "application/json"),
            ],
            Some(INITIALIZE),
        )
        .is_ok_and(|answer| answer.status == 200)
    })
}

#[test]
fn a_deployment_built_on_one_replica_serves_on_another() {
    let Some(database) = PostgresDatabase::create() else {
        return;
    };
    let (mut a, b) = replicas(&database);
    let source = a.scratch().join("hello");
    copy_dir(&example("hello"), &source).expect("copy the example");
    a.deploy_ok(&source, "hello");
    let hash = database.value(
        "SELECT d.artifact FROM servers s JOIN deployments d ON d.id = s.live_deployment_id \
         WHERE s.name = 'hello'",
    );
    assert_eq!(
        database.value(&format!(
            "SELECT COUNT(*) FROM artifacts WHERE hash = '{hash}'"
        )),
        "1",
        "the live artifact is not stored in the database"
    );
    assert!(
        routed(&b, "hello"),
        "B does not route hello\n{}",
        b.log_tail(40)
    );
    b.check_hello("hello", "via-b");
    assert!(
        b.data_dir()
            .join("artifacts")
            .join(&hash)
            .join("manifest.json")
            .is_file(),
        "B serves hello without the artifact in its data dir"
    );
    assert!(
        b.log()
            .contains("fetched an artifact another replica built"),
        "B did not say it fetched the artifact\n{}",
        b.log_tail(40)
    );

    let recreated = database.value(
        "SELECT COUNT(*) FROM log_lines l JOIN servers s ON s.id = l.server_id \
         WHERE s.name = 'hello' AND l.line LIKE '%built on another replica: recreating its environment%'",
    );
    assert_eq!(recreated, "1", "B did not recreate the environment once");

    a.kill9();
    b.check_hello("hello", "after-a");
}

/// A FastMCP server with one tool, `twin`, answering `text`.
fn twin_server(text: &str) -> String {
    format!(
        "from fastmcp import FastMCP\n\nmcp = FastMCP(\"twin\")\n\n\n@mcp.tool\ndef twin() -> str:\n    return \"{text}\"\n"
    )
}

/// The build log of `server`'s deployments, from the database: the lines of its phases
/// (a replica recreating the environment to run it logs there too, outside any phase).
fn build_log(database: &PostgresDatabase, server: &str) -> String {
    database.value(&format!(
        "SELECT string_agg(l.line, ' | ' ORDER BY l.id) FROM log_lines l \
         JOIN deployments d ON d.id = l.deployment_id JOIN servers s ON s.id = d.server_id \
         WHERE s.name = '{server}' AND l.phase IS NOT NULL"
    ))
}

#[test]
fn one_commit_deployed_on_two_replicas_at_once_is_installed_once() {
    let Some(database) = PostgresDatabase::create() else {
        return;
    };
    let (a, b) = replicas(&database);
    let repo = GitRepo::new(&a.scratch().join("repos"), "twin");
    repo.commit("main.py", &twin_server("one"), "Twin", "one");
    repo.push("main");
    let url = repo.bare.to_string_lossy().into_owned();
    let deploy = |replica: &Skyport, name: &str| -> Run {
        replica.cli_bounded(&["deploy", &url, "--name", name], DEPLOY_TIMEOUT)
    };
    let (on_a, on_b) = std::thread::scope(|s| {
        let on_a = s.spawn(|| deploy(&a, "twin-a"));
        let on_b = s.spawn(|| deploy(&b, "twin-b"));
        (
            on_a.join().expect("deploy through A"),
            on_b.join().expect("deploy through B"),
        )
    });
    assert!(on_a.success, "{on_a}\n{}", a.log_tail(40));
    assert!(on_b.success, "{on_b}\n{}", b.log_tail(40));
    for server in ["twin-a", "twin-b"] {
        assert_eq!(
            database.value(&format!(
                "SELECT d.status FROM servers s JOIN deployments d ON d.id = s.live_deployment_id \
                 WHERE s.name = '{server}'"
            )),
            "ready",
            "{server} is not live and ready"
        );
    }
    assert_eq!(
        database
            .value("SELECT COUNT(DISTINCT artifact) FROM deployments WHERE artifact IS NOT NULL"),
        "1",
        "the two builds made different artifacts"
    );
    let logs = [
        build_log(&database, "twin-a"),
        build_log(&database, "twin-b"),
    ];
    let installed = logs
        .iter()
        .filter(|log| log.contains("creating environment"))
        .count();
    let reused = logs
        .iter()
        .filter(|log| log.contains("was built by another replica"))
        .count();
    assert_eq!(
        (installed, reused),
        (1, 1),
        "one build must install and the other reuse its artifact\n--- twin-a\n{}\n--- twin-b\n{}",
        logs[0],
        logs[1]
    );
    // Each replica serves the other's deployment too.
    assert!(
        routed(&a, "twin-b") && routed(&b, "twin-a"),
        "a replica does not serve the other's server\n{}\n{}",
        a.log_tail(40),
        b.log_tail(40)
    );
}

/// Calls `tool` of `server` through `replica` with the official SDK; returns the text.
fn call_packaged(replica: &Skyport, server: &str, tool: &str, args: &str) -> String {
    let url = replica.mcp_url(server);
    let (run, v) = replica.client("packaged_client.py", &["tools", &url, "auto", tool, args]);
    assert_eq!(
        v["ok"],
        true,
        "{server} through {url}\n{run}\n{}",
        replica.log_tail(40)
    );
    v["text"].as_str().unwrap_or_default().to_owned()
}

/// Packaged servers carry what they run in their artifact (a relocatable venv whose Python
/// links to the machine's, or `node_modules` with relative `.bin` links): built through A,
/// both run on B from the fetched artifact.
#[test]
fn packaged_servers_built_on_one_replica_serve_on_another() {
    let Some(database) = PostgresDatabase::create() else {
        return;
    };
    let (a, b) = replicas(&database);
    for (package, name) in [
        ("pypi:mcp-server-time", "time"),
        ("npm:@modelcontextprotocol/server-everything", "everything"),
    ] {
        let run = a.cli_bounded(&["deploy", package, "--name", name], DEPLOY_TIMEOUT);
        assert!(run.success, "deploy {package}\n{run}\n{}", a.log_tail(40));
        assert!(
            routed(&b, name),
            "B does not route {name}\n{}",
            b.log_tail(40)
        );
    }
    let time = call_packaged(
        &b,
        "time",
        "get_current_time",
        r#"{"timezone":"Asia/Tokyo"}"#,
    );
    assert!(
        time.contains("Asia/Tokyo") && time.contains("datetime"),
        "{time}"
    );
    let echo = call_packaged(&b, "everything", "echo", r#"{"message":"on-b"}"#);
    assert!(echo.contains("on-b"), "{echo}");
    let fetched = b
        .log()
        .matches("fetched an artifact another replica built")
        .count();
    assert_eq!(
        fetched,
        2,
        "B did not fetch both artifacts\n{}",
        b.log_tail(40)
    );
}
