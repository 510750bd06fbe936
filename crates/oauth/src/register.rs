//! Clients Skyport knows by a row: dynamic client registration (RFC 7591) for MCP clients that
//! do not publish a metadata document, and clients an org admin makes for a service account
//! (`client_credentials`).

use serde::{Deserialize, Serialize};
use skyport_store::{NewOAuthClient, OAuthClient, Principal, PrincipalKind};

use crate::{AuthorizationServer, OAuthError, registrable, secret};

/// Longest client name kept (it is shown on the consent page).
const MAX_NAME: usize = 100;
/// Most redirect URIs one client may register.
const MAX_REDIRECT_URIS: usize = 10;

/// A registration request (RFC 7591 §2), the fields Skyport reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ClientRegistration {
    /// Where the client may be sent back to.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Its name.
    pub client_name: Option<String>,
    /// `none` (public), `client_secret_basic` or `client_secret_post`.
    pub token_endpoint_auth_method: Option<String>,
    /// The grants it will use.
    pub grant_types: Option<Vec<String>>,
    /// The response types it will use.
    pub response_types: Option<Vec<String>>,
    /// The scopes it will ask for.
    pub scope: Option<String>,
}

/// A registration's answer (RFC 7591 §3.2.1).
#[derive(Clone, Debug, Serialize)]
pub struct RegisteredClient {
    /// The new client id.
    pub client_id: String,
    /// Its secret, for confidential clients (shown once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// When it was issued, seconds since the epoch.
    pub client_id_issued_at: i64,
    /// 0: the secret does not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    /// Its redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Its name.
    pub client_name: String,
    /// How it authenticates at the token endpoint.
    pub token_endpoint_auth_method: String,
    /// The grants it may use.
    pub grant_types: Vec<String>,
    /// The response types it may use.
    pub response_types: Vec<String>,
}

/// A client made for a service account, with its secret (shown once).
#[derive(Clone, Debug)]
pub struct ServiceClient {
    /// The client.
    pub client: OAuthClient,
    /// Its secret.
    pub secret: String,
}

impl AuthorizationServer {
    /// Registers a client for the authorization code flow.
    pub async fn register(
        &self,
        registration: &ClientRegistration,
    ) -> Result<RegisteredClient, OAuthError> {
        let method = registration
            .token_endpoint_auth_method
            .as_deref()
            .unwrap_or("client_secret_basic");
        let confidential = match method {
            "none" => false,
            "client_secret_basic" | "client_secret_post" => true,
            other => {
                return Err(OAuthError::InvalidClientMetadata(format!(
                    "token_endpoint_auth_method {other} is not supported; use none, client_secret_basic or client_secret_post"
                )));
            }
        };
        let uris = &registration.redirect_uris;
        if uris.is_empty() || uris.len() > MAX_REDIRECT_URIS {
            return Err(OAuthError::InvalidRedirectUri(format!(
                "register between 1 and {MAX_REDIRECT_URIS} redirect_uris"
            )));
        }
        if let Some(bad) = uris.iter().find(|u| !registrable(u)) {
            return Err(OAuthError::InvalidRedirectUri(format!(
                "redirect_uri {bad} cannot be used: use https, http on a loopback address, or a private-use scheme, without a fragment"
            )));
        }
        let grant_types = registration
            .grant_types
            .clone()
            .unwrap_or_else(|| vec!["authorization_code".to_owned(), "refresh_token".to_owned()]);
        if let Some(bad) = grant_types
            .iter()
            .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
        {
            return Err(OAuthError::InvalidClientMetadata(format!(
                "grant type {bad} cannot be registered; registered clients use authorization_code and refresh_token (client_credentials is for service accounts: `skyport oauth clients create --for ACCOUNT`)"
            )));
        }
        let response_types = registration
            .response_types
            .clone()
            .unwrap_or_else(|| vec!["code".to_owned()]);
        if response_types.iter().any(|r| r != "code") {
            return Err(OAuthError::InvalidClientMetadata(
                "only the response type code is supported".to_owned(),
            ));
        }
        let name: String = registration
            .client_name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or("an unnamed client")
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_NAME)
            .collect();
        let id = client_id();
        let client_secret = confidential.then(|| secret("ocs_"));
        let client = self
            .inner
            .store
            .oauth()
            .create_client(&NewOAuthClient {
                id: &id,
                name: &name,
                redirect_uris: uris,
                secret: client_secret.as_deref(),
                principal: None,
            })
            .await?;
        Ok(RegisteredClient {
            client_id: client.id,
            client_secret_expires_at: client_secret.as_ref().map(|_| 0),
            client_secret,
            client_id_issued_at: client.created_at.as_second(),
            redirect_uris: client.redirect_uris,
            client_name: client.name,
            token_endpoint_auth_method: method.to_owned(),
            grant_types,
            response_types,
        })
    }

    /// Makes a confidential client whose `client_credentials` tokens act as service account
    /// `account`.
    pub async fn create_service_client(
        &self,
        account: &Principal,
        name: &str,
    ) -> Result<ServiceClient, OAuthError> {
        if account.kind != PrincipalKind::Service {
            return Err(OAuthError::InvalidClientMetadata(format!(
                "{} is a user; client credentials act as service accounts (`skyport users add NAME --service`)",
                account.name
            )));
        }
        let id = client_id();
        let secret = secret("ocs_");
        let client = self
            .inner
            .store
            .oauth()
            .create_client(&NewOAuthClient {
                id: &id,
                name,
                redirect_uris: &[],
                secret: Some(&secret),
                principal: Some(&account.id),
            })
            .await?;
        Ok(ServiceClient { client, secret })
    }
}

fn client_id() -> String {
    format!("oac_{}", ulid::Ulid::new().to_string().to_ascii_lowercase())
}
