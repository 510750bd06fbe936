//! The control-plane audit log: who changed what through the API (deploys, rollbacks,
//! settings, variables and secrets, keys, grants, policies), when, with the state before and
//! after as JSON. Read newest first, pruned with the MCP audit log's retention.
//!
//! Events hold names and settings, never values of variables or secrets and never key
//! secrets: the constructors for variable changes take the variable and keep only its name and
//! kind, so a caller cannot put a value in by mistake. This module does not decide which
//! changes are recorded; the API handlers do, after the change succeeded.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{
    AuditRetention, EnvKey, EnvScope, MAX_AUDIT_PAGE, NewEnvVar, Principal, PrincipalId,
    ServerName, Store, StoreError, Timestamp, from_millis, now, to_millis,
};

/// What kind of change an event records; the vocabulary is fixed, so that a SIEM can match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ControlAction {
    /// A build was started (it goes live when it succeeds).
    #[serde(rename = "deploy")]
    Deploy,
    /// An earlier deployment was made live again.
    #[serde(rename = "rollback")]
    Rollback,
    /// A new deployment from the live one's source.
    #[serde(rename = "redeploy")]
    Redeploy,
    /// A server was created or its description, settings or tracked source changed.
    #[serde(rename = "server.settings")]
    ServerSettings,
    /// A server (and its previews) was removed.
    #[serde(rename = "server.remove")]
    ServerRemove,
    /// A deployment that is not live was removed.
    #[serde(rename = "deployment.remove")]
    DeploymentRemove,
    /// A queued or running build was cancelled.
    #[serde(rename = "deployment.cancel")]
    DeploymentCancel,
    /// A plain variable was set.
    #[serde(rename = "env.set")]
    EnvSet,
    /// A variable or secret was removed.
    #[serde(rename = "env.unset")]
    EnvUnset,
    /// A secret was set.
    #[serde(rename = "secret.set")]
    SecretSet,
    /// An API key was created.
    #[serde(rename = "key.create")]
    KeyCreate,
    /// An API key was revoked.
    #[serde(rename = "key.revoke")]
    KeyRevoke,
    /// A role on a server was granted.
    #[serde(rename = "access.grant")]
    AccessGrant,
    /// A role on a server was revoked.
    #[serde(rename = "access.revoke")]
    AccessRevoke,
    /// A server's default role for organisation members changed.
    #[serde(rename = "access.default")]
    AccessDefault,
    /// A tool-level policy rule was added.
    #[serde(rename = "policy.add")]
    PolicyAdd,
    /// A tool-level policy rule was removed.
    #[serde(rename = "policy.remove")]
    PolicyRemove,
    /// A new key signs identity tokens.
    #[serde(rename = "signing-key.rotate")]
    SigningKeyRotate,
    /// An OAuth client was made for a service account.
    #[serde(rename = "oauth-client.create")]
    OAuthClientCreate,
    /// An OAuth client was removed.
    #[serde(rename = "oauth-client.remove")]
    OAuthClientRemove,
    /// A language-model provider was added.
    #[serde(rename = "provider.create")]
    ProviderCreate,
    /// A provider's settings or API key changed.
    #[serde(rename = "provider.change")]
    ProviderChange,
    /// A provider was removed.
    #[serde(rename = "provider.remove")]
    ProviderRemove,
    /// An agent was created.
    #[serde(rename = "agent.create")]
    AgentCreate,
    /// An agent's definition changed.
    #[serde(rename = "agent.change")]
    AgentChange,
    /// An agent was removed.
    #[serde(rename = "agent.remove")]
    AgentRemove,
}

impl ControlAction {
    /// Every action, in the order they are documented.
    pub const ALL: [ControlAction; 26] = [
        ControlAction::Deploy,
        ControlAction::Rollback,
        ControlAction::Redeploy,
        ControlAction::ServerSettings,
        ControlAction::ServerRemove,
        ControlAction::DeploymentRemove,
        ControlAction::DeploymentCancel,
        ControlAction::EnvSet,
        ControlAction::EnvUnset,
        ControlAction::SecretSet,
        ControlAction::KeyCreate,
        ControlAction::KeyRevoke,
        ControlAction::AccessGrant,
        ControlAction::AccessRevoke,
        ControlAction::AccessDefault,
        ControlAction::PolicyAdd,
        ControlAction::PolicyRemove,
        ControlAction::SigningKeyRotate,
        ControlAction::OAuthClientCreate,
        ControlAction::OAuthClientRemove,
        ControlAction::ProviderCreate,
        ControlAction::ProviderChange,
        ControlAction::ProviderRemove,
        ControlAction::AgentCreate,
        ControlAction::AgentChange,
        ControlAction::AgentRemove,
    ];

    /// The action as stored and shown (`deploy`, `env.set`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ControlAction::Deploy => "deploy",
            ControlAction::Rollback => "rollback",
            ControlAction::Redeploy => "redeploy",
            ControlAction::ServerSettings => "server.settings",
            ControlAction::ServerRemove => "server.remove",
            ControlAction::DeploymentRemove => "deployment.remove",
            ControlAction::DeploymentCancel => "deployment.cancel",
            ControlAction::EnvSet => "env.set",
            ControlAction::EnvUnset => "env.unset",
            ControlAction::SecretSet => "secret.set",
            ControlAction::KeyCreate => "key.create",
            ControlAction::KeyRevoke => "key.revoke",
            ControlAction::AccessGrant => "access.grant",
            ControlAction::AccessRevoke => "access.revoke",
            ControlAction::AccessDefault => "access.default",
            ControlAction::PolicyAdd => "policy.add",
            ControlAction::PolicyRemove => "policy.remove",
            ControlAction::SigningKeyRotate => "signing-key.rotate",
            ControlAction::OAuthClientCreate => "oauth-client.create",
            ControlAction::OAuthClientRemove => "oauth-client.remove",
            ControlAction::ProviderCreate => "provider.create",
            ControlAction::ProviderChange => "provider.change",
            ControlAction::ProviderRemove => "provider.remove",
            ControlAction::AgentCreate => "agent.create",
            ControlAction::AgentChange => "agent.change",
            ControlAction::AgentRemove => "agent.remove",
        }
    }
}

impl fmt::Display for ControlAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not one of [`ControlAction::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown action '{0}'; use one of deploy, rollback, redeploy, server.settings, server.remove, deployment.remove, deployment.cancel, env.set, env.unset, secret.set, key.create, key.revoke, access.grant, access.revoke, access.default, policy.add, policy.remove, signing-key.rotate, oauth-client.create, oauth-client.remove, provider.create, provider.change, provider.remove, agent.create, agent.change, agent.remove"
)]
pub struct UnknownAction(String);

impl FromStr for ControlAction {
    type Err = UnknownAction;

    fn from_str(text: &str) -> Result<ControlAction, UnknownAction> {
        ControlAction::ALL
            .into_iter()
            .find(|a| a.as_str() == text)
            .ok_or_else(|| UnknownAction(text.to_owned()))
    }
}

/// A change to record.
#[derive(Clone, Debug, PartialEq)]
pub struct NewControlEvent {
    /// Who made it (`None` when the principal no longer exists).
    pub actor: Option<PrincipalId>,
    /// The actor's name at the time.
    pub actor_name: String,
    /// What kind of change.
    pub action: ControlAction,
    /// The server it changed, if any.
    pub server: Option<ServerName>,
    /// What in the server (or outside one) it changed: a variable's name, a key's id, a
    /// deployment's id.
    pub subject: Option<String>,
    /// The state before, as names and settings.
    pub before: Option<Value>,
    /// The state after, as names and settings.
    pub after: Option<Value>,
}

impl NewControlEvent {
    /// An event of `action` by `actor`, on `server` when it concerns one.
    pub fn new(
        actor: &Principal,
        action: ControlAction,
        server: Option<&ServerName>,
    ) -> NewControlEvent {
        NewControlEvent {
            actor: Some(actor.id.clone()),
            actor_name: actor.name.clone(),
            action,
            server: server.cloned(),
            subject: None,
            before: None,
            after: None,
        }
    }

    /// This event about `subject`.
    pub fn subject(mut self, subject: impl Into<String>) -> NewControlEvent {
        self.subject = Some(subject.into());
        self
    }

    /// This event with the state before the change.
    pub fn before(mut self, before: Value) -> NewControlEvent {
        self.before = Some(before);
        self
    }

    /// This event with the state after the change.
    pub fn after(mut self, after: Value) -> NewControlEvent {
        self.after = Some(after);
        self
    }

    /// `var` was set in `scope` of `server` (`secret.set` or `env.set`); `was` tells whether it
    /// was set before and whether it was a secret then. The value is not taken.
    pub fn env_set(
        actor: &Principal,
        server: &ServerName,
        scope: &EnvScope,
        var: &NewEnvVar,
        was: Option<bool>,
    ) -> NewControlEvent {
        let action = if var.is_secret() {
            ControlAction::SecretSet
        } else {
            ControlAction::EnvSet
        };
        let event = NewControlEvent::new(actor, action, Some(server))
            .subject(var.name().as_str())
            .after(variable(scope, var.is_secret()));
        match was {
            Some(secret) => event.before(variable(scope, secret)),
            None => event,
        }
    }

    /// `name` was removed from `scope` of `server`.
    pub fn env_unset(
        actor: &Principal,
        server: &ServerName,
        scope: &EnvScope,
        name: &EnvKey,
    ) -> NewControlEvent {
        NewControlEvent::new(actor, ControlAction::EnvUnset, Some(server))
            .subject(name.as_str())
            .before(serde_json::json!({ "scope": scope.to_string() }))
    }
}

/// What a variable event shows of a variable: where it is and whether it is a secret.
fn variable(scope: &EnvScope, secret: bool) -> Value {
    serde_json::json!({ "scope": scope.to_string(), "secret": secret })
}

/// A recorded change.
#[derive(Clone, Debug, PartialEq)]
pub struct ControlEvent {
    /// Position in the log; increases with every event.
    pub id: i64,
    /// When it was recorded.
    pub at: Timestamp,
    /// The change.
    pub event: NewControlEvent,
}

/// Which events to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControlQuery {
    /// Only events on this server.
    pub server: Option<ServerName>,
    /// Only events of this kind.
    pub action: Option<ControlAction>,
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// At most this many (capped at [`MAX_AUDIT_PAGE`]).
    pub limit: u32,
}

/// Access to the control-plane audit log; obtained from [`Store::control_audit`].
pub struct ControlAudit<'a> {
    pub(crate) store: &'a Store,
}

impl ControlAudit<'_> {
    /// Appends `event`, stamped now; returns it as stored.
    pub async fn record(&self, event: NewControlEvent) -> Result<ControlEvent, StoreError> {
        // Stamped to the millisecond, as stored, so that the answer equals what is read back.
        let at = from_millis(to_millis(now()))?;
        let id: i64 = crate::sql::query_scalar(
            "INSERT INTO control_audit (at, principal_id, principal_name, action, server_name,
             subject, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(to_millis(at))
        .bind(&event.actor)
        .bind(&event.actor_name)
        .bind(event.action.as_str())
        .bind(event.server.as_ref().map(ServerName::as_str))
        .bind(&event.subject)
        .bind(event.before.as_ref().map(Value::to_string))
        .bind(event.after.as_ref().map(Value::to_string))
        .fetch_one(&self.store.pool)
        .await?;
        Ok(ControlEvent { id, at, event })
    }

    /// The newest events matching `query`, newest first.
    pub async fn query(&self, query: &ControlQuery) -> Result<Vec<ControlEvent>, StoreError> {
        crate::sql::query(
            "SELECT id, at, principal_id, principal_name, action, server_name, subject, before,
                    after
             FROM control_audit
             WHERE (?1 IS NULL OR server_name = ?1) AND (?2 IS NULL OR action = ?2)
               AND (?3 IS NULL OR at >= ?3)
             ORDER BY at DESC, id DESC LIMIT ?4",
        )
        .bind(query.server.as_ref().map(ServerName::as_str))
        .bind(query.action.map(ControlAction::as_str))
        .bind(query.since.map(to_millis))
        .bind(i64::from(query.limit.min(MAX_AUDIT_PAGE)))
        .fetch_all(&self.store.pool)
        .await?
        .iter()
        .map(control_event)
        .collect()
    }

    /// Deletes events past `retention` (the MCP audit log's): too old, or beyond the row cap.
    pub async fn prune(&self, retention: &AuditRetention) -> Result<u64, StoreError> {
        crate::audit::prune(
            self.store,
            retention,
            "DELETE FROM control_audit WHERE at < ?",
            "DELETE FROM control_audit WHERE id <= (
                SELECT id FROM control_audit ORDER BY id DESC LIMIT 1 OFFSET ?)",
        )
        .await
    }
}

fn control_event(row: &AnyRow) -> Result<ControlEvent, StoreError> {
    let action: String = row.try_get("action")?;
    let server: Option<String> = row.try_get("server_name")?;
    let json = |column: &str| -> Result<Option<Value>, StoreError> {
        row.try_get::<Option<String>, _>(column)?
            .map(|text| {
                serde_json::from_str(&text)
                    .map_err(|e| StoreError::Corrupt(format!("control audit {column}: {e}")))
            })
            .transpose()
    };
    Ok(ControlEvent {
        id: row.try_get("id")?,
        at: from_millis(row.try_get("at")?)?,
        event: NewControlEvent {
            actor: row.try_get("principal_id")?,
            actor_name: row.try_get("principal_name")?,
            action: action
                .parse()
                .map_err(|e: UnknownAction| StoreError::Corrupt(e.to_string()))?,
            server: server
                .map(|name| {
                    name.parse().map_err(|_| {
                        StoreError::Corrupt(format!("control audit server name '{name}'"))
                    })
                })
                .transpose()?,
            subject: row.try_get("subject")?,
            before: json("before")?,
            after: json("after")?,
        },
    })
}

#[cfg(test)]
mod tests;
