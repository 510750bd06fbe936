//! The end-to-end harness: a real `skyport serve` on a free loopback port with its own data dir,
//! the `skyport` CLI pointed at it, real FastMCP servers built with uv, and real MCP clients (the
//! official `mcp` SDK and the FastMCP `Client`, as the Python scripts in `tests/e2e/clients/`).
//!
//! It owns starting and stopping those processes and reading what they leave behind (logs, `/proc`);
//! it must not know how Skyport works inside: everything goes through the CLI contract, HTTP and the
//! process table, the way a user and a client would see it.
//!
//! Where things come from:
//! - the binary: `SKYPORT_BIN`, else `<workspace>/target/debug/skyport` (`cargo build -p skyport`);
//! - the client Python: `SKYPORT_TEST_PYTHON`, else `<workspace>/target/e2e/venv/bin/python`
//!   (`scripts/test` creates it with `mcp`, `fastmcp` and `uv`);
//! - the uv cache: `UV_CACHE_DIR`, else `<workspace>/target/uv-cache`, shared by every test's serve so
//!   that only the first build of a run downloads packages;
//! - the Node tools (a Node 22 binary, the MCP conformance suite, the MCP Inspector):
//!   `SKYPORT_TEST_NODE` and `SKYPORT_TEST_NPM_BIN`, else `<workspace>/target/e2e/npm` (`scripts/test`
//!   installs them there from `tests/e2e/npm/`).
//!
//! Every test starts its own [`Skyport`], so tests run in parallel (nextest) without sharing state.
//! Every wait is bounded; a [`Skyport`] stops its serve on drop (SIGTERM, then SIGKILL after a bound),
//! kills any instance that outlived it, and prints the tail of its log when the test is failing.

mod direct;
mod held;
mod http;
mod postgres;
mod procs;

use std::fs::{self, File};
use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub use crate::direct::{DIRECT_START_TIMEOUT, DirectServer};
pub use crate::held::HeldClient;
pub use crate::http::{HttpResponse, http, mcp_post};
pub use crate::postgres::PostgresDatabase;
pub use crate::procs::{Proc, descendants, processes, python_instances, signal, wait_until};

/// How long `skyport serve` may take to answer `/healthz`.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for a CLI command that builds (a cold uv environment can take a while on a 2-core machine).
pub const DEPLOY_TIMEOUT: Duration = Duration::from_secs(300);
/// Bound for a CLI command that only reads or changes records.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for one client script (it bounds itself at 120 s too).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(150);
/// How long a stopped serve gets to exit on SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The `skyport` binary under test; panics with what to do when it has not been built.
pub fn skyport_bin() -> PathBuf {
    let bin = std::env::var_os("SKYPORT_BIN").map_or_else(
        || workspace_root().join("target/debug/skyport"),
        PathBuf::from,
    );
    assert!(
        bin.is_file(),
        "skyport binary not found at {}: run `cargo build -p skyport` first (or set SKYPORT_BIN)",
        bin.display()
    );
    bin
}

/// The Python that runs the client scripts; panics with what to do when it is missing.
pub fn python() -> PathBuf {
    let py = std::env::var_os("SKYPORT_TEST_PYTHON").map_or_else(
        || workspace_root().join("target/e2e/venv/bin/python"),
        PathBuf::from,
    );
    assert!(
        py.exists(),
        "client Python not found at {}: run `./scripts/test` once (it creates target/e2e/venv with mcp, \
         fastmcp and uv) or set SKYPORT_TEST_PYTHON",
        py.display()
    );
    py
}

/// The Node tools: the Node 22 binary and the `node_modules/.bin` folder holding `conformance` and
/// `inspector` (run them as `NODE BIN/TOOL …`); panics with what to do when they are missing.
pub fn node_tools() -> (PathBuf, PathBuf) {
    let npm = workspace_root().join("target/e2e/npm/node_modules/.bin");
    let node =
        std::env::var_os("SKYPORT_TEST_NODE").map_or_else(|| npm.join("node"), PathBuf::from);
    let bin = std::env::var_os("SKYPORT_TEST_NPM_BIN").map_or(npm, PathBuf::from);
    assert!(
        node.exists() && bin.join("conformance").exists() && bin.join("inspector").exists(),
        "Node tools not found ({} and {}/{{conformance,inspector}}): run `./scripts/test` once (it \
         installs tests/e2e/npm into target/e2e/npm) or set SKYPORT_TEST_NODE and SKYPORT_TEST_NPM_BIN",
        node.display(),
        bin.display()
    );
    (node, bin)
}

/// A folder under `examples/`.
pub fn example(name: &str) -> PathBuf {
    workspace_root().join("examples").join(name)
}

/// A test server folder under `tests/e2e/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A free TCP port on 127.0.0.1 (free when asked; the serve binds it right after).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port on 127.0.0.1");
    listener
        .local_addr()
        .expect("local address of a bound listener")
        .port()
}

/// What a finished command left: its exit status and its output.
#[derive(Debug)]
pub struct Run {
    /// The command line, for messages.
    pub what: String,
    /// Whether it exited with status 0.
    pub success: bool,
    /// Its exit code (None when a signal ended it).
    pub code: Option<i32>,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl Run {
    /// Stdout and stderr together, for matching messages wherever the command put them.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// The last non-empty stdout line parsed as JSON (the client scripts print exactly one).
    pub fn json_line(&self) -> serde_json::Value {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}: stdout is not a JSON line ({e}):\n{self}", self.what))
    }

    /// The whole stdout parsed as JSON (the `--json` read commands).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{}: stdout is not JSON ({e}):\n{self}", self.what))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.code,
            tail(&self.stdout, 40),
            tail(&self.stderr, 40)
        )
    }
}

/// Runs a command to completion within `timeout`, its output captured in files under `scratch`
/// (files rather than pipes: nothing can block on a full pipe, and no reader threads are needed).
/// Panics when it does not finish in time, after killing it.
pub fn run_bounded(mut cmd: Command, scratch: &Path, timeout: Duration) -> Run {
    let what = describe(&cmd);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out_path = scratch.join(format!("run-{n}.out"));
    let err_path = scratch.join(format!("run-{n}.err"));
    let out = File::create(&out_path).expect("create a capture file");
    let err = File::create(&err_path).expect("create a capture file");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"));
    let status = wait_bounded(&mut child, timeout);
    let read = |p: &Path| fs::read_to_string(p).unwrap_or_default();
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "`{what}` did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            tail(&read(&out_path), 40),
            tail(&read(&err_path), 40)
        );
    };
    Run {
        what,
        success: status.success(),
        code: status.code(),
        stdout: read(&out_path),
        stderr: read(&err_path),
    }
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Polls a child until it exits or `timeout` passes.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < end => sleep(Duration::from_millis(50)),
            Ok(None) | Err(_) => return None,
        }
    }
}

/// The last `n` lines of a text.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A command to run: the one place this crate starts processes.
#[allow(
    clippy::disallowed_methods,
    reason = "end-to-end tests drive skyport, its clients and `kill` as a user would; the ban is for library crates"
)]
pub fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    Command::new(program)
}

/// Runs `git ARGS…` in `cwd` (the tests' own repositories) and returns what it printed,
/// trimmed; panics with git's error when it fails.
pub fn git(cwd: &Path, args: &[&str]) -> String {
    let out = command("git")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A bare repository and a work tree whose pushes go to it, as a developer's clone would.
pub struct GitRepo {
    /// The work tree (branch `main` to begin with).
    pub work: PathBuf,
    /// The bare repository Skyport fetches from.
    pub bare: PathBuf,
}

impl GitRepo {
    /// An empty repository `ROOT/NAME.git` on branch `main` and its work tree `ROOT/NAME-work`.
    pub fn new(root: &Path, name: &str) -> GitRepo {
        let work = root.join(format!("{name}-work"));
        let bare = root.join(format!("{name}.git"));
        fs::create_dir_all(&work).expect("create the work tree");
        let bare_path = bare.to_string_lossy();
        git(root, &["init", "-q", "--bare", "-b", "main", &bare_path]);
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["remote", "add", "origin", &bare_path]);
        GitRepo { work, bare }
    }

    /// Commits `text` as `file` on the work tree's branch, by `author`; returns the SHA.
    pub fn commit(&self, file: &str, text: &str, author: &str, message: &str) -> String {
        fs::write(self.work.join(file), text).expect("write a file of the work tree");
        git(&self.work, &["add", "-A"]);
        let name = format!("user.name={author}");
        let email = format!("user.email={}@example.com", author.to_lowercase());
        git(
            &self.work,
            &["-c", &name, "-c", &email, "commit", "-q", "-m", message],
        );
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Pushes `branch` to the bare repository.
    pub fn push(&self, branch: &str) {
        git(&self.work, &["push", "-q", "origin", branch]);
    }

    /// The bare repository as a `file://` URL.
    pub fn url(&self) -> String {
        format!("file://{}", self.bare.display())
    }
}

/// A running `skyport serve` (or `skyport up`) with its own port, data dir and log.
pub struct Skyport {
    child: Child,
    port: u16,
    dir: TempDir,
    data_dir: PathBuf,
    log: PathBuf,
    /// The flags given after `--listen` and `--data-dir`, given again by [`Skyport::restart`].
    extra: Vec<String>,
    /// Variables set for the serve besides the test's own, set again by [`Skyport::restart`].
    env: Vec<(String, String)>,
    /// Every descendant seen while it ran, killed on drop if still alive (never leave instances).
    seen: Vec<Proc>,
}

impl Skyport {
    /// Starts `skyport serve --listen 127.0.0.1:PORT --data-dir DIR` and waits for `/healthz`.
    pub fn serve() -> Skyport {
        let mut sky = Skyport::spawn("serve", &[], None);
        sky.wait_healthy();
        sky
    }

    /// Starts `skyport up --listen 127.0.0.1:PORT --data-dir DIR` (no source: the default example)
    /// with the workspace root as working directory, and waits for `/healthz`.
    pub fn up() -> Skyport {
        let mut sky = Skyport::spawn("up", &[], Some(&workspace_root()));
        sky.wait_healthy();
        sky
    }

    /// Starts `skyport SUBCOMMAND --listen … --data-dir … EXTRA…` without waiting for anything.
    pub fn spawn(subcommand: &str, extra: &[&str], cwd: Option<&Path>) -> Skyport {
        Skyport::spawn_with_env(subcommand, extra, &[], cwd)
    }

    /// Like [`Skyport::spawn`], with `env` set for the serve (e.g. a shared `SKYPORT_MASTER_KEY`).
    pub fn spawn_with_env(
        subcommand: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        cwd: Option<&Path>,
    ) -> Skyport {
        Skyport::spawn_prepared(subcommand, extra, env, cwd, |_| {})
    }

    /// Starts `skyport serve` on a fresh data dir that `prepare` readies first (e.g. mounts a
    /// small filesystem on it), and waits for `/healthz`.
    pub fn serve_prepared(prepare: impl FnOnce(&Path)) -> Skyport {
        let mut sky = Skyport::spawn_prepared("serve", &[], &[], None, prepare);
        sky.wait_healthy();
        sky
    }

    fn spawn_prepared(
        subcommand: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        cwd: Option<&Path>,
        prepare: impl FnOnce(&Path),
    ) -> Skyport {
        let dir = tempfile::Builder::new()
            .prefix("skyport-e2e-")
            .tempdir()
            .expect("create a temp dir");
        let data_dir = dir.path().join("data");
        fs::create_dir_all(&data_dir).expect("create the data dir");
        prepare(&data_dir);
        let port = free_port();
        let log = dir.path().join("serve.log");
        let out = File::create(&log).expect("create the serve log");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let child = start_child(subcommand, port, &data_dir, out, extra, &env, cwd);
        Skyport {
            child,
            port,
            dir,
            data_dir,
            log,
            extra: extra.iter().map(|&flag| flag.to_owned()).collect(),
            env,
            seen: Vec::new(),
        }
    }

    /// Starts `skyport serve EXTRA…` (a fresh data dir) with `env` set, and waits for `/healthz`.
    pub fn serve_with_env(extra: &[&str], env: &[(&str, &str)]) -> Skyport {
        let mut sky = Skyport::spawn_with_env("serve", extra, env, None);
        sky.wait_healthy();
        sky
    }

    /// Starts `skyport serve EXTRA…` (a fresh data dir) and waits for `/healthz`.
    pub fn serve_with(extra: &[&str]) -> Skyport {
        let mut sky = Skyport::spawn("serve", extra, None);
        sky.wait_healthy();
        sky
    }

    /// Starts `skyport serve` again on the same data dir and port (appending to the same log)
    /// once the previous one has exited, as a user restarting it after a crash would: clients
    /// keep their URL.
    pub fn restart(&mut self) {
        assert!(
            matches!(self.child.try_wait(), Ok(Some(_))),
            "restart while the serve still runs"
        );
        let out = fs::OpenOptions::new()
            .append(true)
            .open(&self.log)
            .expect("open the serve log");
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.child = start_child(
            "serve",
            self.port,
            &self.data_dir,
            out,
            &extra,
            &self.env,
            None,
        );
        self.wait_healthy();
    }

    fn wait_healthy(&mut self) {
        let end = Instant::now() + HEALTH_TIMEOUT;
        loop {
            if http(&self.addr(), "GET", "/healthz", &[], None).is_ok_and(|r| r.status == 200) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "skyport exited ({status}) before answering /healthz\n{}",
                    self.log_tail(60)
                );
            }
            assert!(
                Instant::now() < end,
                "skyport did not answer /healthz within {HEALTH_TIMEOUT:?}\n{}",
                self.log_tail(60)
            );
            sleep(Duration::from_millis(200));
        }
    }

    /// The pid of the `skyport` process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// The gateway URL of a server.
    pub fn mcp_url(&self, name: &str) -> String {
        format!("{}/servers/{name}/mcp", self.url())
    }

    /// The data dir given to the serve.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A scratch directory that lives as long as this serve (for test server folders).
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the serve printed so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the serve log, headed, for assertion messages.
    pub fn log_tail(&self, n: usize) -> String {
        format!(
            "--- skyport log ({}) ---\n{}",
            self.log.display(),
            tail(&self.log(), n)
        )
    }

    /// Runs `skyport ARGS…` against this serve (`SKYPORT_URL`, `SKYPORT_DATA_DIR`), bounded.
    pub fn cli(&self, args: &[&str]) -> Run {
        self.cli_bounded(args, CLI_TIMEOUT)
    }

    /// Like [`Skyport::cli`] with an explicit bound.
    pub fn cli_bounded(&self, args: &[&str], timeout: Duration) -> Run {
        let mut cmd = command(skyport_bin());
        cmd.args(args);
        scrub_env(&mut cmd);
        // Logins saved by `skyport login` stay in this serve's scratch dir, never the user's.
        cmd.env("SKYPORT_URL", self.url())
            .env("SKYPORT_DATA_DIR", &self.data_dir)
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"));
        run_bounded(cmd, self.dir.path(), timeout)
    }

    /// Runs `skyport ARGS…` as another person on another machine would: `home` holds their
    /// config (where `skyport login` saves their key) and an empty data dir (no admin
    /// credential), `env` is added.
    pub fn cli_as(&self, home: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
        let mut cmd = command(skyport_bin());
        cmd.args(args);
        scrub_env(&mut cmd);
        cmd.env("SKYPORT_URL", self.url())
            .env("SKYPORT_DATA_DIR", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .envs(env.iter().copied());
        run_bounded(cmd, self.dir.path(), DEPLOY_TIMEOUT)
    }

    /// `skyport deploy PATH --name NAME EXTRA…`, bounded; returns the run whatever its outcome.
    pub fn deploy(&self, path: &Path, name: &str, extra: &[&str]) -> Run {
        let path = path.to_string_lossy();
        let mut args = vec!["deploy", path.as_ref(), "--name", name];
        args.extend_from_slice(extra);
        self.cli_bounded(&args, DEPLOY_TIMEOUT)
    }

    /// A deploy that must succeed and print the server's MCP URL.
    pub fn deploy_ok(&self, path: &Path, name: &str) -> Run {
        let run = self.deploy(path, name, &[]);
        assert!(
            run.success,
            "deploy of {} as {name} failed\n{run}\n{}",
            path.display(),
            self.log_tail(40)
        );
        let want = format!("/servers/{name}/mcp");
        assert!(
            run.stdout.contains(&want),
            "deploy did not print {want} on stdout\n{run}"
        );
        run
    }

    /// Runs `tests/e2e/clients/SCRIPT ARGS…` with the client Python, bounded, and returns its JSON
    /// line (panics when it printed none).
    pub fn client(&self, script: &str, args: &[&str]) -> (Run, serde_json::Value) {
        let mut cmd = command(python());
        cmd.arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("clients")
                .join(script),
        )
        .args(args);
        let run = run_bounded(cmd, self.dir.path(), CLIENT_TIMEOUT);
        let value = run.json_line();
        (run, value)
    }

    /// Calls `hello` on a server through the gateway with the official SDK; asserts the answer.
    pub fn check_hello(&self, server: &str, who: &str) {
        let url = self.mcp_url(server);
        let args = format!(r#"{{"name":"{who}"}}"#);
        let (run, v) = self.client("sdk_client.py", &["call", &url, "hello", &args]);
        assert_eq!(
            v["text"].as_str(),
            Some(format!("Hello, {who}!").as_str()),
            "hello through {url} did not answer\n{run}\n{}",
            self.log_tail(40)
        );
    }

    /// The instance processes (top-level Python descendants) of this serve, remembered for cleanup.
    pub fn instances(&mut self) -> Vec<Proc> {
        let found = python_instances(self.pid());
        self.remember();
        found
    }

    fn remember(&mut self) {
        for p in descendants(self.pid()) {
            if !self.seen.contains(&p) {
                self.seen.push(p);
            }
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit; None when it did not.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.remember();
        signal(&self.pid().to_string(), "TERM");
        wait_bounded(&mut self.child, timeout)
    }

    /// SIGKILLs the skyport process alone (not its group: its instances must go by themselves).
    pub fn kill9(&mut self) {
        self.remember();
        signal(&self.pid().to_string(), "KILL");
        let _ = wait_bounded(&mut self.child, STOP_TIMEOUT);
    }
}

impl Drop for Skyport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(80));
            self.keep_log();
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            self.remember();
            signal(&self.pid().to_string(), "TERM");
            if wait_bounded(&mut self.child, STOP_TIMEOUT).is_none() {
                signal(&format!("-{}", self.pid()), "KILL");
                let _ = wait_bounded(&mut self.child, STOP_TIMEOUT);
            }
        }
        // Whatever outlived it (a bug the tests report elsewhere) must not outlive the test run.
        for p in &self.seen {
            if p.alive() {
                signal(&p.pid.to_string(), "KILL");
            }
        }
    }
}

impl Skyport {
    /// Copies the serve log of a failing test to `target/e2e/failed/` (the temp dir is removed).
    fn keep_log(&self) {
        let dir = workspace_root().join("target/e2e/failed");
        let test = std::thread::current()
            .name()
            .unwrap_or("test")
            .replace("::", "-");
        let dest = dir.join(format!("{test}-{}.log", self.pid()));
        if fs::create_dir_all(&dir)
            .and_then(|()| fs::copy(&self.log, &dest))
            .is_ok()
        {
            eprintln!("full skyport log kept at {}", dest.display());
        }
    }
}

/// Starts `skyport SUBCOMMAND --listen 127.0.0.1:PORT --data-dir DATA EXTRA…` writing to `out`.
fn start_child(
    subcommand: &str,
    port: u16,
    data_dir: &Path,
    out: File,
    extra: &[&str],
    env: &[(String, String)],
    cwd: Option<&Path>,
) -> Child {
    let err = out.try_clone().expect("clone the serve log handle");
    let mut cmd = command(skyport_bin());
    cmd.arg(subcommand)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group, so that stopping it also stops any helper (uv, git) it left in it.
        .process_group(0);
    scrub_env(&mut cmd);
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    if std::env::var_os("UV_CACHE_DIR").is_none() {
        cmd.env("UV_CACHE_DIR", workspace_root().join("target/uv-cache"));
    }
    // The log is a file read by people and assertions: no colour codes.
    cmd.env("NO_COLOR", "1");
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot start skyport {subcommand}: {e}"))
}

/// Removes the caller's Skyport settings so a developer's environment cannot redirect a test.
fn scrub_env(cmd: &mut Command) {
    for var in [
        "SKYPORT_URL",
        "SKYPORT_TOKEN",
        "SKYPORT_DATA_DIR",
        "SKYPORT_PASSWORD",
    ] {
        cmd.env_remove(var);
    }
}

/// Finds, anywhere in a JSON value, the first object whose `name` is `name`.
pub fn find_named<'a>(value: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => {
            if map.get("name").and_then(|n| n.as_str()) == Some(name) {
                return Some(value);
            }
            map.values().find_map(|v| find_named(v, name))
        }
        serde_json::Value::Array(items) => items.iter().find_map(|v| find_named(v, name)),
        _ => None,
    }
}

/// The deployments in a `skyport deployments N --json` answer (an array, or an object holding one).
pub fn deployments_of(value: &serde_json::Value) -> Vec<serde_json::Value> {
    match value {
        serde_json::Value::Array(items) => items.clone(),
        serde_json::Value::Object(map) => map
            .get("deployments")
            .and_then(|d| d.as_array())
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Copies a folder (files and subfolders; no symlinks expected in test servers).
pub fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            if entry.file_name() != "__pycache__" && entry.file_name() != ".venv" {
                copy_dir(&entry.path(), &target)?;
            }
        } else {
            fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
