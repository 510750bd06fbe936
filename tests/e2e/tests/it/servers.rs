//! Managing servers from the CLI: list, show, remove (and removal stops serving and its instance).

use std::time::Duration;

use skyport_e2e::{Skyport, example, find_named, http, wait_until};

#[test]
fn servers_ls_show_rm() {
    let mut sky = Skyport::serve();
    sky.deploy_ok(&example("hello"), "hello");
    sky.check_hello("hello", "ls");
    let instances = sky.instances();

    let run = sky.cli(&["servers", "ls", "--json"]);
    assert!(run.success, "{run}");
    let listed = run.json();
    let hello =
        find_named(&listed, "hello").unwrap_or_else(|| panic!("servers ls lacks hello\n{run}"));
    assert!(
        hello.to_string().contains("/servers/hello/mcp"),
        "servers ls shows no MCP URL for hello: {hello}"
    );

    let run = sky.cli(&["servers", "show", "hello", "--json"]);
    assert!(run.success, "{run}");
    assert!(
        find_named(&run.json(), "hello").is_some(),
        "servers show hello does not describe hello\n{run}"
    );

    let run = sky.cli(&["servers", "rm", "hello"]);
    assert!(run.success, "{run}");
    let headers = [
        ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"),
    ];
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"0"}}}"#;
    let gone = http(
        &sky.addr(),
        "POST",
        "/servers/hello/mcp",
        &headers,
        Some(init),
    )
    .expect("POST after rm");
    assert_eq!(gone.status, 404, "a removed server still answers: {gone:?}");
    let stopped = wait_until(Duration::from_secs(15), || {
        instances.iter().all(|p| !p.alive())
    });
    assert!(
        stopped,
        "the removed server's instance still runs: {instances:?}\n{}",
        sky.log_tail(40)
    );
}
