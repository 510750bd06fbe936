//! The web UI in headless Chromium (playwright-core driving the system's `chromium`, script
//! `clients/ui_browser.cjs`): an org admin logs in, deploys `hello` from a git repository with
//! the form and sees its build log, calls `hello` in the Inspector, rolls back from the
//! deployments tab, reads the logs, opens the MCP App of the `apps` fixture (its page
//! rendered in the sandboxed iframe, and its own tool call through the host), fills a form
//! built from a schema with arrays, a nested object, an enum and a boolean, and sees a call's
//! progress and log notifications; a viewer sees no
//! rollback button and is refused when posting one anyway. Another serve (sampling metrics
//! every second) has the admin set a secret from the environment form (listed masked), create
//! an API key in the settings that then works against `/api/v1`, see the metrics tab chart
//! the calls made before, and find the server in the registry browser. Screenshots land in `target/ui-screenshots/`.

use std::path::PathBuf;

use skyport_e2e::{
    CLIENT_TIMEOUT, GitRepo, Skyport, command, deployments_of, example, fixture, node_tools,
    run_bounded, workspace_root,
};

use crate::access::printed_admin_password;

/// The Chromium to drive: `SKYPORT_TEST_CHROMIUM`, else the Debian package's.
fn chromium() -> PathBuf {
    let path = std::env::var_os("SKYPORT_TEST_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.exists(),
        "chromium not found at {}: install it (`apt-get install -y chromium`) or set SKYPORT_TEST_CHROMIUM",
        path.display()
    );
    path
}

/// Runs the browser script for `scenario` and returns its report; panics with the report
/// (and the serve's log) when a step failed.
pub(crate) fn browse(
    sky: &Skyport,
    scenario: &str,
    user: &str,
    password: &str,
    extra: serde_json::Value,
) -> serde_json::Value {
    let (node, bin) = node_tools();
    let modules = bin.parent().expect("node_modules above .bin").to_path_buf();
    let shots = workspace_root().join("target/ui-screenshots");
    std::fs::create_dir_all(&shots).expect("create the screenshot folder");
    let mut spec = serde_json::json!({
        "scenario": scenario,
        "url": sky.url(),
        "user": user,
        "password": password,
        "shots": shots,
        "chromium": chromium(),
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    let script = workspace_root().join("tests/e2e/clients/ui_browser.cjs");
    let mut cmd = command(&node);
    cmd.arg(&script)
        .arg(spec.to_string())
        .env("NODE_PATH", &modules);
    let run = run_bounded(cmd, sky.scratch(), CLIENT_TIMEOUT * 4);
    let report: serde_json::Value = run
        .stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no report from the browser script\n{run}"));
    assert!(
        report.get("error").is_none(),
        "the browser failed at step {}: {}\nreport: {report}\n{}",
        report["step"],
        report["error"],
        sky.log_tail(60)
    );
    report
}

#[test]
fn admin_deploys_inspects_rolls_back_and_opens_an_app_viewer_is_refused() {
    // `scripts/test` sets this only on machines where it could not install chromium, and says so.
    if std::env::var_os("SKYPORT_SKIP_BROWSER").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED: SKYPORT_SKIP_BROWSER=1 (no chromium on this machine)");
        return;
    }
    let sky = Skyport::serve();
    let password = printed_admin_password(&sky);
    // A first deployment from the CLI, so the form's deployment has one to roll back to.
    sky.deploy_ok(&example("hello"), "hello");
    sky.deploy_ok(&fixture("apps"), "apps");
    let first = deployments_of(&sky.cli(&["deployments", "hello", "--json"]).json());
    let first_id = first[0]["id"].as_str().expect("a deployment id").to_owned();

    let repo = GitRepo::new(sky.scratch(), "hello");
    let source = std::fs::read_to_string(example("hello").join("main.py")).expect("read hello");
    repo.commit("main.py", &source, "Ada", "hello from the form");
    repo.push("main");

    let report = browse(
        &sky,
        "admin",
        "admin",
        &password,
        serde_json::json!({ "gitUrl": repo.url(), "appServer": "apps" }),
    );
    assert_eq!(report["redirectedToLogin"], true, "{report}");
    assert!(
        report["deployStatus"]
            .as_str()
            .is_some_and(|s| s.contains("Deployed")),
        "{report}"
    );
    let log = report["buildLog"].as_str().unwrap_or_default();
    assert!(
        log.contains("[source]") && log.contains("[promote]"),
        "build log: {log}"
    );
    assert!(
        report["helloResult"]
            .as_str()
            .is_some_and(|s| s.contains("Hello, Ada!") && s.contains(" ms")),
        "{report}"
    );
    assert_eq!(report["rollbackTarget"], first_id.as_str(), "{report}");
    let shown = sky.cli(&["servers", "show", "hello", "--json"]).json();
    assert_eq!(
        shown["live_deployment"],
        first_id.as_str(),
        "the rollback did not take: {shown}"
    );
    assert!(
        report["logLines"].as_u64().is_some_and(|n| n > 0),
        "{report}"
    );
    let app = &report["app"];
    assert_eq!(app["sandbox"], "allow-scripts", "{report}");
    assert_eq!(app["title"], "Counter app in skyport", "{report}");
    assert_eq!(app["input"], "input start=41", "{report}");
    assert_eq!(app["result"], "result 42", "{report}");
    assert_eq!(app["added"], "app called add: 52", "{report}");
    assert_eq!(
        report["console"],
        serde_json::json!([]),
        "browser errors: {report}"
    );

    // A viewer: no rollback button, and the API refuses a rollback posted by hand.
    let added = sky.cli(&["users", "add", "vera"]);
    assert!(added.success, "{added}");
    let vera_password = added.stdout.trim().to_owned();
    let granted = sky.cli(&["access", "grant", "hello", "vera", "viewer"]);
    assert!(granted.success, "{granted}");
    let report = browse(
        &sky,
        "viewer",
        "vera",
        &vera_password,
        serde_json::json!({}),
    );
    assert!(report["rows"].as_u64().is_some_and(|n| n >= 2), "{report}");
    assert_eq!(report["rollbackButtons"], 0, "{report}");
    assert_eq!(report["deployLinks"], 0, "{report}");
    assert_eq!(report["forcedRollback"]["status"], 403, "{report}");
    let still = sky.cli(&["servers", "show", "hello", "--json"]).json();
    assert_eq!(
        still["live_deployment"],
        first_id.as_str(),
        "a viewer moved the live deployment"
    );
}

/// `GET url` with `key` as bearer, the way any HTTP client (curl, a script) would use a key
/// made in the settings page; returns the status and the body.
fn get_with_key(url: &str, key: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the HTTP client");
    // The workspace's reqwest leaves the TLS provider to the program (as the CLI does).
    let _ = rustls::crypto::ring::default_provider().install_default();
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(key)
            .timeout(CLIENT_TIMEOUT)
            .send()
            .await
            .expect("the API answers");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    })
}

#[test]
fn admin_sets_a_secret_creates_a_key_and_sees_metrics_charts() {
    if std::env::var_os("SKYPORT_SKIP_BROWSER").is_some_and(|v| v == "1") {
        eprintln!("SKIPPED: SKYPORT_SKIP_BROWSER=1 (no chromium on this machine)");
        return;
    }
    // One sample a second instead of a minute, so the charts have points within the test.
    let sky = Skyport::serve_with(&["--metrics-interval", "1s"]);
    let password = printed_admin_password(&sky);
    sky.deploy_ok(&example("hello"), "hello");
    for _ in 0..3 {
        let called = sky.cli(&["mcp", "call", "hello", "hello", "name=Ada"]);
        assert!(called.success, "{called}");
    }

    let secret = "s3cr3t-from-the-form";
    let report = browse(
        &sky,
        "forms",
        "admin",
        &password,
        serde_json::json!({ "server": "hello", "secret": secret }),
    );

    // The secret is listed, masked, and never reached the page.
    assert!(
        report["envNotice"]
            .as_str()
            .is_some_and(|n| n.contains("next deployment")),
        "{report}"
    );
    let rows = report["envRows"].as_array().expect("the variables' rows");
    assert!(
        rows.iter()
            .any(|r| r.as_str().is_some_and(|r| r.contains("API_TOKEN")
                && r.contains("••••••")
                && r.contains("secret"))),
        "{report}"
    );
    assert_eq!(report["secretOnPage"], false, "{report}");
    assert!(
        report["envError"]
            .as_str()
            .is_some_and(|e| e.contains("9LIVES")),
        "{report}"
    );
    let listed = sky.cli(&["env", "ls", "hello", "--json"]);
    assert!(listed.success, "{listed}");
    assert!(listed.stdout.contains("API_TOKEN"), "{listed}");
    assert!(!listed.stdout.contains(secret), "{listed}");

    // The key made in the settings works against the REST API, as the admin.
    let key = report["keySecret"].as_str().expect("the key's secret");
    let (status, body) = get_with_key(&format!("{}/api/v1/servers", sky.url()), key);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"hello\""), "{body}");
    let (status, body) = get_with_key(&format!("{}/api/v1/keys", sky.url()), key);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"e2e-key\""), "{body}");
    let (status, _) = get_with_key(&format!("{}/api/v1/servers", sky.url()), "sk_not_a_key");
    assert_eq!(status, 401);

    // The traffic above is charted.
    assert!(
        report["charts"].as_u64().is_some_and(|n| n == 5),
        "{report}"
    );
    assert!(
        report["requestBars"].as_u64().is_some_and(|n| n >= 1),
        "{report}"
    );
    let label = report["requestsChart"].as_str().unwrap_or_default();
    assert!(
        !label.contains("highest 0;"),
        "no requests charted: {label}"
    );
    // The registry lists the catalog and finds the server by name.
    let hosted = report["catalogHosted"]
        .as_array()
        .expect("the hosted entries");
    assert!(
        hosted
            .iter()
            .any(|e| e.as_str().is_some_and(|e| e.contains("hello"))),
        "{report}"
    );
    assert_eq!(
        report["searchMatches"],
        serde_json::json!(["hello"]),
        "{report}"
    );
    // The one error the browser logs is the refused form's page, answered with its 400.
    assert_eq!(
        report["console"],
        serde_json::json!([
            "Failed to load resource: the server responded with a status of 400 (Bad Request)"
        ]),
        "browser errors: {report}"
    );
}
