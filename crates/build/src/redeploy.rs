//! Builds nobody typed: what a push, a pull request or a deleted branch of a server's tracked
//! source does. A new commit on the tracked branch is a production build (promoted when good,
//! as every build is); one on another branch builds that branch's preview, a child server
//! made on first use; a branch that goes takes its preview with it.
//!
//! Events arrive already parsed and verified (the web crate reads webhooks, `watch` polls);
//! this module decides what they build and never sees HTTP.

use skyport_store::{DeploymentId, PreviewError, Server, ServerName};

use crate::{
    BuildError, BuildRequest, Builder, Entrypoint, GitRef, GitSource, GitUrl, Preview, Source,
};

/// Something that happened to a server's tracked source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceEvent {
    /// Commit `sha` was pushed to `branch`.
    Pushed {
        /// The branch (without `refs/heads/`).
        branch: String,
        /// The commit it points at now.
        sha: String,
    },
    /// A pull request from `branch` was opened or got new commits; `sha` is its head.
    PullRequest {
        /// The pull request's head branch.
        branch: String,
        /// Its head commit.
        sha: String,
    },
    /// `branch` was deleted, or its pull request closed.
    BranchGone {
        /// The branch.
        branch: String,
    },
}

/// What an event did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reaction {
    /// A production build of the server was queued as this deployment.
    Production(DeploymentId),
    /// A build of a preview (created if it was new) was queued.
    Preview {
        /// The preview server.
        preview: ServerName,
        /// Its new deployment.
        deployment: DeploymentId,
    },
    /// The branch's preview was removed.
    PreviewRemoved(ServerName),
    /// Nothing to do, and why.
    Ignored(String),
}

impl Builder {
    /// Does what `event` on `server`'s tracked source calls for (see [`Reaction`]).
    pub async fn react(&self, server: &Server, event: SourceEvent) -> Result<Reaction, BuildError> {
        if let Some(preview) = &server.preview {
            return Ok(Reaction::Ignored(format!(
                "'{}' is a preview of branch {}; events go to the server it previews",
                server.name, preview.branch
            )));
        }
        let tracked = server.source.branch.as_str();
        match event {
            SourceEvent::Pushed { branch, sha } if branch == tracked => {
                let request = self.tracked_build(server, &branch, &sha, None)?;
                Ok(Reaction::Production(self.start(server, request).await?.id))
            }
            SourceEvent::Pushed { branch, sha } | SourceEvent::PullRequest { branch, sha } => {
                if branch == tracked {
                    return Ok(Reaction::Ignored(format!(
                        "a pull request from the tracked branch {branch}: its pushes build production"
                    )));
                }
                self.preview(server, &branch, &sha).await
            }
            SourceEvent::BranchGone { branch } => self.remove_preview(server, &branch).await,
        }
    }

    async fn preview(
        &self,
        server: &Server,
        branch: &str,
        sha: &str,
    ) -> Result<Reaction, BuildError> {
        let of = Preview {
            parent: server.id.clone(),
            branch: branch.to_owned(),
        };
        // Checked before the preview exists, so a bad source leaves no empty preview behind.
        let request = self.tracked_build(server, branch, sha, Some(of))?;
        let (preview, created) = self
            .inner
            .store
            .servers()
            .ensure_preview(server, branch)
            .await
            .map_err(|e| match e {
                PreviewError::Name(e) => BuildError::PreviewName(e),
                PreviewError::Store(e) => BuildError::Store(e),
            })?;
        if created {
            tracing::info!(server = %server.name, preview = %preview.name, branch, "preview created");
        }
        let deployment = self.start(&preview, request).await?;
        Ok(Reaction::Preview {
            preview: preview.name,
            deployment: deployment.id,
        })
    }

    /// Removes the preview of `branch`, cancelling its builds first.
    async fn remove_preview(&self, server: &Server, branch: &str) -> Result<Reaction, BuildError> {
        let servers = self.inner.store.servers();
        let Some(preview) = servers.preview_of(&server.id, branch).await? else {
            return Ok(Reaction::Ignored(format!(
                "branch {branch} has no preview of '{}'",
                server.name
            )));
        };
        self.remove_server_builds(&preview).await;
        servers.remove(&preview.name).await?;
        tracing::info!(server = %server.name, preview = %preview.name, branch, "preview removed");
        Ok(Reaction::PreviewRemoved(preview.name))
    }

    /// Cancels the builds of `server` that are waiting or running here.
    pub(crate) async fn remove_server_builds(&self, server: &Server) {
        for id in self.active() {
            let belongs = matches!(
                self.inner.store.deployments().get(&id).await,
                Ok(Some(d)) if d.server_id == server.id
            );
            if belongs {
                self.cancel(&id).await;
            }
        }
    }

    /// A build of commit `sha` on `branch` of `server`'s tracked source, with its entrypoint.
    fn tracked_build(
        &self,
        server: &Server,
        branch: &str,
        sha: &str,
        preview: Option<Preview>,
    ) -> Result<BuildRequest, BuildError> {
        let url = server
            .source
            .url
            .as_deref()
            .ok_or_else(|| BuildError::NoSource(server.name.clone()))?;
        let entrypoint = server
            .source
            .entrypoint
            .as_deref()
            .map(str::parse::<Entrypoint>)
            .transpose()?;
        Ok(BuildRequest {
            source: Source::Git(GitSource {
                url: url.parse::<GitUrl>()?,
                reference: Some(branch.parse::<GitRef>()?),
                commit: Some(sha.parse::<GitRef>()?),
            }),
            entrypoint,
            preview,
        })
    }
}
