//! Going live: the [`Warmup`] hook that readies a deployment's first instance before the live
//! pointer moves to it (a fresh build's promotion and a rollback alike), and rollbacks, which
//! move the pointer back to an earlier build without building anything.
//!
//! This crate must not know the runtime: the binary implements [`Warmup`] with it. A hook
//! that fails keeps the previous deployment live.

use std::time::Duration;

use futures_util::future::BoxFuture;
use skyport_store::{
    Deployment, DeploymentId, LaunchSpec, PrincipalId, RollbackRefusal, Server, ServerId,
    StoreError,
};

use crate::Builder;

/// How long a rollback waits for its target's instance before switching. A rollback's target
/// served before, so the switch need not prove it starts; and a rollback must stay well under a
/// second even when its target has no instance left and a cold start takes longer.
const ROLLBACK_PATIENCE: Duration = Duration::from_millis(500);

/// A deployment about to go live.
#[derive(Clone, Copy, Debug)]
pub struct Candidate<'a> {
    /// Its server.
    pub server: &'a ServerId,
    /// The deployment.
    pub deployment: &'a DeploymentId,
    /// How to start an instance of it.
    pub launch: &'a LaunchSpec,
    /// How long the switch may wait for the instance; past it, the switch goes ahead while the
    /// start goes on (the first requests wait for it). `None` waits for the start to end.
    pub patience: Option<Duration>,
}

/// What a warm-up did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Warmed {
    /// An instance of the candidate answered; it takes the first requests after the switch.
    Ready,
    /// An instance is starting but was not ready within the candidate's patience; the first
    /// requests after the switch wait for that same start.
    Starting,
    /// Nothing was started: the live deployment had no warm instance either, so the first
    /// request after the switch starts one, as it would have anyway.
    NotNeeded,
}

/// Readies a deployment before it goes live. Implemented by the binary with the runtime.
pub trait Warmup: Send + Sync + 'static {
    /// When the server's live deployment has warm instances, starts an instance of
    /// `candidate` and waits until it answers; an error says why it failed to start.
    fn warm_up<'a>(&'a self, candidate: Candidate<'a>) -> BoxFuture<'a, Result<Warmed, String>>;
}

/// Readies nothing: the first request after a switch starts an instance. For builders that
/// run without a runtime (tests, tools).
pub(crate) struct ColdStart;

impl Warmup for ColdStart {
    fn warm_up<'a>(&'a self, _: Candidate<'a>) -> BoxFuture<'a, Result<Warmed, String>> {
        Box::pin(async { Ok(Warmed::NotNeeded) })
    }
}

/// Why a rollback did not happen; the server's live deployment is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    /// The deployment cannot go live (unknown, failed, pruned, live already…).
    #[error(transparent)]
    Refused(#[from] RollbackRefusal),
    /// The deployment's first instance failed to start.
    #[error(
        "deployment {deployment} was not made live because its first instance failed to start: {message}; the live deployment keeps serving"
    )]
    Start {
        /// The deployment rolled back to.
        deployment: DeploymentId,
        /// Why it failed, with its output.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Builder {
    /// Makes an earlier deployment of `server` live again, without building: `chosen` (an id
    /// or a unique prefix), else the newest ready deployment older than the live one. Its first
    /// instance is readied before the switch (see [`Warmup`]). Returns it, live.
    pub async fn roll_back(
        &self,
        server: &Server,
        chosen: Option<&str>,
        by: &PrincipalId,
    ) -> Result<Deployment, RollbackError> {
        let deployments = self.inner.store.deployments();
        // Garbage collection waits until the switch is done, so the chosen artifact cannot
        // be removed between the choice and the switch.
        let _in_use = self.inner.artifacts_in_use.read().await;
        let target = deployments.rollback_target(server, chosen).await??;
        let Some(built) = &target.built else {
            return Err(StoreError::Corrupt(format!(
                "deployment {} is ready but has no launch spec",
                target.id
            ))
            .into());
        };
        let candidate = Candidate {
            server: &server.id,
            deployment: &target.id,
            launch: &built.launch,
            patience: Some(ROLLBACK_PATIENCE),
        };
        let warmed = self.inner.warmup.warm_up(candidate).await;
        if let Err(message) = warmed {
            return Err(RollbackError::Start {
                deployment: target.id,
                message,
            });
        }
        let previous = deployments.roll_back_to(&target.id, by).await?;
        tracing::info!(
            server = %server.name,
            deployment = %target.id,
            previous = previous.as_ref().map(DeploymentId::as_str),
            warmed = ?warmed,
            "rolled back"
        );
        Ok(target)
    }
}

#[cfg(test)]
mod tests;
