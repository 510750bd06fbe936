//! The JSON shapes of chatting: `POST /api/v1/agents/{name}/chat` and
//! `POST /api/v1/servers/{name}/chat` take a [`ChatRequest`] and answer an event stream whose
//! events are [`ChatEvent`]s (`event: TYPE`, `data: JSON` with the same `type`); the
//! conversation routes answer [`ConversationView`]s and a [`ConversationDetail`].

use serde::{Deserialize, Serialize};
use serde_json::Value;
use skyport_store::Timestamp;

/// A message to an agent (or, for ChatMCP, to a server's ad-hoc agent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// What the person says.
    pub message: String,
    /// The conversation it continues; a new one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<String>,
}

/// How a chat turn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatStop {
    /// The model answered.
    End,
    /// The agent's step limit stopped it.
    StepLimit,
    /// The provider failed.
    Error,
}

/// The MCP App a tool result is rendered with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatApp {
    /// The server holding the resource.
    pub server: String,
    /// The `ui://` resource.
    pub uri: String,
}

/// One event of a chat's stream; its `type` is also the SSE event name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    /// First: the conversation the turn belongs to.
    Conversation {
        /// Its id, to continue it.
        id: String,
    },
    /// A piece of the model's text.
    Text {
        /// The text.
        delta: String,
    },
    /// The model calls a tool.
    ToolCall {
        /// The call's id.
        id: String,
        /// The server it goes to; absent when the name matches none of the agent's servers.
        server: Option<String>,
        /// The tool's name on the server.
        tool: String,
        /// The name the model called it by (`SERVER__TOOL`).
        name: String,
        /// The arguments.
        arguments: Value,
    },
    /// A tool call's result.
    ToolResult {
        /// The call's id.
        id: String,
        /// The server it went to.
        server: Option<String>,
        /// The tool's name on the server.
        tool: String,
        /// Whether it failed (a refusal included).
        is_error: bool,
        /// Its MCP content blocks.
        content: Vec<Value>,
        /// Its structured content.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        structured: Option<Value>,
        /// The MCP App to render it with, when the tool declares one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app: Option<ChatApp>,
    },
    /// Something went wrong (a server left out, the provider, the step limit).
    Error {
        /// What, and what to do.
        message: String,
    },
    /// Last: the turn is over.
    Done {
        /// How it ended.
        stop: ChatStop,
    },
}

impl ChatEvent {
    /// The SSE event name (the `type`).
    pub fn name(&self) -> &'static str {
        match self {
            ChatEvent::Conversation { .. } => "conversation",
            ChatEvent::Text { .. } => "text",
            ChatEvent::ToolCall { .. } => "tool_call",
            ChatEvent::ToolResult { .. } => "tool_result",
            ChatEvent::Error { .. } => "error",
            ChatEvent::Done { .. } => "done",
        }
    }
}

/// A conversation, as listed by `GET /api/v1/conversations?agent=NAME|server=NAME`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConversationView {
    /// Its id (`cnv_…`), which a [`ChatRequest`] takes to continue it.
    pub id: String,
    /// The agent it is with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The server it is with (ChatMCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Its first message, cut.
    pub title: String,
    /// When it started.
    pub created_at: Timestamp,
    /// When its last message was added.
    pub updated_at: Timestamp,
}

/// `GET /api/v1/conversations/{id}`: a conversation and its messages, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConversationDetail {
    /// The conversation.
    pub conversation: ConversationView,
    /// Its messages.
    pub messages: Vec<ChatMessage>,
}

/// One stored message of a conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `user`, `assistant` or `tool`.
    pub role: String,
    /// Its text (a tool message: the result as the model read it).
    pub text: String,
    /// The tools an assistant message called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ChatToolCall>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Whether a tool message reports a failure.
    #[serde(default)]
    pub is_error: bool,
}

/// A tool call of a stored assistant message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatToolCall {
    /// Its id.
    pub id: String,
    /// The name the model called (`SERVER__TOOL`).
    pub name: String,
    /// The arguments.
    pub arguments: Value,
}
