//! The build queue through the CLI: a build waits for a slot (`--build-concurrency 1`), a queued
//! one and a running one are cancelled (`skyport builds cancel`), and `skyport logs N --build ID
//! -f` prints the build's log live and exits when the build is over.
//!
//! The running build is held in its install phase deterministically: its requirements name a
//! package index on loopback that accepts connections and never answers, so uv waits until it
//! is killed — and the index sees the connection close when it is.

use std::fs::{self, File};
use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use serde_json::Value;
use skyport_e2e::{
    CLI_TIMEOUT, DEPLOY_TIMEOUT, HEALTH_TIMEOUT, Skyport, command, copy_dir, deployments_of,
    descendants, example, http, skyport_bin, tail, wait_until,
};

/// What the silent index saw.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Opened,
    Closed,
}

/// A package index on 127.0.0.1 that accepts connections and never answers; reports each
/// connection's opening and closing.
fn silent_index() -> (String, Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the silent index");
    let url = format!(
        "http://{}/simple",
        listener.local_addr().expect("the index's address")
    );
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for mut socket in listener.incoming().flatten() {
            let tx = tx.clone();
            let _ = tx.send(Seen::Opened);
            thread::spawn(move || {
                let mut sink = [0u8; 4096];
                while matches!(socket.read(&mut sink), Ok(n) if n > 0) {}
                let _ = tx.send(Seen::Closed);
            });
        }
    });
    (url, rx)
}

/// Counts the index's connections as they open and close.
struct Connections {
    seen: Receiver<Seen>,
    open: usize,
}

impl Connections {
    /// Waits (bounded) for the first connection.
    fn await_first(&mut self, timeout: Duration, context: &dyn Fn() -> String) {
        while self.open == 0 {
            self.next(timeout, context);
        }
    }

    /// Waits (bounded) until every connection opened so far is closed.
    fn await_all_closed(&mut self, timeout: Duration, context: &dyn Fn() -> String) {
        while let Ok(event) = self.seen.try_recv() {
            self.count(&event);
        }
        while self.open > 0 {
            self.next(timeout, context);
        }
    }

    fn next(&mut self, timeout: Duration, context: &dyn Fn() -> String) {
        match self.seen.recv_timeout(timeout) {
            Ok(event) => self.count(&event),
            Err(e) => panic!(
                "the index saw nothing more ({e}) with {} connections open\n{}",
                self.open,
                context()
            ),
        }
    }

    fn count(&mut self, event: &Seen) {
        match event {
            Seen::Opened => self.open += 1,
            Seen::Closed => self.open = self.open.saturating_sub(1),
        }
    }
}

/// `skyport serve --build-concurrency 1`, healthy.
fn serve_one_build_at_a_time() -> Skyport {
    let sky = Skyport::spawn("serve", &["--build-concurrency", "1"], None);
    let healthy = wait_until(HEALTH_TIMEOUT, || {
        http(&sky.addr(), "GET", "/healthz", &[], None).is_ok_and(|r| r.status == 200)
    });
    assert!(healthy, "skyport did not start\n{}", sky.log_tail(60));
    sky
}

/// Starts `skyport ARGS…` against `sky` in the background, its stdout and stderr in `out`.
fn cli_background(sky: &Skyport, args: &[&str], out: &std::path::Path) -> Child {
    let file = File::create(out).expect("create the output file");
    let err = file.try_clone().expect("clone the output file handle");
    command(skyport_bin())
        .args(args)
        .env_remove("SKYPORT_TOKEN")
        .env("SKYPORT_URL", sky.url())
        .env("SKYPORT_DATA_DIR", sky.data_dir())
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .expect("start the skyport CLI")
}

fn deployment(sky: &Skyport, server: &str, id: &str) -> Value {
    let run = sky.cli(&["deployments", server, "--json"]);
    assert!(run.success, "{run}");
    deployments_of(&run.json())
        .into_iter()
        .find(|d| d["id"] == id)
        .unwrap_or_else(|| panic!("deployment {id} is not listed\n{run}"))
}

fn deploy_no_wait(sky: &Skyport, path: &std::path::Path, name: &str) -> String {
    let path = path.to_string_lossy();
    let run = sky.cli_bounded(
        &["deploy", &path, "--name", name, "--no-wait", "--json"],
        DEPLOY_TIMEOUT,
    );
    assert!(run.success, "{run}");
    run.json()["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no deployment id\n{run}"))
        .to_owned()
}

#[test]
fn queued_and_running_builds_are_cancelled_and_their_log_followed_live() {
    let sky = serve_one_build_at_a_time();
    let (index, seen) = silent_index();
    let mut connections = Connections { seen, open: 0 };
    let slow = sky.scratch().join("slow");
    copy_dir(&example("hello"), &slow).expect("copy examples/hello");
    fs::write(
        slow.join("requirements.txt"),
        format!("--index-url {index}\nskyport-e2e-never-answers==1.0\n"),
    )
    .expect("write requirements.txt");

    let running = deploy_no_wait(&sky, &slow, "slow");
    let context = || sky.log_tail(60);
    connections.await_first(DEPLOY_TIMEOUT, &context);
    assert_eq!(deployment(&sky, "slow", &running)["phase"], "install");

    // One build at a time: the next one waits, and is cancelled while it does.
    let queued = deploy_no_wait(&sky, &example("hello"), "other");
    let run = sky.cli(&["builds", "ls", "--json"]);
    assert!(run.success, "{run}");
    let listed: Vec<(String, String)> = deployments_of(&run.json())
        .iter()
        .map(|b| {
            let field = |k: &str| b[k].as_str().unwrap_or_default().to_owned();
            (field("id"), field("status"))
        })
        .collect();
    assert_eq!(
        listed,
        [
            (running.clone(), "building".to_owned()),
            (queued.clone(), "queued".to_owned())
        ],
        "{run}"
    );
    let run = sky.cli(&["builds", "cancel", &queued]);
    assert!(run.success, "{run}");
    let cancelled = deployment(&sky, "other", &queued);
    assert_eq!(cancelled["failure"]["kind"], "cancelled", "{cancelled}");

    // The running build's log, followed live; cancelling ends the build and the follower.
    let out = sky.scratch().join("follow.out");
    let mut follower = cli_background(&sky, &["logs", "slow", "--build", &running, "-f"], &out);
    let printed = wait_until(CLI_TIMEOUT, || {
        fs::read_to_string(&out).is_ok_and(|t| t.contains("build "))
    });
    assert!(
        printed,
        "`logs -f` printed no build line while the build ran:\n{}",
        fs::read_to_string(&out).unwrap_or_default()
    );
    let run = sky.cli(&["builds", "cancel", &running]);
    assert!(run.success, "{run}");
    let exited = wait_until(CLI_TIMEOUT, || matches!(follower.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = follower.kill();
    }
    let _ = follower.wait();
    let followed = fs::read_to_string(&out).unwrap_or_default();
    assert!(
        exited,
        "`logs -f` did not exit when the build ended:\n{followed}"
    );
    assert!(
        followed.contains("cancelled by request"),
        "`logs -f` did not show the end of the build:\n{}",
        tail(&followed, 20)
    );

    // uv was killed: its connection to the index closed, and no build process is left.
    connections.await_all_closed(CLI_TIMEOUT, &context);
    let leftovers: Vec<String> = descendants(sky.pid())
        .iter()
        .map(|p| p.cmdline())
        .filter(|c| c.contains("uv ") || c.contains("/uv"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "build processes outlived the cancel: {leftovers:?}"
    );
    let stopped = deployment(&sky, "slow", &running);
    assert_eq!(stopped["status"], "failed", "{stopped}");
    assert_eq!(stopped["failure"]["kind"], "cancelled", "{stopped}");

    let run = sky.cli(&["builds", "cancel", &running]);
    assert!(!run.success, "a finished build was cancelled again\n{run}");
    assert!(run.stderr.contains("only a queued or building"), "{run}");

    // The slot is free again: a build runs to the end.
    sky.deploy_ok(&example("hello"), "other");

    // --ref belongs to git sources.
    let run = sky.deploy(&example("hello"), "other", &["--ref", "main"]);
    assert!(!run.success, "--ref was accepted with a folder\n{run}");
    assert!(run.stderr.contains("git source"), "{run}");
}
