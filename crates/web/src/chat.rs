//! Chatting: `POST /api/v1/agents/{name}/chat`, `POST /api/v1/servers/{name}/chat` (ChatMCP:
//! an ad-hoc agent over one server with the default provider), the caller's conversations
//! (`GET /api/v1/conversations[/{id}]`), and the OpenAI-compatible facade (`facade.rs`).
//!
//! A turn runs in a task of its own, which reports to the response's event stream as it goes
//! and stores the turn's messages when it is over, so a person who closes the page still finds
//! the whole turn in the conversation. Tools are reached through the gateway as the caller
//! (`host.rs`): this module decides who may chat, never who may call which tool.

mod facade;
mod host;

use std::convert::Infallible;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures_util::Stream;
use serde::Deserialize;
use skyport_agents::{
    Message, Provider, ProviderConfig, ProviderKind, Stop, TurnConfig, TurnEvent, run_turn,
};
use skyport_api::{
    ChatApp, ChatEvent, ChatMessage, ChatRequest, ChatStop, ConversationDetail, ConversationView,
};
use skyport_gateway::Gateway;
use skyport_store::{
    Agent, AgentName, Conversation, ConversationId, ConversationSubject, Principal,
    ProviderConnection, ServerName,
};
use tokio::sync::mpsc;

use crate::access::{self, Permission, authorize};
use crate::{ApiError, AppState};

pub(crate) use facade::router as facade_router;

/// The step limit of ChatMCP's ad-hoc agent.
const SERVER_CHAT_STEPS: u32 = 8;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/agents/{name}/chat", post(agent_chat))
        .route("/servers/{name}/chat", post(server_chat))
        .route("/conversations", get(list_conversations))
        .route("/conversations/{id}", get(show_conversation))
}

/// What a turn needs besides the history: the model's client and the agent's settings.
pub(crate) struct Plan {
    pub(crate) provider: Provider,
    pub(crate) config: TurnConfig,
}

/// `POST /agents/{name}/chat`.
async fn agent_chat(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Extension(gateway): Extension<Gateway>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(body): Json<ChatRequest>,
) -> Result<Response, ApiError> {
    let agent = chattable_agent(&state, &caller, &name).await?;
    let plan = agent_plan(&state, &agent).await?;
    let subject = ConversationSubject::Agent(agent.id.clone());
    start(state, gateway, &caller, &headers, subject, plan, body).await
}

/// `POST /servers/{name}/chat`: ChatMCP.
async fn server_chat(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Extension(gateway): Extension<Gateway>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(body): Json<ChatRequest>,
) -> Result<Response, ApiError> {
    let server = authorize(&state, &caller, &name, Permission::View).await?;
    let connection = state
        .store
        .providers()
        .default_connection()
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(
            "no provider is the default, and chatting with a server uses the default provider: \
             make one the default with `skyport providers edit NAME --default`"
                .to_owned(),
        )
        })?;
    let model = default_model(&connection)?;
    let instructions = format!(
        "You help the user with the tools of the MCP server `{}`{}. Use them when they help; \
         say so when none fits.",
        server.name,
        if server.description.is_empty() {
            String::new()
        } else {
            format!(" ({})", server.description)
        }
    );
    let plan = Plan {
        provider: provider(connection),
        config: TurnConfig {
            instructions,
            model,
            step_limit: SERVER_CHAT_STEPS,
            servers: vec![server.name.to_string()],
        },
    };
    let subject = ConversationSubject::Server(server.id.clone());
    start(state, gateway, &caller, &headers, subject, plan, body).await
}

/// The agent named `name` when `caller` may chat with it.
pub(crate) async fn chattable_agent(
    state: &AppState,
    caller: &Principal,
    name: &str,
) -> Result<Agent, ApiError> {
    let name: AgentName = name.parse()?;
    let agent = state.store.agents().find(&name).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "there is no agent '{name}': list them with `skyport agents ls`"
        ))
    })?;
    access::require_chat(state, caller, &agent).await?;
    Ok(agent)
}

/// The provider and settings of `agent`'s turns.
pub(crate) async fn agent_plan(state: &AppState, agent: &Agent) -> Result<Plan, ApiError> {
    let connection = state
        .store
        .providers()
        .connection(&agent.provider)
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "agent '{}' uses provider '{}', which does not exist: set another with `skyport agents edit {} --provider NAME`",
                agent.name, agent.provider, agent.name
            ))
        })?;
    let model = match &agent.model {
        Some(model) => model.clone(),
        None => default_model(&connection)?,
    };
    Ok(Plan {
        provider: provider(connection),
        config: TurnConfig {
            instructions: agent.instructions.clone(),
            model,
            step_limit: agent.step_limit,
            servers: agent.servers.iter().map(ToString::to_string).collect(),
        },
    })
}

fn default_model(connection: &ProviderConnection) -> Result<String, ApiError> {
    connection.default_model.clone().ok_or_else(|| {
        ApiError::Conflict(format!(
            "provider '{}' has no default model: set one with `skyport providers edit {} --default-model MODEL`",
            connection.name, connection.name
        ))
    })
}

fn provider(connection: ProviderConnection) -> Provider {
    let kind = match connection.kind {
        skyport_store::ProviderKind::OpenAi => ProviderKind::OpenAi,
        skyport_store::ProviderKind::Anthropic => ProviderKind::Anthropic,
    };
    Provider::new(ProviderConfig {
        name: connection.name.to_string(),
        kind,
        base_url: connection.base_url,
        api_key: connection.api_key,
        timeout: connection.timeout,
        retries: connection.retries,
    })
}

/// The caller's API key as the gateway wants it, and the request's host.
pub(crate) fn credentials(
    headers: &HeaderMap,
) -> Result<(HeaderValue, Option<HeaderValue>), ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .cloned()
        .ok_or(ApiError::Unauthorized)?;
    Ok((bearer, headers.get(header::HOST).cloned()))
}

/// Opens or continues the conversation, stores the message, and streams the turn.
async fn start(
    state: AppState,
    gateway: Gateway,
    caller: &Principal,
    headers: &HeaderMap,
    subject: ConversationSubject,
    plan: Plan,
    body: ChatRequest,
) -> Result<Response, ApiError> {
    let (bearer, host) = credentials(headers)?;
    if body.message.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "the message is empty: say something".to_owned(),
        ));
    }
    let (id, mut history) = match &body.conversation {
        Some(id) => {
            let conversation = own_conversation(&state, caller, id).await?;
            if conversation.subject != subject {
                return Err(ApiError::BadRequest(format!(
                    "conversation {id} is with another agent or server: leave it out to start a new one"
                )));
            }
            let history = history(&state, &conversation.id).await?;
            (conversation.id, history)
        }
        None => {
            let id = state
                .store
                .conversations()
                .create(&caller.id, &subject, &body.message)
                .await?;
            (id, Vec::new())
        }
    };
    let message = Message::user(&body.message);
    append(&state, &id, std::slice::from_ref(&message)).await?;
    history.push(message);
    let (events, receiver) = mpsc::unbounded_channel();
    let _ = events.send(ChatEvent::Conversation { id: id.to_string() });
    tokio::spawn(async move {
        let host = host::GatewayHost::new(gateway.router(), bearer, host);
        let mut sink = |event: TurnEvent| {
            let _ = events.send(chat_event(event));
        };
        let outcome = run_turn(&plan.provider, &host, &plan.config, &history, &mut sink).await;
        host.close().await;
        if let Err(e) = append(&state, &id, &outcome.messages).await {
            tracing::error!(conversation = %id, "a chat turn could not be stored: {e}");
            let _ = events.send(ChatEvent::Error {
                message: "this turn could not be saved in the conversation".to_owned(),
            });
        }
        let _ = events.send(ChatEvent::Done {
            stop: chat_stop(outcome.stop),
        });
    });
    Ok(sse(receiver).into_response())
}

/// The events of a turn as Server-Sent Events: `event: TYPE`, `data: JSON`.
fn sse(
    receiver: mpsc::UnboundedReceiver<ChatEvent>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let event = receiver.recv().await?;
        let data = serde_json::to_string(&event).unwrap_or_default();
        Some((
            Ok(Event::default().event(event.name()).data(data)),
            receiver,
        ))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// A turn's event as the API shows it.
pub(crate) fn chat_event(event: TurnEvent) -> ChatEvent {
    match event {
        TurnEvent::Text(delta) => ChatEvent::Text { delta },
        TurnEvent::ToolCall {
            id,
            server,
            tool,
            name,
            arguments,
        } => ChatEvent::ToolCall {
            id,
            server,
            tool,
            name,
            arguments,
        },
        TurnEvent::ToolResult {
            id,
            server,
            tool,
            outcome,
            app,
        } => ChatEvent::ToolResult {
            app: server
                .clone()
                .zip(app)
                .map(|(server, uri)| ChatApp { server, uri }),
            id,
            server,
            tool,
            is_error: outcome.is_error,
            content: outcome.content,
            structured: outcome.structured,
        },
        TurnEvent::Error(message) => ChatEvent::Error { message },
    }
}

pub(crate) fn chat_stop(stop: Stop) -> ChatStop {
    match stop {
        Stop::End => ChatStop::End,
        Stop::StepLimit => ChatStop::StepLimit,
        Stop::Error => ChatStop::Error,
    }
}

/// Conversation `id` when it is the caller's (another's is not found, not forbidden: its
/// existence is nobody else's business).
async fn own_conversation(
    state: &AppState,
    caller: &Principal,
    id: &str,
) -> Result<Conversation, ApiError> {
    let missing = || {
        ApiError::NotFound(format!(
            "you have no conversation {id}: list yours with GET /api/v1/conversations?agent=NAME"
        ))
    };
    let id: ConversationId = id.parse().map_err(|_| missing())?;
    match state.store.conversations().find(&id).await? {
        Some(conversation) if conversation.principal == caller.id => Ok(conversation),
        _ => Err(missing()),
    }
}

/// The stored messages of a conversation, oldest first.
async fn history(state: &AppState, id: &ConversationId) -> Result<Vec<Message>, ApiError> {
    let bodies = state.store.conversations().messages(id).await?;
    Ok(bodies
        .iter()
        .filter_map(|body| match serde_json::from_str(body) {
            Ok(message) => Some(message),
            Err(e) => {
                tracing::warn!(conversation = %id, "a stored chat message cannot be read: {e}");
                None
            }
        })
        .collect())
}

async fn append(
    state: &AppState,
    id: &ConversationId,
    messages: &[Message],
) -> Result<(), ApiError> {
    if messages.is_empty() {
        return Ok(());
    }
    let bodies: Vec<String> = messages
        .iter()
        .filter_map(|m| serde_json::to_string(m).ok())
        .collect();
    state.store.conversations().append(id, &bodies).await?;
    Ok(())
}

/// `?agent=NAME` or `?server=NAME`.
#[derive(Debug, Deserialize)]
struct ConversationQuery {
    agent: Option<String>,
    server: Option<String>,
}

/// `GET /conversations?agent=NAME|server=NAME`: the caller's, most recent first.
async fn list_conversations(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Query(query): Query<ConversationQuery>,
) -> Result<Json<Vec<ConversationView>>, ApiError> {
    let (subject, agent, server) = match (query.agent, query.server) {
        (Some(name), None) => {
            let agent = chattable_agent(&state, &caller, &name).await?;
            (ConversationSubject::Agent(agent.id), Some(agent.name), None)
        }
        (None, Some(name)) => {
            let server = authorize(&state, &caller, &name, Permission::View).await?;
            (
                ConversationSubject::Server(server.id),
                None,
                Some(server.name),
            )
        }
        _ => {
            return Err(ApiError::BadRequest(
                "name either the agent (?agent=NAME) or the server (?server=NAME)".to_owned(),
            ));
        }
    };
    let list = state
        .store
        .conversations()
        .list(&caller.id, &subject)
        .await?;
    Ok(Json(
        list.into_iter()
            .map(|c| view(c, agent.as_ref(), server.as_ref()))
            .collect(),
    ))
}

/// `GET /conversations/{id}`: one of the caller's, with its messages.
async fn show_conversation(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<ConversationDetail>, ApiError> {
    let conversation = own_conversation(&state, &caller, &id).await?;
    let messages = history(&state, &conversation.id).await?;
    let (agent, server) = subject_names(&state, &conversation.subject).await?;
    Ok(Json(ConversationDetail {
        conversation: view(conversation, agent.as_ref(), server.as_ref()),
        messages: messages.into_iter().map(message_view).collect(),
    }))
}

/// The names of what a conversation is with (absent when it was removed since).
async fn subject_names(
    state: &AppState,
    subject: &ConversationSubject,
) -> Result<(Option<AgentName>, Option<ServerName>), ApiError> {
    Ok(match subject {
        ConversationSubject::Agent(id) => (state.store.agents().name_of(id).await?, None),
        ConversationSubject::Server(id) => {
            (None, state.store.servers().by_id(id).await?.map(|s| s.name))
        }
    })
}

fn view(
    conversation: Conversation,
    agent: Option<&AgentName>,
    server: Option<&ServerName>,
) -> ConversationView {
    ConversationView {
        id: conversation.id.to_string(),
        agent: agent.map(ToString::to_string),
        server: server.map(ToString::to_string),
        title: conversation.title,
        created_at: conversation.created_at,
        updated_at: conversation.updated_at,
    }
}

fn message_view(message: Message) -> ChatMessage {
    let role = serde_json::to_value(message.role)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    ChatMessage {
        role,
        text: message.text,
        tool_calls: message
            .tool_calls
            .into_iter()
            .map(|call| skyport_api::ChatToolCall {
                id: call.id,
                name: call.name,
                arguments: call.arguments,
            })
            .collect(),
        tool_call_id: message.tool_call_id,
        is_error: message.is_error,
    }
}
