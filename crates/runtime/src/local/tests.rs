//! The local runtime against real processes: a tiny Python HTTP server stands in for an MCP
//! server (the runtime only needs HTTP answers), so these tests need `python3` but not uv.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use skyport_store::{DeploymentId, LaunchSpec, ServerName, Store};

use super::*;

/// Answers every request with 400 on the socket it inherits as descriptor 3, like a FastMCP
/// server asked for `GET /mcp` without a session; prints a marker on stdout.
const SERVER: &str = r#"
import os, socket, sys, http.server
print("instance up", os.environ["SKYPORT_SERVER"], flush=True)
if os.environ.get("CRASH"):
    print("boom: missing API key", file=sys.stderr, flush=True)
    sys.exit(7)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
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
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("server.py");
    std::fs::File::create(&file)
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let store = Store::open_in_memory().await.unwrap();
    let name: ServerName = "echo".parse().unwrap();
    let (server, _) = store.servers().ensure(&name, None).await.unwrap();
    let runtime = LocalRuntime::new(
        LocalRuntimeConfig {
            scratch_dir: dir.path().join("run"),
            start_timeout: Duration::from_secs(20),
            path: std::env::var_os("PATH"),
        },
        store.logs().writer(),
    );
    let target = Target {
        server_id: server.id,
        server_name: name,
        deployment: DeploymentId::generate(),
        launch: LaunchSpec {
            program: "python3".into(),
            args: vec![file.display().to_string()],
            working_dir: dir.path().to_path_buf(),
        },
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
        .acquire(&f.target)
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
    let leases = futures_util::future::join_all((0..8).map(|_| f.runtime.acquire(&f.target))).await;
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
    let lease = f.runtime.acquire(&f.target).await.unwrap();
    drop(lease);
    f.runtime.shutdown(Duration::from_secs(1)).await;
    f.store.logs().writer().flush().await;
    let lines = f.store.logs().tail(&Default::default(), 100).await.unwrap();
    let text: Vec<_> = lines.iter().map(|l| l.line.line.as_str()).collect();
    assert!(text.contains(&"instance up echo"), "{text:?}");
    assert!(text.iter().any(|l| l.contains("exited")), "{text:?}");
}

#[tokio::test]
async fn a_crash_at_start_reports_its_stderr_and_the_next_acquire_retries() {
    let f = fixture(&SERVER.replace(
        "if os.environ.get(\"CRASH\"):",
        "if not os.path.exists(os.path.join(os.getcwd(), 'fixed')):",
    ))
    .await;
    let error = f.runtime.acquire(&f.target).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("exit code 7"), "{message}");
    assert!(message.contains("boom: missing API key"), "{message}");
    assert!(f.runtime.instances().is_empty());
    std::fs::write(f.target.launch.working_dir.join("fixed"), "").unwrap();
    let lease = f.runtime.acquire(&f.target).await.unwrap();
    drop(lease);
    f.runtime.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn retire_waits_for_in_flight_work_then_stops_the_process() {
    let f = fixture(SERVER).await;
    let lease = f.runtime.acquire(&f.target).await.unwrap();
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
    drop(f.runtime.acquire(&f.target).await.unwrap());
    let pid = f.runtime.instances()[0].pid.unwrap();
    f.runtime.shutdown(Duration::from_secs(1)).await;
    assert!(!alive(pid));
    assert!(matches!(
        f.runtime.acquire(&f.target).await,
        Err(StartError::Stopping)
    ));
}
