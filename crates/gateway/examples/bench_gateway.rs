//! The gateway alone in front of a server that is already running, for
//! `benches/gateway-overhead`.
//!
//! ```text
//! bench_gateway UPSTREAM_ADDR DATA_DIR
//! ```
//!
//! Serves `Gateway::router()` with `axum::serve` on a free loopback port, with a store in
//! DATA_DIR that holds one server, `echo`, with one promoted deployment, and a runtime whose
//! every lease points at UPSTREAM_ADDR (an MCP server listening on `/mcp`). Requests take the
//! product's proxy path — routing, sessions, header hygiene, forwarding over the pooled client,
//! streaming back, the audit record — and skip only instance management: Skyport deploys Python
//! servers, so a Rust backend (the rmcp echo server) can only be put behind the gateway this way.
//! Prints the address it listens on as the first line of stdout; runs until killed.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use skyport_gateway::{Gateway, GatewayOptions};
use skyport_runtime::{
    DeploymentMetrics, Exit, InstanceInfo, Lease, LeaseHold, Runtime, StartError, Target,
};
use skyport_store::{
    Built, DeploymentId, InstanceId, LaunchSpec, NewDeployment, ServerName, Store, Timestamp,
};

/// A runtime with one instance that is already running elsewhere and never stops.
struct Fixed {
    addr: SocketAddr,
    instance: InstanceId,
    deployment: DeploymentId,
    server: ServerName,
    started_at: Timestamp,
}

/// A lease on the fixed instance: nothing to count, and it never exits.
struct Held;

impl LeaseHold for Held {
    fn fail(&self) {}
    fn exit(&self, _: Duration) -> BoxFuture<'static, Option<Exit>> {
        async { None }.boxed()
    }
}

impl Runtime for Fixed {
    fn acquire<'a>(
        &'a self,
        _: &'a Target,
        _: Option<&'a InstanceId>,
    ) -> BoxFuture<'a, Result<Lease, StartError>> {
        let lease = Lease::new(self.addr, self.instance.clone(), Box::new(Held));
        async move { Ok(lease) }.boxed()
    }
    fn keep_warm(&self, _: &[Target]) {}
    fn metrics(&self) -> Vec<DeploymentMetrics> {
        Vec::new()
    }
    fn retire(&self, _: &DeploymentId, _: Duration) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
    /// The instance is listed as running, so the gateway keeps the sessions bound to it.
    fn instances(&self) -> Vec<InstanceInfo> {
        vec![InstanceInfo {
            id: self.instance.clone(),
            deployment: self.deployment.clone(),
            server: self.server.clone(),
            pid: None,
            addr: self.addr,
            started_at: self.started_at,
            in_flight: 0,
            memory_bytes: None,
        }]
    }
    fn shutdown(&self, _: Duration) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bench_gateway UPSTREAM_ADDR DATA_DIR";
    let upstream: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let data_dir = PathBuf::from(args.next().ok_or(usage)?);

    // The same kind of store `skyport serve` opens: SQLite in a file of the data directory.
    // The gateway signs identity tokens with a key sealed under the master key.
    let store = Store::open(&data_dir.join("bench.db"))
        .await?
        .with_master_key(skyport_store::MasterKey::generate());
    let server: ServerName = "echo".parse()?;
    let (record, _) = store.servers().ensure(&server, None).await?;
    let deployment = store
        .deployments()
        .create(
            &record.id,
            &NewDeployment {
                source: "bench".to_owned(),
                ..Default::default()
            },
        )
        .await?;
    let built = Built {
        artifact: "bench".to_owned(),
        manifest: serde_json::Value::Null,
        entrypoint: "main.py:mcp".into(),
        launch: LaunchSpec {
            program: "unused".into(),
            args: vec![],
            working_dir: ".".into(),
            transport: Default::default(),
        },
        inspection: serde_json::json!({}),
    };
    store.deployments().succeed(&deployment.id, &built).await?;
    store.deployments().promote(&deployment.id).await?;

    let runtime = Arc::new(Fixed {
        addr: upstream,
        instance: InstanceId::generate(),
        deployment: deployment.id,
        server,
        started_at: Timestamp::now(),
    });
    let gateway = Gateway::new(store, runtime, GatewayOptions::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // Responses stream in several small writes; without TCP_NODELAY each waits for the
    // client's delayed ACK (40 ms on Linux). The servers on the direct side set it too.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{addr}")?;
    stdout.flush()?;
    drop(stdout);
    axum::serve(listener, gateway.router()).await?;
    Ok(())
}
