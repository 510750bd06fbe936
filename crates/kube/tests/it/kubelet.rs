//! The generated pod spec, run: the fake's kubelet starts the container's command (Skyport's
//! launcher serving a FastMCP server) with the spec's working directory and environment, the
//! secret resolved from the Secret, and an MCP client talks to it through the lease.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use skyport_client::McpClient;
use skyport_kube::{KubeRuntime, KubeRuntimeConfig, object_name};
use skyport_runtime::{EnvVar, Runtime, Target};
use skyport_store::{DeploymentId, LaunchSpec, RuntimeSettings};

use crate::fake::{FakeApi, NAMESPACE, Pods};
use crate::logs::instance_lines;

const SERVER: &str = r#"
import os
from fastmcp import FastMCP

mcp = FastMCP("kubelet")
print(f"kubelet server imported, key {os.environ.get('API_KEY')}", flush=True)


@mcp.tool
def env(name: str) -> str:
    """The value of an environment variable in the pod."""
    return os.environ.get(name, "<unset>")
"#;

/// The Python with FastMCP that the end-to-end tests use (`scripts/test` makes it).
fn python() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var_os("SKYPORT_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/e2e/venv/bin/python"));
    assert!(
        python.exists(),
        "{} does not exist: run ./scripts/test once (it makes the venv with FastMCP) or set SKYPORT_TEST_PYTHON",
        python.display()
    );
    python
}

#[tokio::test]
async fn the_pod_spec_runs_a_fastmcp_server_with_its_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("server.py"), SERVER).expect("server");
    let launcher = Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/src/launcher.py");
    let target = Target {
        server_id: "srv_01jf0000000000000000000000".parse().expect("server id"),
        server_name: "kubelet".parse().expect("server name"),
        deployment: DeploymentId::generate(),
        launch: LaunchSpec {
            program: python(),
            args: vec![
                launcher.display().to_string(),
                "serve".to_owned(),
                dir.path().join("server.py").display().to_string(),
                "mcp".to_owned(),
            ],
            working_dir: dir.path().to_owned(),
            transport: Default::default(),
        },
        settings: RuntimeSettings {
            idle_timeout: Duration::from_secs(60),
            ..RuntimeSettings::default()
        },
        env: Arc::from(vec![
            EnvVar {
                name: "API_KEY".to_owned(),
                value: "k-123".to_owned(),
                secret: true,
            },
            EnvVar {
                name: "UNITS".to_owned(),
                value: "metric".to_owned(),
                secret: false,
            },
        ]),
    };
    let api = FakeApi::start(Pods::Processes).await;
    let config = KubeRuntimeConfig {
        start_timeout: Duration::from_secs(60),
        sweep_interval: Duration::from_millis(200),
        ..KubeRuntimeConfig::new(NAMESPACE, "registry.example.com/skyport")
    };
    let store = crate::flow::in_memory_store().await;
    let runtime = KubeRuntime::start(api.client(), config, &store)
        .await
        .expect("the runtime reaches the fake API");

    let lease = runtime.acquire(&target, None).await.expect("a ready pod");
    let mut client = McpClient::new(&format!("http://{}/mcp", lease.addr()), None);
    let init = client.initialize().await.expect("initialize");
    assert_eq!(init["serverInfo"]["name"], "kubelet");
    for (name, expected) in [("API_KEY", "k-123"), ("UNITS", "metric"), ("HOME", "/tmp")] {
        let result = client
            .request(
                "tools/call",
                json!({ "name": "env", "arguments": { "name": name } }),
                &mut |_| {},
            )
            .await
            .expect("tools/call");
        assert_eq!(result["content"][0]["text"], expected, "{name} in the pod");
    }
    // Skyport's own environment does not leak into the pod.
    let result = client
        .request(
            "tools/call",
            json!({ "name": "env", "arguments": { "name": "CARGO_MANIFEST_DIR" } }),
            &mut |_| {},
        )
        .await
        .expect("tools/call");
    assert_eq!(result["content"][0]["text"], "<unset>");
    client.close().await;
    // What the process printed is in the deployment's log, the secret redacted.
    let lines = instance_lines(&store, &target, "the server's print", |lines| {
        lines
            .iter()
            .any(|l| l.line.line.contains("kubelet server imported"))
    })
    .await;
    let printed = lines
        .iter()
        .find(|l| l.line.line.contains("kubelet server imported"))
        .expect("the line");
    assert_eq!(
        printed.line.line,
        "kubelet server imported, key [redacted:API_KEY]"
    );
    assert_eq!(printed.line.instance_id.as_ref(), Some(lease.instance()));
    drop(lease);

    runtime
        .retire(&target.deployment, Duration::from_secs(1))
        .await;
    assert_eq!(api.get("deployments", &object_name(&target)), None);
}
