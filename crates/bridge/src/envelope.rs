//! The little of a JSON-RPC message the bridge reads: its `id` (as the raw JSON text, so that
//! `1` and `"1"` stay different keys) and its `method`. Messages are never re-serialized: an id
//! the bridge must change is spliced into the original text.

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

/// `text` with its message id (`raw`, which must be a slice of `text`) replaced by `with`.
pub(crate) fn replace_id(text: &str, raw: &RawValue, with: &str) -> Option<String> {
    let start = (raw.get().as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let end = start.checked_add(raw.get().len())?;
    let (before, after) = (text.get(..start)?, text.get(end..)?);
    Some([before, with, after].concat())
}

/// A JSON-RPC error answering the request whose id is `id` (JSON text).
pub(crate) fn error_response(id: &str, code: i64, message: &str) -> String {
    let message = serde_json::Value::String(message.to_owned());
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message}}}}}"#)
}

#[cfg(test)]
mod tests;
