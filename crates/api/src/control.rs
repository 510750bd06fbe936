//! The control-plane audit log as the API shows it (`GET /api/v1/audit/control`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use skyport_store::{ControlAction, PrincipalId, ServerName, Timestamp};

/// One change made through the API: who, what, when, and the state before and after (names
/// and settings; never a variable's or secret's value, never a key's secret).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlEventView {
    /// Position in the log; increases with every event.
    pub id: i64,
    /// When it happened.
    pub at: Timestamp,
    /// The principal who made it, when it still exists.
    pub actor: Option<PrincipalId>,
    /// The principal's name at the time.
    pub actor_name: String,
    /// What kind of change (`deploy`, `rollback`, `env.set`, `key.create`, …).
    pub action: ControlAction,
    /// The server it changed, if any.
    pub server: Option<ServerName>,
    /// What it changed within: a variable's name, a key's id, a deployment's id.
    pub subject: Option<String>,
    /// The state before.
    pub before: Option<Value>,
    /// The state after.
    pub after: Option<Value>,
}

/// A page of the control-plane audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControlAuditPage {
    /// The events, newest first.
    pub events: Vec<ControlEventView>,
}
