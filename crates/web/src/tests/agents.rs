//! Providers and agents through the whole application: org admins manage them, keys never
//! come back, an agent's servers must exist, only allowed principals see an agent, and every
//! change is in the control audit log.

use http::StatusCode;
use serde_json::{Value, json};

use super::{Fixture, fixture};

const KEY: &str = "sk-provider-s3cret";

impl Fixture {
    async fn server(&self, name: &str) {
        self.store
            .servers()
            .ensure(&name.parse().unwrap(), None)
            .await
            .unwrap();
    }

    async fn provider(&self) {
        let body = json!({
            "name": "openai", "kind": "openai", "base_url": "http://127.0.0.1:9/v1/",
            "api_key": KEY, "default_model": "small", "default": true,
        });
        let (status, created) = self.call("POST", "/api/v1/providers", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
}

fn error(answer: &(StatusCode, Value)) -> (StatusCode, &str) {
    (
        answer.0,
        answer.1["error"]["message"].as_str().unwrap_or(""),
    )
}

#[tokio::test]
async fn providers_keep_their_key_to_themselves() {
    let f = fixture().await;
    f.provider().await;
    let (status, listed) = f.call("GET", "/api/v1/providers", None).await;
    assert_eq!(status, StatusCode::OK);
    insta::assert_json_snapshot!(listed, {"[].created_at" => "[at]"}, @r#"
    [
      {
        "base_url": "http://127.0.0.1:9/v1",
        "created_at": "[at]",
        "default": true,
        "default_model": "small",
        "has_api_key": true,
        "kind": "openai",
        "name": "openai",
        "retries": 2,
        "timeout_seconds": 60
      }
    ]
    "#);
    let patch = json!({"api_key": null, "timeout_seconds": 5});
    let (status, changed) = f
        .call("PATCH", "/api/v1/providers/openai", Some(patch))
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["has_api_key"], false);
    assert_eq!(changed["timeout_seconds"], 5);
    assert_eq!(changed["default_model"], "small");

    let bad = json!({"name": "x", "kind": "openai", "base_url": "ftp://host"});
    let answer = f.call("POST", "/api/v1/providers", Some(bad)).await;
    assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{}", answer.1);
    assert!(error(&answer).1.contains("http:// or https://"));
    let bad = json!({"name": "x", "kind": "gemini", "base_url": "http://h"});
    let answer = f.call("POST", "/api/v1/providers", Some(bad)).await;
    assert!(answer.0.is_client_error(), "{}", answer.1);

    let (_, audit) = f.call("GET", "/api/v1/audit/control", None).await;
    let text = audit.to_string();
    assert!(!text.contains(KEY), "{text}");
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["provider.change", "provider.create"]);
    assert_eq!(audit["events"][0]["after"]["api_key"], "removed", "{audit}");
}

#[tokio::test]
async fn agents_need_existing_servers_and_a_known_provider() {
    let f = fixture().await;
    f.provider().await;
    f.server("notes").await;
    let agent = |servers: Value, provider: &str, limit: u32| json!({"name": "helper", "provider": provider, "servers": servers, "step_limit": limit});
    let answer = f
        .call(
            "POST",
            "/api/v1/agents",
            Some(agent(json!(["nope"]), "openai", 8)),
        )
        .await;
    assert_eq!(answer.0, StatusCode::NOT_FOUND, "{}", answer.1);
    assert!(error(&answer).1.contains("nope"));
    let answer = f
        .call(
            "POST",
            "/api/v1/agents",
            Some(agent(json!(["notes"]), "other", 8)),
        )
        .await;
    assert_eq!(
        error(&answer),
        (
            StatusCode::BAD_REQUEST,
            "no provider named 'other'; `skyport providers ls` lists them, `skyport providers add` adds one"
        )
    );
    let answer = f
        .call(
            "POST",
            "/api/v1/agents",
            Some(agent(json!(["notes"]), "openai", 51)),
        )
        .await;
    assert_eq!(
        error(&answer),
        (
            StatusCode::BAD_REQUEST,
            "the step limit must be between 1 and 50, not 51"
        )
    );
    let bad_name = json!({"name": "Bad Name", "provider": "openai", "servers": ["notes"]});
    let answer = f.call("POST", "/api/v1/agents", Some(bad_name)).await;
    assert!(answer.0.is_client_error(), "{}", answer.1);

    let (status, created) = f
        .call(
            "POST",
            "/api/v1/agents",
            Some(agent(json!(["notes"]), "openai", 8)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    insta::assert_json_snapshot!(created, {".created_at" => "[at]", ".updated_at" => "[at]"}, @r#"
    {
      "allowed": [],
      "created_at": "[at]",
      "created_by": "admin",
      "description": "",
      "effective_model": "small",
      "instructions": "",
      "model": null,
      "name": "helper",
      "provider": "openai",
      "servers": [
        "notes"
      ],
      "step_limit": 8,
      "updated_at": "[at]"
    }
    "#);
    let answer = f.call("DELETE", "/api/v1/providers/openai", None).await;
    assert_eq!(answer.0, StatusCode::CONFLICT, "{}", answer.1);
    assert!(error(&answer).1.contains("'helper'"));

    let patch = json!({"model": "large", "description": "notes helper"});
    let (status, changed) = f.call("PATCH", "/api/v1/agents/helper", Some(patch)).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["effective_model"], "large");
    assert_eq!(changed["servers"], json!(["notes"]));

    let (status, _) = f.call("DELETE", "/api/v1/agents/helper", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = f.call("GET", "/api/v1/agents/helper", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = f.call("DELETE", "/api/v1/providers/openai", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (_, audit) = f.call("GET", "/api/v1/audit/control", None).await;
    let summary: Vec<String> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["subject"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "provider.remove openai",
            "agent.remove helper",
            "agent.change helper",
            "agent.create helper",
            "provider.create openai",
        ]
    );
}

#[tokio::test]
async fn only_allowed_principals_see_an_agent_and_only_admins_manage() {
    let f = fixture().await;
    f.provider().await;
    f.server("notes").await;
    let ann = f.user("ann", "correct horse").await;
    let bob = f.user("bob", "battery staple").await;
    let (status, _) = f
        .call("POST", "/api/v1/groups", Some(json!({"name": "ops"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = f.call("PUT", "/api/v1/groups/ops/members/bob", None).await;
    assert!(status.is_success(), "{status}");

    let open = json!({"name": "open", "provider": "openai", "servers": ["notes"]});
    let closed = json!({"name": "closed", "provider": "openai", "servers": ["notes"],
                        "allowed": ["group:ops"]});
    for body in [open, closed] {
        let (status, created) = f.call("POST", "/api/v1/agents", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    let names = |listed: &Value| -> Vec<String> {
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, listed) = f.call_as(&ann, "GET", "/api/v1/agents", None).await;
    assert_eq!(names(&listed), ["open"]);
    let (_, listed) = f.call_as(&bob, "GET", "/api/v1/agents", None).await;
    assert_eq!(names(&listed), ["closed", "open"]);
    let answer = f.call_as(&ann, "GET", "/api/v1/agents/closed", None).await;
    assert_eq!(answer.0, StatusCode::FORBIDDEN);
    assert!(error(&answer).1.contains("--allow ann"));

    let answer = f
        .call_as(
            &ann,
            "POST",
            "/api/v1/agents",
            Some(json!({"name": "mine", "provider": "openai", "servers": ["notes"]})),
        )
        .await;
    assert_eq!(answer.0, StatusCode::FORBIDDEN, "{}", answer.1);
    for (method, path) in [
        ("GET", "/api/v1/providers"),
        ("DELETE", "/api/v1/providers/openai"),
        ("DELETE", "/api/v1/agents/open"),
    ] {
        let answer = f.call_as(&bob, method, path, None).await;
        assert_eq!(answer.0, StatusCode::FORBIDDEN, "{method} {path}");
    }

    let allow_ann = json!({"allowed": ["group:ops", "ann"]});
    let (status, changed) = f
        .call("PATCH", "/api/v1/agents/closed", Some(allow_ann))
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let (status, _) = f.call_as(&ann, "GET", "/api/v1/agents/closed", None).await;
    assert_eq!(status, StatusCode::OK);
    let unknown = json!({"allowed": ["zed"]});
    let answer = f
        .call("PATCH", "/api/v1/agents/closed", Some(unknown))
        .await;
    assert_eq!(answer.0, StatusCode::BAD_REQUEST, "{}", answer.1);
}
