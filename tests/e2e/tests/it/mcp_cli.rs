//! `skyport mcp list|call|inspect` and `skyport connect` against a real serve: a server by
//! name (through the gateway, with the CLI's credential, on a server with auth on) and by URL,
//! a failing call, and a client configuration printed and merged into an existing file.

use skyport_e2e::{Skyport, example};

#[test]
fn mcp_verbs_list_call_and_inspect_a_server_by_name_and_by_url() {
    let sky = Skyport::serve();
    let deployed = sky.deploy(&example("hello"), "hello", &["--auth", "on"]);
    assert!(deployed.success, "{deployed}");
    let anonymous = skyport_e2e::http(&sky.addr(), "POST", "/servers/hello/mcp", &[], Some("{}"))
        .expect("reach the gateway");
    assert_eq!(anonymous.status, 401, "auth is not on for hello");

    let listed = sky.cli(&["mcp", "list", "hello"]);
    assert!(listed.success, "{listed}");
    for expected in [
        "Tools:",
        "hello  Greet someone by name.",
        "resource://hello/about",
        "greet",
    ] {
        assert!(
            listed.stdout.contains(expected),
            "no {expected:?} in\n{listed}"
        );
    }
    let listed = sky.cli(&["mcp", "list", "hello", "--json"]).json();
    assert_eq!(listed["tools"][0]["name"], "hello", "{listed}");
    assert_eq!(listed["prompts"][0]["name"], "greet", "{listed}");

    let called = sky.cli(&["mcp", "call", "hello", "hello", "name=Ada"]);
    assert!(called.success, "{called}");
    assert_eq!(called.stdout.trim(), "Hello, Ada!");
    let called = sky
        .cli(&[
            "mcp",
            "call",
            "hello",
            "hello",
            "--json-args",
            r#"{"name": "Bo"}"#,
            "--json",
        ])
        .json();
    assert_eq!(called["content"][0]["text"], "Hello, Bo!", "{called}");

    let unknown = sky.cli(&["mcp", "call", "hello", "no_such_tool"]);
    assert!(
        !unknown.success,
        "calling an unknown tool succeeded: {unknown}"
    );
    let missing = sky.cli(&["mcp", "list", "nowhere"]);
    assert!(
        !missing.success && missing.output().contains("nowhere"),
        "{missing}"
    );

    let inspected = sky.cli(&["mcp", "inspect", &sky.mcp_url("hello")]).json();
    assert_eq!(
        inspected["initialize"]["serverInfo"]["name"], "hello",
        "{inspected}"
    );
    assert_eq!(
        inspected["resources"][0]["uri"], "resource://hello/about",
        "{inspected}"
    );
    assert!(inspected["resourceTemplates"].is_array(), "{inspected}");
}

#[test]
fn connect_prints_and_merges_client_configurations() {
    let sky = Skyport::serve();
    sky.deploy_ok(&example("hello"), "hello");
    let url = sky.mcp_url("hello");

    let printed = sky.cli(&["connect", "hello", "--client", "vscode"]);
    assert!(printed.success, "{printed}");
    let printed: serde_json::Value = serde_json::from_str(&printed.stdout).expect("JSON");
    assert_eq!(
        printed["servers"]["hello"]["url"],
        url.as_str(),
        "{printed}"
    );
    assert_eq!(printed["servers"]["hello"]["type"], "http", "{printed}");

    let file = sky.scratch().join("cursor/mcp.json");
    std::fs::create_dir_all(file.parent().expect("a parent")).expect("create a dir");
    let before =
        r#"{"theme": "dark", "mcpServers": {"other": {"url": "http://example.invalid/mcp"}}}"#;
    std::fs::write(&file, before).expect("write the client's file");
    let path = file.to_string_lossy();
    let written = sky.cli(&[
        "connect",
        "hello",
        "--client",
        "cursor",
        "--write",
        "--config",
        &path,
        "--key",
        "sk_example",
    ]);
    assert!(written.success, "{written}");
    let after: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read back")).expect("JSON");
    assert_eq!(after["theme"], "dark", "{after}");
    assert_eq!(
        after["mcpServers"]["other"]["url"], "http://example.invalid/mcp",
        "{after}"
    );
    assert_eq!(after["mcpServers"]["hello"]["url"], url.as_str(), "{after}");
    assert_eq!(
        after["mcpServers"]["hello"]["headers"]["Authorization"], "Bearer sk_example",
        "{after}"
    );
    let backup = std::fs::read_to_string(format!("{path}.bak")).expect("a backup");
    assert_eq!(backup, before);

    let bad = sky.cli(&["connect", "hello", "--client", "emacs"]);
    assert!(
        !bad.success && bad.output().contains("claude-desktop"),
        "{bad}"
    );
    std::fs::write(&file, "[1, 2]").expect("write a non-object");
    let refused = sky.cli(&[
        "connect", "hello", "--client", "cursor", "--write", "--config", &path,
    ]);
    assert!(
        !refused.success && refused.output().contains("JSON object"),
        "{refused}"
    );
}
