//! Providers and agents: `GET/POST /api/v1/providers`, `PATCH/DELETE
//! /api/v1/providers/{name}`, `GET/POST /api/v1/agents`, `GET/PATCH/DELETE
//! /api/v1/agents/{name}`.
//!
//! Organisation admins manage both. An agent's servers must exist and be visible to whoever
//! defines it: an agent shows its servers' tools to whoever may chat with it, so only someone
//! who sees them may publish them (the remix rule). Listing and reading agents shows only
//! those the caller may chat with. A provider's API key goes into the store sealed and never
//! comes back: not in a view, an error or the control audit log.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{Value, json};
use skyport_api::{
    AgentView, CreateAgent, CreateProvider, ProviderView, UpdateAgent, UpdateProvider,
};
use skyport_store::{
    Agent, AgentError, AgentName, AgentPatch, ChatPrincipal, ControlAction, DEFAULT_STEP_LIMIT,
    NewAgent, NewControlEvent, NewProvider, Principal, Provider, ProviderError, ProviderName,
    ProviderPatch, ServerName,
};

use crate::access::{Permission, authorize, chattable, require_chat, require_org_admin};
use crate::{ApiError, AppState, control};

/// A provider's timeout when none is given.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A provider's retries when none are given.
const DEFAULT_RETRIES: u32 = 2;

/// The provider and agent routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/providers", get(list_providers).post(create_provider))
        .route(
            "/providers/{name}",
            get(show_provider)
                .patch(update_provider)
                .delete(remove_provider),
        )
        .route("/agents", get(list_agents).post(create_agent))
        .route(
            "/agents/{name}",
            get(show_agent).patch(update_agent).delete(remove_agent),
        )
}

/// Every provider (org admins only: base URLs can be internal addresses).
async fn list_providers(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<Vec<ProviderView>>, ApiError> {
    require_org_admin(&caller, "list language-model providers")?;
    let providers = state.store.providers().list().await?;
    Ok(Json(providers.into_iter().map(provider_view).collect()))
}

/// One provider.
async fn show_provider(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<ProviderView>, ApiError> {
    require_org_admin(&caller, "see language-model providers")?;
    let provider = existing_provider(&state, &name.parse()?).await?;
    Ok(Json(provider_view(provider)))
}

/// Adds a provider; answers it.
async fn create_provider(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Json(body): Json<CreateProvider>,
) -> Result<(StatusCode, Json<ProviderView>), ApiError> {
    require_org_admin(&caller, "add language-model providers")?;
    let new = NewProvider {
        name: body.name,
        kind: body.kind,
        base_url: base_url(&body.base_url)?,
        api_key: body.api_key.map(non_empty_key).transpose()?,
        default_model: body.default_model.filter(|m| !m.trim().is_empty()),
        timeout: body
            .timeout_seconds
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs),
        retries: body.retries.unwrap_or(DEFAULT_RETRIES),
        is_default: body.default,
    };
    let provider = state.store.providers().create(&new).await?;
    let event = NewControlEvent::new(&caller, ControlAction::ProviderCreate, None)
        .subject(provider.name.as_str())
        .after(provider_described(&provider));
    control::record(&state, event).await;
    Ok((StatusCode::CREATED, Json(provider_view(provider))))
}

/// Changes a provider's URL, key, default model, timeout, retries or default flag.
async fn update_provider(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<UpdateProvider>,
) -> Result<Json<ProviderView>, ApiError> {
    require_org_admin(&caller, "change language-model providers")?;
    let name: ProviderName = name.parse()?;
    let before = existing_provider(&state, &name).await?;
    let patch = ProviderPatch {
        base_url: body.base_url.as_deref().map(base_url).transpose()?,
        api_key: body
            .api_key
            .map(|key| key.map(non_empty_key).transpose())
            .transpose()?,
        default_model: body
            .default_model
            .map(|m| m.filter(|m| !m.trim().is_empty())),
        timeout: body.timeout_seconds.map(Duration::from_secs),
        retries: body.retries,
        is_default: body.default,
    };
    let after = state.store.providers().update(&name, &patch).await?;
    let mut described = provider_described(&after);
    // A replaced key leaves `has_api_key` as it was; the log says it changed (never to what).
    if let Some(key) = &patch.api_key {
        described["api_key"] = json!(if key.is_some() { "replaced" } else { "removed" });
    }
    let event = NewControlEvent::new(&caller, ControlAction::ProviderChange, None)
        .subject(name.as_str())
        .before(provider_described(&before))
        .after(described);
    control::record(&state, event).await;
    Ok(Json(provider_view(after)))
}

/// Removes a provider no agent uses (409 naming the agents otherwise).
async fn remove_provider(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_org_admin(&caller, "remove language-model providers")?;
    let name: ProviderName = name.parse()?;
    let before = existing_provider(&state, &name).await?;
    state.store.providers().remove(&name).await?;
    let event = NewControlEvent::new(&caller, ControlAction::ProviderRemove, None)
        .subject(name.as_str())
        .before(provider_described(&before));
    control::record(&state, event).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The agents the caller may chat with (org admins: every agent).
async fn list_agents(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<Vec<AgentView>>, ApiError> {
    let agents = chattable(&state, &caller, state.store.agents().list().await?).await?;
    let defaults = default_models(&state).await?;
    Ok(Json(
        agents
            .into_iter()
            .map(|agent| agent_view(agent, &defaults))
            .collect(),
    ))
}

/// One agent, when the caller may chat with it.
async fn show_agent(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    let agent = existing_agent(&state, &name.parse()?).await?;
    require_chat(&state, &caller, &agent).await?;
    let defaults = default_models(&state).await?;
    Ok(Json(agent_view(agent, &defaults)))
}

/// Creates an agent; answers it.
async fn create_agent(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Json(body): Json<CreateAgent>,
) -> Result<(StatusCode, Json<AgentView>), ApiError> {
    require_org_admin(&caller, "create agents")?;
    may_publish(&state, &caller, &body.servers).await?;
    let new = NewAgent {
        name: body.name,
        description: body.description,
        instructions: body.instructions,
        provider: body.provider,
        model: body.model.filter(|m| !m.trim().is_empty()),
        step_limit: body.step_limit.unwrap_or(DEFAULT_STEP_LIMIT),
        servers: body.servers,
        allowed: body
            .allowed
            .iter()
            .map(|a| ChatPrincipal::parse(a))
            .collect(),
        created_by: Some(caller.id.clone()),
    };
    let agent = state.store.agents().create(&new).await?;
    let event = NewControlEvent::new(&caller, ControlAction::AgentCreate, None)
        .subject(agent.name.as_str())
        .after(agent_described(&agent));
    control::record(&state, event).await;
    let defaults = default_models(&state).await?;
    Ok((StatusCode::CREATED, Json(agent_view(agent, &defaults))))
}

/// Changes an agent (patch: what is given replaces what it had); answers it.
async fn update_agent(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<UpdateAgent>,
) -> Result<Json<AgentView>, ApiError> {
    require_org_admin(&caller, "change agents")?;
    let name: AgentName = name.parse()?;
    let before = existing_agent(&state, &name).await?;
    if let Some(servers) = &body.servers {
        may_publish(&state, &caller, servers).await?;
    }
    let patch = AgentPatch {
        description: body.description,
        instructions: body.instructions,
        provider: body.provider,
        model: body.model.map(|m| m.filter(|m| !m.trim().is_empty())),
        step_limit: body.step_limit,
        servers: body.servers,
        allowed: body
            .allowed
            .map(|list| list.iter().map(|a| ChatPrincipal::parse(a)).collect()),
    };
    let after = state.store.agents().update(&name, &patch).await?;
    let event = NewControlEvent::new(&caller, ControlAction::AgentChange, None)
        .subject(name.as_str())
        .before(agent_described(&before))
        .after(agent_described(&after));
    control::record(&state, event).await;
    let defaults = default_models(&state).await?;
    Ok(Json(agent_view(after, &defaults)))
}

/// Removes an agent and every conversation with it.
async fn remove_agent(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_org_admin(&caller, "remove agents")?;
    let name: AgentName = name.parse()?;
    let before = existing_agent(&state, &name).await?;
    state.store.agents().remove(&name).await?;
    let event = NewControlEvent::new(&caller, ControlAction::AgentRemove, None)
        .subject(name.as_str())
        .before(agent_described(&before));
    control::record(&state, event).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Agent `name`, or 404 saying how to list them.
pub(crate) async fn existing_agent(state: &AppState, name: &AgentName) -> Result<Agent, ApiError> {
    state
        .store
        .agents()
        .find(name)
        .await?
        .ok_or_else(|| AgentError::NotFound(name.clone()).into())
}

async fn existing_provider(state: &AppState, name: &ProviderName) -> Result<Provider, ApiError> {
    state
        .store
        .providers()
        .find(name)
        .await?
        .ok_or_else(|| ProviderError::NotFound(name.clone()).into())
}

/// Refuses unless every server of `servers` exists and `caller` may see it.
async fn may_publish(
    state: &AppState,
    caller: &Principal,
    servers: &[ServerName],
) -> Result<(), ApiError> {
    for server in servers {
        authorize(state, caller, server.as_str(), Permission::View).await?;
    }
    Ok(())
}

/// Each provider's default model, to show the model an agent answers with.
async fn default_models(state: &AppState) -> Result<Vec<(ProviderName, Option<String>)>, ApiError> {
    let providers = state.store.providers().list().await?;
    Ok(providers
        .into_iter()
        .map(|p| (p.name, p.default_model))
        .collect())
}

/// `text` as a provider's base URL: absolute http(s), without a trailing slash.
fn base_url(text: &str) -> Result<String, ApiError> {
    let text = text.trim().trim_end_matches('/');
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty()
                && !rest.starts_with('/')
                && !text.contains(char::is_whitespace) =>
        {
            Ok(text.to_owned())
        }
        _ => Err(ApiError::BadRequest(format!(
            "'{}' is not a provider base URL: write an absolute http:// or https:// URL, e.g. https://api.openai.com/v1",
            text.chars().take(200).collect::<String>()
        ))),
    }
}

/// An API key as given, refused when blank (an empty key is a mistake, not "no key").
fn non_empty_key(key: String) -> Result<String, ApiError> {
    let key = key.trim().to_owned();
    if key.is_empty() {
        return Err(ApiError::BadRequest(
            "the API key is empty; give the key, or leave it out for endpoints that need none"
                .to_owned(),
        ));
    }
    Ok(key)
}

fn provider_view(provider: Provider) -> ProviderView {
    ProviderView {
        name: provider.name,
        kind: provider.kind,
        base_url: provider.base_url,
        has_api_key: provider.has_api_key,
        default_model: provider.default_model,
        timeout_seconds: provider.timeout.as_secs(),
        retries: provider.retries,
        default: provider.is_default,
        created_at: provider.created_at,
    }
}

fn agent_view(agent: Agent, defaults: &[(ProviderName, Option<String>)]) -> AgentView {
    let effective_model = agent.model.clone().or_else(|| {
        defaults
            .iter()
            .find(|(name, _)| *name == agent.provider)
            .and_then(|(_, model)| model.clone())
    });
    AgentView {
        name: agent.name,
        description: agent.description,
        instructions: agent.instructions,
        provider: agent.provider,
        model: agent.model,
        effective_model,
        servers: agent.servers,
        step_limit: agent.step_limit,
        allowed: agent.allowed.iter().map(ToString::to_string).collect(),
        created_by: agent.created_by,
        created_at: agent.created_at,
        updated_at: agent.updated_at,
    }
}

/// What the control audit log shows of a provider: never its key, only whether it has one.
fn provider_described(provider: &Provider) -> Value {
    json!({
        "kind": provider.kind,
        "base_url": provider.base_url,
        "has_api_key": provider.has_api_key,
        "default_model": provider.default_model,
        "timeout_seconds": provider.timeout.as_secs(),
        "retries": provider.retries,
        "default": provider.is_default,
    })
}

/// What the control audit log shows of an agent.
fn agent_described(agent: &Agent) -> Value {
    json!({
        "description": agent.description,
        "provider": agent.provider,
        "model": agent.model,
        "servers": agent.servers,
        "step_limit": agent.step_limit,
        "allowed": agent.allowed.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}
