//! Who may do what on which server: per-server roles granted to principals and groups, each
//! server's default role for the organisation's members, and the one rule that resolves them.
//!
//! Resolution ([`resolve_role`]) is the same everywhere: an organisation admin is `admin` on every
//! server; else the highest role granted to the principal or to any of its groups; else the
//! server's default role; else no access. A preview has no grants of its own: the roles on
//! the server it previews apply. The REST API asks the store per request
//! ([`Access::role`]); the gateway keeps an [`AccessTable`] in memory and reloads it on
//! [`Change::Access`]. What each role permits is decided above this crate.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use sqlx::Row;

use crate::{Change, GroupId, Principal, PrincipalId, ServerId, Store, StoreError, now, to_millis};

/// A role on one server, lowest first (so `max` is the strongest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServerRole {
    /// Connect and call the tools policies permit.
    Viewer,
    /// And deploy, roll back, change the environment, read logs.
    Editor,
    /// And change the server's settings and access, and remove it.
    Admin,
}

impl ServerRole {
    /// The role's name: `viewer`, `editor` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerRole::Viewer => "viewer",
            ServerRole::Editor => "editor",
            ServerRole::Admin => "admin",
        }
    }
}

impl fmt::Display for ServerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A text that is not a role name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown role '{0}': use admin, editor or viewer")]
pub struct RoleError(pub String);

impl FromStr for ServerRole {
    type Err = RoleError;

    fn from_str(s: &str) -> Result<ServerRole, RoleError> {
        match s {
            "viewer" => Ok(ServerRole::Viewer),
            "editor" => Ok(ServerRole::Editor),
            "admin" => Ok(ServerRole::Admin),
            other => Err(RoleError(other.chars().take(40).collect())),
        }
    }
}

/// Who a grant is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Grantee {
    /// A user or service account, by name.
    Principal(String),
    /// A group, by name.
    Group(String),
}

impl Grantee {
    /// `NAME` for a principal, `group:NAME` for a group (the CLI's form).
    pub fn parse(text: &str) -> Grantee {
        match text.strip_prefix("group:") {
            Some(group) => Grantee::Group(group.to_owned()),
            None => Grantee::Principal(text.to_owned()),
        }
    }
}

impl fmt::Display for Grantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grantee::Principal(name) => f.write_str(name),
            Grantee::Group(name) => write!(f, "group:{name}"),
        }
    }
}

/// A role granted on a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// To whom.
    pub grantee: Grantee,
    /// Which role.
    pub role: ServerRole,
}

/// A server's access settings as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAccess {
    /// The role of organisation members without a grant; `None` is no access.
    pub default_role: Option<ServerRole>,
    /// The grants, principals first, by name.
    pub grants: Vec<Grant>,
}

/// Why a grant could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// No such principal or group.
    #[error(
        "no {kind} named '{name}'; `skyport {list} ls` lists them (name a group as group:NAME)"
    )]
    Unknown {
        /// `user or service account`, or `group`.
        kind: &'static str,
        /// The name given.
        name: String,
        /// The command that lists them.
        list: &'static str,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The caller's effective role: org admin → `admin`; else the highest of `grants`; else
/// `default`; else `None`.
pub fn resolve_role(
    is_admin: bool,
    grants: impl IntoIterator<Item = ServerRole>,
    default: Option<ServerRole>,
) -> Option<ServerRole> {
    if is_admin {
        return Some(ServerRole::Admin);
    }
    grants.into_iter().max().or(default)
}

/// Everything needed to resolve any principal's role on any server without the database:
/// what the gateway holds in memory.
#[derive(Clone, Debug, Default)]
pub struct AccessTable {
    servers: HashMap<ServerId, ServerRules>,
    members: HashMap<PrincipalId, Membership>,
    /// Previews by id, with the server they preview: a preview is reached with its parent's
    /// roles.
    parents: HashMap<ServerId, ServerId>,
}

#[derive(Clone, Debug, Default)]
struct ServerRules {
    default_role: Option<ServerRole>,
    principals: HashMap<PrincipalId, ServerRole>,
    groups: Vec<(GroupId, ServerRole)>,
}

#[derive(Clone, Debug, Default)]
struct Membership {
    ids: Vec<GroupId>,
    /// Shared with every request's caller, which carries them to the policy check.
    names: Arc<[String]>,
}

impl AccessTable {
    /// `principal`'s role on `server` (see [`resolve_role`]); on a preview, its parent's.
    pub fn role(
        &self,
        principal: &PrincipalId,
        is_admin: bool,
        server: &ServerId,
    ) -> Option<ServerRole> {
        if is_admin {
            return Some(ServerRole::Admin);
        }
        let server = self.parents.get(server).unwrap_or(server);
        let rules = self.servers.get(server)?;
        let groups = self
            .members
            .get(principal)
            .map_or(&[][..], |m| m.ids.as_slice());
        let by_group = rules
            .groups
            .iter()
            .filter(|(group, _)| groups.contains(group))
            .map(|(_, role)| *role);
        resolve_role(
            false,
            rules
                .principals
                .get(principal)
                .copied()
                .into_iter()
                .chain(by_group),
            rules.default_role,
        )
    }

    /// The names of the groups `principal` belongs to, sorted (shared, not copied).
    pub fn groups(&self, principal: &PrincipalId) -> Arc<[String]> {
        self.members
            .get(principal)
            .map(|m| m.names.clone())
            .unwrap_or_default()
    }
}

/// Access to grants and default roles; obtained from [`Store::access`].
pub struct Access<'a> {
    pub(crate) store: &'a Store,
}

impl Access<'_> {
    /// `principal`'s role on `server`, read now.
    pub async fn role(
        &self,
        principal: &Principal,
        server: &ServerId,
    ) -> Result<Option<ServerRole>, StoreError> {
        if principal.is_admin {
            return Ok(Some(ServerRole::Admin));
        }
        Ok(self.roles_on(principal, Some(server)).await?.remove(server))
    }

    /// `principal`'s role on every server it has one on.
    pub async fn roles(
        &self,
        principal: &Principal,
    ) -> Result<HashMap<ServerId, ServerRole>, StoreError> {
        self.roles_on(principal, None).await
    }

    /// `principal`'s roles, on `only` when given (one server's rows read, not every server's).
    async fn roles_on(
        &self,
        principal: &Principal,
        only: Option<&ServerId>,
    ) -> Result<HashMap<ServerId, ServerRole>, StoreError> {
        let rows = crate::sql::query(
            "SELECT server_id, role, 0 AS is_default FROM server_grants
             WHERE (principal_id = ?1
                    OR group_id IN (SELECT group_id FROM group_members WHERE principal_id = ?1))
               AND (?2 IS NULL OR server_id = ?2)
             UNION ALL
             SELECT server_id, role, 1 AS is_default FROM server_default_roles
             WHERE ?2 IS NULL OR server_id = ?2",
        )
        .bind(&principal.id)
        .bind(only)
        .fetch_all(&self.store.pool)
        .await?;
        let mut granted: HashMap<ServerId, ServerRole> = HashMap::new();
        let mut defaults: HashMap<ServerId, ServerRole> = HashMap::new();
        for row in &rows {
            let server: ServerId = row.try_get("server_id")?;
            let role = parse_role(row.try_get("role")?)?;
            let target = if crate::sql::flag(row, "is_default")? {
                &mut defaults
            } else {
                &mut granted
            };
            let entry = target.entry(server).or_insert(role);
            *entry = (*entry).max(role);
        }
        let servers: Vec<ServerId> = granted.keys().chain(defaults.keys()).cloned().collect();
        Ok(servers
            .into_iter()
            .filter_map(|server| {
                let role = resolve_role(
                    principal.is_admin,
                    granted.get(&server).copied(),
                    defaults.get(&server).copied(),
                )?;
                Some((server, role))
            })
            .collect())
    }

    /// Grants `role` on `server` to `grantee`, replacing a role it had there.
    pub async fn grant(
        &self,
        server: &ServerId,
        grantee: &Grantee,
        role: ServerRole,
    ) -> Result<(), GrantError> {
        let (principal, group) = self.grantee_ids(grantee).await?;
        let mut tx = self.store.write().await.map_err(StoreError::from)?;
        crate::sql::query(
            "DELETE FROM server_grants WHERE server_id = ?
             AND (principal_id IS NOT DISTINCT FROM ? AND group_id IS NOT DISTINCT FROM ?)",
        )
        .bind(server)
        .bind(&principal)
        .bind(&group)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        crate::sql::query(
            "INSERT INTO server_grants (server_id, principal_id, group_id, role, created_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(server)
        .bind(principal)
        .bind(group)
        .bind(role.as_str())
        .bind(to_millis(now()))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        self.store.publish(Change::Access);
        Ok(())
    }

    /// Removes `grantee`'s grant on `server`; `false` if it had none.
    pub async fn revoke(&self, server: &ServerId, grantee: &Grantee) -> Result<bool, GrantError> {
        let (principal, group) = self.grantee_ids(grantee).await?;
        let removed = crate::sql::query(
            "DELETE FROM server_grants WHERE server_id = ?
             AND (principal_id IS NOT DISTINCT FROM ? AND group_id IS NOT DISTINCT FROM ?)",
        )
        .bind(server)
        .bind(principal)
        .bind(group)
        .execute(&self.store.pool)
        .await
        .map_err(StoreError::from)?
        .rows_affected();
        if removed > 0 {
            self.store.publish(Change::Access);
        }
        Ok(removed > 0)
    }

    /// Sets the role organisation members have on `server` without a grant (`None`: none).
    pub async fn set_default(
        &self,
        server: &ServerId,
        role: Option<ServerRole>,
    ) -> Result<(), StoreError> {
        match role {
            Some(role) => {
                crate::sql::query(
                    "INSERT INTO server_default_roles (server_id, role) VALUES (?, ?)
                     ON CONFLICT (server_id) DO UPDATE SET role = excluded.role",
                )
                .bind(server)
                .bind(role.as_str())
                .execute(&self.store.pool)
                .await?;
            }
            None => {
                crate::sql::query("DELETE FROM server_default_roles WHERE server_id = ?")
                    .bind(server)
                    .execute(&self.store.pool)
                    .await?;
            }
        }
        self.store.publish(Change::Access);
        Ok(())
    }

    /// `server`'s default role and grants.
    pub async fn of_server(&self, server: &ServerId) -> Result<ServerAccess, StoreError> {
        let default_role: Option<String> =
            crate::sql::query_scalar("SELECT role FROM server_default_roles WHERE server_id = ?")
                .bind(server)
                .fetch_optional(&self.store.pool)
                .await?;
        let rows = crate::sql::query(
            "SELECT p.name AS principal, g.name AS grp, s.role FROM server_grants s
             LEFT JOIN principals p ON p.id = s.principal_id
             LEFT JOIN groups g ON g.id = s.group_id
             WHERE s.server_id = ?
             ORDER BY s.group_id IS NOT NULL, coalesce(p.name, g.name)",
        )
        .bind(server)
        .fetch_all(&self.store.pool)
        .await?;
        let grants = rows
            .iter()
            .map(|row| {
                let principal: Option<String> = row.try_get("principal")?;
                let grantee = match principal {
                    Some(name) => Grantee::Principal(name),
                    None => Grantee::Group(row.try_get("grp")?),
                };
                Ok(Grant {
                    grantee,
                    role: parse_role(row.try_get("role")?)?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(ServerAccess {
            default_role: default_role.as_deref().map(parse_role).transpose()?,
            grants,
        })
    }

    /// Every grant, default role and group membership, for an in-memory [`AccessTable`].
    pub async fn table(&self) -> Result<AccessTable, StoreError> {
        let mut table = AccessTable::default();
        let grants =
            crate::sql::query("SELECT server_id, principal_id, group_id, role FROM server_grants")
                .fetch_all(&self.store.pool)
                .await?;
        for row in &grants {
            let rules = table.servers.entry(row.try_get("server_id")?).or_default();
            let role = parse_role(row.try_get("role")?)?;
            match row.try_get::<Option<PrincipalId>, _>("principal_id")? {
                Some(principal) => {
                    rules.principals.insert(principal, role);
                }
                None => rules.groups.push((row.try_get("group_id")?, role)),
            }
        }
        let defaults = crate::sql::query("SELECT server_id, role FROM server_default_roles")
            .fetch_all(&self.store.pool)
            .await?;
        for row in &defaults {
            table
                .servers
                .entry(row.try_get("server_id")?)
                .or_default()
                .default_role = Some(parse_role(row.try_get("role")?)?);
        }
        let members = crate::sql::query(
            "SELECT m.principal_id, g.id, g.name FROM group_members m
             JOIN groups g ON g.id = m.group_id ORDER BY g.name",
        )
        .fetch_all(&self.store.pool)
        .await?;
        let mut names: HashMap<PrincipalId, Vec<String>> = HashMap::new();
        for row in &members {
            let principal: PrincipalId = row.try_get("principal_id")?;
            names
                .entry(principal.clone())
                .or_default()
                .push(row.try_get("name")?);
            let membership = table.members.entry(principal).or_default();
            membership.ids.push(row.try_get("id")?);
        }
        for (principal, names) in names {
            table.members.entry(principal).or_default().names = names.into();
        }
        let previews =
            crate::sql::query("SELECT id, parent_id FROM servers WHERE parent_id IS NOT NULL")
                .fetch_all(&self.store.pool)
                .await?;
        for row in &previews {
            table
                .parents
                .insert(row.try_get("id")?, row.try_get("parent_id")?);
        }
        Ok(table)
    }

    async fn grantee_ids(
        &self,
        grantee: &Grantee,
    ) -> Result<(Option<PrincipalId>, Option<GroupId>), GrantError> {
        match grantee {
            Grantee::Principal(name) => {
                let principal =
                    self.store
                        .users()
                        .get(name)
                        .await?
                        .ok_or_else(|| GrantError::Unknown {
                            kind: "user or service account",
                            name: name.clone(),
                            list: "users",
                        })?;
                Ok((Some(principal.id), None))
            }
            Grantee::Group(name) => {
                let group = self.store.users().group_id(name).await?.ok_or_else(|| {
                    GrantError::Unknown {
                        kind: "group",
                        name: name.clone(),
                        list: "groups",
                    }
                })?;
                Ok((None, Some(group)))
            }
        }
    }
}

fn parse_role(text: &str) -> Result<ServerRole, StoreError> {
    text.parse()
        .map_err(|e: RoleError| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests;
