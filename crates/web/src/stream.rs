//! Live logs as Server-Sent Events: every stored line after a cursor, then new ones as they
//! are appended; for one deployment's build log, its status changes and a final `end` event.
//!
//! Lines are read from the store, never from a build's memory, so a stream shows exactly what
//! `skyport logs` shows and resumes from any cursor (`Last-Event-ID`). It wakes on the store's
//! "appended" signal and the builder's "settled" signal, and polls as a fallback because lines
//! written by another process sharing the database do not signal.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt, stream};
use skyport_api::{DeploymentView, events};
use skyport_store::{BuildPhase, DeploymentId, DeploymentStatus, LogQuery, Store, StoreError};

use crate::{AppState, views};

/// Lines read from the store at a time.
const PAGE: u32 = 1_000;
/// How often a stream looks for news when nothing signalled it.
const FALLBACK_POLL: Duration = Duration::from_secs(1);
/// Comment lines keep idle connections (and proxies) from timing out.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Where a stream starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    /// After this cursor (`after`, or a reconnecting client's `Last-Event-ID`).
    After(i64),
    /// With the last `n` lines.
    Tail(u32),
}

/// Streams the lines matching `query`; with `build`, also that deployment's changes, ending
/// once its build is over.
pub(crate) fn logs(
    state: AppState,
    query: LogQuery,
    from: Start,
    build: Option<DeploymentId>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let tail = Tail {
        state,
        query,
        from: Some(from),
        cursor: 0,
        build: build.map(|id| Build { id, shown: None }),
        over: false,
    };
    let events =
        stream::unfold(tail, Tail::next).flat_map(|batch| stream::iter(batch.into_iter().map(Ok)));
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

struct Tail {
    state: AppState,
    query: LogQuery,
    /// Where to start; taken by the first read.
    from: Option<Start>,
    cursor: i64,
    build: Option<Build>,
    /// The `end` event was sent.
    over: bool,
}

/// The deployment whose build a stream follows.
struct Build {
    id: DeploymentId,
    /// What the last `deployment` event said.
    shown: Option<(DeploymentStatus, Option<BuildPhase>, bool)>,
}

impl Tail {
    /// The next non-empty batch of events, waiting for one; `None` ends the stream.
    async fn next(mut self) -> Option<(Vec<Event>, Tail)> {
        if self.over {
            return None;
        }
        loop {
            // The wake-ups are registered before reading, so that news arriving during the
            // read is not missed.
            let (store, builder) = (self.state.store.clone(), self.state.builder.clone());
            let logs = store.logs();
            let appended = logs.appended();
            let settled = builder.settled();
            let (events, more) = match self.read().await {
                Ok(read) => read,
                Err(e) => {
                    tracing::warn!(error = %e, "a log stream stopped: the store failed");
                    return None;
                }
            };
            if !events.is_empty() {
                return Some((events, self));
            }
            if self.over {
                return None;
            }
            if more {
                continue;
            }
            tokio::select! {
                () = appended => {}
                () = settled => {}
                () = tokio::time::sleep(FALLBACK_POLL) => {}
            }
        }
    }

    /// Reads what is new: the deployment's change, lines, and the end. Returns whether more
    /// lines are waiting than one page held.
    async fn read(&mut self) -> Result<(Vec<Event>, bool), StoreError> {
        let store = &self.state.store;
        let mut out = Vec::new();
        // The deployment is read before the lines: once it is over, its build log is complete
        // (builds flush their log before recording their end), so the lines read next are all.
        let mut over = None;
        if let Some(build) = &mut self.build {
            let Some(view) = deployment(store, &build.id).await? else {
                self.over = true;
                return Ok((out, false));
            };
            let shown = (view.status, view.phase, view.live);
            if build.shown != Some(shown) {
                build.shown = Some(shown);
                out.extend(json_event(events::DEPLOYMENT, &view));
            }
            let finished = view.status == DeploymentStatus::Failed
                || (view.status == DeploymentStatus::Ready
                    && !self.state.builder.is_active(&view.id));
            if finished {
                over = Some(view);
            }
        }
        let logs = store.logs();
        let lines = match self.from.take() {
            Some(Start::After(after)) => logs.after(&self.query, after, PAGE).await?,
            Some(Start::Tail(0)) => {
                // Only the position of the last line is wanted.
                self.cursor = logs.tail(&self.query, 1).await?.last().map_or(0, |l| l.id);
                Vec::new()
            }
            Some(Start::Tail(n)) => logs.tail(&self.query, n.min(PAGE)).await?,
            None => logs.after(&self.query, self.cursor, PAGE).await?,
        };
        let more = lines.len() >= PAGE as usize;
        for line in lines {
            self.cursor = line.id;
            let id = line.id.to_string();
            if let Some(event) = json_event_of(Event::default().id(id), &views::log_line(line)) {
                out.push(event);
            }
        }
        if let Some(view) = over
            && !more
        {
            out.extend(json_event(events::END, &view));
            self.over = true;
        }
        Ok((out, more))
    }
}

async fn deployment(
    store: &Store,
    id: &DeploymentId,
) -> Result<Option<DeploymentView>, StoreError> {
    let Some(deployment) = store.deployments().get(id).await? else {
        return Ok(None);
    };
    let Some(server) = store.servers().by_id(&deployment.server_id).await? else {
        return Ok(None);
    };
    Ok(Some(views::deployment(deployment, &server)))
}

fn json_event(name: &str, data: &impl serde::Serialize) -> Option<Event> {
    json_event_of(Event::default().event(name), data)
}

fn json_event_of(event: Event, data: &impl serde::Serialize) -> Option<Event> {
    match event.json_data(data) {
        Ok(event) => Some(event),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise a log stream event");
            None
        }
    }
}
