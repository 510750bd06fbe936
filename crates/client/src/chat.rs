//! Chatting with an agent or a server: the turn's events read from the API's event stream as
//! they arrive.

use reqwest::Method;
use skyport_api::{ChatEvent, ChatRequest};

use crate::events::Blocks;
use crate::{Client, ClientError, path_segment};

/// Whom a chat message goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatTarget<'a> {
    /// An agent, by name.
    Agent(&'a str),
    /// A server's ad-hoc agent (ChatMCP), by the server's name.
    Server(&'a str),
}

/// An open chat turn; read it with [`ChatStream::next`] until `Done` (or `None`).
#[derive(Debug)]
pub struct ChatStream {
    response: reqwest::Response,
    blocks: Blocks,
}

impl Client {
    /// Sends one message; the answer streams as [`ChatEvent`]s.
    pub async fn chat(
        &self,
        target: ChatTarget<'_>,
        request: &ChatRequest,
    ) -> Result<ChatStream, ClientError> {
        let path = match target {
            ChatTarget::Agent(name) => format!("/agents/{}/chat", path_segment(name)),
            ChatTarget::Server(name) => format!("/servers/{}/chat", path_segment(name)),
        };
        let request = self
            .api(Method::POST, &path)
            .header("accept", "text/event-stream")
            .json(request);
        Ok(ChatStream {
            response: self.execute(request).await?,
            blocks: Blocks::default(),
        })
    }
}

impl ChatStream {
    /// The next event; `None` when the stream ended.
    pub async fn next(&mut self) -> Result<Option<ChatEvent>, ClientError> {
        loop {
            while let Some(block) = self.blocks.next_block() {
                if let Some(event) = parse(&block)? {
                    return Ok(Some(event));
                }
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.blocks.push(&bytes),
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(ClientError::Protocol(format!(
                        "the chat stream broke: {e}; send the message again"
                    )));
                }
            }
        }
    }
}

/// One event block's data as a [`ChatEvent`]; comments and empty blocks are `None`.
fn parse(block: &str) -> Result<Option<ChatEvent>, ClientError> {
    let data: Vec<&str> = block
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    if data.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&data.join("\n"))
        .map(Some)
        .map_err(|e| {
            ClientError::Protocol(format!(
                "a chat event is not what this client expects ({e}); is the CLI as new as Skyport?"
            ))
        })
}

#[cfg(test)]
mod tests {
    use skyport_api::{ChatEvent, ChatStop};

    use super::parse;

    #[test]
    fn events_parse_from_their_data() {
        assert_eq!(
            parse("event: text\ndata: {\"type\":\"text\",\"delta\":\"Hi\"}").expect("an event"),
            Some(ChatEvent::Text {
                delta: "Hi".to_owned()
            })
        );
        assert_eq!(
            parse("event: done\r\ndata: {\"type\":\"done\",\"stop\":\"step_limit\"}\r")
                .expect("an event"),
            Some(ChatEvent::Done {
                stop: ChatStop::StepLimit
            })
        );
        assert_eq!(parse(": keep-alive").expect("a comment"), None);
        assert!(parse("data: {\"type\":\"nope\"}").is_err());
    }
}
