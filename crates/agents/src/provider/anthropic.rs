//! The Anthropic Messages API: the request body (`system` apart, tool results as
//! `tool_result` blocks of a user message, consecutive messages of one role merged since the
//! API wants them alternating) and the streamed events: `message_start`, per content block
//! `content_block_start` (text or tool_use), `content_block_delta` (`text_delta` or
//! `input_json_delta`), `content_block_stop`, then `message_delta` (the stop reason) and
//! `message_stop`; `error` at any point.

use serde_json::{Value, json};

use super::{Fault, Reply, Request, StopReason};
use crate::message::{Message, Role, ToolCall};

/// Output tokens asked for per step (the API requires a bound).
const MAX_TOKENS: u32 = 4096;

/// The JSON body of `POST {base}/v1/messages`.
pub(super) fn body(request: &Request<'_>) -> Value {
    let mut messages: Vec<Value> = Vec::new();
    for message in request.messages {
        let (role, blocks) = blocks(message);
        if blocks.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(content) = last["content"].as_array_mut() {
                    content.extend(blocks);
                }
            }
            _ => messages.push(json!({"role": role, "content": blocks})),
        }
    }
    let mut body = json!({
        "model": request.model,
        "max_tokens": MAX_TOKENS,
        "stream": true,
        "messages": messages,
    });
    if !request.system.is_empty() {
        body["system"] = json!(request.system);
    }
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "name": tool.name,
                    "description": tool.description,
                    "input_schema": object_schema(&tool.input_schema),
                })
            })
            .collect();
    }
    body
}

/// The role a message is sent as, and its content blocks (empty text is left out: the API
/// refuses empty text blocks).
fn blocks(message: &Message) -> (&'static str, Vec<Value>) {
    match message.role {
        Role::User => ("user", text_block(&message.text)),
        Role::Assistant => {
            let mut blocks = text_block(&message.text);
            blocks.extend(message.tool_calls.iter().map(|call| {
                let input = if call.arguments.is_object() {
                    call.arguments.clone()
                } else {
                    json!({})
                };
                json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input})
            }));
            ("assistant", blocks)
        }
        Role::Tool => {
            let mut block = json!({
                "type": "tool_result",
                "tool_use_id": message.tool_call_id,
                "content": message.text,
            });
            if message.is_error {
                block["is_error"] = json!(true);
            }
            ("user", vec![block])
        }
    }
}

fn text_block(text: &str) -> Vec<Value> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![json!({"type": "text", "text": text})]
    }
}

/// The API wants an object schema; a tool without one takes an empty object.
fn object_schema(schema: &Value) -> Value {
    if schema.is_object() {
        schema.clone()
    } else {
        json!({"type": "object"})
    }
}

/// A content block being assembled.
#[derive(Debug)]
enum Block {
    Text,
    ToolUse {
        id: String,
        name: String,
        json: String,
    },
}

/// Reads the events of one answer.
#[derive(Debug, Default)]
pub(super) struct Parser {
    text: String,
    blocks: Vec<(u64, Block)>,
    stop: Option<String>,
    stopped: bool,
}

impl Parser {
    /// Takes one event; `Ok(true)` at `message_stop`.
    pub(super) fn event(
        &mut self,
        name: &str,
        data: &str,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<bool, Fault> {
        if data.trim().is_empty() {
            return Ok(false);
        }
        let event: Value = serde_json::from_str(data)
            .map_err(|e| Fault::Malformed(format!("an event is not JSON ({e}): {data}")))?;
        // The `type` field repeats the event's name; either one serves.
        let kind = event["type"].as_str().unwrap_or(name);
        match kind {
            "content_block_start" => {
                let index = event["index"].as_u64().unwrap_or_default();
                let block = &event["content_block"];
                let block = match block["type"].as_str() {
                    Some("tool_use") => Block::ToolUse {
                        id: block["id"].as_str().unwrap_or_default().to_owned(),
                        name: block["name"].as_str().unwrap_or_default().to_owned(),
                        json: String::new(),
                    },
                    _ => Block::Text,
                };
                self.blocks.push((index, block));
            }
            "content_block_delta" => {
                let index = event["index"].as_u64().unwrap_or_default();
                let delta = &event["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => {
                        if let Some(text) = delta["text"].as_str().filter(|t| !t.is_empty()) {
                            self.text.push_str(text);
                            on_text(text);
                        }
                    }
                    Some("input_json_delta") => {
                        let piece = delta["partial_json"].as_str().unwrap_or_default();
                        match self.blocks.iter_mut().rev().find(|(i, _)| *i == index) {
                            Some((_, Block::ToolUse { json, .. })) => json.push_str(piece),
                            _ => {
                                return Err(Fault::Malformed(format!(
                                    "tool input for block {index}, which is no tool_use block"
                                )));
                            }
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = event["delta"]["stop_reason"].as_str() {
                    self.stop = Some(reason.to_owned());
                }
            }
            "message_stop" => {
                self.stopped = true;
                return Ok(true);
            }
            "error" => {
                let error = &event["error"];
                let message = error["message"].as_str().unwrap_or("no message");
                let kind = error["type"].as_str().unwrap_or("error");
                return Err(Fault::Reported(format!("{message} ({kind})")));
            }
            _ => {}
        }
        Ok(false)
    }

    /// The whole answer; the stream must have reached `message_stop` or named a stop reason.
    pub(super) fn finish(self) -> Result<Reply, Fault> {
        if !self.stopped && self.stop.is_none() {
            return Err(Fault::Malformed(
                "the stream ended before the answer said it was finished".to_owned(),
            ));
        }
        let tool_calls = self
            .blocks
            .into_iter()
            .filter_map(|(_, block)| match block {
                Block::ToolUse { id, name, json } => Some(ToolCall {
                    id,
                    name,
                    arguments: super::arguments(&json),
                }),
                Block::Text => None,
            })
            .collect();
        let stop = match self.stop.as_deref() {
            Some("end_turn" | "stop_sequence") | None => StopReason::End,
            Some("tool_use") => StopReason::ToolUse,
            Some("max_tokens") => StopReason::Length,
            Some(other) => StopReason::Other(other.to_owned()),
        };
        Ok(Reply {
            text: self.text,
            tool_calls,
            stop,
        })
    }
}
