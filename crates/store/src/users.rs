//! Principals as accounts: users (who log in with a password) and service accounts (who only
//! hold keys), and groups of them.
//!
//! A password is kept only as an argon2id hash in the PHC string format (salt and parameters
//! inside), so the parameters can change later without a migration. Nothing here logs or
//! returns a password or a hash. The organisation always keeps one administrator: removing
//! the last one is refused.

use std::collections::HashMap;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{
    Change, GroupId, PrincipalId, Store, StoreError, Timestamp, from_millis, now, to_millis,
};

/// Longest name a principal or a group may have.
const MAX_NAME: usize = 64;

/// What kind of principal an account is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// A person, who may log in with a password.
    User,
    /// A machine (an agent, CI): keys only, never a login.
    Service,
}

impl PrincipalKind {
    /// The stored and shown form: `user` or `service`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Service => "service",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<PrincipalKind, StoreError> {
        match text {
            "user" => Ok(PrincipalKind::User),
            "service" => Ok(PrincipalKind::Service),
            other => Err(StoreError::Corrupt(format!("principal kind '{other}'"))),
        }
    }
}

/// A principal as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The principal.
    pub principal: crate::Principal,
    /// When it was created.
    pub created_at: Timestamp,
    /// The groups it belongs to, by name, sorted.
    pub groups: Vec<String>,
}

/// A principal to create.
#[derive(Clone, Debug)]
pub struct NewPrincipal<'a> {
    /// Its unique name.
    pub name: &'a str,
    /// Its e-mail address, if any.
    pub email: Option<&'a str>,
    /// User or service account.
    pub kind: PrincipalKind,
    /// Whether it administers the organisation.
    pub is_admin: bool,
}

/// A group as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Its id.
    pub id: GroupId,
    /// Its unique name.
    pub name: String,
    /// Its members' names, sorted.
    pub members: Vec<String>,
}

/// Why a principal or group could not be created or changed; messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// A name that cannot be used.
    #[error(
        "invalid name '{0}': use 1 to 64 lowercase letters, digits, '-', '_', '.' or '@', starting with a letter or digit"
    )]
    InvalidName(String),
    /// The name is taken.
    #[error("'{0}' already exists; choose another name")]
    Exists(String),
    /// No such principal.
    #[error("no user or service account named '{0}'; `skyport users ls` lists them")]
    NoPrincipal(String),
    /// No such group.
    #[error("no group named '{0}'; `skyport groups ls` lists them")]
    NoGroup(String),
    /// Removing it would leave the organisation without an administrator.
    #[error(
        "'{0}' is the last organisation admin; make another user admin first (`skyport users add NAME --admin`)"
    )]
    LastAdmin(String),
    /// A service account is given a password, or an org admin role.
    #[error("{0}")]
    Service(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Access to users, service accounts and groups; obtained from [`Store::users`].
pub struct Users<'a> {
    pub(crate) store: &'a Store,
}

/// The selected columns of a principal; a macro so that queries stay `&'static str`.
macro_rules! select_principals {
    ($rest:literal) => {
        concat!("SELECT id, name, is_admin, kind, email", $rest)
    };
}

impl Users<'_> {
    /// Creates the first organisation admin, `admin`, with a generated password, when the
    /// organisation has no admin; returns that password (shown once), else `None`.
    pub async fn bootstrap(&self) -> Result<Option<String>, StoreError> {
        let admins: i64 =
            crate::sql::query_scalar("SELECT COUNT(*) FROM principals WHERE is_admin = 1")
                .fetch_one(&self.store.pool)
                .await?;
        if admins > 0 {
            return Ok(None);
        }
        let password = generate_password();
        crate::sql::query(
            "INSERT INTO principals (id, name, is_admin, kind, password_hash, created_at)
             VALUES (?, 'admin', 1, 'user', ?, ?)
             ON CONFLICT (name) DO UPDATE SET is_admin = 1, password_hash = excluded.password_hash",
        )
        .bind(PrincipalId::generate())
        .bind(hash_password(&password).await?)
        .bind(to_millis(now()))
        .execute(&self.store.pool)
        .await?;
        self.store.publish(Change::Access);
        Ok(Some(password))
    }

    /// Creates a principal with `password` (users only; `None` for none yet).
    pub async fn create(
        &self,
        new: &NewPrincipal<'_>,
        password: Option<&str>,
    ) -> Result<crate::Principal, AccountError> {
        let name = valid_name(new.name)?;
        if new.kind == PrincipalKind::Service && password.is_some() {
            return Err(AccountError::Service(
                "a service account has no password; it authenticates with keys (`skyport keys create --for NAME`)".to_owned(),
            ));
        }
        // Principals and groups share `grant`'s argument, so one name cannot be both.
        if self.group_id(name).await?.is_some() {
            return Err(AccountError::Exists(name.to_owned()));
        }
        let hash = match password {
            Some(password) => Some(hash_password(password).await?),
            None => None,
        };
        let inserted = crate::sql::query(
            "INSERT INTO principals (id, name, is_admin, kind, email, password_hash, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(PrincipalId::generate())
        .bind(name)
        .bind(i64::from(new.is_admin))
        .bind(new.kind.as_str())
        .bind(new.email)
        .bind(hash)
        .bind(to_millis(now()))
        .execute(&self.store.pool)
        .await
        .map_err(StoreError::from)?
        .rows_affected();
        if inserted == 0 {
            return Err(AccountError::Exists(name.to_owned()));
        }
        self.store.publish(Change::Access);
        self.get(name)
            .await?
            .ok_or_else(|| AccountError::NoPrincipal(name.to_owned()))
    }

    /// The principal named `name`, if any.
    pub async fn get(&self, name: &str) -> Result<Option<crate::Principal>, StoreError> {
        crate::sql::query(select_principals!(" FROM principals WHERE name = ?"))
            .bind(name)
            .fetch_optional(&self.store.pool)
            .await?
            .map(|row| principal(&row))
            .transpose()
    }

    /// The principal with id `id`, if any.
    pub async fn by_id(
        &self,
        id: &crate::PrincipalId,
    ) -> Result<Option<crate::Principal>, StoreError> {
        crate::sql::query(select_principals!(" FROM principals WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.store.pool)
            .await?
            .map(|row| principal(&row))
            .transpose()
    }

    /// Every principal with its groups, by name.
    pub async fn list(&self) -> Result<Vec<Account>, StoreError> {
        let rows = crate::sql::query(select_principals!(
            ", created_at FROM principals ORDER BY name"
        ))
        .fetch_all(&self.store.pool)
        .await?;
        let memberships = crate::sql::query(
            "SELECT m.principal_id, g.name FROM group_members m JOIN groups g ON g.id = m.group_id
             ORDER BY g.name",
        )
        .fetch_all(&self.store.pool)
        .await?;
        let mut groups: HashMap<PrincipalId, Vec<String>> = HashMap::new();
        for row in &memberships {
            groups
                .entry(row.try_get("principal_id")?)
                .or_default()
                .push(row.try_get("name")?);
        }
        rows.iter()
            .map(|row| {
                let principal = principal(row)?;
                Ok(Account {
                    groups: groups.remove(&principal.id).unwrap_or_default(),
                    created_at: from_millis(row.try_get("created_at")?)?,
                    principal,
                })
            })
            .collect()
    }

    /// Removes the principal named `name` with its keys, grants and memberships; refuses to
    /// remove the last organisation admin. Returns it.
    pub async fn remove(&self, name: &str) -> Result<crate::Principal, AccountError> {
        let mut tx = self.store.write().await.map_err(StoreError::from)?;
        let row = crate::sql::query(select_principals!(" FROM principals WHERE name = ?"))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?
            .ok_or_else(|| AccountError::NoPrincipal(name.to_owned()))?;
        let removed = principal(&row)?;
        if removed.is_admin {
            let admins: i64 =
                crate::sql::query_scalar("SELECT COUNT(*) FROM principals WHERE is_admin = 1")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
            if admins <= 1 {
                return Err(AccountError::LastAdmin(name.to_owned()));
            }
        }
        crate::sql::query("DELETE FROM principals WHERE id = ?")
            .bind(&removed.id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        self.store.publish(Change::Keys);
        self.store.publish(Change::Access);
        Ok(removed)
    }

    /// The user `name` when `password` is theirs. Unknown names, service accounts and
    /// wrong passwords all answer `None` after the same work, so the answer (and its time)
    /// does not tell whether the user exists.
    pub async fn verify_password(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Option<crate::Principal>, StoreError> {
        let row = crate::sql::query(select_principals!(
            ", password_hash FROM principals
             WHERE name = ? AND kind = 'user' AND password_hash IS NOT NULL"
        ))
        .bind(name)
        .fetch_optional(&self.store.pool)
        .await?;
        let Some(row) = row else {
            // Hash anyway so a missing user costs what a wrong password costs.
            let _ = hash_password(password).await;
            return Ok(None);
        };
        let stored: String = row.try_get("password_hash")?;
        let (name, password) = (name.to_owned(), password.to_owned());
        let verified = off_thread(move || {
            let hash = PasswordHash::new(&stored)
                .map_err(|e| StoreError::Corrupt(format!("password hash of '{name}': {e}")))?;
            Ok::<_, StoreError>(
                Argon2::default()
                    .verify_password(password.as_bytes(), &hash)
                    .is_ok(),
            )
        })
        .await??;
        if verified {
            principal(&row).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Creates group `name`.
    pub async fn create_group(&self, name: &str) -> Result<Group, AccountError> {
        let name = valid_name(name)?;
        if self.get(name).await?.is_some() {
            return Err(AccountError::Exists(name.to_owned()));
        }
        let inserted = crate::sql::query(
            "INSERT INTO groups (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(GroupId::generate())
        .bind(name)
        .bind(to_millis(now()))
        .execute(&self.store.pool)
        .await
        .map_err(StoreError::from)?
        .rows_affected();
        if inserted == 0 {
            return Err(AccountError::Exists(name.to_owned()));
        }
        self.store.publish(Change::Access);
        Ok(Group {
            id: self
                .group_id(name)
                .await?
                .ok_or_else(|| AccountError::NoGroup(name.to_owned()))?,
            name: name.to_owned(),
            members: Vec::new(),
        })
    }

    /// Removes group `name` with its grants.
    pub async fn remove_group(&self, name: &str) -> Result<(), AccountError> {
        let removed = crate::sql::query("DELETE FROM groups WHERE name = ?")
            .bind(name)
            .execute(&self.store.pool)
            .await
            .map_err(StoreError::from)?
            .rows_affected();
        if removed == 0 {
            return Err(AccountError::NoGroup(name.to_owned()));
        }
        self.store.publish(Change::Access);
        Ok(())
    }

    /// Every group with its members, by name.
    pub async fn groups(&self) -> Result<Vec<Group>, StoreError> {
        let rows = crate::sql::query(
            "SELECT g.id, g.name, p.name AS member FROM groups g
             LEFT JOIN group_members m ON m.group_id = g.id
             LEFT JOIN principals p ON p.id = m.principal_id
             ORDER BY g.name, p.name",
        )
        .fetch_all(&self.store.pool)
        .await?;
        let mut groups: Vec<Group> = Vec::new();
        for row in &rows {
            let id: GroupId = row.try_get("id")?;
            let member: Option<String> = row.try_get("member")?;
            if groups.last().is_none_or(|g| g.id != id) {
                groups.push(Group {
                    id,
                    name: row.try_get("name")?,
                    members: Vec::new(),
                });
            }
            if let (Some(group), Some(member)) = (groups.last_mut(), member) {
                group.members.push(member);
            }
        }
        Ok(groups)
    }

    /// Adds principal `member` to group `group` (already a member is fine).
    pub async fn add_member(&self, group: &str, member: &str) -> Result<(), AccountError> {
        let (group_id, principal) = self.membership(group, member).await?;
        crate::sql::query(
            "INSERT INTO group_members (group_id, principal_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(group_id)
        .bind(principal.id)
        .execute(&self.store.pool)
        .await
        .map_err(StoreError::from)?;
        self.store.publish(Change::Access);
        Ok(())
    }

    /// Removes principal `member` from group `group` (not a member is fine).
    pub async fn remove_member(&self, group: &str, member: &str) -> Result<(), AccountError> {
        let (group_id, principal) = self.membership(group, member).await?;
        crate::sql::query("DELETE FROM group_members WHERE group_id = ? AND principal_id = ?")
            .bind(group_id)
            .bind(principal.id)
            .execute(&self.store.pool)
            .await
            .map_err(StoreError::from)?;
        self.store.publish(Change::Access);
        Ok(())
    }

    /// The id of group `name`, if it exists.
    pub async fn group_id(&self, name: &str) -> Result<Option<GroupId>, StoreError> {
        Ok(
            crate::sql::query_scalar("SELECT id FROM groups WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.store.pool)
                .await?,
        )
    }

    /// The names of the groups `principal` belongs to, sorted.
    pub async fn group_names(&self, principal: &PrincipalId) -> Result<Vec<String>, StoreError> {
        Ok(crate::sql::query_scalar(
            "SELECT g.name FROM groups g JOIN group_members m ON m.group_id = g.id
             WHERE m.principal_id = ? ORDER BY g.name",
        )
        .bind(principal)
        .fetch_all(&self.store.pool)
        .await?)
    }

    async fn membership(
        &self,
        group: &str,
        member: &str,
    ) -> Result<(GroupId, crate::Principal), AccountError> {
        let group_id = self
            .group_id(group)
            .await?
            .ok_or_else(|| AccountError::NoGroup(group.to_owned()))?;
        let principal = self
            .get(member)
            .await?
            .ok_or_else(|| AccountError::NoPrincipal(member.to_owned()))?;
        Ok((group_id, principal))
    }
}

/// A new random password: 20 characters from an alphabet without look-alikes (about 115
/// bits), easy to copy from a terminal.
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// Argon2 costs tens of milliseconds of CPU by design: it runs off the async workers, which
/// also serve every MCP request.
async fn hash_password(password: &str) -> Result<String, StoreError> {
    let password = password.to_owned();
    off_thread(move || hash_now(&password)).await?
}

async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Corrupt(format!("password hashing did not finish: {e}")))
}

fn hash_now(password: &str) -> Result<String, StoreError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| StoreError::Corrupt(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| StoreError::Corrupt(format!("cannot hash a password: {e}")))
}

/// A principal or group name: short, lowercase, safe in URLs, and not `group:…` (which names
/// a group where either may be meant).
fn valid_name(name: &str) -> Result<&str, AccountError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.' | b'@')
        });
    if ok {
        Ok(name)
    } else {
        Err(AccountError::InvalidName(name.chars().take(80).collect()))
    }
}

pub(crate) fn principal(row: &AnyRow) -> Result<crate::Principal, StoreError> {
    Ok(crate::Principal {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        is_admin: crate::sql::flag(row, "is_admin")?,
        kind: PrincipalKind::parse(row.try_get("kind")?)?,
        email: row.try_get("email")?,
    })
}
