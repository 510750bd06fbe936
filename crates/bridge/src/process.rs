//! One stdio server process: messages go to its stdin one per line, and every line it prints
//! on stdout is routed — a response to the request waiting for it, a message of its own (a
//! notification, or a request such as sampling) to the client's open streams. Its stderr is
//! the bridge's, which the runtime stores as the instance's log. It must not decide sessions
//! or HTTP answers (`lib.rs` does).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot};

use crate::envelope::{Envelope, Kind, error_response};

/// Messages of the server's own kept while no client stream is open; older ones are dropped
/// past this (a client that never opens a stream must not grow the bridge without bound).
const BACKLOG: usize = 256;
/// How long an exited server's process gets to report its status once its stdout closed.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// The command of the stdio server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

/// What the server sent toward one waiting request.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// The answer: the last thing a request receives.
    Response(Bytes),
    /// A message of the server's own, sent while the request waited.
    Message(Bytes),
    /// The process ended before answering; how, for the client.
    Exited(String),
}

/// A running stdio server.
pub(crate) struct Process {
    /// When a client last used it, for choosing which idle session to end at the limit.
    last_used: Mutex<Instant>,
    stdin: tokio::sync::Mutex<ChildStdin>,
    routing: Mutex<Routing>,
    kill: Mutex<Option<oneshot::Sender<()>>>,
}

/// Where the server's output goes.
struct Routing {
    /// Requests waiting for their answer, by the id's JSON text.
    pending: HashMap<Box<str>, mpsc::UnboundedSender<Outbound>>,
    /// The request registered last: the server's own messages go to its stream first.
    newest: Option<Box<str>>,
    /// The client's `GET` stream, if one is open.
    stream: Option<mpsc::UnboundedSender<Bytes>>,
    /// The server's messages waiting for a stream.
    backlog: VecDeque<Bytes>,
    /// Whether the server's own messages reach a client at all (not for the process shared by
    /// stateless requests, which have no stream to carry them).
    relay: bool,
    /// How the process ended, once it has.
    exit: Option<String>,
}

impl Process {
    /// Starts `command` with stdin and stdout piped; `relay` says whether the server's own
    /// messages are passed to clients (else its requests are answered with an error).
    pub(crate) fn spawn(command: &Command, relay: bool) -> std::io::Result<Arc<Process>> {
        #[allow(clippy::disallowed_methods)] // the stdio server is the instance's own child
        let mut child = tokio::process::Command::new(&command.program);
        child
            .args(&command.args)
            // The listening socket is the bridge's; the server must not see it.
            .env_remove("SKYPORT_LISTEN_FD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = child.spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(std::io::Error::other("the server's pipes were not created"));
        };
        let (kill, killed) = oneshot::channel();
        let process = Arc::new(Process {
            last_used: Mutex::new(Instant::now()),
            stdin: tokio::sync::Mutex::new(stdin),
            routing: Mutex::new(Routing {
                pending: HashMap::new(),
                newest: None,
                stream: None,
                backlog: VecDeque::new(),
                relay,
                exit: None,
            }),
            kill: Mutex::new(Some(kill)),
        });
        tokio::spawn(read_output(process.clone(), child, stdout, killed));
        Ok(process)
    }

    /// Records a client's use.
    pub(crate) fn touch(&self) {
        *self.last_used.lock() = Instant::now();
    }

    /// When a client last used it.
    pub(crate) fn last_used(&self) -> Instant {
        *self.last_used.lock()
    }

    /// Whether a request is waiting for its answer.
    pub(crate) fn busy(&self) -> bool {
        !self.routing.lock().pending.is_empty()
    }

    /// How the process ended, if it has.
    pub(crate) fn exit(&self) -> Option<String> {
        self.routing.lock().exit.clone()
    }

    /// Stops the process (the session ended).
    pub(crate) fn kill(&self) {
        if let Some(kill) = self.kill.lock().take() {
            let _ = kill.send(());
        }
    }

    /// Sends the request `line` whose id is `id` (JSON text) and returns where its answer
    /// arrives; dropping the [`Pending`] forgets the request.
    pub(crate) async fn request(
        self: &Arc<Process>,
        id: &str,
        line: &[u8],
    ) -> Result<Pending, String> {
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut routing = self.routing.lock();
            if let Some(exit) = &routing.exit {
                return Err(exit.clone());
            }
            routing.pending.insert(id.into(), tx);
            routing.newest = Some(id.into());
        }
        let pending = Pending {
            process: self.clone(),
            id: id.into(),
            rx,
        };
        self.send(line).await?;
        Ok(pending)
    }

    /// Writes one message (a notification, or a response to the server's request).
    pub(crate) async fn send(&self, line: &[u8]) -> Result<(), String> {
        // JSON allows raw line breaks only as whitespace between tokens, and stdio framing
        // forbids them: blanking them keeps the message the same.
        let mut framed = Vec::with_capacity(line.len() + 1);
        framed.extend(
            line.iter()
                .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }),
        );
        framed.push(b'\n');
        let mut stdin = self.stdin.lock().await;
        let written = match stdin.write_all(&framed).await {
            Ok(()) => stdin.flush().await,
            Err(e) => Err(e),
        };
        written.map_err(|e| {
            self.exit()
                .unwrap_or_else(|| format!("its standard input is closed ({e})"))
        })
    }

    /// Opens the client's stream of the server's own messages (replacing an older one),
    /// starting with those that waited for it.
    pub(crate) fn open_stream(&self) -> mpsc::UnboundedReceiver<Bytes> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut routing = self.routing.lock();
        for message in routing.backlog.drain(..) {
            let _ = tx.send(message);
        }
        if routing.exit.is_none() {
            routing.stream = Some(tx);
        }
        rx
    }

    /// Routes one line the server printed.
    fn dispatch(self: &Arc<Process>, line: String) {
        let Ok(envelope) = Envelope::parse(&line) else {
            tracing::warn!(
                "the server printed a line that is not a JSON-RPC message on stdout (ignored; log to stderr instead): {}",
                shorten(&line)
            );
            return;
        };
        let kind = envelope.kind();
        let id = envelope.id_text().to_owned();
        let mut routing = self.routing.lock();
        match kind {
            Some(Kind::Response) => match routing.pending.remove(id.as_str()) {
                Some(waiter) => {
                    let _ = waiter.send(Outbound::Response(Bytes::from(line)));
                }
                None => tracing::debug!(id, "a response to no waiting request (ignored)"),
            },
            Some(Kind::Request) if !routing.relay => {
                drop(routing);
                let refusal = error_response(
                    &id,
                    -32601,
                    "this request cannot reach the client: stateless (2026-07-28) requests have no stream to carry it",
                );
                let process = self.clone();
                tokio::spawn(async move {
                    let _ = process.send(refusal.as_bytes()).await;
                });
            }
            Some(Kind::Request | Kind::Notification) if routing.relay => {
                routing.relay_message(Bytes::from(line));
            }
            _ => {}
        }
    }

    /// Records how the process ended and tells everyone waiting on it.
    fn end(&self, how: String) {
        let mut routing = self.routing.lock();
        for (_, waiter) in routing.pending.drain() {
            let _ = waiter.send(Outbound::Exited(how.clone()));
        }
        routing.stream = None;
        routing.exit = Some(how);
    }
}

impl Routing {
    /// The server's own message goes to the newest waiting request's stream (it most likely
    /// concerns that request: progress, logging, sampling), else to the `GET` stream, else
    /// waits for one.
    fn relay_message(&mut self, message: Bytes) {
        let newest = self
            .newest
            .as_deref()
            .and_then(|id| self.pending.get(id))
            .or_else(|| self.pending.values().next());
        if let Some(waiter) = newest
            && waiter.send(Outbound::Message(message.clone())).is_ok()
        {
            return;
        }
        if let Some(stream) = &self.stream {
            if stream.send(message.clone()).is_ok() {
                return;
            }
            self.stream = None;
        }
        if self.backlog.len() == BACKLOG {
            self.backlog.pop_front();
        }
        self.backlog.push_back(message);
    }
}

/// A request waiting for its answer.
pub(crate) struct Pending {
    process: Arc<Process>,
    id: Box<str>,
    rx: mpsc::UnboundedReceiver<Outbound>,
}

impl Pending {
    /// The next thing the server sent toward this request; `None` once its answer came.
    pub(crate) async fn next(&mut self) -> Option<Outbound> {
        self.rx.recv().await
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut routing = self.process.routing.lock();
        routing.pending.remove(&self.id);
        if routing.newest.as_deref() == Some(&*self.id) {
            routing.newest = None;
        }
    }
}

/// Reads the server's stdout until it closes (or the session ends), then records the exit.
async fn read_output(
    process: Arc<Process>,
    mut child: Child,
    stdout: ChildStdout,
    mut killed: oneshot::Receiver<()>,
) {
    let mut lines = BufReader::new(stdout).lines();
    let stopped = loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) if line.trim().is_empty() => {}
                Ok(Some(line)) => process.dispatch(line),
                Ok(None) => break false,
                Err(e) => {
                    tracing::warn!("cannot read the server's output: {e}");
                    break false;
                }
            },
            _ = &mut killed => break true,
        }
    };
    if stopped {
        let _ = child.start_kill();
    }
    let status = match tokio::time::timeout(EXIT_WAIT, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            // Its stdout closed but it lives on: a server that stopped talking is done.
            let _ = child.start_kill();
            child.wait().await
        }
    };
    let how = describe(status);
    if stopped {
        tracing::debug!("the session's server process stopped ({how})");
    } else {
        tracing::warn!("the stdio server exited ({how})");
    }
    process.end(if stopped {
        format!("the session was closed ({how})")
    } else {
        format!("the stdio server exited ({how})")
    });
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            _ => s.to_string(),
        },
        Err(e) => format!("status unknown: {e}"),
    }
}

/// The start of a long line, for a log message.
fn shorten(line: &str) -> &str {
    let end = line
        .char_indices()
        .nth(200)
        .map_or(line.len(), |(at, _)| at);
    &line[..end]
}
