//! Zygotes: per environment (identified by its Python), an interpreter that has imported the MCP
//! server stack once and forks instances on request (`zygote.py`), so a cold start skips
//! interpreter start-up and those imports. The first cold start of an environment spawns as
//! usual and, once that instance is ready, starts the zygote; later ones fork from it. A zygote that has no living
//! instances and forked nothing for [`IDLE`] is stopped.
//!
//! An instance forked by a zygote is the zygote's child, not Skyport's: the zygote reports its
//! pid and, later, its exit over the control socket. It dies with its zygote (parent-death
//! signal), and the zygote dies with Skyport, so the no-orphans rule holds.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::spawn::{LISTEN_FD, send_with_fds, seqpacket_pair, spawn_zygote};

/// The zygote program, run with `python -c`.
const SCRIPT: &str = include_str!("zygote.py");
/// How long a zygote may take to import the server stack.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fork may take to be acknowledged.
const FORK_TIMEOUT: Duration = Duration::from_secs(10);
/// A zygote with no instances is stopped after this long without a fork.
pub(crate) const IDLE: Duration = Duration::from_secs(600);

/// What a forked instance gets; the zygote's child sets itself up like a spawned instance.
pub(crate) struct ForkRequest<'a> {
    pub(crate) args: &'a [String],
    pub(crate) cwd: &'a Path,
    pub(crate) env: Vec<(String, String)>,
    /// `cgroup.procs` of its cgroup, or the address-space cap.
    pub(crate) cgroup_procs: Option<PathBuf>,
    pub(crate) address_space: Option<u64>,
    pub(crate) read_only: bool,
    /// Listening socket, stdout and stderr.
    pub(crate) fds: [OwnedFd; 3],
}

/// A forked instance: its pid and, when it ends, its exit code (negative: killed by signal).
pub(crate) struct Forked {
    pub(crate) pid: u32,
    pub(crate) exit: oneshot::Receiver<i32>,
}

/// The zygotes of this runtime, by environment Python.
pub(crate) struct Zygotes {
    path: Option<OsString>,
    scratch: PathBuf,
    entries: Mutex<HashMap<PathBuf, Entry>>,
}

enum Entry {
    Starting,
    Ready(Arc<Zygote>),
    /// This environment cannot fork safely (or its zygote failed to start): spawn instead.
    Unusable,
}

struct Zygote {
    control: UnixDatagram,
    child: Mutex<Option<Child>>,
    pid: Option<u32>,
    shared: Arc<Mutex<Replies>>,
    last_fork: Mutex<Instant>,
}

/// What the reader thread routes replies to.
#[derive(Default)]
struct Replies {
    /// Fork requests awaiting `started`/`failed`, by request id.
    starts: HashMap<u64, oneshot::Sender<Result<Forked, String>>>,
    /// Living instances awaiting `exit`, by pid.
    exits: HashMap<u32, oneshot::Sender<i32>>,
    next: u64,
    /// Set when the zygote's socket closed: it is gone with all its instances.
    closed: bool,
}

impl Zygotes {
    pub(crate) fn new(scratch: PathBuf, path: Option<OsString>) -> Zygotes {
        Zygotes {
            path,
            scratch,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Forks an instance from the zygote of `python` if one is ready; `None` when there is
    /// none (yet), and the caller spawns.
    pub(crate) async fn fork(
        &self,
        python: &Path,
        request: ForkRequest<'_>,
    ) -> Option<Result<Forked, String>> {
        let zygote = match self.entries.lock().get(python) {
            Some(Entry::Ready(z)) if !z.shared.lock().closed => z.clone(),
            _ => return None,
        };
        *zygote.last_fork.lock() = Instant::now();
        Some(zygote.fork(request).await)
    }

    /// Starts the zygote of `python` in the background unless it has one (or cannot have
    /// one). Called once a spawned instance is ready, so the zygote's imports do not compete
    /// with that first cold start for the processor.
    pub(crate) fn prepare(self: &Arc<Self>, python: &Path) {
        let mut entries = self.entries.lock();
        let replace = match entries.get(python) {
            None => true,
            Some(Entry::Ready(z)) => z.shared.lock().closed,
            Some(Entry::Starting | Entry::Unusable) => false,
        };
        if replace {
            entries.insert(python.to_path_buf(), Entry::Starting);
            let zygotes = self.clone();
            let python = python.to_path_buf();
            tokio::spawn(async move { zygotes.start(python).await });
        }
    }

    async fn start(&self, python: PathBuf) {
        let entry = match self.launch(&python).await {
            Ok(zygote) => {
                tracing::info!(python = %python.display(), pid = zygote.pid.unwrap_or_default(), "zygote ready: instances of this environment are now forked");
                Entry::Ready(Arc::new(zygote))
            }
            Err(why) => {
                tracing::warn!(python = %python.display(), "no zygote for this environment, instances are spawned: {why}");
                Entry::Unusable
            }
        };
        self.entries.lock().insert(python, entry);
    }

    async fn launch(&self, python: &Path) -> Result<Zygote, String> {
        let (ours, theirs) = seqpacket_pair().map_err(|e| format!("socketpair: {e}"))?;
        std::fs::create_dir_all(&self.scratch).map_err(|e| format!("{e}"))?;
        #[allow(clippy::disallowed_methods)] // the runtime is one of the two crates that spawn
        let mut command = Command::new(python);
        command
            .arg("-c")
            .arg(SCRIPT)
            .current_dir(&self.scratch)
            .env_clear()
            .env("HOME", &self.scratch)
            .env("TMPDIR", &self.scratch)
            .env("LANG", "C.UTF-8")
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("SKYPORT_ZYGOTE_FD", LISTEN_FD.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(path) = &self.path {
            command.env("PATH", path);
        }
        let child = spawn_zygote(command, &theirs).map_err(|e| format!("spawn: {e}"))?;
        drop(theirs);
        let control = UnixDatagram::from(ours);
        let reader = control.try_clone().map_err(|e| format!("{e}"))?;
        let shared = Arc::new(Mutex::new(Replies::default()));
        let (ready_tx, ready_rx) = oneshot::channel();
        let routes = shared.clone();
        std::thread::Builder::new()
            .name("skyport-zygote".to_owned())
            .spawn(move || read_replies(&reader, &routes, ready_tx))
            .map_err(|e| format!("thread: {e}"))?;
        let ready = tokio::time::timeout(READY_TIMEOUT, ready_rx).await;
        let pid = child.id();
        let zygote = Zygote {
            control,
            child: Mutex::new(Some(child)),
            pid,
            shared,
            last_fork: Mutex::new(Instant::now()),
        };
        match ready {
            Ok(Ok(Ok(()))) => Ok(zygote),
            Ok(Ok(Err(why))) => Err(why),
            Ok(Err(_)) => Err("it exited while importing".to_owned()),
            Err(_) => Err(format!(
                "it did not finish importing within {READY_TIMEOUT:?}"
            )),
        }
    }

    /// Stops zygotes that have no instances and forked nothing for [`IDLE`]; all of them
    /// when `all`.
    pub(crate) fn stop_idle(&self, all: bool) {
        let mut entries = self.entries.lock();
        entries.retain(|python, entry| {
            let Entry::Ready(zygote) = entry else {
                return true;
            };
            let replies = zygote.shared.lock();
            let idle = replies.exits.is_empty() && zygote.last_fork.lock().elapsed() >= IDLE;
            let stop = all || replies.closed || idle;
            drop(replies);
            if stop {
                tracing::info!(python = %python.display(), "stopping zygote");
                // Dropping the child kills it (kill_on_drop); tokio reaps it.
                zygote.child.lock().take();
            }
            !stop
        });
    }
}

impl Zygote {
    async fn fork(&self, request: ForkRequest<'_>) -> Result<Forked, String> {
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut replies = self.shared.lock();
            if replies.closed {
                return Err("the zygote exited".to_owned());
            }
            replies.next += 1;
            let id = replies.next;
            replies.starts.insert(id, tx);
            id
        };
        let message = encode(id, &request);
        let fds = request.fds.each_ref().map(AsRawFd::as_raw_fd);
        if let Err(e) = send_with_fds(self.control.as_fd(), &message, &fds) {
            self.shared.lock().starts.remove(&id);
            return Err(format!("cannot reach the zygote: {e}"));
        }
        // Our copies of the descriptors close here: the child holds its own.
        drop(request);
        match tokio::time::timeout(FORK_TIMEOUT, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the zygote exited".to_owned()),
            Err(_) => {
                self.shared.lock().starts.remove(&id);
                Err(format!("the zygote did not fork within {FORK_TIMEOUT:?}"))
            }
        }
    }
}

/// `start\0ID\0CWD\0PROCS\0RLIMIT\0READ_ONLY\0N\0ARGS…\0M\0K=V…`, as `zygote.py` reads it.
fn encode(id: u64, request: &ForkRequest<'_>) -> Vec<u8> {
    let cwd = request.cwd.display().to_string();
    let mut fields = vec![
        "start".to_owned(),
        id.to_string(),
        cwd.clone(),
        request
            .cgroup_procs
            .as_ref()
            .map_or_else(String::new, |p| p.display().to_string()),
        request
            .address_space
            .map_or_else(String::new, |b| b.to_string()),
        if request.read_only {
            cwd
        } else {
            String::new()
        },
        request.args.len().to_string(),
    ];
    fields.extend(request.args.iter().cloned());
    fields.push(request.env.len().to_string());
    fields.extend(request.env.iter().map(|(k, v)| format!("{k}={v}")));
    fields.join("\0").into_bytes()
}

/// The reader thread: routes the zygote's replies until its socket closes.
fn read_replies(
    control: &UnixDatagram,
    shared: &Mutex<Replies>,
    ready: oneshot::Sender<Result<(), String>>,
) {
    let mut ready = Some(ready);
    let mut buffer = vec![0_u8; 64 * 1024];
    loop {
        let n = match control.recv(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
        let mut words = text.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("ready"), _, _) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                }
            }
            (Some("unsafe"), _, _) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(text.clone()));
                }
            }
            (Some("started"), Some(id), Some(pid)) => {
                let (Ok(id), Ok(pid)) = (id.parse::<u64>(), pid.parse::<u32>()) else {
                    continue;
                };
                let (exit_tx, exit) = oneshot::channel();
                let mut replies = shared.lock();
                replies.exits.insert(pid, exit_tx);
                if let Some(start) = replies.starts.remove(&id) {
                    let _ = start.send(Ok(Forked { pid, exit }));
                }
            }
            (Some("failed"), Some(id), why) => {
                let start = id
                    .parse::<u64>()
                    .ok()
                    .and_then(|id| shared.lock().starts.remove(&id));
                if let Some(start) = start {
                    let _ = start.send(Err(why.unwrap_or("unknown").to_owned()));
                }
            }
            (Some("exit"), Some(pid), Some(code)) => {
                let (Ok(pid), Ok(code)) = (pid.parse::<u32>(), code.parse::<i32>()) else {
                    continue;
                };
                if let Some(exit) = shared.lock().exits.remove(&pid) {
                    let _ = exit.send(code);
                }
            }
            _ => tracing::debug!("unexpected message from a zygote: {text}"),
        }
    }
    // Gone: every waiter learns it from its dropped sender.
    let mut replies = shared.lock();
    replies.closed = true;
    replies.starts.clear();
    replies.exits.clear();
}
