//! Agents end to end: a real `skyport serve`, real FastMCP servers, and a scripted model
//! provider (`skyport_agents::scripted`, on 127.0.0.1) speaking the OpenAI-compatible and the
//! Anthropic streaming APIs. A chat whose model calls `hello` through the gateway gets the
//! result fed back and answers with it (audited under the chatting user); a tool hidden by a
//! policy is never offered and a forged call to it is refused and audited as denied; a provider
//! error and a timeout end the turn with a clear message; the OpenAI-compatible facade serves
//! the official `openai` Python client in streaming mode; a principal not allowed to chat gets
//! 403.

use std::time::Duration;

use serde_json::{Value, json};
use skyport_agents::scripted::{Recorded, ScriptedProvider, Turn};
use skyport_e2e::{Skyport, command, example, http, python, run_bounded, skyport_bin, wait_until};

/// What the scripted model answers once it has the result of `hello`.
const ANSWER: &str = "The server says: Hello, Ada!";

/// A serve with `hello` deployed, the scripted provider, and an admin API key.
struct Setup {
    sky: Skyport,
    fake: ScriptedProvider,
    key: String,
    /// Runs the fake's server; dropped last.
    _runtime: tokio::runtime::Runtime,
}

impl Setup {
    fn new() -> Setup {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the scripted provider");
        let fake = runtime
            .block_on(ScriptedProvider::start())
            .expect("start the scripted provider");
        let sky = Skyport::serve();
        sky.deploy_ok(&example("hello"), "hello");
        let created = sky.cli(&["keys", "create", "--name", "chat"]);
        assert!(created.success, "{created}");
        let key = created.stdout.trim().to_owned();
        Setup {
            sky,
            fake,
            key,
            _runtime: runtime,
        }
    }

    /// Adds provider `name` speaking `kind` at the fake, bounded by 2 s, not retrying.
    fn provider(&self, name: &str, kind: &str, default: bool) {
        let url = match kind {
            "anthropic" => self.fake.anthropic_url(),
            _ => self.fake.openai_url(),
        };
        self.post(
            "providers",
            &json!({
                "name": name, "kind": kind, "base_url": url, "api_key": "sk-provider-key",
                "default_model": "scripted-model", "timeout_seconds": 2, "retries": 0,
                "default": default,
            }),
        );
    }

    /// Creates agent `name` over `servers` with `provider`, for `allowed` (everyone if empty).
    fn agent(&self, name: &str, provider: &str, servers: &[&str], allowed: &[&str]) {
        self.post(
            "agents",
            &json!({
                "name": name, "provider": provider, "instructions": "You greet people.",
                "servers": servers, "allowed": allowed,
            }),
        );
    }

    /// `POST /api/v1/{path}` with `body` as the admin, which must succeed.
    fn post(&self, path: &str, body: &Value) {
        let auth = format!("Bearer {}", self.key);
        let response = http(
            &self.sky.addr(),
            "POST",
            &format!("/api/v1/{path}"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            Some(&body.to_string()),
        )
        .expect("POST to the API");
        assert!(
            (200..300).contains(&response.status),
            "POST /api/v1/{path}: {response:?}"
        );
    }

    /// `POST /api/v1/{path}` with `body` as `key`; the status and the events of the stream.
    fn chat(&self, key: &str, path: &str, body: &Value) -> (u16, Vec<Value>) {
        let auth = format!("Bearer {key}");
        let response = http(
            &self.sky.addr(),
            "POST",
            &format!("/api/v1/{path}"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
                ("Accept", "text/event-stream"),
            ],
            Some(&body.to_string()),
        )
        .expect("POST a chat message");
        let events = response
            .body
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str(d.trim()).ok())
            .collect();
        (response.status, events)
    }

    fn get(&self, path: &str) -> Value {
        let auth = format!("Bearer {}", self.key);
        let response = http(
            &self.sky.addr(),
            "GET",
            &format!("/api/v1/{path}"),
            &[("Authorization", &auth)],
            None,
        )
        .expect("GET from the API");
        assert_eq!(response.status, 200, "{response:?}");
        response.json().unwrap_or(Value::Null)
    }

    fn push(&self, turns: impl IntoIterator<Item = Turn>) {
        self.fake.push(turns);
    }

    fn requests(&self) -> Vec<Recorded> {
        self.fake.requests()
    }

    /// The MCP audit records of `server` once one satisfies `test`.
    fn audited(&self, server: &str, test: impl Fn(&Value) -> bool) -> Value {
        let mut records = Value::Null;
        let found = wait_until(Duration::from_secs(20), || {
            let run = self.sky.cli(&["audit", "--server", server, "--json"]);
            records = run.json();
            records.as_array().is_some_and(|all| all.iter().any(&test))
        });
        assert!(found, "not in the audit log: {records}");
        records
            .as_array()
            .and_then(|all| all.iter().find(|r| test(r)).cloned())
            .unwrap_or_default()
    }
}

/// The first event of `kind`.
fn event<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {events:#?}"))
}

/// The scripted turns of a chat that greets Ada through `hello`.
fn greeting() -> [Turn; 2] {
    [
        Turn::tool_call("call_1", "hello__hello", &["{\"name\":", " \"Ada\"}"]),
        Turn::text(&["The server says: ", "Hello, Ada!"]),
    ]
}

#[test]
fn an_agent_calls_hello_through_the_gateway_and_answers_with_its_result() {
    let setup = Setup::new();
    setup.provider("local", "openai", true);
    setup.agent("greeter", "local", &["hello"], &[]);

    // The CLI prints the call, its result and the streamed answer.
    setup.push(greeting());
    let run = setup.sky.cli(&["chat", "greeter", "Greet Ada"]);
    assert!(run.success, "{run}\n{}", setup.sky.log_tail(40));
    assert!(
        run.stdout.contains("→ hello.hello {\"name\":\"Ada\"}"),
        "{run}"
    );
    assert!(run.stdout.contains("← Hello, Ada!"), "{run}");
    assert!(run.stdout.contains(ANSWER), "{run}");

    // The model was offered `hello` and got its result in the second request.
    let requests = setup.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(requests[0].tool_names(), ["hello__hello"]);
    assert_eq!(requests[0].body["model"], "scripted-model");
    let fed = &requests[1].body["messages"];
    let tool = fed
        .as_array()
        .and_then(|all| all.iter().find(|m| m["role"] == "tool"))
        .unwrap_or_else(|| panic!("no tool message fed back: {fed}"));
    assert_eq!(tool["content"], "Hello, Ada!", "{fed}");
    assert_eq!(tool["tool_call_id"], "call_1", "{fed}");

    // The call went through the gateway as the chatting principal.
    let call = setup.audited("hello", |r| {
        r["method"] == "tools/call" && r["target"] == "hello"
    });
    assert_eq!(call["outcome"], "ok", "{call}");
    assert_eq!(call["principal_name"], "admin", "{call}");

    // The conversation holds the message and the whole turn; the API continues it.
    let listed = setup.get("conversations?agent=greeter");
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["title"], "Greet Ada", "{listed}");
    let id = listed[0]["id"]
        .as_str()
        .expect("a conversation id")
        .to_owned();
    let detail = setup.get(&format!("conversations/{id}"));
    let roles: Vec<&str> = detail["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(
        roles,
        ["user", "assistant", "tool", "assistant"],
        "{detail}"
    );
    setup.push([Turn::text(&["You are welcome."])]);
    let (status, events) = setup.chat(
        &setup.key,
        "agents/greeter/chat",
        &json!({"message": "Thanks", "conversation": id}),
    );
    assert_eq!(status, 200, "{events:?}");
    assert_eq!(event(&events, "conversation")["id"], id.as_str());
    assert_eq!(event(&events, "text")["delta"], "You are welcome.");
    assert_eq!(event(&events, "done")["stop"], "end");
    let history = &setup.requests()[2].body["messages"];
    assert!(history.to_string().contains(ANSWER), "{history}");

    // A provider error and a timeout end the turn with a clear message.
    setup.push([Turn::fail(
        500,
        r#"{"error":{"message":"the model is overloaded"}}"#,
    )]);
    let (_, events) = setup.chat(&setup.key, "agents/greeter/chat", &json!({"message": "Hi"}));
    let url = setup.fake.openai_url();
    assert_eq!(
        event(&events, "error")["message"],
        format!("provider `local` (openai at {url}) answered 500: the model is overloaded"),
        "{events:?}"
    );
    assert_eq!(event(&events, "done")["stop"], "error");
    setup.push([Turn::text(&["too late"]).delayed(Duration::from_secs(4))]);
    let (_, events) = setup.chat(&setup.key, "agents/greeter/chat", &json!({"message": "Hi"}));
    assert_eq!(
        event(&events, "error")["message"],
        format!(
            "provider `local` (openai at {url}) did not answer within 2 s; try again, or raise the provider's timeout"
        ),
        "{events:?}"
    );
    let failed = setup.sky.cli(&["chat", "greeter", "Hi again"]);
    assert!(!failed.success, "{failed}");
    assert!(
        failed.stderr.contains("error: provider `local`"),
        "{failed}"
    );

    // ChatMCP: the same over one server with the default provider.
    setup.push(greeting());
    let (status, events) = setup.chat(
        &setup.key,
        "servers/hello/chat",
        &json!({"message": "Greet Ada"}),
    );
    assert_eq!(status, 200, "{events:?}");
    let result = event(&events, "tool_result");
    assert_eq!(result["server"], "hello", "{result}");
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["content"][0]["text"], "Hello, Ada!", "{result}");
    assert_eq!(event(&events, "done")["stop"], "end");

    // The facade, with the official `openai` client streaming.
    setup.push(greeting());
    let script = r#"
import json, sys
import openai
client = openai.OpenAI(base_url=sys.argv[1], api_key=sys.argv[2], timeout=60)
models = [m.id for m in client.models.list()]
stream = client.chat.completions.create(
    model="greeter", messages=[{"role": "user", "content": "Greet Ada"}], stream=True)
text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
print(json.dumps({"models": models, "text": text}))
"#;
    let base = format!("{}/v1", setup.sky.url());
    let mut cmd = command(python());
    cmd.args(["-c", script, &base, &setup.key]);
    let run = run_bounded(cmd, setup.sky.scratch(), Duration::from_secs(120));
    assert!(run.success, "{run}\n{}", setup.sky.log_tail(40));
    let answer = run.json_line();
    assert_eq!(answer["models"], json!(["greeter"]), "{run}");
    assert_eq!(answer["text"], ANSWER, "{run}");

    // Without a message, `skyport chat` reads one per line of stdin, in one conversation.
    setup.push([Turn::text(&["Hi!"]), Turn::text(&["Bye!"])]);
    let chat_from_stdin = |lines: &str| {
        let file = setup.sky.scratch().join("lines.txt");
        std::fs::write(&file, lines).expect("write the lines");
        let mut cmd = command("sh");
        cmd.arg("-c")
            .arg("\"$0\" chat greeter < \"$1\"")
            .arg(skyport_bin())
            .arg(&file)
            .env("SKYPORT_URL", setup.sky.url())
            .env("SKYPORT_DATA_DIR", setup.sky.data_dir())
            .env("XDG_CONFIG_HOME", setup.sky.scratch().join("config"))
            .env_remove("SKYPORT_TOKEN");
        run_bounded(cmd, setup.sky.scratch(), Duration::from_secs(60))
    };
    let run = chat_from_stdin("Hello\n\nGoodbye\n");
    assert!(run.success, "{run}");
    assert_eq!(run.stdout, "Hi!\nBye!\n", "{run}");
    assert!(
        run.stderr.contains("continue it with --conversation"),
        "{run}"
    );
    let last = setup.requests().pop().expect("a request");
    let history: Vec<&str> = last.body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(
        history,
        ["You greet people.", "Hello", "Hi!", "Goodbye"],
        "{}",
        last.body
    );
    // A turn that fails fails the command, also when read from stdin.
    setup.push([Turn::fail(500, r#"{"error":{"message":"down"}}"#)]);
    let run = chat_from_stdin("Again\n");
    assert!(!run.success, "{run}");
    assert!(run.stderr.contains("answered 500: down"), "{run}");

    // A principal the agent does not allow is refused.
    let added = setup.sky.cli(&["users", "add", "bot", "--service"]);
    assert!(added.success, "{added}");
    let created = setup.sky.cli(&["keys", "create", "--for", "bot"]);
    assert!(created.success, "{created}");
    let bot = created.stdout.trim().to_owned();
    setup.agent("private", "local", &["hello"], &["admin"]);
    let (status, _) = setup.chat(&bot, "agents/private/chat", &json!({"message": "Hi"}));
    assert_eq!(status, 403);
    let (status, _) = setup.chat(&setup.key, "agents/nobody/chat", &json!({"message": "Hi"}));
    assert_eq!(status, 404);
}

/// A FastMCP server with a tool to read and one to delete.
const NOTES: &str = r#"from fastmcp import FastMCP

mcp = FastMCP("notes")


@mcp.tool
def read_note(id: str) -> str:
    return f"note {id}"


@mcp.tool
def delete_note(id: str) -> str:
    return f"deleted {id}"
"#;

#[test]
fn a_tool_hidden_by_policy_is_not_offered_and_a_forged_call_is_refused_and_audited() {
    let setup = Setup::new();
    let dir = setup.sky.scratch().join("notes");
    std::fs::create_dir_all(&dir).expect("create the server folder");
    std::fs::write(dir.join("main.py"), NOTES).expect("write the server");
    setup.sky.deploy_ok(&dir, "notes");
    let rule = setup
        .sky
        .cli(&["policy", "add", "notes", "deny", "*", "tool:delete_*"]);
    assert!(rule.success, "{rule}");
    setup.provider("local", "openai", true);
    setup.agent("keeper", "local", &["notes"], &[]);

    // The gateway follows the policy a moment after it is stored: wait until it hides the tool.
    let hidden = wait_until(Duration::from_secs(10), || {
        setup.push([Turn::text(&["ok"])]);
        setup.chat(
            &setup.key,
            "agents/keeper/chat",
            &json!({"message": "List"}),
        );
        setup
            .requests()
            .last()
            .is_some_and(|r| r.tool_names() == ["notes__read_note"])
    });
    assert!(
        hidden,
        "delete_note still offered: {:#?}",
        setup.requests().last()
    );

    setup.push([
        Turn::tool_call("call_9", "notes__delete_note", &["{\"id\": \"1\"}"]),
        Turn::text(&["I could not delete it."]),
    ]);
    let (status, events) = setup.chat(
        &setup.key,
        "agents/keeper/chat",
        &json!({"message": "Delete note 1"}),
    );
    assert_eq!(status, 200, "{events:?}");
    let call = event(&events, "tool_call");
    assert_eq!(call["server"], "notes", "{call}");
    assert_eq!(call["tool"], "delete_note", "{call}");
    let result = event(&events, "tool_result");
    assert_eq!(result["is_error"], true, "{result}");
    assert_eq!(
        result["content"][0]["text"], "Unknown tool: 'delete_note'",
        "{result}"
    );
    assert_eq!(event(&events, "done")["stop"], "end");
    let denied = setup.audited("notes", |r| {
        r["outcome"] == "denied" && r["target"] == "delete_note"
    });
    assert_eq!(denied["method"], "tools/call", "{denied}");
    assert_eq!(denied["principal_name"], "admin", "{denied}");
}

#[test]
fn an_anthropic_agent_calls_hello_and_answers_with_its_result() {
    let setup = Setup::new();
    setup.provider("claude", "anthropic", false);
    setup.agent("greeter", "claude", &["hello"], &[]);
    setup.push(greeting());
    let (status, events) = setup.chat(
        &setup.key,
        "agents/greeter/chat",
        &json!({"message": "Greet Ada"}),
    );
    assert_eq!(status, 200, "{events:?}\n{}", setup.sky.log_tail(40));
    assert_eq!(
        event(&events, "tool_call")["arguments"],
        json!({"name": "Ada"})
    );
    assert_eq!(
        event(&events, "tool_result")["content"][0]["text"],
        "Hello, Ada!"
    );
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "text")
        .filter_map(|e| e["delta"].as_str())
        .collect();
    assert_eq!(text, ANSWER);
    let requests = setup.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(requests[0].path, "/v1/messages");
    assert_eq!(requests[0].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(requests[0].body["system"], "You greet people.");
    assert_eq!(requests[0].tool_names(), ["hello__hello"]);
    let fed = &requests[1].body["messages"];
    let result = &fed[2]["content"][0];
    assert_eq!(result["type"], "tool_result", "{fed}");
    assert_eq!(result["tool_use_id"], "call_1", "{fed}");
    assert_eq!(result["content"], "Hello, Ada!", "{fed}");
}
