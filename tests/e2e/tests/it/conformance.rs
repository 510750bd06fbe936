//! The official MCP conformance suite and the MCP Inspector CLI against Skyport's gateway.
//!
//! The suite (`conformance server --url …`) runs once per protocol revision it offers, against the
//! everything fixture run directly and against the same fixture deployed behind the gateway; every
//! scenario that passes directly must pass through the gateway too. What passes directly is what
//! FastMCP itself conforms to, so the comparison isolates what the gateway adds. The Inspector CLI
//! then lists tools through the gateway (the same list as the server's own), calls one and reads a
//! resource, as a person debugging a server would.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use skyport_e2e::{
    DirectServer, Run, Skyport, command, copy_dir, fixture, http, node_tools, run_bounded,
};

/// Bound for one suite run (one URL, one revision); the suite bounds each scenario itself.
const SUITE_TIMEOUT: Duration = Duration::from_secs(900);
/// The suite's bound for one scenario, in milliseconds (its default, 30 s, is tight on a loaded
/// 2-core machine; a hanging scenario costs this much once).
const SCENARIO_TIMEOUT_MS: &str = "60000";
/// Bound for one Inspector CLI call.
const INSPECTOR_TIMEOUT: Duration = Duration::from_secs(180);
/// The Inspector's bound for connecting, in milliseconds (its default, 15 s, can be shorter than
/// an instance's cold start on a loaded machine).
const INSPECTOR_CONNECT_TIMEOUT_MS: &str = "150000";

/// Scenarios the fixture must pass directly at every revision that offers them: if one of these
/// fails directly, the fixture (or the suite's expectations) changed, and the comparison with the
/// gateway would prove less than it claims.
const MUST_PASS_DIRECTLY: &[&str] = &[
    "server-initialize",
    "server-session-lifecycle",
    "server-stateless",
    "tools-list",
    "tools-call-simple-text",
    "tools-call-with-progress",
    "resources-read-text",
    "prompts-get-with-args",
];

/// Fewer scenarios passing directly than this, over all revisions, means the run proved little.
const MIN_DIRECT_PASSES: usize = 80;

/// The everything fixture deployed as server `everything` and also started directly.
fn everything(sky: &Skyport) -> DirectServer {
    let folder = sky.scratch().join("everything");
    copy_dir(&fixture("everything"), &folder).expect("copy the everything fixture");
    sky.deploy_ok(&folder, "everything");
    DirectServer::start(&folder, &sky.scratch().join("direct.log"))
}

#[test]
fn conformance_suite_passes_through_the_gateway_wherever_it_passes_directly() {
    let (node, bin) = node_tools();
    let sky = Skyport::serve();
    let direct = everything(&sky);
    let gateway = sky.mcp_url("everything");
    warm_up(&sky, "everything");

    let catalog = list_scenarios(&node, &bin, sky.scratch());
    let versions: BTreeSet<&str> = catalog.values().flatten().map(String::as_str).collect();
    assert!(
        versions.len() >= 4,
        "the suite offers only these protocol revisions: {versions:?}"
    );

    let mut regressions = Vec::new();
    let mut direct_passes = 0;
    for version in &versions {
        let offered: BTreeSet<&str> = catalog
            .iter()
            .filter(|(_, v)| v.iter().any(|x| x == version))
            .map(|(name, _)| name.as_str())
            .collect();
        let out = sky.scratch().join(format!("conformance-{version}"));
        let here = run_suite(&node, &bin, &direct.mcp_url(), version, &out.join("direct"));
        let there = run_suite(&node, &bin, &gateway, version, &out.join("gateway"));
        println!("{}", table(version, &offered, &here, &there));

        for name in MUST_PASS_DIRECTLY.iter().filter(|n| offered.contains(**n)) {
            assert!(
                here.passed(name),
                "{name} at {version} fails against the fixture run directly, so the comparison \
                 would prove little: {}\n{}",
                here.why(name),
                direct.log_tail(40)
            );
        }
        direct_passes += here.passing().len();
        for name in here.passing() {
            if !there.passed(&name) {
                regressions.push(format!("{version} {name}: {}", there.why(&name)));
            }
        }
    }
    assert!(
        direct_passes >= MIN_DIRECT_PASSES,
        "only {direct_passes} scenario runs pass directly (expected at least {MIN_DIRECT_PASSES}): \
         the fixture no longer exercises the suite"
    );
    assert!(
        regressions.is_empty(),
        "scenarios that pass directly but fail through the gateway:\n{}\n{}",
        regressions.join("\n"),
        sky.log_tail(60)
    );
}

#[test]
fn inspector_cli_lists_and_calls_tools_through_the_gateway() {
    let (node, bin) = node_tools();
    let sky = Skyport::serve();
    let direct = everything(&sky);
    let url = sky.mcp_url("everything");

    let list = inspector(
        &node,
        &bin,
        sky.scratch(),
        &[&url, "--method", "tools/list"],
    );
    let listed = parse_json(&list);
    let baseline = inspector(
        &node,
        &bin,
        sky.scratch(),
        &[&direct.mcp_url(), "--method", "tools/list"],
    );
    assert_eq!(
        listed,
        parse_json(&baseline),
        "tools/list through the gateway differs from the server's own"
    );
    let names: BTreeSet<&str> = listed["tools"]
        .as_array()
        .map(|tools| tools.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    for want in ["echo", "test_simple_text", "test_tool_with_progress"] {
        assert!(
            names.contains(want),
            "tools/list through the gateway lacks {want}: {names:?}\n{list}"
        );
    }

    let call = inspector(
        &node,
        &bin,
        sky.scratch(),
        &[
            &url,
            "--method",
            "tools/call",
            "--tool-name",
            "echo",
            "--tool-arg",
            "text=through the gateway",
        ],
    );
    let answer = parse_json(&call);
    assert_eq!(
        answer["content"][0]["text"],
        "through the gateway",
        "tools/call echo through the gateway\n{call}\n{}",
        sky.log_tail(40)
    );
    assert_eq!(answer["isError"], false, "tools/call echo: {call}");

    let read = inspector(
        &node,
        &bin,
        sky.scratch(),
        &[
            &url,
            "--method",
            "resources/read",
            "--uri",
            "test://static-text",
        ],
    );
    let contents = parse_json(&read);
    assert_eq!(
        contents["contents"][0]["text"], "This is the content of the static text resource.",
        "resources/read through the gateway\n{read}"
    );
}

/// Sends one `initialize` through the gateway so that the instance's cold start is not charged to
/// the first scenario's time limit.
fn warm_up(sky: &Skyport, server: &str) {
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"warm-up","version":"0"}}}"#;
    let headers = [
        ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"),
    ];
    let path = format!("/servers/{server}/mcp");
    let answer = http(&sky.addr(), "POST", &path, &headers, Some(init));
    assert!(
        answer.as_ref().is_ok_and(|r| r.status == 200),
        "initialize through the gateway: {answer:?}\n{}",
        sky.log_tail(40)
    );
}

/// The suite's server scenarios and the dated protocol revisions each applies to, from
/// `conformance list --server` (lines `  - NAME [REV,REV,…]`; "draft" and "extension" are left
/// out: they are not revisions a client can ask for).
fn list_scenarios(node: &Path, bin: &Path, scratch: &Path) -> BTreeMap<String, Vec<String>> {
    let mut cmd = command(node);
    cmd.arg(bin.join("conformance")).args(["list", "--server"]);
    let run = run_bounded(cmd, scratch, Duration::from_secs(60));
    assert!(run.success, "conformance list failed\n{run}");
    let mut catalog = BTreeMap::new();
    for line in run.stdout.lines() {
        let Some((name, tags)) = line
            .trim()
            .strip_prefix("- ")
            .and_then(|rest| rest.split_once(" ["))
        else {
            continue;
        };
        let versions: Vec<String> = tags
            .trim_end_matches(']')
            .split(',')
            .map(str::trim)
            .filter(|v| is_revision(v))
            .map(str::to_owned)
            .collect();
        if !versions.is_empty() {
            catalog.insert(name.trim().to_owned(), versions);
        }
    }
    assert!(
        !catalog.is_empty(),
        "no server scenarios in `conformance list --server`\n{run}"
    );
    catalog
}

/// A protocol revision is a date: `YYYY-MM-DD`.
fn is_revision(tag: &str) -> bool {
    tag.len() == 10
        && tag.chars().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// One suite run's verdicts: scenario name → its checks that failed (empty when it passed), and
/// every check's status (`id=STATUS`), to show softer differences (a warning, a skipped check).
struct Verdicts {
    scenarios: BTreeMap<String, Vec<String>>,
    statuses: BTreeMap<String, BTreeSet<String>>,
    run: Run,
}

impl Verdicts {
    /// Check statuses of a scenario that differ from `other`'s, for the scenarios both ran.
    fn differences(&self, other: &Verdicts) -> Vec<String> {
        let mut lines = Vec::new();
        for (name, mine) in &self.statuses {
            let Some(theirs) = other.statuses.get(name) else {
                continue;
            };
            if mine != theirs {
                let only = |a: &BTreeSet<String>, b: &BTreeSet<String>| {
                    a.difference(b).cloned().collect::<Vec<_>>().join(" ")
                };
                lines.push(format!(
                    "  {name}: direct [{}] gateway [{}]",
                    only(mine, theirs),
                    only(theirs, mine)
                ));
            }
        }
        lines
    }

    fn passed(&self, name: &str) -> bool {
        self.scenarios.get(name).is_some_and(Vec::is_empty)
    }

    fn passing(&self) -> Vec<String> {
        self.scenarios
            .iter()
            .filter(|(_, failures)| failures.is_empty())
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Why a scenario did not pass: its failed checks, or that the suite wrote no result for it.
    fn why(&self, name: &str) -> String {
        match self.scenarios.get(name) {
            Some(failures) if !failures.is_empty() => failures.join("; "),
            Some(_) => "passed".to_owned(),
            None => format!(
                "no result written (the suite printed:\n{})",
                skyport_e2e::tail(&self.run.output(), 30)
            ),
        }
    }
}

/// Runs every scenario the suite has for `version` (`--suite all`, pending ones included) against
/// `url` in one invocation, and reads the per-scenario `checks.json` files it writes to `out`.
fn run_suite(node: &Path, bin: &Path, url: &str, version: &str, out: &Path) -> Verdicts {
    fs::create_dir_all(out).expect("create the results folder");
    let mut cmd = command(node);
    cmd.arg(bin.join("conformance"))
        .args(["server", "--url", url, "--suite", "all"])
        .args(["--spec-version", version])
        .args(["--timeout", SCENARIO_TIMEOUT_MS])
        .arg("--output-dir")
        .arg(out)
        .env("NO_COLOR", "1");
    // The suite exits non-zero when any scenario fails; the verdicts are in the files.
    let run = run_bounded(cmd, out, SUITE_TIMEOUT);
    let mut scenarios = BTreeMap::new();
    let mut statuses = BTreeMap::new();
    for entry in fs::read_dir(out)
        .expect("read the results folder")
        .flatten()
    {
        let dir = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = scenario_of(&dir) else {
            continue;
        };
        let text = fs::read_to_string(entry.path().join("checks.json")).unwrap_or_default();
        let checks: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let Some(checks) = checks.as_array().filter(|c| !c.is_empty()) else {
            scenarios.insert(name, vec!["no checks recorded".to_owned()]);
            continue;
        };
        let status = |c: &serde_json::Value| {
            format!(
                "{}={}",
                c["id"].as_str().unwrap_or("?"),
                c["status"].as_str().unwrap_or("?")
            )
        };
        statuses.insert(name.clone(), checks.iter().map(status).collect());
        let failures = checks
            .iter()
            .filter(|c| c["status"] == "FAILURE")
            .map(|c| {
                format!(
                    "{}: {}",
                    c["id"].as_str().unwrap_or("?"),
                    c["errorMessage"].as_str().unwrap_or("failed")
                )
            })
            .collect();
        scenarios.insert(name, failures);
    }
    Verdicts {
        scenarios,
        statuses,
        run,
    }
}

/// The scenario of a results folder `server-NAME-YYYY-MM-DDTHH-MM-SS-mmmZ`.
fn scenario_of(dir: &str) -> Option<String> {
    let rest = dir.strip_prefix("server-")?;
    // The timestamp is 24 characters, after a dash.
    let cut = rest.len().checked_sub(25)?;
    (rest.ends_with('Z') && rest[cut..].starts_with('-')).then(|| rest[..cut].to_owned())
}

/// A table of the verdicts, one line per scenario the suite offers at `version`.
fn table(version: &str, offered: &BTreeSet<&str>, here: &Verdicts, there: &Verdicts) -> String {
    let verdict = |v: &Verdicts, name: &str| match v.scenarios.get(name) {
        Some(f) if f.is_empty() => "pass",
        Some(_) => "FAIL",
        None => "-",
    };
    let mut lines = vec![
        format!("conformance at {version}"),
        format!("  {:<50} {:<7} gateway", "scenario", "direct"),
    ];
    for name in offered {
        lines.push(format!(
            "  {name:<50} {:<7} {}",
            verdict(here, name),
            verdict(there, name)
        ));
    }
    lines.push(format!(
        "  passing: {} direct, {} through the gateway",
        here.passing().len(),
        there.passing().len()
    ));
    let differences = here.differences(there);
    if !differences.is_empty() {
        lines.push("  checks whose status differs (informational):".to_owned());
        lines.extend(differences);
    }
    lines.join("\n")
}

/// Runs `inspector --cli ARGS…` (its catalog file in a scratch HOME); the call must succeed.
fn inspector(node: &Path, bin: &Path, scratch: &Path, args: &[&str]) -> Run {
    let home = scratch.join("inspector-home");
    fs::create_dir_all(&home).expect("create the Inspector's home");
    let mut cmd: Command = command(node);
    cmd.arg(bin.join("inspector"))
        .arg("--cli")
        .args(args)
        .args(["--connect-timeout", INSPECTOR_CONNECT_TIMEOUT_MS])
        .env("HOME", &home)
        .env("NO_COLOR", "1");
    let run = run_bounded(cmd, scratch, INSPECTOR_TIMEOUT);
    assert!(run.success, "the Inspector CLI failed\n{run}");
    run
}

fn parse_json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("the Inspector did not print JSON ({e})\n{run}"))
}
