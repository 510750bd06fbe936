//! The little of a JSON-RPC message the bridge reads: its `id` (as the raw JSON text, so that
//! `1` and `"1"` stay different keys) and its `method`. Session-era messages pass as the text
//! they came in; only stateless-era requests, which the bridge translates for a server in a
//! handshake-era session, are rewritten.

use serde::Deserialize;
use serde_json::value::RawValue;

/// The routing fields of one JSON-RPC message, borrowed from its text.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope<'a> {
    /// The id as written; absent for notifications.
    #[serde(borrow, default)]
    pub(crate) id: Option<&'a RawValue>,
    /// The method; absent for responses.
    #[serde(borrow, default)]
    pub(crate) method: Option<&'a str>,
}

/// What a message is, for routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// It has a method and an id: it wants an answer.
    Request,
    /// It has a method and no id.
    Notification,
    /// It has an id and no method: the answer to a request.
    Response,
}

impl<'a> Envelope<'a> {
    /// Reads the routing fields of `text`, which must be one JSON object.
    pub(crate) fn parse(text: &'a str) -> Result<Envelope<'a>, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// What the message is; `None` for an object that is none of the three.
    pub(crate) fn kind(&self) -> Option<Kind> {
        match (self.method, self.id) {
            (Some(_), Some(_)) => Some(Kind::Request),
            (Some(_), None) => Some(Kind::Notification),
            (None, Some(_)) => Some(Kind::Response),
            (None, None) => None,
        }
    }

    /// The id's JSON text (`null` for none).
    pub(crate) fn id_text(&self) -> &'a str {
        self.id.map_or("null", RawValue::get)
    }
}

/// The `_meta` keys of the 2026-07-28 per-request envelope. A server initialized in the
/// handshake era refuses requests that carry them, and has what they say from `initialize`.
const ENVELOPE_KEYS: [&str; 4] = [
    "io.modelcontextprotocol/protocolVersion",
    "io.modelcontextprotocol/clientInfo",
    "io.modelcontextprotocol/clientCapabilities",
    "io.modelcontextprotocol/logLevel",
];

/// A stateless-era request rewritten for a server in a handshake-era session: the id
/// replaced by `id` (JSON text) and the per-request envelope taken out of `params._meta`
/// (other `_meta` keys, such as a progress token, stay).
pub(crate) fn for_handshake_era(text: &str, id: &str) -> Result<String, serde_json::Error> {
    let mut message: serde_json::Value = serde_json::from_str(text)?;
    message["id"] = serde_json::from_str(id)?;
    if let Some(params) = message.get_mut("params").and_then(|p| p.as_object_mut())
        && let Some(meta) = params.get_mut("_meta").and_then(|m| m.as_object_mut())
    {
        for key in ENVELOPE_KEYS {
            meta.remove(key);
        }
        if meta.is_empty() {
            params.remove("_meta");
        }
    }
    serde_json::to_string(&message)
}

/// Methods whose 2026-07-28 results carry caching directives (`ttlMs`, `cacheScope`).
const CACHEABLE: [&str; 6] = [
    "server/discover",
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

/// A handshake-era server's answer to `method` rewritten for a stateless-era client: the
/// client's id `id` (JSON text) back in place, and the fields 2026-07-28 results must carry
/// that older servers do not write: `resultType` (`complete`: such a server never asks for
/// input this way) and, for cacheable results, "do not cache, do not share" (`ttlMs` 0,
/// `cacheScope` private), which is what the SDKs default to.
pub(crate) fn for_stateless_client(
    text: &str,
    id: &str,
    method: &str,
) -> Result<String, serde_json::Error> {
    let mut message: serde_json::Value = serde_json::from_str(text)?;
    message["id"] = serde_json::from_str(id)?;
    if let Some(result) = message.get_mut("result").and_then(|r| r.as_object_mut()) {
        stamp_result(result, method);
    }
    serde_json::to_string(&message)
}

/// The shared process's answer with the client's id `id` (JSON text) back in place.
pub(crate) fn with_id(text: &str, id: &str) -> Result<String, serde_json::Error> {
    let mut message: serde_json::Value = serde_json::from_str(text)?;
    message["id"] = serde_json::from_str(id)?;
    serde_json::to_string(&message)
}

/// Adds what a 2026-07-28 result of `method` must carry and `result` lacks.
pub(crate) fn stamp_result(result: &mut serde_json::Map<String, serde_json::Value>, method: &str) {
    result
        .entry("resultType")
        .or_insert_with(|| serde_json::Value::from("complete"));
    if CACHEABLE.contains(&method) {
        result
            .entry("ttlMs")
            .or_insert_with(|| serde_json::Value::from(0));
        result
            .entry("cacheScope")
            .or_insert_with(|| serde_json::Value::from("private"));
    }
}

/// A JSON-RPC error answering the request whose id is `id` (JSON text).
pub(crate) fn error_response(id: &str, code: i64, message: &str) -> String {
    let message = serde_json::Value::String(message.to_owned());
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message}}}}}"#)
}

#[cfg(test)]
mod tests;
