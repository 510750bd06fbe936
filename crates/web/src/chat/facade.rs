//! The OpenAI-compatible facade: `GET /v1/models` lists the agents the caller may chat with,
//! and `POST /v1/chat/completions` runs one turn of the agent named as the model, streamed as
//! `chat.completion.chunk`s ending with `data: [DONE]`, or whole as a `chat.completion`. So
//! any OpenAI client (SDKs, IDE plugins) can talk to an agent with a Skyport API key.
//!
//! The client's `messages` are the whole history (nothing is stored), its system messages are
//! added to the agent's instructions, and only the model's text comes back: the tool calls
//! happen inside the turn, through the gateway as the key's principal, as in any chat. Errors
//! have OpenAI's shape, `{"error":{"message","type","code"}}`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use skyport_agents::{Message, Stop, TurnEvent, run_turn};
use skyport_gateway::Gateway;
use tokio::sync::mpsc;

use super::{Plan, agent_plan, chattable_agent, credentials, host::GatewayHost};
use crate::{ApiError, AppState, access, auth};

/// `/v1/models` and `/v1/chat/completions`, authenticated by an API key of their own (errors
/// in OpenAI's shape, not the API's).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(completions))
}

/// An error in OpenAI's shape.
struct OpenAiError {
    status: StatusCode,
    message: String,
    code: String,
}

impl From<ApiError> for OpenAiError {
    fn from(error: ApiError) -> OpenAiError {
        let (status, code) = error.status_and_code();
        if status.is_server_error() {
            tracing::error!("an OpenAI-compatible request failed: {error}");
        }
        OpenAiError {
            status,
            message: error.to_string(),
            code: code.to_owned(),
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let kind = match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            500.. => "api_error",
            _ => "invalid_request_error",
        };
        let body = json!({"error": {"message": self.message, "type": kind, "code": self.code}});
        (self.status, Json(body)).into_response()
    }
}

/// `GET /v1/models`: the agents the caller may chat with.
async fn models(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, OpenAiError> {
    let caller = auth::principal(&state, &headers).await?;
    let agents = state.store.agents().list().await.map_err(ApiError::from)?;
    let data: Vec<Value> = access::chattable(&state, &caller, agents)
        .await?
        .into_iter()
        .map(|agent| {
            json!({
                "id": agent.name.to_string(),
                "object": "model",
                "created": agent.created_at.as_second(),
                "owned_by": "skyport",
            })
        })
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// What `POST /v1/chat/completions` reads of its body.
#[derive(Debug, Deserialize)]
struct CompletionRequest {
    model: String,
    messages: Vec<InMessage>,
    #[serde(default)]
    stream: bool,
}

/// A message of the client's history.
#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

/// `POST /v1/chat/completions`.
async fn completions(
    State(state): State<AppState>,
    Extension(gateway): Extension<Gateway>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, OpenAiError> {
    let caller = auth::principal(&state, &headers).await?;
    let request: CompletionRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the request is not a chat completion: {e}")))?;
    let agent = chattable_agent(&state, &caller, &request.model)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) | ApiError::InvalidName(_) => OpenAiError {
                status: StatusCode::NOT_FOUND,
                message: format!(
                    "there is no agent '{}' you may chat with: GET /v1/models lists them",
                    request.model
                ),
                code: "model_not_found".to_owned(),
            },
            other => other.into(),
        })?;
    let mut plan = agent_plan(&state, &agent).await?;
    let (history, system) = history(&request.messages)?;
    if !system.is_empty() {
        plan.config.instructions = [plan.config.instructions.as_str(), system.as_str()]
            .iter()
            .filter(|part| !part.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("\n\n");
    }
    let (bearer, host) = credentials(&headers)?;
    let (events, mut receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let host = GatewayHost::new(gateway.router(), bearer, host);
        turn(&plan, &host, &history, events).await;
        host.close().await;
    });
    let model = agent.name.to_string();
    let id = completion_id();
    if request.stream {
        return Ok(stream(receiver, id, model).into_response());
    }
    let mut text = String::new();
    let mut error = None;
    let mut finish = "stop";
    while let Some(piece) = receiver.recv().await {
        match piece {
            Piece::Text(delta) => text.push_str(&delta),
            Piece::Failed(message) => error = Some(message),
            Piece::Finished(reason) => finish = reason,
        }
    }
    if let Some(message) = error.filter(|_| text.is_empty()) {
        return Err(OpenAiError {
            status: StatusCode::BAD_GATEWAY,
            message,
            code: "provider_error".to_owned(),
        });
    }
    Ok(Json(json!({
        "id": id,
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish,
        }],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }))
    .into_response())
}

/// The client's messages as the turn's history (the last must be the user's), and its
/// system messages joined.
fn history(messages: &[InMessage]) -> Result<(Vec<Message>, String), ApiError> {
    let mut history = Vec::new();
    let mut system = Vec::new();
    for message in messages {
        let text = content_text(&message.content);
        match message.role.as_str() {
            "system" | "developer" => system.push(text),
            "user" => history.push(Message::user(&text)),
            "assistant" => history.push(Message::assistant(text, Vec::new())),
            // Tool messages answer calls the facade never showed; nothing to feed back.
            _ => {}
        }
    }
    match history.last() {
        Some(last) if last.role == skyport_agents::Role::User => Ok((history, system.join("\n\n"))),
        _ => Err(ApiError::BadRequest(
            "the last message must be the user's: that is what the agent answers".to_owned(),
        )),
    }
}

/// A message's content: a string, or the text of its parts.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// What the facade passes on from a turn.
enum Piece {
    Text(String),
    /// The turn failed; the message says why.
    Failed(String),
    /// The turn is over: `stop`, or `length` when the step limit stopped it.
    Finished(&'static str),
}

/// Runs the turn, keeping only its text and how it failed.
async fn turn(
    plan: &Plan,
    host: &GatewayHost,
    history: &[Message],
    pieces: mpsc::UnboundedSender<Piece>,
) {
    let mut last_error = None;
    // The texts of successive steps (before and after tool calls) are paragraphs of one answer.
    let (mut wrote, mut used_tools) = (false, false);
    let mut sink = |event: TurnEvent| match event {
        TurnEvent::Text(delta) => {
            let delta = if wrote && used_tools {
                format!("\n\n{delta}")
            } else {
                delta
            };
            (wrote, used_tools) = (true, false);
            let _ = pieces.send(Piece::Text(delta));
        }
        TurnEvent::Error(message) => last_error = Some(message),
        TurnEvent::ToolCall { .. } | TurnEvent::ToolResult { .. } => used_tools = true,
    };
    let outcome = run_turn(&plan.provider, host, &plan.config, history, &mut sink).await;
    let _ = match outcome.stop {
        Stop::End => pieces.send(Piece::Finished("stop")),
        Stop::StepLimit => pieces.send(Piece::Finished("length")),
        Stop::Error => pieces.send(Piece::Failed(
            last_error.unwrap_or_else(|| "the model failed to answer".to_owned()),
        )),
    };
}

/// The turn as `chat.completion.chunk` events, then `[DONE]`.
fn stream(
    receiver: mpsc::UnboundedReceiver<Piece>,
    id: String,
    model: String,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let chunk = move |delta: Value, finish: Value| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": now(),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    };
    let first = chunk(json!({"role": "assistant", "content": ""}), Value::Null);
    let pieces = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let piece = receiver.recv().await?;
        Some((piece, receiver))
    })
    .map(move |piece| match piece {
        Piece::Text(delta) => chunk(json!({"content": delta}), Value::Null),
        Piece::Finished(reason) => chunk(json!({}), json!(reason)),
        Piece::Failed(message) => {
            json!({"error": {"message": message, "type": "api_error", "code": "provider_error"}})
        }
    });
    let events = futures_util::stream::once(async move { first })
        .chain(pieces)
        .map(|data| Ok(Event::default().data(data.to_string())))
        .chain(futures_util::stream::once(async {
            Ok(Event::default().data("[DONE]"))
        }));
    Sse::new(events)
}

/// A fresh `chatcmpl-…` id.
fn completion_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("chatcmpl-{:x}{n:04x}", now())
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}
