//! `skyport chat AGENT [MESSAGE]` (or `--server NAME` for a server's ad-hoc agent): one turn
//! when a message is given, else a conversation read line by line from stdin until its end.
//! Text is printed as it streams; tool calls and their results get lines of their own
//! (`→ server.tool {args}`, `← result`), and errors go to stderr. The command fails when a
//! turn did not end normally.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::bail;
use skyport_api::{ChatEvent, ChatRequest, ChatStop};
use skyport_client::{ChatTarget, Client};

use crate::cli::{ChatArgs, Connection};
use crate::config;

/// The most characters of a tool result printed.
const SHOWN_RESULT: usize = 2_000;

pub(crate) async fn chat(connection: &Connection, args: ChatArgs) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let (target, message) = match (&args.server, args.agent.as_deref(), args.message) {
        (Some(server), None, message) => (ChatTarget::Server(server), message),
        (Some(server), Some(first), None) => (ChatTarget::Server(server), Some(first.to_owned())),
        (Some(_), Some(_), Some(_)) => {
            bail!("with --server, give only the message (the server is the agent)")
        }
        (None, Some(agent), message) => (ChatTarget::Agent(agent), message),
        (None, None, _) => bail!("name the agent to chat with, or a server with --server NAME"),
    };
    let mut conversation = args.conversation;
    let mut all_ended = true;
    if let Some(message) = message {
        let stop = turn(&client, target, &message, &mut conversation).await?;
        all_ended = stop == Some(ChatStop::End);
    } else {
        for line in std::io::stdin().lock().lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let stop = turn(&client, target, &line, &mut conversation).await?;
            all_ended &= stop == Some(ChatStop::End);
        }
    }
    if let Some(id) = &conversation {
        eprintln!("(conversation {id}: continue it with --conversation {id})");
    }
    // A turn cut short (a provider error, the step limit) fails the command, so scripts see it.
    Ok(if all_ended {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Sends one message and prints its turn; returns how it ended (`None` when the stream broke
/// off before saying).
async fn turn(
    client: &Client,
    target: ChatTarget<'_>,
    message: &str,
    conversation: &mut Option<String>,
) -> anyhow::Result<Option<ChatStop>> {
    let request = ChatRequest {
        message: message.to_owned(),
        conversation: conversation.clone(),
    };
    let mut stream = client.chat(target, &request).await?;
    let mut out = std::io::stdout().lock();
    // Whether the cursor is in the middle of a line of text, so that a tool line starts anew.
    let mut mid_line = false;
    let mut stop = None;
    while let Some(event) = stream.next().await? {
        match event {
            ChatEvent::Conversation { id } => *conversation = Some(id),
            ChatEvent::Text { delta } => {
                write!(out, "{delta}")?;
                out.flush()?;
                mid_line = !delta.ends_with('\n');
            }
            ChatEvent::ToolCall {
                server,
                tool,
                arguments,
                ..
            } => {
                end_line(&mut out, &mut mid_line)?;
                let server = server.as_deref().unwrap_or("?");
                writeln!(out, "→ {server}.{tool} {arguments}")?;
            }
            ChatEvent::ToolResult {
                is_error, content, ..
            } => {
                end_line(&mut out, &mut mid_line)?;
                let text = result_text(&content);
                if is_error {
                    writeln!(out, "← error: {text}")?;
                } else {
                    writeln!(out, "← {text}")?;
                }
            }
            ChatEvent::Error { message } => {
                end_line(&mut out, &mut mid_line)?;
                out.flush()?;
                eprintln!("error: {message}");
            }
            ChatEvent::Done { stop: how } => stop = Some(how),
        }
    }
    end_line(&mut out, &mut mid_line)?;
    Ok(stop)
}

fn end_line(out: &mut impl Write, mid_line: &mut bool) -> std::io::Result<()> {
    if *mid_line {
        writeln!(out)?;
        *mid_line = false;
    }
    Ok(())
}

/// A result's content on one line: text blocks as they are, other blocks by their type.
fn result_text(content: &[serde_json::Value]) -> String {
    let text = content
        .iter()
        .map(|block| match block["text"].as_str() {
            Some(text) => text.replace('\n', " "),
            None => format!("[{}]", block["type"].as_str().unwrap_or("content")),
        })
        .collect::<Vec<_>>()
        .join(" ");
    if text.chars().count() > SHOWN_RESULT {
        let cut: String = text.chars().take(SHOWN_RESULT).collect();
        format!("{cut}…")
    } else {
        text
    }
}
