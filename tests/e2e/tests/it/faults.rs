//! Faults (issue 14): `skyport serve` killed with -9 in the middle of a build, an instance
//! killed with -9 in the middle of a request, and the data dir's filesystem full. Each time
//! the platform must say what happened, keep serving what it served, leave no process behind
//! and recover once the cause is gone. Killing serve while it only serves is covered by
//! `sessions.rs` (a held session continues) and `runtime.rs` (no stray process after the
//! restart); here a held session also crosses the restart that interrupts a build.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use skyport_e2e::{
    DEPLOY_TIMEOUT, HeldClient, Proc, Skyport, command, deployments_of, descendants, http,
    processes, python, python_instances, run_bounded, signal, wait_until,
};

use crate::runtime::{call_on_session, open_raw_session};

/// A server whose import waits while `HOLD` exists, in the build's inspection only (instances
/// have `SKYPORT_INSTANCE_ID`), after touching `HOLD.reached`; `GREETING` tells versions apart.
const HELD: &str = r#""""A server whose build can be caught in its inspection."""
import os
import pathlib
import time

from fastmcp import FastMCP

HOLD = pathlib.Path(__HOLD__)
if not os.environ.get("SKYPORT_INSTANCE_ID") and HOLD.exists():
    pathlib.Path(str(HOLD) + ".reached").touch()
    while HOLD.exists():
        time.sleep(0.1)

mcp = FastMCP("held")


@mcp.tool
def hello(name: str) -> str:
    """Greet someone by name."""
    return f"__GREETING__, {name}!"
"#;

/// Writes [`HELD`] into `folder` with `greeting`, holding on `hold`.
pub(crate) fn write_held(folder: &Path, hold: &Path, greeting: &str) {
    fs::create_dir_all(folder).expect("create a server folder");
    let code = HELD
        .replace("__HOLD__", &format!("{:?}", hold.display().to_string()))
        .replace("__GREETING__", greeting);
    fs::write(folder.join("main.py"), code).expect("write main.py");
}

/// The deployments of `server`, newest first as the CLI lists them.
fn deployments(sky: &Skyport, server: &str) -> Vec<Value> {
    let run = sky.cli(&["deployments", server, "--json"]);
    assert!(run.success, "{run}");
    deployments_of(&run.json())
}

/// Live processes whose command line names `dir` (build children and instances name the data
/// dir: the environment's Python, the artifact, uv's target).
fn mentioning(dir: &Path) -> Vec<Proc> {
    let dir = dir.display().to_string();
    processes()
        .into_iter()
        .filter(|p| p.cmdline().contains(&dir))
        .collect()
}

#[test]
fn a_build_interrupted_by_kill_9_is_failed_on_restart_and_leaves_nothing_running() {
    let mut sky = Skyport::serve();
    let folder = sky.scratch().join("held");
    let hold = sky.scratch().join("hold");
    write_held(&folder, &hold, "Hello");
    sky.deploy_ok(&folder, "held");
    let url = sky.mcp_url("held");
    let (mut client, ready) = HeldClient::open("sdk", "session_client.py", &["sdk", &url]);
    assert_eq!(ready["ready"], true, "the client did not connect: {ready}");
    assert_eq!(client.hello("before")["text"], "Hello, before!");

    // A new version, caught in its inspection.
    fs::write(&hold, "").expect("create the hold file");
    write_held(&folder, &hold, "Howdy");
    let path = folder.display().to_string();
    let run = sky.cli_bounded(
        &["deploy", &path, "--name", "held", "--no-wait", "--json"],
        DEPLOY_TIMEOUT,
    );
    assert!(run.success, "{run}");
    let interrupted = run.json()["id"]
        .as_str()
        .expect("a deployment id")
        .to_owned();
    let reached = wait_until(DEPLOY_TIMEOUT, || {
        sky.scratch().join("hold.reached").exists()
    });
    assert!(
        reached,
        "the build never reached its inspection\n{}",
        sky.log_tail(40)
    );
    let first_run = descendants(sky.pid());
    assert!(
        first_run.iter().any(|p| p.cmdline().contains(" inspect ")),
        "no inspection process under serve: {first_run:#?}"
    );

    sky.kill9();
    sky.restart();
    let gone = wait_until(Duration::from_secs(15), || {
        first_run.iter().all(|p| !p.alive())
    });
    let survivors: Vec<String> = first_run
        .iter()
        .filter(|p| p.alive())
        .map(|p| format!("{} {}", p.pid, p.cmdline()))
        .collect();
    assert!(
        gone,
        "processes of the killed serve survived its restart: {survivors:#?}\n{}",
        sky.log_tail(40)
    );
    let now_serving = descendants(sky.pid());
    let strays: Vec<String> = mentioning(sky.data_dir())
        .iter()
        .filter(|p| p.pid != sky.pid() && !now_serving.contains(p))
        .map(|p| format!("{} {}", p.pid, p.cmdline()))
        .collect();
    assert!(
        strays.is_empty(),
        "processes on the data dir that the new serve did not start: {strays:#?}"
    );

    let listed = deployments(&sky, "held");
    let failed = listed
        .iter()
        .find(|d| d["id"] == interrupted.as_str())
        .unwrap_or_else(|| panic!("the interrupted deployment is not listed: {listed:#?}"));
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["failure"]["kind"], "interrupted", "{failed}");
    let message = failed["failure"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("interrupted because Skyport stopped"),
        "{failed}"
    );
    // The previous deployment still serves, to the session opened before the kill too.
    sky.check_hello("held", "after-restart");
    let answer = client.hello("after-restart");
    assert_eq!(answer["text"], "Hello, after-restart!", "{answer}");

    // A retry builds the same source to the end.
    fs::remove_file(&hold).expect("remove the hold file");
    sky.deploy_ok(&folder, "held");
    let answer = client.hello("retried");
    assert_eq!(answer["text"], "Howdy, retried!", "{answer}");
}

/// A server with a tool that runs until its instance is killed, saying so in `STARTED`.
const SLOW: &str = r#""""A server with a tool slow enough to be killed while it runs."""
import pathlib
import time

from fastmcp import FastMCP

mcp = FastMCP("slow")


@mcp.tool
def slow() -> str:
    """Take ten minutes."""
    pathlib.Path(__STARTED__).touch()
    time.sleep(600)
    return "finished"


@mcp.tool
def hello(name: str = "you") -> str:
    """Greet someone by name."""
    return f"Hello, {name}!"
"#;

/// Every JSON-RPC message in a response body (one JSON document or an event stream).
fn messages(body: &str) -> Vec<Value> {
    if let Ok(value) = serde_json::from_str(body) {
        return vec![value];
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

#[test]
fn an_instance_killed_mid_request_fails_that_request_and_the_next_one_is_served() {
    let sky = Skyport::serve();
    let folder = sky.scratch().join("slow");
    let started = sky.scratch().join("started");
    fs::create_dir_all(&folder).expect("create a server folder");
    let code = SLOW.replace(
        "__STARTED__",
        &format!("{:?}", started.display().to_string()),
    );
    fs::write(folder.join("main.py"), code).expect("write main.py");
    sky.deploy_ok(&folder, "slow");
    let session = open_raw_session(&sky, "slow");

    let answer = std::thread::scope(|scope| {
        let call = scope.spawn(|| call_on_session(&sky, "slow", &session, "slow"));
        let running = wait_until(DEPLOY_TIMEOUT, || started.exists());
        assert!(running, "the slow tool never ran\n{}", sky.log_tail(40));
        let instances = python_instances(sky.pid());
        assert_eq!(instances.len(), 1, "{instances:?}");
        signal(&instances[0].pid.to_string(), "KILL");
        call.join().expect("the call's thread")
    });

    let errors: Vec<Value> = messages(&answer.body)
        .into_iter()
        .filter(|m| m["id"] == 3)
        .collect();
    assert_eq!(errors.len(), 1, "{answer:?}");
    let message = errors[0]["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("stopped while handling the request")
            && message.contains("killed by signal 9"),
        "not the instance's end: {answer:?}\n{}",
        sky.log_tail(40)
    );
    // The same session goes on (on a new instance), and so do new ones.
    let next = call_on_session(&sky, "slow", &session, "hello");
    let result = messages(&next.body)
        .into_iter()
        .find(|m| m["id"] == 3)
        .unwrap_or_default();
    assert_eq!(
        result["result"]["content"][0]["text"],
        "Hello, you!",
        "{next:?}\n{}",
        sky.log_tail(40)
    );
    sky.check_hello("slow", "after-kill");
}

/// A tmpfs mounted on a folder for the life of the guard; unmounted on drop (lazily if a
/// process still holds it).
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) on `at`; None when this
    /// machine does not let the tests mount (not root, or no mount permission).
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        let status = command("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status();
        status.is_ok_and(|s| s.success()).then(|| Tmpfs {
            at: at.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = command("umount")
            .arg(&self.at)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = command("umount").arg("-l").arg(&self.at).status();
        }
        // The serve's temp dir could not remove its mount point while it was mounted.
        let _ = fs::remove_dir(&self.at);
        if let Some(parent) = self.at.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
}

/// Writes zeros into `path` until the filesystem refuses more; returns how many bytes.
fn fill(path: &Path) -> u64 {
    let mut file = fs::File::create(path).expect("create the filler file");
    let mut written = 0;
    for size in [1 << 20, 4096, 1] {
        let chunk = vec![0u8; size];
        while file.write_all(&chunk).is_ok() {
            written += size as u64;
        }
    }
    let _ = file.sync_all();
    written
}

/// `PRAGMA integrity_check` of the SQLite file `db`, with the client Python's `sqlite3`.
fn integrity_check(sky: &Skyport, db: &Path) -> String {
    let mut cmd = command(python());
    cmd.args([
        "-c",
        "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])",
    ])
    .arg(db);
    let run = run_bounded(cmd, sky.scratch(), Duration::from_secs(60));
    assert!(run.success, "{run}");
    run.stdout.trim().to_owned()
}

#[test]
fn a_full_data_dir_gives_clear_errors_corrupts_nothing_and_recovers_once_freed() {
    let mut mounted = None;
    let sky = Skyport::serve_prepared(|data| mounted = Tmpfs::mount(data, "512m"));
    if mounted.is_none() {
        eprintln!(
            "SKIPPED a_full_data_dir_…: cannot mount a tmpfs here (the full-disk test needs root)"
        );
        return;
    }
    // Never held: the hold files do not exist; a new name makes a new source to build.
    let folder = sky.scratch().join("hello");
    write_held(&folder, &sky.scratch().join("never"), "Hello");
    sky.deploy_ok(&folder, "full");
    sky.check_hello("full", "before");

    let filler = sky.data_dir().join("filler");
    assert!(
        fill(&filler) > 0,
        "nothing could be written to the data dir"
    );
    write_held(&folder, &sky.scratch().join("never-again"), "Hello");
    let refused = sky.deploy(&folder, "full", &[]);
    assert!(
        !refused.success,
        "a deploy succeeded on a full disk\n{refused}"
    );
    let said = refused.stderr.to_lowercase();
    assert!(
        said.contains("no space left") && said.contains("free space"),
        "the error does not say the disk is full\n{refused}\n{}",
        sky.log_tail(40)
    );
    let health = http(&sky.addr(), "GET", "/healthz", &[], None).expect("GET /healthz");
    assert_eq!(health.status, 200, "{health:?}\n{}", sky.log_tail(40));
    let listed = sky.cli(&["servers", "ls", "--json"]);
    assert!(listed.success, "reading failed on a full disk\n{listed}");

    fs::remove_file(&filler).expect("remove the filler");
    sky.deploy_ok(&folder, "full");
    sky.check_hello("full", "after");
    assert_eq!(
        integrity_check(&sky, &sky.data_dir().join("skyport.db")),
        "ok"
    );
}
