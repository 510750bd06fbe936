//! Redeploy on push and previews, from a local bare repository: GitHub-format deliveries signed
//! with the server's webhook secret build the pushed commit (production on the tracked branch,
//! a preview server `NAME--BRANCH` on any other), a closed pull request removes its preview, a
//! bad signature builds nothing, a broken commit leaves the previous deployment serving; and
//! a server that polls its source finds a push without any webhook.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use skyport_e2e::{
    DEPLOY_TIMEOUT, GitRepo, Skyport, command, deployments_of, git, http, python, wait_until,
};

const SECRET: &str = "e2e-webhook-secret-0123456789";
/// Who commits in these tests.
const PUSHER: &str = "Pusher";

/// A server whose `version` tool answers `text`.
fn server_py(text: &str) -> String {
    format!(
        "from fastmcp import FastMCP\n\nmcp = FastMCP(\"pushed\")\n\n\n@mcp.tool\ndef version() -> str:\n    \"\"\"Which code is serving.\"\"\"\n    return \"{text}\"\n"
    )
}

/// `ROOT/app.git` holding one commit of `main.py` answering `v1` on `main`.
fn app_repo(root: &Path) -> GitRepo {
    let repo = GitRepo::new(root, "app");
    repo.commit("main.py", &server_py("v1"), PUSHER, "v1");
    repo.push("main");
    repo
}

/// `sha256=` and the HMAC-SHA256 of `body` under `secret`, computed by Python's `hmac`, as a
/// sender independent of Skyport's own code.
fn signature(secret: &str, body: &str) -> String {
    let out = command(python())
        .args([
            "-c",
            "import hmac, hashlib, sys; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())",
            secret,
            body,
        ])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("sha256={}", String::from_utf8_lossy(&out.stdout).trim())
}

/// Delivers `body` as GitHub would, signed with `secret`; returns the status and JSON answer.
fn deliver(sky: &Skyport, server: &str, event: &str, body: &str, secret: &str) -> (u16, Value) {
    let signature = signature(secret, body);
    let headers = [
        ("Content-Type", "application/json"),
        ("X-GitHub-Event", event),
        ("X-Hub-Signature-256", signature.as_str()),
    ];
    let path = format!("/hooks/github/{server}");
    let response = http(&sky.addr(), "POST", &path, &headers, Some(body)).expect("deliver");
    let answer = response.json().unwrap_or(Value::Null);
    (response.status, answer)
}

fn push_payload(branch: &str, sha: &str) -> String {
    serde_json::json!({
        "ref": format!("refs/heads/{branch}"),
        "before": "0".repeat(40),
        "after": sha,
        "deleted": false,
        "repository": {"full_name": "acme/app"},
    })
    .to_string()
}

fn deployments(sky: &Skyport, server: &str) -> Vec<Value> {
    let run = sky.cli(&["deployments", server, "--json"]);
    assert!(run.success, "{run}");
    deployments_of(&run.json())
}

/// Waits (bounded) until deployment `id` of `server` is ready or failed; returns it.
fn settled(sky: &Skyport, server: &str, id: &str) -> Value {
    let mut last = Value::Null;
    let done = wait_until(DEPLOY_TIMEOUT, || {
        last = deployments(sky, server)
            .into_iter()
            .find(|d| d["id"] == id)
            .unwrap_or(Value::Null);
        matches!(last["status"].as_str(), Some("ready" | "failed"))
    });
    assert!(
        done,
        "deployment {id} did not finish: {last}\n{}",
        sky.log_tail(60)
    );
    last
}

/// What the `version` tool of `server` answers through the gateway.
fn version(sky: &Skyport, server: &str) -> String {
    let url = sky.mcp_url(server);
    let (run, v) = sky.client("sdk_client.py", &["call", &url, "version", "{}"]);
    assert_eq!(v["ok"], true, "{url}\n{run}\n{}", sky.log_tail(40));
    v["text"].as_str().unwrap_or_default().to_owned()
}

fn deploy_tracking_main(sky: &Skyport, repo: &GitRepo) {
    let run = sky.cli_bounded(
        &[
            "deploy",
            &repo.bare.to_string_lossy(),
            "--name",
            "app",
            "--branch",
            "main",
        ],
        DEPLOY_TIMEOUT,
    );
    assert!(run.success, "{run}\n{}", sky.log_tail(40));
    assert_eq!(version(sky, "app"), "v1");
}

#[test]
fn pushes_redeploy_and_branches_get_previews() {
    let sky = Skyport::serve();
    let repo = app_repo(&sky.scratch().join("repos"));
    deploy_tracking_main(&sky, &repo);

    // Without a secret the webhook is off.
    let sha = git(&repo.work, &["rev-parse", "HEAD"]);
    let (status, answer) = deliver(&sky, "app", "push", &push_payload("main", &sha), SECRET);
    assert_eq!(status, 404, "{answer}");
    assert!(answer.to_string().contains("--webhook-secret"), "{answer}");

    let run = sky.cli(&["servers", "set", "app", "--webhook-secret", SECRET]);
    assert!(run.success, "{run}");
    assert!(run.stdout.contains("/hooks/github/app"), "{run}");
    let (status, answer) = deliver(&sky, "app", "ping", r#"{"zen":"hi"}"#, SECRET);
    assert_eq!(status, 200, "{answer}");

    // A bad signature builds nothing.
    let v2 = repo.commit("main.py", &server_py("v2"), PUSHER, "v2");
    repo.push("main");
    let before = deployments(&sky, "app").len();
    let (status, answer) = deliver(
        &sky,
        "app",
        "push",
        &push_payload("main", &v2),
        "not-the-servers-secret",
    );
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"]["code"], "bad_signature", "{answer}");
    assert_eq!(deployments(&sky, "app").len(), before);
    assert_eq!(version(&sky, "app"), "v1");

    // A signed push to the tracked branch builds that commit and makes it live.
    let (status, answer) = deliver(&sky, "app", "push", &push_payload("main", &v2), SECRET);
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["outcome"], "production", "{answer}");
    let id = answer["deployment"].as_str().expect("a deployment id");
    let d = settled(&sky, "app", id);
    assert_eq!(d["status"], "ready", "{d}");
    assert_eq!(d["live"], true, "{d}");
    assert_eq!(d["commit"]["sha"].as_str(), Some(v2.as_str()), "{d}");
    assert_eq!(version(&sky, "app"), "v2");

    // A push to another branch builds its preview; production is unchanged.
    git(&repo.work, &["checkout", "-q", "-b", "feature/x"]);
    let branch_sha = repo.commit("main.py", &server_py("branch x"), PUSHER, "branch x");
    repo.push("feature/x");
    let (status, answer) = deliver(
        &sky,
        "app",
        "push",
        &push_payload("feature/x", &branch_sha),
        SECRET,
    );
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["outcome"], "preview", "{answer}");
    assert_eq!(answer["server"], "app--feature-x", "{answer}");
    let id = answer["deployment"].as_str().expect("a deployment id");
    let d = settled(&sky, "app--feature-x", id);
    assert_eq!(d["status"], "ready", "{d}\n{}", sky.log_tail(40));
    assert_eq!(version(&sky, "app--feature-x"), "branch x");
    assert_eq!(version(&sky, "app"), "v2");
    let ls = sky.cli(&["servers", "ls"]);
    let line = ls
        .stdout
        .lines()
        .find(|l| l.starts_with("app--feature-x"))
        .unwrap_or_default();
    assert!(line.contains("preview of app"), "{ls}");
    // A preview's variables are its parent's: setting them on the preview says where instead.
    let refused = sky.cli(&["env", "set", "app--feature-x", "MODE=x"]);
    assert!(!refused.success, "{refused}");
    assert!(
        refused.stderr.contains("--scope branch:feature/x"),
        "{refused}"
    );

    // A broken commit on main fails; the previous deployment keeps serving.
    git(&repo.work, &["checkout", "-q", "main"]);
    let broken = repo.commit("main.py", "this is not python(\n", PUSHER, "broken");
    repo.push("main");
    let (status, answer) = deliver(&sky, "app", "push", &push_payload("main", &broken), SECRET);
    assert_eq!(status, 202, "{answer}");
    let id = answer["deployment"].as_str().expect("a deployment id");
    let d = settled(&sky, "app", id);
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["live"], false, "{d}");
    let listed = sky.cli(&["deployments", "app"]);
    assert!(listed.stdout.contains(id), "{listed}");
    assert!(listed.stdout.contains("failed"), "{listed}");
    assert_eq!(version(&sky, "app"), "v2");

    // Closing the branch's pull request removes its preview.
    let closed = serde_json::json!({
        "action": "closed",
        "number": 1,
        "pull_request": {"head": {"ref": "feature/x", "sha": branch_sha}, "base": {"ref": "main"}},
    })
    .to_string();
    let (status, answer) = deliver(&sky, "app", "pull_request", &closed, SECRET);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["outcome"], "removed", "{answer}");
    // The gateway's route table follows the removal a moment after it is committed.
    let mut last = None;
    let gone = wait_until(Duration::from_secs(10), || {
        let answer = http(
            &sky.addr(),
            "POST",
            "/servers/app--feature-x/mcp",
            &[
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
            ],
            Some(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
        )
        .expect("request the removed preview");
        let gone = answer.status == 404;
        last = Some(answer.body);
        gone
    });
    assert!(gone, "the removed preview still answers: {last:?}");
    assert!(!sky.cli(&["servers", "show", "app--feature-x"]).success);
    assert_eq!(version(&sky, "app"), "v2");
}

#[test]
fn polling_finds_a_push_without_a_webhook() {
    let sky = Skyport::serve();
    let repo = app_repo(&sky.scratch().join("repos"));
    deploy_tracking_main(&sky, &repo);
    let run = sky.cli(&["servers", "set", "app", "--poll", "1s"]);
    assert!(run.success, "{run}");

    let v2 = repo.commit("main.py", &server_py("v2"), PUSHER, "v2");
    repo.push("main");
    let mut live = Value::Null;
    let found = wait_until(DEPLOY_TIMEOUT, || {
        live = deployments(&sky, "app")
            .into_iter()
            .find(|d| d["live"] == true)
            .unwrap_or(Value::Null);
        live["commit"]["sha"].as_str() == Some(v2.as_str())
    });
    assert!(
        found,
        "the pushed commit did not go live: {live}\n{}",
        sky.log_tail(60)
    );
    assert_eq!(version(&sky, "app"), "v2");
    // The commit is built once, however often it is seen again.
    std::thread::sleep(Duration::from_secs(3));
    let builds_of_v2 = deployments(&sky, "app")
        .into_iter()
        .filter(|d| d["commit"]["sha"].as_str() == Some(v2.as_str()))
        .count();
    assert_eq!(builds_of_v2, 1);
}
