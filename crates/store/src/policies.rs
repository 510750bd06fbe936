//! Tool-level policies: rules per server, each a selector of callers × a capability glob →
//! allow or deny, and the rule language they are written in (`role:viewer`, `tool:delete_*`).
//!
//! This module parses and stores rules; it does not decide requests. The gateway compiles a
//! server's rules into its own matcher and applies the semantics written down there (deny
//! wins; an allow rule turns its kind into an allow-list). Every change publishes
//! [`Change::Policies`] so that the gateway's compiled copy follows.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::promotions::Actor;
use crate::{
    Change, PolicyId, PrincipalId, ServerId, Store, StoreError, Timestamp, from_millis, now,
    to_millis,
};

/// The per-server role names a `role:` selector may name.
pub const POLICY_ROLES: [&str; 3] = ["admin", "editor", "viewer"];

/// Longest glob a capability may carry: names and URIs beyond it are not worth a rule.
const MAX_GLOB_CHARS: usize = 512;

/// Longest principal or group name a selector may carry.
const MAX_SELECTOR_NAME_CHARS: usize = 128;

/// What a rule does to the capabilities it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyEffect {
    /// Permits them; once a caller has an allow rule for a kind, only allowed names pass.
    Allow,
    /// Forbids them, whatever else allows them.
    Deny,
}

impl PolicyEffect {
    /// The effect as written and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyEffect::Allow => "allow",
            PolicyEffect::Deny => "deny",
        }
    }
}

impl FromStr for PolicyEffect {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<PolicyEffect, PolicyError> {
        match text {
            "allow" => Ok(PolicyEffect::Allow),
            "deny" => Ok(PolicyEffect::Deny),
            _ => Err(PolicyError::Effect(clip(text))),
        }
    }
}

/// Whom a rule applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PolicySelector {
    /// `*`: every caller, anonymous ones included.
    Everyone,
    /// `principal:NAME`: one user or service account, by name.
    Principal(String),
    /// `group:NAME`: the members of a group.
    Group(String),
    /// `role:NAME`: callers whose role on the server is `admin`, `editor` or `viewer`.
    Role(String),
}

impl FromStr for PolicySelector {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<PolicySelector, PolicyError> {
        if text == "*" {
            return Ok(PolicySelector::Everyone);
        }
        let refused = || PolicyError::Selector(clip(text));
        let (prefix, name) = text.split_once(':').ok_or_else(refused)?;
        let valid_name = !name.is_empty()
            && name.chars().count() <= MAX_SELECTOR_NAME_CHARS
            && !name.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid_name {
            return Err(refused());
        }
        match prefix {
            "principal" => Ok(PolicySelector::Principal(name.to_owned())),
            "group" => Ok(PolicySelector::Group(name.to_owned())),
            "role" if POLICY_ROLES.contains(&name) => Ok(PolicySelector::Role(name.to_owned())),
            "role" => Err(PolicyError::Role(clip(name))),
            _ => Err(refused()),
        }
    }
}

impl fmt::Display for PolicySelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicySelector::Everyone => f.write_str("*"),
            PolicySelector::Principal(name) => write!(f, "principal:{name}"),
            PolicySelector::Group(name) => write!(f, "group:{name}"),
            PolicySelector::Role(name) => write!(f, "role:{name}"),
        }
    }
}

/// Which list and which calls a capability glob is matched against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CapabilityKind {
    /// Tools, by name (`tools/list`, `tools/call`).
    Tool,
    /// Prompts, by name (`prompts/list`, `prompts/get`).
    Prompt,
    /// Resources, by URI (`resources/list`, `resources/read`, `resources/subscribe`).
    Resource,
    /// Resource templates, by `uriTemplate` (`resources/templates/list`).
    Template,
}

impl CapabilityKind {
    /// Every kind, in a fixed order (the index of a kind is its place here).
    pub const ALL: [CapabilityKind; 4] = [
        CapabilityKind::Tool,
        CapabilityKind::Prompt,
        CapabilityKind::Resource,
        CapabilityKind::Template,
    ];

    /// The kind as written before the glob and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            CapabilityKind::Tool => "tool",
            CapabilityKind::Prompt => "prompt",
            CapabilityKind::Resource => "resource",
            CapabilityKind::Template => "template",
        }
    }

    /// Its place in [`CapabilityKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    fn parse(text: &str) -> Option<CapabilityKind> {
        CapabilityKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// A kind and a glob over its names: `*` stands for any run of characters, `?` for one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Capability {
    /// What the glob is matched against.
    pub kind: CapabilityKind,
    /// The glob, as written.
    pub glob: String,
}

impl FromStr for Capability {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<Capability, PolicyError> {
        let refused = || PolicyError::Capability(clip(text));
        let (kind, glob) = text.split_once(':').ok_or_else(refused)?;
        let kind = CapabilityKind::parse(kind).ok_or_else(refused)?;
        if glob.is_empty()
            || glob.chars().count() > MAX_GLOB_CHARS
            || glob.chars().any(char::is_control)
        {
            return Err(refused());
        }
        Ok(Capability {
            kind,
            glob: glob.to_owned(),
        })
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.glob)
    }
}

/// A rule as written: `allow|deny SELECTOR CAPABILITY`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NewPolicyRule {
    /// Allow or deny.
    pub effect: PolicyEffect,
    /// Whom it applies to.
    pub selector: PolicySelector,
    /// What it applies to.
    pub capability: Capability,
}

/// A stored rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRule {
    /// Its id.
    pub id: PolicyId,
    /// The server it governs.
    pub server: ServerId,
    /// The rule.
    pub rule: NewPolicyRule,
    /// When it was added.
    pub created_at: Timestamp,
    /// Who added it, when known.
    pub created_by: Option<Actor>,
}

/// Why a rule does not parse; each message says what to write instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Neither `allow` nor `deny`.
    #[error("'{0}' is not an effect: write allow or deny")]
    Effect(String),
    /// Not a selector of the rule language.
    #[error(
        "'{0}' is not a selector: write principal:NAME (a user or service account), group:NAME, role:admin|editor|viewer, or * for everyone"
    )]
    Selector(String),
    /// A role selector naming no per-server role.
    #[error("'{0}' is not a server role: write role:admin, role:editor or role:viewer")]
    Role(String),
    /// Not a capability of the rule language.
    #[error(
        "'{0}' is not a capability: write tool:GLOB, prompt:GLOB, resource:GLOB (matched against the URI) or template:GLOB (matched against the uriTemplate), where * matches any run of characters and ? one, e.g. tool:delete_* (at most 512 characters, no control characters)"
    )]
    Capability(String),
}

/// What a user wrote, cut for an error message.
fn clip(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Access to tool-level policies; obtained from [`Store::policies`].
pub struct Policies<'a> {
    pub(crate) store: &'a Store,
}

/// The selected columns, with the name of the rule's author while it exists.
macro_rules! select_policies {
    ($rest:literal) => {
        concat!(
            "SELECT r.id, r.server_id, r.effect, r.selector, r.kind, r.glob, r.created_at, ",
            "r.created_by, p.name AS created_by_name ",
            "FROM policies r LEFT JOIN principals p ON p.id = r.created_by ",
            $rest
        )
    };
}

impl Policies<'_> {
    /// Adds `rule` to `server`'s policy, as added by `by`.
    pub async fn add(
        &self,
        server: &ServerId,
        rule: &NewPolicyRule,
        by: Option<&PrincipalId>,
    ) -> Result<PolicyRule, StoreError> {
        let id = PolicyId::generate();
        crate::sql::query(
            "INSERT INTO policies (id, server_id, effect, selector, kind, glob, created_at, created_by)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(server)
        .bind(rule.effect.as_str())
        .bind(rule.selector.to_string())
        .bind(rule.capability.kind.as_str())
        .bind(&rule.capability.glob)
        .bind(to_millis(now()))
        .bind(by)
        .execute(&self.store.pool)
        .await?;
        let added = crate::sql::query(select_policies!("WHERE r.id = ?"))
            .bind(&id)
            .fetch_one(&self.store.pool)
            .await?;
        self.store.publish(Change::Policies {
            server: server.clone(),
        });
        policy(&added)
    }

    /// Removes rule `id` of `server`; `None` when the server has no such rule.
    pub async fn remove(
        &self,
        server: &ServerId,
        id: &PolicyId,
    ) -> Result<Option<PolicyRule>, StoreError> {
        let Some(row) = crate::sql::query(select_policies!("WHERE r.id = ? AND r.server_id = ?"))
            .bind(id)
            .bind(server)
            .fetch_optional(&self.store.pool)
            .await?
        else {
            return Ok(None);
        };
        let removed = policy(&row)?;
        crate::sql::query("DELETE FROM policies WHERE id = ?")
            .bind(id)
            .execute(&self.store.pool)
            .await?;
        self.store.publish(Change::Policies {
            server: server.clone(),
        });
        Ok(Some(removed))
    }

    /// `server`'s rules, oldest first (in the order they were added).
    pub async fn list(&self, server: &ServerId) -> Result<Vec<PolicyRule>, StoreError> {
        crate::sql::query(select_policies!(
            "WHERE r.server_id = ? ORDER BY r.created_at, r.rowid"
        ))
        .bind(server)
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(policy)
        .collect()
    }

    /// Every server's rules, for a cache that holds them all.
    pub async fn all(&self) -> Result<Vec<PolicyRule>, StoreError> {
        crate::sql::query(select_policies!(
            "ORDER BY r.server_id, r.created_at, r.rowid"
        ))
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(policy)
        .collect()
    }
}

fn policy(row: &AnyRow) -> Result<PolicyRule, StoreError> {
    let corrupt = |e: PolicyError| StoreError::Corrupt(format!("policy rule: {e}"));
    let effect: String = row.try_get("effect")?;
    let selector: String = row.try_get("selector")?;
    let kind: String = row.try_get("kind")?;
    let glob: String = row.try_get("glob")?;
    let created_by: Option<PrincipalId> = row.try_get("created_by")?;
    Ok(PolicyRule {
        id: row.try_get("id")?,
        server: row.try_get("server_id")?,
        rule: NewPolicyRule {
            effect: effect.parse().map_err(corrupt)?,
            selector: selector.parse().map_err(corrupt)?,
            capability: format!("{kind}:{glob}").parse().map_err(corrupt)?,
        },
        created_at: from_millis(row.try_get("created_at")?)?,
        created_by: created_by.map(|id| Actor {
            id,
            name: row.try_get("created_by_name").ok().flatten(),
        }),
    })
}

#[cfg(test)]
mod tests;
