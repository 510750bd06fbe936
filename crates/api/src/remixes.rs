//! The JSON shapes of remix servers: `POST /api/v1/remixes`, `GET` and `PATCH
//! /api/v1/remixes/{name}`.

use serde::{Deserialize, Serialize};
use skyport_store::{ServerName, SourceSpec, Timestamp};

/// `POST /api/v1/remixes`: creates a remix; answers it (a `RemixView`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRemix {
    /// The remix's name (its path under `/servers/`).
    pub name: ServerName,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Its sources, in order (1 to 10). A selection is `"all"` or `{"only": [names]}`.
    pub sources: Vec<SourceSpec>,
}

/// `PATCH /api/v1/remixes/{name}`: what is given replaces what the remix had (the sources as
/// a whole list).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditRemix {
    /// A new description.
    #[serde(default)]
    pub description: Option<String>,
    /// New sources, replacing every source the remix had.
    #[serde(default)]
    pub sources: Option<Vec<SourceSpec>>,
}

/// A remix as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemixView {
    /// Its name.
    pub name: ServerName,
    /// What it is for.
    pub description: String,
    /// Its MCP URL.
    pub url: String,
    /// Its sources, in order, with what it takes from each (a removed source is gone).
    pub sources: Vec<SourceSpec>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its definition last changed.
    pub updated_at: Timestamp,
}
