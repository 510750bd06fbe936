//! Rollbacks and the record of promotions.

use reqwest::Method;
use skyport_api::{DeploymentView, PromotionView, RollBack};

use crate::{Client, ClientError};

impl Client {
    /// Makes an earlier deployment of `server` live again, without a build: `deployment` (an
    /// id or a unique prefix), else the newest ready one older than the live one. Returns the
    /// deployment now live.
    pub async fn roll_back(
        &self,
        server: &str,
        deployment: Option<&str>,
    ) -> Result<DeploymentView, ClientError> {
        let body = RollBack {
            deployment: deployment.map(str::to_owned),
        };
        let request = self
            .api(Method::POST, &format!("/servers/{server}/rollback"))
            .json(&body);
        self.send(request).await
    }

    /// Every move of a server's live pointer (deploys going live, rollbacks), newest first.
    pub async fn promotions(&self, server: &str) -> Result<Vec<PromotionView>, ClientError> {
        self.send(self.api(Method::GET, &format!("/servers/{server}/promotions")))
            .await
    }
}
