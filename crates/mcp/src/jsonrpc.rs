//! JSON-RPC 2.0 as far as a proxy needs it: the method and id of each message in a body, and
//! error responses that carry the id of the request they answer.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Error codes used by Skyport. The -32000..-32099 range is reserved by JSON-RPC for servers.
pub mod codes {
    /// The body is not valid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON is not a JSON-RPC message.
    pub const INVALID_REQUEST: i64 = -32600;
    /// Skyport failed internally; details are in its logs.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// No server, session or deployment matches the request.
    pub const NOT_FOUND: i64 = -32001;
    /// The server exists but cannot take requests now (no live deployment, failed start).
    pub const UNAVAILABLE: i64 = -32002;
    /// The request body is larger than the gateway accepts.
    pub const TOO_LARGE: i64 = -32003;
    /// The request was refused by a gateway rule (host check, authentication).
    pub const FORBIDDEN: i64 = -32004;
    /// The request did not finish within the gateway's request timeout.
    pub const TIMEOUT: i64 = -32010;
}

/// A JSON-RPC request id: a number or a string (null ids are not requests).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Id {
    /// A numeric id.
    Number(i64),
    /// A string id.
    String(String),
}

/// The `_meta` key carrying a stateless-era (2026-07-28) request's protocol revision.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

/// The parts of one JSON-RPC message a proxy looks at; the rest of the message is not kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// Present on requests and notifications, absent on responses.
    pub method: Option<String>,
    /// Present on requests and responses, absent on notifications.
    pub id: Option<Id>,
    /// What the request acts on: `params.name` (a tool or prompt) or `params.uri` (a resource;
    /// always the URI for `resources/*` methods); for `completion/complete`, the name or URI
    /// template of `params.ref`.
    pub target: Option<String>,
    /// For `completion/complete`, what kind of thing `target` names.
    pub completes: Option<Reference>,
    /// The protocol revision in `params._meta`, which stateless-era requests carry.
    pub meta_version: Option<String>,
}

impl Envelope {
    /// Whether this message is the `initialize` request that opens a session.
    pub fn is_initialize(&self) -> bool {
        self.method.as_deref() == Some("initialize") && self.id.is_some()
    }
}

/// What a `completion/complete` request asks to complete the arguments of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reference {
    /// A prompt (`ref/prompt`), by name.
    Prompt,
    /// A resource template (`ref/resource`), by URI template.
    ResourceTemplate,
}

/// What an HTTP POST body holds: one message or a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A single message.
    Single(Envelope),
    /// A JSON array of messages (allowed by the 2025-03-26 revision).
    Batch(Vec<Envelope>),
}

impl Body {
    /// Reads the envelopes of a POST body without parsing params or results.
    pub fn parse(bytes: &[u8]) -> Result<Body, ParseError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| ParseError::Json {
            detail: e.to_string(),
        })?;
        match value {
            Value::Array(items) if items.is_empty() => Err(ParseError::EmptyBatch),
            Value::Array(items) => items
                .into_iter()
                .map(envelope)
                .collect::<Result<_, _>>()
                .map(Body::Batch),
            other => envelope(other).map(Body::Single),
        }
    }

    /// The messages of the body, in order.
    pub fn envelopes(&self) -> &[Envelope] {
        match self {
            Body::Single(envelope) => std::slice::from_ref(envelope),
            Body::Batch(envelopes) => envelopes,
        }
    }

    /// The id of the first request in the body, for error responses about the whole body.
    pub fn first_id(&self) -> Option<&Id> {
        self.envelopes().iter().find_map(|e| e.id.as_ref())
    }

    /// Whether the body is a single `initialize` request.
    pub fn is_initialize(&self) -> bool {
        matches!(self, Body::Single(e) if e.is_initialize())
    }
}

fn envelope(value: Value) -> Result<Envelope, ParseError> {
    let Value::Object(mut message) = value else {
        return Err(ParseError::NotAMessage);
    };
    let method = match message.remove("method") {
        None | Some(Value::Null) => None,
        Some(Value::String(method)) => Some(method),
        Some(_) => return Err(ParseError::NotAMessage),
    };
    let id = match message.remove("id") {
        None | Some(Value::Null) => None,
        Some(id) => Some(serde_json::from_value(id).map_err(|_| ParseError::NotAMessage)?),
    };
    let params = message.get("params");
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
    let about_resource = method
        .as_deref()
        .is_some_and(|m| m.starts_with("resources/"));
    let reference = params
        .filter(|_| method.as_deref() == Some("completion/complete"))
        .and_then(|p| p.get("ref"))
        .and_then(|r| match r.get("type").and_then(Value::as_str) {
            Some("ref/prompt") => Some((Reference::Prompt, text(r.get("name")))),
            Some("ref/resource") => Some((Reference::ResourceTemplate, text(r.get("uri")))),
            _ => None,
        });
    let (completes, target) = match reference {
        Some((kind, target)) => (Some(kind), target),
        None => (None, target(params, about_resource)),
    };
    let meta_version = text(
        params
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get(META_PROTOCOL_VERSION)),
    );
    Ok(Envelope {
        method,
        id,
        target,
        completes,
        meta_version,
    })
}

/// What a request that is not a completion acts on. A resource request is about its URI
/// whatever else its params hold: a `name` beside it must not stand in for it (policies judge
/// the target).
fn target(params: Option<&Value>, about_resource: bool) -> Option<String> {
    let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
    params.and_then(|p| {
        if about_resource {
            text(p.get("uri"))
        } else {
            text(p.get("name")).or_else(|| text(p.get("uri")))
        }
    })
}

/// Why a body is not JSON-RPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not valid JSON.
    Json {
        /// serde_json's description of the problem.
        detail: String,
    },
    /// Valid JSON that is not a JSON-RPC message object.
    NotAMessage,
    /// An empty JSON array.
    EmptyBatch,
}

impl ParseError {
    /// The JSON-RPC code for this problem.
    pub fn code(&self) -> i64 {
        match self {
            ParseError::Json { .. } => codes::PARSE_ERROR,
            ParseError::NotAMessage | ParseError::EmptyBatch => codes::INVALID_REQUEST,
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Json { detail } => {
                write!(f, "the request body is not valid JSON: {detail}")
            }
            ParseError::NotAMessage => {
                f.write_str("the request body is not a JSON-RPC 2.0 message object")
            }
            ParseError::EmptyBatch => f.write_str("the request body is an empty JSON-RPC batch"),
        }
    }
}

impl std::error::Error for ParseError {}

/// A JSON-RPC error response body.
pub fn error_body(id: Option<&Id>, code: i64, message: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": code, "message": message },
    });
    body.to_string().into_bytes()
}

#[cfg(test)]
mod tests;
