//! Instances as child processes of Skyport on this machine.
//!
//! Start-up is built for latency: Skyport binds the instance's listening socket itself and
//! passes it as descriptor 3, so the port is known before the process exists and connections
//! queue in the kernel's backlog while Python imports. Readiness is then one HTTP request that
//! is answered as soon as the server accepts, rather than a connect-retry loop.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use parking_lot::Mutex;
use skyport_store::{DeploymentId, InstanceId, LogStream, LogWriter, ServerName, Timestamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::{Notify, watch};

use crate::output::{LogContext, Tail, pump};
use crate::spawn::{LISTEN_FD, Signal, signal_group, spawn_instance};
use crate::{InstanceInfo, Lease, Runtime, StartError, Target};

/// How long a stopped instance gets between `SIGTERM` and `SIGKILL`.
const TERMINATE_GRACE: Duration = Duration::from_secs(5);
/// Pause between readiness probes when one fails without the process having exited.
const PROBE_RETRY: Duration = Duration::from_millis(20);

/// Settings of the local runtime.
#[derive(Clone, Debug)]
pub struct LocalRuntimeConfig {
    /// Where instances get a private scratch directory (`HOME` and `TMPDIR`).
    pub scratch_dir: PathBuf,
    /// How long an instance may take to answer its first request.
    pub start_timeout: Duration,
    /// `PATH` given to instances.
    pub path: Option<OsString>,
}

/// Runs instances as child processes; see the module docs.
#[derive(Clone)]
pub struct LocalRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    config: LocalRuntimeConfig,
    logs: LogWriter,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The instance (or the start of one) serving each deployment.
    slots: HashMap<DeploymentId, Slot>,
    /// Every process alive, including ones being retired, so shutdown reaches all of them.
    processes: HashMap<InstanceId, Arc<Instance>>,
    stopping: bool,
}

type StartFuture = Shared<BoxFuture<'static, Result<Arc<Instance>, StartError>>>;

#[derive(Clone)]
enum Slot {
    Starting {
        instance: InstanceId,
        start: StartFuture,
    },
    Running(Arc<Instance>),
}

struct Instance {
    id: InstanceId,
    deployment: DeploymentId,
    server: ServerName,
    addr: SocketAddr,
    pid: Option<u32>,
    started_at: Timestamp,
    in_flight: AtomicU64,
    /// Signalled whenever `in_flight` drops to zero.
    idle: Notify,
    /// `Some(how it exited)` once the process is gone.
    exit: watch::Receiver<Option<String>>,
}

impl Instance {
    fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    async fn exited(&self) -> String {
        let mut exit = self.exit.clone();
        match exit.wait_for(Option::is_some).await {
            Ok(status) => status.clone().unwrap_or_default(),
            Err(_) => "unknown".to_owned(),
        }
    }

    fn info(&self) -> InstanceInfo {
        InstanceInfo {
            id: self.id.clone(),
            deployment: self.deployment.clone(),
            server: self.server.clone(),
            pid: self.pid,
            addr: self.addr,
            started_at: self.started_at,
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }

    fn lease(self: &Arc<Self>) -> Lease {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Lease::new(self.addr, self.id.clone(), Arc::new(InFlight(self.clone())))
    }

    /// Waits for in-flight work to finish (until `deadline`), then terminates the process
    /// group, and kills it if it ignores that.
    async fn stop(&self, deadline: tokio::time::Instant) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) == 0 || self.has_exited() {
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

/// Counts one lease as in-flight work for as long as it lives.
struct InFlight(Arc<Instance>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl LocalRuntime {
    /// A runtime writing instance output to `logs`.
    pub fn new(config: LocalRuntimeConfig, logs: LogWriter) -> LocalRuntime {
        LocalRuntime {
            inner: Arc::new(Inner {
                config,
                logs,
                state: Mutex::new(State::default()),
            }),
        }
    }
}

impl Runtime for LocalRuntime {
    fn acquire<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Lease, StartError>> {
        async move {
            let start = {
                let mut state = self.inner.state.lock();
                if state.stopping {
                    return Err(StartError::Stopping);
                }
                match state.slots.get(&target.deployment) {
                    Some(Slot::Running(instance)) if !instance.has_exited() => {
                        return Ok(instance.lease());
                    }
                    Some(Slot::Starting { start, .. }) => start.clone(),
                    _ => {
                        let id = InstanceId::generate();
                        let start =
                            start_in_background(self.inner.clone(), target.clone(), id.clone());
                        state.slots.insert(
                            target.deployment.clone(),
                            Slot::Starting {
                                instance: id,
                                start: start.clone(),
                            },
                        );
                        start
                    }
                }
            };
            start.await.map(|instance| instance.lease())
        }
        .boxed()
    }

    fn retire(&self, deployment: &DeploymentId, grace: Duration) -> BoxFuture<'_, ()> {
        let slot = self.inner.state.lock().slots.remove(deployment);
        async move {
            // A start in progress notices its slot is gone and stops what it started.
            if let Some(Slot::Running(instance)) = slot {
                tracing::info!(instance = %instance.id, deployment = %instance.deployment, "retiring instance");
                instance.stop(tokio::time::Instant::now() + grace).await;
            }
        }
        .boxed()
    }

    fn instances(&self) -> Vec<InstanceInfo> {
        let state = self.inner.state.lock();
        let mut instances: Vec<_> = state.processes.values().map(|i| i.info()).collect();
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        instances
    }

    fn shutdown(&self, grace: Duration) -> BoxFuture<'_, ()> {
        let processes: Vec<_> = {
            let mut state = self.inner.state.lock();
            state.stopping = true;
            state.slots.clear();
            state.processes.values().cloned().collect()
        };
        async move {
            let deadline = tokio::time::Instant::now() + grace;
            futures_util::future::join_all(processes.iter().map(|i| i.stop(deadline))).await;
        }
        .boxed()
    }
}

/// Starts an instance in a task of its own, so that a start survives the request that caused
/// it being cancelled; every concurrent request for the deployment awaits the same result.
fn start_in_background(inner: Arc<Inner>, target: Target, id: InstanceId) -> StartFuture {
    let task = tokio::spawn(start(inner, target, id));
    async move {
        task.await
            .unwrap_or_else(|e| Err(StartError::Spawn(format!("the start task failed: {e}"))))
    }
    .boxed()
    .shared()
}

async fn start(
    inner: Arc<Inner>,
    target: Target,
    id: InstanceId,
) -> Result<Arc<Instance>, StartError> {
    let result = launch(&inner, &target, &id).await;
    let unwanted = {
        let mut state = inner.state.lock();
        let ours = matches!(
            state.slots.get(&target.deployment),
            Some(Slot::Starting { instance, .. }) if *instance == id
        );
        match &result {
            Ok(instance) if ours => {
                state
                    .slots
                    .insert(target.deployment.clone(), Slot::Running(instance.clone()));
                None
            }
            // Retired or shut down while starting: nobody will use it.
            Ok(instance) => Some(instance.clone()),
            Err(_) => {
                if ours {
                    state.slots.remove(&target.deployment);
                }
                None
            }
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

/// Spawns the process, wires its output to the log, and waits until it answers HTTP.
async fn launch(
    inner: &Arc<Inner>,
    target: &Target,
    id: &InstanceId,
) -> Result<Arc<Instance>, StartError> {
    let began = Instant::now();
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| StartError::Spawn(format!("cannot bind a local port: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Spawn(format!("cannot read the bound port: {e}")))?;
    let scratch = inner.config.scratch_dir.join(id.as_str());
    std::fs::create_dir_all(&scratch)
        .map_err(|e| StartError::Spawn(format!("cannot create {}: {e}", scratch.display())))?;
    let command = instance_command(&inner.config, target, id, addr, &scratch);

    let log = LogContext {
        writer: inner.logs.clone(),
        server: target.server_id.clone(),
        deployment: target.deployment.clone(),
        instance: id.clone(),
    };
    let (exit_tx, exit_rx) = watch::channel(None);
    let (mut child, instance) = {
        let mut state = inner.state.lock();
        if state.stopping {
            return Err(StartError::Stopping);
        }
        // Registered under the same lock that shutdown takes, so shutdown sees every process.
        let child = spawn_instance(command, &listener)
            .map_err(|e| StartError::Spawn(format!("{}: {e}", target.launch.program.display())))?;
        let instance = Arc::new(Instance {
            id: id.clone(),
            deployment: target.deployment.clone(),
            server: target.server_name.clone(),
            addr,
            pid: child.id(),
            started_at: Timestamp::now(),
            in_flight: AtomicU64::new(0),
            idle: Notify::new(),
            exit: exit_rx,
        });
        state.processes.insert(id.clone(), instance.clone());
        (child, instance)
    };
    // The child holds its own copy; ours must close so a dead child means refused connections.
    drop(listener);
    log.write(
        LogStream::Skyport,
        format!(
            "starting instance {id} of deployment {} (pid {}, port {})",
            target.deployment,
            instance.pid.unwrap_or_default(),
            addr.port()
        ),
    );

    let tail = Arc::new(Tail::default());
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(pump(stdout, LogStream::Stdout, log.clone(), None));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(pump(
            stderr,
            LogStream::Stderr,
            log.clone(),
            Some(tail.clone()),
        ));
    }
    tokio::spawn(supervise(
        inner.clone(),
        child,
        instance.clone(),
        log.clone(),
        exit_tx,
        scratch,
    ));

    let ready = tokio::time::timeout(inner.config.start_timeout, async {
        tokio::select! {
            () = wait_until_answers(addr) => Ok(()),
            status = instance.exited() => Err(status),
        }
    })
    .await;
    match ready {
        Ok(Ok(())) => {
            log.write(
                LogStream::Skyport,
                format!("instance {id} ready in {} ms", began.elapsed().as_millis()),
            );
            Ok(instance)
        }
        Ok(Err(status)) => {
            // Let the output pumps drain what the process printed before it died.
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(StartError::Exited {
                status,
                stderr_tail: tail.text(),
            })
        }
        Err(_) => {
            log.write(
                LogStream::Skyport,
                format!(
                    "instance {id} did not answer within {:?}; stopping it",
                    inner.config.start_timeout
                ),
            );
            instance.stop(tokio::time::Instant::now()).await;
            Err(StartError::Timeout(inner.config.start_timeout))
        }
    }
}

fn instance_command(
    config: &LocalRuntimeConfig,
    target: &Target,
    id: &InstanceId,
    addr: SocketAddr,
    scratch: &std::path::Path,
) -> Command {
    #[allow(clippy::disallowed_methods)] // the runtime is one of the two crates that spawn
    let mut command = Command::new(&target.launch.program);
    command
        .args(&target.launch.args)
        .current_dir(&target.launch.working_dir)
        .env_clear()
        .env("HOME", scratch)
        .env("TMPDIR", scratch)
        .env("LANG", "C.UTF-8")
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("SKYPORT_LISTEN_FD", LISTEN_FD.to_string())
        .env("SKYPORT_PORT", addr.port().to_string())
        .env("SKYPORT_SERVER", target.server_name.as_str())
        .env("SKYPORT_DEPLOYMENT_ID", target.deployment.as_str())
        .env("SKYPORT_INSTANCE_ID", id.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = &config.path {
        command.env("PATH", path);
    }
    command
}

/// Reaps the process when it exits, records how, and frees its slot so the next request
/// starts a fresh instance.
async fn supervise(
    inner: Arc<Inner>,
    mut child: tokio::process::Child,
    instance: Arc<Instance>,
    log: LogContext,
    exit: watch::Sender<Option<String>>,
    scratch: PathBuf,
) {
    let status = describe(child.wait().await);
    log.write(
        LogStream::Skyport,
        format!("instance {} exited ({status})", instance.id),
    );
    {
        let mut state = inner.state.lock();
        state.processes.remove(&instance.id);
        if matches!(
            state.slots.get(&instance.deployment),
            Some(Slot::Running(running)) if running.id == instance.id
        ) {
            state.slots.remove(&instance.deployment);
        }
    }
    exit.send_replace(Some(status));
    if let Err(e) = tokio::fs::remove_dir_all(&scratch).await {
        tracing::debug!(path = %scratch.display(), "cannot remove instance scratch dir: {e}");
    }
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            _ => s.to_string(),
        },
        Err(e) => format!("unknown: {e}"),
    }
}

/// Returns once an HTTP request to the instance gets any response. The socket already
/// listens, so the request waits in the backlog until the server accepts; retries only cover
/// a connection dropped by a server that was still setting up.
async fn wait_until_answers(addr: SocketAddr) {
    loop {
        if probe(addr).await {
            return;
        }
        tokio::time::sleep(PROBE_RETRY).await;
    }
}

async fn probe(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!(
        "GET /mcp HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json, text/event-stream\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0_u8; 5];
    stream.read_exact(&mut head).await.is_ok() && &head == b"HTTP/"
}

#[cfg(test)]
mod tests;
