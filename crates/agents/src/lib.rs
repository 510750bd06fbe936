//! Agents: chat models that use MCP tools. This crate owns the provider-neutral conversation
//! ([`Message`], [`ToolCall`], [`ToolSpec`]), the clients of the two provider APIs Skyport
//! speaks ([`Provider`]: OpenAI-compatible Chat Completions and Anthropic Messages, both
//! streamed) and the loop of one turn ([`run_turn`]): gather the tools of the agent's servers,
//! let the model answer, run the tool calls it asks for, feed the results back, until it
//! answers without tools or reaches its step limit.
//!
//! It must not know how tools are reached: a [`ToolHost`] (in Skyport, the gateway called
//! in-process as the chatting user) lists and calls them, so policies and audit apply as to any
//! MCP client. No storage, no HTTP server (except the test-only [`scripted`] fake).

mod message;
mod names;
mod provider;
mod turn;

#[cfg(any(test, feature = "scripted"))]
pub mod scripted;

pub use message::{Message, Role, ToolCall, ToolSpec};
pub use names::ToolNames;
pub use provider::{
    Provider, ProviderConfig, ProviderError, ProviderKind, Reply, Request, StopReason,
};
pub use turn::{
    BoxFuture, ListedTool, Stop, ToolHost, ToolHostError, ToolOutcome, TurnConfig, TurnEvent,
    TurnOutcome, run_turn,
};
