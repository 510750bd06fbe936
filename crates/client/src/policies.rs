//! The client's calls of a server's tool-level policy.

use reqwest::Method;
use skyport_api::{CreatePolicy, PolicyView};

use crate::{Client, ClientError, path_segment};

impl Client {
    /// The rules of `server`'s policy, oldest first.
    pub async fn policies(&self, server: &str) -> Result<Vec<PolicyView>, ClientError> {
        self.send(self.api(Method::GET, &format!("/servers/{server}/policies")))
            .await
    }

    /// Adds a rule to `server`'s policy; returns it.
    pub async fn add_policy(
        &self,
        server: &str,
        rule: &CreatePolicy,
    ) -> Result<PolicyView, ClientError> {
        let request = self
            .api(Method::POST, &format!("/servers/{server}/policies"))
            .json(rule);
        self.send(request).await
    }

    /// Removes rule `id` from `server`'s policy; returns it.
    pub async fn remove_policy(&self, server: &str, id: &str) -> Result<PolicyView, ClientError> {
        let path = format!("/servers/{server}/policies/{}", path_segment(id));
        self.send(self.api(Method::DELETE, &path)).await
    }
}
