//! The client's calls of a server's variables and secrets, and of redeploying.

use reqwest::Method;
use skyport_api::{DeploymentView, EnvChanged, EnvList, SetEnv};

use crate::{Client, ClientError, path_segment};

impl Client {
    /// A server's variables (one scope's, or every scope's); secrets without their values.
    pub async fn env(&self, server: &str, scope: Option<&str>) -> Result<EnvList, ClientError> {
        let mut request = self.api(Method::GET, &format!("/servers/{server}/env"));
        if let Some(scope) = scope {
            request = request.query(&[("scope", scope)]);
        }
        self.send(request).await
    }

    /// Sets variables of one scope (and redeploys when the request asks for it).
    pub async fn set_env(&self, server: &str, request: &SetEnv) -> Result<EnvChanged, ClientError> {
        let request = self
            .api(Method::PUT, &format!("/servers/{server}/env"))
            .json(request);
        self.send(request).await
    }

    /// Removes one variable from a scope (production when `None`), redeploying when asked.
    pub async fn unset_env(
        &self,
        server: &str,
        name: &str,
        scope: Option<&str>,
        redeploy: bool,
    ) -> Result<EnvChanged, ClientError> {
        let path = format!("/servers/{server}/env/{}", path_segment(name));
        let mut request = self
            .api(Method::DELETE, &path)
            .query(&[("redeploy", redeploy)]);
        if let Some(scope) = scope {
            request = request.query(&[("scope", scope)]);
        }
        self.send(request).await
    }

    /// Starts a new deployment built from the live deployment's source, with the server's
    /// variables as they are now; returns it queued.
    pub async fn redeploy(&self, server: &str) -> Result<DeploymentView, ClientError> {
        self.send(self.api(Method::POST, &format!("/servers/{server}/redeploy")))
            .await
    }
}
