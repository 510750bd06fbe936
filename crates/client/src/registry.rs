//! The client's calls of the catalog: external servers.

use reqwest::Method;
use skyport_api::{CreateExternal, SearchResults, ServerView};

use crate::{Client, ClientError, path_segment};

impl Client {
    /// Adds an external (remote) server to the catalog; returns it.
    pub async fn add_external(&self, external: &CreateExternal) -> Result<ServerView, ClientError> {
        let request = self.api(Method::POST, "/registry/external").json(external);
        self.send(request).await
    }

    /// Checks external server `name` now; returns it with the verdict.
    pub async fn check_external(&self, name: &str) -> Result<ServerView, ClientError> {
        let path = format!("/registry/external/{}/check", path_segment(name));
        self.send(self.api(Method::POST, &path)).await
    }

    /// Searches the catalog (entries and tools) for `words`.
    pub async fn search(&self, words: &str) -> Result<SearchResults, ClientError> {
        let request = self
            .api(Method::GET, "/registry/search")
            .query(&[("q", words)]);
        self.send(request).await
    }
}
