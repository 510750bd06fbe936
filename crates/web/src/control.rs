//! Recording control-plane changes in the audit log: each handler that changes something
//! calls [`record`] after the change succeeded, with the authenticated [`Principal`] as actor.
//! Adding an action is one call: `control::record(&state, NewControlEvent::new(&caller,
//! ControlAction::AccessGrant, Some(&server)).subject(…).after(…)).await`.
//!
//! Events hold names and settings only (the store's constructors for variables take no
//! values). A failure to record is logged as an error but does not undo or fail the change,
//! which has already happened: answering an error would make the caller retry it.

use serde_json::{Value, json};
use skyport_api::DeploymentView;
use skyport_store::{ControlAction, NewControlEvent, Principal, Server};

use crate::{AppState, views};

/// Appends `event` to the control-plane audit log.
pub(crate) async fn record(state: &AppState, event: NewControlEvent) {
    let action = event.action;
    if let Err(e) = state.store.control_audit().record(event).await {
        tracing::error!(error = %e, %action, "cannot record a control-plane change in the audit log");
    }
}

/// A build of `deployment` was started by `caller` (a deploy or a redeploy).
pub(crate) async fn build_started(
    state: &AppState,
    caller: &Principal,
    action: ControlAction,
    server: &Server,
    deployment: &DeploymentView,
) {
    let event = NewControlEvent::new(caller, action, Some(&server.name))
        .subject(deployment.id.as_str())
        .after(json!({
            "deployment": deployment.id,
            "source": deployment.source,
            "git_ref": deployment.git_ref,
            "entrypoint": deployment.entrypoint,
        }));
    let event = match &server.live_deployment {
        Some(live) => event.before(json!({ "live": live })),
        None => event,
    };
    record(state, event).await;
}

/// What a settings event shows of a server: its description, settings and tracked source
/// (whether a webhook secret is set, never the secret).
pub(crate) fn settings(state: &AppState, server: &Server) -> Value {
    json!({
        "description": server.description,
        "settings": views::settings(&server.settings, &server.gateway, &state.server_defaults),
        "source": views::source(&server.source),
    })
}

/// `server` was created or changed from `before` (`None`: it was created) by `caller`;
/// nothing is recorded when nothing changed.
pub(crate) async fn server_changed(
    state: &AppState,
    caller: &Principal,
    before: Option<&Server>,
    after: &Server,
) {
    let now = settings(state, after);
    let was = before.map(|b| settings(state, b));
    if was.as_ref() == Some(&now) {
        return;
    }
    let event = NewControlEvent::new(caller, ControlAction::ServerSettings, Some(&after.name));
    let event = match was {
        Some(was) => event.before(was),
        None => event,
    };
    record(state, event.after(now)).await;
}
