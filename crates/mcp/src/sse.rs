//! Server-sent events as MCP's HTTP transports use them: an incremental decoder for event
//! streams read from a server, and the encoding of one event.

/// One event of a stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field; empty means the default type, `message`.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, when the event had one (the resumption cursor).
    pub id: Option<String>,
}

/// Turns chunks of an event stream into whole events; chunks may split lines anywhere.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Bytes of a line not yet terminated.
    partial: Vec<u8>,
    /// The event being assembled.
    current: Event,
    /// Whether `current` has a field yet (a blank line ends only a started event).
    started: bool,
    /// Whether `current` has a `data:` line yet (later ones are joined with `\n`).
    has_data: bool,
}

impl Decoder {
    /// Feeds a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        for &byte in chunk {
            if byte == b'\n' {
                let mut line = std::mem::take(&mut self.partial);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if let Some(event) = self.line(&String::from_utf8_lossy(&line)) {
                    events.push(event);
                }
            } else {
                self.partial.push(byte);
            }
        }
        events
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            if !self.started {
                return None;
            }
            self.started = false;
            self.has_data = false;
            return Some(std::mem::take(&mut self.current));
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.current.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "id" => self.current.id = Some(value.to_owned()),
            _ => {}
        }
        self.started = true;
        None
    }
}

/// Encodes one event: `event: NAME`, each line of `data` as a `data:` field, and the blank
/// line that ends it.
pub fn encode(event: &str, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + event.len() + 16);
    if !event.is_empty() {
        out.push_str("event: ");
        out.push_str(event);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::{Decoder, Event, encode};

    #[test]
    fn events_split_across_chunks() {
        let mut decoder = Decoder::default();
        assert!(decoder.feed(b": keepalive\n\nevent: mess").is_empty());
        let events = decoder.feed(b"age\r\nid: 7\ndata: {\"a\":1}\ndata: x\n\ndata:y\n\n");
        assert_eq!(
            events,
            vec![
                Event {
                    event: "message".into(),
                    data: "{\"a\":1}\nx".into(),
                    id: Some("7".into()),
                },
                Event {
                    data: "y".into(),
                    ..Event::default()
                },
            ]
        );
    }

    #[test]
    fn encoded_events_decode_back() {
        let text = encode("endpoint", "/messages?sessionId=1\nsecond");
        let events = Decoder::default().feed(text.as_bytes());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event, "endpoint");
        assert_eq!(events[0].data, "/messages?sessionId=1\nsecond");
    }
}
