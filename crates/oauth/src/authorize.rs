//! The authorization endpoint's steps: check the client and its redirect URI (errors before
//! this point are shown, never redirected: redirecting to an unchecked URI is an open
//! redirect), check the rest of the request (errors after it go back to the client), log the
//! user in (throttled), show consent, and on approval issue a single-use code bound to the
//! client, redirect URI, PKCE challenge, resource and user.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Deserialize;
use skyport_store::{NewOAuthCode, OAuthGrant, Principal, ServerName};

use crate::{
    AuthorizationServer, CODE_LIFETIME, CONSENT_LIFETIME, ClientInfo, CodeChallenge, DEFAULT_SCOPE,
    OAuthError, SCOPES, after, redirect_allowed, secret,
};

/// The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636, RFC 8707), as sent.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct AuthorizationRequest {
    /// Must be `code`.
    pub response_type: Option<String>,
    /// The client.
    pub client_id: Option<String>,
    /// Where to send the answer.
    pub redirect_uri: Option<String>,
    /// The PKCE challenge.
    pub code_challenge: Option<String>,
    /// Must be `S256`.
    pub code_challenge_method: Option<String>,
    /// The client's state, returned as is.
    pub state: Option<String>,
    /// Space-separated scopes.
    pub scope: Option<String>,
    /// The server's MCP URL the token is for.
    pub resource: Option<String>,
}

/// A client whose redirect URI checked out: from here on, errors go back to it.
#[derive(Clone, Debug)]
pub struct CheckedClient {
    /// The client.
    pub client: ClientInfo,
    /// The redirect URI it asked for, one of its registered ones.
    pub redirect_uri: String,
    /// The state to return.
    pub state: Option<String>,
}

/// A complete, valid authorization request.
#[derive(Clone, Debug)]
pub struct Authorization {
    /// The client and where to send it back.
    pub client: CheckedClient,
    /// The PKCE challenge.
    pub challenge: CodeChallenge,
    /// The resource URL (normalized).
    pub resource: String,
    /// The server it names.
    pub server: ServerName,
    /// The granted scope.
    pub scope: String,
}

/// Why a login on the authorization page fails.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong name or password (which one is not said).
    #[error("wrong user name or password")]
    Wrong,
    /// Too many failures for this user from this address.
    #[error("too many failed attempts for this user from your address; try again in {} minutes", .retry_after.as_secs().div_ceil(60))]
    Throttled {
        /// How long until an attempt is accepted.
        retry_after: Duration,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] skyport_store::StoreError),
}

/// A consent page waiting for its answer.
pub(crate) struct Pending {
    principal: Principal,
    authorization: Authorization,
    shown: Instant,
}

impl Pending {
    pub(crate) fn expired(&self) -> bool {
        self.shown.elapsed() > CONSENT_LIFETIME
    }
}

impl AuthorizationServer {
    /// The client of `request` with its redirect URI checked; an error here must be shown to
    /// the user, not sent to the redirect URI.
    pub async fn check_client(
        &self,
        request: &AuthorizationRequest,
    ) -> Result<CheckedClient, OAuthError> {
        let id = request
            .client_id
            .as_deref()
            .ok_or_else(|| OAuthError::InvalidRequest("client_id is required".to_owned()))?;
        let client = self.client(id).await?;
        let redirect_uri = match request.redirect_uri.as_deref() {
            Some(uri) => uri.to_owned(),
            // OAuth 2.1 §4.1.1: optional only when the client registered exactly one.
            None => match client.redirect_uris.as_slice() {
                [only] => only.clone(),
                _ => {
                    return Err(OAuthError::InvalidRequest(
                        "redirect_uri is required".to_owned(),
                    ));
                }
            },
        };
        if !redirect_allowed(&client.redirect_uris, &redirect_uri) {
            return Err(OAuthError::InvalidRequest(format!(
                "redirect_uri {redirect_uri} is not registered for client {}",
                client.name
            )));
        }
        Ok(CheckedClient {
            client,
            redirect_uri,
            state: request.state.clone(),
        })
    }

    /// The rest of `request` checked: response type, PKCE, scope and resource. An error here
    /// goes back to the client ([`AuthorizationServer::error_redirect`]).
    pub async fn check_request(
        &self,
        request: &AuthorizationRequest,
        client: CheckedClient,
    ) -> Result<Authorization, OAuthError> {
        match request.response_type.as_deref() {
            Some("code") => {}
            Some(other) => return Err(OAuthError::UnsupportedResponseType(other.to_owned())),
            None => {
                return Err(OAuthError::InvalidRequest(
                    "response_type is required (code)".to_owned(),
                ));
            }
        }
        let challenge = CodeChallenge::parse(
            request.code_challenge.as_deref(),
            request.code_challenge_method.as_deref(),
        )?;
        let scope = granted_scope(request.scope.as_deref())?;
        let resource = request.resource.as_deref().ok_or_else(|| {
            OAuthError::InvalidTarget(
                "resource is required: the MCP URL of the server the token is for (RFC 8707)"
                    .to_owned(),
            )
        })?;
        let (resource, server) = self.target(resource).await?;
        Ok(Authorization {
            client,
            challenge,
            resource,
            server,
            scope,
        })
    }

    /// The URL that sends `error` back to the checked client (RFC 6749 §4.1.2.1).
    pub fn error_redirect(&self, client: &CheckedClient, error: &OAuthError) -> String {
        let description = error.to_string();
        let pairs = [("error", error.code()), ("error_description", &description)];
        with_query(&client.redirect_uri, &pairs, client.state.as_deref())
    }

    /// The user `name` if `password` is theirs, unless this name and address failed too often.
    pub async fn login(
        &self,
        name: &str,
        password: &str,
        from: IpAddr,
    ) -> Result<Principal, LoginError> {
        let throttle = &self.inner.throttle;
        throttle
            .check(name, from, Instant::now())
            .map_err(|retry_after| LoginError::Throttled { retry_after })?;
        match self
            .inner
            .store
            .users()
            .verify_password(name, password)
            .await?
        {
            Some(principal) => {
                throttle.succeeded(name, from);
                Ok(principal)
            }
            None => {
                throttle.failed(name, from, Instant::now());
                Err(LoginError::Wrong)
            }
        }
    }

    /// Remembers `authorization` by `principal` until the consent page is answered; returns
    /// the page's ticket (unguessable, so only that page can answer).
    pub fn await_consent(&self, principal: Principal, authorization: Authorization) -> String {
        let ticket = secret("");
        let mut pending = self.inner.pending.lock();
        if pending.len() > 10_000 {
            pending.retain(|_, p| !p.expired());
        }
        pending.insert(
            ticket.clone(),
            Pending {
                principal,
                authorization,
                shown: Instant::now(),
            },
        );
        ticket
    }

    /// Answers the consent page `ticket`: the redirect to the client, with a code when
    /// `approved`, else `access_denied`. `None` when the ticket is unknown or expired (the
    /// page says so; there is no checked redirect URI to use).
    pub async fn answer_consent(
        &self,
        ticket: &str,
        approved: bool,
    ) -> Result<Option<String>, OAuthError> {
        let Some(pending) = self.inner.pending.lock().remove(ticket) else {
            return Ok(None);
        };
        if pending.expired() {
            return Ok(None);
        }
        let authorization = &pending.authorization;
        let client = &authorization.client;
        if !approved {
            return Ok(Some(self.error_redirect(client, &OAuthError::AccessDenied)));
        }
        let code = secret("");
        let grant = OAuthGrant {
            client_id: client.client.id.clone(),
            principal: pending.principal.id.clone(),
            resource: authorization.resource.clone(),
            scope: authorization.scope.clone(),
        };
        self.inner
            .store
            .oauth()
            .create_code(&NewOAuthCode {
                code: &code,
                grant: &grant,
                redirect_uri: &client.redirect_uri,
                code_challenge: authorization.challenge.as_str(),
                expires_at: after(CODE_LIFETIME),
            })
            .await?;
        Ok(Some(with_query(
            &client.redirect_uri,
            &[("code", &code)],
            client.state.as_deref(),
        )))
    }
}

/// The scope granted for `requested`: each must be one Skyport grants; none asks for `mcp`.
pub(crate) fn granted_scope(requested: Option<&str>) -> Result<String, OAuthError> {
    let requested: Vec<&str> = requested.unwrap_or("").split_whitespace().collect();
    if requested.is_empty() {
        return Ok(DEFAULT_SCOPE.to_owned());
    }
    if let Some(unknown) = requested.iter().find(|s| !SCOPES.contains(s)) {
        return Err(OAuthError::InvalidScope(format!(
            "scope {unknown} is not offered; Skyport grants {}",
            SCOPES.join(" ")
        )));
    }
    Ok(requested.join(" "))
}

/// `uri` with `pairs` and `state` added to its query (it may have one already).
fn with_query(uri: &str, pairs: &[(&str, &str)], state: Option<&str>) -> String {
    match Url::parse(uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (k, v) in pairs {
                    query.append_pair(k, v);
                }
                if let Some(state) = state {
                    query.append_pair("state", state);
                }
            }
            url.to_string()
        }
        // Registered URIs parse (registration checks them); a document's might not. Then the
        // client gets its URI back as it gave it, which cannot carry the answer.
        Err(_) => uri.to_owned(),
    }
}
