//! API keys end to end: `skyport keys create/ls/revoke`, servers deployed with `--auth on|off`,
//! the official `mcp` SDK sending a key, the `401` a client without one gets (and the protected
//! resource metadata it points to), identity headers that reach the server while forged ones do
//! not, and the per-key rate limit.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use skyport_e2e::{HttpResponse, Skyport, http, wait_until};

/// A FastMCP server whose tool answers with every header its request arrived with.
const HEADERS_SERVER: &str = r#"from fastmcp import FastMCP
from fastmcp.server.dependencies import get_http_headers

mcp = FastMCP("headers")


@mcp.tool
def headers() -> dict:
    """The headers of the HTTP request that called this tool, all of them."""
    return get_http_headers(include_all=True)
"#;

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"0"}}}"#;

/// A folder holding [`HEADERS_SERVER`], ready to deploy.
pub(crate) fn headers_server(sky: &Skyport) -> PathBuf {
    let dir = sky.scratch().join("headers");
    fs::create_dir_all(&dir).expect("create the server folder");
    fs::write(dir.join("main.py"), HEADERS_SERVER).expect("write the server");
    dir
}

/// `initialize` over raw HTTP with an optional bearer key.
pub(crate) fn initialize(sky: &Skyport, server: &str, key: Option<&str>) -> HttpResponse {
    let bearer = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![
        ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"),
    ];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer.as_str()));
    }
    let path = format!("/servers/{server}/mcp");
    http(&sky.addr(), "POST", &path, &headers, Some(INITIALIZE))
        .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", sky.log_tail(40)))
}

/// Calls the `headers` tool with the `mcp` SDK; the headers the server saw, or the client's error.
pub(crate) fn seen_headers(
    sky: &Skyport,
    server: &str,
    key: Option<&str>,
    extra: &[&str],
) -> Result<serde_json::Value, String> {
    headers_via(sky, server, "headers", key, extra)
}

/// Calls `tool`, one that answers with its request's headers (as [`HEADERS_SERVER`]'s does),
/// with the `mcp` SDK; the headers the server saw, or the client's error.
pub(crate) fn headers_via(
    sky: &Skyport,
    server: &str,
    tool: &str,
    key: Option<&str>,
    extra: &[&str],
) -> Result<serde_json::Value, String> {
    let url = sky.mcp_url(server);
    let mut args = vec![url.as_str(), key.unwrap_or("-"), tool, "{}"];
    args.extend_from_slice(extra);
    let (run, v) = sky.client("key_client.py", &args);
    if v["ok"] != true {
        return Err(format!("{v}\n{run}"));
    }
    let text = v["text"].as_str().unwrap_or_default();
    serde_json::from_str(text).map_err(|e| format!("tool answer is not JSON ({e}): {text}"))
}

#[test]
fn keys_guard_servers_with_auth_and_identify_callers() {
    let sky = Skyport::serve();
    let source = headers_server(&sky);
    for (name, auth) in [("guarded", "on"), ("open", "off")] {
        let run = sky.deploy(&source, name, &["--auth", auth]);
        assert!(run.success, "deploy {name}\n{run}\n{}", sky.log_tail(40));
    }
    let shown = sky.cli(&["servers", "show", "guarded", "--json"]);
    assert!(shown.success, "{shown}");
    assert_eq!(shown.json()["settings"]["auth"], true, "{shown}");

    let created = sky.cli(&["keys", "create", "--name", "e2e", "--expires", "1d"]);
    assert!(created.success, "{created}");
    let key = created.stdout.trim().to_owned();
    assert!(key.starts_with("sk_") && !key.contains('\n'), "{created}");
    assert!(
        created.stderr.contains("will not be shown again"),
        "{created}"
    );

    // The key works with the official SDK; the server sees who calls, never the credential or a
    // forged identity, and does see other custom headers.
    let forged = [
        "skyport-user-id=forged",
        "skyport-roles=root",
        "x-tenant=acme",
    ];
    let seen = seen_headers(&sky, "guarded", Some(&key), &forged)
        .unwrap_or_else(|e| panic!("a valid key was refused: {e}\n{}", sky.log_tail(40)));
    let user = seen["skyport-user-id"].as_str().unwrap_or_default();
    assert!(user.starts_with("prn_"), "skyport-user-id: {seen}");
    assert_eq!(seen["skyport-roles"], "admin", "{seen}");
    assert_eq!(seen["x-tenant"], "acme", "{seen}");
    assert!(
        seen.get("authorization").is_none(),
        "the key reached the server: {seen}"
    );

    // Without a key: 401, pointing at metadata that names the server's URL.
    let refused = initialize(&sky, "guarded", None);
    assert_eq!(refused.status, 401, "{refused:?}");
    let metadata_path = "/.well-known/oauth-protected-resource/servers/guarded/mcp";
    let challenge = refused.header("www-authenticate").unwrap_or_default();
    assert_eq!(
        challenge,
        format!("Bearer resource_metadata=\"{}{metadata_path}\"", sky.url()),
        "{refused:?}"
    );
    let body = refused.json().unwrap_or_default();
    assert!(
        body["error"]["message"].as_str().is_some(),
        "not a JSON-RPC error: {refused:?}"
    );
    let metadata = http(&sky.addr(), "GET", metadata_path, &[], None).expect("GET the metadata");
    assert_eq!(metadata.status, 200, "{metadata:?}");
    let document = metadata.json().unwrap_or_default();
    assert_eq!(document["resource"], sky.mcp_url("guarded"), "{document}");
    assert_eq!(
        document["bearer_methods_supported"],
        serde_json::json!(["header"])
    );
    assert!(
        seen_headers(&sky, "guarded", None, &[]).is_err(),
        "no key was let in"
    );

    // A server with auth off takes anonymous calls, whose forged identity is dropped too.
    let anonymous = seen_headers(&sky, "open", None, &forged)
        .unwrap_or_else(|e| panic!("auth off refused a call: {e}"));
    assert!(anonymous.get("skyport-user-id").is_none(), "{anonymous}");
    assert_eq!(anonymous["x-tenant"], "acme", "{anonymous}");

    let listed = sky.cli(&["keys", "ls", "--json"]);
    assert!(listed.success, "{listed}");
    let keys = listed.json();
    let ours = keys
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["name"] == "e2e"))
        .unwrap_or_else(|| panic!("keys ls does not list e2e: {keys}"));
    assert_eq!(ours["state"], "active", "{ours}");
    assert!(ours["expires_at"].is_string(), "{ours}");
    assert!(!listed.stdout.contains(&key), "keys ls shows a secret");
    let table = sky.cli(&["keys", "ls"]);
    assert!(table.success && table.stdout.contains("e2e"), "{table}");

    // Revoked: refused at once (the keyring follows the store), by the SDK too.
    let revoked = sky.cli(&["keys", "revoke", "e2e"]);
    assert!(
        revoked.success && revoked.stdout.contains("revoked"),
        "{revoked}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || initialize(
            &sky,
            "guarded",
            Some(&key)
        )
        .status
            == 401),
        "a revoked key still works"
    );
    assert!(
        seen_headers(&sky, "guarded", Some(&key), &[]).is_err(),
        "revoked key let in"
    );
    let again = sky.cli(&["keys", "revoke", "e2e"]);
    assert!(
        !again.success && again.output().contains("no live key"),
        "{again}"
    );

    // The per-server settings are changed and shown.
    let set = sky.cli(&[
        "servers",
        "set",
        "guarded",
        "--request-timeout",
        "30s",
        "--auth",
        "default",
    ]);
    assert!(set.success, "{set}");
    assert!(set.stdout.contains("request timeout 30s"), "{set}");
    assert!(set.stdout.contains("auth off (platform default)"), "{set}");
}

#[test]
fn a_key_past_its_rate_limit_is_told_when_to_retry() {
    let sky = Skyport::serve_with(&["--rate-limit", "2/m", "--rate-limit-burst", "2"]);
    let created = sky.cli(&["keys", "create"]);
    assert!(created.success, "{created}");
    let key = created.stdout.trim().to_owned();
    // The limit is checked after authentication, before routing: no server needs to exist.
    for _ in 0..2 {
        let passed = initialize(&sky, "nowhere", Some(&key));
        assert_eq!(passed.status, 404, "{passed:?}");
    }
    let limited = initialize(&sky, "nowhere", Some(&key));
    assert_eq!(limited.status, 429, "{limited:?}");
    let retry: u64 = limited
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in seconds: {limited:?}"));
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let body = limited.json().unwrap_or_default();
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("rate limit"), "{limited:?}");
    // Requests without a key are not limited.
    assert_eq!(initialize(&sky, "nowhere", None).status, 404);
}
