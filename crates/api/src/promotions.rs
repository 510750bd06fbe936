//! The JSON shapes of rollbacks and of the record of promotions.

use serde::{Deserialize, Serialize};
use skyport_store::{DeploymentId, PromotionKind, Timestamp};

/// `POST /api/v1/servers/{name}/rollback`: makes an earlier deployment live again, without a
/// build. Answers the deployment now live (a `DeploymentView`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollBack {
    /// A deployment id, or a unique prefix of one; when absent, the newest ready deployment
    /// older than the live one whose artifact is still kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
}

/// One move of a server's live pointer, from `GET /api/v1/servers/{name}/promotions`
/// (newest first).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromotionView {
    /// The deployment that went live.
    pub deployment: DeploymentId,
    /// The deployment that served before, if any.
    pub previous: Option<DeploymentId>,
    /// `deploy` (a fresh build went live) or `rollback`.
    pub kind: PromotionKind,
    /// Who caused it (the name of the API key's principal), when known.
    pub by: Option<String>,
    /// When it happened.
    pub at: Timestamp,
}
