//! The UI's forms: a server's variables and secrets, its grants and policy rules, and API keys.
//!
//! Each form is a plain HTML form posted to a `/ui/…` path. Its handler turns the fields into
//! the REST API's JSON body and calls the API in-process as the session (`forward::call`), so
//! the API's handler checks the role (editor for variables, admin for access), validates,
//! records the control-plane audit event and makes the change, exactly as for the CLI. A
//! success redirects back to the tab with a fixed notice (post/redirect/get); a refusal renders
//! the tab again with the API's message beside the form that caused it. CSRF protection is the
//! UI's own (`SameSite=Strict` session cookie, `Origin` checked on every POST).
//!
//! A secret's value goes to the API and never comes back: the listing masks it, and a form
//! that failed is shown again without the value typed into it.

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use http::{Method, StatusCode};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};
use skyport_api::{AccessView, EnvVarView, KeyCreated, KeyView, PolicyView};

use super::UiState;
use super::forward::{Refusal, call, segment};
use super::layout::{self, Section};
use super::pages::{self, Tab};
use super::session::Session;

/// Which form a message belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FormId {
    EnvSet,
    EnvUnset,
    Grant,
    Revoke,
    PolicyAdd,
    PolicyRemove,
    KeyCreate,
    KeyRevoke,
}

/// What went well, said after a redirect: a fixed set, so the query string cannot make the
/// page say anything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    EnvSet,
    EnvSetRedeploying,
    EnvUnset,
    Granted,
    Revoked,
    PolicyAdded,
    PolicyRemoved,
    KeyRevoked,
}

const NOTICES: [(Notice, &str, &str); 8] = [
    (
        Notice::EnvSet,
        "env-set",
        "Saved. It takes effect on the next deployment (tick “Redeploy now” to build one at once).",
    ),
    (
        Notice::EnvSetRedeploying,
        "env-set-redeploy",
        "Saved. A new deployment with it is building (see the Deployments tab).",
    ),
    (
        Notice::EnvUnset,
        "env-unset",
        "Removed. It takes effect on the next deployment.",
    ),
    (Notice::Granted, "granted", "Role granted."),
    (Notice::Revoked, "revoked", "Grant removed."),
    (Notice::PolicyAdded, "policy-added", "Rule added."),
    (Notice::PolicyRemoved, "policy-removed", "Rule removed."),
    (Notice::KeyRevoked, "key-revoked", "Key revoked."),
];

impl Notice {
    /// The notice a `done` query parameter names.
    pub(crate) fn parse(code: &str) -> Option<Notice> {
        NOTICES
            .iter()
            .find(|(_, c, _)| *c == code)
            .map(|(n, _, _)| *n)
    }

    fn code(self) -> &'static str {
        NOTICES
            .iter()
            .find(|(n, _, _)| *n == self)
            .map_or("", |(_, c, _)| *c)
    }

    fn text(self) -> &'static str {
        NOTICES
            .iter()
            .find(|(n, _, _)| *n == self)
            .map_or("", |(_, _, t)| *t)
    }
}

/// What the last form did: a notice after a success, or the API's refusal of one form.
#[derive(Clone, Debug, Default)]
pub(crate) struct Feedback {
    pub(crate) notice: Option<Notice>,
    pub(crate) refused: Option<(FormId, Refusal)>,
}

impl Feedback {
    /// The API's (or the form's own) refusal of `form`.
    pub(crate) fn refused(form: FormId, refusal: Refusal) -> Feedback {
        Feedback {
            notice: None,
            refused: Some((form, refusal)),
        }
    }

    /// The status a page showing this feedback answers with.
    pub(crate) fn status(&self) -> StatusCode {
        self.refused
            .as_ref()
            .map_or(StatusCode::OK, |(_, r)| r.status)
    }

    /// The notice, as a polite status line.
    pub(crate) fn notice(&self) -> Markup {
        html! {
            @if let Some(notice) = self.notice {
                p.notice role="status" { (notice.text()) }
            }
        }
    }

    /// The refusal of `form`, if it was that form's.
    fn error(&self, form: FormId) -> Markup {
        html! {
            @if let Some((id, refusal)) = &self.refused && *id == form {
                p.error role="alert" { (refusal.message) }
            }
        }
    }
}

/// `POST /ui/servers/{name}/env`: sets one variable or secret.
#[derive(Deserialize)]
pub(crate) struct EnvSetForm {
    name: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    scope: String,
    secret: Option<String>,
    redeploy: Option<String>,
}

pub(crate) async fn env_set(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Form(form): Form<EnvSetForm>,
) -> Response {
    let redeploy = form.redeploy.is_some();
    let body = json!({
        "scope": scope_or_production(&form.scope),
        "vars": [{ "name": form.name.trim(), "value": form.value, "secret": form.secret.is_some() }],
        "redeploy": redeploy,
    });
    let path = format!("/servers/{}/env", segment(&name));
    let answer = call(&state, &session, Method::PUT, &path, &body).await;
    let done = if redeploy {
        Notice::EnvSetRedeploying
    } else {
        Notice::EnvSet
    };
    back_to_tab(state, session, name, Tab::Env, FormId::EnvSet, answer, done).await
}

/// `POST /ui/servers/{name}/env/unset`: removes one variable from one scope.
#[derive(Deserialize)]
pub(crate) struct EnvUnsetForm {
    name: String,
    #[serde(default)]
    scope: String,
}

pub(crate) async fn env_unset(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Form(form): Form<EnvUnsetForm>,
) -> Response {
    let path = format!(
        "/servers/{}/env/{}?scope={}",
        segment(&name),
        segment(form.name.trim()),
        segment(scope_or_production(&form.scope))
    );
    let answer = call(&state, &session, Method::DELETE, &path, &Value::Null).await;
    back_to_tab(
        state,
        session,
        name,
        Tab::Env,
        FormId::EnvUnset,
        answer,
        Notice::EnvUnset,
    )
    .await
}

/// `POST /ui/servers/{name}/access/grant`: grants a role to a principal or group.
#[derive(Deserialize)]
pub(crate) struct GrantForm {
    who: String,
    role: String,
}

pub(crate) async fn grant(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Form(form): Form<GrantForm>,
) -> Response {
    let path = format!("/servers/{}/access/grants", segment(&name));
    let body = json!({ "who": form.who.trim(), "role": form.role });
    let answer = call(&state, &session, Method::POST, &path, &body).await;
    back_to_tab(
        state,
        session,
        name,
        Tab::Access,
        FormId::Grant,
        answer,
        Notice::Granted,
    )
    .await
}

/// `POST /ui/servers/{name}/access/revoke`: removes a grant.
#[derive(Deserialize)]
pub(crate) struct RevokeForm {
    who: String,
}

pub(crate) async fn revoke(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Response {
    let path = format!(
        "/servers/{}/access/grants/{}",
        segment(&name),
        segment(form.who.trim())
    );
    let answer = call(&state, &session, Method::DELETE, &path, &Value::Null).await;
    back_to_tab(
        state,
        session,
        name,
        Tab::Access,
        FormId::Revoke,
        answer,
        Notice::Revoked,
    )
    .await
}

/// `POST /ui/servers/{name}/policies`: adds a rule.
#[derive(Deserialize)]
pub(crate) struct PolicyForm {
    effect: String,
    selector: String,
    capability: String,
}

pub(crate) async fn policy_add(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Form(form): Form<PolicyForm>,
) -> Response {
    let path = format!("/servers/{}/policies", segment(&name));
    let body =
        json!({ "effect": form.effect, "selector": form.selector, "capability": form.capability });
    let answer = call(&state, &session, Method::POST, &path, &body).await;
    back_to_tab(
        state,
        session,
        name,
        Tab::Access,
        FormId::PolicyAdd,
        answer,
        Notice::PolicyAdded,
    )
    .await
}

/// `POST /ui/servers/{name}/policies/remove`: removes a rule.
#[derive(Deserialize)]
pub(crate) struct PolicyRemoveForm {
    id: String,
}

pub(crate) async fn policy_remove(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    Form(form): Form<PolicyRemoveForm>,
) -> Response {
    let path = format!(
        "/servers/{}/policies/{}",
        segment(&name),
        segment(form.id.trim())
    );
    let answer = call(&state, &session, Method::DELETE, &path, &Value::Null).await;
    let done = Notice::PolicyRemoved;
    back_to_tab(
        state,
        session,
        name,
        Tab::Access,
        FormId::PolicyRemove,
        answer,
        done,
    )
    .await
}

/// After a form on a server's tab: back to the tab with a notice, or the tab again with the
/// refusal beside the form.
async fn back_to_tab(
    state: UiState,
    session: Session,
    name: String,
    tab: Tab,
    form: FormId,
    answer: Result<Value, Refusal>,
    done: Notice,
) -> Response {
    match answer {
        Ok(_) => {
            let suffix = if tab == Tab::Env { "env" } else { "access" };
            Redirect::to(&format!(
                "/ui/servers/{}/{suffix}?done={}",
                segment(&name),
                done.code()
            ))
            .into_response()
        }
        Err(refusal) => {
            let feedback = Feedback::refused(form, refusal);
            pages::server_tab(&state, &session, &name, tab, &feedback).await
        }
    }
}

fn scope_or_production(scope: &str) -> &str {
    match scope.trim() {
        "" => "production",
        scope => scope,
    }
}

/// `POST /ui/settings/keys`: creates a key and shows its secret, this once.
#[derive(Deserialize)]
pub(crate) struct KeyForm {
    #[serde(default)]
    name: String,
    /// Seconds; empty for a key that does not expire.
    #[serde(default)]
    expires_in: String,
}

pub(crate) async fn key_create(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Form(form): Form<KeyForm>,
) -> Response {
    let created = match form.body() {
        Ok(body) => call(&state, &session, Method::POST, "/keys", &body)
            .await
            .and_then(|answer| {
                serde_json::from_value::<KeyCreated>(answer).map_err(|e| {
                    tracing::error!("the UI could not read a created key: {e}");
                    Refusal {
                        status: StatusCode::INTERNAL_SERVER_ERROR,
                        message: "the key was created but its answer could not be read; revoke it and try again"
                            .to_owned(),
                    }
                })
            }),
        Err(refusal) => Err(refusal),
    };
    match created {
        Ok(created) => settings(&state, &session, Some(&created), &Feedback::default()).await,
        Err(refusal) => {
            let feedback = Feedback::refused(FormId::KeyCreate, refusal);
            settings(&state, &session, None, &feedback).await
        }
    }
}

impl KeyForm {
    /// The API body. An expiry that is not a number of seconds is refused: left out, it
    /// would make a key that never expires.
    fn body(&self) -> Result<Value, Refusal> {
        let mut body = json!({});
        if !self.name.trim().is_empty() {
            body["name"] = json!(self.name.trim());
        }
        let expires_in = self.expires_in.trim();
        if !expires_in.is_empty() {
            let seconds = expires_in.parse::<u64>().map_err(|_| Refusal {
                status: StatusCode::BAD_REQUEST,
                message: format!(
                    "the expiry must be a number of seconds (choose one from the list), not '{expires_in}'"
                ),
            })?;
            body["expires_in"] = json!(seconds);
        }
        Ok(body)
    }
}

/// `POST /ui/settings/keys/revoke`.
#[derive(Deserialize)]
pub(crate) struct KeyRevokeForm {
    id: String,
}

pub(crate) async fn key_revoke(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Form(form): Form<KeyRevokeForm>,
) -> Response {
    let path = format!("/keys/{}", segment(form.id.trim()));
    match call(&state, &session, Method::DELETE, &path, &Value::Null).await {
        Ok(_) => Redirect::to(&format!("/ui/settings?done={}", Notice::KeyRevoked.code()))
            .into_response(),
        Err(refusal) => {
            let feedback = Feedback::refused(FormId::KeyRevoke, refusal);
            settings(&state, &session, None, &feedback).await
        }
    }
}

/// The settings page as the session sees it, with a key just created and the feedback.
pub(crate) async fn settings(
    state: &UiState,
    session: &Session,
    created: Option<&KeyCreated>,
    feedback: &Feedback,
) -> Response {
    let viewer = super::pages::viewer(session);
    let keys = match super::forward::get_json::<Vec<KeyView>>(state, session, "/keys").await {
        Ok(keys) => keys,
        Err(refusal) => return pages::refused(&viewer, refusal).await,
    };
    let status = if created.is_some() {
        StatusCode::CREATED
    } else {
        feedback.status()
    };
    let page = layout::page(
        "Settings",
        &viewer,
        Section::Settings,
        html! {
            h1 { "Settings" }
            (keys_section(&keys, created, feedback))
        },
    );
    (status, Html(page.into_string())).into_response()
}

/// API keys: the list with revoke buttons, the creation form, and a key just created.
pub(crate) fn keys_section(
    keys: &[KeyView],
    created: Option<&KeyCreated>,
    feedback: &Feedback,
) -> Markup {
    html! {
        h2 { "API keys" }
        (feedback.notice())
        @if let Some(created) = created {
            div.card.created #created-key role="status" {
                p { "Key " strong { (created.key.name) } " created. Copy its secret now: it is not shown again." }
                p { code #key-secret { (created.secret) } " " (pages::copy_button(&created.secret)) }
                p.muted { "Send it as " code { "Authorization: Bearer …" } " to " code { "/api/v1" } " or a server's MCP URL." }
            }
        }
        form.card #key-form method="post" action="/ui/settings/keys" {
            h3 { "Create a key" }
            (feedback.error(FormId::KeyCreate))
            label for="k-name" { "Name " small { "(optional; unique among live keys)" } }
            input #k-name name="name" maxlength="64" autocomplete="off" placeholder="ci-deploy";
            label for="k-expires" { "Expires" }
            select #k-expires name="expires_in" {
                option value="" { "Never" }
                option value="86400" { "In a day" }
                option value="2592000" { "In 30 days" }
                option value="7776000" { "In 90 days" }
                option value="31536000" { "In a year" }
            }
            button type="submit" { "Create key" }
        }
        (feedback.error(FormId::KeyRevoke))
        @if keys.is_empty() {
            p.muted { "No keys." }
        } @else {
            div.scroll { table #keys {
                thead { tr { th { "Name" } th { "Id" } th { "Acts as" } th { "State" } th { "Created" } th { "Expires" } th { "Last used" } th { span.sr { "Actions" } } } }
                tbody {
                    @for k in keys {
                        tr {
                            td { (k.name) }
                            td { code { (k.id) } }
                            td { (k.principal) }
                            td { (k.state) }
                            td { (day(&k.created_at)) }
                            td { (k.expires_at.as_ref().map_or_else(|| "never".to_owned(), day)) }
                            td { (k.last_used_at.as_ref().map_or_else(|| "–".to_owned(), day)) }
                            td {
                                @if k.state == "active" {
                                    form.inline method="post" action="/ui/settings/keys/revoke" {
                                        input type="hidden" name="id" value=(k.id);
                                        button.small type="submit" aria-label={ "Revoke " (k.name) } { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            } }
        }
    }
}

/// The environment tab: variables per scope (secrets masked), and the forms when `may_edit`.
pub(crate) fn env_section(
    server: &str,
    vars: &[EnvVarView],
    may_edit: bool,
    feedback: &Feedback,
) -> Markup {
    let base = format!("/ui/servers/{}/env", segment(server));
    html! {
        h2 { "Environment" }
        (feedback.notice())
        p.muted { "Variables are fixed in a deployment when it is built: a change takes effect on the next one. Secret values are stored sealed and never shown again." }
        (feedback.error(FormId::EnvUnset))
        @if vars.is_empty() {
            p.muted { "No variables." }
        } @else {
            div.scroll { table #env-vars {
                thead { tr { th { "Name" } th { "Scope" } th { "Value" } th { "Updated" } th { span.sr { "Actions" } } } }
                tbody {
                    @for v in vars {
                        tr {
                            td { code { (v.name) } }
                            td { (v.scope) }
                            td {
                                @if v.secret {
                                    span.masked aria-label="secret, hidden" { "••••••" } " " span.badge { "secret" }
                                } @else {
                                    code { (v.value.as_deref().unwrap_or("")) }
                                }
                            }
                            td { (day(&v.updated_at)) }
                            td {
                                @if may_edit {
                                    form.inline method="post" action={ (base) "/unset" } {
                                        input type="hidden" name="name" value=(v.name);
                                        input type="hidden" name="scope" value=(v.scope);
                                        button.small type="submit" aria-label={ "Unset " (v.name) " in " (v.scope) } { "Unset" }
                                    }
                                }
                            }
                        }
                    }
                }
            } }
        }
        @if may_edit {
            form.card #env-form method="post" action=(base) {
                h3 { "Set a variable" }
                (feedback.error(FormId::EnvSet))
                label for="e-name" { "Name" }
                input #e-name name="name" required pattern="[A-Za-z_][A-Za-z0-9_]*" autocomplete="off" placeholder="API_URL";
                label for="e-value" { "Value" }
                input #e-value name="value" autocomplete="off" spellcheck="false";
                label for="e-scope" { "Scope " small { "(production, preview, or branch:NAME)" } }
                input #e-scope name="scope" value="production" list="e-scopes";
                datalist #e-scopes { option value="production" {} option value="preview" {} }
                div.field.check { input #e-secret name="secret" type="checkbox"; label for="e-secret" { "Secret (stored sealed, never shown again)" } }
                div.field.check { input #e-redeploy name="redeploy" type="checkbox"; label for="e-redeploy" { "Redeploy now (production only)" } }
                button type="submit" { "Save" }
            }
        }
    }
}

/// The access tab: default role, grants and policy rules, with the forms when `may_change`.
/// `policies` is `None` when the viewer may not read them (they need admin).
pub(crate) fn access_section(
    server: &str,
    access: &AccessView,
    policies: Option<&[PolicyView]>,
    may_change: bool,
    feedback: &Feedback,
) -> Markup {
    let base = format!("/ui/servers/{}", segment(server));
    html! {
        h2 { "Access" }
        (feedback.notice())
        p { "Default role of organisation members without a grant: " strong { (access.default_role) } }
        h3 { "Grants" }
        (feedback.error(FormId::Revoke))
        @if access.grants.is_empty() {
            p.muted { "No grants." }
        } @else {
            div.scroll { table #grants {
                thead { tr { th { "Who" } th { "Role" } th { span.sr { "Actions" } } } }
                tbody {
                    @for g in &access.grants {
                        tr {
                            td { (g.who) }
                            td { (g.role) }
                            td {
                                @if may_change {
                                    form.inline method="post" action={ (base) "/access/revoke" } {
                                        input type="hidden" name="who" value=(g.who);
                                        button.small type="submit" aria-label={ "Revoke the grant of " (g.who) } { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            } }
        }
        @if may_change {
            form.card #grant-form method="post" action={ (base) "/access/grant" } {
                h3 { "Grant a role" }
                (feedback.error(FormId::Grant))
                label for="g-who" { "User, service account, or " code { "group:NAME" } }
                input #g-who name="who" required autocomplete="off";
                label for="g-role" { "Role" }
                select #g-role name="role" {
                    option value="viewer" { "viewer: connect and call tools" }
                    option value="editor" { "editor: also deploy, roll back, variables, logs" }
                    option value="admin" { "admin: also settings, access, audit, removal" }
                }
                button type="submit" { "Grant" }
            }
        }
        h3 { "Policy rules" }
        @match policies {
            None => p.muted { "Only admins of the server see its policy rules." },
            Some(rules) => {
                (feedback.error(FormId::PolicyRemove))
                @if rules.is_empty() {
                    p.muted { "No rules: every tool, prompt and resource is open to whoever has a role." }
                } @else {
                    div.scroll { table #policies {
                        thead { tr { th { "Effect" } th { "Who" } th { "What" } th { "Added by" } th { span.sr { "Actions" } } } }
                        tbody {
                            @for r in rules {
                                tr {
                                    td { (effect(r)) }
                                    td { code { (r.selector) } }
                                    td { code { (r.capability) } }
                                    td { (r.created_by.as_deref().unwrap_or("–")) }
                                    td {
                                        @if may_change {
                                            form.inline method="post" action={ (base) "/policies/remove" } {
                                                input type="hidden" name="id" value=(r.id);
                                                button.small type="submit" aria-label={ "Remove rule " (r.id) } { "Remove" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    } }
                }
                @if may_change {
                    form.card #policy-form method="post" action={ (base) "/policies" } {
                        h4 { "Add a rule" }
                        (feedback.error(FormId::PolicyAdd))
                        label for="p-effect" { "Effect" }
                        select #p-effect name="effect" {
                            option value="deny" { "deny" }
                            option value="allow" { "allow (makes an allow-list)" }
                        }
                        label for="p-selector" { "Who " small { "(*, role:viewer, principal:NAME, group:NAME)" } }
                        input #p-selector name="selector" required value="*" autocomplete="off";
                        label for="p-capability" { "What " small { "(tool:GLOB, prompt:GLOB, resource:GLOB, template:GLOB)" } }
                        input #p-capability name="capability" required placeholder="tool:delete_*" autocomplete="off";
                        button type="submit" { "Add rule" }
                    }
                }
            }
        }
    }
}

fn effect(rule: &PolicyView) -> String {
    serde_json::to_value(rule.effect)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn day(at: &skyport_store::Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M").to_string()
}
