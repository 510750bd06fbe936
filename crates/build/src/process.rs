//! Running the build's child processes (uv, pip, the launcher) with their output streamed into
//! the deployment's build log as it arrives, a deadline, and a kept tail of standard error for
//! failure messages. This module decides nothing about what a failure means: callers classify.

use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use std::sync::{Arc, Mutex};

use skyport_leftovers::Records;
use skyport_store::{
    BuildPhase, DeploymentId, LogSource, LogStream, LogWriter, NewLogLine, Redactor, ServerId,
    Timestamp,
};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Longest line kept in memory before it is logged in pieces; a child that prints megabytes
/// without a newline must not make the build buffer them all.
const MAX_PENDING_LINE: usize = 64 * 1024;

/// The build log of one deployment: every message of the job goes through here.
#[derive(Clone)]
pub(crate) struct BuildLog {
    writer: LogWriter,
    server_id: ServerId,
    deployment_id: DeploymentId,
    /// The phase running now; every line is tagged with it.
    phase: Arc<Mutex<Option<BuildPhase>>>,
    /// Replaces the deployment's secret values in every line before it is stored.
    redactor: Arc<Redactor>,
}

impl BuildLog {
    pub(crate) fn new(writer: LogWriter, server_id: ServerId, deployment_id: DeploymentId) -> Self {
        BuildLog {
            writer,
            server_id,
            deployment_id,
            phase: Arc::default(),
            redactor: Arc::default(),
        }
    }

    /// This log, with `redactor` applied to every line.
    pub(crate) fn redacting(self, redactor: Redactor) -> Self {
        BuildLog {
            redactor: Arc::new(redactor),
            ..self
        }
    }

    /// `text` with the deployment's secret values replaced, for messages that leave the log
    /// (the recorded failure).
    pub(crate) fn redact(&self, text: &str) -> String {
        self.redactor.apply(text).into_owned()
    }

    /// Tags the lines that follow with `phase`.
    pub(crate) fn enter(&self, phase: BuildPhase) {
        *self
            .phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(phase);
    }

    /// Skyport's own message; multi-line text becomes one log line per line.
    pub(crate) fn info(&self, text: &str) {
        for line in text.lines() {
            self.line(LogStream::Skyport, line.to_owned());
        }
    }

    pub(crate) fn line(&self, stream: LogStream, line: String) {
        self.writer.write(NewLogLine {
            server_id: self.server_id.clone(),
            deployment_id: Some(self.deployment_id.clone()),
            instance_id: None,
            source: LogSource::Build,
            stream,
            phase: *self
                .phase
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            at: Timestamp::now(),
            line: self.redactor.apply(&line).into_owned(),
        });
    }

    /// Waits until everything logged so far is stored.
    pub(crate) async fn flush(&self) {
        self.writer.flush().await;
    }
}

/// How a child process ended.
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    /// The last lines of its standard error, oldest first.
    pub(crate) stderr_tail: Vec<String>,
}

impl Finished {
    pub(crate) fn stderr_tail_text(&self) -> String {
        self.stderr_tail.join("\n")
    }

    /// "exit code 1" or "killed by signal 9", for messages.
    pub(crate) fn exit(&self) -> String {
        match self.status.code() {
            Some(code) => format!("exit code {code}"),
            None => {
                #[cfg(unix)]
                {
                    use std::os::unix::process::ExitStatusExt;
                    if let Some(signal) = self.status.signal() {
                        return format!("killed by signal {signal}");
                    }
                }
                self.status.to_string()
            }
        }
    }
}

/// Why a child process did not finish.
#[derive(Debug)]
pub(crate) enum RunError {
    /// It could not be started (not found, not executable).
    Spawn(std::io::Error),
    /// Waiting for it failed.
    Wait(std::io::Error),
    /// It ran past its deadline and was killed.
    Timeout,
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Spawn(e) => write!(f, "cannot start it: {e}"),
            RunError::Wait(e) => write!(f, "lost track of it: {e}"),
            RunError::Timeout => f.write_str("it did not finish in time"),
        }
    }
}

/// A command for `program`: the one place this crate creates processes, which clippy's
/// `disallowed-methods` permits only in the build and runtime crates.
/// Each child leads its own process group, so that [`GroupGuard`] can stop what it started.
#[allow(clippy::disallowed_methods)] // the build is one of the two crates that spawn
pub(crate) fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    command.process_group(0);
    command
}

tokio::task_local! {
    /// Where the build running on this task records the process groups it starts. Neither
    /// `kill_on_drop` nor [`GroupGuard`] runs when Skyport is killed with `-9`, and a build's
    /// children have no parent-death signal (only the runtime sets one), so the next start of
    /// Skyport ends what the records name ([`crate::Builder::clean_up_interrupted_builds`]).
    /// A task-local rather than a parameter: it reaches every child of a build (uv, git, the
    /// inspection, npm) through one guard, whatever the call path. Children started outside
    /// a build (source polling's quick `git ls-remote`) are not recorded.
    pub(crate) static GROUPS: Arc<Records>;
}

/// Runs `work` with its children's process groups recorded in `records` (see [`GROUPS`]).
pub(crate) async fn recording<F: std::future::Future>(records: Arc<Records>, work: F) -> F::Output {
    GROUPS.scope(records, work).await
}

/// Kills a child's whole process group when dropped before [`GroupGuard::disarm`]: uv and git
/// start helpers of their own (`git-remote-http`, build backends) that a cancelled or timed-out
/// build must not leave running, and `kill_on_drop` reaches only the child itself. Inside a
/// build ([`recording`]) the group is also recorded on disk until it ends, for the case where
/// this guard never runs.
pub(crate) struct GroupGuard {
    /// The leader's pid (the group's id); None once disarmed.
    leader: Option<u32>,
    records: Option<Arc<Records>>,
}

impl GroupGuard {
    /// Guards the group that `child` leads (see [`command`]).
    pub(crate) fn new(child: &tokio::process::Child) -> GroupGuard {
        let leader = child.id();
        let records = GROUPS.try_with(Arc::clone).ok();
        if let (Some(records), Some(leader)) = (&records, leader) {
            // Without the record the build still works; only a kill -9 would leave it behind.
            if let Err(e) = records.save(leader) {
                tracing::warn!("cannot record a build process: {e}");
            }
        }
        GroupGuard { leader, records }
    }

    /// The child finished on its own: leave its group alone.
    pub(crate) fn disarm(mut self) {
        if let (Some(records), Some(leader)) = (&self.records, self.leader.take()) {
            records.forget(leader);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let Some(leader) = self.leader else {
            return;
        };
        if let Some(group) = i32::try_from(leader)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            // ESRCH (the group is already gone) is the usual outcome and not an error.
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        if let Some(records) = &self.records {
            records.forget(leader);
        }
    }
}

/// Runs `command` to completion, logging its output line by line, killing it after `limit`.
/// Keeps the last `tail` lines of standard error for the caller's failure message.
pub(crate) async fn run_logged(
    mut command: Command,
    log: &BuildLog,
    limit: Duration,
    tail: usize,
) -> Result<Finished, RunError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A build that is dropped (timeout, shutdown) must not leave uv or Python running.
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(RunError::Spawn)?;
    let group = GroupGuard::new(&child);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let run = async {
        let (_, stderr_tail) = tokio::join!(
            pump(stdout, log, LogStream::Stdout, 0),
            pump(stderr, log, LogStream::Stderr, tail),
        );
        let status = child.wait().await.map_err(RunError::Wait)?;
        Ok(Finished {
            status,
            stderr_tail: stderr_tail.into(),
        })
    };
    match tokio::time::timeout(limit, run).await {
        Ok(finished) => {
            group.disarm();
            finished
        }
        // Dropping `run` drops the child, which kills it (kill_on_drop).
        Err(_) => Err(RunError::Timeout),
    }
}

/// Copies a child's stream into the log, one line at a time; returns its last `tail` lines.
async fn pump<R: AsyncRead + Unpin>(
    reader: Option<R>,
    log: &BuildLog,
    stream: LogStream,
    tail: usize,
) -> VecDeque<String> {
    let mut kept = VecDeque::with_capacity(tail);
    let Some(mut reader) = reader else {
        return kept;
    };
    let mut emit = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        let line = text.trim_end_matches(['\r', '\n']).to_owned();
        if tail > 0 {
            if kept.len() == tail {
                kept.pop_front();
            }
            kept.push_back(line.clone());
        }
        log.line(stream, line);
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let read = match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..read]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            emit(&pending[..end]);
            pending.drain(..=end);
        }
        if pending.len() > MAX_PENDING_LINE {
            emit(&pending);
            pending.clear();
        }
    }
    if !pending.is_empty() {
        emit(&pending);
    }
    kept
}

/// A command line as shown in the build log.
pub(crate) fn shown(program: &std::path::Path, args: &[&std::ffi::OsStr]) -> String {
    let mut text = format!("$ {}", program.display());
    for arg in args {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}
