//! Tests of the loop of a turn, with the scripted fake as the model and an in-memory tool
//! host: results fed back, hidden and unknown tools, servers left out, the step limit.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use super::{
    BoxFuture, ListedTool, Stop, ToolHost, ToolHostError, ToolOutcome, TurnConfig, TurnEvent,
    run_turn,
};
use crate::message::{Message, Role};
use crate::provider::{Provider, ProviderConfig, ProviderKind};
use crate::scripted::{ScriptedProvider, Turn};

/// Servers `hello` (tool `hello`, with an MCP App) and `notes` (`read_note` offered;
/// `delete_note` hidden but callable, refused like an unknown tool), and `broken`, whose
/// listing fails. Records the calls that reached it.
#[derive(Default)]
struct Host {
    calls: Mutex<Vec<(String, String, Value)>>,
}

impl ToolHost for Host {
    fn list_tools<'a>(
        &'a self,
        server: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ListedTool>, ToolHostError>> {
        Box::pin(async move {
            let tools = match server {
                "hello" => vec![json!({
                    "name": "hello", "description": "Greet someone by name.",
                    "inputSchema": {"type": "object", "properties": {"name": {"type": "string"}}},
                    "_meta": {"ui": {"resourceUri": "ui://hello/card"}},
                })],
                "notes" => vec![json!({"name": "read_note", "inputSchema": {"type": "object"}})],
                _ => return Err(ToolHostError("it has no live deployment".to_owned())),
            };
            Ok(tools.iter().filter_map(ListedTool::from_mcp).collect())
        })
    }

    fn call_tool<'a>(
        &'a self,
        server: &'a str,
        tool: &'a str,
        arguments: Value,
    ) -> BoxFuture<'a, Result<ToolOutcome, ToolHostError>> {
        Box::pin(async move {
            self.calls.lock().expect("calls").push((
                server.to_owned(),
                tool.to_owned(),
                arguments.clone(),
            ));
            let result = match tool {
                "hello" => {
                    json!({"content": [{"type": "text", "text": format!("Hello, {}!", arguments["name"].as_str().unwrap_or("?"))}],
                                  "structuredContent": {"result": "greeted"}})
                }
                _ => {
                    json!({"content": [{"type": "text", "text": format!("Unknown tool: '{tool}'")}], "isError": true})
                }
            };
            Ok(ToolOutcome::from_mcp(&result))
        })
    }
}

fn provider(fake: &ScriptedProvider, kind: ProviderKind) -> Provider {
    let base_url = match kind {
        ProviderKind::OpenAi => fake.openai_url(),
        ProviderKind::Anthropic => fake.anthropic_url(),
    };
    Provider::new(ProviderConfig {
        name: "fake".to_owned(),
        kind,
        base_url,
        api_key: None,
        timeout: Duration::from_secs(5),
        retries: 0,
    })
}

fn config(servers: &[&str], step_limit: u32) -> TurnConfig {
    TurnConfig {
        instructions: "Be brief.".to_owned(),
        model: "small".to_owned(),
        step_limit,
        servers: servers.iter().map(|&s| s.to_owned()).collect(),
    }
}

async fn turn(
    provider: &Provider,
    host: &Host,
    config: &TurnConfig,
) -> (super::TurnOutcome, Vec<TurnEvent>) {
    let mut events = Vec::new();
    let mut sink = |e: TurnEvent| events.push(e);
    let outcome = run_turn(
        provider,
        host,
        config,
        &[Message::user("Greet Ada")],
        &mut sink,
    )
    .await;
    (outcome, events)
}

#[tokio::test]
async fn a_tool_call_runs_and_its_result_goes_back_to_the_model() {
    let fake = ScriptedProvider::start().await.expect("start the fake");
    for kind in [ProviderKind::OpenAi, ProviderKind::Anthropic] {
        fake.push([
            Turn::tool_call("c1", "hello__hello", &["{\"name\":", "\"Ada\"}"]),
            Turn::text(&["She says: ", "Hello, Ada!"]),
        ]);
        let host = Host::default();
        let (outcome, events) = turn(
            &provider(&fake, kind),
            &host,
            &config(&["broken", "hello", "notes"], 8),
        )
        .await;
        assert_eq!(outcome.stop, Stop::End);
        assert_eq!(
            events,
            [
                TurnEvent::Error(
                    "the tools of server `broken` are left out of this turn: it has no live deployment"
                        .to_owned()
                ),
                TurnEvent::ToolCall {
                    id: "c1".to_owned(),
                    server: Some("hello".to_owned()),
                    tool: "hello".to_owned(),
                    name: "hello__hello".to_owned(),
                    arguments: json!({"name": "Ada"}),
                },
                TurnEvent::ToolResult {
                    id: "c1".to_owned(),
                    server: Some("hello".to_owned()),
                    tool: "hello".to_owned(),
                    outcome: ToolOutcome {
                        content: vec![json!({"type": "text", "text": "Hello, Ada!"})],
                        structured: Some(json!({"result": "greeted"})),
                        is_error: false,
                    },
                    app: Some("ui://hello/card".to_owned()),
                },
                TurnEvent::Text("She says: ".to_owned()),
                TurnEvent::Text("Hello, Ada!".to_owned()),
            ],
            "{kind}"
        );
        let roles: Vec<Role> = outcome.messages.iter().map(|m| m.role).collect();
        assert_eq!(roles, [Role::Assistant, Role::Tool, Role::Assistant]);
        assert_eq!(outcome.messages[1].text, "Hello, Ada!");
        assert_eq!(outcome.messages[2].text, "She says: Hello, Ada!");
        assert_eq!(
            *host.calls.lock().expect("calls"),
            [(
                "hello".to_owned(),
                "hello".to_owned(),
                json!({"name": "Ada"})
            )]
        );
    }
    let requests = fake.requests();
    assert_eq!(requests.len(), 4);
    for request in &requests {
        assert_eq!(request.tool_names(), ["hello__hello", "notes__read_note"]);
    }
    // The second request of each turn carries the result.
    assert!(requests[1].body_text().contains("Hello, Ada!"));
    assert_eq!(requests[1].body["messages"][3]["role"], "tool");
    assert_eq!(
        requests[3].body["messages"][2]["content"][0]["type"],
        "tool_result"
    );
}

#[tokio::test]
async fn hidden_tools_are_still_called_and_unknown_names_are_not() {
    let fake = ScriptedProvider::start().await.expect("start the fake");
    fake.push([
        Turn::tool_call("c1", "notes__delete_note", &["{\"id\":\"1\"}"])
            .then_tool_call("c2", "elsewhere__wipe", &["{}"])
            .then_tool_call("c3", "notes__read_note", &["[1]"]),
        Turn::text(&["I cannot."]),
    ]);
    let host = Host::default();
    let (outcome, events) = turn(
        &provider(&fake, ProviderKind::OpenAi),
        &host,
        &config(&["notes"], 8),
    )
    .await;
    assert_eq!(outcome.stop, Stop::End);
    // Only the call naming one of the agent's servers reached the host (which refused it).
    assert_eq!(
        *host.calls.lock().expect("calls"),
        [(
            "notes".to_owned(),
            "delete_note".to_owned(),
            json!({"id": "1"})
        )]
    );
    let results: Vec<(Option<String>, bool, String)> = events
        .iter()
        .filter_map(|e| match e {
            TurnEvent::ToolResult {
                server, outcome, ..
            } => Some((
                server.clone(),
                outcome.is_error,
                outcome.content[0]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        results,
        [
            (
                Some("notes".to_owned()),
                true,
                "Unknown tool: 'delete_note'".to_owned()
            ),
            (
                None,
                true,
                "there is no tool `elsewhere__wipe`: call one of the tools offered".to_owned()
            ),
            (
                Some("notes".to_owned()),
                true,
                "the arguments of `notes__read_note` must be a JSON object, not [1]".to_owned()
            ),
        ]
    );
    let tool_messages: Vec<&Message> = outcome
        .messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .collect();
    assert_eq!(tool_messages.len(), 3);
    assert!(tool_messages.iter().all(|m| m.is_error));
}

#[tokio::test]
async fn the_step_limit_and_provider_errors_end_the_turn_with_a_message() {
    let fake = ScriptedProvider::start().await.expect("start the fake");
    fake.push([
        Turn::tool_call("c1", "hello__hello", &["{\"name\":\"A\"}"]),
        Turn::tool_call("c2", "hello__hello", &["{\"name\":\"B\"}"]),
    ]);
    let host = Host::default();
    let provider = provider(&fake, ProviderKind::OpenAi);
    let (outcome, events) = turn(&provider, &host, &config(&["hello"], 2)).await;
    assert_eq!(outcome.stop, Stop::StepLimit);
    assert_eq!(outcome.messages.len(), 4);
    assert!(
        matches!(events.last(), Some(TurnEvent::Error(m)) if m.starts_with("stopped after 2 steps")),
        "{events:?}"
    );
    fake.push([Turn::fail(500, "model crashed")]);
    let (outcome, events) = turn(&provider, &host, &config(&["hello"], 2)).await;
    assert_eq!(outcome.stop, Stop::Error);
    assert!(outcome.messages.is_empty());
    let url = fake.openai_url();
    assert_eq!(
        events,
        [TurnEvent::Error(format!(
            "provider `fake` (openai at {url}) answered 500: model crashed"
        ))]
    );
}
