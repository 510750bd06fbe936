//! The JSON shapes of users, groups, logins and per-server access.

use serde::{Deserialize, Serialize};
use skyport_store::Timestamp;

/// A user or service account as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserView {
    /// Its unique name.
    pub name: String,
    /// `user` or `service`.
    pub kind: String,
    /// Its e-mail address, when known.
    pub email: Option<String>,
    /// Whether it administers the organisation.
    pub admin: bool,
    /// The groups it belongs to.
    pub groups: Vec<String>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// `POST /api/v1/users` (org admins): creates a user or a service account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUser {
    /// Its unique name.
    pub name: String,
    /// Its e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Make it an organisation admin.
    #[serde(default)]
    pub admin: bool,
    /// Make it a service account (no password; keys only).
    #[serde(default)]
    pub service: bool,
    /// The user's password; a generated one is answered when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `POST /api/v1/users` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserCreated {
    /// The account.
    pub user: UserView,
    /// The generated password (users created without one); shown this once.
    pub password: Option<String>,
}

/// `POST /api/v1/login`: a user's name and password; answers a new API key (`KeyCreated`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Login {
    /// The user's name.
    pub user: String,
    /// Their password.
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// A group as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    /// Its unique name.
    pub name: String,
    /// Its members' names.
    pub members: Vec<String>,
}

/// `POST /api/v1/groups`: creates a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateGroup {
    /// Its unique name.
    pub name: String,
}

/// `GET /api/v1/servers/{name}/access`: a server's default role and grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessView {
    /// The server.
    pub server: String,
    /// The role of organisation members without a grant: `admin`, `editor`, `viewer` or
    /// `none`.
    pub default_role: String,
    /// The grants, principals first.
    pub grants: Vec<GrantView>,
}

/// One grant of a role on a server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantView {
    /// A user or service account's name, or `group:NAME`.
    pub who: String,
    /// `admin`, `editor` or `viewer`.
    pub role: String,
}

/// `PUT /api/v1/servers/{name}/access/default`: the server's default role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetDefaultRole {
    /// `admin`, `editor`, `viewer` or `none`.
    pub role: String,
}
