//! The JSON shapes of a server's environment variables and secrets
//! (`/api/v1/servers/{name}/env`) and of redeploying (`/api/v1/servers/{name}/redeploy`).
//!
//! A secret's value goes in (`PUT`) and never comes out: listings carry `value: null` for it.

use serde::{Deserialize, Serialize};
use skyport_store::{ServerName, Timestamp};

use crate::DeploymentView;

/// One stored variable as `GET /api/v1/servers/{name}/env` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnvVarView {
    /// Its name.
    pub name: String,
    /// `production`, `preview` or `branch:NAME`.
    pub scope: String,
    /// Whether it is a secret (its value is never shown).
    pub secret: bool,
    /// The value of a plain variable; `null` for a secret.
    pub value: Option<String>,
    /// When it was last set.
    pub updated_at: Timestamp,
}

/// `GET /api/v1/servers/{name}/env` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnvList {
    /// The server.
    pub server: ServerName,
    /// Its variables, by scope then name.
    pub vars: Vec<EnvVarView>,
}

/// One variable to set.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvAssignment {
    /// `[A-Za-z_][A-Za-z0-9_]*`, not one Skyport sets itself (`SKYPORT_*`, `PATH`, `HOME`…).
    pub name: String,
    /// The value.
    pub value: String,
    /// Stored sealed, never shown again, redacted from logs.
    #[serde(default)]
    pub secret: bool,
}

impl std::fmt::Debug for EnvAssignment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = if self.secret {
            "[redacted]"
        } else {
            &self.value
        };
        f.debug_struct("EnvAssignment")
            .field("name", &self.name)
            .field("value", &value)
            .field("secret", &self.secret)
            .finish()
    }
}

/// `PUT /api/v1/servers/{name}/env`: sets several variables of one scope at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetEnv {
    /// `production` (the default), `preview` or `branch:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The variables.
    pub vars: Vec<EnvAssignment>,
    /// Build a new deployment from the live one's source so that the change takes effect now.
    #[serde(default)]
    pub redeploy: bool,
}

/// The answer to setting or removing variables.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnvChanged {
    /// The server.
    pub server: ServerName,
    /// The scope changed.
    pub scope: String,
    /// The names set, or the names removed.
    pub changed: Vec<String>,
    /// Running deployments keep the environment they were built with: what to do for the
    /// change to take effect (empty when nothing changed or a redeploy was started).
    pub note: String,
    /// The deployment started by `redeploy`, queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentView>,
}
