//! A fake model provider for tests: an HTTP server on 127.0.0.1 that speaks both the
//! OpenAI-compatible (`…/chat/completions`) and the Anthropic (`…/v1/messages`) streaming
//! APIs, answering each request with the next [`Turn`] of its script (text in chunks, tool
//! calls whose arguments are split over chunks, an HTTP error, a delay before answering), and
//! recording every request so that a test can see what the model was offered and fed back.
//!
//! It is compiled for this crate's tests and, with the `scripted` feature, for other crates'
//! tests; never into Skyport itself.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Turn {
    delay: Duration,
    answer: Answer,
}

#[derive(Clone, Debug)]
enum Answer {
    Stream(Vec<Part>),
    Fail {
        status: u16,
        body: String,
        retry_after: Option<u64>,
    },
}

#[derive(Clone, Debug)]
enum Part {
    Text(String),
    ToolCall {
        id: String,
        name: String,
        pieces: Vec<String>,
    },
}

impl Turn {
    /// An answer whose text streams as `chunks`, one chunk per event.
    pub fn text(chunks: &[&str]) -> Turn {
        Turn::stream().then_text(chunks)
    }

    /// An answer calling `name` (as the model sees it) with the arguments streamed as the
    /// concatenation of `pieces`.
    pub fn tool_call(id: &str, name: &str, pieces: &[&str]) -> Turn {
        Turn::stream().then_tool_call(id, name, pieces)
    }

    /// An HTTP error answer.
    pub fn fail(status: u16, body: &str) -> Turn {
        Turn {
            delay: Duration::ZERO,
            answer: Answer::Fail {
                status,
                body: body.to_owned(),
                retry_after: None,
            },
        }
    }

    /// An HTTP error answer asking the client to wait `seconds` before trying again.
    pub fn fail_retry_after(status: u16, body: &str, seconds: u64) -> Turn {
        Turn {
            delay: Duration::ZERO,
            answer: Answer::Fail {
                status,
                body: body.to_owned(),
                retry_after: Some(seconds),
            },
        }
    }

    fn stream() -> Turn {
        Turn {
            delay: Duration::ZERO,
            answer: Answer::Stream(Vec::new()),
        }
    }

    /// Adds text after what the answer has.
    pub fn then_text(mut self, chunks: &[&str]) -> Turn {
        if let Answer::Stream(parts) = &mut self.answer {
            parts.extend(chunks.iter().map(|&c| Part::Text(c.to_owned())));
        }
        self
    }

    /// Adds a tool call after what the answer has.
    pub fn then_tool_call(mut self, id: &str, name: &str, pieces: &[&str]) -> Turn {
        if let Answer::Stream(parts) = &mut self.answer {
            parts.push(Part::ToolCall {
                id: id.to_owned(),
                name: name.to_owned(),
                pieces: pieces.iter().map(|&p| p.to_owned()).collect(),
            });
        }
        self
    }

    /// Waits `delay` before answering at all (to provoke a client's timeout).
    pub fn delayed(mut self, delay: Duration) -> Turn {
        self.delay = delay;
        self
    }
}

/// A request the fake received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Its path.
    pub path: String,
    /// Its headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Its JSON body.
    pub body: Value,
}

impl Recorded {
    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The names of the tools offered, in either API's shape.
    pub fn tool_names(&self) -> Vec<String> {
        self.body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                t["function"]["name"]
                    .as_str()
                    .or_else(|| t["name"].as_str())
            })
            .map(str::to_owned)
            .collect()
    }

    /// The whole body as text, for finding what was fed back.
    pub fn body_text(&self) -> String {
        self.body.to_string()
    }
}

#[derive(Default)]
struct Script {
    turns: VecDeque<Turn>,
    requests: Vec<Recorded>,
}

type Shared = Arc<Mutex<Script>>;

/// The running fake; stops when dropped.
pub struct ScriptedProvider {
    addr: SocketAddr,
    script: Shared,
    task: JoinHandle<()>,
}

impl ScriptedProvider {
    /// Starts the fake on a free port of 127.0.0.1.
    pub async fn start() -> std::io::Result<ScriptedProvider> {
        let script = Shared::default();
        let app = Router::new().fallback(answer).with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ScriptedProvider { addr, script, task })
    }

    /// Its base URL for an OpenAI-compatible provider (`…/v1`).
    pub fn openai_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Its base URL for an Anthropic provider.
    pub fn anthropic_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues answers, in order.
    pub fn push(&self, turns: impl IntoIterator<Item = Turn>) {
        self.lock().turns.extend(turns);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// How many queued answers are left.
    pub fn remaining(&self) -> usize {
        self.lock().turns.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for ScriptedProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Which API a request spoke.
#[derive(Clone, Copy)]
enum Api {
    OpenAi,
    Anthropic,
}

async fn answer(State(script): State<Shared>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    let api = if path.ends_with("/chat/completions") {
        Api::OpenAi
    } else if path.ends_with("/v1/messages") {
        Api::Anthropic
    } else {
        return (StatusCode::NOT_FOUND, "no such API here").into_response();
    };
    let headers = recorded_headers(request.headers());
    let Ok(bytes) = axum::body::to_bytes(request.into_body(), 16 << 20).await else {
        return (StatusCode::BAD_REQUEST, "unreadable body").into_response();
    };
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let turn = {
        let mut script = script.lock().unwrap_or_else(PoisonError::into_inner);
        script.requests.push(Recorded {
            path,
            headers,
            body,
        });
        script.turns.pop_front()
    };
    let Some(turn) = turn else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the scripted provider has no answer left",
        )
            .into_response();
    };
    tokio::time::sleep(turn.delay).await;
    match turn.answer {
        Answer::Fail {
            status,
            body,
            retry_after,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = (status, body).into_response();
            if let Some(seconds) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, seconds.into());
            }
            response
        }
        Answer::Stream(parts) => {
            let events = match api {
                Api::OpenAi => openai_events(&parts),
                Api::Anthropic => anthropic_events(&parts),
            };
            let chunks = events
                .into_iter()
                .map(|e| Ok::<_, std::convert::Infallible>(Bytes::from(e)));
            Response::builder()
                .header(header::CONTENT_TYPE, "text/event-stream")
                .body(Body::from_stream(futures_util::stream::iter(chunks)))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

fn recorded_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

fn data(value: &Value) -> String {
    format!("data: {value}\n\n")
}

fn openai_events(parts: &[Part]) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        data(&json!({
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "model": "scripted",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }))
    };
    let mut events = vec![chunk(json!({"role": "assistant"}), Value::Null)];
    let mut index = 0;
    for part in parts {
        match part {
            Part::Text(text) => events.push(chunk(json!({"content": text}), Value::Null)),
            Part::ToolCall { id, name, pieces } => {
                let first = pieces.first().map_or("", String::as_str);
                events.push(chunk(
                    json!({"tool_calls": [{
                        "index": index, "id": id, "type": "function",
                        "function": {"name": name, "arguments": first},
                    }]}),
                    Value::Null,
                ));
                for piece in pieces.iter().skip(1) {
                    events.push(chunk(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                        Value::Null,
                    ));
                }
                index += 1;
            }
        }
    }
    let finish = if index > 0 { "tool_calls" } else { "stop" };
    events.push(chunk(json!({}), json!(finish)));
    events.push("data: [DONE]\n\n".to_owned());
    events
}

fn anthropic_events(parts: &[Part]) -> Vec<String> {
    let event = |name: &str, value: Value| format!("event: {name}\n{}", data(&value));
    let mut events = vec![event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": "msg_scripted", "type": "message", "role": "assistant", "model": "scripted",
            "content": [], "stop_reason": null,
        }}),
    )];
    let mut uses_tools = false;
    for (index, part) in parts.iter().enumerate() {
        match part {
            Part::Text(text) => {
                events.push(event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index,
                           "content_block": {"type": "text", "text": ""}}),
                ));
                events.push(event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index,
                           "delta": {"type": "text_delta", "text": text}}),
                ));
            }
            Part::ToolCall { id, name, pieces } => {
                uses_tools = true;
                events.push(event(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index,
                           "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
                ));
                for piece in pieces {
                    events.push(event(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index,
                               "delta": {"type": "input_json_delta", "partial_json": piece}}),
                    ));
                }
            }
        }
        events.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    let stop = if uses_tools { "tool_use" } else { "end_turn" };
    events.push(event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop}}),
    ));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    events
}
