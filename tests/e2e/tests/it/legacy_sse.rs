//! Legacy HTTP+SSE (2024-11-05) clients through the gateway's `/servers/{name}/sse` bridge: the
//! official `mcp` SDK's `sse_client` and the FastMCP `Client`'s `SSETransport` list and call tools,
//! and keep their session when the instance behind it is killed; bad messages are refused.

use skyport_e2e::{Skyport, example};

fn sse_url(sky: &Skyport, server: &str) -> String {
    format!("{}/servers/{server}/sse", sky.url())
}

#[test]
fn legacy_sse_clients_keep_their_session_across_an_instance_kill() {
    let mut sky = Skyport::serve();
    sky.deploy_ok(&example("hello"), "hello");
    let url = sse_url(&sky, "hello");

    let (run, v) = sky.client("legacy_client.py", &["sdk", &url]);
    assert_eq!(v["ok"], true, "mcp sse_client\n{run}\n{}", sky.log_tail(40));
    assert_eq!(v["tools"], serde_json::json!(["hello"]), "{v}");
    assert_eq!(v["text"], "Hello, e2e!", "{v}");

    for client in ["sdk", "fastmcp"] {
        let instances = sky.instances();
        assert_eq!(
            instances.len(),
            1,
            "one instance should serve hello before the {client} run: {instances:?}"
        );
        let pid = instances[0].pid.to_string();
        let (run, v) = sky.client("legacy_client.py", &[client, &url, &pid]);
        assert_eq!(
            v["ok"],
            true,
            "{client} over legacy SSE, instance {pid} killed mid-session\n{run}\n{}",
            sky.log_tail(60)
        );
        assert_eq!(v["text"], "Hello, e2e!", "{client}: {v}");
        assert_eq!(v["after"], "Hello, after-kill!", "{client}: {v}");
    }
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
