//! The client's calls of language-model providers and agents.

use reqwest::Method;
use skyport_api::{
    AgentView, CreateAgent, CreateProvider, ProviderView, UpdateAgent, UpdateProvider,
};

use crate::{Client, ClientError, path_segment};

impl Client {
    /// Every provider (org admins).
    pub async fn providers(&self) -> Result<Vec<ProviderView>, ClientError> {
        self.send(self.api(Method::GET, "/providers")).await
    }

    /// Adds a provider; returns it (without its key).
    pub async fn create_provider(
        &self,
        provider: &CreateProvider,
    ) -> Result<ProviderView, ClientError> {
        self.send(self.api(Method::POST, "/providers").json(provider))
            .await
    }

    /// Changes provider `name` as `update` says; returns it.
    pub async fn update_provider(
        &self,
        name: &str,
        update: &UpdateProvider,
    ) -> Result<ProviderView, ClientError> {
        let path = format!("/providers/{}", path_segment(name));
        self.send(self.api(Method::PATCH, &path).json(update)).await
    }

    /// Removes provider `name` (refused while agents use it).
    pub async fn remove_provider(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/providers/{}", path_segment(name));
        self.send_empty(self.api(Method::DELETE, &path)).await
    }

    /// The agents the caller may chat with.
    pub async fn agents(&self) -> Result<Vec<AgentView>, ClientError> {
        self.send(self.api(Method::GET, "/agents")).await
    }

    /// Agent `name`.
    pub async fn agent(&self, name: &str) -> Result<AgentView, ClientError> {
        let path = format!("/agents/{}", path_segment(name));
        self.send(self.api(Method::GET, &path)).await
    }

    /// Creates an agent; returns it.
    pub async fn create_agent(&self, agent: &CreateAgent) -> Result<AgentView, ClientError> {
        self.send(self.api(Method::POST, "/agents").json(agent))
            .await
    }

    /// Changes agent `name` as `update` says; returns it.
    pub async fn update_agent(
        &self,
        name: &str,
        update: &UpdateAgent,
    ) -> Result<AgentView, ClientError> {
        let path = format!("/agents/{}", path_segment(name));
        self.send(self.api(Method::PATCH, &path).json(update)).await
    }

    /// Removes agent `name` and every conversation with it.
    pub async fn remove_agent(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/agents/{}", path_segment(name));
        self.send_empty(self.api(Method::DELETE, &path)).await
    }
}
