//! Clients of the model APIs: one request per step of a turn, streamed. The two wire formats
//! (`openai.rs`, `anthropic.rs`) are pure: a request body built from the neutral messages, and
//! a parser fed the stream's events. This file owns what they share: the HTTP exchange,
//! timeouts, retries and the wording of errors.
//!
//! Retries happen only before anything was streamed (a connection refused, a 429, a 5xx), so
//! a person never sees text twice. A provider's API key goes into one header and nowhere
//! else: not into errors (an answer quoting it has it replaced), logs or `Debug`.

mod anthropic;
mod openai;

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use skyport_mcp::sse;

use crate::message::{Message, ToolCall, ToolSpec};

/// The longest wait between two attempts, whatever the provider asks for.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The first wait between two attempts; it doubles with each.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// How much of an error body is quoted.
const QUOTED: usize = 500;

/// Which API a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenAI-compatible Chat Completions (`POST {base}/chat/completions`).
    OpenAi,
    /// The Anthropic Messages API (`POST {base}/v1/messages`).
    Anthropic,
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
        })
    }
}

impl FromStr for ProviderKind {
    type Err = String;

    fn from_str(text: &str) -> Result<ProviderKind, String> {
        match text {
            "openai" => Ok(ProviderKind::OpenAi),
            "anthropic" => Ok(ProviderKind::Anthropic),
            other => Err(format!(
                "unknown provider kind `{other}`: use `openai` (any OpenAI-compatible API) or `anthropic`"
            )),
        }
    }
}

/// How to reach one provider.
#[derive(Clone)]
pub struct ProviderConfig {
    /// Its name in Skyport (for messages).
    pub name: String,
    /// Its API.
    pub kind: ProviderKind,
    /// Its base URL, e.g. `https://api.openai.com/v1` or `https://api.anthropic.com`.
    pub base_url: String,
    /// Its API key; none for local endpoints that take none.
    pub api_key: Option<String>,
    /// Bound on connecting, on the first byte of an answer, and on each pause in its stream.
    pub timeout: Duration,
    /// Further attempts after a failure that allows one.
    pub retries: u32,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

impl ProviderConfig {
    /// `provider `NAME` (KIND at URL)`, how errors name it.
    fn describe(&self) -> String {
        format!(
            "provider `{}` ({} at {})",
            self.name, self.kind, self.base_url
        )
    }
}

/// Why a model request failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Nothing answered at the address.
    #[error("{provider} cannot be reached: {detail}; check its base URL and that it is running")]
    Unreachable {
        /// The provider, described.
        provider: String,
        /// What the connection reported.
        detail: String,
    },
    /// It answered with an HTTP error.
    #[error("{provider} answered {status}: {message}")]
    Status {
        /// The provider, described.
        provider: String,
        /// The HTTP status.
        status: u16,
        /// Its error message.
        message: String,
    },
    /// It did not start answering in time.
    #[error(
        "{provider} did not answer within {seconds} s; try again, or raise the provider's timeout"
    )]
    Timeout {
        /// The provider, described.
        provider: String,
        /// The bound.
        seconds: u64,
    },
    /// Its stream paused for too long.
    #[error(
        "{provider} stopped sending for {seconds} s in the middle of an answer; try again, or raise the provider's timeout"
    )]
    Stalled {
        /// The provider, described.
        provider: String,
        /// The bound.
        seconds: u64,
    },
    /// Its stream reported an error.
    #[error("{provider} reported an error while answering: {message}")]
    Reported {
        /// The provider, described.
        provider: String,
        /// Its message.
        message: String,
    },
    /// Its stream was not what its API promises.
    #[error("{provider} sent an answer that cannot be read: {detail}; is it really {kind}?")]
    Malformed {
        /// The provider, described.
        provider: String,
        /// Its kind.
        kind: ProviderKind,
        /// What was wrong.
        detail: String,
    },
}

/// One model request: the step of a turn.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The model's name.
    pub model: &'a str,
    /// The agent's instructions (the system prompt); empty for none.
    pub system: &'a str,
    /// The conversation so far.
    pub messages: &'a [Message],
    /// The tools offered.
    pub tools: &'a [ToolSpec],
}

/// Why the model stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// It finished its answer.
    End,
    /// It wants tool results.
    ToolUse,
    /// It ran out of output tokens.
    Length,
    /// Another reason, as the provider named it.
    Other(String),
}

/// A whole answer of the model, after its stream ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// Its text.
    pub text: String,
    /// The tools it asks to call, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped.
    pub stop: StopReason,
}

/// A client of one provider.
#[derive(Clone, Debug)]
pub struct Provider {
    config: ProviderConfig,
    http: reqwest::Client,
}

/// What a stream parser could not accept.
#[derive(Debug)]
enum Fault {
    /// The provider said something went wrong.
    Reported(String),
    /// The stream broke its API's rules.
    Malformed(String),
}

/// The format-specific half of reading a stream.
enum Parser {
    OpenAi(openai::Parser),
    Anthropic(anthropic::Parser),
}

impl Parser {
    /// Takes one event; `Ok(true)` once the answer is complete.
    fn event(
        &mut self,
        event: &sse::Event,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<bool, Fault> {
        match self {
            Parser::OpenAi(p) => p.event(&event.data, on_text),
            Parser::Anthropic(p) => p.event(&event.event, &event.data, on_text),
        }
    }

    /// The answer, once the stream ended (whether or not it said it was complete).
    fn finish(self) -> Result<Reply, Fault> {
        match self {
            Parser::OpenAi(p) => p.finish(),
            Parser::Anthropic(p) => p.finish(),
        }
    }
}

impl Provider {
    /// A client for `config`. Every provider shares one HTTP client, so connections (and TLS
    /// sessions) to a model API are kept between turns; the provider's timeout is applied per
    /// request, which bounds connecting too.
    pub fn new(config: ProviderConfig) -> Provider {
        static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
        let http = HTTP
            .get_or_init(|| {
                // reqwest is built without a default TLS provider; install ring once (a
                // second install, by another crate, fails harmlessly).
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::new()
            })
            .clone();
        Provider { config, http }
    }

    /// What this client was made with.
    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// Sends `request` and reads the streamed answer, handing each piece of text to
    /// `on_text` as it arrives.
    pub async fn stream(
        &self,
        request: &Request<'_>,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Reply, ProviderError> {
        let mut response = self.send(request).await?;
        let mut decoder = sse::Decoder::default();
        let mut parser = match self.config.kind {
            ProviderKind::OpenAi => Parser::OpenAi(openai::Parser::default()),
            ProviderKind::Anthropic => Parser::Anthropic(anthropic::Parser::default()),
        };
        loop {
            let chunk = tokio::time::timeout(self.config.timeout, response.chunk())
                .await
                .map_err(|_| ProviderError::Stalled {
                    provider: self.config.describe(),
                    seconds: self.config.timeout.as_secs(),
                })?
                .map_err(|e| self.fault(Fault::Malformed(format!("the stream broke: {e}"))))?;
            let Some(bytes) = chunk else {
                return parser.finish().map_err(|f| self.fault(f));
            };
            for event in decoder.feed(&bytes) {
                if parser.event(&event, on_text).map_err(|f| self.fault(f))? {
                    return parser.finish().map_err(|f| self.fault(f));
                }
            }
        }
    }

    /// The request's answer once its status is a success, retrying what may be retried.
    async fn send(&self, request: &Request<'_>) -> Result<reqwest::Response, ProviderError> {
        let (url, body) = match self.config.kind {
            ProviderKind::OpenAi => (
                format!("{}/chat/completions", self.base()),
                openai::body(request),
            ),
            ProviderKind::Anthropic => (
                format!("{}/v1/messages", self.base()),
                anthropic::body(request),
            ),
        };
        let mut attempt = 0;
        loop {
            let wait = match self.attempt(&url, &body).await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let retry_after = retry_after(&response);
                    if !retryable(status) || attempt >= self.config.retries {
                        return Err(self.status_error(response).await);
                    }
                    retry_after.unwrap_or_else(|| backoff(attempt))
                }
                Err(error) if attempt < self.config.retries && error.is_unreachable() => {
                    backoff(attempt)
                }
                Err(error) => return Err(self.send_error(error)),
            };
            tokio::time::sleep(wait.min(MAX_BACKOFF)).await;
            attempt += 1;
        }
    }

    /// One POST, bounded by the timeout until its headers arrived.
    async fn attempt(&self, url: &str, body: &Value) -> Result<reqwest::Response, SendError> {
        let mut post = self
            .http
            .post(url)
            .header("accept", "text/event-stream")
            .json(body);
        match (self.config.kind, &self.config.api_key) {
            (ProviderKind::OpenAi, Some(key)) => post = post.bearer_auth(key),
            (ProviderKind::Anthropic, key) => {
                post = post.header("anthropic-version", "2023-06-01");
                if let Some(key) = key {
                    post = post.header("x-api-key", key);
                }
            }
            (ProviderKind::OpenAi, None) => {}
        }
        match tokio::time::timeout(self.config.timeout, post.send()).await {
            Err(_) => Err(SendError::Timeout),
            Ok(Err(e)) if e.is_connect() => Err(SendError::Connect(e)),
            Ok(Err(e)) if e.is_timeout() => Err(SendError::Timeout),
            Ok(Err(e)) => Err(SendError::Other(e)),
            Ok(Ok(response)) => Ok(response),
        }
    }

    fn base(&self) -> &str {
        self.config.base_url.trim_end_matches('/')
    }

    fn send_error(&self, error: SendError) -> ProviderError {
        let provider = self.config.describe();
        match error {
            SendError::Timeout => ProviderError::Timeout {
                provider,
                seconds: self.config.timeout.as_secs(),
            },
            SendError::Connect(e) | SendError::Other(e) => ProviderError::Unreachable {
                provider,
                detail: self.redact(&source_chain(&e)),
            },
        }
    }

    async fn status_error(&self, response: reqwest::Response) -> ProviderError {
        let status = response.status().as_u16();
        let body = tokio::time::timeout(self.config.timeout, response.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        ProviderError::Status {
            provider: self.config.describe(),
            status,
            message: self.redact(&error_message(&body)),
        }
    }

    fn fault(&self, fault: Fault) -> ProviderError {
        let provider = self.config.describe();
        match fault {
            Fault::Reported(message) => ProviderError::Reported {
                provider,
                message: self.redact(&message),
            },
            Fault::Malformed(detail) => ProviderError::Malformed {
                provider,
                kind: self.config.kind,
                detail: self.redact(&detail),
            },
        }
    }

    /// `text` without the API key, should the provider have quoted it.
    fn redact(&self, text: &str) -> String {
        match &self.config.api_key {
            Some(key) if !key.is_empty() => text.replace(key.as_str(), "[redacted]"),
            _ => text.to_owned(),
        }
    }
}

/// Why one POST got no answer.
enum SendError {
    Connect(reqwest::Error),
    Timeout,
    Other(reqwest::Error),
}

impl SendError {
    fn is_unreachable(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }
}

/// Statuses worth another attempt: rate limits and the provider's own failures.
fn retryable(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// The wait before attempt `attempt + 1`: 0.5 s doubling.
fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1 << attempt.min(6))
}

/// `Retry-After` in seconds (the date form is not used by model APIs).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get("retry-after")?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The message of an error body: `error.message` (both APIs), else the start of the text.
fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed.as_ref().and_then(|v| {
        v["error"]["message"]
            .as_str()
            .or_else(|| v["error"].as_str())
            .or_else(|| v["message"].as_str())
    });
    match message {
        Some(message) => message.to_owned(),
        None if body.trim().is_empty() => "(no body)".to_owned(),
        None => body.trim().chars().take(QUOTED).collect(),
    }
}

/// An error and its causes, which say what actually failed (refused, DNS, TLS).
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Tool-call arguments streamed as JSON text: the value, `{}` for nothing, or the text
/// itself when it is not JSON (the loop answers such a call with an error, without running it).
fn arguments(text: &str) -> Value {
    if text.trim().is_empty() {
        return Value::Object(serde_json::Map::new());
    }
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

#[cfg(test)]
mod tests;
