//! Chatting through the whole application, with the scripted fake as the model: a turn's
//! events (a server that cannot list its tools is left out), the conversation it is stored
//! in (its owner's only), ChatMCP without a default provider, and the OpenAI-compatible
//! facade's answers and errors. Tool calls through the gateway need a running server and are
//! tested end to end (`tests/e2e/tests/it/agents.rs`).

use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use skyport_agents::scripted::{ScriptedProvider, Turn};
use skyport_store::{NewPrincipal, PrincipalKind};
use tower::ServiceExt;

use super::{Fixture, fixture, send};

impl Fixture {
    /// Posts a chat message to `path`; the status and the events' data.
    async fn chat(&self, path: &str, body: Value) -> (StatusCode, Vec<Value>) {
        let request = self.request("POST", path, &[("accept", "text/event-stream")], Some(body));
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let events = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect();
        (status, events)
    }
}

#[tokio::test]
async fn a_turn_streams_and_is_stored_in_the_callers_conversation() {
    let f = fixture().await;
    let fake = ScriptedProvider::start().await.unwrap();
    f.store
        .servers()
        .ensure(&"hello".parse().unwrap(), None)
        .await
        .unwrap();

    let (status, body) = f
        .call(
            "POST",
            "/api/v1/servers/hello/chat",
            Some(json!({"message": "Hi"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("--default")),
        "{body}"
    );

    let provider = json!({
        "name": "local", "kind": "openai", "base_url": fake.openai_url(),
        "default_model": "small", "retries": 0, "default": true,
    });
    let (status, body) = f.call("POST", "/api/v1/providers", Some(provider)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let agent = json!({"name": "greeter", "provider": "local", "instructions": "Be kind.", "servers": ["hello"]});
    let (status, body) = f.call("POST", "/api/v1/agents", Some(agent)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    fake.push([Turn::text(&["Hi ", "there"])]);
    let (status, events) = f
        .chat("/api/v1/agents/greeter/chat", json!({"message": "Hello"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    insta::assert_json_snapshot!(events, {"[0].id" => "[id]"}, @r#"
    [
      {
        "id": "[id]",
        "type": "conversation"
      },
      {
        "message": "the tools of server `hello` are left out of this turn: the gateway answered HTTP 503: server 'hello' has no live deployment; deploy it with `skyport deploy`",
        "type": "error"
      },
      {
        "delta": "Hi ",
        "type": "text"
      },
      {
        "delta": "there",
        "type": "text"
      },
      {
        "stop": "end",
        "type": "done"
      }
    ]
    "#);
    let id = events[0]["id"].as_str().unwrap().to_owned();
    let sent = &fake.requests()[0].body;
    assert_eq!(sent["model"], "small");
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be kind."})
    );

    let (status, listed) = f
        .call("GET", "/api/v1/conversations?agent=greeter", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["title"], "Hello");
    let (status, detail) = f
        .call("GET", &format!("/api/v1/conversations/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(
        detail["messages"],
        json!([
            {"role": "user", "text": "Hello", "is_error": false},
            {"role": "assistant", "text": "Hi there", "is_error": false},
        ])
    );
    let (status, _) = f.call("GET", "/api/v1/conversations", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Someone else's conversation does not exist for them.
    let new = NewPrincipal {
        name: "bot",
        email: None,
        kind: PrincipalKind::Service,
        is_admin: false,
    };
    let bot = f.store.users().create(&new, None).await.unwrap();
    let (_, token) = f.store.keys().create(&bot.id, "bot", None).await.unwrap();
    let request = f.request_as(
        &token,
        "GET",
        &format!("/api/v1/conversations/{id}"),
        &[],
        None,
    );
    let (status, _) = send(&f.app, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let continued = json!({"message": "Mine now", "conversation": id});
    let request = f.request_as(
        &token,
        "POST",
        "/api/v1/agents/greeter/chat",
        &[],
        Some(continued),
    );
    let (status, _) = send(&f.app, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_facade_answers_like_openai() {
    let f = fixture().await;
    let fake = ScriptedProvider::start().await.unwrap();
    f.store
        .servers()
        .ensure(&"hello".parse().unwrap(), None)
        .await
        .unwrap();
    let provider = json!({
        "name": "local", "kind": "anthropic", "base_url": fake.anthropic_url(),
        "default_model": "small", "retries": 0,
    });
    let (status, body) = f.call("POST", "/api/v1/providers", Some(provider)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let agent = json!({"name": "greeter", "provider": "local", "instructions": "Be kind.", "servers": ["hello"]});
    let (status, body) = f.call("POST", "/api/v1/agents", Some(agent)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, models) = f.call("GET", "/v1/models", None).await;
    assert_eq!(status, StatusCode::OK, "{models}");
    assert_eq!(models["data"][0]["id"], "greeter", "{models}");

    fake.push([Turn::text(&["Hello", " Ada"])]);
    let completion = json!({
        "model": "greeter",
        "messages": [
            {"role": "system", "content": "Answer in English."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello, who are you?"},
            {"role": "user", "content": [{"type": "text", "text": "I am Ada"}]},
        ],
    });
    let (status, answer) = f
        .call("POST", "/v1/chat/completions", Some(completion.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "greeter");
    assert_eq!(
        answer["choices"][0],
        json!({"index": 0, "message": {"role": "assistant", "content": "Hello Ada"}, "finish_reason": "stop"})
    );
    let sent = &fake.requests()[0].body;
    assert_eq!(sent["system"], "Be kind.\n\nAnswer in English.");
    assert_eq!(sent["messages"].as_array().map(Vec::len), Some(3), "{sent}");

    // Text before and after tool calls comes back as paragraphs of one answer.
    fake.push([
        Turn::text(&["Let me look."]).then_tool_call("c1", "elsewhere__find", &["{}"]),
        Turn::text(&["Nothing there."]),
    ]);
    let (status, answer) = f
        .call("POST", "/v1/chat/completions", Some(completion.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Let me look.\n\nNothing there."
    );

    fake.push([Turn::fail(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    )]);
    let (status, failed) = f
        .call("POST", "/v1/chat/completions", Some(completion.clone()))
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{failed}");
    assert_eq!(
        failed["error"]["message"],
        format!(
            "provider `local` (anthropic at {}) answered 529: Overloaded",
            fake.anthropic_url()
        )
    );

    let mut unknown = completion.clone();
    unknown["model"] = json!("nobody");
    let (status, refused) = f.call("POST", "/v1/chat/completions", Some(unknown)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(refused["error"]["code"], "model_not_found", "{refused}");
    assert_eq!(
        refused["error"]["type"], "invalid_request_error",
        "{refused}"
    );
    let mut last_not_user = completion;
    last_not_user["messages"] = json!([{"role": "assistant", "content": "Hi"}]);
    let (status, _) = f
        .call("POST", "/v1/chat/completions", Some(last_not_user))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let request = f.request_as("sk_wrong", "GET", "/v1/models", &[], None);
    let (status, refused) = send(&f.app, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused["error"]["type"], "authentication_error",
        "{refused}"
    );
}
