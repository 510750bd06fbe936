//! Handing an instance's answer to the client in as few writes as the answer allows.
//!
//! An instance answers a POST with its head first and the body a moment later, and ends an
//! event stream with a chunk of its own after the JSON-RPC response. Relayed as they come, that
//! is three writes to the client and three wake-ups of the client for one answer. The gateway
//! holds the head until the first frame is there ([`Primed`]), and ends the client's stream as
//! soon as the response to the request went out ([`ends_with_answer`]): a server closes a POST's
//! stream after that response, so nothing of the stream is lost.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde::de::IgnoredAny;
use skyport_mcp::jsonrpc::Id;

/// A body error, as the gateway's response bodies report one.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body whose first frame was awaited before the head was handed over, so the
/// head and that frame (often the whole answer) leave in one write.
pub(crate) struct Primed<B> {
    /// The frame read ahead, not yet given out.
    first: Option<Result<Frame<Bytes>, BoxError>>,
    /// The body ended before giving any frame.
    ended: bool,
    rest: B,
}

impl<B> Primed<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    /// Waits up to `wait` for `body`'s first frame. A slow first frame (a long tool call) only
    /// lets the head go alone, as it would without priming.
    pub(crate) async fn prime(mut body: B, wait: Duration) -> Primed<B> {
        let (first, ended) = match tokio::time::timeout(wait, body.frame()).await {
            Ok(Some(frame)) => (Some(frame), false),
            Ok(None) => (None, true),
            Err(_) => (None, false),
        };
        Primed {
            first,
            ended,
            rest: body,
        }
    }
}

impl<B> Body for Primed<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(first));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        Pin::new(&mut this.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && (self.ended || self.rest.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        if self.ended {
            return SizeHint::with_exact(0);
        }
        let held = match &self.first {
            Some(Ok(frame)) => frame.data_ref().map_or(0, |data| data.len() as u64),
            Some(Err(_)) => return SizeHint::default(),
            None => 0,
        };
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + held);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

/// The fields of a message that tell a response to a request apart from anything else.
#[derive(Deserialize)]
struct Reply {
    id: Option<Id>,
    method: Option<IgnoredAny>,
    result: Option<IgnoredAny>,
    error: Option<IgnoredAny>,
}

/// Whether `chunk` of a POST's event stream ends with the JSON-RPC response to request `id`.
/// Only a chunk that ends exactly at the end of an event, whose data is one line, is looked
/// at: anything else is left for the stream's own end to close, which is never wrong, only
/// slower.
pub(crate) fn ends_with_answer(chunk: &[u8], id: &Id) -> bool {
    if !(chunk.ends_with(b"\n\n") || chunk.ends_with(b"\r\n\r\n")) {
        return false;
    }
    let mut data: Option<&[u8]> = None;
    let mut lines_of_data = 0;
    let mut lines = chunk.split(|&byte| byte == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            // The blank line after the last event is followed only by the split's empty tail.
            if lines.peek().is_some_and(|next| !next.is_empty()) {
                data = None;
                lines_of_data = 0;
            }
            continue;
        }
        if let Some(value) = line.strip_prefix(b"data:") {
            data = Some(value.strip_prefix(b" ").unwrap_or(value));
            lines_of_data += 1;
        }
    }
    let Some(data) = data.filter(|_| lines_of_data == 1) else {
        return false;
    };
    serde_json::from_slice::<Reply>(data).is_ok_and(|reply| {
        reply.method.is_none()
            && (reply.result.is_some() || reply.error.is_some())
            && reply.id.as_ref() == Some(id)
    })
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    fn answers(chunk: &str, id: i64) -> bool {
        ends_with_answer(chunk.as_bytes(), &Id::Number(id))
    }

    #[test]
    fn the_response_to_the_request_ends_the_stream() {
        let event = "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\r\n\r\n";
        assert!(answers(event, 7));
        assert!(answers(
            "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":1,\"message\":\"x\"}}\n\n",
            7
        ));
        let string_id = "data: {\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":1}\n\n";
        assert!(ends_with_answer(
            string_id.as_bytes(),
            &Id::String("a".into())
        ));
        // A notification first, the answer last, in one chunk.
        let both = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n\
                    event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n";
        assert!(answers(both, 7));
    }

    #[test]
    fn anything_else_leaves_the_stream_open() {
        // Another request's response, a notification, a server-to-client request with the
        // same id, an event cut mid-way, data over two lines, an answer followed by more.
        assert!(!answers(
            "data: {\"jsonrpc\":\"2.0\",\"id\":8,\"result\":{}}\n\n",
            7
        ));
        assert!(!answers(
            "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n",
            7
        ));
        assert!(!answers(
            "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"sampling/createMessage\",\"params\":{}}\n\n",
            7
        ));
        assert!(!answers("data: {\"jsonrpc\":\"2.0\",\"id\":7,\"res", 7));
        assert!(!answers(
            "data: {\"jsonrpc\":\"2.0\",\ndata: \"id\":7,\"result\":{}}\n\n",
            7
        ));
        assert!(!answers(
            "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n",
            7
        ));
        assert!(!answers(": keepalive\n\n", 7));
        assert!(!answers("data: not json\n\n", 7));
    }

    fn body(chunks: Vec<&'static str>) -> impl Body<Data = Bytes, Error = BoxError> + Unpin + Send {
        let frames = chunks
            .into_iter()
            .map(|chunk| Ok::<_, BoxError>(Frame::data(Bytes::from(chunk))));
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_primed_body_gives_every_frame_in_order_and_its_size() {
        let primed = Primed::prime(body(vec!["ab", "cd"]), Duration::from_secs(1)).await;
        assert!(!primed.is_end_stream());
        let collected = primed.collect().await.map(|c| c.to_bytes());
        assert_eq!(collected.ok(), Some(Bytes::from("abcd")));

        let empty = Primed::prime(body(vec![]), Duration::from_secs(1)).await;
        assert!(empty.is_end_stream());
        assert_eq!(empty.size_hint().exact(), Some(0));

        let exact = http_body_util::Full::new(Bytes::from("hello"))
            .map_err(|never| -> BoxError { match never {} });
        let primed = Primed::prime(exact, Duration::from_secs(1)).await;
        assert_eq!(primed.size_hint().exact(), Some(5));
    }

    #[tokio::test]
    async fn a_slow_first_frame_lets_the_head_go_alone() {
        let (send, receive) = tokio::sync::oneshot::channel::<&'static str>();
        let late = futures_util::stream::once(async move {
            let text = receive.await.unwrap_or_default();
            Ok::<_, BoxError>(Frame::data(Bytes::from(text)))
        });
        let primed =
            Primed::prime(Box::pin(StreamBody::new(late)), Duration::from_millis(20)).await;
        assert!(primed.first.is_none() && !primed.ended);
        assert!(send.send("late").is_ok());
        let collected = primed.collect().await.map(|c| c.to_bytes());
        assert_eq!(collected.ok(), Some(Bytes::from("late")));
    }
}
