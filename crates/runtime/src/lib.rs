//! Runs deployments. The gateway asks for a [`Lease`] on a deployment's instance; the runtime
//! starts one if none is running (concurrent askers share that one start), counts the lease as
//! in-flight work, and stops instances when their deployment is retired or Skyport stops.
//!
//! [`Runtime`] is the seam: [`LocalRuntime`] runs instances as child processes of Skyport;
//! a Kubernetes runtime can implement the same trait later. This crate knows nothing about
//! HTTP or builds: it gets a [`Target`] (a deployment and how to launch it) and hands back an
//! address to talk to.

mod local;
mod output;
mod reconcile;
mod spawn;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use skyport_store::{DeploymentId, InstanceId, LaunchSpec, ServerId, ServerName, Timestamp};

pub use local::{LocalRuntime, LocalRuntimeConfig};
pub use reconcile::follow_live_deployments;

/// What to run: one deployment of one server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The server, for logs.
    pub server_id: ServerId,
    /// The server's name, for messages and the instance's environment.
    pub server_name: ServerName,
    /// The deployment to run.
    pub deployment: DeploymentId,
    /// How to start it.
    pub launch: LaunchSpec,
}

/// Runs instances of deployments.
pub trait Runtime: Send + Sync + 'static {
    /// A lease on a running instance of `target`, starting one if needed. Concurrent calls
    /// for the same deployment share one start.
    fn acquire<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Lease, StartError>>;

    /// Stops the instances of `deployment` once their in-flight work is done, or at `grace`.
    fn retire(&self, deployment: &DeploymentId, grace: Duration) -> BoxFuture<'_, ()>;

    /// What is running now.
    fn instances(&self) -> Vec<InstanceInfo>;

    /// Stops every instance: in-flight work gets until `grace`, then processes are killed.
    fn shutdown(&self, grace: Duration) -> BoxFuture<'_, ()>;
}

/// Why an instance could not be started. Messages are for the person who deployed the server.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StartError {
    /// The process could not be created at all.
    #[error("cannot start the server process: {0}")]
    Spawn(String),
    /// The process exited before it answered.
    #[error("the server exited during startup ({status}){}", tail_suffix(.stderr_tail))]
    Exited {
        /// How it exited.
        status: String,
        /// The last lines it printed to stderr.
        stderr_tail: String,
    },
    /// It did not answer in time and was stopped.
    #[error("the server did not answer within {0:?} of starting and was stopped")]
    Timeout(Duration),
    /// Skyport is shutting down or the deployment was retired.
    #[error("the deployment is no longer running (Skyport is stopping or a newer one is live)")]
    Stopping,
}

fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; its last output:\n{tail}")
    }
}

/// A claim on a running instance: while it is held, the instance counts it as in-flight work
/// and is not stopped for being idle or retired before its grace period ends.
pub struct Lease {
    addr: SocketAddr,
    instance: InstanceId,
    _hold: Arc<dyn Send + Sync>,
}

impl Lease {
    /// Builds a lease; `hold` is dropped when the lease is, which is how a runtime counts it.
    pub fn new(addr: SocketAddr, instance: InstanceId, hold: Arc<dyn Send + Sync>) -> Lease {
        Lease {
            addr,
            instance,
            _hold: hold,
        }
    }

    /// Where the instance listens (HTTP, MCP at `/mcp`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Which instance this is: a session bound to one instance cannot move to another.
    pub fn instance(&self) -> &InstanceId {
        &self.instance
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("addr", &self.addr)
            .field("instance", &self.instance)
            .finish()
    }
}

/// A running instance, as reported to operators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceInfo {
    /// Its id.
    pub id: InstanceId,
    /// The deployment it runs.
    pub deployment: DeploymentId,
    /// The server it belongs to.
    pub server: ServerName,
    /// Its process id.
    pub pid: Option<u32>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// When it was started.
    pub started_at: Timestamp,
    /// Leases held right now.
    pub in_flight: u64,
}
