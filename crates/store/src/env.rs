//! Environment variables and secrets: per server and scope (production, preview, one branch),
//! and the snapshot each deployment takes of them when its build starts.
//!
//! Secret values are sealed before they reach SQL (see `secrets.rs`) and are opened only for
//! what runs the deployment (the build, instances); listings never open them. A snapshot copies
//! the sealed bytes as they are, so changing a variable later changes no deployment.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use sqlx::Row;

use crate::secrets::{self, MasterKey};
use crate::{
    DeploymentId, Preview, ServerId, Store, StoreError, Timestamp, from_millis, now, to_millis,
};

/// Longest value a variable may hold.
pub const MAX_VALUE_BYTES: usize = 32 * 1024;
/// Longest variable name.
const MAX_NAME_LEN: usize = 255;
/// Names Skyport sets for every instance or build process; a deployment cannot change them.
const RESERVED: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONUNBUFFERED",
    "PYTHONDONTWRITEBYTECODE",
];
/// The prefix of the variables Skyport passes to instances (`SKYPORT_LISTEN_FD`…).
const RESERVED_PREFIX: &str = "SKYPORT_";

/// Why a variable name, value or scope is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// Not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error(
        "'{0}' is not a variable name: use letters, digits and '_', not starting with a digit (e.g. API_KEY)"
    )]
    InvalidName(String),
    /// A name Skyport sets itself.
    #[error(
        "{0} is set by Skyport for every server (SKYPORT_*, PATH, HOME, TMPDIR, LANG and Python's own PYTHON* settings); choose another name"
    )]
    ReservedName(String),
    /// A value Skyport cannot pass to a process.
    #[error("the value of {name} {why}")]
    InvalidValue {
        /// The variable.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Not `production`, `preview` or `branch:NAME`.
    #[error(
        "'{0}' is not a scope: use production, preview (every preview deployment) or branch:NAME (previews of one branch)"
    )]
    InvalidScope(String),
}

/// A variable's name, checked: `[A-Za-z_][A-Za-z0-9_]*` and none of Skyport's own.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvKey(String);

impl EnvKey {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for EnvKey {
    type Err = EnvError;

    fn from_str(s: &str) -> Result<EnvKey, EnvError> {
        let mut chars = s.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && s.len() <= MAX_NAME_LEN;
        if !valid {
            return Err(EnvError::InvalidName(s.chars().take(80).collect()));
        }
        if s.starts_with(RESERVED_PREFIX) || RESERVED.contains(&s) {
            return Err(EnvError::ReservedName(s.to_owned()));
        }
        Ok(EnvKey(s.to_owned()))
    }
}

impl fmt::Display for EnvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which deployments a variable reaches.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EnvScope {
    /// Production deployments of the server.
    Production,
    /// Every preview deployment of the server.
    Preview,
    /// Preview deployments of one branch; overrides [`EnvScope::Preview`].
    Branch(String),
}

impl FromStr for EnvScope {
    type Err = EnvError;

    fn from_str(s: &str) -> Result<EnvScope, EnvError> {
        match s {
            "production" => Ok(EnvScope::Production),
            "preview" => Ok(EnvScope::Preview),
            _ => match s.strip_prefix("branch:") {
                Some(branch)
                    if !branch.is_empty()
                        && branch.len() <= MAX_NAME_LEN
                        && !branch.chars().any(|c| c.is_whitespace() || c.is_control()) =>
                {
                    Ok(EnvScope::Branch(branch.to_owned()))
                }
                _ => Err(EnvError::InvalidScope(s.chars().take(80).collect())),
            },
        }
    }
}

impl fmt::Display for EnvScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvScope::Production => f.write_str("production"),
            EnvScope::Preview => f.write_str("preview"),
            EnvScope::Branch(branch) => write!(f, "branch:{branch}"),
        }
    }
}

/// A variable to set: a checked name and a value a process can receive.
#[derive(Clone, PartialEq, Eq)]
pub struct NewEnvVar {
    name: EnvKey,
    value: String,
    secret: bool,
}

impl NewEnvVar {
    /// Checks the value: at most [`MAX_VALUE_BYTES`], no NUL byte.
    pub fn new(name: EnvKey, value: String, secret: bool) -> Result<NewEnvVar, EnvError> {
        let refuse = |why| EnvError::InvalidValue {
            name: name.to_string(),
            why,
        };
        if value.contains('\0') {
            return Err(refuse(
                "contains a NUL byte, which no process environment can hold",
            ));
        }
        if value.len() > MAX_VALUE_BYTES {
            return Err(refuse(
                "is longer than 32 KiB; put large data in a file instead",
            ));
        }
        Ok(NewEnvVar {
            name,
            value,
            secret,
        })
    }

    /// The variable's name.
    pub fn name(&self) -> &EnvKey {
        &self.name
    }

    /// Whether it is a secret.
    pub fn is_secret(&self) -> bool {
        self.secret
    }
}

impl fmt::Debug for NewEnvVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewEnvVar")
            .field("name", &self.name)
            .field("value", &shown(&self.value, self.secret))
            .field("secret", &self.secret)
            .finish()
    }
}

/// One variable of a deployment's environment, opened: what its build and instances get.
#[derive(Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: String,
    /// A secret's value is replaced by `[redacted:NAME]` in everything Skyport stores or shows.
    pub secret: bool,
}

impl fmt::Debug for EnvVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvVar")
            .field("name", &self.name)
            .field("value", &shown(&self.value, self.secret))
            .field("secret", &self.secret)
            .finish()
    }
}

fn shown(value: &str, secret: bool) -> &str {
    if secret { "[redacted]" } else { value }
}

/// A stored variable as listings show it: a secret's value is never read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvEntry {
    /// Its name.
    pub name: String,
    /// Its scope.
    pub scope: EnvScope,
    /// Whether it is a secret.
    pub secret: bool,
    /// The value of a plain variable; `None` for a secret.
    pub value: Option<String>,
    /// When it was last set.
    pub updated_at: Timestamp,
}

/// The variables a deployment gets out of one server's variables in every scope: for a
/// production deployment (`branch` is `None`) the production scope's; for a preview of `branch`,
/// the preview scope's overridden by the `branch:<branch>` scope's. Sorted by name.
pub fn resolve<V>(stored: Vec<(EnvScope, String, V)>, branch: Option<&str>) -> Vec<(String, V)> {
    // Lower ranks are overridden by higher ones; scopes without a rank do not apply.
    let rank = |scope: &EnvScope| match (scope, branch) {
        (EnvScope::Production, None) => Some(0),
        (EnvScope::Preview, Some(_)) => Some(0),
        (EnvScope::Branch(b), Some(wanted)) if b == wanted => Some(1),
        _ => None,
    };
    let mut ranked: Vec<(u8, String, V)> = stored
        .into_iter()
        .filter_map(|(scope, name, value)| rank(&scope).map(|r| (r, name, value)))
        .collect();
    ranked.sort_by_key(|(r, _, _)| *r);
    let mut resolved = BTreeMap::new();
    for (_, name, value) in ranked {
        resolved.insert(name, value);
    }
    resolved.into_iter().collect()
}

/// Access to variables and secrets; obtained from [`Store::env`].
pub struct Env<'a> {
    pub(crate) store: &'a Store,
}

/// A stored value: plain text, or sealed bytes.
struct Stored {
    value: Vec<u8>,
    secret: bool,
}

impl Env<'_> {
    /// Sets `vars` in `server`'s `scope`, replacing variables of the same names, in one
    /// transaction. Secrets are sealed first.
    pub async fn set(
        &self,
        server: &ServerId,
        scope: &EnvScope,
        vars: &[NewEnvVar],
    ) -> Result<(), StoreError> {
        let at = to_millis(now());
        let mut sealed = Vec::with_capacity(vars.len());
        for var in vars {
            let value = if var.secret {
                let key = self.key()?;
                secrets::seal(key, var.name.as_str(), &var.value).ok_or_else(|| {
                    StoreError::Sealed(format!("cannot encrypt the value of {}", var.name))
                })?
            } else {
                var.value.as_bytes().to_vec()
            };
            sealed.push((var, value));
        }
        let mut tx = self.store.write().await?;
        for (var, value) in sealed {
            crate::sql::query(
                "INSERT INTO env_vars (server_id, scope, name, value, secret, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (server_id, scope, name)
                 DO UPDATE SET value = excluded.value, secret = excluded.secret,
                 updated_at = excluded.updated_at",
            )
            .bind(server)
            .bind(scope.to_string())
            .bind(var.name.as_str())
            .bind(value)
            .bind(i64::from(var.secret))
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes `names` from `server`'s `scope`; returns those that were set.
    pub async fn unset(
        &self,
        server: &ServerId,
        scope: &EnvScope,
        names: &[EnvKey],
    ) -> Result<Vec<EnvKey>, StoreError> {
        let mut removed = Vec::new();
        let mut tx = self.store.write().await?;
        for name in names {
            let done = crate::sql::query(
                "DELETE FROM env_vars WHERE server_id = ? AND scope = ? AND name = ?",
            )
            .bind(server)
            .bind(scope.to_string())
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() > 0 {
                removed.push(name.clone());
            }
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// `server`'s variables (in `scope`, or in every scope), by scope then name; secrets
    /// without their values.
    pub async fn list(
        &self,
        server: &ServerId,
        scope: Option<&EnvScope>,
    ) -> Result<Vec<EnvEntry>, StoreError> {
        let rows = crate::sql::query(
            "SELECT scope, name, value, secret, updated_at FROM env_vars
             WHERE server_id = ? AND (? IS NULL OR scope = ?) ORDER BY scope, name",
        )
        .bind(server)
        .bind(scope.map(ToString::to_string))
        .bind(scope.map(ToString::to_string))
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let secret = crate::sql::flag(row, "secret")?;
                let value = if secret {
                    None
                } else {
                    Some(plain(row.try_get("value")?)?)
                };
                Ok(EnvEntry {
                    name: row.try_get("name")?,
                    scope: stored_scope(&row.try_get::<String, _>("scope")?)?,
                    secret,
                    value,
                    updated_at: from_millis(row.try_get("updated_at")?)?,
                })
            })
            .collect()
    }

    /// Fixes the environment of `deployment` (of `server`): the production scope of `server`,
    /// or for a preview the resolved preview scopes of its parent. Returns the names.
    pub async fn snapshot(
        &self,
        deployment: &DeploymentId,
        server: &ServerId,
        preview: Option<&Preview>,
    ) -> Result<Vec<String>, StoreError> {
        let (source, branch) = match preview {
            Some(p) => (&p.parent, Some(p.branch.as_str())),
            None => (server, None),
        };
        let mut tx = self.store.write().await?;
        let rows = crate::sql::query(
            "SELECT scope, name, value, secret FROM env_vars WHERE server_id = ?",
        )
        .bind(source)
        .fetch_all(&mut *tx)
        .await?;
        let mut stored = Vec::with_capacity(rows.len());
        for row in &rows {
            stored.push((
                stored_scope(&row.try_get::<String, _>("scope")?)?,
                row.try_get::<String, _>("name")?,
                Stored {
                    value: row.try_get("value")?,
                    secret: crate::sql::flag(row, "secret")?,
                },
            ));
        }
        let resolved = resolve(stored, branch);
        for (name, stored) in &resolved {
            crate::sql::query(
                "INSERT INTO deployment_env (deployment_id, name, value, secret) VALUES (?, ?, ?, ?)",
            )
            .bind(deployment)
            .bind(name)
            .bind(&stored.value)
            .bind(i64::from(stored.secret))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(resolved.into_iter().map(|(name, _)| name).collect())
    }

    /// The environment fixed for `deployment`, secrets opened, by name.
    pub async fn of_deployment(
        &self,
        deployment: &DeploymentId,
    ) -> Result<Vec<EnvVar>, StoreError> {
        let rows = crate::sql::query(
            "SELECT name, value, secret FROM deployment_env WHERE deployment_id = ? ORDER BY name",
        )
        .bind(deployment)
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter().map(|row| self.opened(row)).collect()
    }

    /// The environments of every server's live deployment, secrets opened.
    pub(crate) async fn live(&self) -> Result<BTreeMap<DeploymentId, Vec<EnvVar>>, StoreError> {
        let rows = crate::sql::query(
            "SELECT e.deployment_id, e.name, e.value, e.secret FROM deployment_env e
             JOIN servers s ON s.live_deployment_id = e.deployment_id ORDER BY e.name",
        )
        .fetch_all(&self.store.pool)
        .await?;
        let mut live: BTreeMap<DeploymentId, Vec<EnvVar>> = BTreeMap::new();
        for row in &rows {
            live.entry(row.try_get("deployment_id")?)
                .or_default()
                .push(self.opened(row)?);
        }
        Ok(live)
    }

    /// Opens every stored secret once, so that a wrong master key is found at startup rather
    /// than by the first build or instance; returns how many there are.
    pub async fn check_secrets(&self) -> Result<usize, StoreError> {
        let rows = crate::sql::query(
            "SELECT name, value, secret FROM env_vars WHERE secret = 1
             UNION ALL SELECT name, value, secret FROM deployment_env WHERE secret = 1",
        )
        .fetch_all(&self.store.pool)
        .await?;
        for row in &rows {
            self.opened(row)?;
        }
        Ok(rows.len())
    }

    fn opened(&self, row: &sqlx::any::AnyRow) -> Result<EnvVar, StoreError> {
        let name: String = row.try_get("name")?;
        let secret = crate::sql::flag(row, "secret")?;
        let bytes: Vec<u8> = row.try_get("value")?;
        let value = if secret {
            secrets::open(self.key()?, &name, &bytes).ok_or_else(|| {
                StoreError::Sealed(format!(
                    "cannot decrypt the secret {name} with this master key: the data directory was moved or restored without its {}, or SKYPORT_MASTER_KEY changed; start Skyport with the key the secrets were stored with",
                    secrets::MASTER_KEY_FILE
                ))
            })?
        } else {
            plain(bytes)?
        };
        Ok(EnvVar {
            name,
            value,
            secret,
        })
    }

    fn key(&self) -> Result<&MasterKey, StoreError> {
        self.store.master_key()
    }
}

fn plain(bytes: Vec<u8>) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|_| StoreError::Corrupt("a variable is not UTF-8".to_owned()))
}

fn stored_scope(text: &str) -> Result<EnvScope, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown scope '{text}'")))
}

#[cfg(test)]
mod tests;
