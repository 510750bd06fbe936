//! Following sources without webhooks: servers with a polling interval have their tracked
//! branch checked with `git ls-remote` every interval, and a commit not built yet starts a
//! production build; previews past their lifetime are removed.
//!
//! One check at a time per server, a few servers at once, none after `stop`: checks in
//! progress are aborted at shutdown (their git processes die with them, `kill_on_drop`).
//! Among replicas sharing a database, only the one holding the store's `sources` claim polls
//! and sweeps, so that a new commit is built once; another takes over when it goes away.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use skyport_store::{Server, ServerId, Timestamp};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::git::{self, GitRef, GitUrl};
use crate::{Builder, Reaction, SourceEvent};

/// How often the list of polling servers is read and expired previews are looked for.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Servers checked at once.
const CONCURRENT_CHECKS: usize = 4;

/// Polls the sources of servers that ask for it and removes expired previews, every
/// `tick` (use [`SWEEP_INTERVAL`]), until `stop`.
pub async fn follow_sources(builder: Builder, tick: Duration, stop: CancellationToken) {
    let mut polls = Polls::default();
    let mut checks: JoinSet<(ServerId, Option<String>)> = JoinSet::new();
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut claim = builder.inner.store.claim("sources");
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticker.tick() => {
                if claim.held().await {
                    sweep_expired(&builder).await;
                    polls.start_due(&builder, &mut checks).await;
                }
            }
            Some(done) = checks.join_next(), if !checks.is_empty() => {
                if let Ok((server, head)) = done {
                    polls.checked(&builder, &server, head).await;
                }
            }
        }
    }
    checks.shutdown().await;
}

/// What the poller remembers between checks.
#[derive(Default)]
struct Polls {
    /// When each server is next due.
    due: HashMap<ServerId, Instant>,
    /// Servers with a check running.
    running: HashSet<ServerId>,
    /// The newest commit seen per server, so a commit is built once however often it is seen.
    seen: HashMap<ServerId, String>,
}

impl Polls {
    async fn start_due(
        &mut self,
        builder: &Builder,
        checks: &mut JoinSet<(ServerId, Option<String>)>,
    ) {
        let servers = match builder.inner.store.servers().polling().await {
            Ok(servers) => servers,
            Err(e) => {
                tracing::warn!("cannot read the servers to poll: {e}");
                return;
            }
        };
        let now = Instant::now();
        let polling: HashSet<&ServerId> = servers.iter().map(|s| &s.id).collect();
        self.due.retain(|id, _| polling.contains(id));
        for server in &servers {
            let Some(interval) = server.source.poll_interval else {
                continue;
            };
            let due = *self.due.entry(server.id.clone()).or_insert(now);
            if due > now
                || self.running.contains(&server.id)
                || self.running.len() >= CONCURRENT_CHECKS
            {
                continue;
            }
            self.due.insert(server.id.clone(), now + interval);
            let Some(check) = check(builder, server) else {
                continue;
            };
            self.running.insert(server.id.clone());
            checks.spawn(check);
        }
    }

    /// Builds the head `head` of the server's tracked branch if it is new.
    async fn checked(&mut self, builder: &Builder, id: &ServerId, head: Option<String>) {
        self.running.remove(id);
        let Some(head) = head else { return };
        if self.seen.get(id) == Some(&head) {
            return;
        }
        let store = &builder.inner.store;
        let server = match store.servers().by_id(id).await {
            Ok(Some(server)) => server,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("cannot read a polled server: {e}");
                return;
            }
        };
        match store.deployments().has_commit(id, &head).await {
            Ok(true) => {}
            Ok(false) => {
                let event = SourceEvent::Pushed {
                    branch: server.source.branch.clone(),
                    sha: head.clone(),
                };
                match builder.react(&server, event).await {
                    Ok(Reaction::Production(d)) => tracing::info!(
                        server = %server.name, deployment = %d, commit = %head,
                        "new commit found by polling; building it"
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(server = %server.name, "cannot build a polled commit: {e}");
                    }
                }
            }
            Err(e) => {
                tracing::warn!("cannot look up a polled commit: {e}");
                return;
            }
        }
        self.seen.insert(id.clone(), head);
    }
}

/// The check of `server`'s tracked branch: its head commit, or `None` when it cannot be read
/// (logged). `None` when the stored source does not parse (logged once per check).
fn check(
    builder: &Builder,
    server: &Server,
) -> Option<impl Future<Output = (ServerId, Option<String>)> + Send + 'static> {
    let parsed = server
        .source
        .url
        .as_deref()
        .map(str::parse::<GitUrl>)
        .transpose()
        .and_then(|url| Ok((url, server.source.branch.parse::<GitRef>()?)));
    let (url, branch) = match parsed {
        Ok((Some(url), branch)) => (url, branch),
        Ok((None, _)) => return None,
        Err(e) => {
            tracing::warn!(server = %server.name, "cannot poll the source: {e}");
            return None;
        }
    };
    let workdir = builder.inner.dirs.git.clone();
    let (id, name) = (server.id.clone(), server.name.clone());
    Some(async move {
        if let Err(e) = tokio::fs::create_dir_all(&workdir).await {
            tracing::warn!(server = %name, "cannot create {}: {e}", workdir.display());
            return (id, None);
        }
        match git::remote_head(&url, &branch, &workdir).await {
            Ok(Some(head)) => (id, Some(head)),
            Ok(None) => {
                tracing::warn!(server = %name, "{url} has no branch {branch} to poll");
                (id, None)
            }
            Err(e) => {
                tracing::warn!(server = %name, "cannot poll {url}: {e}");
                (id, None)
            }
        }
    })
}

/// Removes previews past their lifetime (their builds cancelled first).
async fn sweep_expired(builder: &Builder) {
    let servers = builder.inner.store.servers();
    let expired = match servers.expired_previews(Timestamp::now()).await {
        Ok(expired) => expired,
        Err(e) => {
            tracing::warn!("cannot look for expired previews: {e}");
            return;
        }
    };
    for preview in expired {
        builder.remove_server_builds(&preview).await;
        match servers.remove(&preview.name).await {
            Ok(_) => tracing::info!(preview = %preview.name, "preview expired; removed"),
            Err(e) => {
                tracing::warn!(preview = %preview.name, "cannot remove an expired preview: {e}")
            }
        }
    }
}
