//! Promotions: the record of every move of a server's live pointer (a deploy going live, a
//! rollback), the choice of the deployment a rollback goes to, and which artifacts a removed
//! server leaves unused.
//!
//! Choosing is pure (`previous_target`, `chosen_target`) so that the rules are tested without a
//! database; the repository methods only read what they need. Nothing here starts instances:
//! readying the chosen deployment is the caller's part.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::deployments::parse_enum;
use crate::{
    Deployment, DeploymentId, DeploymentStatus, Deployments, FailureKind, PrincipalId, Server,
    ServerId, ServerName, StoreError, Timestamp, from_millis,
};

/// Who did something, as far as the store knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The principal.
    pub id: PrincipalId,
    /// Its name, while the principal exists.
    pub name: Option<String>,
}

/// Why a server's live pointer moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromotionKind {
    /// A fresh build went live.
    Deploy,
    /// An earlier deployment was made live again, without a build.
    Rollback,
}

impl PromotionKind {
    /// The kind as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            PromotionKind::Deploy => "deploy",
            PromotionKind::Rollback => "rollback",
        }
    }
}

/// One move of a server's live pointer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promotion {
    /// The deployment that went live.
    pub deployment: DeploymentId,
    /// The one that served before, if any.
    pub previous: Option<DeploymentId>,
    /// A deploy or a rollback.
    pub kind: PromotionKind,
    /// Who caused it: the rollback's caller, or the deployment's creator.
    pub by: Option<Actor>,
    /// When it happened.
    pub at: Timestamp,
}

/// Why a deployment cannot be rolled back to; each message says what to do instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RollbackRefusal {
    /// Nothing of the server matches the given id or prefix.
    #[error(
        "no deployment of '{server}' matches '{given}'; `skyport deployments {server}` lists them"
    )]
    Unknown {
        /// The server rolled back.
        server: ServerName,
        /// What the caller gave.
        given: String,
    },
    /// A prefix matches several deployments.
    #[error("'{given}' matches {} deployments of '{server}' ({}); give more of the id", .matches.len(), list(.matches))]
    Ambiguous {
        /// The server rolled back.
        server: ServerName,
        /// What the caller gave.
        given: String,
        /// The deployments it matches.
        matches: Vec<DeploymentId>,
    },
    /// The deployment belongs to another server.
    #[error(
        "deployment {id} belongs to server '{owner}', not '{server}'; run `skyport rollback {owner} {id}` to roll that server back"
    )]
    OtherServer {
        /// The server rolled back.
        server: ServerName,
        /// The deployment given.
        id: DeploymentId,
        /// The server it belongs to.
        owner: ServerName,
    },
    /// The deployment is still queued or building.
    #[error("deployment {id} is still being built ({}); it goes live by itself when its build succeeds", if *.status == DeploymentStatus::Queued { "queued" } else { "building" })]
    Building {
        /// The deployment given.
        id: DeploymentId,
        /// Queued or building.
        status: DeploymentStatus,
    },
    /// The deployment's build failed or was cancelled: there is nothing to run.
    #[error("deployment {id} {} ({}): it has nothing to serve; choose a ready one from `skyport deployments {server}`", if *.kind == FailureKind::Cancelled { "was cancelled before it was built" } else { "failed to build" }, .kind.as_str())]
    Failed {
        /// The server rolled back.
        server: ServerName,
        /// The deployment given.
        id: DeploymentId,
        /// Why its build failed.
        kind: FailureKind,
    },
    /// Garbage collection removed the deployment's artifact.
    #[error("the artifact of deployment {id} was removed (Skyport keeps those of the newest `serve --keep-deployments` ready deployments), so it cannot serve again; redeploy its source{} instead", .commit.as_ref().map(|c| format!(" (commit {c})")).unwrap_or_default())]
    Pruned {
        /// The deployment given.
        id: DeploymentId,
        /// Its commit's short SHA, for git sources.
        commit: Option<String>,
    },
    /// The deployment is live already.
    #[error("deployment {id} is already live on '{server}'; nothing to do")]
    AlreadyLive {
        /// The server rolled back.
        server: ServerName,
        /// The deployment given.
        id: DeploymentId,
    },
    /// The server has no live deployment to go back from.
    #[error(
        "'{server}' has no live deployment to roll back from; name the deployment to make live: `skyport rollback {server} DEPLOYMENT`"
    )]
    NothingLive {
        /// The server rolled back.
        server: ServerName,
    },
    /// No ready deployment with its artifact is older than the live one.
    #[error(
        "'{server}' has no ready deployment older than the live one whose artifact is still kept; `skyport deployments {server}` lists them, or deploy again"
    )]
    NoEarlier {
        /// The server rolled back.
        server: ServerName,
    },
}

fn list(ids: &[DeploymentId]) -> String {
    ids.iter()
        .map(DeploymentId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Deployments<'_> {
    /// The deployment a rollback of `server` goes to: `chosen` (a deployment id or a unique
    /// prefix of one), else the newest ready deployment older than the live one whose artifact
    /// still exists. A refusal is the inner error.
    pub async fn rollback_target(
        &self,
        server: &Server,
        chosen: Option<&str>,
    ) -> Result<Result<Deployment, RollbackRefusal>, StoreError> {
        let deployments = self.list(&server.id).await?;
        let live = server.live_deployment.as_ref();
        let Some(given) = chosen else {
            return Ok(previous_target(&server.name, live, &deployments).cloned());
        };
        let given = given.trim();
        // A full id of another server's deployment deserves better than "unknown".
        if let Ok(id) = given.parse::<DeploymentId>()
            && !deployments.iter().any(|d| d.id == id)
            && let Some(other) = self.get(&id).await?
            && let Some(owner) = self.store.servers().by_id(&other.server_id).await?
        {
            return Ok(Err(RollbackRefusal::OtherServer {
                server: server.name.clone(),
                id,
                owner: owner.name,
            }));
        }
        Ok(chosen_target(&server.name, live, &deployments, given).cloned())
    }

    /// The artifacts of `server`'s deployments that no other server's deployment uses: what
    /// removing the server leaves unused.
    pub async fn artifacts_only_of(&self, server: &ServerId) -> Result<Vec<String>, StoreError> {
        let rows = crate::sql::query(
            "SELECT DISTINCT artifact FROM deployments
             WHERE server_id = ? AND artifact IS NOT NULL AND pruned_at IS NULL
             AND artifact NOT IN (
                SELECT artifact FROM deployments WHERE server_id != ? AND artifact IS NOT NULL)",
        )
        .bind(server)
        .bind(server)
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter()
            .map(|row| row.try_get("artifact").map_err(StoreError::from))
            .collect()
    }

    /// A server's promotions, newest first.
    pub async fn promotions(&self, server: &ServerId) -> Result<Vec<Promotion>, StoreError> {
        let rows = crate::sql::query(
            "SELECT r.deployment_id, r.previous_id, r.kind, r.principal_id, r.at, p.name
             FROM promotions r LEFT JOIN principals p ON p.id = r.principal_id
             WHERE r.server_id = ? ORDER BY r.id DESC",
        )
        .bind(server)
        .fetch_all(&self.store.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind")?;
                let by: Option<PrincipalId> = row.try_get("principal_id")?;
                Ok(Promotion {
                    deployment: row.try_get("deployment_id")?,
                    previous: row.try_get("previous_id")?,
                    kind: parse_enum("promotion kind", &kind)?,
                    by: by
                        .map(|id| -> Result<Actor, StoreError> {
                            Ok(Actor {
                                id,
                                name: row.try_get("name")?,
                            })
                        })
                        .transpose()?,
                    at: from_millis(row.try_get("at")?)?,
                })
            })
            .collect()
    }
}

/// The newest ready, unpruned deployment older than `live` in `deployments` (newest first).
pub(crate) fn previous_target<'a>(
    server: &ServerName,
    live: Option<&DeploymentId>,
    deployments: &'a [Deployment],
) -> Result<&'a Deployment, RollbackRefusal> {
    let Some(live) = live else {
        return Err(RollbackRefusal::NothingLive {
            server: server.clone(),
        });
    };
    let mut older = deployments.iter().skip_while(|d| &d.id != live).skip(1);
    older
        .find(|d| d.status == DeploymentStatus::Ready && d.pruned_at.is_none())
        .ok_or_else(|| RollbackRefusal::NoEarlier {
            server: server.clone(),
        })
}

/// The deployment of `deployments` that `given` names (its id, with or without `dep_`, or a
/// unique prefix), if it can go live.
pub(crate) fn chosen_target<'a>(
    server: &ServerName,
    live: Option<&DeploymentId>,
    deployments: &'a [Deployment],
    given: &str,
) -> Result<&'a Deployment, RollbackRefusal> {
    let wanted = given.to_ascii_lowercase();
    let full = if wanted.starts_with("dep_") {
        wanted
    } else {
        format!("dep_{wanted}")
    };
    let matches: Vec<&Deployment> = if given.is_empty() {
        Vec::new()
    } else {
        deployments
            .iter()
            .filter(|d| d.id.as_str().starts_with(&full))
            .collect()
    };
    let deployment = match matches.as_slice() {
        [one] => *one,
        [] => {
            return Err(RollbackRefusal::Unknown {
                server: server.clone(),
                given: given.to_owned(),
            });
        }
        many => {
            return Err(RollbackRefusal::Ambiguous {
                server: server.clone(),
                given: given.to_owned(),
                matches: many.iter().map(|d| d.id.clone()).collect(),
            });
        }
    };
    let id = deployment.id.clone();
    match deployment.status {
        DeploymentStatus::Queued | DeploymentStatus::Building => {
            return Err(RollbackRefusal::Building {
                id,
                status: deployment.status,
            });
        }
        DeploymentStatus::Failed => {
            return Err(RollbackRefusal::Failed {
                server: server.clone(),
                id,
                kind: deployment
                    .failure
                    .as_ref()
                    .map_or(FailureKind::Internal, |f| f.kind),
            });
        }
        DeploymentStatus::Ready => {}
    }
    if live == Some(&id) {
        return Err(RollbackRefusal::AlreadyLive {
            server: server.clone(),
            id,
        });
    }
    if deployment.pruned_at.is_some() {
        return Err(RollbackRefusal::Pruned {
            id,
            commit: deployment
                .commit
                .as_ref()
                .map(|c| c.sha.chars().take(12).collect()),
        });
    }
    Ok(deployment)
}

#[cfg(test)]
mod tests;
