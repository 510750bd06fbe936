//! The one place that decides what a principal may do on the control plane. Handlers name
//! the [`Permission`] an action needs and call [`authorize`] (a server by name) or
//! [`require`] (a server already read); organisation-wide actions call [`require_org_admin`].
//!
//! A permission needs a minimum role on the server ([`Permission::role`]); the role comes
//! from the store's one resolution rule (org admin → grants → the server's default). A
//! refusal is `403 forbidden` naming the role that would do and the command that grants it.
//! Nothing else in this crate compares roles.
//!
//! Agents are not servers: org admins manage them, and who may chat with one is its access
//! list ([`may_chat`]): empty lets every authenticated principal, else the principal or one
//! of its groups must be listed; org admins always may.

use std::collections::HashMap;

use skyport_store::{Agent, ChatPrincipal, Principal, Server, ServerId, ServerRole};

use crate::api::existing_server;
use crate::{ApiError, AppState};

/// What an action on one server needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Permission {
    /// See the server, its deployments and promotions (and connect to it).
    View,
    /// Build and promote deployments, redeploy, cancel or remove a deployment.
    Deploy,
    /// Make an earlier deployment live again.
    Rollback,
    /// List and change variables and secrets.
    Env,
    /// Read build and instance logs.
    Logs,
    /// Change where the server's code comes from (repository, branch, entrypoint).
    Sources,
    /// Change how the server runs and whether the gateway requires a key.
    Settings,
    /// Change who may do what on the server.
    Access,
    /// Remove the server.
    Delete,
    /// Read the audit log of the server's requests.
    Audit,
}

impl Permission {
    /// The weakest role that has this permission.
    pub(crate) fn role(self) -> ServerRole {
        match self {
            Permission::View => ServerRole::Viewer,
            Permission::Deploy
            | Permission::Rollback
            | Permission::Env
            | Permission::Logs
            | Permission::Sources => ServerRole::Editor,
            Permission::Settings | Permission::Access | Permission::Delete | Permission::Audit => {
                ServerRole::Admin
            }
        }
    }

    fn action(self) -> &'static str {
        match self {
            Permission::View => "see it",
            Permission::Deploy => "deploy it",
            Permission::Rollback => "roll it back",
            Permission::Env => "read or change its variables and secrets",
            Permission::Logs => "read its logs",
            Permission::Sources => "change its source",
            Permission::Settings => "change its settings",
            Permission::Access => "change who may use it",
            Permission::Delete => "remove it",
            Permission::Audit => "read its audit log",
        }
    }
}

/// The server named `name` when `caller` may act on it as `permission` says.
pub(crate) async fn authorize(
    state: &AppState,
    caller: &Principal,
    name: &str,
    permission: Permission,
) -> Result<Server, ApiError> {
    let server = existing_server(state, name).await?;
    require(state, caller, &server, permission).await?;
    Ok(server)
}

/// Refuses unless `caller` may act on `server` as `permission` says.
pub(crate) async fn require(
    state: &AppState,
    caller: &Principal,
    server: &Server,
    permission: Permission,
) -> Result<(), ApiError> {
    let role = state.store.access().role(caller, subject(server)).await?;
    if role.is_some_and(|role| role >= permission.role()) {
        return Ok(());
    }
    let has = role.map_or_else(|| "no role".to_owned(), |role| format!("the role {role}"));
    Err(ApiError::Forbidden(format!(
        "{who} has {has} on server '{server}'; to {action} takes {needed}: ask an org admin or an admin of the server to run `skyport access grant {server} {who} {needed}`",
        who = caller.name,
        server = server.name,
        action = permission.action(),
        needed = permission.role(),
    )))
}

/// The servers a caller sees in listings: those it has a role on.
pub(crate) enum Visible {
    /// Every server (organisation admins).
    All,
    /// Only these.
    Only(HashMap<ServerId, ServerRole>),
}

impl Visible {
    /// Whether `server` is listed.
    pub(crate) fn includes(&self, server: &Server) -> bool {
        match self {
            Visible::All => true,
            Visible::Only(roles) => roles.contains_key(subject(server)),
        }
    }
}

/// The server whose roles apply to `server`: a preview's parent, else itself.
fn subject(server: &Server) -> &ServerId {
    server.preview.as_ref().map_or(&server.id, |p| &p.parent)
}

/// The servers `caller` sees.
pub(crate) async fn visible(state: &AppState, caller: &Principal) -> Result<Visible, ApiError> {
    if caller.is_admin {
        return Ok(Visible::All);
    }
    Ok(Visible::Only(state.store.access().roles(caller).await?))
}

/// Refuses unless `caller` administers the organisation; `action` says what was refused.
pub(crate) fn require_org_admin(caller: &Principal, action: &str) -> Result<(), ApiError> {
    if caller.is_admin {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "only organisation admins may {action}, and {} is not one; ask one to do it",
        caller.name
    )))
}

/// Whether `caller` may chat with `agent` (and see it listed).
pub(crate) async fn may_chat(
    state: &AppState,
    caller: &Principal,
    agent: &Agent,
) -> Result<bool, ApiError> {
    if lets_chat(agent, caller, &[]) {
        return Ok(true);
    }
    let groups = state.store.users().group_names(&caller.id).await?;
    Ok(lets_chat(agent, caller, &groups))
}

/// The agents of `agents` that `caller` may chat with, its groups read once for all.
pub(crate) async fn chattable(
    state: &AppState,
    caller: &Principal,
    agents: Vec<Agent>,
) -> Result<Vec<Agent>, ApiError> {
    let groups = if caller.is_admin {
        Vec::new()
    } else {
        state.store.users().group_names(&caller.id).await?
    };
    Ok(agents
        .into_iter()
        .filter(|agent| lets_chat(agent, caller, &groups))
        .collect())
}

/// The rule: org admins always; an empty list lets everyone; else the principal or one of
/// its `groups` is listed.
fn lets_chat(agent: &Agent, caller: &Principal, groups: &[String]) -> bool {
    caller.is_admin
        || agent.allowed.is_empty()
        || agent
            .allowed
            .contains(&ChatPrincipal::Principal(caller.name.clone()))
        || groups
            .iter()
            .any(|group| agent.allowed.contains(&ChatPrincipal::Group(group.clone())))
}

/// Refuses unless `caller` may chat with `agent`.
pub(crate) async fn require_chat(
    state: &AppState,
    caller: &Principal,
    agent: &Agent,
) -> Result<(), ApiError> {
    if may_chat(state, caller, agent).await? {
        return Ok(());
    }
    Err(ApiError::Forbidden(format!(
        "{who} may not chat with agent '{agent}'; ask an org admin to run `skyport agents edit {agent} --allow {who}` (or --allow group:GROUP)",
        who = caller.name,
        agent = agent.name,
    )))
}
