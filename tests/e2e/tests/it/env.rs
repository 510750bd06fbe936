//! Environment variables and secrets: set at deploy time and with `skyport env`, fixed per
//! deployment, used by a real tool, kept out of logs and API answers, sealed on disk, and taken
//! into effect by `--redeploy` (an uploaded source, built again from its artifact).

use std::path::Path;

use skyport_e2e::{Run, Skyport, deployments_of, fixture};

/// The secret the fixture prints at startup; long and unique so that any leak is found.
const SECRET: &str = "sk-e2e-secret-5d1c8a27b9";

/// Calls the fixture's `env` tool through the gateway; returns what the server sees.
pub(crate) fn seen(sky: &Skyport, server: &str, name: &str) -> String {
    let args = format!(r#"{{"name":"{name}"}}"#);
    let (run, v) = sky.client(
        "sdk_client.py",
        &["call", &sky.mcp_url(server), "env", &args],
    );
    v["text"]
        .as_str()
        .unwrap_or_else(|| panic!("env({name}) gave no text\n{run}\n{}", sky.log_tail(40)))
        .to_owned()
}

fn check(run: &Run, what: &str) {
    assert!(run.success, "{what} failed\n{run}");
}

/// Everything SQLite holds for the database of `data_dir`.
fn database_bytes(data_dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for file in ["skyport.db", "skyport.db-wal"] {
        if let Ok(more) = std::fs::read(data_dir.join(file)) {
            bytes.extend(more);
        }
    }
    bytes
}

#[test]
fn secrets_reach_the_tool_but_no_log_or_api_and_redeploy_applies_changes() {
    let sky = Skyport::serve();
    let token = format!("API_TOKEN={SECRET}");
    let run = sky.deploy(
        &fixture("env"),
        "envd",
        &["--env", &token, "--env", "REGION=eu-west", "--secret"],
    );
    check(&run, "deploy --env --secret");
    assert_eq!(seen(&sky, "envd", "API_TOKEN"), SECRET);
    assert_eq!(seen(&sky, "envd", "REGION"), "eu-west");

    // A plain variable set now reaches the next deployment, not the live one.
    let run = sky.cli(&["env", "set", "envd", "MODE=mode-one-7c1e"]);
    check(&run, "env set");
    assert!(
        run.stdout.contains("takes effect on the next deployment")
            && run.stdout.contains("--redeploy"),
        "env set does not say a redeploy is needed\n{run}"
    );
    assert_eq!(seen(&sky, "envd", "MODE"), "<unset>");

    // Names Skyport owns are refused with a reason.
    let run = sky.cli(&["env", "set", "envd", "SKYPORT_PORT=1"]);
    assert!(!run.success, "a reserved name was accepted\n{run}");
    assert!(run.stderr.contains("choose another name"), "{run}");

    // The secret is printed by the server at build and instance start: every log has it
    // redacted, under its name.
    let run = sky.cli(&["logs", "envd", "-n", "1000"]);
    check(&run, "logs");
    assert!(
        !run.output().contains(SECRET),
        "a log shows the secret\n{run}"
    );
    assert!(
        run.stdout.contains("[redacted:API_TOKEN]"),
        "the server's startup line is not in the logs, redacted\n{run}"
    );
    assert!(
        !sky.log().contains(SECRET),
        "Skyport's own log shows the secret"
    );

    // No API answer carries it: env listing (masked), deployments, servers.
    let run = sky.cli(&["env", "ls", "envd", "--json"]);
    check(&run, "env ls --json");
    assert!(
        !run.stdout.contains(SECRET),
        "env ls shows the secret\n{run}"
    );
    let vars = run.json()["vars"].as_array().cloned().unwrap_or_default();
    let token = vars.iter().find(|v| v["name"] == "API_TOKEN").cloned();
    let token = token.unwrap_or_else(|| panic!("API_TOKEN is not listed\n{run}"));
    assert_eq!(token["secret"], true, "{run}");
    assert!(token["value"].is_null(), "{run}");
    let run = sky.cli(&["env", "ls", "envd"]);
    check(&run, "env ls");
    assert!(
        run.stdout.contains("••••••") && run.stdout.contains("mode-one-7c1e"),
        "{run}"
    );
    for args in [
        &["deployments", "envd", "--json"][..],
        &["servers", "show", "envd", "--json"][..],
        &["servers", "--json"][..],
    ] {
        let run = sky.cli(args);
        check(&run, &args.join(" "));
        assert!(
            !run.output().contains(SECRET),
            "{args:?} shows the secret\n{run}"
        );
    }

    // At rest: the key file is private and the database holds no plaintext secret (while the
    // plain variable is found, so the search would find one).
    let key = sky.data_dir().join("master.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "master.key is not private");
    let bytes = database_bytes(sky.data_dir());
    assert!(
        bytes
            .windows(b"mode-one-7c1e".len())
            .any(|w| w == b"mode-one-7c1e"),
        "the database bytes were not read"
    );
    assert!(
        !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "the database holds the secret in plaintext"
    );

    // --redeploy builds the uploaded source again (from its artifact) with the new values.
    let before = deployments_of(&sky.cli(&["deployments", "envd", "--json"]).json()).len();
    let run = sky.cli(&["env", "set", "envd", "MODE=second", "--redeploy"]);
    check(&run, "env set --redeploy");
    assert!(run.stderr.contains("is live"), "{run}");
    assert_eq!(seen(&sky, "envd", "MODE"), "second");
    assert_eq!(seen(&sky, "envd", "API_TOKEN"), SECRET);
    let run = sky.cli(&["deployments", "envd", "--json"]);
    let all = deployments_of(&run.json());
    assert_eq!(all.len(), before + 1, "{run}");
    assert!(
        all[0]["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("artifact:"))
            && all[0]["live"] == true,
        "the newest deployment is not the live rebuild of the artifact\n{run}"
    );

    // Removing a variable with --redeploy takes it away from the server.
    let run = sky.cli(&["env", "unset", "envd", "REGION", "--redeploy"]);
    check(&run, "env unset --redeploy");
    assert_eq!(seen(&sky, "envd", "REGION"), "<unset>");
    let run = sky.cli(&["env", "unset", "envd", "REGION"]);
    assert!(!run.success && run.stderr.contains("not set"), "{run}");
}
