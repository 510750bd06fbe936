//! A typed client of Skyport's REST API (what the CLI uses), its live log streams
//! ([`LogStream`]), and [`pack`], which turns a source folder into the gzip tarball that
//! `POST /api/v1/uploads` takes; and [`McpClient`], the MCP client of `skyport mcp`.

mod access;
mod agents;
mod chat;
mod env;
mod events;
mod mcp;
mod pack;
mod policies;
mod promotions;
mod registry;
mod remixes;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use skyport_api::{
    AuditPage, ControlAuditPage, CreateDeployment, CreateKey, DeploymentView, ErrorBody, Health,
    KeyCreated, KeyView, LogPage, PutServer, ServerView, SigningKeyRotated, UploadCreated,
};

pub use chat::{ChatStream, ChatTarget};
pub use events::{LogEvent, LogStream};
pub use mcp::{McpClient, McpError, PROTOCOL_VERSION};
pub use pack::{PackError, Packed, pack};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Skyport could not be reached at all.
    #[error(
        "cannot reach Skyport at {url}: {detail}; is `skyport serve` running there? (set --url or SKYPORT_URL)"
    )]
    Unreachable {
        /// The base URL.
        url: String,
        /// What the connection reported.
        detail: String,
    },
    /// Skyport answered with an error.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The machine-readable code (`not_found`, `invalid_name`, …).
        code: String,
        /// What went wrong and what to do.
        message: String,
    },
    /// The answer was not what this client expects (a different Skyport version?).
    #[error("unexpected answer from Skyport: {0}")]
    Protocol(String),
}

impl ClientError {
    /// Whether Skyport said the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api { status: 404, .. })
    }
}

/// Filters for [`Client::logs`] and [`Client::follow_logs`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct LogFilter {
    /// `build` or `instance`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// One deployment's lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Only lines after this cursor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    /// At most this many lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Only lines written at or after this time (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// Filters for [`Client::audit`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct AuditFilter {
    /// Only requests to this server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Only requests since this time: RFC 3339, or a duration back from now such as `1h`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// At most this many requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// A client of one Skyport.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of the Skyport at `base` (e.g. `http://127.0.0.1:8420`), authenticating
    /// with `token` when given.
    pub fn new(base: &str, token: Option<String>) -> Client {
        // reqwest is built without a default TLS provider; install ring once (a second
        // install fails harmlessly).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /healthz`.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.send(self.http.get(format!("{}/healthz", self.base)))
            .await
    }

    /// All servers.
    pub async fn servers(&self) -> Result<Vec<ServerView>, ClientError> {
        self.send(self.api(Method::GET, "/servers")).await
    }

    /// One server.
    pub async fn server(&self, name: &str) -> Result<ServerView, ClientError> {
        self.send(self.api(Method::GET, &format!("/servers/{name}")))
            .await
    }

    /// Creates a server or changes its description and settings.
    pub async fn put_server(
        &self,
        name: &str,
        body: &PutServer,
    ) -> Result<ServerView, ClientError> {
        self.send(
            self.api(Method::PUT, &format!("/servers/{name}"))
                .json(body),
        )
        .await
    }

    /// Removes a server, its deployments and its instances.
    pub async fn remove_server(&self, name: &str) -> Result<(), ClientError> {
        self.send_empty(self.api(Method::DELETE, &format!("/servers/{name}")))
            .await
    }

    /// A server's deployments, newest first.
    pub async fn deployments(&self, server: &str) -> Result<Vec<DeploymentView>, ClientError> {
        self.send(self.api(Method::GET, &format!("/servers/{server}/deployments")))
            .await
    }

    /// One deployment.
    pub async fn deployment(&self, id: &str) -> Result<DeploymentView, ClientError> {
        self.send(self.api(Method::GET, &format!("/deployments/{id}")))
            .await
    }

    /// Uploads a packed source; the id goes into [`CreateDeployment`].
    pub async fn upload(&self, tarball: Vec<u8>) -> Result<UploadCreated, ClientError> {
        let request = self
            .api(Method::POST, "/uploads")
            .header("content-type", "application/gzip")
            .body(tarball);
        self.send(request).await
    }

    /// Starts a deployment of `server` (created if new); returns it queued.
    pub async fn deploy(
        &self,
        server: &str,
        request: &CreateDeployment,
    ) -> Result<DeploymentView, ClientError> {
        let request = self
            .api(Method::POST, &format!("/servers/{server}/deployments"))
            .json(request);
        self.send(request).await
    }

    /// A page of a server's logs.
    pub async fn logs(&self, server: &str, filter: &LogFilter) -> Result<LogPage, ClientError> {
        let request = self
            .api(Method::GET, &format!("/servers/{server}/logs"))
            .query(filter);
        self.send(request).await
    }

    /// The gateway's audit log: MCP requests matching `filter`, newest first.
    pub async fn audit(&self, filter: &AuditFilter) -> Result<AuditPage, ClientError> {
        self.send(self.api(Method::GET, "/audit").query(filter))
            .await
    }

    /// The control-plane audit log: changes matching `filter`, newest first.
    pub async fn control_audit(
        &self,
        filter: &AuditFilter,
    ) -> Result<ControlAuditPage, ClientError> {
        self.send(self.api(Method::GET, "/audit/control").query(filter))
            .await
    }

    /// Cancels a queued or running build; returns the deployment, recorded as cancelled.
    pub async fn cancel(&self, id: &str) -> Result<DeploymentView, ClientError> {
        self.send(self.api(Method::POST, &format!("/deployments/{id}/cancel")))
            .await
    }

    /// The builds running, then those waiting, in queue order.
    pub async fn builds(&self) -> Result<Vec<DeploymentView>, ClientError> {
        self.send(self.api(Method::GET, "/builds")).await
    }

    /// A server's log lines as they are written (after `filter.after`, else from the last
    /// `filter.limit` lines); the stream does not end by itself.
    pub async fn follow_logs(
        &self,
        server: &str,
        filter: &LogFilter,
    ) -> Result<LogStream, ClientError> {
        let request = self
            .api(Method::GET, &format!("/servers/{server}/logs"))
            .query(filter)
            .header("accept", "text/event-stream");
        Ok(LogStream::new(self.execute(request).await?))
    }

    /// A deployment's build log from after cursor `after` (from its top when `None`), with its
    /// status changes; it ends with [`LogEvent::End`] once the build is over.
    pub async fn follow_build(
        &self,
        id: &str,
        after: Option<i64>,
    ) -> Result<LogStream, ClientError> {
        let mut request = self
            .api(Method::GET, &format!("/deployments/{id}/logs"))
            .header("accept", "text/event-stream");
        if let Some(after) = after {
            request = request.query(&[("after", after)]);
        }
        Ok(LogStream::new(self.execute(request).await?))
    }

    /// Creates an API key acting as the caller; the answer holds its secret, shown only now.
    pub async fn create_key(&self, request: &CreateKey) -> Result<KeyCreated, ClientError> {
        self.send(self.api(Method::POST, "/keys").json(request))
            .await
    }

    /// The API keys the caller may see (all of them for an administrator), oldest first.
    pub async fn keys(&self) -> Result<Vec<KeyView>, ClientError> {
        self.send(self.api(Method::GET, "/keys")).await
    }

    /// Revokes the key with this id, or the live key with this name; returns it, revoked.
    pub async fn revoke_key(&self, id_or_name: &str) -> Result<KeyView, ClientError> {
        let path = format!("/keys/{}", path_segment(id_or_name));
        self.send(self.api(Method::DELETE, &path)).await
    }

    /// Makes a new key sign identity tokens; returns its id.
    pub async fn rotate_signing_key(&self) -> Result<SigningKeyRotated, ClientError> {
        self.send(self.api(Method::POST, "/signing-keys/rotate"))
            .await
    }

    /// Makes an OAuth client for a service account; the answer holds its secret, once.
    pub async fn create_oauth_client(
        &self,
        request: &skyport_api::CreateOAuthClient,
    ) -> Result<skyport_api::OAuthClientCreated, ClientError> {
        self.send(self.api(Method::POST, "/oauth/clients").json(request))
            .await
    }

    /// The OAuth clients made for service accounts.
    pub async fn oauth_clients(&self) -> Result<Vec<skyport_api::OAuthClientView>, ClientError> {
        self.send(self.api(Method::GET, "/oauth/clients")).await
    }

    /// Removes an OAuth client; its refresh tokens stop working.
    pub async fn remove_oauth_client(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/oauth/clients/{}", path_segment(id));
        self.send_empty(self.api(Method::DELETE, &path)).await
    }

    fn api(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, ClientError> {
        let response = self.execute(request).await?;
        response
            .json()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))
    }

    async fn send_empty(&self, request: RequestBuilder) -> Result<(), ClientError> {
        self.execute(request).await.map(drop)
    }

    async fn execute(&self, request: RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            detail: innermost(&e),
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => ClientError::Api {
                status: status.as_u16(),
                code: body.error.code,
                message: body.error.message,
            },
            Err(_) => ClientError::Api {
                status: status.as_u16(),
                code: "http".to_owned(),
                message: describe_status(status, &text),
            },
        })
    }
}

/// `text` as one URL path segment: key names may hold spaces and punctuation.
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn describe_status(status: StatusCode, text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        format!("Skyport answered {status}")
    } else {
        format!(
            "Skyport answered {status}: {}",
            text.chars().take(300).collect::<String>()
        )
    }
}

/// The deepest cause of an error: reqwest's top level says only "error sending request".
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}
