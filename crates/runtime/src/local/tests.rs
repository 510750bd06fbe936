//! The local runtime against real processes: a tiny Python HTTP server stands in for an MCP
//! server (the runtime only needs HTTP answers), so these tests need `python3` but not uv.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use skyport_store::{DeploymentId, LaunchSpec, LogQuery, RuntimeSettings, ServerName, Store};

use super::*;
use crate::spawn::{Signal, signal_group};
use crate::{EnvVar, Exit};

/// Answers every request with 400 on the socket it inherits as descriptor 3, like a FastMCP
/// server asked for `GET /mcp` without a session; prints a marker on stdout. `GET /alloc`
/// allocates 400 MiB, `GET /exit` exits with status 1 at once, `GET /env` prints its
/// environment.
const SERVER: &str = r#"
import os, socket, sys, http.server
print("instance up", os.environ["SKYPORT_SERVER"], flush=True)
if os.environ.get("CRASH"):
    print("boom: missing API key", file=sys.stderr, flush=True)
    sys.exit(7)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/alloc":
            hog = bytearray(400 * 1024 * 1024)
            hog[::4096] = b"x" * len(hog[::4096])
        if self.path == "/exit":
            print("dying on request", file=sys.stderr, flush=True)
            os._exit(1)
        if self.path == "/write":
            try:
                open("written", "w").close()
                print("wrote into the artifact", file=sys.stderr, flush=True)
            except OSError as e:
                print("cannot write:", e, file=sys.stderr, flush=True)
        if self.path == "/env":
            print("env", sorted(os.environ.items()), file=sys.stderr, flush=True)
        self.send_response(400); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H, bind_and_activate=False)
s.socket = socket.socket(fileno=int(os.environ["SKYPORT_LISTEN_FD"]))
s.serve_forever()
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    runtime: LocalRuntime,
    target: Target,
}

async fn fixture(script: &str) -> Fixture {
    fixture_with(script, RuntimeSettings::default(), 16).await
}

fn config(dir: &Path, concurrency: u64) -> LocalRuntimeConfig {
    LocalRuntimeConfig {
        scratch_dir: dir.join("run"),
        state_dir: dir.join("instances"),
        start_timeout: Duration::from_secs(20),
        path: std::env::var_os("PATH"),
        concurrency,
        cgroup_name: format!(
            "skyport-test-{}",
            dir.file_name().unwrap().to_string_lossy()
        ),
        zygotes: false,
        stdio_bridge: None,
        artifacts: None,
    }
}

async fn fixture_with(script: &str, settings: RuntimeSettings, concurrency: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.py");
    std::fs::File::create(&file)
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let store = Store::open_in_memory().await.unwrap();
    let name: ServerName = "echo".parse().unwrap();
    let (server, _) = store.servers().ensure(&name, None).await.unwrap();
    let runtime = LocalRuntime::start(config(dir.path(), concurrency), store.logs().writer()).await;
    let target = Target {
        server_id: server.id,
        server_name: name,
        deployment: DeploymentId::generate(),
        launch: LaunchSpec {
            program: "python3".into(),
            args: vec![file.display().to_string()],
            working_dir: dir.path().to_path_buf(),
            transport: Default::default(),
        },
        settings,
        env: Vec::new().into(),
    };
    Fixture {
        _dir: dir,
        store,
        runtime,
        target,
    }
}

/// The instance a fresh lease lands on.
async fn serving_instance(f: &Fixture) -> skyport_store::InstanceId {
    f.runtime
        .acquire(&f.target, None)
        .await
        .unwrap()
        .instance()
        .clone()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test]
async fn concurrent_acquires_share_one_instance() {
    let f = fixture(SERVER).await;
    let leases =
        futures_util::future::join_all((0..8).map(|_| f.runtime.acquire(&f.target, None))).await;
    let leases: Vec<_> = leases.into_iter().map(Result::unwrap).collect();
    assert!(leases.iter().all(|l| l.instance() == leases[0].instance()));
    let instances = f.runtime.instances();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].in_flight, 8);
    drop(leases);
    assert_eq!(f.runtime.instances()[0].in_flight, 0);
    f.runtime.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn output_goes_to_the_server_log() {
    let f = fixture(SERVER).await;
    let lease = f.runtime.acquire(&f.target, None).await.unwrap();
    drop(lease);
    f.runtime.shutdown(Duration::from_secs(1)).await;
    f.store.logs().writer().flush().await;
    let lines = f.store.logs().tail(&Default::default(), 100).await.unwrap();
    let text: Vec<_> = lines.iter().map(|l| l.line.line.as_str()).collect();
    assert!(text.contains(&"instance up echo"), "{text:?}");
    assert!(text.iter().any(|l| l.contains("stopped")), "{text:?}");
}

#[tokio::test]
async fn a_crash_at_start_reports_its_stderr_and_the_next_acquire_retries() {
    let f = fixture(&SERVER.replace(
        "if os.environ.get(\"CRASH\"):",
        "if not os.path.exists(os.path.join(os.getcwd(), 'fixed')):",
    ))
    .await;
    let error = f.runtime.acquire(&f.target, None).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("exit code 7"), "{message}");
    assert!(matches!(error, StartError::Exited { .. }), "{error:?}");
    assert!(message.contains("boom: missing API key"), "{message}");
    assert!(f.runtime.instances().is_empty());
    std::fs::write(f.target.launch.working_dir.join("fixed"), "").unwrap();
    let lease = f.runtime.acquire(&f.target, None).await.unwrap();
    drop(lease);
    f.runtime.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn retire_waits_for_in_flight_work_then_stops_the_process() {
    let f = fixture(SERVER).await;
    let lease = f.runtime.acquire(&f.target, None).await.unwrap();
    let pid = f.runtime.instances()[0].pid.unwrap();
    let runtime = f.runtime.clone();
    let deployment = f.target.deployment.clone();
    let retiring =
        tokio::spawn(async move { runtime.retire(&deployment, Duration::from_secs(30)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(alive(pid), "stopped while a lease was held");
    drop(lease);
    tokio::time::timeout(Duration::from_secs(10), retiring)
        .await
        .unwrap()
        .unwrap();
    assert!(!alive(pid));
    assert!(f.runtime.instances().is_empty());
    f.runtime.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_killed_instance_is_replaced_on_the_next_acquire() {
    let f = fixture(SERVER).await;
    let first = serving_instance(&f).await;
    let pid = f.runtime.instances()[0].pid.unwrap();
    signal_group(pid, Signal::Kill);
    for _ in 0..100 {
        if f.runtime.instances().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = serving_instance(&f).await;
    assert_ne!(first, second);
    f.runtime.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn shutdown_stops_everything_and_refuses_new_starts() {
    let f = fixture(SERVER).await;
    drop(f.runtime.acquire(&f.target, None).await.unwrap());
    let pid = f.runtime.instances()[0].pid.unwrap();
    f.runtime.shutdown(Duration::from_secs(1)).await;
    assert!(!alive(pid));
    assert!(matches!(
        f.runtime.acquire(&f.target, None).await,
        Err(StartError::Stopping)
    ));
}

/// Sends `GET PATH` to the instance behind `lease`; the answer does not matter.
async fn get(lease: &Lease, path: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if let Ok(mut stream) = tokio::net::TcpStream::connect(lease.addr()).await {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let _ = stream.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
    }
}

/// Waits (bounded) until `cond` holds.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..300 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn logged(f: &Fixture) -> String {
    f.store.logs().writer().flush().await;
    let lines = f
        .store
        .logs()
        .tail(&LogQuery::default(), 500)
        .await
        .unwrap();
    lines
        .iter()
        .map(|l| l.line.line.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn idle_instances_scale_to_zero_and_come_back() {
    let settings = RuntimeSettings {
        idle_timeout: Duration::from_secs(1),
        ..RuntimeSettings::default()
    };
    let f = fixture_with(SERVER, settings, 16).await;
    let first = serving_instance(&f).await;
    let pid = f.runtime.instances()[0].pid.unwrap();
    assert!(
        eventually(|| f.runtime.instances().is_empty()).await,
        "never scaled to zero"
    );
    assert!(!alive(pid));
    let second = serving_instance(&f).await;
    assert_ne!(first, second);
    let metrics = f.runtime.metrics();
    assert_eq!(metrics[0].cold_starts.count, 2);
    assert_eq!(metrics[0].crashes, 0);
    f.runtime.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn busy_instances_scale_out_up_to_the_maximum_and_sessions_keep_their_instance() {
    let settings = RuntimeSettings {
        max_instances: 2,
        ..RuntimeSettings::default()
    };
    let f = fixture_with(SERVER, settings, 1).await;
    let a = f.runtime.acquire(&f.target, None).await.unwrap();
    let b = f.runtime.acquire(&f.target, None).await.unwrap();
    assert_ne!(
        a.instance(),
        b.instance(),
        "a busy instance did not scale out"
    );
    let c = f.runtime.acquire(&f.target, None).await.unwrap();
    assert_eq!(f.runtime.instances().len(), 2, "started past the maximum");
    let pinned = f
        .runtime
        .acquire(&f.target, Some(a.instance()))
        .await
        .unwrap();
    assert_eq!(pinned.instance(), a.instance());
    drop((a, b, c, pinned));
    f.runtime.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn min_instances_are_kept_warm_without_requests() {
    let settings = RuntimeSettings {
        min_instances: 1,
        idle_timeout: Duration::from_secs(1),
        ..RuntimeSettings::default()
    };
    let f = fixture_with(SERVER, settings, 16).await;
    f.runtime.keep_warm(std::slice::from_ref(&f.target));
    assert!(
        eventually(|| f.runtime.instances().len() == 1).await,
        "nothing started"
    );
    // Past the idle timeout it is still there: it is the minimum.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(f.runtime.instances().len(), 1);
    f.runtime.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn an_instance_past_its_memory_limit_is_reported_and_replaced() {
    let settings = RuntimeSettings {
        memory_bytes: 128 * 1024 * 1024,
        ..RuntimeSettings::default()
    };
    let f = fixture_with(SERVER, settings, 16).await;
    let lease = f.runtime.acquire(&f.target, None).await.unwrap();
    let first = lease.instance().clone();
    get(&lease, "/alloc").await;
    let exit: Option<Exit> = lease.exit(Duration::from_secs(10)).await;
    drop(lease);
    match f.runtime.inner.limits {
        Limits::Cgroups(_) => {
            let exit = exit.expect("the instance survived allocating past its limit");
            assert_eq!(exit.out_of_memory, Some(128 * 1024 * 1024), "{exit:?}");
            assert!(exit.to_string().contains("out of memory"), "{exit}");
            assert_eq!(f.runtime.metrics()[0].oom_kills, 1);
            assert!(logged(&f).await.contains("out of memory"));
        }
        // RLIMIT_AS: the allocation fails inside Python instead, and the instance lives on.
        Limits::AddressSpace => assert!(logged(&f).await.contains("MemoryError")),
    }
    let second = serving_instance(&f).await;
    assert_ne!(first, second);
    f.runtime.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_crash_while_serving_names_its_status_and_stderr() {
    let f = fixture(SERVER).await;
    let lease = f.runtime.acquire(&f.target, None).await.unwrap();
    get(&lease, "/exit").await;
    let exit = lease.exit(Duration::from_secs(10)).await.unwrap();
    assert_eq!(exit.status, "exit code 1");
    assert!(exit.stderr_tail.contains("dying on request"), "{exit:?}");
    lease.fail();
    drop(lease);
    let metrics = f.runtime.metrics();
    assert_eq!((metrics[0].crashes, metrics[0].errors), (1, 1));
    drop(serving_instance(&f).await);
    f.runtime.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn repeated_start_failures_back_off() {
    let f = fixture(&SERVER.replace("if os.environ.get(\"CRASH\"):", "if True:")).await;
    for _ in 0..2 {
        let error = f.runtime.acquire(&f.target, None).await.unwrap_err();
        assert!(matches!(error, StartError::Exited { .. }), "{error}");
    }
    let error = f.runtime.acquire(&f.target, None).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, StartError::CrashLoop { .. }), "{message}");
    assert!(message.contains("boom: missing API key"), "{message}");
    assert_eq!(f.runtime.metrics()[0].failed_starts, 2);
    f.runtime.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_with_its_stderr() {
    let f = fixture(
        "import sys, time\nprint('still importing things', file=sys.stderr, flush=True)\ntime.sleep(600)\n",
    )
    .await;
    let runtime = LocalRuntime::start(
        LocalRuntimeConfig {
            start_timeout: Duration::from_secs(1),
            ..config(f._dir.path(), 16)
        },
        f.store.logs().writer(),
    )
    .await;
    let error = runtime.acquire(&f.target, None).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("did not become ready"), "{message}");
    assert!(message.contains("still importing things"), "{message}");
    assert!(runtime.instances().is_empty());
    runtime.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn instances_get_their_environment_only_and_secrets_are_redacted() {
    let mut f = fixture(SERVER).await;
    f.target.env = Arc::from([
        EnvVar {
            name: "API_TOKEN".into(),
            value: "tok-supersecret-123".into(),
            secret: true,
        },
        EnvVar {
            name: "REGION".into(),
            value: "eu-test-1".into(),
            secret: false,
        },
    ]);
    // A variable of the test process, which must not reach the instance.
    let leaked = std::env::vars().next().map(|(k, _)| k).unwrap_or_default();
    let lease = f.runtime.acquire(&f.target, None).await.unwrap();
    get(&lease, "/env").await;
    drop(lease);
    f.runtime.shutdown(Duration::from_secs(1)).await;
    let text = logged(&f).await;
    assert!(
        text.contains("('API_TOKEN', '[redacted:API_TOKEN]')"),
        "{text}"
    );
    assert!(text.contains("('REGION', 'eu-test-1')"), "{text}");
    assert!(!text.contains("tok-supersecret-123"), "{text}");
    assert!(text.contains("('HOME', "), "{text}");
    if !["PATH", "HOME", "LANG", "TMPDIR"].contains(&leaked.as_str()) && !leaked.is_empty() {
        assert!(
            !text.contains(&format!("('{leaked}', ")),
            "{leaked} leaked: {text}"
        );
    }
}

#[tokio::test]
async fn a_restart_ends_what_a_previous_run_left_running() {
    let f = fixture(SERVER).await;
    drop(f.runtime.acquire(&f.target, None).await.unwrap());
    let pid = f.runtime.instances()[0].pid.unwrap();
    // As after a `kill -9` of Skyport: nothing stopped the instance, its record remains.
    let again = LocalRuntime::start(config(f._dir.path(), 16), f.store.logs().writer()).await;
    assert!(
        !alive(pid),
        "the previous run's instance survived the restart"
    );
    assert!(again.instances().is_empty());
    f.runtime.shutdown(Duration::from_secs(1)).await;
    again.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn the_artifact_is_read_only_to_instances() {
    let f = fixture(SERVER).await;
    let lease = f.runtime.acquire(&f.target, None).await.unwrap();
    get(&lease, "/write").await;
    drop(lease);
    f.runtime.shutdown(Duration::from_secs(1)).await;
    let text = logged(&f).await;
    if crate::spawn::read_only_supported() {
        assert!(text.contains("Read-only file system"), "{text}");
        assert!(!f.target.launch.working_dir.join("written").exists());
    } else {
        assert!(text.contains("wrote into the artifact"), "{text}");
    }
}

/// The parent pid of a live process.
fn parent_of(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .collect();
    fields[1].parse().unwrap()
}

#[tokio::test]
async fn later_cold_starts_fork_from_the_environments_zygote() {
    let settings = RuntimeSettings {
        idle_timeout: Duration::from_secs(1),
        memory_bytes: 128 * 1024 * 1024,
        ..RuntimeSettings::default()
    };
    let mut f = fixture_with(SERVER, settings, 16).await;
    f.runtime = LocalRuntime::start(
        LocalRuntimeConfig {
            zygotes: true,
            ..config(f._dir.path(), 16)
        },
        f.store.logs().writer(),
    )
    .await;
    // The first cold start spawns (and starts the zygote once it is ready).
    drop(f.runtime.acquire(&f.target, None).await.unwrap());
    let spawned = f.runtime.instances()[0].pid.unwrap();
    assert_eq!(parent_of(spawned), std::process::id());
    assert!(eventually(|| f.runtime.instances().is_empty()).await);

    // The next is forked; it reports its exit and output like a spawned one, and its artifact
    // is read-only.
    let lease = f.runtime.acquire(&f.target, None).await.unwrap();
    let forked = f.runtime.instances()[0].pid.unwrap();
    let zygote = parent_of(forked);
    assert_ne!(
        zygote,
        std::process::id(),
        "the second cold start was not forked"
    );
    get(&lease, "/write").await;
    get(&lease, "/exit").await;
    let exit = lease.exit(Duration::from_secs(10)).await.unwrap();
    assert_eq!(exit.status, "exit code 1");
    assert!(exit.stderr_tail.contains("dying on request"), "{exit:?}");
    drop(lease);
    let text = logged(&f).await;
    assert!(
        text.contains("forked from the environment's zygote"),
        "{text}"
    );
    if crate::spawn::read_only_supported() {
        assert!(text.contains("Read-only file system"), "{text}");
    }

    // A forked instance is capped like a spawned one.
    let lease = f.runtime.acquire(&f.target, None).await.unwrap();
    assert_eq!(parent_of(f.runtime.instances()[0].pid.unwrap()), zygote);
    get(&lease, "/alloc").await;
    let exit = lease.exit(Duration::from_secs(10)).await;
    drop(lease);
    if let Limits::Cgroups(_) = f.runtime.inner.limits {
        let exit = exit.expect("the forked instance survived allocating past its limit");
        assert_eq!(exit.out_of_memory, Some(128 * 1024 * 1024), "{exit:?}");
    }

    // FastMCP settings are read at import, long past in the zygote: such deployments spawn.
    assert!(eventually(|| f.runtime.instances().is_empty()).await);
    f.target.env = Arc::from([EnvVar {
        name: "FASTMCP_LOG_LEVEL".into(),
        value: "DEBUG".into(),
        secret: false,
    }]);
    drop(serving_instance(&f).await);
    let spawned = f.runtime.instances()[0].pid.unwrap();
    assert_eq!(parent_of(spawned), std::process::id());

    f.runtime.shutdown(Duration::from_secs(1)).await;
    assert!(
        eventually(|| !alive(zygote)).await,
        "the zygote outlived shutdown"
    );
}
