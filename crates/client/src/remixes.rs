//! The client's calls of remix servers.

use reqwest::Method;
use skyport_api::{CreateRemix, EditRemix, RemixView};

use crate::{Client, ClientError, path_segment};

impl Client {
    /// Creates a remix; returns it.
    pub async fn create_remix(&self, remix: &CreateRemix) -> Result<RemixView, ClientError> {
        self.send(self.api(Method::POST, "/remixes").json(remix))
            .await
    }

    /// Remix `name` with its sources.
    pub async fn remix(&self, name: &str) -> Result<RemixView, ClientError> {
        let path = format!("/remixes/{}", path_segment(name));
        self.send(self.api(Method::GET, &path)).await
    }

    /// Changes remix `name` as `edit` says; returns it.
    pub async fn edit_remix(&self, name: &str, edit: &EditRemix) -> Result<RemixView, ClientError> {
        let path = format!("/remixes/{}", path_segment(name));
        self.send(self.api(Method::PATCH, &path).json(edit)).await
    }
}
