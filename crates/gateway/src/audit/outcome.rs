//! How a request ended, read from what the proxy recorded: a policy's denial, the gateway's own
//! refusal, the HTTP status, a cut stream, or the JSON-RPC reply at the start of the response
//! body.
//!
//! The body is only the first bytes of the response (a JSON body, or the start of an event
//! stream), so a reply may be cut anywhere: the scanner below reads JSON as far as it goes
//! instead of parsing it whole, which a truncated message would fail.

use http::Method;
use skyport_mcp::sse::Decoder;
use skyport_store::AuditOutcome;

use super::Exchange;

/// An outcome with the JSON-RPC error code that came with it, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Classified {
    /// How the request ended.
    pub(crate) outcome: AuditOutcome,
    /// The JSON-RPC error code, for errors that carry one.
    pub(crate) error_code: Option<i64>,
}

impl Classified {
    fn new(outcome: AuditOutcome, error_code: Option<i64>) -> Classified {
        Classified {
            outcome,
            error_code,
        }
    }
}

/// Classifies a finished exchange.
pub(crate) fn classify(exchange: &Exchange) -> Classified {
    if exchange.denied {
        return Classified::new(AuditOutcome::Denied, None);
    }
    if let Some(code) = exchange.refused {
        return Classified::new(AuditOutcome::Refused, Some(code));
    }
    // A GET is the server's event stream: it carries no reply, and it ends when either side
    // leaves, so only its status says anything.
    let reply = if exchange.http_method == Method::GET {
        None
    } else {
        reply_in(&exchange.response_head)
    };
    let error_code = match reply {
        Some(Reply::Error { code }) => code,
        _ => None,
    };
    if exchange.status >= 400 {
        return Classified::new(AuditOutcome::HttpError, error_code);
    }
    match reply {
        Some(Reply::Result { tool_error: false }) => Classified::new(AuditOutcome::Ok, None),
        Some(Reply::Result { tool_error: true }) => Classified::new(AuditOutcome::ToolError, None),
        // An error event ending a cut stream is the gateway's account of the cut.
        Some(Reply::Error { code }) if exchange.cut => Classified::new(AuditOutcome::Cut, code),
        Some(Reply::Error { code }) => Classified::new(AuditOutcome::RpcError, code),
        None if exchange.cut && exchange.http_method != Method::GET => {
            Classified::new(AuditOutcome::Cut, None)
        }
        None => Classified::new(AuditOutcome::Ok, None),
    }
}

/// The JSON-RPC reply a response body starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reply {
    /// A result; `tool_error` when it is a tool result with `isError: true`.
    Result { tool_error: bool },
    /// An error, with its code when it was read.
    Error { code: Option<i64> },
}

/// The reply in a JSON body, or in the first event of an event stream that holds one (events
/// before it may be notifications or requests from the server).
fn reply_in(body: &[u8]) -> Option<Reply> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
    if matches!(body[start], b'{' | b'[') {
        return scan(&body[start..]).reply();
    }
    let mut decoder = Decoder::default();
    let mut events = decoder.feed(body);
    // The body may stop in the middle of an event: end it, so its start can still be read.
    events.extend(decoder.feed(b"\n\n"));
    events
        .iter()
        .filter(|e| !e.data.is_empty())
        .find_map(|e| scan(e.data.as_bytes()).reply())
}

/// What a scan of a JSON-RPC message found at its top level (in any member of a batch).
#[derive(Debug, Default)]
struct Found {
    method: bool,
    result: bool,
    error: bool,
    error_code: Option<i64>,
    tool_error: bool,
}

impl Found {
    fn reply(&self) -> Option<Reply> {
        if self.method {
            return None;
        }
        if self.error {
            Some(Reply::Error {
                code: self.error_code,
            })
        } else if self.result {
            Some(Reply::Result {
                tool_error: self.tool_error,
            })
        } else {
            None
        }
    }
}

/// A container being read: objects remember their current key.
struct Frame<'a> {
    object: bool,
    key: Option<&'a [u8]>,
}

/// Reads JSON as far as it goes, noting the members a reply is told by. Arrays add nothing to
/// a member's path, so each message of a batch reads like a single message.
fn scan(json: &[u8]) -> Found {
    let mut found = Found::default();
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'{' => {
                stack.push(Frame {
                    object: true,
                    key: None,
                });
                expect_key = true;
                i += 1;
            }
            b'[' => {
                stack.push(Frame {
                    object: false,
                    key: None,
                });
                expect_key = false;
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
                i += 1;
            }
            b',' => {
                expect_key = stack.last().is_some_and(|f| f.object);
                i += 1;
            }
            b'"' => {
                let end = string_end(json, i + 1);
                let text = &json[i + 1..end.min(json.len())];
                i = end + 1;
                if expect_key {
                    expect_key = false;
                    if let Some(frame) = stack.last_mut() {
                        frame.key = Some(text);
                    }
                    note_key(&stack, &mut found);
                }
            }
            b if b.is_ascii_whitespace() || b == b':' => i += 1,
            _ => {
                let end = json[i..]
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                    .map_or(json.len(), |n| i + n);
                note_value(&stack, &json[i..end], &mut found);
                i = end;
            }
        }
    }
    found
}

/// The index of the quote closing a string whose text starts at `from` (the length of `json`
/// when the string is cut).
fn string_end(json: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < json.len() {
        match json[i] {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    json.len()
}

/// The keys of the objects enclosing the current position, outermost first.
fn path<'a>(stack: &[Frame<'a>]) -> impl Iterator<Item = &'a [u8]> {
    stack.iter().filter(|f| f.object).filter_map(|f| f.key)
}

fn note_key(stack: &[Frame<'_>], found: &mut Found) {
    let mut keys = path(stack);
    if let (Some(key), None) = (keys.next(), keys.next()) {
        match key {
            b"method" => found.method = true,
            b"result" => found.result = true,
            b"error" => found.error = true,
            _ => {}
        }
    }
}

fn note_value(stack: &[Frame<'_>], value: &[u8], found: &mut Found) {
    let keys: Vec<&[u8]> = path(stack).collect();
    match keys.as_slice() {
        [b"error", b"code"] if found.error_code.is_none() => {
            found.error_code = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        }
        [b"result", b"isError"] if value == b"true" => found.tool_error = true,
        _ => {}
    }
}
