//! One turn of a chat: the person's message is already in the history; the model answers,
//! perhaps asking for tools, whose results go back to it, step after step, until it answers
//! without tools or the step limit is reached.
//!
//! Tools are gathered per turn from the [`ToolHost`], server by server, so a policy change
//! applies from the next message on; a server whose listing fails is left out (with an
//! `Error` event naming it) and the others still serve. Calls run one after the other in the
//! order the model gave them, also when it asked for several at once.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use crate::message::{Message, ToolCall, ToolSpec};
use crate::names::{self, ToolNames};
use crate::provider::{Provider, Request};

/// A boxed future, so that [`ToolHost`] can be a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Lists and calls the tools of the agent's servers, as the person chatting.
pub trait ToolHost: Send + Sync {
    /// Every tool of `server` the person may see.
    fn list_tools<'a>(
        &'a self,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ListedTool>, ToolHostError>>;

    /// Calls `tool` of `server` with `arguments`.
    fn call_tool<'a>(
        &'a self,
        server: &'a str,
        tool: &'a str,
        arguments: Value,
    ) -> BoxFuture<'a, Result<ToolOutcome, ToolHostError>>;
}

/// Why a [`ToolHost`] could not list or call: a message for the person and the model.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ToolHostError(pub String);

/// A tool of a server, as its `tools/list` described it.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedTool {
    /// Its name on the server, description and schema.
    pub spec: ToolSpec,
    /// The `ui://` resource of its MCP App (`_meta.ui.resourceUri`), if it has one.
    pub app: Option<String>,
}

impl ListedTool {
    /// Reads one entry of a `tools/list` result; `None` when it has no name.
    pub fn from_mcp(tool: &Value) -> Option<ListedTool> {
        let name = tool["name"].as_str().filter(|n| !n.is_empty())?;
        Some(ListedTool {
            spec: ToolSpec {
                name: name.to_owned(),
                description: tool["description"].as_str().unwrap_or_default().to_owned(),
                input_schema: tool
                    .get("inputSchema")
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({"type": "object"})),
            },
            app: tool["_meta"]["ui"]["resourceUri"]
                .as_str()
                .map(str::to_owned),
        })
    }
}

/// What a tool call returned.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolOutcome {
    /// Its MCP content blocks.
    pub content: Vec<Value>,
    /// Its structured content, if any.
    pub structured: Option<Value>,
    /// Whether the tool reported a failure.
    pub is_error: bool,
}

impl ToolOutcome {
    /// Reads a `tools/call` result.
    pub fn from_mcp(result: &Value) -> ToolOutcome {
        ToolOutcome {
            content: result["content"].as_array().cloned().unwrap_or_default(),
            structured: result
                .get("structuredContent")
                .filter(|v| !v.is_null())
                .cloned(),
            is_error: result["isError"].as_bool().unwrap_or(false),
        }
    }

    /// A failed call, explained in one text block.
    pub fn error(message: &str) -> ToolOutcome {
        ToolOutcome {
            content: vec![serde_json::json!({"type": "text", "text": message})],
            structured: None,
            is_error: true,
        }
    }

    /// The result as the model reads it: the text blocks, other blocks as JSON, or the
    /// structured content when there is no block.
    fn for_model(&self) -> String {
        let parts: Vec<String> = self
            .content
            .iter()
            .map(|block| match block["text"].as_str() {
                Some(text) if block["type"] == "text" => text.to_owned(),
                _ => block.to_string(),
            })
            .collect();
        if parts.is_empty() {
            return self
                .structured
                .as_ref()
                .map_or_else(String::new, Value::to_string);
        }
        parts.join("\n")
    }
}

/// What a turn needs besides the history.
#[derive(Clone, Debug)]
pub struct TurnConfig {
    /// The agent's instructions.
    pub instructions: String,
    /// The model to ask.
    pub model: String,
    /// The most model requests one turn makes.
    pub step_limit: u32,
    /// The servers whose tools the agent uses, in order.
    pub servers: Vec<String>,
}

/// Something that happened in a turn, as it happens.
#[derive(Clone, Debug, PartialEq)]
pub enum TurnEvent {
    /// A piece of the model's text.
    Text(String),
    /// The model asked for a tool.
    ToolCall {
        /// The call's id.
        id: String,
        /// The server it goes to; `None` when the name matches none of the agent's.
        server: Option<String>,
        /// The tool's name on that server (the name as called when no server matched).
        tool: String,
        /// The name the model called.
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
        /// The tool's name on that server.
        tool: String,
        /// What it returned.
        outcome: ToolOutcome,
        /// The tool's MCP App resource, for rendering the result.
        app: Option<String>,
    },
    /// Something went wrong: a server left out, the provider failing, the step limit.
    Error(String),
}

/// How a turn ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The model answered without asking for more tools.
    End,
    /// The step limit was reached while the model still asked for tools.
    StepLimit,
    /// The provider failed.
    Error,
}

/// What a turn produced.
#[derive(Clone, Debug, PartialEq)]
pub struct TurnOutcome {
    /// The messages it added to the history (assistant and tool messages, in order).
    pub messages: Vec<Message>,
    /// How it ended.
    pub stop: Stop,
}

/// The tools offered in a turn.
struct Offer {
    specs: Vec<ToolSpec>,
    names: ToolNames,
    /// The MCP App (`ui://` resource) of each offered tool that has one, by offered name.
    apps: HashMap<String, String>,
}

/// Runs one turn over `history` (which ends with the person's message), reporting to `sink`.
pub async fn run_turn(
    provider: &Provider,
    host: &dyn ToolHost,
    config: &TurnConfig,
    history: &[Message],
    sink: &mut (dyn FnMut(TurnEvent) + Send),
) -> TurnOutcome {
    let offer = gather(host, &config.servers, sink).await;
    let mut messages = history.to_vec();
    let start = messages.len();
    for _ in 0..config.step_limit {
        let request = Request {
            model: &config.model,
            system: &config.instructions,
            messages: &messages,
            tools: &offer.specs,
        };
        let reply = {
            let mut on_text = |text: &str| sink(TurnEvent::Text(text.to_owned()));
            provider.stream(&request, &mut on_text).await
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                sink(TurnEvent::Error(error.to_string()));
                return TurnOutcome {
                    messages: messages.split_off(start),
                    stop: Stop::Error,
                };
            }
        };
        let calls = reply.tool_calls.clone();
        messages.push(Message::assistant(reply.text, reply.tool_calls));
        if calls.is_empty() {
            return TurnOutcome {
                messages: messages.split_off(start),
                stop: Stop::End,
            };
        }
        for call in calls {
            let result = run_call(host, &offer, &config.servers, call, sink).await;
            messages.push(result);
        }
    }
    sink(TurnEvent::Error(format!(
        "stopped after {} steps, the agent's step limit, while the model still asked for tools; \
         send another message to let it go on, or raise the agent's step limit",
        config.step_limit
    )));
    TurnOutcome {
        messages: messages.split_off(start),
        stop: Stop::StepLimit,
    }
}

/// Lists the tools of every server, leaving out those whose listing fails.
async fn gather(
    host: &dyn ToolHost,
    servers: &[String],
    sink: &mut (dyn FnMut(TurnEvent) + Send),
) -> Offer {
    let mut offer = Offer {
        specs: Vec::new(),
        names: ToolNames::default(),
        apps: HashMap::new(),
    };
    for server in servers {
        match host.list_tools(server).await {
            Ok(tools) => {
                for tool in tools {
                    let name = offer.names.add(server, &tool.spec.name);
                    if let Some(app) = tool.app {
                        offer.apps.insert(name.clone(), app);
                    }
                    offer.specs.push(ToolSpec { name, ..tool.spec });
                }
            }
            Err(error) => sink(TurnEvent::Error(format!(
                "the tools of server `{server}` are left out of this turn: {error}"
            ))),
        }
    }
    offer
}

/// Runs one call and returns the tool message answering it.
async fn run_call(
    host: &dyn ToolHost,
    offer: &Offer,
    servers: &[String],
    call: ToolCall,
    sink: &mut (dyn FnMut(TurnEvent) + Send),
) -> Message {
    let target = match offer.names.resolve(&call.name) {
        Some((server, tool)) => Some((server.to_owned(), tool.to_owned())),
        None => names::forged(&call.name, servers).map(|(s, t)| (s, t.to_owned())),
    };
    let app = offer.apps.get(&call.name).cloned();
    let (server, tool) = match &target {
        Some((server, tool)) => (Some(server.clone()), tool.clone()),
        None => (None, call.name.clone()),
    };
    sink(TurnEvent::ToolCall {
        id: call.id.clone(),
        server: server.clone(),
        tool: tool.clone(),
        name: call.name.clone(),
        arguments: call.arguments.clone(),
    });
    let outcome = match (&server, &call.arguments) {
        (None, _) => ToolOutcome::error(&format!(
            "there is no tool `{}`: call one of the tools offered",
            call.name
        )),
        (Some(_), arguments) if !arguments.is_object() => ToolOutcome::error(&format!(
            "the arguments of `{}` must be a JSON object, not {arguments}",
            call.name
        )),
        (Some(server), arguments) => host
            .call_tool(server, &tool, arguments.clone())
            .await
            .unwrap_or_else(|e| ToolOutcome::error(&e.0)),
    };
    let text = outcome.for_model();
    let is_error = outcome.is_error;
    sink(TurnEvent::ToolResult {
        id: call.id.clone(),
        server,
        tool,
        outcome,
        app,
    });
    Message::tool(&call.id, text, is_error)
}

#[cfg(test)]
mod tests;
