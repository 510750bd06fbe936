//! Runs deployments. The gateway asks for a [`Lease`] on a deployment's instance; the runtime
//! starts one if none can take the request (concurrent askers share that one start), counts the
//! lease as in-flight work, scales out up to the server's `max_instances`, stops idle instances
//! after the server's idle timeout (keeping `min_instances` warm), and stops everything when a
//! deployment is retired or Skyport stops.
//!
//! [`Runtime`] is the seam: [`LocalRuntime`] runs instances as child processes of Skyport;
//! a Kubernetes runtime can implement the same trait later. This crate knows nothing about
//! HTTP or builds: it gets a [`Target`] (a deployment, how to launch it, its settings and
//! environment) and hands back an address to talk to.

mod cgroup;
mod leftovers;
mod local;
mod metrics;
mod output;
mod reconcile;
mod spawn;
mod zygote;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use skyport_store::{
    DeploymentId, InstanceId, LaunchSpec, Route, RuntimeSettings, ServerId, ServerName, Timestamp,
};

/// One variable of an instance's environment (defined by the store, which fixes it per
/// deployment; re-exported so runtime callers need not know where it lives).
pub use skyport_store::EnvVar;

pub use local::{LocalRuntime, LocalRuntimeConfig};
pub use metrics::{DeploymentMetrics, Histogram, render_prometheus};
pub use output::InstanceLog;
pub use reconcile::follow_live_deployments;
pub use spawn::inherited_listener;

/// Makes a deployment's launch spec runnable on this machine before an instance starts:
/// implemented by the binary with the build crate, which fetches an artifact another replica
/// built and rewrites the spec's paths into this replica's data dir. This crate must not know
/// how artifacts are laid out.
pub trait Artifacts: Send + Sync + 'static {
    /// The launch spec of `target` as it runs here, once what it needs is in place; an error
    /// says why the deployment cannot run on this replica.
    fn prepare<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<LaunchSpec, String>>;
}

impl fmt::Debug for dyn Artifacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Artifacts")
    }
}

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
    /// Memory cap, idle timeout and instance counts.
    pub settings: RuntimeSettings,
    /// The deployment's environment variables and secrets (nothing else reaches an instance
    /// but a minimal allowlist).
    pub env: Arc<[EnvVar]>,
}

impl Target {
    /// The target of a server's live deployment, if it has one.
    pub fn live(route: Route) -> Option<Target> {
        let live = route.live?;
        Some(Target {
            server_id: route.server_id,
            server_name: route.name,
            deployment: live.id,
            launch: live.launch,
            settings: route.settings,
            env: live.env,
        })
    }
}

/// Runs instances of deployments.
pub trait Runtime: Send + Sync + 'static {
    /// A lease on a running instance of `target` that can take a request, starting one if
    /// needed. With `affinity`, that instance is preferred whatever its load (a session lives
    /// in one instance); if it is gone another is returned, and the caller sees the difference
    /// in [`Lease::instance`]. Concurrent calls for the same deployment share one start.
    fn acquire<'a>(
        &'a self,
        target: &'a Target,
        affinity: Option<&'a InstanceId>,
    ) -> BoxFuture<'a, Result<Lease, StartError>>;

    /// Stops the instances of `deployment` once their in-flight work is done, or at `grace`.
    fn retire(&self, deployment: &DeploymentId, grace: Duration) -> BoxFuture<'_, ()>;

    /// Takes `live` as every server's live deployment: applies their settings to running
    /// instances' scaling and keeps `min_instances` of each running.
    fn keep_warm(&self, live: &[Target]);

    /// What is running now.
    fn instances(&self) -> Vec<InstanceInfo>;

    /// Counters and gauges per deployment that has run since Skyport started.
    fn metrics(&self) -> Vec<DeploymentMetrics>;

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
    #[error("the server exited during startup ({exit})")]
    Exited {
        /// How it exited, with its last stderr lines.
        exit: Exit,
    },
    /// It did not answer in time and was stopped.
    #[error(
        "the server did not become ready within {timeout:?} of starting and was stopped{}",
        tail_suffix(.stderr_tail)
    )]
    Timeout {
        /// How long it had.
        timeout: Duration,
        /// The last lines it printed to stderr.
        stderr_tail: String,
    },
    /// Starts keep failing; the runtime waits before trying again.
    #[error("the server keeps failing to start; next attempt in {}s. Last failure: {last}", .retry_in.as_secs().max(1))]
    CrashLoop {
        /// How long until the next attempt.
        retry_in: Duration,
        /// The last failure.
        last: Box<StartError>,
    },
    /// Skyport is shutting down or the deployment was retired.
    #[error("the deployment is no longer running (Skyport is stopping or a newer one is live)")]
    Stopping,
}

/// The longest a crash-looping deployment waits between start attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long a deployment whose last `failures` starts in a row failed waits before the next
/// (answering [`StartError::CrashLoop`] meanwhile): two failures are bad luck; from the third
/// on the wait doubles, from 1 s up to 30 s. Every runtime backs off alike.
pub fn start_backoff(failures: u32) -> Duration {
    match failures {
        0 | 1 => Duration::ZERO,
        n => Duration::from_secs(1u64 << (n - 2).min(5)).min(MAX_BACKOFF),
    }
}

fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; its last output:\n{tail}")
    }
}

/// How an instance's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The exit code or signal, as text (`exit code 1`, `killed by signal 9`).
    pub status: String,
    /// Killed by the kernel for exceeding its memory cap; the cap, in bytes.
    pub out_of_memory: Option<u64>,
    /// The last lines it printed to stderr (secrets redacted).
    pub stderr_tail: String,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.out_of_memory {
            Some(limit) => write!(
                f,
                "out of memory: killed for using more than its {} MiB limit ({}); raise it with `skyport servers set NAME --memory …`",
                limit / (1024 * 1024),
                self.status
            )?,
            None => f.write_str(&self.status)?,
        }
        f.write_str(&tail_suffix(&self.stderr_tail))
    }
}

/// What a runtime keeps behind a [`Lease`]: dropping it ends the lease.
pub trait LeaseHold: Send + Sync {
    /// Counts the request served under this lease as failed.
    fn fail(&self);

    /// How the instance ended, if it has ended or ends within `wait`; for explaining a
    /// request the instance dropped. The future owns what it needs, so a response body can
    /// keep it beside the lease.
    fn exit(&self, wait: Duration) -> BoxFuture<'static, Option<Exit>>;
}

/// A claim on a running instance: while it is held, the instance counts it as in-flight work
/// and is not stopped for being idle or retired before its grace period ends.
pub struct Lease {
    addr: SocketAddr,
    instance: InstanceId,
    hold: Box<dyn LeaseHold>,
}

impl Lease {
    /// Builds a lease; `hold` is dropped when the lease is, which is how a runtime counts it.
    pub fn new(addr: SocketAddr, instance: InstanceId, hold: Box<dyn LeaseHold>) -> Lease {
        Lease {
            addr,
            instance,
            hold,
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

    /// Counts the request as failed in the deployment's metrics.
    pub fn fail(&self) {
        self.hold.fail();
    }

    /// How the instance ended, if it ends within `wait` (it may be dying right now: a dropped
    /// connection usually comes a moment before the exit is seen).
    pub fn exit(&self, wait: Duration) -> BoxFuture<'static, Option<Exit>> {
        self.hold.exit(wait)
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
    /// Memory in use: the cgroup's usage where there is one, else the process's RSS.
    pub memory_bytes: Option<u64>,
}
