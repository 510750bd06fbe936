//! The JSON shapes of language-model providers and agents: `GET/POST /api/v1/providers`,
//! `PATCH/DELETE /api/v1/providers/{name}`, `GET/POST /api/v1/agents` and
//! `GET/PATCH/DELETE /api/v1/agents/{name}`.
//!
//! A provider's API key goes in (`CreateProvider`, `UpdateProvider`) and never comes out:
//! `ProviderView` says only whether one is set.

use std::fmt;

use serde::{Deserialize, Serialize};
use skyport_store::{AgentName, ProviderKind, ProviderName, ServerName, Timestamp};

use crate::present;

/// `POST /api/v1/providers`: adds a provider; answers it (a `ProviderView`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateProvider {
    /// Its name, as agents refer to it.
    pub name: ProviderName,
    /// `openai` (any Chat Completions endpoint) or `anthropic`.
    pub kind: ProviderKind,
    /// Its base URL (`https://api.openai.com/v1`, `https://api.anthropic.com`).
    pub base_url: String,
    /// Its API key; absent for endpoints that need none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// The model agents without one use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_model: Option<String>,
    /// Seconds one request may take (60 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// How often a failed request is tried again (2 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Whether it becomes the default provider (the one chats over a single server use).
    #[serde(default)]
    pub default: bool,
}

impl fmt::Debug for CreateProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateProvider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("default_model", &self.default_model)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("retries", &self.retries)
            .field("default", &self.default)
            .finish()
    }
}

/// `PATCH /api/v1/providers/{name}`: what is given replaces what the provider had; `null`
/// removes the key or the default model.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateProvider {
    /// A new base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// A new API key, or `null` to remove it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub api_key: Option<Option<String>>,
    /// A new default model, or `null` to remove it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_model: Option<Option<String>>,
    /// New seconds one request may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// A new number of retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Make it the default provider, or no longer the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,
}

impl fmt::Debug for UpdateProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpdateProvider")
            .field("base_url", &self.base_url)
            .field(
                "api_key",
                &self
                    .api_key
                    .as_ref()
                    .map(|k| k.as_ref().map(|_| "[redacted]")),
            )
            .field("default_model", &self.default_model)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("retries", &self.retries)
            .field("default", &self.default)
            .finish()
    }
}

/// A provider as the API shows it: never its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderView {
    /// Its name.
    pub name: ProviderName,
    /// `openai` or `anthropic`.
    pub kind: ProviderKind,
    /// Its base URL.
    pub base_url: String,
    /// Whether an API key is stored.
    pub has_api_key: bool,
    /// The model agents without one use.
    pub default_model: Option<String>,
    /// Seconds one request may take.
    pub timeout_seconds: u64,
    /// How often a failed request is tried again.
    pub retries: u32,
    /// Whether it is the default provider.
    pub default: bool,
    /// When it was created.
    pub created_at: Timestamp,
}

/// `POST /api/v1/agents`: creates an agent; answers it (an `AgentView`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAgent {
    /// Its name (what `skyport chat` and the facade's `model` take).
    pub name: AgentName,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// The system prompt its model gets.
    #[serde(default)]
    pub instructions: String,
    /// The provider that serves its model.
    pub provider: ProviderName,
    /// Its model; absent is the provider's default model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The servers whose tools it uses, in order (hosted, external or remix).
    pub servers: Vec<ServerName>,
    /// The most model turns it takes to answer one message (1 to 50; 8 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_limit: Option<u32>,
    /// Who may chat with it: `NAME` or `group:NAME`; empty is every signed-in principal.
    #[serde(default)]
    pub allowed: Vec<String>,
}

/// `PATCH /api/v1/agents/{name}`: what is given replaces what the agent had (lists as a
/// whole); `model: null` returns to the provider's default model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateAgent {
    /// A new description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Another provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderName>,
    /// Another model, or `null` for the provider's default.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub model: Option<Option<String>>,
    /// Other servers, replacing every server it had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servers: Option<Vec<ServerName>>,
    /// Another step limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_limit: Option<u32>,
    /// Who may chat, replacing the list (`[]`: everyone signed in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<Vec<String>>,
}

/// An agent as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentView {
    /// Its name.
    pub name: AgentName,
    /// What it is for.
    pub description: String,
    /// The system prompt its model gets.
    pub instructions: String,
    /// The provider that serves its model.
    pub provider: ProviderName,
    /// Its model; `null` is the provider's default.
    pub model: Option<String>,
    /// The model it answers with: its own, else the provider's default (`null` when neither
    /// names one).
    pub effective_model: Option<String>,
    /// The servers whose tools it uses, in order.
    pub servers: Vec<ServerName>,
    /// The most model turns it takes to answer one message.
    pub step_limit: u32,
    /// Who may chat with it (`NAME`, `group:NAME`); empty is everyone signed in.
    pub allowed: Vec<String>,
    /// Who created it, when known.
    pub created_by: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}
