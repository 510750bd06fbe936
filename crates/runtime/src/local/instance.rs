//! One running instance: its process's identity, its in-flight count, how it ended, and the
//! lease hold that counts a request against it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use skyport_store::{DeploymentId, InstanceId, ServerName, Timestamp};
use tokio::sync::{Notify, watch};

use crate::cgroup::Cgroup;
use crate::metrics::DeploymentStats;
use crate::spawn::{Signal, signal_group};
use crate::{Exit, InstanceInfo, Lease, LeaseHold};

/// How long a stopped instance gets between `SIGTERM` and `SIGKILL`.
const TERMINATE_GRACE: Duration = Duration::from_secs(5);

pub(super) struct Instance {
    pub(super) id: InstanceId,
    pub(super) deployment: DeploymentId,
    pub(super) server: ServerName,
    pub(super) addr: SocketAddr,
    pub(super) pid: Option<u32>,
    pub(super) started_at: Timestamp,
    pub(super) cgroup: Option<Cgroup>,
    pub(super) stats: Arc<DeploymentStats>,
    pub(super) in_flight: AtomicU64,
    /// When the last lease ended (or the instance became ready), in milliseconds since `epoch`.
    pub(super) last_active: AtomicU64,
    pub(super) epoch: Instant,
    /// Set when Skyport asked it to stop, so its exit is not counted as a crash.
    pub(super) stop_requested: AtomicBool,
    /// Signalled whenever `in_flight` drops to zero.
    pub(super) idle: Notify,
    /// `Some(how it ended)` once the process is gone.
    pub(super) exit: watch::Receiver<Option<Exit>>,
}

impl Instance {
    pub(super) fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    pub(super) async fn exited(&self) -> Exit {
        let mut exit = self.exit.clone();
        match exit.wait_for(Option::is_some).await {
            Ok(exit) => exit.clone().unwrap_or_else(unknown_exit),
            Err(_) => unknown_exit(),
        }
    }

    /// How long it has had no lease.
    pub(super) fn idle_for(&self, now: Instant) -> Duration {
        let last = Duration::from_millis(self.last_active.load(Ordering::Acquire));
        now.saturating_duration_since(self.epoch + last)
    }

    pub(super) fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active.store(now, Ordering::Release);
    }

    pub(super) fn load(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    pub(super) fn info(&self) -> InstanceInfo {
        InstanceInfo {
            id: self.id.clone(),
            deployment: self.deployment.clone(),
            server: self.server.clone(),
            pid: self.pid,
            addr: self.addr,
            started_at: self.started_at,
            in_flight: self.load(),
            memory_bytes: self.memory(),
        }
    }

    /// Memory in use: the cgroup's charge, else the process's resident set.
    pub(super) fn memory(&self) -> Option<u64> {
        if let Some(usage) = self.cgroup.as_ref().and_then(Cgroup::memory_usage) {
            return Some(usage);
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    pub(super) fn lease(self: &Arc<Self>) -> Lease {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        Lease::new(
            self.addr,
            self.id.clone(),
            Box::new(InFlight {
                instance: self.clone(),
                began: Instant::now(),
                failed: AtomicBool::new(false),
            }),
        )
    }

    /// Waits for in-flight work to finish (until `deadline`), then terminates the process
    /// group, and kills it if it ignores that.
    pub(super) async fn stop(&self, deadline: tokio::time::Instant) {
        self.stop_requested.store(true, Ordering::Release);
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.load() == 0 || self.has_exited() {
                break;
            }
            tokio::select! {
                _ = idle => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let Some(pid) = self.pid else { return };
        if self.has_exited() {
            return;
        }
        signal_group(pid, Signal::Terminate);
        if tokio::time::timeout(TERMINATE_GRACE, self.exited())
            .await
            .is_err()
        {
            tracing::warn!(instance = %self.id, "instance ignored SIGTERM; killing it");
            signal_group(pid, Signal::Kill);
            self.exited().await;
        }
    }
}

fn unknown_exit() -> Exit {
    Exit {
        status: "unknown".to_owned(),
        out_of_memory: None,
        stderr_tail: String::new(),
    }
}

/// Counts one lease as in-flight work (and, when it ends, as a request) for as long as it lives.
struct InFlight {
    instance: Arc<Instance>,
    began: Instant,
    failed: AtomicBool,
}

impl LeaseHold for InFlight {
    fn fail(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    fn exit(&self, wait: Duration) -> BoxFuture<'static, Option<Exit>> {
        let instance = self.instance.clone();
        async move { tokio::time::timeout(wait, instance.exited()).await.ok() }.boxed()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let instance = &self.instance;
        instance.touch();
        instance.stats.latency.observe(self.began.elapsed());
        if self.failed.load(Ordering::Relaxed) {
            instance.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        if instance.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            instance.idle.notify_waiters();
        }
    }
}
