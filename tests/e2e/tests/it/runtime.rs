//! Instances: one start shared by concurrent first requests, their output in the logs, scale to
//! zero and back, crashes and out-of-memory kills reported to the request in flight, a start
//! that never finishes, and no process left behind when `skyport serve` stops or dies.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use skyport_e2e::{HttpResponse, Proc, STOP_TIMEOUT, Skyport, example, http, wait_until};

#[test]
fn concurrent_first_requests_share_one_start() {
    let mut sky = Skyport::serve();
    sky.deploy_ok(&example("hello"), "cold");
    let url = sky.mcp_url("cold");
    let (run, v) = sky.client("sdk_client.py", &["concurrent", &url, "8"]);
    assert_eq!(
        v["ok"],
        true,
        "not every concurrent first session succeeded\n{run}\n{}",
        sky.log_tail(40)
    );
    let instances = sky.instances();
    let described: Vec<String> = instances
        .iter()
        .map(|p| format!("{} {}", p.pid, p.cmdline()))
        .collect();
    assert_eq!(
        instances.len(),
        1,
        "expected exactly one instance, found {described:#?}\n{}",
        sky.log_tail(40)
    );
}

/// A server whose tool prints a marker: only a running instance (never the build's inspection,
/// which imports the module but calls nothing) can put it in the logs.
const LOUD: &str = r#""""A server that prints when its tool is called, to find the instance's output in the logs."""
import sys

from fastmcp import FastMCP

print("E2E-IMPORT-MARKER", flush=True)

mcp = FastMCP("loud")


@mcp.tool
def hello(name: str) -> str:
    """Greet someone by name, and say so on stdout and stderr."""
    print(f"E2E-CALL-MARKER stdout {name}", flush=True)
    print(f"E2E-CALL-MARKER stderr {name}", file=sys.stderr, flush=True)
    return f"Hello, {name}!"
"#;

#[test]
fn logs_show_build_and_instance_output() {
    let sky = Skyport::serve();
    let folder = sky.scratch().join("loud");
    fs::create_dir_all(&folder).expect("create a server folder");
    fs::write(folder.join("main.py"), LOUD).expect("write main.py");
    sky.deploy_ok(&folder, "loud");
    sky.check_hello("loud", "logs");

    // Instance output may reach the store a moment after the call: poll, bounded.
    let mut last = None;
    let found = wait_until(Duration::from_secs(15), || {
        let run = sky.cli(&["logs", "loud"]);
        let ok = run.success && run.stdout.contains("E2E-CALL-MARKER");
        last = Some(run);
        ok
    });
    assert!(
        found,
        "`skyport logs loud` lacks the instance's output\n{}",
        last.as_ref().map(|r| r.to_string()).unwrap_or_default()
    );
    // The gateway's audit log records each request; the instance must not log one line per
    // request besides (uvicorn's access log), which would cost every call and crowd out the
    // server's own lines.
    let logs = last.map(|r| r.stdout).unwrap_or_default();
    assert!(
        !logs.contains("POST /mcp"),
        "the instance logs an access line per request:\n{logs}"
    );

    let run = sky.cli(&["logs", "loud", "--build"]);
    assert!(run.success, "{run}");
    let lower = run.stdout.to_lowercase();
    assert!(
        lower.contains("fastmcp") || lower.contains("environment"),
        "`skyport logs loud --build` shows no build step\n{run}"
    );
}

#[test]
fn no_orphans_after_sigterm_or_kill() {
    // SIGTERM: a graceful stop takes its instances with it.
    let mut sky = Skyport::serve();
    sky.deploy_ok(&example("hello"), "hello");
    sky.check_hello("hello", "term");
    let instances = sky.instances();
    assert!(
        !instances.is_empty(),
        "no instance runs after a call\n{}",
        sky.log_tail(40)
    );
    let status = sky.terminate(STOP_TIMEOUT);
    assert!(
        status.is_some(),
        "skyport serve did not exit within {STOP_TIMEOUT:?} of SIGTERM\n{}",
        sky.log_tail(40)
    );
    let gone = wait_until(STOP_TIMEOUT, || instances.iter().all(|p| !p.alive()));
    assert!(
        gone,
        "instances outlived a SIGTERMed serve: {instances:?}\n{}",
        sky.log_tail(40)
    );
    drop(sky);

    // SIGKILL: the serve cannot clean up; its instances must still go (they watch their parent).
    let mut sky = Skyport::serve();
    sky.deploy_ok(&example("hello"), "hello");
    sky.check_hello("hello", "kill");
    let instances = sky.instances();
    assert!(
        !instances.is_empty(),
        "no instance runs after a call\n{}",
        sky.log_tail(40)
    );
    sky.kill9();
    let gone = wait_until(Duration::from_secs(10), || {
        instances.iter().all(|p| !p.alive())
    });
    assert!(
        gone,
        "instances outlived a serve killed with -9: {instances:?}\n{}",
        sky.log_tail(40)
    );
}

/// A server whose tools misbehave on purpose.
const FRAGILE: &str = r#""""Tools that crash, exhaust memory or leave a process behind, to test the runtime."""
import os
import subprocess
import sys

from fastmcp import FastMCP

mcp = FastMCP("fragile")


@mcp.tool
def hello(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"


@mcp.tool
def crash() -> str:
    """Exit the process at once."""
    print("E2E-CRASH-MARKER exiting on purpose", file=sys.stderr, flush=True)
    os._exit(1)


@mcp.tool
def hog() -> str:
    """Allocate (and touch) far more memory than any test limit."""
    chunks = [b"x" * (32 * 1024 * 1024) for _ in range(64)]
    return f"survived {len(chunks)}"


@mcp.tool
def sleeper() -> int:
    """Start a child process that outlives nothing on its own."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]).pid
"#;

const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");
const JSON: (&str, &str) = ("Content-Type", "application/json");
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"0"}}}"#;

/// Deploys [`FRAGILE`] as `name` with `extra` deploy flags.
fn deploy_fragile(sky: &Skyport, name: &str, extra: &[&str]) {
    let folder = sky.scratch().join(name);
    fs::create_dir_all(&folder).expect("create a server folder");
    fs::write(folder.join("main.py"), FRAGILE).expect("write main.py");
    let run = sky.deploy(&folder, name, extra);
    assert!(run.success, "deploy failed\n{run}\n{}", sky.log_tail(40));
}

/// Opens a session on `server` over raw HTTP and calls `tool`; returns the call's response.
fn call_raw(sky: &Skyport, server: &str, tool: &str) -> HttpResponse {
    let session = open_raw_session(sky, server);
    call_on_session(sky, server, &session, tool)
}

/// POSTs `body` to `server`'s MCP endpoint over raw HTTP, on `session` if given.
fn post_raw(sky: &Skyport, server: &str, session: Option<&str>, body: &str) -> HttpResponse {
    let path = format!("/servers/{server}/mcp");
    let mut headers = vec![ACCEPT, JSON];
    if let Some(id) = session {
        headers.push(("Mcp-Session-Id", id));
        headers.push(("MCP-Protocol-Version", "2025-06-18"));
    }
    http(&sky.addr(), "POST", &path, &headers, Some(body))
        .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", sky.log_tail(40)))
}

/// Opens an initialized session on `server` over raw HTTP; returns its `Mcp-Session-Id`.
pub(crate) fn open_raw_session(sky: &Skyport, server: &str) -> String {
    let init = post_raw(sky, server, None, INITIALIZE);
    assert_eq!(
        init.status,
        200,
        "initialize: {init:?}\n{}",
        sky.log_tail(40)
    );
    let session = init
        .header("mcp-session-id")
        .map(str::to_owned)
        .expect("initialize returned no session id");
    post_raw(
        sky,
        server,
        Some(&session),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    session
}

/// Calls `tool` without arguments on an open session (request id 3); returns the response.
pub(crate) fn call_on_session(
    sky: &Skyport,
    server: &str,
    session: &str,
    tool: &str,
) -> HttpResponse {
    let call = format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"{tool}","arguments":{{}}}}}}"#
    );
    post_raw(sky, server, Some(session), &call)
}

/// `skyport servers show NAME --json`.
fn show(sky: &Skyport, name: &str) -> serde_json::Value {
    let run = sky.cli(&["servers", "show", name, "--json"]);
    assert!(run.success, "{run}");
    run.json()
}

#[test]
fn idle_instances_scale_to_zero_and_the_next_request_starts_one() {
    let mut sky = Skyport::serve();
    let run = sky.deploy(&example("hello"), "idle", &["--idle-timeout", "1s"]);
    assert!(run.success, "{run}");
    sky.check_hello("idle", "first");
    let gone = wait_until(Duration::from_secs(30), || sky.instances().is_empty());
    assert!(gone, "no scale to zero after 1s idle\n{}", sky.log_tail(40));
    sky.check_hello("idle", "second");
    let server = show(&sky, "idle");
    assert_eq!(server["settings"]["idle_timeout_seconds"], 1, "{server}");
    assert!(
        server["metrics"]["cold_starts"].as_u64() >= Some(2),
        "two cold starts expected: {server}"
    );
    let text = sky.cli(&["servers", "show", "idle"]);
    assert!(text.stdout.contains("cold starts:"), "{text}");
}

#[test]
fn settings_are_set_validated_and_shown() {
    let sky = Skyport::serve();
    let run = sky.deploy(
        &example("hello"),
        "knobs",
        &["--memory", "512M", "--max-instances", "2"],
    );
    assert!(run.success, "{run}");
    let set = sky.cli(&[
        "servers",
        "set",
        "knobs",
        "--idle-timeout",
        "90s",
        "--min-instances",
        "1",
    ]);
    assert!(set.success, "{set}");
    let server = show(&sky, "knobs");
    assert_eq!(
        server["settings"],
        serde_json::json!({"memory_bytes": 536870912, "idle_timeout_seconds": 90, "min_instances": 1, "max_instances": 2,
                           "stdio_sessions": 16, "stdio_shared": false,
                           "auth": null, "auth_effective": false, "identity_token": false,
                           "request_timeout_seconds": null, "request_timeout_effective_seconds": 170})
    );
    let bad = sky.cli(&["servers", "set", "knobs", "--min-instances", "5"]);
    assert!(!bad.success, "{bad}");
    assert!(bad.output().contains("--max-instances"), "{bad}");
    let missing = sky.cli(&["servers", "set", "nope", "--memory", "256M"]);
    assert!(!missing.success, "{missing}");
    // min-instances 1 keeps one running without any request.
    let mut sky = sky;
    let warm = wait_until(Duration::from_secs(60), || !sky.instances().is_empty());
    assert!(
        warm,
        "min-instances 1 started nothing\n{}",
        sky.log_tail(40)
    );
    let metrics = http(&sky.addr(), "GET", "/metrics", &[], None).expect("GET /metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("skyport_instances{server=\"knobs\""),
        "{}",
        metrics.body
    );
}

#[test]
fn a_crash_is_reported_to_the_request_and_the_next_one_is_served() {
    let sky = Skyport::serve();
    deploy_fragile(&sky, "crashy", &[]);
    // FastMCP answers a call with an event stream whose headers are out before the tool runs:
    // the report then arrives as the stream's last event rather than as an HTTP error.
    let call = call_raw(&sky, "crashy", "crash");
    assert!(
        call.body.contains("exit code 1"),
        "{call:?}\n{}",
        sky.log_tail(40)
    );
    assert!(call.body.contains("E2E-CRASH-MARKER"), "{call:?}");
    sky.check_hello("crashy", "after-crash");
    let server = show(&sky, "crashy");
    assert_eq!(server["metrics"]["crashes"], 1, "{server}");
}

#[test]
fn an_instance_past_its_memory_limit_is_killed_reported_and_replaced() {
    let sky = Skyport::serve();
    deploy_fragile(&sky, "hungry", &["--memory", "128M"]);
    let call = call_raw(&sky, "hungry", "hog");
    assert!(
        call.body.contains("out of memory"),
        "the hog call was not reported as out of memory: {call:?}\n{}",
        sky.log_tail(40)
    );
    sky.check_hello("hungry", "after-oom");
    let server = show(&sky, "hungry");
    assert_eq!(server["metrics"]["oom_kills"], 1, "{server}");
    let logs = sky.cli(&["logs", "hungry", "--since", "10m"]);
    assert!(logs.stdout.contains("out of memory"), "{logs}");
}

#[test]
fn a_server_that_never_becomes_ready_times_out_with_its_stderr() {
    // Stuck before anything is imported, so its message comes out however slow the machine is;
    // the build's inspection (no SKYPORT_INSTANCE_ID) imports it normally.
    const STUCK: &str = r#"import os, sys, time

if os.environ.get("SKYPORT_INSTANCE_ID"):
    print("E2E-STUCK-MARKER waiting for a database that never answers", file=sys.stderr, flush=True)
    time.sleep(3600)

from fastmcp import FastMCP

mcp = FastMCP("stuck")


@mcp.tool
def hello(name: str) -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"
"#;
    let mut sky = Skyport::serve_with(&["--start-timeout", "10s"]);
    let folder = sky.scratch().join("stuck");
    fs::create_dir_all(&folder).expect("create a server folder");
    fs::write(folder.join("main.py"), STUCK).expect("write main.py");
    sky.deploy_ok(&folder, "stuck");
    let init = http(
        &sky.addr(),
        "POST",
        "/servers/stuck/mcp",
        &[ACCEPT, JSON],
        Some(INITIALIZE),
    )
    .expect("POST initialize");
    assert_eq!(init.status, 503, "{init:?}");
    assert!(init.body.contains("did not become ready"), "{init:?}");
    assert!(init.body.contains("E2E-STUCK-MARKER"), "{init:?}");
    let stopped = wait_until(STOP_TIMEOUT, || sky.instances().is_empty());
    assert!(stopped, "the stuck instance was not stopped");
}

#[test]
fn a_restart_after_kill_9_leaves_no_stray_python_process() {
    let mut sky = Skyport::serve();
    deploy_fragile(&sky, "leaky", &[]);
    let call = call_raw(&sky, "leaky", "sleeper");
    assert_eq!(call.status, 200, "{call:?}\n{}", sky.log_tail(40));
    let before: Vec<Proc> = skyport_e2e::descendants(sky.pid())
        .into_iter()
        .filter(Proc::is_python)
        .collect();
    assert!(
        before.len() >= 2,
        "expected an instance and its sleeper: {before:?}"
    );
    sky.kill9();
    // The instance dies with its parent; the sleeper it started does not, until the restart.
    sky.restart();
    let gone = wait_until(Duration::from_secs(15), || {
        before.iter().all(|p| !p.alive())
    });
    assert!(
        gone,
        "processes of the killed run survived the restart: {before:?}\n{}",
        sky.log_tail(40)
    );
    let records = instance_records(&sky);
    assert!(
        records.is_empty(),
        "instance records of the killed run remain: {records:?}"
    );
    sky.check_hello("leaky", "after-restart");
}

/// Files in the data dir's instance records folder.
fn instance_records(sky: &Skyport) -> Vec<PathBuf> {
    fs::read_dir(sky.data_dir().join("instances"))
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}
