//! Packaged servers: stdio MCP servers published on PyPI (`mcp-server-time`) and npm
//! (`@modelcontextprotocol/server-everything`), deployed by name, installed from the registries
//! at build time and served through the gateway by the stdio bridge. One serve holds every
//! case: listing and calling in both protocol eras with the official SDK, stderr in the logs, a
//! server process killed in the middle of a call, a `server.json` whose required variable is
//! missing, and packages that do not exist.

use std::time::Duration;

use skyport_e2e::{DEPLOY_TIMEOUT, Run, Skyport, descendants, signal, wait_until};

/// The SDK's protocol modes: sessions, stateless 2026-07-28, and negotiation by discovery.
const MODES: [&str; 3] = ["legacy", "2026-07-28", "auto"];

fn deploy(sky: &Skyport, args: &[&str]) -> Run {
    let mut all = vec!["deploy"];
    all.extend_from_slice(args);
    sky.cli_bounded(&all, DEPLOY_TIMEOUT)
}

fn deploy_ok(sky: &Skyport, args: &[&str], name: &str) {
    let run = deploy(sky, args);
    assert!(
        run.success && run.stdout.contains(&format!("/servers/{name}/mcp")),
        "deploy {args:?} failed\n{run}\n{}",
        sky.log_tail(40)
    );
}

/// Lists the tools of `server` and calls `tool` in every protocol mode; returns the texts.
fn call_in_every_mode(
    sky: &Skyport,
    server: &str,
    tool: &str,
    args: &str,
    wanted: &[&str],
) -> Vec<String> {
    let url = sky.mcp_url(server);
    MODES
        .iter()
        .map(|mode| {
            let (run, v) = sky.client("packaged_client.py", &["tools", &url, mode, tool, args]);
            assert_eq!(
                v["ok"],
                true,
                "{server} in mode {mode}\n{run}\n{}",
                sky.log_tail(40)
            );
            let tools: Vec<&str> = v["tools"]
                .as_array()
                .map(|t| t.iter().filter_map(|n| n.as_str()).collect())
                .unwrap_or_default();
            for name in wanted {
                assert!(
                    tools.contains(name),
                    "{server} in mode {mode} lists no {name}: {v}"
                );
            }
            v["text"].as_str().unwrap_or_default().to_owned()
        })
        .collect()
}

fn live_entrypoint(sky: &Skyport, server: &str) -> String {
    let run = sky.cli(&["deployments", server, "--json"]);
    assert!(run.success, "{run}");
    run.json()["deployments"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["status"] == "ready"))
        .and_then(|d| d["entrypoint"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn packaged_stdio_servers_from_pypi_and_npm() {
    let sky = Skyport::serve();

    // PyPI, with an argument for the server after `--`.
    deploy_ok(
        &sky,
        &[
            "pypi:mcp-server-time",
            "--name",
            "time",
            "--",
            "--local-timezone",
            "Europe/Paris",
        ],
        "time",
    );
    let entry = live_entrypoint(&sky, "time");
    assert!(
        entry.starts_with("pypi:mcp-server-time==") && entry.ends_with("(mcp-server-time)"),
        "the deployment does not record the resolved version: {entry}"
    );
    for text in call_in_every_mode(
        &sky,
        "time",
        "get_current_time",
        r#"{"timezone":"Asia/Tokyo"}"#,
        &["get_current_time", "convert_time"],
    ) {
        assert!(
            text.contains("Asia/Tokyo") && text.contains("datetime"),
            "{text}"
        );
    }

    // npm; its stderr lands in the server's logs.
    deploy_ok(
        &sky,
        &[
            "npm:@modelcontextprotocol/server-everything",
            "--name",
            "everything",
        ],
        "everything",
    );
    assert!(
        live_entrypoint(&sky, "everything")
            .starts_with("npm:@modelcontextprotocol/server-everything@"),
        "{}",
        live_entrypoint(&sky, "everything")
    );
    for text in call_in_every_mode(
        &sky,
        "everything",
        "echo",
        r#"{"message":"packaged"}"#,
        &["echo", "get-sum"],
    ) {
        assert_eq!(text, "Echo: packaged");
    }
    let logs = sky.cli(&["logs", "everything"]);
    assert!(
        logs.stdout.contains("Starting default (STDIO) server"),
        "the stdio server's stderr is not in its logs\n{logs}"
    );

    serving_http_itself(&sky);
    crash_mid_call(&sky);
    required_variables(&sky);
    missing_packages(&sky);
}

/// A package that starts an HTTP server of its own gets its port from the runtime (here in
/// `PORT`) and is proxied like a repository deployment. It speaks the session era only, so
/// the SDK's negotiation (`auto`) falls back to it.
fn serving_http_itself(sky: &Skyport) {
    deploy_ok(
        sky,
        &[
            "npm:@modelcontextprotocol/server-everything",
            "--name",
            "everything-http",
            "--port-env",
            "PORT",
            "--",
            "streamableHttp",
        ],
        "everything-http",
    );
    let url = sky.mcp_url("everything-http");
    for mode in ["legacy", "auto"] {
        let (run, v) = sky.client(
            "packaged_client.py",
            &["tools", &url, mode, "echo", r#"{"message":"over http"}"#],
        );
        assert_eq!(
            v["text"],
            "Echo: over http",
            "{mode}\n{run}\n{}",
            sky.log_tail(30)
        );
    }
    let logs = sky.cli(&["logs", "everything-http"]);
    assert!(
        logs.stdout
            .contains("Streamable HTTP Server listening on port"),
        "{logs}"
    );
    let bridged = descendants(sky.pid())
        .iter()
        .map(|p| p.cmdline())
        .any(|c| c.contains(" bridge ") && c.contains("streamableHttp"));
    assert!(
        !bridged,
        "a package serving HTTP runs behind the stdio bridge"
    );
}

/// The server process dies during a call: the client gets a JSON-RPC error saying so, and its
/// next call in the same session works (a new process, the session replayed by the gateway).
fn crash_mid_call(sky: &Skyport) {
    let marker = sky.scratch().join("long-call-started");
    let url = sky.mcp_url("everything");
    let marker_text = marker.to_string_lossy().into_owned();
    let (run, v) = std::thread::scope(|scope| {
        let client =
            scope.spawn(|| sky.client("packaged_client.py", &["crash", &url, &marker_text]));
        assert!(
            wait_until(Duration::from_secs(60), || marker.exists()),
            "the crash client never started its long call\n{}",
            sky.log_tail(40)
        );
        // The call is on its way; give it a moment to reach the server, then kill every
        // process of the package (not the bridges, which must survive).
        std::thread::sleep(Duration::from_millis(1500));
        let servers: Vec<_> = descendants(sky.pid())
            .into_iter()
            .filter(|p| {
                let cmdline = p.cmdline();
                cmdline.contains("server-everything/") && !cmdline.contains(" bridge ")
            })
            .collect();
        assert!(!servers.is_empty(), "no process of the package runs");
        for server in &servers {
            signal(&server.pid.to_string(), "KILL");
        }
        client.join().expect("the crash client thread")
    });
    assert_eq!(v["ok"], true, "{run}\n{}", sky.log_tail(40));
    assert_eq!(v["before"], "Echo: before", "{v}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("stdio server exited") && error.contains("killed by signal 9"),
        "the error does not say the server died: {error}"
    );
    assert_eq!(v["after"], "Echo: after", "the next call failed: {v}");
}

/// A server.json package declaring a required variable is refused until it is set.
fn required_variables(sky: &Skyport) {
    let server_json = sky.scratch().join("server.json");
    std::fs::write(
        &server_json,
        r#"{
  "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
  "name": "io.github.example/clock",
  "version": "1.0.0",
  "packages": [{
    "registryType": "pypi",
    "identifier": "mcp-server-time",
    "transport": {"type": "stdio"},
    "packageArguments": [{"type": "named", "name": "--local-timezone", "value": "Asia/Tokyo"}],
    "environmentVariables": [
      {"name": "CLOCK_TOKEN", "isRequired": true, "isSecret": true, "description": "a token"},
      {"name": "CLOCK_COLOR", "description": "optional"}
    ]
  }]
}"#,
    )
    .expect("write server.json");
    let path = server_json.to_string_lossy().into_owned();
    let refused = deploy(sky, &[&path, "--package", "0", "--name", "clock"]);
    assert!(
        !refused.success,
        "deployed without its required variable\n{refused}"
    );
    assert!(
        refused.stderr.contains("CLOCK_TOKEN")
            && refused
                .stderr
                .contains("skyport env set clock CLOCK_TOKEN=VALUE")
            && !refused.stderr.contains("CLOCK_COLOR"),
        "the refusal does not name the variable and how to set it\n{refused}"
    );
    let wrong_index = deploy(sky, &[&path, "--package", "3", "--name", "clock"]);
    assert!(
        !wrong_index.success && wrong_index.stderr.contains("pick one with --package"),
        "{wrong_index}"
    );
    // Set with the deploy, as a secret; and the server marked shared (it keeps no state per
    // client), so its sessions share one process.
    deploy_ok(
        sky,
        &[
            &path,
            "--package",
            "0",
            "--name",
            "clock",
            "--env",
            "CLOCK_TOKEN=s3cret",
            "--secret",
            "--stdio-shared",
            "on",
        ],
        "clock",
    );
    for mode in ["legacy", "2026-07-28"] {
        let (run, v) = sky.client(
            "packaged_client.py",
            &[
                "tools",
                &sky.mcp_url("clock"),
                mode,
                "get_current_time",
                r#"{"timezone":"Europe/Paris"}"#,
            ],
        );
        assert_eq!(v["ok"], true, "{mode}\n{run}");
    }
    let shown = sky.cli(&["servers", "show", "clock", "--json"]);
    assert_eq!(shown.json()["settings"]["stdio_shared"], true, "{shown}");
    let clocks: Vec<String> = descendants(sky.pid())
        .iter()
        .map(|p| p.cmdline())
        .filter(|c| c.contains(" bridge ") && c.contains("--local-timezone Asia/Tokyo"))
        .collect();
    assert!(
        clocks.len() == 1 && clocks[0].contains("--shared"),
        "the shared server's bridge: {clocks:?}"
    );
}

/// Packages that do not exist fail the build as a dependency problem, naming the registry.
fn missing_packages(sky: &Skyport) {
    for (source, says) in [
        (
            "pypi:skyport-e2e-no-such-package",
            "could not be installed from PyPI",
        ),
        (
            "npm:skyport-e2e-no-such-package",
            "does not exist on the npm registry",
        ),
    ] {
        let run = deploy(sky, &[source, "--name", "missing"]);
        assert!(!run.success, "{source} deployed\n{run}");
        assert!(
            run.stderr.contains("failed (dependencies:") && run.stderr.contains(says),
            "{source}: not a classified dependency failure\n{run}"
        );
    }
    let bad = deploy(sky, &["pypi:mcp-server-time>=1", "--name", "missing"]);
    assert!(
        !bad.success && bad.stderr.contains("exact version"),
        "a version range was accepted\n{bad}"
    );
}
