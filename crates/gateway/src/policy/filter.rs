//! What a policy does to messages: which requests it judges, the answer a denied request
//! gets, and the rewriting of list responses.
//!
//! A denied request is answered exactly as FastMCP answers a name it does not know (checked
//! against FastMCP 4.2 over HTTP): a `tools/call` gets a tool result with `isError: true` and
//! the text `Unknown tool: 'NAME'`; `prompts/get` the JSON-RPC error -32602 `Unknown prompt:
//! 'NAME'`; `resources/read` and `resources/subscribe` -32602 `Resource not found: 'URI'`
//! with the URI in `data`. The name is quoted the way Python's `repr` quotes a string. So a
//! client cannot tell a denied capability from one that does not exist. A
//! `completion/complete` for a denied prompt or resource template gets an empty completion,
//! as a completion handler answers for a reference it does not know.
//!
//! List responses are rewritten in the framing they came in: a JSON body is parsed and
//! written again; in an event stream, only the event carrying the list's result is rewritten
//! (its `event:` and `id:` lines kept), every other event (notifications, comments) passes
//! byte for byte. A body that carries no list, or from which nothing was dropped, is kept as
//! it came.

use serde_json::{Value, json};
use skyport_mcp::jsonrpc::{Envelope, Id, Reference};
use skyport_mcp::sse;
use skyport_store::CapabilityKind;

use super::Decider;

/// The JSON-RPC code FastMCP answers unknown prompts and resources with (invalid params).
const INVALID_PARAMS: i64 = -32602;

/// What a policy makes of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Judgement {
    /// Forward it untouched.
    Pass,
    /// Answer it without the server, as [`denial`] says.
    Deny(Refusal),
    /// Forward it, and drop the denied entries from the list in its answer.
    Filter(CapabilityKind),
}

/// How a denied request is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// As the server answers an unknown name of this kind.
    Unknown(CapabilityKind),
    /// With no completions: a completion handler answers so for what it does not know.
    NoCompletions,
}

/// How `decider` judges the request `envelope`.
pub(crate) fn judge(decider: &Decider, envelope: &Envelope) -> Judgement {
    let Some(method) = envelope.method.as_deref() else {
        return Judgement::Pass;
    };
    let call = match method {
        "tools/call" => Some(CapabilityKind::Tool),
        "prompts/get" => Some(CapabilityKind::Prompt),
        "resources/read" | "resources/subscribe" => Some(CapabilityKind::Resource),
        _ => None,
    };
    if let Some(kind) = call {
        return match &envelope.target {
            Some(name) if !decider.permits(kind, name) => Judgement::Deny(Refusal::Unknown(kind)),
            _ => Judgement::Pass,
        };
    }
    // Completing a denied prompt's or template's arguments would reveal what it offers.
    if let (Some(reference), Some(name)) = (envelope.completes, &envelope.target) {
        let kind = match reference {
            Reference::Prompt => CapabilityKind::Prompt,
            Reference::ResourceTemplate => CapabilityKind::Template,
        };
        return if decider.permits(kind, name) {
            Judgement::Pass
        } else {
            Judgement::Deny(Refusal::NoCompletions)
        };
    }
    let list = match method {
        "tools/list" => CapabilityKind::Tool,
        "prompts/list" => CapabilityKind::Prompt,
        "resources/list" => CapabilityKind::Resource,
        "resources/templates/list" => CapabilityKind::Template,
        _ => return Judgement::Pass,
    };
    if decider.governs(list) {
        Judgement::Filter(list)
    } else {
        Judgement::Pass
    }
}

/// A denied request's answer, as a JSON-RPC response body; `stateless` adds what the
/// 2026-07-28 revision's results carry. Whether it is an error (which a stateless server sends
/// with HTTP 400) is the second value.
pub(crate) fn denial(
    refusal: Refusal,
    name: &str,
    id: Option<&Id>,
    stateless: bool,
) -> (Vec<u8>, bool) {
    let quoted = python_repr(name);
    let kind = match refusal {
        Refusal::Unknown(kind) => kind,
        Refusal::NoCompletions => {
            let mut result = json!({"completion": {"values": [], "total": 0, "hasMore": false}});
            if stateless {
                result["resultType"] = json!("complete");
            }
            let body = json!({"jsonrpc": "2.0", "id": id, "result": result});
            return (body.to_string().into_bytes(), false);
        }
    };
    let (body, error) = match kind {
        CapabilityKind::Tool => {
            let mut result = json!({
                "content": [{"type": "text", "text": format!("Unknown tool: {quoted}")}],
                "isError": true,
            });
            if stateless {
                result["resultType"] = json!("complete");
            }
            (json!({"jsonrpc": "2.0", "id": id, "result": result}), false)
        }
        CapabilityKind::Prompt => (
            json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": INVALID_PARAMS,
                "message": format!("Unknown prompt: {quoted}"),
            }}),
            true,
        ),
        CapabilityKind::Resource | CapabilityKind::Template => (
            json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": INVALID_PARAMS,
                "message": format!("Resource not found: {quoted}"),
                "data": {"uri": name},
            }}),
            true,
        ),
    };
    (body.to_string().into_bytes(), error)
}

/// `text` as Python's `repr` shows a string: in single quotes unless it holds a single quote
/// and no double one, with backslashes, the quote and control characters escaped.
fn python_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// The list member of a result, and the member of each entry the name is read from.
fn list_fields(kind: CapabilityKind) -> (&'static str, &'static str) {
    match kind {
        CapabilityKind::Tool => ("tools", "name"),
        CapabilityKind::Prompt => ("prompts", "name"),
        CapabilityKind::Resource => ("resources", "uri"),
        CapabilityKind::Template => ("resourceTemplates", "uriTemplate"),
    }
}

/// A list response's body with the entries of `kind` that `decider` denies dropped, or
/// `None` when nothing was dropped (or it holds no list). `streamed` says the body is an
/// event stream rather than JSON.
pub fn filter_list(
    body: &[u8],
    streamed: bool,
    decider: &Decider,
    kind: CapabilityKind,
) -> Option<Vec<u8>> {
    if streamed {
        filter_event_stream(body, decider, kind)
    } else {
        let mut message: Value = serde_json::from_slice(body).ok()?;
        retain_permitted(&mut message, decider, kind).then(|| message.to_string().into_bytes())
    }
}

/// Drops the denied entries of the list in `message`'s result; whether any was dropped. An
/// entry without a readable name cannot be judged and is dropped too (failing closed).
fn retain_permitted(message: &mut Value, decider: &Decider, kind: CapabilityKind) -> bool {
    if !decider.governs(kind) {
        return false;
    }
    let (list, field) = list_fields(kind);
    let Some(Value::Array(entries)) = message.get_mut("result").and_then(|r| r.get_mut(list))
    else {
        return false;
    };
    let before = entries.len();
    entries.retain(|entry| {
        entry
            .get(field)
            .and_then(Value::as_str)
            .is_some_and(|name| decider.permits(kind, name))
    });
    entries.len() != before
}

/// Rewrites the event of an event stream that carries a list result; the other events pass
/// as they came.
fn filter_event_stream(body: &[u8], decider: &Decider, kind: CapabilityKind) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    let mut changed = false;
    let mut start = 0;
    while start < body.len() {
        let end = event_end(body, start);
        let event = &body[start..end];
        match rewritten(event, decider, kind) {
            Some(rewritten) => {
                out.extend_from_slice(&rewritten);
                changed = true;
            }
            None => out.extend_from_slice(event),
        }
        start = end;
    }
    changed.then_some(out)
}

/// Where the event starting at `start` ends: after the blank line that closes it, or at the
/// end of the body.
fn event_end(body: &[u8], start: usize) -> usize {
    let mut line_start = start;
    while line_start < body.len() {
        let line_end = body[line_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |n| line_start + n + 1);
        let line = &body[line_start..line_end];
        let blank = matches!(line, b"\n" | b"\r\n");
        line_start = line_end;
        if blank && line_start > start + line.len() {
            return line_start;
        }
    }
    body.len()
}

/// The event with its list filtered, when it carries a list result and something was dropped.
fn rewritten(event: &[u8], decider: &Decider, kind: CapabilityKind) -> Option<Vec<u8>> {
    let mut decoded = sse::Decoder::default().feed(event);
    if decoded.len() != 1 {
        return None;
    }
    let data = std::mem::take(&mut decoded[0].data);
    let mut message: Value = serde_json::from_str(&data).ok()?;
    if !retain_permitted(&mut message, decider, kind) {
        return None;
    }
    let data = message.to_string();
    // The event's own lines, with its data lines replaced by one holding the new message.
    let text = std::str::from_utf8(event).ok()?;
    let mut out = String::with_capacity(data.len() + 64);
    let mut wrote_data = false;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\r', '\n']);
        if bare == "data" || bare.starts_with("data:") {
            if !wrote_data {
                out.push_str("data: ");
                out.push_str(&data);
                out.push('\n');
                wrote_data = true;
            }
        } else {
            out.push_str(line);
        }
    }
    Some(out.into_bytes())
}
