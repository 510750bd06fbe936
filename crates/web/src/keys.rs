//! `/api/v1/keys`: create (the secret is in the answer, once), list and revoke API keys.
//!
//! A key acts as the principal that created it, or (created by an organisation admin for a
//! service account or another user) as the principal named in the request. Organisation
//! admins see and revoke every key; anyone else only their own. `POST
//! /api/v1/signing-keys/rotate` (organisation admins only) replaces the key that signs identity
//! tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::json;
use skyport_api::{CreateKey, KeyCreated, KeyView, SigningKeyRotated};
use skyport_gateway::Gateway;
use skyport_store::{
    AccountError, ApiKey, ControlAction, KeyRef, NewControlEvent, Principal, Timestamp,
};

use crate::access::require_org_admin;
use crate::{ApiError, AppState, control};

/// Longest name a key may have: it is shown in one column of `skyport keys ls`.
const MAX_NAME: usize = 64;

/// Longest lifetime `expires_in` may ask for (ten years): beyond, "never" is what is meant.
const MAX_EXPIRES_IN: u64 = 10 * 365 * 86_400;

/// `POST /api/v1/keys`.
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Json(body): Json<CreateKey>,
) -> Result<(StatusCode, Json<KeyCreated>), ApiError> {
    let expires_at = match body.expires_in {
        None => None,
        Some(0) => {
            return Err(ApiError::BadRequest(
                "expires_in must be at least 1 second; leave it out for a key that does not expire"
                    .to_owned(),
            ));
        }
        Some(secs) if secs > MAX_EXPIRES_IN => {
            return Err(ApiError::BadRequest(
                "expires_in may be at most ten years; leave it out for a key that does not expire"
                    .to_owned(),
            ));
        }
        Some(secs) => Some(Timestamp::now() + std::time::Duration::from_secs(secs)),
    };
    let name = match body.name.as_deref().map(str::trim) {
        Some(name) => Some(valid_name(name)?),
        None => None,
    };
    if let Some(name) = &name
        && !state.store.keys().live_named(name).await?.is_empty()
    {
        return Err(ApiError::Conflict(format!(
            "a live key is already named '{name}'; choose another --name or revoke it first (`skyport keys revoke {name}`)"
        )));
    }
    let owner = match body.principal.as_deref().map(str::trim) {
        None => caller.id.clone(),
        Some(other) if other == caller.name => caller.id.clone(),
        Some(other) => {
            require_org_admin(&caller, "create keys for other users or service accounts")?;
            state
                .store
                .users()
                .get(other)
                .await?
                .ok_or_else(|| AccountError::NoPrincipal(other.to_owned()))?
                .id
        }
    };
    let (key, secret) = state
        .store
        .keys()
        .create(&owner, name.as_deref().unwrap_or(""), expires_at)
        .await?;
    let event = NewControlEvent::new(&caller, ControlAction::KeyCreate, None)
        .subject(key.id.as_str())
        .after(described(&key));
    control::record(&state, event).await;
    Ok((
        StatusCode::CREATED,
        Json(KeyCreated {
            key: view(key),
            secret,
        }),
    ))
}

/// `GET /api/v1/keys`: every key the caller may see, oldest first.
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<Vec<KeyView>>, ApiError> {
    let only = (!caller.is_admin).then_some(&caller.id);
    let keys = state.store.keys().list(only).await?;
    Ok(Json(keys.into_iter().map(view).collect()))
}

/// `DELETE /api/v1/keys/{id-or-name}`: revokes the key; answers it, revoked.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Principal>,
    Path(which): Path<String>,
) -> Result<Json<KeyView>, ApiError> {
    let not_found = || {
        ApiError::NotFound(format!(
            "no live key named '{which}' and no key with that id; `skyport keys ls` lists them"
        ))
    };
    let key = state
        .store
        .keys()
        .find(&KeyRef::parse(&which))
        .await?
        .filter(|k| caller.is_admin || k.principal == caller.id)
        .ok_or_else(not_found)?;
    let revoked = state
        .store
        .keys()
        .revoke(&key.id)
        .await?
        .ok_or_else(not_found)?;
    let event = NewControlEvent::new(&caller, ControlAction::KeyRevoke, None)
        .subject(revoked.id.as_str())
        .before(described(&key))
        .after(described(&revoked));
    control::record(&state, event).await;
    Ok(Json(view(revoked)))
}

/// `POST /api/v1/signing-keys/rotate`: a new key signs identity tokens from now on.
pub(crate) async fn rotate_signing(
    State(state): State<AppState>,
    Extension(gateway): Extension<Gateway>,
    Extension(caller): Extension<Principal>,
) -> Result<Json<SigningKeyRotated>, ApiError> {
    require_org_admin(&caller, "rotate the key that signs identity tokens")?;
    let kid = gateway.rotate_signing_key().await?;
    // OAuth access tokens are signed with the same key.
    state.oauth.reload_keys().await?;
    let event =
        NewControlEvent::new(&caller, ControlAction::SigningKeyRotate, None).subject(kid.as_str());
    control::record(&state, event).await;
    Ok(Json(SigningKeyRotated { kid }))
}

/// A key name: printable, short, and not an id (ids and names share `revoke`'s argument).
fn valid_name(name: &str) -> Result<String, ApiError> {
    let refused = |why: &str| ApiError::BadRequest(format!("invalid key name '{name}': {why}"));
    if name.is_empty() {
        return Err(refused("it is empty; leave --name out for a generated one"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(refused("use at most 64 characters"));
    }
    if name.chars().any(|c| c.is_control() || c == '/') {
        return Err(refused(
            "use letters, digits, spaces and punctuation other than '/'",
        ));
    }
    if matches!(KeyRef::parse(name), KeyRef::Id(_)) {
        return Err(refused("it looks like a key id"));
    }
    Ok(name.to_owned())
}

/// What the audit log shows of a key: never its secret (which is not stored anyway).
fn described(key: &ApiKey) -> serde_json::Value {
    json!({
        "name": key.name,
        "principal": key.principal_name,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
    })
}

/// The API's view of a key.
pub(crate) fn view(key: ApiKey) -> KeyView {
    let state = if key.revoked_at.is_some() {
        "revoked"
    } else if key.is_live(Timestamp::now()) {
        "active"
    } else {
        "expired"
    };
    KeyView {
        id: key.id,
        name: key.name,
        principal: key.principal_name,
        created_at: key.created_at,
        expires_at: key.expires_at,
        last_used_at: key.last_used_at,
        revoked_at: key.revoked_at,
        state: state.to_owned(),
    }
}
