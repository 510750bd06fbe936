//! The provider-neutral conversation: what is stored (as JSON, one message per row) and what
//! each provider client translates into its own wire format.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The person chatting.
    User,
    /// The model.
    Assistant,
    /// The result of one tool call, fed back to the model.
    Tool,
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its text (for a tool message, the result as the model reads it).
    #[serde(default)]
    pub text: String,
    /// The tools an assistant message asks to call, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message, the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For a tool message, whether the call failed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

impl Message {
    /// A message of the person chatting.
    pub fn user(text: &str) -> Message {
        Message {
            role: Role::User,
            text: text.to_owned(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            is_error: false,
        }
    }

    /// A message of the model: its text and the calls it asks for.
    pub fn assistant(text: String, tool_calls: Vec<ToolCall>) -> Message {
        Message {
            role: Role::Assistant,
            text,
            tool_calls,
            tool_call_id: None,
            is_error: false,
        }
    }

    /// The result of the call `call_id`.
    pub fn tool(call_id: &str, text: String, is_error: bool) -> Message {
        Message {
            role: Role::Tool,
            text,
            tool_calls: Vec::new(),
            tool_call_id: Some(call_id.to_owned()),
            is_error,
        }
    }
}

/// A tool call the model asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id of the call, echoed in its result.
    pub id: String,
    /// The tool's name as the model saw it (`SERVER__TOOL`).
    pub name: String,
    /// The arguments (an object, unless the model sent something else).
    pub arguments: Value,
}

/// A tool as offered to the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The name the model calls it by.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The JSON schema of its arguments.
    pub input_schema: Value,
}
