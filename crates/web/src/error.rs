//! API errors, mapped in one place to a status and the JSON body `{error:{code,message}}`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use skyport_api::{ErrorBody, ErrorDetail};
use skyport_build::BuildError;
use skyport_registry::RemoteError;
use skyport_store::{
    AccountError, AgentError, EnvError, GrantError, NameError, PolicyError, ProviderError,
    RemixError, StoreError,
};

/// Why an API request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No or a wrong credential.
    #[error(
        "missing or invalid API key: send `Authorization: Bearer sk_…` (the CLI reads DATA_DIR/credentials, or set SKYPORT_TOKEN)"
    )]
    Unauthorized,
    /// A login with a wrong name or password (which of the two is not said).
    #[error(
        "wrong user name or password; ask an org admin to create your user (`skyport users add NAME`) if you have none"
    )]
    WrongLogin,
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The request names something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A server name that is not a DNS label.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// A variable name, value or scope that cannot be used.
    #[error(transparent)]
    InvalidEnv(#[from] EnvError),
    /// A policy rule that does not parse.
    #[error(transparent)]
    InvalidPolicy(#[from] PolicyError),
    /// An external server's URL or headers that cannot be used.
    #[error(transparent)]
    InvalidRemote(#[from] RemoteError),
    /// Any other malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// A webhook delivery whose signature is missing or wrong.
    #[error("{0}")]
    BadSignature(String),
    /// A body over its size limit.
    #[error("{0}")]
    TooLarge(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// A build could not be started.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A user, service account or group that cannot be created or changed.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// A grant naming someone unknown.
    #[error(transparent)]
    Grant(#[from] GrantError),
    /// A remix that cannot be created or changed as asked.
    #[error(transparent)]
    Remix(#[from] RemixError),
    /// A language-model provider that cannot be created, changed or removed as asked.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// An agent that cannot be created or changed as asked.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    pub(crate) fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized | ApiError::WrongLogin => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Account(e) => match e {
                AccountError::InvalidName(_) => (StatusCode::BAD_REQUEST, "invalid_name"),
                AccountError::Service(_) => (StatusCode::BAD_REQUEST, "bad_request"),
                AccountError::Exists(_) | AccountError::LastAdmin(_) => {
                    (StatusCode::CONFLICT, "conflict")
                }
                AccountError::NoPrincipal(_) | AccountError::NoGroup(_) => {
                    (StatusCode::NOT_FOUND, "not_found")
                }
                AccountError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
            ApiError::Grant(e) => match e {
                GrantError::Unknown { .. } => (StatusCode::NOT_FOUND, "not_found"),
                GrantError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::InvalidName(_) => (StatusCode::BAD_REQUEST, "invalid_name"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::InvalidRemote(_) => (StatusCode::BAD_REQUEST, "invalid_remote"),
            ApiError::InvalidEnv(_) => (StatusCode::BAD_REQUEST, "invalid_env"),
            ApiError::InvalidPolicy(_) => (StatusCode::BAD_REQUEST, "invalid_policy"),
            ApiError::BadSignature(_) => (StatusCode::UNAUTHORIZED, "bad_signature"),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::Conflict(_) | ApiError::Store(StoreError::Conflict(_)) => {
                (StatusCode::CONFLICT, "conflict")
            }
            ApiError::Build(e) => match e {
                BuildError::InvalidEntrypoint(_) => (StatusCode::BAD_REQUEST, "invalid_entrypoint"),
                BuildError::UploadTooLarge { .. } => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "upload_too_large")
                }
                BuildError::UnknownUpload(_) | BuildError::InvalidUploadId(_) => {
                    (StatusCode::BAD_REQUEST, "unknown_upload")
                }
                BuildError::UploadBody(_) => (StatusCode::BAD_REQUEST, "bad_upload"),
                BuildError::InvalidGitUrl(_) => (StatusCode::BAD_REQUEST, "invalid_git_url"),
                BuildError::InvalidGitRef(_) => (StatusCode::BAD_REQUEST, "invalid_git_ref"),
                BuildError::InvalidPackage(_) => (StatusCode::BAD_REQUEST, "invalid_package"),
                BuildError::NotRedeployable(_) => (StatusCode::CONFLICT, "not_redeployable"),
                BuildError::NoSource(_) => (StatusCode::CONFLICT, "no_source"),
                BuildError::PreviewName(_) => (StatusCode::BAD_REQUEST, "invalid_name"),
                BuildError::Io { .. } | BuildError::Store(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal")
                }
            },
            ApiError::Remix(e) => match e {
                RemixError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                RemixError::Exists(_) => (StatusCode::CONFLICT, "conflict"),
                RemixError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
                _ => (StatusCode::BAD_REQUEST, "invalid_remix"),
            },
            ApiError::Provider(e) => match e {
                ProviderError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                ProviderError::Exists(_) | ProviderError::InUse { .. } => {
                    (StatusCode::CONFLICT, "conflict")
                }
                ProviderError::BadTimeout(_) | ProviderError::TooManyRetries(_) => {
                    (StatusCode::BAD_REQUEST, "invalid_provider")
                }
                ProviderError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
            ApiError::Agent(e) => match e {
                AgentError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                AgentError::Exists(_) => (StatusCode::CONFLICT, "conflict"),
                AgentError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
                _ => (StatusCode::BAD_REQUEST, "invalid_agent"),
            },
            ApiError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!("API request failed: {self}");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: self.to_string(),
            },
        };
        (status, Json(body)).into_response()
    }
}
