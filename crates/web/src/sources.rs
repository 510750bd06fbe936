//! Server source settings at the API's edge: the update of `PUT /servers/{name}` parsed into
//! the store's patch (URLs, branches and entrypoints checked the way builds will read them),
//! and what a deploy records as the server's tracked source.

use std::time::Duration;

use skyport_api::SourceUpdate;
use skyport_build::{Entrypoint, GitRef, GitUrl, Source};
use skyport_store::{Server, ServerName, SourcePatch};

use crate::{ApiError, AppState};

/// `update` (and a new description) as the store's patch, refused when a value would not
/// build.
pub(crate) fn patch(
    description: Option<&str>,
    update: Option<&SourceUpdate>,
) -> Result<SourcePatch, ApiError> {
    let mut patch = SourcePatch {
        description: description.map(str::to_owned),
        ..SourcePatch::default()
    };
    let Some(update) = update else {
        return Ok(patch);
    };
    patch.url = update
        .url
        .as_ref()
        .map(|url| url.as_deref().map(tracked_url).transpose())
        .transpose()?;
    patch.branch = update
        .branch
        .as_deref()
        .map(|b| b.parse::<GitRef>().map(|b| b.to_string()))
        .transpose()?;
    patch.entrypoint = update
        .entrypoint
        .as_ref()
        .map(|e| {
            e.as_deref()
                .map(|e| e.parse::<Entrypoint>().map(|e| e.to_string()))
                .transpose()
        })
        .transpose()?;
    patch.webhook_secret = update.webhook_secret.clone();
    patch.poll_interval = update
        .poll_interval_seconds
        .map(|s| s.map(Duration::from_secs));
    patch.preview_ttl = update
        .preview_ttl_seconds
        .map(|s| s.map(Duration::from_secs));
    Ok(patch)
}

/// A repository URL as the store keeps it; one carrying credentials is refused, since they
/// would have to be stored for later builds.
fn tracked_url(url: &str) -> Result<String, ApiError> {
    let url: GitUrl = url.parse()?;
    if url.has_credentials() {
        return Err(ApiError::BadRequest(format!(
            "the source URL {url} carries credentials, which Skyport does not store; use an ssh URL (git@host:path) or a credential helper for private repositories"
        )));
    }
    Ok(url.to_string())
}

/// Applies `patch` to the server named `name`.
pub(crate) async fn set(
    state: &AppState,
    name: &ServerName,
    patch: &SourcePatch,
) -> Result<Server, ApiError> {
    state
        .store
        .servers()
        .set_source(name, patch)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no server named '{name}'")))?
        .map_err(ApiError::BadRequest)
}

/// What a deploy of `source` records: a git URL (unless it carries credentials, which are
/// never stored), the branch pushes redeploy, and the entrypoint, so that later builds of
/// pushes build what this deploy built.
pub(crate) fn deployed(
    source: &Source,
    branch: Option<&GitRef>,
    entrypoint: Option<&Entrypoint>,
) -> SourcePatch {
    let url = match source {
        Source::Git(git) if !git.url.has_credentials() => Some(Some(git.url.to_string())),
        _ => None,
    };
    SourcePatch {
        url,
        branch: branch.map(ToString::to_string),
        entrypoint: entrypoint.map(|e| Some(e.to_string())),
        ..SourcePatch::default()
    }
}

/// Refuses to create a server with a preview's name: only preview builds make those.
pub(crate) async fn refuse_new_preview(
    state: &AppState,
    name: &ServerName,
) -> Result<(), ApiError> {
    if name.is_preview() && state.store.servers().get(name).await?.is_none() {
        return Err(ApiError::BadRequest(format!(
            "'{name}' has the form of a preview name (NAME--BRANCH), and '--' is reserved for previews; previews are made by pushes to a branch (see `skyport servers set NAME --webhook-secret`); pick a name without '--'"
        )));
    }
    Ok(())
}
