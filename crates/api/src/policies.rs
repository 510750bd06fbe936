//! The JSON shapes of tool-level policies: `GET/POST /api/v1/servers/{name}/policies` and
//! `DELETE /api/v1/servers/{name}/policies/{id}`.

use serde::{Deserialize, Serialize};
use skyport_store::{PolicyEffect, PolicyId, Timestamp};

/// `POST /api/v1/servers/{name}/policies`: adds a rule, written in the rule language (the
/// server answers 400 with what to write instead when a part does not parse). Answers the
/// rule (a `PolicyView`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePolicy {
    /// `allow` or `deny`.
    pub effect: String,
    /// `principal:NAME`, `group:NAME`, `role:admin|editor|viewer` or `*`.
    pub selector: String,
    /// `tool:GLOB`, `prompt:GLOB`, `resource:GLOB` or `template:GLOB`.
    pub capability: String,
}

/// One rule of a server's policy, oldest first in listings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyView {
    /// Its id (`pol_…`), which `DELETE` takes.
    pub id: PolicyId,
    /// `allow` or `deny`.
    pub effect: PolicyEffect,
    /// Whom it applies to, as written.
    pub selector: String,
    /// What it applies to, as written (`tool:delete_*`).
    pub capability: String,
    /// When it was added.
    pub created_at: Timestamp,
    /// Who added it (the name of the API key's principal), when known.
    pub created_by: Option<String>,
}
