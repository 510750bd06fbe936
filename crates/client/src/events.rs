//! Reading the API's log streams (Server-Sent Events) into typed events.
//!
//! The parser follows the `text/event-stream` rules the server side needs: events end at a
//! blank line, `data:` lines join with newlines, comments (keep-alives) and unknown events
//! are skipped. It keeps the last event id, so a caller can resume from it after a drop.

use skyport_api::{DeploymentView, LogLineView, events};

use crate::ClientError;

/// One event of a log stream.
#[derive(Clone, Debug, PartialEq)]
pub enum LogEvent {
    /// A log line.
    Line(LogLineView),
    /// The followed deployment changed status or phase.
    Deployment(Box<DeploymentView>),
    /// The followed build is over; the stream ends after it.
    End(Box<DeploymentView>),
}

/// An open log stream; read it with [`LogStream::next`].
#[derive(Debug)]
pub struct LogStream {
    response: reqwest::Response,
    parser: Parser,
}

impl LogStream {
    pub(crate) fn new(response: reqwest::Response) -> LogStream {
        LogStream {
            response,
            parser: Parser::default(),
        }
    }

    /// The next event; `None` when the server closed the stream.
    pub async fn next(&mut self) -> Result<Option<LogEvent>, ClientError> {
        loop {
            if let Some(event) = self.parser.next_event()? {
                return Ok(Some(event));
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.parser.push(&bytes),
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(ClientError::Protocol(format!(
                        "the log stream broke: {e}; run the command again"
                    )));
                }
            }
        }
    }

    /// The cursor of the last line received, to resume from after a drop.
    pub fn cursor(&self) -> Option<i64> {
        self.parser.last_id
    }
}

/// The event blocks of a byte stream, as its chunks arrive (shared by the log and chat streams).
#[derive(Debug, Default)]
pub(crate) struct Blocks {
    buffer: Vec<u8>,
    /// Where the unread part of `buffer` starts; the read part is dropped in bulk, not per
    /// event, because a backlog arrives as one chunk of many events.
    read: usize,
}

impl Blocks {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buffer.drain(..self.read);
        self.read = 0;
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete block's text, if one has arrived.
    pub(crate) fn next_block(&mut self) -> Option<String> {
        let (end, sep) = block_end(&self.buffer[self.read..])?;
        let block = &self.buffer[self.read..self.read + end];
        let text = String::from_utf8_lossy(block).into_owned();
        self.read += end + sep;
        Some(text)
    }
}

/// Splits a byte stream into log events.
#[derive(Debug, Default)]
pub(crate) struct Parser {
    blocks: Blocks,
    last_id: Option<i64>,
}

impl Parser {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.blocks.push(bytes);
    }

    /// The next complete event in the buffer, skipping comments and unknown events.
    pub(crate) fn next_event(&mut self) -> Result<Option<LogEvent>, ClientError> {
        while let Some(text) = self.blocks.next_block() {
            if let Some(event) = self.parse_block(&text)? {
                return Ok(Some(event));
            }
        }
        Ok(None)
    }

    fn parse_block(&mut self, block: &str) -> Result<Option<LogEvent>, ClientError> {
        let (mut name, mut data, mut id) = (None, Vec::new(), None);
        for line in block.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => name = Some(value),
                "data" => data.push(value),
                "id" => id = value.parse::<i64>().ok(),
                _ => {}
            }
        }
        if data.is_empty() {
            return Ok(None);
        }
        let data = data.join("\n");
        let bad = |e: serde_json::Error| {
            ClientError::Protocol(format!(
                "a log stream event is not what this client expects: {e}"
            ))
        };
        let event = match name {
            None | Some("message") => {
                if id.is_some() {
                    self.last_id = id;
                }
                LogEvent::Line(serde_json::from_str(&data).map_err(bad)?)
            }
            Some(events::DEPLOYMENT) => {
                LogEvent::Deployment(Box::new(serde_json::from_str(&data).map_err(bad)?))
            }
            Some(events::END) => LogEvent::End(Box::new(serde_json::from_str(&data).map_err(bad)?)),
            Some(_) => return Ok(None),
        };
        Ok(Some(event))
    }
}

/// Where the first event in `buffer` ends: its length and the blank line's length.
fn block_end(buffer: &[u8]) -> Option<(usize, usize)> {
    (0..buffer.len()).find_map(|i| {
        let rest = &buffer[i..];
        if rest.starts_with(b"\r\n\r\n") {
            Some((i, 4))
        } else if rest.starts_with(b"\n\n") {
            Some((i, 2))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests;
