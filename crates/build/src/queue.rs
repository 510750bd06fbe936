//! The build queue: at most `concurrency` builds run at once and the others wait in arrival
//! order. A newer build of the same server and branch supersedes one still waiting (only the
//! newest code is worth building), and any build can be cancelled, waiting or running.
//!
//! It owns which builds run and when; what a build does is `job::run`. Its lock is held only
//! to move entries, never across an await, and every record it writes goes through the store.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use skyport_store::{
    BuildFailure, Deployment, DeploymentId, DeploymentStatus, FailureKind, ServerId,
};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::process::BuildLog;
use crate::{BuildRequest, Inner, job};

/// What [`crate::Builder::cancel`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancellation {
    /// The build was stopped (or never started) and is recorded as cancelled.
    Cancelled,
    /// The build is not waiting or running here: it finished, or went live before it could be
    /// stopped.
    NotCancellable,
}

/// The builds waiting and running; one per builder.
pub(crate) struct Queue {
    state: Mutex<State>,
    concurrency: usize,
    /// Signalled whenever a build leaves the queue: finished, cancelled or superseded.
    pub(crate) settled: Notify,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Waiting>,
    running: HashMap<DeploymentId, Running>,
    /// Set when the builder drains: waiting builds are no longer started.
    closed: bool,
}

struct Waiting {
    deployment: Deployment,
    request: BuildRequest,
}

impl Waiting {
    /// Builds of one server and one git ref (uploads and the default branch share `None`)
    /// replace each other: the newer one is what the user wants served.
    fn branch(&self) -> (&ServerId, Option<&str>) {
        (
            &self.deployment.server_id,
            self.deployment.git_ref.as_deref(),
        )
    }
}

struct Running {
    stop: CancellationToken,
    /// Closed when the job has recorded its end.
    done: watch::Receiver<()>,
}

impl Queue {
    /// A queue running at most `concurrency` builds at once (at least one).
    pub(crate) fn new(concurrency: usize) -> Queue {
        Queue {
            state: Mutex::default(),
            concurrency: concurrency.max(1),
            settled: Notify::new(),
        }
    }

    /// The deployments waiting or running: the running ones first, then the queue in order.
    pub(crate) fn active(&self) -> Vec<DeploymentId> {
        let state = self.lock();
        let mut ids: Vec<DeploymentId> = state.running.keys().cloned().collect();
        ids.extend(state.waiting.iter().map(|w| w.deployment.id.clone()));
        ids
    }

    /// Whether the build of `id` is waiting or running.
    pub(crate) fn contains(&self, id: &DeploymentId) -> bool {
        let state = self.lock();
        state.running.contains_key(id) || state.waiting.iter().any(|w| &w.deployment.id == id)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement that holds the lock, so a panic
        // elsewhere cannot leave it half-changed.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Queues the build of `deployment` (already recorded as queued), starting it at once when a
/// slot is free, and records the waiting builds of the same branch it supersedes.
pub(crate) async fn submit(inner: &Arc<Inner>, deployment: Deployment, request: BuildRequest) {
    let id = deployment.id.clone();
    let entry = Waiting {
        deployment,
        request,
    };
    let superseded = {
        let mut state = inner.queue.lock();
        let (superseded, kept) = std::mem::take(&mut state.waiting)
            .into_iter()
            .partition::<Vec<_>, _>(|w| w.branch() == entry.branch());
        state.waiting = kept.into();
        if state.running.len() < inner.queue.concurrency {
            launch(inner, &mut state, entry);
        } else {
            state.waiting.push_back(entry);
        }
        superseded
    };
    for old in &superseded {
        let message = format!(
            "superseded by deployment {id} of the same server and branch before it started; nothing to do"
        );
        record_unstarted(inner, &old.deployment, FailureKind::Cancelled, &message).await;
    }
    if !superseded.is_empty() {
        inner.queue.settled.notify_waiters();
    }
}

/// Cancels the build of `id`: a waiting one is taken out of the queue, a running one is
/// stopped; either way it is recorded as cancelled before this returns.
pub(crate) async fn cancel(inner: &Arc<Inner>, id: &DeploymentId) -> Cancellation {
    enum Found {
        Waiting(Box<Waiting>),
        Running(watch::Receiver<()>),
        Nothing,
    }
    let found = {
        let mut state = inner.queue.lock();
        if let Some(at) = state.waiting.iter().position(|w| &w.deployment.id == id) {
            state
                .waiting
                .remove(at)
                .map_or(Found::Nothing, |w| Found::Waiting(Box::new(w)))
        } else if let Some(running) = state.running.get(id) {
            running.stop.cancel();
            Found::Running(running.done.clone())
        } else {
            Found::Nothing
        }
    };
    match found {
        Found::Waiting(waiting) => {
            let message = "cancelled by request before it started";
            record_unstarted(inner, &waiting.deployment, FailureKind::Cancelled, message).await;
            inner.queue.settled.notify_waiters();
            Cancellation::Cancelled
        }
        Found::Running(mut done) => {
            // Nothing is ever sent: `changed` returns once the job drops its sender.
            let _ = done.changed().await;
            // A build already going live is let finish, so the outcome decides the answer.
            match inner.store.deployments().get(id).await {
                Ok(Some(d))
                    if d.status == DeploymentStatus::Failed
                        && d.failure
                            .as_ref()
                            .is_some_and(|f| f.kind == FailureKind::Cancelled) =>
                {
                    Cancellation::Cancelled
                }
                _ => Cancellation::NotCancellable,
            }
        }
        Found::Nothing => Cancellation::NotCancellable,
    }
}

/// Stops starting waiting builds and records them as not built; running ones go on.
pub(crate) async fn close(inner: &Arc<Inner>) {
    let waiting = {
        let mut state = inner.queue.lock();
        state.closed = true;
        std::mem::take(&mut state.waiting)
    };
    for w in &waiting {
        let message = "Skyport stopped before this build started; deploy again";
        record_unstarted(inner, &w.deployment, FailureKind::Interrupted, message).await;
    }
    if !waiting.is_empty() {
        inner.queue.settled.notify_waiters();
    }
}

/// Starts the job of `entry` and marks it running; called with the lock held so that the
/// decision and the mark are one step.
fn launch(inner: &Arc<Inner>, state: &mut State, entry: Waiting) {
    let id = entry.deployment.id.clone();
    let stop = CancellationToken::new();
    let (done_tx, done) = watch::channel(());
    state.running.insert(
        id.clone(),
        Running {
            stop: stop.clone(),
            done,
        },
    );
    let inner = inner.clone();
    let jobs = inner.jobs.clone();
    jobs.spawn(async move {
        job::run(inner.clone(), entry.deployment, entry.request, stop).await;
        finished(&inner, &id);
        drop(done_tx);
    });
}

/// Frees the slot of `id` and starts the next waiting build.
fn finished(inner: &Arc<Inner>, id: &DeploymentId) {
    {
        let mut state = inner.queue.lock();
        state.running.remove(id);
        if !state.closed
            && state.running.len() < inner.queue.concurrency
            && let Some(next) = state.waiting.pop_front()
        {
            launch(inner, &mut state, next);
        }
    }
    inner.queue.settled.notify_waiters();
}

/// Records the end of a build that never started, its reason in its build log first (so a
/// client that sees it failed can read why).
async fn record_unstarted(
    inner: &Inner,
    deployment: &Deployment,
    kind: FailureKind,
    message: &str,
) {
    let log = BuildLog::new(
        inner.store.logs().writer(),
        deployment.server_id.clone(),
        deployment.id.clone(),
    );
    log.info(message);
    log.flush().await;
    let failure = BuildFailure {
        kind,
        message: message.to_owned(),
    };
    if let Err(e) = inner
        .store
        .deployments()
        .fail(&deployment.id, &failure)
        .await
    {
        tracing::error!(error = %e, deployment = %deployment.id, "cannot record a build that did not start");
    }
}
