//! Instances as child processes of Skyport on this machine: a pool per deployment, scaled by
//! load between the server's `min_instances` and `max_instances`, stopped when idle, capped in
//! memory (cgroups, else `RLIMIT_AS`), and swept up after a crash of Skyport itself.
//!
//! One lock guards the pools; it is held only for bookkeeping (never across an await), so the
//! request path costs a map lookup and an atomic increment when an instance is warm.

mod instance;
mod start;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use parking_lot::Mutex;
use skyport_store::{DeploymentId, InstanceId, LogWriter};

use self::instance::Instance;
use crate::cgroup::{Cgroups, Version};
use crate::metrics::DeploymentStats;
use crate::zygote::Zygotes;
use crate::{
    DeploymentMetrics, InstanceInfo, Lease, Runtime, StartError, Target, leftovers, spawn,
    start_backoff,
};

/// How often idle instances are looked for and warm minimums topped up.
const SCALE_TICK: Duration = Duration::from_millis(200);

/// Settings of the local runtime.
#[derive(Clone, Debug)]
pub struct LocalRuntimeConfig {
    /// Where instances get a private scratch directory (`HOME` and `TMPDIR`), removed when
    /// they stop.
    pub scratch_dir: PathBuf,
    /// Where a record of each running instance is kept, for the sweep after a crash.
    pub state_dir: PathBuf,
    /// How long an instance may take to answer its first request.
    pub start_timeout: Duration,
    /// `PATH` given to instances.
    pub path: Option<OsString>,
    /// Requests one instance takes at once before another is started (up to the server's
    /// `max_instances`).
    pub concurrency: u64,
    /// Name of Skyport's cgroup beneath its own; one per data directory, so that a restart
    /// finds its predecessor's instances and two Skyports never share one.
    pub cgroup_name: String,
    /// Fork instances from a pre-imported interpreter per environment (a zygote) once the
    /// environment has had its first cold start; otherwise every instance is spawned.
    pub zygotes: bool,
    /// The program that serves stdio servers over HTTP (Skyport's own binary, run as
    /// `PROGRAM bridge --max-sessions N [--shared] -- COMMAND ARGS…`, from the server's
    /// settings when the instance starts); without one, deployments of stdio
    /// servers cannot start.
    pub stdio_bridge: Option<PathBuf>,
    /// Readies each start's launch spec (an artifact built by another replica); without it,
    /// specs run as they were recorded.
    pub artifacts: Option<Arc<dyn crate::Artifacts>>,
}

/// Runs instances as child processes; see the module docs.
#[derive(Clone)]
pub struct LocalRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    config: LocalRuntimeConfig,
    logs: LogWriter,
    limits: Limits,
    zygotes: Option<Arc<Zygotes>>,
    /// The zero of instances' activity clocks.
    epoch: Instant,
    state: Mutex<State>,
}

/// How memory caps are enforced.
enum Limits {
    Cgroups(Cgroups),
    /// No usable cgroup memory controller: each process's address space is capped instead.
    AddressSpace,
}

#[derive(Default)]
struct State {
    pools: HashMap<DeploymentId, Pool>,
    /// Every process alive, including ones being stopped, so shutdown reaches all of them.
    processes: HashMap<InstanceId, Arc<Instance>>,
    stopping: bool,
}

type StartFuture = Shared<BoxFuture<'static, Result<Arc<Instance>, StartError>>>;

/// The instances of one deployment.
struct Pool {
    /// The latest target seen (settings can change while instances run).
    target: Target,
    stats: Arc<DeploymentStats>,
    /// Ready instances, taking leases.
    running: Vec<Arc<Instance>>,
    /// The start in progress; concurrent askers await it rather than starting more.
    starting: Option<(InstanceId, StartFuture)>,
    /// Failed starts in a row.
    failures: u32,
    /// While set and in the future, starts are refused with the last failure.
    retry_at: Option<Instant>,
    last_error: Option<StartError>,
}

impl Pool {
    fn new(target: Target) -> Pool {
        Pool {
            target,
            stats: Arc::default(),
            running: Vec::new(),
            starting: None,
            failures: 0,
            retry_at: None,
            last_error: None,
        }
    }

    fn least_loaded(&self) -> Option<&Arc<Instance>> {
        self.running
            .iter()
            .filter(|i| !i.has_exited())
            .min_by_key(|i| i.load())
    }

    /// The crash-loop error to answer with instead of starting, while backing off.
    fn backing_off(&self, now: Instant) -> Option<StartError> {
        let retry_at = self.retry_at.filter(|at| *at > now)?;
        let last = self.last_error.clone()?;
        Some(StartError::CrashLoop {
            retry_in: retry_at - now,
            last: Box::new(last),
        })
    }
}

impl LocalRuntime {
    /// A runtime writing instance output to `logs`. Before returning it ends what an earlier
    /// run of Skyport with the same state directory left running, and says once how memory
    /// caps are enforced here.
    pub async fn start(config: LocalRuntimeConfig, logs: LogWriter) -> LocalRuntime {
        let limits = match Cgroups::detect(&config.cgroup_name) {
            Ok(cgroups) => {
                let version = match cgroups.version() {
                    Version::V2 => "v2",
                    Version::V1 => "v1",
                };
                tracing::info!(
                    "memory limits: cgroup {version} memory controller at {}",
                    cgroups.base().display()
                );
                Limits::Cgroups(cgroups)
            }
            Err(reason) => {
                tracing::warn!(
                    "memory limits: cgroups are not usable ({reason}); capping each instance's address space (RLIMIT_AS) instead, and out-of-memory kills cannot be told apart from crashes"
                );
                Limits::AddressSpace
            }
        };
        if spawn::read_only_supported() {
            tracing::info!("artifacts: mounted read-only in each instance's mount namespace");
        } else {
            tracing::warn!(
                "artifacts: not running as root, so instances cannot get a read-only mount of their artifact; they can write to it"
            );
        }
        let sweep = {
            let state_dir = config.state_dir.clone();
            let scratch_dir = config.scratch_dir.clone();
            let cgroups = match &limits {
                Limits::Cgroups(c) => Some(c.clone()),
                Limits::AddressSpace => None,
            };
            tokio::task::spawn_blocking(move || {
                let killed = leftovers::sweep(&state_dir, cgroups.as_ref());
                // Scratch dirs of instances that are gone now.
                let _ = std::fs::remove_dir_all(&scratch_dir);
                killed
            })
        };
        match sweep.await {
            Ok(0) => {}
            Ok(killed) => tracing::warn!(
                "ended {killed} process(es) left running by a previous Skyport that did not shut down cleanly"
            ),
            Err(e) => tracing::error!("cannot sweep up a previous run's instances: {e}"),
        }
        let zygotes = config.zygotes.then(|| {
            Arc::new(Zygotes::new(
                config.scratch_dir.join("zygotes"),
                config.path.clone(),
            ))
        });
        let inner = Arc::new(Inner {
            config,
            logs,
            limits,
            zygotes,
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
        });
        tokio::spawn(scale(Arc::downgrade(&inner)));
        LocalRuntime { inner }
    }
}

impl Inner {
    /// Drops an exited instance from the books.
    fn forget(&self, instance: &Arc<Instance>) {
        let mut state = self.state.lock();
        state.processes.remove(&instance.id);
        if let Some(pool) = state.pools.get_mut(&instance.deployment) {
            pool.running.retain(|i| i.id != instance.id);
        }
    }
}

impl Runtime for LocalRuntime {
    fn acquire<'a>(
        &'a self,
        target: &'a Target,
        affinity: Option<&'a InstanceId>,
    ) -> BoxFuture<'a, Result<Lease, StartError>> {
        async move {
            let start = {
                let mut state = self.inner.state.lock();
                if state.stopping {
                    return Err(StartError::Stopping);
                }
                let pool = state
                    .pools
                    .entry(target.deployment.clone())
                    .or_insert_with(|| Pool::new(target.clone()));
                if pool.target != *target {
                    pool.target = target.clone();
                }
                if let Some(id) = affinity
                    && let Some(instance) =
                        pool.running.iter().find(|i| i.id == *id && !i.has_exited())
                {
                    return Ok(instance.lease());
                }
                let least = pool.least_loaded().cloned();
                match least {
                    Some(instance) if instance.load() < self.inner.config.concurrency => {
                        return Ok(instance.lease());
                    }
                    _ => {}
                }
                match (&pool.starting, least) {
                    (Some((_, start)), _) => start.clone(),
                    // Every instance is busy and no more may start: share the least busy.
                    (None, Some(instance))
                        if pool.running.len() >= pool.target.settings.max_instances as usize =>
                    {
                        return Ok(instance.lease());
                    }
                    (None, _) => {
                        if let Some(error) = pool.backing_off(Instant::now()) {
                            return Err(error);
                        }
                        begin_start(&self.inner, pool)
                    }
                }
            };
            start.await.map(|instance| instance.lease())
        }
        .boxed()
    }

    fn retire(&self, deployment: &DeploymentId, grace: Duration) -> BoxFuture<'_, ()> {
        // A start in progress notices its pool is gone and stops what it started.
        let pool = self.inner.state.lock().pools.remove(deployment);
        async move {
            let Some(pool) = pool else { return };
            let deadline = tokio::time::Instant::now() + grace;
            futures_util::future::join_all(pool.running.iter().map(|instance| {
                tracing::info!(instance = %instance.id, deployment = %instance.deployment, "retiring instance");
                instance.stop(deadline)
            }))
            .await;
        }
        .boxed()
    }

    fn keep_warm(&self, live: &[Target]) {
        let mut state = self.inner.state.lock();
        if state.stopping {
            return;
        }
        for target in live {
            match state.pools.get_mut(&target.deployment) {
                Some(pool) if pool.target != *target => pool.target = target.clone(),
                Some(_) => {}
                // The scaling loop starts the minimum.
                None if target.settings.min_instances > 0 => {
                    state
                        .pools
                        .insert(target.deployment.clone(), Pool::new(target.clone()));
                }
                None => {}
            }
        }
    }

    fn instances(&self) -> Vec<InstanceInfo> {
        let processes: Vec<_> = self
            .inner
            .state
            .lock()
            .processes
            .values()
            .cloned()
            .collect();
        let mut instances: Vec<_> = processes.iter().map(|i| i.info()).collect();
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        instances
    }

    fn metrics(&self) -> Vec<DeploymentMetrics> {
        let pools: Vec<_> = {
            let state = self.inner.state.lock();
            state
                .pools
                .values()
                .map(|p| (p.target.clone(), p.stats.clone(), p.running.clone()))
                .collect()
        };
        let mut metrics: Vec<_> = pools
            .into_iter()
            .map(|(target, stats, running)| {
                let memory = running.iter().filter_map(|i| i.memory()).sum();
                stats.snapshot(
                    target.server_name,
                    target.deployment,
                    running.len() as u64,
                    memory,
                )
            })
            .collect();
        metrics.sort_by(|a, b| (&a.server, &a.deployment).cmp(&(&b.server, &b.deployment)));
        metrics
    }

    fn shutdown(&self, grace: Duration) -> BoxFuture<'_, ()> {
        let processes: Vec<_> = {
            let mut state = self.inner.state.lock();
            state.stopping = true;
            state.pools.clear();
            state.processes.values().cloned().collect()
        };
        async move {
            let deadline = tokio::time::Instant::now() + grace;
            futures_util::future::join_all(processes.iter().map(|i| i.stop(deadline))).await;
            if let Some(zygotes) = &self.inner.zygotes {
                zygotes.stop_idle(true);
            }
            if let Limits::Cgroups(cgroups) = &self.inner.limits {
                // Instances remove their own cgroups as they exit; the parent goes last.
                for _ in 0..50 {
                    if std::fs::remove_dir(cgroups.base()).is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        .boxed()
    }
}

/// Starts an instance for `pool` in a task of its own, so that a start survives the request
/// that caused it being cancelled; every concurrent request for the deployment awaits it.
fn begin_start(inner: &Arc<Inner>, pool: &mut Pool) -> StartFuture {
    let id = InstanceId::generate();
    let task = tokio::spawn(start(
        inner.clone(),
        pool.target.clone(),
        id.clone(),
        pool.stats.clone(),
    ));
    let start = async move {
        task.await
            .unwrap_or_else(|e| Err(StartError::Spawn(format!("the start task failed: {e}"))))
    }
    .boxed()
    .shared();
    pool.starting = Some((id, start.clone()));
    start
}

async fn start(
    inner: Arc<Inner>,
    target: Target,
    id: InstanceId,
    stats: Arc<DeploymentStats>,
) -> Result<Arc<Instance>, StartError> {
    let result = start::launch(&inner, &target, &id, &stats).await;
    let unwanted = {
        let mut state = inner.state.lock();
        let pool = state
            .pools
            .get_mut(&target.deployment)
            .filter(|p| p.starting.as_ref().is_some_and(|(s, _)| *s == id));
        match (pool, &result) {
            (Some(pool), Ok(instance)) => {
                pool.starting = None;
                pool.failures = 0;
                pool.retry_at = None;
                pool.last_error = None;
                pool.running.push(instance.clone());
                None
            }
            (Some(pool), Err(error)) => {
                pool.starting = None;
                if !matches!(error, StartError::Stopping) {
                    stats.failed_starts.fetch_add(1, Ordering::Relaxed);
                    pool.failures += 1;
                    pool.last_error = Some(error.clone());
                    let wait = start_backoff(pool.failures);
                    pool.retry_at = (!wait.is_zero()).then(|| Instant::now() + wait);
                }
                None
            }
            // Retired or shut down while starting: nobody will use it.
            (None, Ok(instance)) => Some(instance.clone()),
            (None, Err(_)) => None,
        }
    };
    match unwanted {
        Some(instance) => {
            instance.stop(tokio::time::Instant::now()).await;
            Err(StartError::Stopping)
        }
        None => result,
    }
}

/// The scaling loop: stops instances idle past their server's idle timeout (down to its
/// minimum) and starts instances up to the minimum, until the runtime is dropped or stops.
async fn scale(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(SCALE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let now = Instant::now();
        let mut idle = Vec::new();
        {
            let mut state = inner.state.lock();
            if state.stopping {
                return;
            }
            for pool in state.pools.values_mut() {
                let settings = pool.target.settings;
                let min = settings.min_instances as usize;
                let mut keep = pool.running.len();
                pool.running.retain(|instance| {
                    // Checked under the lock that leases are taken under: no lease can
                    // arrive between this check and the instance leaving the pool.
                    let stop = keep > min
                        && instance.load() == 0
                        && instance.idle_for(now) >= settings.idle_timeout;
                    if stop {
                        keep -= 1;
                        idle.push(instance.clone());
                    }
                    !stop
                });
                if pool.running.len() < min
                    && pool.starting.is_none()
                    && pool.backing_off(now).is_none()
                {
                    drop(begin_start(&inner, pool));
                }
            }
        }
        if let Some(zygotes) = &inner.zygotes {
            zygotes.stop_idle(false);
        }
        for instance in idle {
            tracing::info!(instance = %instance.id, deployment = %instance.deployment, "stopping idle instance");
            tokio::spawn(async move { instance.stop(tokio::time::Instant::now()).await });
        }
    }
}

#[cfg(test)]
mod tests;
