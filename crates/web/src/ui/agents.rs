//! The agents pages: the agents the viewer may chat with, the form that creates or edits one
//! (organisation admins), removal, and each agent's chat page. The chat view itself
//! (`chat_view`, also a server's Chat tab) is markup for `chat.js`, which talks to the chat
//! endpoints through `/ui/api/*` as the session.
//!
//! Like every form of the UI, the agent form's handler turns the fields into the API's JSON
//! and calls the API in-process as the session; the API decides and audits. A refusal shows
//! the page again with the API's message beside the form, and nothing of the request is
//! echoed but the fields the form itself shows.

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use http::{Method, StatusCode};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};
use skyport_api::{AgentView, ProviderView};
use skyport_store::{DEFAULT_STEP_LIMIT, MAX_STEP_LIMIT};

use super::forward::{Refusal, call, get_json, segment};
use super::layout::{self, Section, Viewer};
use super::pages;
use super::session::Session;
use super::{UiState, assets};
use crate::access::require_org_admin;

/// What a redirect back to the agents page says: a fixed set.
const NOTICES: [(&str, &str); 3] = [
    ("created", "Agent created."),
    ("changed", "Agent changed."),
    ("removed", "Agent removed, with its conversations."),
];

/// Query of the agents page.
#[derive(Debug, Deserialize)]
pub(crate) struct AgentsParams {
    done: Option<String>,
}

/// The agent form's fields (lists as text: servers and principals separated by commas or
/// spaces).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AgentForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    instructions: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    servers: String,
    #[serde(default)]
    step_limit: String,
    #[serde(default)]
    allowed: String,
}

impl AgentForm {
    fn from_view(agent: &AgentView) -> AgentForm {
        AgentForm {
            name: agent.name.to_string(),
            description: agent.description.clone(),
            instructions: agent.instructions.clone(),
            provider: agent.provider.to_string(),
            model: agent.model.clone().unwrap_or_default(),
            servers: agent
                .servers
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            step_limit: agent.step_limit.to_string(),
            allowed: agent.allowed.join(", "),
        }
    }

    /// The API body: every field, so that an edit replaces what the form shows. A step limit
    /// that is not a number is refused here, where the API would never see it.
    fn body(&self, creating: bool) -> Result<Value, Refusal> {
        let list = |text: &str| -> Vec<String> {
            text.split([',', ' ', '\n'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let model = self.model.trim();
        let mut body = json!({
            "description": self.description.trim(),
            "instructions": self.instructions.trim(),
            "provider": self.provider.trim(),
            "model": if model.is_empty() { Value::Null } else { json!(model) },
            "servers": list(&self.servers),
            "allowed": list(&self.allowed),
        });
        let step_limit = self.step_limit.trim();
        if !step_limit.is_empty() {
            let limit = step_limit.parse::<u32>().map_err(|_| Refusal {
                status: StatusCode::BAD_REQUEST,
                message: format!(
                    "the step limit must be a whole number from 1 to {MAX_STEP_LIMIT}, not '{step_limit}'"
                ),
            })?;
            body["step_limit"] = json!(limit);
        }
        if creating {
            body["name"] = json!(self.name.trim());
        }
        Ok(body)
    }
}

/// `GET /ui/agents[?done=…]`.
pub(crate) async fn agents(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Query(params): Query<AgentsParams>,
) -> Response {
    let notice = params
        .done
        .as_deref()
        .and_then(|code| NOTICES.iter().find(|(c, _)| *c == code))
        .map(|(_, text)| *text);
    list(&state, &session, notice, None, &AgentForm::default()).await
}

/// `POST /ui/agents`: creates an agent.
pub(crate) async fn create(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Form(form): Form<AgentForm>,
) -> Response {
    let answer = match form.body(true) {
        Ok(body) => call(&state, &session, Method::POST, "/agents", &body).await,
        Err(refusal) => Err(refusal),
    };
    match answer {
        Ok(_) => Redirect::to("/ui/agents?done=created").into_response(),
        Err(refusal) => list(&state, &session, None, Some(&refusal), &form).await,
    }
}

/// `GET /ui/agents/{name}/edit`.
pub(crate) async fn edit_page(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    let viewer = pages::viewer(&session);
    match get_json::<AgentView>(&state, &session, &format!("/agents/{}", segment(&name))).await {
        Ok(agent) => edit(&state, &session, &name, &AgentForm::from_view(&agent), None).await,
        Err(refusal) => pages::refused(&viewer, refusal).await,
    }
}

/// `POST /ui/agents/{name}/edit`: changes an agent.
pub(crate) async fn update(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Form(form): Form<AgentForm>,
) -> Response {
    let path = format!("/agents/{}", segment(&name));
    let answer = match form.body(false) {
        Ok(body) => call(&state, &session, Method::PATCH, &path, &body).await,
        Err(refusal) => Err(refusal),
    };
    match answer {
        Ok(_) => Redirect::to("/ui/agents?done=changed").into_response(),
        Err(refusal) => edit(&state, &session, &name, &form, Some(&refusal)).await,
    }
}

/// `POST /ui/agents/{name}/remove`.
pub(crate) async fn remove(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    let path = format!("/agents/{}", segment(&name));
    match call(&state, &session, Method::DELETE, &path, &Value::Null).await {
        Ok(_) => Redirect::to("/ui/agents?done=removed").into_response(),
        Err(refusal) => {
            list(
                &state,
                &session,
                None,
                Some(&refusal),
                &AgentForm::default(),
            )
            .await
        }
    }
}

/// `GET /ui/agents/{name}`: the chat page of an agent the viewer may chat with.
pub(crate) async fn chat(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
) -> Response {
    let viewer = pages::viewer(&session);
    match get_json::<AgentView>(&state, &session, &format!("/agents/{}", segment(&name))).await {
        Ok(agent) => Html(chat_page(&viewer, &agent).into_string()).into_response(),
        Err(refusal) => pages::refused(&viewer, refusal).await,
    }
}

async fn list(
    state: &UiState,
    session: &Session,
    notice: Option<&str>,
    refusal: Option<&Refusal>,
    form: &AgentForm,
) -> Response {
    let viewer = pages::viewer(session);
    let agents = match get_json::<Vec<AgentView>>(state, session, "/agents").await {
        Ok(agents) => agents,
        Err(refusal) => return pages::refused(&viewer, refusal).await,
    };
    let providers = providers(state, session).await;
    let page = agents_page(
        &viewer,
        &agents,
        providers.as_deref(),
        notice,
        refusal,
        form,
    );
    let status = refusal.map_or(StatusCode::OK, |r| r.status);
    (status, Html(page.into_string())).into_response()
}

async fn edit(
    state: &UiState,
    session: &Session,
    name: &str,
    form: &AgentForm,
    refusal: Option<&Refusal>,
) -> Response {
    let viewer = pages::viewer(session);
    let providers = providers(state, session).await.unwrap_or_default();
    let page = edit_agent_page(&viewer, name, &providers, form, refusal);
    let status = refusal.map_or(StatusCode::OK, |r| r.status);
    (status, Html(page.into_string())).into_response()
}

/// The providers, for those who manage agents (`None` for the others: no form).
async fn providers(state: &UiState, session: &Session) -> Option<Vec<ProviderView>> {
    if require_org_admin(&session.principal, "manage agents").is_err() {
        return None;
    }
    get_json::<Vec<ProviderView>>(state, session, "/providers")
        .await
        .ok()
}

/// The agents page: the list, and for admins (`providers` given) the form and remove buttons.
pub(crate) fn agents_page(
    viewer: &Viewer<'_>,
    agents: &[AgentView],
    providers: Option<&[ProviderView]>,
    notice: Option<&str>,
    refusal: Option<&Refusal>,
    form: &AgentForm,
) -> Markup {
    let manage = providers.is_some();
    layout::page(
        "Agents",
        viewer,
        Section::Agents,
        html! {
            h1 { "Agents" }
            @if let Some(notice) = notice { p.notice role="status" { (notice) } }
            @if agents.is_empty() {
                p.muted { "No agents you may chat with yet." }
            } @else {
                div.scroll { table.agents {
                    thead { tr { th { "Name" } th { "Model" } th { "Servers" } th { "Who may chat" } @if manage { th { span.sr { "Actions" } } } } }
                    tbody {
                        @for a in agents {
                            tr {
                                td { a href={ "/ui/agents/" (segment(a.name.as_str())) } { strong { (a.name) } } @if !a.description.is_empty() { br; span.muted { (a.description) } } }
                                td { (a.provider) " · " (a.effective_model.as_deref().unwrap_or("no model")) }
                                td { @for (i, s) in a.servers.iter().enumerate() { @if i > 0 { ", " } a href={ "/ui/servers/" (s) } { (s) } } }
                                td { @if a.allowed.is_empty() { "everyone signed in" } @else { (a.allowed.join(", ")) } }
                                @if manage {
                                    td {
                                        a.button href={ "/ui/agents/" (segment(a.name.as_str())) "/edit" } { "Edit" }
                                        " "
                                        form.inline method="post" action={ "/ui/agents/" (segment(a.name.as_str())) "/remove" } {
                                            button.small type="submit" { "Remove" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
            @if let Some(providers) = providers {
                h2 { "Create an agent" }
                (agent_form("/ui/agents", true, providers, form, refusal))
            } @else if let Some(refusal) = refusal {
                p.error role="alert" { (refusal.message) }
            }
        },
    )
}

/// The page that edits agent `name`.
pub(crate) fn edit_agent_page(
    viewer: &Viewer<'_>,
    name: &str,
    providers: &[ProviderView],
    form: &AgentForm,
    refusal: Option<&Refusal>,
) -> Markup {
    let action = format!("/ui/agents/{}/edit", segment(name));
    layout::page(
        "Edit agent",
        viewer,
        Section::Agents,
        html! {
            h1 { "Edit agent " (name) }
            (agent_form(&action, false, providers, form, refusal))
            p { a href="/ui/agents" { "Back to the agents" } }
        },
    )
}

fn agent_form(
    action: &str,
    creating: bool,
    providers: &[ProviderView],
    form: &AgentForm,
    refusal: Option<&Refusal>,
) -> Markup {
    html! {
        form.card.agent-form method="post" action=(action) {
            @if let Some(refusal) = refusal { p.error role="alert" { (refusal.message) } }
            @if creating {
                label for="a-name" { "Name " small { "lowercase letters, digits and dashes" } }
                input #a-name name="name" value=(form.name) required pattern="[a-z0-9]([a-z0-9\\-]*[a-z0-9])?";
            }
            label for="a-description" { "Description" }
            input #a-description name="description" value=(form.description);
            label for="a-provider" { "Provider" }
            @if providers.is_empty() {
                p.muted { "No providers yet: add one with " code { "skyport providers add" } "." }
            }
            select #a-provider name="provider" required {
                @for p in providers {
                    option value=(p.name) selected[p.name.as_str() == form.provider || (form.provider.is_empty() && p.default)] {
                        (p.name) " (" (p.kind.as_str()) @if let Some(m) = &p.default_model { ", " (m) } ")"
                    }
                }
            }
            label for="a-model" { "Model " small { "empty: the provider's default model" } }
            input #a-model name="model" value=(form.model);
            label for="a-servers" { "Servers " small { "names, separated by commas; their tools, in this order" } }
            input #a-servers name="servers" value=(form.servers) required;
            label for="a-step-limit" { "Step limit " small { "model turns per message, 1 to " (MAX_STEP_LIMIT) } }
            input #a-step-limit name="step_limit" type="number" min="1" max=(MAX_STEP_LIMIT) value=(if form.step_limit.is_empty() { DEFAULT_STEP_LIMIT.to_string() } else { form.step_limit.clone() });
            label for="a-allowed" { "Who may chat " small { "users and group:NAME, separated by commas; empty: everyone signed in" } }
            input #a-allowed name="allowed" value=(form.allowed);
            label for="a-instructions" { "Instructions" }
            textarea #a-instructions name="instructions" { (form.instructions) }
            button type="submit" { @if creating { "Create agent" } @else { "Save" } }
        }
    }
}

/// The chat page of `agent`.
pub(crate) fn chat_page(viewer: &Viewer<'_>, agent: &AgentView) -> Markup {
    let name = segment(agent.name.as_str());
    layout::page(
        &format!("Chat with {}", agent.name),
        viewer,
        Section::Agents,
        html! {
            div.heading {
                h1 { (agent.name) }
                @if !agent.description.is_empty() { p.muted { (agent.description) } }
            }
            p.muted {
                (agent.provider) " · " (agent.effective_model.as_deref().unwrap_or("no model")) " · tools of "
                @for (i, s) in agent.servers.iter().enumerate() { @if i > 0 { ", " } a href={ "/ui/servers/" (s) } { (s) } }
            }
            (chat_view(&format!("/ui/api/agents/{name}/chat"), &format!("/ui/api/conversations?agent={name}")))
        },
    )
}

/// The chat view over `endpoint` (the chat URL under `/ui/api/`), with the viewer's
/// conversations read from `conversations`.
pub(crate) fn chat_view(endpoint: &str, conversations: &str) -> Markup {
    html! {
        div.chat #chat data-endpoint=(endpoint) data-conversations=(conversations) {
            aside {
                h2 { "Conversations" }
                button.small #chat-new type="button" { "New conversation" }
                ul #chat-conversations {}
            }
            section aria-label="Conversation" {
                div.chat-log #chat-log aria-live="polite" {}
                p.muted #chat-status role="status" {}
                form #chat-form {
                    label for="chat-message" { "Message" }
                    textarea #chat-message name="message" required placeholder="Ask something; Enter sends, Shift+Enter starts a new line" {}
                    button type="submit" { "Send" }
                }
            }
        }
        script type="module" src=(assets::url("chat.js")) {}
    }
}
