//! Agents: a name, instructions, a provider and model, the catalog entries whose tools it
//! uses (hosted, external or remix, in order) and who may chat with it.
//!
//! This module stores agents and checks integrity (the provider and servers exist, the
//! principals and groups named exist, the step limit is in range). Who may create one or
//! chat with one is decided above this crate, from [`Agent::allowed`].

use std::collections::HashMap;
use std::fmt;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{
    AgentId, AgentName, PrincipalId, ProviderId, ProviderName, ServerId, ServerName, Store,
    StoreError, Timestamp, from_millis, now, servers, to_millis,
};

/// The most model turns an agent may take to answer one message.
pub const MAX_STEP_LIMIT: u32 = 50;

/// The step limit of an agent created without one.
pub const DEFAULT_STEP_LIMIT: u32 = 8;

/// The most servers one agent may use.
pub const MAX_AGENT_SERVERS: usize = 20;

/// Who may chat with an agent: a principal or a group, by name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChatPrincipal {
    /// A user or service account.
    Principal(String),
    /// Every member of a group.
    Group(String),
}

impl ChatPrincipal {
    /// `NAME` for a principal, `group:NAME` for a group (the CLI's form).
    pub fn parse(text: &str) -> ChatPrincipal {
        match text.strip_prefix("group:") {
            Some(group) => ChatPrincipal::Group(group.to_owned()),
            None => ChatPrincipal::Principal(text.to_owned()),
        }
    }
}

impl fmt::Display for ChatPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatPrincipal::Principal(name) => f.write_str(name),
            ChatPrincipal::Group(name) => write!(f, "group:{name}"),
        }
    }
}

/// An agent as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    /// Its id.
    pub id: AgentId,
    /// Its unique name.
    pub name: AgentName,
    /// What it is for.
    pub description: String,
    /// The system prompt its model gets.
    pub instructions: String,
    /// The provider that serves its model.
    pub provider: ProviderName,
    /// Its model; `None` is the provider's default model.
    pub model: Option<String>,
    /// The most model turns it takes to answer one message.
    pub step_limit: u32,
    /// The servers whose tools it uses, in order.
    pub servers: Vec<ServerName>,
    /// Who may chat with it; empty is every authenticated principal.
    pub allowed: Vec<ChatPrincipal>,
    /// Who created it (`None` once that principal is removed).
    pub created_by: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// An agent to create.
#[derive(Clone, Debug)]
pub struct NewAgent {
    /// Its unique name.
    pub name: AgentName,
    /// What it is for.
    pub description: String,
    /// The system prompt its model gets.
    pub instructions: String,
    /// The provider that serves its model.
    pub provider: ProviderName,
    /// Its model; `None` is the provider's default model.
    pub model: Option<String>,
    /// The most model turns it takes to answer one message.
    pub step_limit: u32,
    /// The servers whose tools it uses, in order.
    pub servers: Vec<ServerName>,
    /// Who may chat with it; empty is every authenticated principal.
    pub allowed: Vec<ChatPrincipal>,
    /// Who creates it.
    pub created_by: Option<PrincipalId>,
}

/// A change to an agent: what is `Some` replaces what it had (lists as a whole).
#[derive(Clone, Debug, Default)]
pub struct AgentPatch {
    /// A new description.
    pub description: Option<String>,
    /// New instructions.
    pub instructions: Option<String>,
    /// Another provider.
    pub provider: Option<ProviderName>,
    /// Another model (`Some(None)`: the provider's default).
    pub model: Option<Option<String>>,
    /// Another step limit.
    pub step_limit: Option<u32>,
    /// Other servers.
    pub servers: Option<Vec<ServerName>>,
    /// Other principals and groups who may chat (an empty list: everyone).
    pub allowed: Option<Vec<ChatPrincipal>>,
}

/// Why an agent cannot be created or changed as asked.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The name is taken.
    #[error("an agent named '{0}' exists already; change it with `skyport agents edit {0}`")]
    Exists(AgentName),
    /// No agent has this name.
    #[error("no agent named '{0}'; `skyport agents ls` lists them")]
    NotFound(AgentName),
    /// No provider has this name.
    #[error(
        "no provider named '{0}'; `skyport providers ls` lists them, `skyport providers add` adds one"
    )]
    UnknownProvider(ProviderName),
    /// No server has this name.
    #[error("no server named '{0}' to take tools from; `skyport servers ls` lists them")]
    UnknownServer(ServerName),
    /// A server is listed twice.
    #[error("server '{0}' is listed twice; give each server once")]
    DuplicateServer(ServerName),
    /// No servers at all, or too many.
    #[error("an agent uses 1 to {MAX_AGENT_SERVERS} servers (--server NAME), and {0} were given")]
    ServerCount(usize),
    /// The step limit is out of range.
    #[error("the step limit must be between 1 and {MAX_STEP_LIMIT}, not {0}")]
    StepLimit(u32),
    /// A principal or group allowed to chat does not exist.
    #[error(
        "no {} named '{}' to allow; `skyport {} ls` lists them (name a group as group:NAME)",
        if matches!(.0, ChatPrincipal::Group(_)) { "group" } else { "user or service account" },
        match .0 { ChatPrincipal::Group(n) | ChatPrincipal::Principal(n) => n },
        if matches!(.0, ChatPrincipal::Group(_)) { "groups" } else { "users" },
    )]
    UnknownPrincipal(ChatPrincipal),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AgentError {
    fn from(e: sqlx::Error) -> AgentError {
        AgentError::Store(e.into())
    }
}

/// Access to agents; obtained from [`Store::agents`].
pub struct Agents<'a> {
    pub(crate) store: &'a Store,
}

macro_rules! select_agents {
    ($rest:literal) => {
        concat!(
            "SELECT a.id, a.name, a.description, a.instructions, p.name AS provider, a.model,
             a.step_limit, c.name AS created_by, a.created_at, a.updated_at
             FROM agents a JOIN providers p ON p.id = a.provider_id
             LEFT JOIN principals c ON c.id = a.created_by ",
            $rest
        )
    };
}

/// The servers of agents, in each agent's order.
macro_rules! select_agent_servers {
    ($rest:literal) => {
        concat!(
            "SELECT x.agent_id, s.name FROM agent_servers x JOIN servers s ON s.id = x.server_id ",
            $rest,
            " ORDER BY x.agent_id, x.position"
        )
    };
}

/// Who may chat with agents: principals first, then groups, by name.
macro_rules! select_agent_access {
    ($rest:literal) => {
        concat!(
            "SELECT x.agent_id, p.name AS principal, g.name AS grp FROM agent_access x
             LEFT JOIN principals p ON p.id = x.principal_id
             LEFT JOIN groups g ON g.id = x.group_id ",
            $rest,
            " ORDER BY x.agent_id, x.group_id IS NOT NULL, coalesce(p.name, g.name)"
        )
    };
}

/// An agent's servers and access list, read apart from its row.
#[derive(Default)]
struct Members {
    servers: Vec<ServerName>,
    allowed: Vec<ChatPrincipal>,
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

impl Agents<'_> {
    /// Creates an agent.
    pub async fn create(&self, new: &NewAgent) -> Result<Agent, AgentError> {
        check_step_limit(new.step_limit)?;
        check_servers(&new.servers)?;
        let mut tx = self.store.write().await?;
        let taken: Option<String> =
            crate::sql::query_scalar("SELECT id FROM agents WHERE name = ?")
                .bind(&new.name)
                .fetch_optional(&mut *tx)
                .await?;
        if taken.is_some() {
            return Err(AgentError::Exists(new.name.clone()));
        }
        let provider = provider_id(&mut tx, &new.provider).await?;
        let id = AgentId::generate();
        let at = to_millis(now());
        crate::sql::query(
            "INSERT INTO agents (id, name, description, instructions, provider_id, model,
             step_limit, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(&new.name)
        .bind(&new.description)
        .bind(&new.instructions)
        .bind(&provider)
        .bind(&new.model)
        .bind(i64::from(new.step_limit))
        .bind(&new.created_by)
        .bind(at)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        write_servers(&mut tx, &id, &new.servers).await?;
        write_allowed(&mut tx, &id, &new.allowed).await?;
        tx.commit().await?;
        self.find(&new.name)
            .await?
            .ok_or_else(|| AgentError::NotFound(new.name.clone()))
    }

    /// Changes agent `name` as `patch` says; answers it changed.
    pub async fn update(&self, name: &AgentName, patch: &AgentPatch) -> Result<Agent, AgentError> {
        if let Some(limit) = patch.step_limit {
            check_step_limit(limit)?;
        }
        if let Some(servers) = &patch.servers {
            check_servers(servers)?;
        }
        let mut tx = self.store.write().await?;
        let id: AgentId = crate::sql::query_scalar("SELECT id FROM agents WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| AgentError::NotFound(name.clone()))?;
        let provider = match &patch.provider {
            Some(provider) => Some(provider_id(&mut tx, provider).await?),
            None => None,
        };
        crate::sql::query(
            "UPDATE agents SET
                 description = coalesce(?2, description),
                 instructions = coalesce(?3, instructions),
                 provider_id = coalesce(?4, provider_id),
                 model = CASE WHEN ?5 = 1 THEN ?6 ELSE model END,
                 step_limit = coalesce(?7, step_limit),
                 updated_at = ?8
             WHERE id = ?1",
        )
        .bind(&id)
        .bind(&patch.description)
        .bind(&patch.instructions)
        .bind(provider)
        .bind(i64::from(patch.model.is_some()))
        .bind(patch.model.clone().flatten())
        .bind(patch.step_limit.map(i64::from))
        .bind(to_millis(now()))
        .execute(&mut *tx)
        .await?;
        if let Some(servers) = &patch.servers {
            crate::sql::query("DELETE FROM agent_servers WHERE agent_id = ?")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            write_servers(&mut tx, &id, servers).await?;
        }
        if let Some(allowed) = &patch.allowed {
            crate::sql::query("DELETE FROM agent_access WHERE agent_id = ?")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            write_allowed(&mut tx, &id, allowed).await?;
        }
        tx.commit().await?;
        self.find(name)
            .await?
            .ok_or_else(|| AgentError::NotFound(name.clone()))
    }

    /// Every agent, by name; three queries whatever their number.
    pub async fn list(&self) -> Result<Vec<Agent>, StoreError> {
        let rows = crate::sql::query(select_agents!("ORDER BY a.name"))
            .fetch_all(&self.store.pool)
            .await?;
        let servers = crate::sql::query(select_agent_servers!(""))
            .fetch_all(&self.store.pool)
            .await?;
        let access = crate::sql::query(select_agent_access!(""))
            .fetch_all(&self.store.pool)
            .await?;
        let mut members = group_members(&servers, &access)?;
        rows.iter()
            .map(|row| {
                let id: AgentId = row.try_get("id")?;
                agent(row, members.remove(&id).unwrap_or_default())
            })
            .collect()
    }

    /// Agent `name`, if there is one.
    pub async fn find(&self, name: &AgentName) -> Result<Option<Agent>, StoreError> {
        let row = crate::sql::query(select_agents!("WHERE a.name = ?"))
            .bind(name)
            .fetch_optional(&self.store.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: AgentId = row.try_get("id")?;
        let servers = crate::sql::query(select_agent_servers!("WHERE x.agent_id = ?"))
            .bind(&id)
            .fetch_all(&self.store.pool)
            .await?;
        let access = crate::sql::query(select_agent_access!("WHERE x.agent_id = ?"))
            .bind(&id)
            .fetch_all(&self.store.pool)
            .await?;
        let members = group_members(&servers, &access)?
            .remove(&id)
            .unwrap_or_default();
        agent(&row, members).map(Some)
    }

    /// The name of the agent with id `id`, if it still exists.
    pub async fn name_of(&self, id: &AgentId) -> Result<Option<AgentName>, StoreError> {
        Ok(
            crate::sql::query_scalar("SELECT name FROM agents WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.store.pool)
                .await?,
        )
    }

    /// Removes agent `name` and its conversations; `false` when there is no such agent.
    pub async fn remove(&self, name: &AgentName) -> Result<bool, StoreError> {
        let removed = crate::sql::query("DELETE FROM agents WHERE name = ?")
            .bind(name)
            .execute(&self.store.pool)
            .await?
            .rows_affected();
        Ok(removed > 0)
    }
}

/// The rows of [`select_agent_servers!`] and [`select_agent_access!`], per agent.
fn group_members(
    servers: &[AnyRow],
    access: &[AnyRow],
) -> Result<HashMap<AgentId, Members>, StoreError> {
    let mut members: HashMap<AgentId, Members> = HashMap::new();
    for row in servers {
        let id: AgentId = row.try_get("agent_id")?;
        members
            .entry(id)
            .or_default()
            .servers
            .push(row.try_get("name")?);
    }
    for row in access {
        let id: AgentId = row.try_get("agent_id")?;
        let principal: Option<String> = row.try_get("principal")?;
        let who = match principal {
            Some(name) => ChatPrincipal::Principal(name),
            None => ChatPrincipal::Group(row.try_get("grp")?),
        };
        members.entry(id).or_default().allowed.push(who);
    }
    Ok(members)
}

/// An agent from its [`select_agents!`] row and its members.
fn agent(row: &AnyRow, members: Members) -> Result<Agent, StoreError> {
    let step_limit: i64 = row.try_get("step_limit")?;
    Ok(Agent {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        instructions: row.try_get("instructions")?,
        provider: row.try_get("provider")?,
        model: row.try_get("model")?,
        step_limit: u32::try_from(step_limit)
            .map_err(|_| StoreError::Corrupt(format!("step limit {step_limit}")))?,
        servers: members.servers,
        allowed: members.allowed,
        created_by: row.try_get("created_by")?,
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
    })
}

fn check_step_limit(limit: u32) -> Result<(), AgentError> {
    if (1..=MAX_STEP_LIMIT).contains(&limit) {
        Ok(())
    } else {
        Err(AgentError::StepLimit(limit))
    }
}

fn check_servers(servers: &[ServerName]) -> Result<(), AgentError> {
    if servers.is_empty() || servers.len() > MAX_AGENT_SERVERS {
        return Err(AgentError::ServerCount(servers.len()));
    }
    for (i, server) in servers.iter().enumerate() {
        if servers[..i].contains(server) {
            return Err(AgentError::DuplicateServer(server.clone()));
        }
    }
    Ok(())
}

async fn provider_id(tx: &mut Tx, name: &ProviderName) -> Result<ProviderId, AgentError> {
    crate::sql::query_scalar("SELECT id FROM providers WHERE name = ?")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| AgentError::UnknownProvider(name.clone()))
}

async fn write_servers(
    tx: &mut Tx,
    agent: &AgentId,
    names: &[ServerName],
) -> Result<(), AgentError> {
    for (position, name) in names.iter().enumerate() {
        let server: ServerId = servers::named(tx, name)
            .await?
            .ok_or_else(|| AgentError::UnknownServer(name.clone()))?
            .id;
        crate::sql::query(
            "INSERT INTO agent_servers (agent_id, server_id, position) VALUES (?, ?, ?)",
        )
        .bind(agent)
        .bind(server)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn write_allowed(
    tx: &mut Tx,
    agent: &AgentId,
    allowed: &[ChatPrincipal],
) -> Result<(), AgentError> {
    for who in allowed {
        let (sql, name) = match who {
            ChatPrincipal::Principal(name) => ("SELECT id FROM principals WHERE name = ?", name),
            ChatPrincipal::Group(name) => ("SELECT id FROM groups WHERE name = ?", name),
        };
        let id: String = crate::sql::query_scalar(sql)
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| AgentError::UnknownPrincipal(who.clone()))?;
        let (principal, group) = match who {
            ChatPrincipal::Principal(_) => (Some(id), None),
            ChatPrincipal::Group(_) => (None, Some(id)),
        };
        crate::sql::query(
            "INSERT INTO agent_access (agent_id, principal_id, group_id) VALUES (?, ?, ?)
             ON CONFLICT DO NOTHING",
        )
        .bind(agent)
        .bind(principal)
        .bind(group)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
