//! Legacy HTTP+SSE (2024-11-05) clients through the gateway's `/servers/{name}/sse` bridge: the
//! official `mcp` SDK's `sse_client` and the FastMCP `Client`'s `SSETransport` list and call tools,
//! and keep their session when the instance behind it is killed; bad messages are refused.

use std::time::Duration;

use skyport_e2e::{HeldClient, Skyport, example, signal, wait_until};

fn sse_url(sky: &Skyport, server: &str) -> String {
    format!("{}/servers/{server}/sse", sky.url())
}

#[test]
fn legacy_sse_clients_keep_their_session_across_an_instance_kill() {
    let mut sky = Skyport::serve();
    sky.deploy_ok(&example("hello"), "hello");
    let url = sse_url(&sky, "hello");
    let mut clients = Vec::new();
    for kind in ["sdk", "fastmcp"] {
        let (client, ready) = HeldClient::open(kind, "legacy_client.py", &["hold", kind, &url]);
        assert_eq!(
            ready["ready"],
            true,
            "{kind} client did not connect over legacy SSE: {ready}\n{}",
            sky.log_tail(40)
        );
        assert_eq!(
            ready["tools"],
            serde_json::json!(["hello"]),
            "{kind}: {ready}"
        );
        clients.push(client);
    }
    let mut all_say = |step: &str, sky: &Skyport| {
        for client in &mut clients {
            let answer = client.hello(step);
            assert_eq!(
                answer["text"],
                format!("Hello, {step}!"),
                "{} client over legacy SSE, {step}: {answer}\n{}",
                client.kind,
                sky.log_tail(40)
            );
        }
    };
    all_say("first", &sky);

    let instances = sky.instances();
    assert!(!instances.is_empty(), "no instance serves the sessions");
    for instance in &instances {
        signal(&instance.pid.to_string(), "KILL");
    }
    // Gone from the process table is not yet seen by the runtime (a forked instance is reaped by
    // its zygote, which then reports it): wait for the runtime's own record of the exit, so the
    // call tests the session's replay rather than a request racing the news of the death.
    let noticed = wait_until(Duration::from_secs(10), || {
        sky.instances().iter().all(|i| !instances.contains(i))
            && sky.log().matches("exited (killed by signal 9)").count() >= instances.len()
    });
    assert!(
        noticed,
        "the runtime did not notice the killed instance\n{}",
        sky.log_tail(20)
    );
    all_say("after-kill", &sky);
}

#[test]
fn legacy_sse_refuses_bad_messages() {
    let sky = Skyport::serve();
    sky.deploy_ok(&example("hello"), "hello");
    let (run, v) = sky.client("legacy_client.py", &["raw", &sse_url(&sky, "hello")]);
    assert_eq!(v["ok"], true, "raw SSE client\n{run}\n{}", sky.log_tail(40));
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["content_type"], "text/event-stream", "{v}");
    let endpoint = v["endpoint"].as_str().unwrap_or_default();
    assert!(
        endpoint.starts_with("/servers/hello/messages?sessionId="),
        "endpoint event: {v}"
    );
    assert_eq!(v["malformed"]["status"], 400, "malformed JSON: {v}");
    assert_eq!(
        v["malformed"]["body"]["error"]["code"], -32700,
        "malformed JSON: {v}"
    );
    assert_eq!(v["unknown"]["status"], 404, "unknown sessionId: {v}");
    assert_eq!(v["unknown"]["body"]["id"], 9, "unknown sessionId: {v}");
    assert_eq!(
        v["unknown"]["body"]["error"]["code"], -32001,
        "unknown sessionId: {v}"
    );
}
