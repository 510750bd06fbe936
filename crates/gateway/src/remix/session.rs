//! Client sessions of remixes, in memory: per session, the gateway session opened on each
//! source and the composed lists last answered (so that a call finds its source without
//! asking every source again); and, for every remix, what each source last listed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::Value;
use skyport_store::{CapabilityKind, PrincipalId, ServerId};
use tokio::sync::OnceCell;

use super::compose::Composed;

/// The open remix sessions, by the id clients hold.
pub(crate) struct RemixSessions {
    sessions: Mutex<HashMap<String, Arc<RemixSession>>>,
    /// How long an unused session is kept.
    ttl: Duration,
    /// The last list of each kind each source of each remix answered (remix, source, kind),
    /// so that a source that is down still counts for collisions.
    known: Mutex<HashMap<(ServerId, ServerId, CapabilityKind), Vec<Value>>>,
}

/// One client's session of a remix.
pub(crate) struct RemixSession {
    /// The id the client holds (128 random bits, hex).
    pub(crate) id: String,
    /// The remix.
    pub(crate) remix: ServerId,
    /// Who opened it; only they may use it.
    pub(crate) principal: Option<PrincipalId>,
    /// The client's `initialize`, sent to each source to open the session there.
    pub(crate) initialize: Bytes,
    /// The session on each source, by source id, opened once.
    links: Mutex<HashMap<ServerId, Arc<OnceCell<Link>>>>,
    /// The lists last composed, by kind.
    composed: Mutex<HashMap<CapabilityKind, Arc<Composed>>>,
    used: Mutex<Instant>,
}

/// A source's gateway session, as a remix session holds it.
#[derive(Clone, Debug)]
pub(crate) struct Link {
    /// The gateway session id on the source (`Mcp-Session-Id` of `/servers/{source}/mcp`).
    pub(crate) session: http::HeaderValue,
    /// The protocol revision the source chose.
    pub(crate) version: Option<http::HeaderValue>,
    /// What the source offers.
    pub(crate) capabilities: Value,
}

impl RemixSessions {
    /// No sessions; unused ones are forgotten after `ttl`.
    pub(crate) fn new(ttl: Duration) -> RemixSessions {
        RemixSessions {
            sessions: Mutex::default(),
            ttl,
            known: Mutex::default(),
        }
    }

    /// Keeps what `source` of `remix` listed of `kind`.
    pub(crate) fn remember(
        &self,
        remix: &ServerId,
        source: &ServerId,
        kind: CapabilityKind,
        items: &[Value],
    ) {
        let key = (remix.clone(), source.clone(), kind);
        self.known.lock().insert(key, items.to_vec());
    }

    /// What `source` of `remix` last listed of `kind`, if it ever answered.
    pub(crate) fn known(
        &self,
        remix: &ServerId,
        source: &ServerId,
        kind: CapabilityKind,
    ) -> Option<Vec<Value>> {
        let key = (remix.clone(), source.clone(), kind);
        self.known.lock().get(&key).cloned()
    }

    /// Opens a session of `remix` for `principal`, which `initialize` opened.
    pub(crate) fn open(
        &self,
        remix: ServerId,
        principal: Option<PrincipalId>,
        initialize: Bytes,
    ) -> Arc<RemixSession> {
        let session = Arc::new(RemixSession {
            id: hex::encode(rand::random::<[u8; 16]>()),
            remix,
            principal,
            initialize: Bytes::copy_from_slice(&initialize),
            links: Mutex::default(),
            composed: Mutex::default(),
            used: Mutex::new(Instant::now()),
        });
        let mut sessions = self.sessions.lock();
        // Opening is rare next to using: forgetting expired sessions here bounds the table
        // without a task of its own.
        sessions.retain(|_, s| s.used.lock().elapsed() < self.ttl);
        sessions.insert(session.id.clone(), session.clone());
        session
    }

    /// The session `id`, if it is open.
    pub(crate) fn find(&self, id: &str) -> Option<Arc<RemixSession>> {
        let sessions = self.sessions.lock();
        sessions
            .get(id)
            .filter(|s| s.used.lock().elapsed() < self.ttl)
            .cloned()
    }

    /// Forgets session `id`.
    pub(crate) fn close(&self, id: &str) {
        self.sessions.lock().remove(id);
    }
}

impl RemixSession {
    /// Notes a use (sessions unused for the time to live are gone).
    pub(crate) fn touch(&self) {
        *self.used.lock() = Instant::now();
    }

    /// The cell holding the session on source `source`.
    pub(crate) fn link(&self, source: &ServerId) -> Arc<OnceCell<Link>> {
        self.links.lock().entry(source.clone()).or_default().clone()
    }

    /// Whether a session on `source` is open.
    pub(crate) fn is_linked(&self, source: &ServerId) -> bool {
        self.links
            .lock()
            .get(source)
            .is_some_and(|cell| cell.initialized())
    }

    /// Forgets the session on `source` (it ended there), so the next use opens another.
    pub(crate) fn unlink(&self, source: &ServerId) -> Option<Link> {
        let cell = self.links.lock().remove(source)?;
        cell.get().cloned()
    }

    /// Keeps the list of `kind` just composed.
    pub(crate) fn remember(&self, kind: CapabilityKind, composed: Arc<Composed>) {
        self.composed.lock().insert(kind, composed);
    }

    /// The list of `kind` last composed on this session.
    pub(crate) fn composed(&self, kind: CapabilityKind) -> Option<Arc<Composed>> {
        self.composed.lock().get(&kind).cloned()
    }
}
