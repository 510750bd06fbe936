//! OpenAI-compatible Chat Completions: the request body (tools as functions, tool results as
//! `tool` messages) and the streamed `chat.completion.chunk`s, whose tool calls arrive in
//! pieces keyed by their index (id and name in the first piece, the arguments as string
//! fragments), ending with `data: [DONE]`.

use serde_json::{Value, json};

use super::{Fault, Reply, Request, StopReason};
use crate::message::{Message, Role, ToolCall};

/// The JSON body of `POST {base}/chat/completions`.
pub(super) fn body(request: &Request<'_>) -> Value {
    let mut messages = Vec::new();
    if !request.system.is_empty() {
        messages.push(json!({"role": "system", "content": request.system}));
    }
    messages.extend(request.messages.iter().map(message));
    let mut body = json!({
        "model": request.model,
        "stream": true,
        "messages": messages,
    });
    if !request.tools.is_empty() {
        body["tools"] = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.input_schema,
                    },
                })
            })
            .collect();
    }
    body
}

fn message(message: &Message) -> Value {
    match message.role {
        Role::User => json!({"role": "user", "content": message.text}),
        Role::Assistant => {
            let mut out = json!({
                "role": "assistant",
                "content": if message.text.is_empty() { Value::Null } else { json!(message.text) },
            });
            if !message.tool_calls.is_empty() {
                out["tool_calls"] = message
                    .tool_calls
                    .iter()
                    .map(|call| {
                        json!({
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments.to_string()},
                        })
                    })
                    .collect();
            }
            out
        }
        Role::Tool => json!({
            "role": "tool",
            "tool_call_id": message.tool_call_id,
            "content": message.text,
        }),
    }
}

/// A tool call being assembled from its pieces.
#[derive(Debug, Default)]
struct Partial {
    id: String,
    name: String,
    arguments: String,
}

/// Reads the chunks of one answer.
#[derive(Debug, Default)]
pub(super) struct Parser {
    text: String,
    calls: Vec<Partial>,
    finish: Option<String>,
}

impl Parser {
    /// Takes one event's data; `Ok(true)` at `[DONE]`.
    pub(super) fn event(
        &mut self,
        data: &str,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<bool, Fault> {
        let data = data.trim();
        if data == "[DONE]" {
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let chunk: Value = serde_json::from_str(data)
            .map_err(|e| Fault::Malformed(format!("a chunk is not JSON ({e}): {data}")))?;
        if let Some(error) = chunk.get("error") {
            let message = error["message"].as_str().unwrap_or("no message");
            return Err(Fault::Reported(message.to_owned()));
        }
        // Only the first choice is read: Skyport never asks for more than one.
        let Some(choice) = chunk["choices"].as_array().and_then(|choices| {
            choices
                .iter()
                .find(|c| c["index"].as_u64().unwrap_or(0) == 0)
        }) else {
            return Ok(false);
        };
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.text.push_str(text);
            on_text(text);
        }
        for piece in delta["tool_calls"].as_array().into_iter().flatten() {
            self.tool_call_piece(piece)?;
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.finish = Some(reason.to_owned());
        }
        Ok(false)
    }

    fn tool_call_piece(&mut self, piece: &Value) -> Result<(), Fault> {
        let index = match piece["index"].as_u64() {
            Some(index) => usize::try_from(index).unwrap_or(usize::MAX),
            // Some servers omit the index of a single call.
            None => self.calls.len().saturating_sub(1),
        };
        if index > self.calls.len() + 16 {
            return Err(Fault::Malformed(format!(
                "a tool call has the index {index} after {} calls",
                self.calls.len()
            )));
        }
        if self.calls.len() <= index {
            self.calls.resize_with(index + 1, Partial::default);
        }
        let call = &mut self.calls[index];
        if let Some(id) = piece["id"].as_str() {
            call.id = id.to_owned();
        }
        let function = &piece["function"];
        if let Some(name) = function["name"].as_str() {
            call.name.push_str(name);
        }
        if let Some(arguments) = function["arguments"].as_str() {
            call.arguments.push_str(arguments);
        }
        Ok(())
    }

    /// The whole answer; an answer without `[DONE]` counts when it had a finish reason.
    pub(super) fn finish(self) -> Result<Reply, Fault> {
        let Some(reason) = self.finish else {
            return Err(Fault::Malformed(
                "the stream ended before the answer said it was finished".to_owned(),
            ));
        };
        let tool_calls: Vec<ToolCall> = self
            .calls
            .into_iter()
            .enumerate()
            .filter(|(_, call)| !call.name.is_empty())
            .map(|(i, call)| ToolCall {
                id: if call.id.is_empty() {
                    format!("call_{i}")
                } else {
                    call.id
                },
                name: call.name,
                arguments: super::arguments(&call.arguments),
            })
            .collect();
        let stop = match reason.as_str() {
            "stop" => StopReason::End,
            "tool_calls" | "function_call" => StopReason::ToolUse,
            "length" => StopReason::Length,
            other => StopReason::Other(other.to_owned()),
        };
        Ok(Reply {
            text: self.text,
            tool_calls,
            stop,
        })
    }
}
