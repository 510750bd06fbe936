//! Starting one instance: its cgroup, its environment, the spawn, the wait until it answers;
//! and supervising it until it exits, recording how (crash, out-of-memory kill, stop).
//!
//! Start-up is built for latency: Skyport binds the instance's listening socket itself and
//! passes it as descriptor 3, so the port is known before the process exists and connections
//! queue in the kernel's backlog while Python imports. Readiness is then one HTTP request that
//! is answered as soon as the server accepts, rather than a connect-retry loop.

use std::io::PipeReader;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skyport_store::{InstanceId, LogStream, Timestamp, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::unix::pipe;
use tokio::process::Command;
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;

use super::instance::Instance;
use super::{Inner, Limits};
use crate::cgroup::Cgroup;
use crate::leftovers::{self, PidRecord};
use crate::metrics::DeploymentStats;
use crate::output::{InstanceLog, Tail, pump};
use crate::spawn::{
    self, Confinement, LISTEN_FD, Signal, signal_group, signal_process, spawn_instance,
};
use crate::zygote::{ForkRequest, Forked};
use crate::{Exit, StartError, Target};
use skyport_store::Redactor;

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
    // An artifact fetched from another replica is part of the cold start it causes.
    let prepared;
    let target = match &inner.config.artifacts {
        Some(artifacts) => {
            let launch = artifacts.prepare(target).await.map_err(StartError::Spawn)?;
            prepared = Target {
                launch,
                ..target.clone()
            };
            &prepared
        }
        None => target,
    };
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| StartError::Spawn(format!("cannot bind a local port: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Spawn(format!("cannot read the bound port: {e}")))?;
    let scratch = inner.config.scratch_dir.join(id.as_str());
    std::fs::create_dir_all(&scratch)
        .map_err(|e| StartError::Spawn(format!("cannot create {}: {e}", scratch.display())))?;
    let env = instance_env(inner, target, id, addr, &scratch);
    let (cgroup, confinement) = confine(inner, target, id)?;
    let redactor = Arc::new(Redactor::new(&target.env));

    let log = InstanceLog::new(
        inner.logs.clone(),
        target.server_id.clone(),
        target.deployment.clone(),
        id.clone(),
    );
    // A program that binds its own port is told the port, not given the socket: the socket
    // closes before it starts, so that the port is free for it.
    let listener = match target.launch.transport {
        Transport::HttpPort { .. } => {
            drop(listener);
            None
        }
        Transport::Http | Transport::Stdio => Some(listener),
    };
    let forked = match &listener {
        Some(listener) => {
            match fork(inner, target, listener, &env, cgroup.as_ref(), &confinement).await {
                Ok(forked) => forked,
                Err(why) => {
                    tracing::warn!(instance = %id, "cannot fork from the zygote, spawning instead: {why}");
                    None
                }
            }
        }
        None => None,
    };
    let (exit_tx, exit_rx) = watch::channel(None);
    let (process, pipes, instance) = {
        let mut state = inner.state.lock();
        let (process, pid, pipes) = match forked {
            Some((forked, pipes)) => {
                if state.stopping {
                    signal_group(forked.pid, Signal::Kill);
                    return Err(StartError::Stopping);
                }
                (Process::Forked(forked.exit), Some(forked.pid), Some(pipes))
            }
            None => {
                if state.stopping {
                    return Err(StartError::Stopping);
                }
                // Registered under the same lock that shutdown takes, so shutdown sees every
                // process.
                let command = instance_command(inner, target, &env, addr.port())?;
                let child = spawn_instance(
                    command,
                    listener.as_ref(),
                    &confinement,
                    &target.launch.working_dir,
                )
                .map_err(|e| {
                    StartError::Spawn(format!("{}: {e}", target.launch.program.display()))
                })?;
                let pid = child.id();
                (Process::Spawned(child), pid, None)
            }
        };
        let instance = Arc::new(Instance {
            id: id.clone(),
            deployment: target.deployment.clone(),
            server: target.server_name.clone(),
            addr,
            pid,
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
        (process, pipes, instance)
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
            "starting instance {id} of deployment {} (pid {}, port {}{})",
            target.deployment,
            instance.pid.unwrap_or_default(),
            addr.port(),
            if process.is_forked() {
                ", forked from the environment's zygote"
            } else {
                ""
            }
        ),
    );

    let tail = Arc::new(Tail::default());
    let forked = process.is_forked();
    let (process, stdout, stderr) = process.take_output(pipes);
    let stdout = stdout.map(|stdout| {
        tokio::spawn(pump(
            stdout,
            LogStream::Stdout,
            log.clone(),
            redactor.clone(),
            None,
        ))
    });
    let stderr = stderr.map(|stderr| {
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
        process,
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
            if let Some(zygotes) = inner
                .zygotes
                .as_ref()
                .filter(|_| !forked && may_fork(target))
            {
                zygotes.prepare(&target.launch.program);
            }
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

/// The instance's environment, built from nothing (Skyport's own environment never reaches
/// user code): the deployment's variables first, so that Skyport's below win on a clash.
fn instance_env(
    inner: &Inner,
    target: &Target,
    id: &InstanceId,
    addr: SocketAddr,
    scratch: &Path,
) -> Vec<(String, String)> {
    let scratch = scratch.display().to_string();
    let mut env: Vec<(String, String)> = target
        .env
        .iter()
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect();
    env.extend(
        [
            ("HOME", scratch.clone()),
            ("TMPDIR", scratch),
            ("LANG", "C.UTF-8".to_owned()),
            ("PYTHONUNBUFFERED", "1".to_owned()),
            // The artifact is shared by every instance and never written: no bytecode caches.
            ("PYTHONDONTWRITEBYTECODE", "1".to_owned()),
            ("SKYPORT_LISTEN_FD", LISTEN_FD.to_string()),
            ("SKYPORT_PORT", addr.port().to_string()),
            ("SKYPORT_SERVER", target.server_name.to_string()),
            ("SKYPORT_DEPLOYMENT_ID", target.deployment.to_string()),
            ("SKYPORT_INSTANCE_ID", id.to_string()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    if let Some(path) = inner.config.path.as_ref().and_then(|p| p.to_str()) {
        env.push(("PATH".to_owned(), path.to_owned()));
    }
    env
}

/// The instance's command: the deployment's program and arguments in the artifact, behind
/// the stdio bridge for a stdio server.
fn instance_command(
    inner: &Inner,
    target: &Target,
    env: &[(String, String)],
    port: u16,
) -> Result<Command, StartError> {
    let launch = &target.launch;
    #[allow(clippy::disallowed_methods)] // the runtime is one of the two crates that spawn
    let mut command = match &launch.transport {
        Transport::Http => {
            let mut command = Command::new(&launch.program);
            command.args(&launch.args);
            command
        }
        Transport::HttpPort { .. } => {
            let mut command = Command::new(&launch.program);
            let port = port.to_string();
            command.args(
                launch
                    .args
                    .iter()
                    .map(|arg| arg.replace(Transport::PORT_PLACEHOLDER, &port)),
            );
            command
        }
        Transport::Stdio => {
            let bridge = inner.config.stdio_bridge.as_ref().ok_or_else(|| {
                StartError::Spawn(
                    "this Skyport runs no stdio bridge, so it cannot start stdio servers"
                        .to_owned(),
                )
            })?;
            let mut command = Command::new(bridge);
            command
                .arg("bridge")
                .arg("--max-sessions")
                .arg(target.settings.stdio_sessions.to_string());
            if target.settings.stdio_shared {
                command.arg("--shared");
            }
            command.arg("--").arg(&launch.program).args(&launch.args);
            command
        }
    };
    command
        .current_dir(&target.launch.working_dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Transport::HttpPort {
        env: Some(variable),
    } = &launch.transport
    {
        command.env(variable, port.to_string());
    }
    Ok(command)
}

/// Output pipes of a forked instance (read ends).
type Pipes = (PipeReader, PipeReader);

/// Forks the instance from its environment's zygote when there is one and the deployment may
/// use it; `None` when it must be spawned.
async fn fork(
    inner: &Arc<Inner>,
    target: &Target,
    listener: &TcpListener,
    env: &[(String, String)],
    cgroup: Option<&Cgroup>,
    confinement: &Confinement,
) -> Result<Option<(Forked, Pipes)>, String> {
    let Some(zygotes) = &inner.zygotes else {
        return Ok(None);
    };
    if !may_fork(target) {
        return Ok(None);
    }
    let io = |e: std::io::Error| e.to_string();
    let (out_read, out_write) = std::io::pipe().map_err(io)?;
    let (err_read, err_write) = std::io::pipe().map_err(io)?;
    let socket = OwnedFd::from(listener.try_clone().map_err(io)?);
    let request = ForkRequest {
        args: &target.launch.args,
        cwd: &target.launch.working_dir,
        env: env.to_vec(),
        cgroup_procs: cgroup.map(Cgroup::procs_file),
        address_space: match confinement {
            Confinement::AddressSpace(bytes) => Some(*bytes),
            Confinement::Cgroup(_) => None,
        },
        read_only: spawn::read_only_supported(),
        fds: [socket, out_write.into(), err_write.into()],
    };
    match zygotes.fork(&target.launch.program, request).await {
        None => Ok(None),
        Some(Ok(forked)) => Ok(Some((forked, (out_read, err_read)))),
        Some(Err(why)) => Err(why),
    }
}

/// Whether instances of `target` may be forked from a zygote: FastMCP reads `FASTMCP_*`
/// settings when it is imported, which in a zygote was long before the instance existed.
fn may_fork(target: &Target) -> bool {
    target.launch.transport == Transport::Http
        && !target.env.iter().any(|v| v.name.starts_with("FASTMCP_"))
}

/// An instance's process: Skyport's child, or a zygote's.
enum Process {
    Spawned(tokio::process::Child),
    /// Its exit code arrives from the zygote (negative: the signal that killed it).
    Forked(oneshot::Receiver<i32>),
}

/// An instance's stdout or stderr.
type Output = Box<dyn AsyncRead + Send + Unpin>;

impl Process {
    fn is_forked(&self) -> bool {
        matches!(self, Process::Forked(_))
    }

    /// The output streams for the pumps: the child's pipes, or a forked instance's `pipes`.
    fn take_output(self, pipes: Option<Pipes>) -> (Process, Option<Output>, Option<Output>) {
        match (self, pipes) {
            (Process::Spawned(mut child), _) => {
                let out = child.stdout.take().map(|o| Box::new(o) as Output);
                let err = child.stderr.take().map(|e| Box::new(e) as Output);
                (Process::Spawned(child), out, err)
            }
            (forked, Some((out, err))) => {
                let reader = |pipe: PipeReader| {
                    pipe::Receiver::from_owned_fd(OwnedFd::from(pipe))
                        .ok()
                        .map(|r| Box::new(r) as Output)
                };
                (forked, reader(out), reader(err))
            }
            (forked, None) => (forked, None, None),
        }
    }

    /// Waits for the process to end; how it ended, as text.
    async fn wait(self) -> String {
        match self {
            Process::Spawned(mut child) => describe(child.wait().await),
            Process::Forked(exit) => match exit.await {
                Ok(code) if code < 0 => format!("killed by signal {}", -code),
                Ok(code) => format!("exit code {code}"),
                Err(_) => "unknown: its zygote exited".to_owned(),
            },
        }
    }
}

/// What [`supervise`] needs.
struct Supervised {
    inner: Arc<Inner>,
    process: Process,
    instance: Arc<Instance>,
    log: InstanceLog,
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
        process,
        instance,
        log,
        exit,
        scratch,
        tail,
        pumps,
        memory_limit,
    } = s;
    let status = process.wait().await;
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
    // Cleaned up before the exit is announced: shutdown waits for that announcement, and
    // anything left after it would outlive Skyport.
    if let Some(cgroup) = &instance.cgroup {
        remove_cgroup(cgroup).await;
    }
    leftovers::forget(&inner.config.state_dir, instance.id.as_str());
    if let Err(e) = tokio::fs::remove_dir_all(&scratch).await {
        tracing::debug!(path = %scratch.display(), "cannot remove instance scratch dir: {e}");
    }
    exit.send_replace(Some(ended));
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
