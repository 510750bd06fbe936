//! Starting one instance: its cgroup, its environment, the spawn, the wait until it answers;
//! and supervising it until it exits, recording how (crash, out-of-memory kill, stop).
//!
//! Start-up is built for latency: Skyport binds the instance's listening socket itself and
//! passes it as descriptor 3, so the port is known before the process exists and connections
//! queue in the kernel's backlog while Python imports. Readiness is then one HTTP request that
//! is answered as soon as the server accepts, rather than a connect-retry loop.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skyport_store::{InstanceId, LogStream, Timestamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::instance::Instance;
use super::{Inner, Limits};
use crate::cgroup::Cgroup;
use crate::leftovers::{self, PidRecord};
use crate::metrics::DeploymentStats;
use crate::output::{LogContext, Tail, pump};
use crate::redact::Redactor;
use crate::spawn::{Confinement, LISTEN_FD, Signal, signal_process, spawn_instance};
use crate::{Exit, StartError, Target};

/// Pause between readiness probes when one fails without the process having exited.
const PROBE_RETRY: Duration = Duration::from_millis(20);
/// How long the output pumps get to deliver an exited process's last lines.
const DRAIN: Duration = Duration::from_millis(500);
/// How long an emptied cgroup may take to become removable.
const CGROUP_REMOVE_TRIES: usize = 50;

/// Spawns an instance of `target` and waits until it answers HTTP.
pub(super) async fn launch(
    inner: &Arc<Inner>,
    target: &Target,
    id: &InstanceId,
    stats: &Arc<DeploymentStats>,
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
    let command = instance_command(inner, target, id, addr, &scratch);
    let (cgroup, confinement) = confine(inner, target, id)?;
    let redactor = Arc::new(Redactor::new(&target.env));

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
        let child = spawn_instance(command, &listener, &confinement, &target.launch.working_dir)
            .map_err(|e| StartError::Spawn(format!("{}: {e}", target.launch.program.display())))?;
        let instance = Arc::new(Instance {
            id: id.clone(),
            deployment: target.deployment.clone(),
            server: target.server_name.clone(),
            addr,
            pid: child.id(),
            started_at: Timestamp::now(),
            cgroup,
            stats: stats.clone(),
            in_flight: AtomicU64::new(0),
            last_active: AtomicU64::new(0),
            epoch: inner.epoch,
            stop_requested: AtomicBool::new(false),
            idle: Notify::new(),
            exit: exit_rx,
        });
        state.processes.insert(id.clone(), instance.clone());
        (child, instance)
    };
    // The child holds its own copy; ours must close so a dead child means refused connections.
    drop(listener);
    drop(confinement);
    if let Some(record) = instance
        .pid
        .and_then(|pid| PidRecord::of(pid, instance.cgroup.as_ref()))
        && let Err(e) = record.save(&inner.config.state_dir, id.as_str())
    {
        tracing::warn!(instance = %id, "cannot record the instance's pid: {e}");
    }
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
    let stdout = child.stdout.take().map(|stdout| {
        tokio::spawn(pump(
            stdout,
            LogStream::Stdout,
            log.clone(),
            redactor.clone(),
            None,
        ))
    });
    let stderr = child.stderr.take().map(|stderr| {
        tokio::spawn(pump(
            stderr,
            LogStream::Stderr,
            log.clone(),
            redactor.clone(),
            Some(tail.clone()),
        ))
    });
    tokio::spawn(supervise(Supervised {
        inner: inner.clone(),
        child,
        instance: instance.clone(),
        log: log.clone(),
        exit: exit_tx,
        scratch,
        tail: tail.clone(),
        pumps: [stdout, stderr],
        memory_limit: target.settings.memory_bytes,
    }));

    let timeout = inner.config.start_timeout;
    let ready = tokio::time::timeout(timeout, async {
        tokio::select! {
            () = wait_until_answers(addr) => Ok(()),
            exit = instance.exited() => Err(exit),
        }
    })
    .await;
    match ready {
        Ok(Ok(())) => {
            let took = began.elapsed();
            instance.touch();
            stats.cold_starts.observe(took);
            log.write(
                LogStream::Skyport,
                format!("instance {id} ready in {} ms", took.as_millis()),
            );
            Ok(instance)
        }
        Ok(Err(exit)) => Err(StartError::Exited { exit }),
        Err(_) => {
            log.write(
                LogStream::Skyport,
                format!("instance {id} did not become ready within {timeout:?}; stopping it"),
            );
            instance.stop(tokio::time::Instant::now()).await;
            Err(StartError::Timeout {
                timeout,
                stderr_tail: tail.text(),
            })
        }
    }
}

/// The instance's cgroup (with its memory cap) or, without cgroups, an address-space cap.
fn confine(
    inner: &Inner,
    target: &Target,
    id: &InstanceId,
) -> Result<(Option<Cgroup>, Confinement), StartError> {
    let limit = target.settings.memory_bytes;
    let Limits::Cgroups(cgroups) = &inner.limits else {
        return Ok((None, Confinement::AddressSpace(limit)));
    };
    let cgroup = cgroups.create(id.as_str(), limit).map_err(|e| {
        StartError::Spawn(format!(
            "cannot create the instance's cgroup under {}: {e}",
            cgroups.base().display()
        ))
    })?;
    match std::fs::OpenOptions::new()
        .write(true)
        .open(cgroup.procs_file())
    {
        Ok(procs) => Ok((Some(cgroup), Confinement::Cgroup(procs))),
        Err(e) => {
            let _ = cgroup.remove();
            Err(StartError::Spawn(format!(
                "cannot open {}: {e}",
                cgroup.procs_file().display()
            )))
        }
    }
}

/// The instance's command: the deployment's program and arguments in the artifact, with an
/// environment built from nothing (Skyport's own environment never reaches user code).
fn instance_command(
    inner: &Inner,
    target: &Target,
    id: &InstanceId,
    addr: SocketAddr,
    scratch: &Path,
) -> Command {
    #[allow(clippy::disallowed_methods)] // the runtime is one of the two crates that spawn
    let mut command = Command::new(&target.launch.program);
    command
        .args(&target.launch.args)
        .current_dir(&target.launch.working_dir)
        .env_clear();
    // The deployment's own variables first, so that Skyport's below win on a clash.
    for var in &target.env {
        command.env(&var.name, &var.value);
    }
    command
        .env("HOME", scratch)
        .env("TMPDIR", scratch)
        .env("LANG", "C.UTF-8")
        .env("PYTHONUNBUFFERED", "1")
        // The artifact is shared by every instance and never written: no bytecode caches.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("SKYPORT_LISTEN_FD", LISTEN_FD.to_string())
        .env("SKYPORT_PORT", addr.port().to_string())
        .env("SKYPORT_SERVER", target.server_name.as_str())
        .env("SKYPORT_DEPLOYMENT_ID", target.deployment.as_str())
        .env("SKYPORT_INSTANCE_ID", id.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(path) = &inner.config.path {
        command.env("PATH", path);
    }
    command
}

/// What [`supervise`] needs.
struct Supervised {
    inner: Arc<Inner>,
    child: tokio::process::Child,
    instance: Arc<Instance>,
    log: LogContext,
    exit: watch::Sender<Option<Exit>>,
    scratch: PathBuf,
    tail: Arc<Tail>,
    pumps: [Option<JoinHandle<()>>; 2],
    memory_limit: u64,
}

/// Reaps the process when it exits, records how (counting crashes and out-of-memory kills),
/// frees its place so the next request starts a fresh instance, and cleans up after it.
async fn supervise(s: Supervised) {
    let Supervised {
        inner,
        mut child,
        instance,
        log,
        exit,
        scratch,
        tail,
        pumps,
        memory_limit,
    } = s;
    let status = describe(child.wait().await);
    // Whatever the instance started dies with it; its cgroup lists them.
    if let Some(cgroup) = &instance.cgroup {
        for pid in cgroup.pids() {
            signal_process(pid, Signal::Kill);
        }
    }
    for pump in pumps.into_iter().flatten() {
        let _ = tokio::time::timeout(DRAIN, pump).await;
    }
    let out_of_memory = instance
        .cgroup
        .as_ref()
        .is_some_and(|c| c.oom_kills() > 0)
        .then_some(memory_limit);
    let requested = instance.stop_requested.load(Ordering::Acquire);
    if out_of_memory.is_some() {
        instance.stats.oom_kills.fetch_add(1, Ordering::Relaxed);
    }
    if !requested {
        instance.stats.crashes.fetch_add(1, Ordering::Relaxed);
    }
    let ended = Exit {
        status,
        out_of_memory,
        stderr_tail: tail.text(),
    };
    let message = match (out_of_memory, requested) {
        (Some(limit), _) => format!(
            "instance {} was killed: out of memory (limit {} MiB, {})",
            instance.id,
            limit / (1024 * 1024),
            ended.status
        ),
        (None, true) => format!("instance {} stopped ({})", instance.id, ended.status),
        (None, false) => format!("instance {} exited ({})", instance.id, ended.status),
    };
    if out_of_memory.is_some() || !requested {
        tracing::warn!(instance = %instance.id, deployment = %instance.deployment, "{message}");
    }
    log.write(LogStream::Skyport, message);
    inner.forget(&instance);
    exit.send_replace(Some(ended));

    if let Some(cgroup) = &instance.cgroup {
        remove_cgroup(cgroup).await;
    }
    leftovers::forget(&inner.config.state_dir, instance.id.as_str());
    if let Err(e) = tokio::fs::remove_dir_all(&scratch).await {
        tracing::debug!(path = %scratch.display(), "cannot remove instance scratch dir: {e}");
    }
}

/// Removes an instance's cgroup; the kernel refuses until its last process is fully gone.
async fn remove_cgroup(cgroup: &Cgroup) {
    for _ in 0..CGROUP_REMOVE_TRIES {
        if cgroup.remove().is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!(cgroup = %cgroup.path().display(), "cannot remove an instance's cgroup");
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
