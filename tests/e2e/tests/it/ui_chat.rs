//! Agents in the web UI and the CLI, in headless Chromium against a real `skyport serve` and
//! the scripted model provider (`skyport_agents::scripted`): `skyport providers add` points
//! Skyport at the fake, an org admin creates an agent with the Agents page's form and chats
//! with it (the call of `hello` through the gateway, its arguments and result, and the
//! streamed answer are shown; the stored conversation reopens), then chats on the `apps`
//! fixture's Chat tab (ChatMCP) where the model's call of `counter` opens its MCP App inline,
//! which calls `add` back through the host; a provider error is shown in the conversation.
//! The CLI then lists, shows and removes what the UI made.

use skyport_agents::scripted::{ScriptedProvider, Turn};
use skyport_e2e::{Skyport, example, fixture};

use crate::access::printed_admin_password;
use crate::ui::browse;

const ANSWER: &str = "The server says: Hello, Ada!";

#[test]
fn admin_creates_an_agent_in_the_ui_and_chats_with_it_and_with_a_server() {
    if std::env::var_os("SKYPORT_SKIP_BROWSER").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED: SKYPORT_SKIP_BROWSER=1 (no chromium on this machine)");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime for the scripted provider");
    let fake = runtime
        .block_on(ScriptedProvider::start())
        .expect("start the scripted provider");
    let sky = Skyport::serve();
    let password = printed_admin_password(&sky);
    sky.deploy_ok(&example("hello"), "hello");
    sky.deploy_ok(&fixture("apps"), "apps");

    let url = fake.openai_url();
    let added = sky.cli(&[
        "providers",
        "add",
        "local",
        "--kind",
        "openai",
        "--base-url",
        &url,
        "--model",
        "scripted-model",
        "--timeout",
        "5s",
        "--retries",
        "0",
        "--default",
    ]);
    assert!(added.success, "{added}");
    let listed = sky.cli(&["providers", "ls"]);
    assert!(
        listed
            .stdout
            .lines()
            .any(|l| l.starts_with("local ") && l.contains("yes") && l.contains("scripted-model")),
        "{listed}"
    );

    fake.push([
        Turn::tool_call("call_1", "hello__hello", &["{\"name\":", " \"Ada\"}"]),
        Turn::text(&["The server says: ", "Hello, Ada!"]),
        Turn::tool_call("call_2", "apps__counter", &["{\"start\": 41}"]),
        Turn::text(&["Counted."]),
        Turn::fail(500, r#"{"error":{"message":"the model is overloaded"}}"#),
    ]);
    let report = browse(
        &sky,
        "chat",
        "admin",
        &password,
        serde_json::json!({ "server": "hello", "appServer": "apps", "answer": ANSWER }),
    );
    assert_eq!(report["agentNotice"], "Agent created.", "{report}");
    assert!(
        report["toolCall"]
            .as_str()
            .is_some_and(|s| s.contains("hello") && s.contains("on hello")),
        "{report}"
    );
    assert_eq!(report["toolArguments"]["name"], "Ada", "{report}");
    assert!(
        report["toolResult"]
            .as_str()
            .is_some_and(|s| s.contains("Hello, Ada!")),
        "{report}"
    );
    assert_eq!(report["answer"], ANSWER, "{report}");
    assert_eq!(
        report["conversations"],
        serde_json::json!(["Greet Ada"]),
        "{report}"
    );
    assert_eq!(report["clearedMessages"], 0, "{report}");
    assert_eq!(report["reopenedToolCalls"], 1, "{report}");
    let app = &report["chatApp"];
    assert_eq!(app["sandbox"], "allow-scripts", "{report}");
    assert_eq!(app["input"], "input start=41", "{report}");
    assert_eq!(app["result"], "result 42", "{report}");
    assert_eq!(app["added"], "app called add: 52", "{report}");
    assert!(
        report["chatError"]
            .as_str()
            .is_some_and(|s| s.contains("the model is overloaded")),
        "{report}"
    );
    assert_eq!(report["chatStatus"], "Stopped by an error.", "{report}");
    assert_eq!(
        report["console"],
        serde_json::json!([]),
        "browser errors: {report}"
    );

    // What the UI made, through the CLI.
    let agents = sky.cli(&["agents", "ls"]);
    assert!(
        agents.stdout.lines().any(|l| l.starts_with("greeter ")
            && l.contains("scripted-model")
            && l.contains("hello")),
        "{agents}"
    );
    let shown = sky.cli(&["agents", "show", "greeter", "--json"]).json();
    assert_eq!(shown["instructions"], "You greet people.", "{shown}");
    let refused = sky.cli(&["providers", "rm", "local"]);
    assert!(!refused.success, "{refused}");
    assert!(refused.stderr.contains("'greeter'"), "{refused}");
    let removed = sky.cli(&["agents", "rm", "greeter"]);
    assert!(removed.success, "{removed}");
    let removed = sky.cli(&["providers", "rm", "local"]);
    assert!(removed.success, "{removed}");
    drop(runtime);
}
