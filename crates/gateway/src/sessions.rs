//! Client-facing session ids and what they map to upstream.
//!
//! Ids are 128 random bits: a session id is the only thing that ties a request to a
//! conversation, so it must not be guessable. The table is in memory; surviving restarts
//! (storing the `initialize` and replaying it on a new instance) builds on this shape.

use std::collections::{HashMap, HashSet};

use http::HeaderValue;
use parking_lot::Mutex;
use skyport_store::{DeploymentId, InstanceId, ServerName};

/// One client session.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    /// The server it was opened on; a session id is not valid on another server's path.
    pub(crate) server: ServerName,
    /// The deployment whose instance holds the upstream session.
    pub(crate) deployment: DeploymentId,
    /// The instance that holds it.
    pub(crate) instance: InstanceId,
    /// The upstream's session id.
    pub(crate) upstream: HeaderValue,
}

/// All open sessions.
#[derive(Default)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Records `session` under a fresh id and returns the id.
    pub(crate) fn open(&self, session: Session) -> String {
        let id = hex::encode(rand::random::<[u8; 16]>());
        self.open.lock().insert(id.clone(), session);
        id
    }

    /// The session with this id.
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        self.open.lock().get(id).cloned()
    }

    /// Forgets a session.
    pub(crate) fn close(&self, id: &str) {
        self.open.lock().remove(id);
    }

    /// Forgets sessions whose instance is not in `running`: they can never be used again.
    pub(crate) fn retain_instances(&self, running: &HashSet<InstanceId>) {
        self.open
            .lock()
            .retain(|_, s| running.contains(&s.instance));
    }

    /// How many are open per server.
    pub(crate) fn count_by_server(&self) -> HashMap<ServerName, usize> {
        let mut counts = HashMap::new();
        for session in self.open.lock().values() {
            *counts.entry(session.server.clone()).or_default() += 1;
        }
        counts
    }

    /// How many are open.
    pub(crate) fn len(&self) -> usize {
        self.open.lock().len()
    }
}
