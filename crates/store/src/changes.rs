//! The change feed: what moved, so that in-memory views (the gateway's route table, the
//! runtime's instances) can follow without polling the database. On PostgreSQL the feed
//! also crosses processes (`feed.rs`), so every replica's views follow every replica's changes.

use serde::{Deserialize, Serialize};

use crate::{DeploymentId, ServerId, ServerName};

/// A committed change to which deployment serves a server, to how it runs, or to the keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// `live` now serves `server`; `previous` (if any) no longer does.
    Promoted {
        /// The server whose live deployment moved.
        server: ServerName,
        /// The deployment now serving.
        live: DeploymentId,
        /// The deployment that served before, if another one did.
        previous: Option<DeploymentId>,
    },
    /// `server` was removed; `previous` (if any) was its live deployment.
    ServerRemoved {
        /// The removed server.
        server: ServerName,
        /// Its live deployment at the time.
        previous: Option<DeploymentId>,
    },
    /// How `server`'s instances run changed (memory cap, idle timeout, instance counts).
    SettingsChanged {
        /// The server whose settings changed.
        server: ServerName,
    },
    /// An API key was created or revoked (or a key's principal changed): caches of keys reload.
    Keys,
    /// A principal, group, membership, grant or default role changed: caches of who may
    /// reach which server reload.
    Access,
    /// A new key signs identity and access tokens (a rotation, or the first key made):
    /// signers reload the current key and the published ones.
    SigningKeys,
    /// An OAuth access token was revoked before its expiry: caches of revoked tokens reload.
    TokensRevoked,
    /// A rule of `server`'s tool-level policy was added or removed: caches of policies reload.
    Policies {
        /// The server whose rules changed.
        server: ServerId,
    },
    /// A remix was created or its definition changed: caches of remixes reload.
    Remix {
        /// The remix.
        server: ServerId,
    },
    /// A catalog entry Skyport does not build (an external server) was created or changed:
    /// route tables, access tables and the gateway's remote connections reload.
    Catalog {
        /// The entry.
        server: ServerName,
    },
}
