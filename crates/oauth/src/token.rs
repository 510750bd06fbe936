//! The token endpoint's grants and revocation (RFC 7009).
//!
//! Clients authenticate with a secret (HTTP Basic or in the body) when they have one; public
//! clients only name themselves, and PKCE (for codes) or possession of the refresh token is
//! their proof. A refresh token rotates on every use; presenting a spent one revokes its whole
//! family, since either the client or a thief holds a copy it should not.

use serde::{Deserialize, Serialize};
use skyport_store::{NewRefreshToken, OAuthGrant, Rotation, Timestamp};

use crate::access::verify_unbound;
use crate::authorize::granted_scope;
use crate::{
    AuthorizationServer, ClientInfo, CodeChallenge, OAuthError, after, cimd, secret, unix_now,
};

/// The parameters of a token or revocation request, as sent (form fields).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct TokenRequest {
    /// `authorization_code`, `refresh_token` or `client_credentials`.
    pub grant_type: Option<String>,
    /// The authorization code.
    pub code: Option<String>,
    /// The redirect URI of the authorization request.
    pub redirect_uri: Option<String>,
    /// The PKCE verifier.
    pub code_verifier: Option<String>,
    /// The client, when it does not authenticate with HTTP Basic.
    pub client_id: Option<String>,
    /// The client's secret, for `client_secret_post`.
    pub client_secret: Option<String>,
    /// The refresh token.
    pub refresh_token: Option<String>,
    /// The server's MCP URL (RFC 8707).
    pub resource: Option<String>,
    /// Space-separated scopes.
    pub scope: Option<String>,
    /// The token to revoke.
    pub token: Option<String>,
}

/// Client credentials from an `Authorization: Basic` header.
#[derive(Clone, Debug)]
pub struct ClientSecret {
    /// The client id.
    pub id: String,
    /// Its secret.
    pub secret: String,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Clone, Debug, Serialize)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The next refresh token, when the grant gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scope.
    pub scope: String,
}

impl AuthorizationServer {
    /// Answers a token request; `basic` is the client's HTTP Basic credentials, if sent.
    pub async fn token(
        &self,
        request: &TokenRequest,
        basic: Option<ClientSecret>,
    ) -> Result<TokenResponse, OAuthError> {
        let grant_type = request
            .grant_type
            .as_deref()
            .ok_or_else(|| OAuthError::InvalidRequest("grant_type is required".to_owned()))?;
        let client = self.authenticate(request, basic).await?;
        match grant_type {
            "authorization_code" => self.code_grant(request, &client).await,
            "refresh_token" => self.refresh_grant(request, &client).await,
            "client_credentials" => self.client_credentials_grant(request, &client).await,
            other => Err(OAuthError::UnsupportedGrantType(other.to_owned())),
        }
    }

    /// Revokes a refresh token (and its family) or an access token the client holds; an
    /// unknown token is no error (RFC 7009 §2.2).
    pub async fn revoke(
        &self,
        request: &TokenRequest,
        basic: Option<ClientSecret>,
    ) -> Result<(), OAuthError> {
        let client = self.authenticate(request, basic).await?;
        let token = request
            .token
            .as_deref()
            .ok_or_else(|| OAuthError::InvalidRequest("token is required".to_owned()))?;
        let oauth = self.inner.store.oauth();
        if oauth.revoke_refresh_token(token, &client.id).await? {
            return Ok(());
        }
        if let Ok(claims) = verify_unbound(token, &self.verifiers(), self.issuer(), unix_now())
            && claims.client_id == client.id
        {
            let expires_at = i64::try_from(claims.exp)
                .ok()
                .and_then(|s| Timestamp::from_second(s).ok())
                .unwrap_or(Timestamp::MAX);
            oauth.revoke_access_token(&claims.jti, expires_at).await?;
        }
        Ok(())
    }

    /// The client of a token request: authenticated by its secret when it sends one, else a
    /// public client named by `client_id`.
    async fn authenticate(
        &self,
        request: &TokenRequest,
        basic: Option<ClientSecret>,
    ) -> Result<ClientInfo, OAuthError> {
        let presented = basic.or_else(|| {
            Some(ClientSecret {
                id: request.client_id.clone()?,
                secret: request.client_secret.clone()?,
            })
        });
        if let Some(ClientSecret { id, secret }) = presented {
            return self
                .inner
                .store
                .oauth()
                .authenticate_client(&id, &secret)
                .await?
                .map(ClientInfo::from)
                .ok_or_else(|| {
                    OAuthError::InvalidClient(format!(
                        "client {id} did not authenticate: unknown client or wrong secret"
                    ))
                });
        }
        let id = request.client_id.as_deref().ok_or_else(|| {
            OAuthError::InvalidClient(
                "no client: send client_id (public clients) or client credentials".to_owned(),
            )
        })?;
        let client = if cimd::is_document_url(id) {
            self.client(id).await?
        } else {
            self.client(id).await.map_err(|_| {
                OAuthError::InvalidClient(format!("unknown client {id}; register it again"))
            })?
        };
        if client.confidential {
            return Err(OAuthError::InvalidClient(format!(
                "client {id} has a secret: authenticate with it"
            )));
        }
        Ok(client)
    }

    async fn code_grant(
        &self,
        request: &TokenRequest,
        client: &ClientInfo,
    ) -> Result<TokenResponse, OAuthError> {
        let missing = |what: &str| OAuthError::InvalidRequest(format!("{what} is required"));
        let code = request.code.as_deref().ok_or_else(|| missing("code"))?;
        let verifier = request
            .code_verifier
            .as_deref()
            .ok_or_else(|| missing("code_verifier"))?;
        let redirect_uri = request
            .redirect_uri
            .as_deref()
            .ok_or_else(|| missing("redirect_uri"))?;
        // Spent before anything else is checked: a code that fails a check is gone too, so an
        // attacker gets one guess at the verifier.
        let spent = self
            .inner
            .store
            .oauth()
            .spend_code(code)
            .await?
            .ok_or_else(|| {
                OAuthError::InvalidGrant(
                    "the authorization code is unknown or was used already; authorize again"
                        .to_owned(),
                )
            })?;
        if spent.grant.client_id != client.id {
            return Err(OAuthError::InvalidGrant(
                "the authorization code was issued to another client".to_owned(),
            ));
        }
        if Timestamp::now() >= spent.expires_at {
            return Err(OAuthError::InvalidGrant(
                "the authorization code expired; authorize again".to_owned(),
            ));
        }
        if spent.redirect_uri != redirect_uri {
            return Err(OAuthError::InvalidGrant(
                "redirect_uri differs from the authorization request's".to_owned(),
            ));
        }
        if !CodeChallenge::stored(spent.code_challenge).accepts(verifier) {
            return Err(OAuthError::InvalidGrant(
                "code_verifier does not match the code_challenge (PKCE)".to_owned(),
            ));
        }
        self.same_resource(request, &spent.grant.resource)?;
        let refresh = secret("ort_");
        let family = secret("");
        self.inner
            .store
            .oauth()
            .create_refresh_token(&NewRefreshToken {
                token: &refresh,
                family: &family,
                grant: &spent.grant,
                expires_at: after(self.inner.config.refresh_token_lifetime),
            })
            .await?;
        Ok(self.respond(&spent.grant, Some(refresh)))
    }

    async fn refresh_grant(
        &self,
        request: &TokenRequest,
        client: &ClientInfo,
    ) -> Result<TokenResponse, OAuthError> {
        let old = request
            .refresh_token
            .as_deref()
            .ok_or_else(|| OAuthError::InvalidRequest("refresh_token is required".to_owned()))?;
        let new = secret("ort_");
        let rotation = self
            .inner
            .store
            .oauth()
            .rotate_refresh_token(
                old,
                &client.id,
                &new,
                after(self.inner.config.refresh_token_lifetime),
                Timestamp::now(),
            )
            .await?;
        let grant = match rotation {
            Rotation::Rotated(grant) => grant,
            Rotation::Reused => {
                return Err(OAuthError::InvalidGrant(
                    "the refresh token was used already, so every token of this authorization is revoked now; authorize again".to_owned(),
                ));
            }
            Rotation::Expired => {
                return Err(OAuthError::InvalidGrant(
                    "the refresh token expired; authorize again".to_owned(),
                ));
            }
            Rotation::Unknown => {
                return Err(OAuthError::InvalidGrant(
                    "the refresh token is unknown or belongs to another client".to_owned(),
                ));
            }
        };
        self.same_resource(request, &grant.resource)?;
        Ok(self.respond(&grant, Some(new)))
    }

    async fn client_credentials_grant(
        &self,
        request: &TokenRequest,
        client: &ClientInfo,
    ) -> Result<TokenResponse, OAuthError> {
        let principal = client.principal.clone().ok_or_else(|| {
            OAuthError::UnauthorizedClient(format!(
                "client {} acts for no service account; create one with `skyport oauth clients create --for ACCOUNT`",
                client.id
            ))
        })?;
        let resource = request.resource.as_deref().ok_or_else(|| {
            OAuthError::InvalidTarget(
                "resource is required: the MCP URL of the server the token is for (RFC 8707)"
                    .to_owned(),
            )
        })?;
        let (resource, _) = self.target(resource).await?;
        let grant = OAuthGrant {
            client_id: client.id.clone(),
            principal,
            resource,
            scope: granted_scope(request.scope.as_deref())?,
        };
        Ok(self.respond(&grant, None))
    }

    /// A `resource` on a code or refresh request may only repeat the authorization's: a
    /// token is for the one server the user consented to.
    fn same_resource(&self, request: &TokenRequest, granted: &str) -> Result<(), OAuthError> {
        if let Some(resource) = request.resource.as_deref()
            && resource.trim_end_matches('/') != granted
        {
            return Err(OAuthError::InvalidTarget(format!(
                "this authorization is for {granted}, not {resource}; authorize that server separately"
            )));
        }
        Ok(())
    }

    fn respond(&self, grant: &OAuthGrant, refresh_token: Option<String>) -> TokenResponse {
        let (access_token, expires_in) = self.access_token(
            &grant.principal,
            &grant.resource,
            &grant.client_id,
            &grant.scope,
        );
        TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in,
            refresh_token,
            scope: grant.scope.clone(),
        }
    }
}
