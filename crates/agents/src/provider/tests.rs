//! Tests of the provider clients: the request bodies of both APIs (snapshots), streamed
//! answers with tool calls split over chunks, and errors, retries and timeouts against the
//! scripted fake.

use std::time::Duration;

use serde_json::json;

use super::{Provider, ProviderConfig, ProviderError, ProviderKind, Reply, Request, StopReason};
use super::{anthropic, openai};
use crate::message::{Message, ToolCall, ToolSpec};
use crate::scripted::{ScriptedProvider, Turn};

/// A conversation with every kind of message: the person, a tool call, its (failed) result.
fn conversation() -> Vec<Message> {
    vec![
        Message::user("Greet Ada"),
        Message::assistant(
            "Let me ask.".to_owned(),
            vec![ToolCall {
                id: "call_1".to_owned(),
                name: "hello__hello".to_owned(),
                arguments: json!({"name": "Ada"}),
            }],
        ),
        Message::tool("call_1", "Hello, Ada!".to_owned(), false),
        Message::assistant(
            String::new(),
            vec![ToolCall {
                id: "call_2".to_owned(),
                name: "notes__delete_note".to_owned(),
                arguments: json!({"id": "1"}),
            }],
        ),
        Message::tool("call_2", "Unknown tool: 'delete_note'".to_owned(), true),
        Message::assistant("Done.".to_owned(), Vec::new()),
        Message::user("Thanks"),
    ]
}

fn tools() -> Vec<ToolSpec> {
    vec![ToolSpec {
        name: "hello__hello".to_owned(),
        description: "Greet someone by name.".to_owned(),
        input_schema: json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
    }]
}

fn request<'a>(messages: &'a [Message], tools: &'a [ToolSpec]) -> Request<'a> {
    Request {
        model: "small",
        system: "You greet people.",
        messages,
        tools,
    }
}

#[test]
fn openai_request_body() {
    let (messages, tools) = (conversation(), tools());
    insta::assert_json_snapshot!(openai::body(&request(&messages, &tools)));
}

#[test]
fn anthropic_request_body() {
    let (messages, tools) = (conversation(), tools());
    insta::assert_json_snapshot!(anthropic::body(&request(&messages, &tools)));
}

fn config(name: &str, kind: ProviderKind, base_url: String) -> ProviderConfig {
    ProviderConfig {
        name: name.to_owned(),
        kind,
        base_url,
        api_key: Some("sk-secret-key".to_owned()),
        timeout: Duration::from_secs(5),
        retries: 0,
    }
}

/// Streams one answer, returning it and the text pieces seen.
async fn ask(provider: &Provider) -> (Result<Reply, ProviderError>, Vec<String>) {
    let messages = vec![Message::user("hi")];
    let tools = tools();
    let mut pieces = Vec::new();
    let mut on_text = |t: &str| pieces.push(t.to_owned());
    let reply = provider
        .stream(&request(&messages, &tools), &mut on_text)
        .await;
    (reply, pieces)
}

#[tokio::test]
async fn both_apis_stream_text_and_tool_calls_split_over_chunks() {
    let fake = ScriptedProvider::start().await.expect("start the fake");
    for (kind, url) in [
        (ProviderKind::OpenAi, fake.openai_url()),
        (ProviderKind::Anthropic, fake.anthropic_url()),
    ] {
        fake.push([Turn::text(&["Hel", "lo"]).then_tool_call(
            "call_7",
            "hello__hello",
            &["{\"na", "me\": \"A", "da\"}"],
        )]);
        let provider = Provider::new(config("local", kind, url));
        let (reply, pieces) = ask(&provider).await;
        let reply = reply.expect("an answer");
        assert_eq!(pieces, ["Hel", "lo"], "{kind}");
        assert_eq!(reply.text, "Hello", "{kind}");
        assert_eq!(reply.stop, StopReason::ToolUse, "{kind}");
        assert_eq!(
            reply.tool_calls,
            [ToolCall {
                id: "call_7".to_owned(),
                name: "hello__hello".to_owned(),
                arguments: json!({"name": "Ada"}),
            }],
            "{kind}"
        );
    }
    let requests = fake.requests();
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(
        requests[0].header("authorization"),
        Some("Bearer sk-secret-key")
    );
    assert_eq!(requests[0].header("x-api-key"), None);
    assert_eq!(requests[1].path, "/v1/messages");
    assert_eq!(requests[1].header("x-api-key"), Some("sk-secret-key"));
    assert_eq!(requests[1].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(requests[1].header("authorization"), None);
    assert_eq!(requests[0].tool_names(), ["hello__hello"]);
    assert_eq!(requests[1].tool_names(), ["hello__hello"]);
}

#[tokio::test]
async fn an_http_error_names_the_provider_and_quotes_its_message_without_the_key() {
    let fake = ScriptedProvider::start().await.expect("start the fake");
    fake.push([Turn::fail(
        401,
        r#"{"error":{"message":"invalid key sk-secret-key","type":"auth"}}"#,
    )]);
    let url = fake.openai_url();
    let provider = Provider::new(config("local", ProviderKind::OpenAi, url.clone()));
    let error = ask(&provider).await.0.expect_err("a 401");
    assert_eq!(
        error.to_string(),
        format!("provider `local` (openai at {url}) answered 401: invalid key [redacted]")
    );
    fake.push([Turn::fail(500, "upstream exploded")]);
    let error = ask(&provider).await.0.expect_err("a 500");
    assert_eq!(
        error.to_string(),
        format!("provider `local` (openai at {url}) answered 500: upstream exploded")
    );
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried_up_to_the_limit() {
    let fake = ScriptedProvider::start().await.expect("start the fake");
    let url = fake.anthropic_url();
    let mut config = config("claude", ProviderKind::Anthropic, url);
    config.retries = 2;
    let provider = Provider::new(config);
    fake.push([
        Turn::fail_retry_after(429, "slow down", 0),
        Turn::fail(503, "busy"),
        Turn::text(&["ok"]),
    ]);
    let (reply, _) = ask(&provider).await;
    assert_eq!(reply.expect("the third attempt").text, "ok");
    assert_eq!(fake.requests().len(), 3);
    // A client error is not retried; retries are used up after three server errors.
    fake.push([Turn::fail(400, "bad request")]);
    assert!(matches!(
        ask(&provider).await.0,
        Err(ProviderError::Status { status: 400, .. })
    ));
    assert_eq!(fake.requests().len(), 4);
    fake.push([
        Turn::fail_retry_after(500, "a", 0),
        Turn::fail_retry_after(500, "b", 0),
        Turn::fail_retry_after(500, "c", 0),
    ]);
    let error = ask(&provider).await.0.expect_err("retries used up");
    assert!(error.to_string().ends_with("answered 500: c"), "{error}");
    assert_eq!(fake.remaining(), 0);
}

#[tokio::test]
async fn a_slow_provider_times_out_with_a_clear_message() {
    let fake = ScriptedProvider::start().await.expect("start the fake");
    fake.push([Turn::text(&["late"]).delayed(Duration::from_secs(3))]);
    let url = fake.openai_url();
    let mut config = config("slow", ProviderKind::OpenAi, url.clone());
    config.timeout = Duration::from_secs(1);
    let provider = Provider::new(config);
    let error = ask(&provider).await.0.expect_err("a timeout");
    assert_eq!(
        error.to_string(),
        format!(
            "provider `slow` (openai at {url}) did not answer within 1 s; try again, or raise the provider's timeout"
        )
    );
}

#[tokio::test]
async fn an_unreachable_provider_is_said_to_be() {
    let fake = ScriptedProvider::start().await.expect("start the fake");
    let url = fake.openai_url();
    drop(fake);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let provider = Provider::new(config("gone", ProviderKind::OpenAi, url.clone()));
    let error = ask(&provider).await.0.expect_err("nothing listens");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "provider `gone` (openai at {url}) cannot be reached"
        )),
        "{text}"
    );
    assert!(!text.contains("sk-secret-key"), "{text}");
}

#[test]
fn stream_errors_and_truncated_streams_are_faults() {
    let mut parser = anthropic::Parser::default();
    let mut ignore = |_: &str| {};
    let fault = parser
        .event(
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            &mut ignore,
        )
        .expect_err("an error event");
    assert!(matches!(fault, super::Fault::Reported(m) if m == "Overloaded (overloaded_error)"));
    let mut parser = openai::Parser::default();
    parser
        .event(
            r#"{"choices":[{"index":0,"delta":{"content":"cut"}}]}"#,
            &mut ignore,
        )
        .expect("a chunk");
    assert!(matches!(parser.finish(), Err(super::Fault::Malformed(_))));
    assert_eq!(
        super::error_message("<html>bad gateway</html>"),
        "<html>bad gateway</html>"
    );
    assert_eq!(super::error_message(""), "(no body)");
    assert_eq!(super::arguments(""), json!({}));
    assert_eq!(super::arguments("{\"a\":"), json!("{\"a\":"));
}

#[test]
fn the_key_never_shows_in_debug() {
    let config = config("local", ProviderKind::OpenAi, "http://x".to_owned());
    let text = format!("{config:?}");
    assert!(!text.contains("sk-secret-key"), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
    assert_eq!("anthropic".parse(), Ok(ProviderKind::Anthropic));
    assert!("gemini".parse::<ProviderKind>().is_err());
}
