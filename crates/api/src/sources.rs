//! The JSON shapes of tracked sources, previews and webhook answers.

use serde::{Deserialize, Serialize};
use skyport_store::{DeploymentId, ServerName, Timestamp};

use crate::present;

/// Where a server's code comes from for builds nobody typed. The webhook secret is never
/// shown: only whether there is one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceView {
    /// The git repository (without credentials), if any.
    pub url: Option<String>,
    /// The branch whose pushes build production.
    pub branch: String,
    /// The entrypoint builds use; `null` lets the build find it.
    pub entrypoint: Option<String>,
    /// Whether webhooks are accepted (a secret is set).
    pub webhook: bool,
    /// Seconds between checks of the tracked branch; `null` is never.
    pub poll_interval_seconds: Option<u64>,
    /// Seconds a preview lives after its last build; `null` is until its branch goes.
    pub preview_ttl_seconds: Option<u64>,
}

/// What a preview server previews.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewView {
    /// The server it is a preview of.
    pub parent: ServerName,
    /// The git branch it builds.
    pub branch: String,
    /// When it is removed unless built again, if it has a lifetime.
    pub expires_at: Option<Timestamp>,
}

/// Changes to a server's source settings; absent fields keep their value, `null` clears one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceUpdate {
    /// New git repository URL.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub url: Option<Option<String>>,
    /// New tracked branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// New entrypoint.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Option<String>>,
    /// New webhook secret (at least 16 characters).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub webhook_secret: Option<Option<String>>,
    /// Seconds between checks of the tracked branch.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub poll_interval_seconds: Option<Option<u64>>,
    /// Seconds a preview lives after its last build.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub preview_ttl_seconds: Option<Option<u64>>,
}

impl SourceUpdate {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == SourceUpdate::default()
    }
}

/// What a webhook delivery did: `202` with the deployment it queued, or `200` when it removed
/// a preview or was ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookAnswer {
    /// `production`, `preview`, `removed` or `ignored`.
    pub outcome: String,
    /// The server built or removed (a preview's own name for previews).
    #[serde(default)]
    pub server: Option<ServerName>,
    /// The deployment queued.
    #[serde(default)]
    pub deployment: Option<DeploymentId>,
    /// The MCP endpoint of the server built.
    #[serde(default)]
    pub url: Option<String>,
    /// What happened, for people (the reason, when ignored).
    pub message: String,
}
