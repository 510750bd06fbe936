//! Instances: one start shared by concurrent first requests, their output in the logs, and no
//! instance left behind when `skyport serve` stops or dies.

use std::fs;
use std::time::Duration;

use skyport_e2e::{STOP_TIMEOUT, Skyport, example, wait_until};

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
        last.map(|r| r.to_string()).unwrap_or_default()
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
