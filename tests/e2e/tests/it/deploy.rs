//! Deploying: the example through both client libraries, and inputs that must be refused without
//! disturbing what already serves.

use std::fs;

use skyport_e2e::{Skyport, copy_dir, deployments_of, example};

#[test]
fn hello_through_official_sdk_and_fastmcp_client() {
    let sky = Skyport::serve();
    let run = sky.deploy_ok(&example("hello"), "hello");
    assert!(run.stdout.contains("/servers/hello/mcp"), "{run}");
    let url = sky.mcp_url("hello");

    for script in ["sdk_client.py", "fastmcp_client.py"] {
        let args: Vec<&str> = if script == "sdk_client.py" {
            vec!["hello", &url]
        } else {
            vec![&url]
        };
        let (run, v) = sky.client(script, &args);
        let context = format!("{script} against {url}\n{run}\n{}", sky.log_tail(40));
        assert_eq!(v["ok"], true, "{context}");
        let tools: Vec<&str> = v["tools"]
            .as_array()
            .map(|a| a.iter().filter_map(|t| t.as_str()).collect())
            .unwrap_or_default();
        assert!(
            tools.contains(&"hello"),
            "tools/list lacks hello: {tools:?}\n{context}"
        );
        assert_eq!(v["text"], "Hello, e2e!", "{context}");
        assert!(
            v["resource"].as_str().is_some_and(|r| r.contains("hello")),
            "resource read: {}\n{context}",
            v["resource"]
        );
        assert!(
            v["prompt"].as_str().is_some_and(|p| p.contains("e2e")),
            "prompt: {}\n{context}",
            v["prompt"]
        );
    }
}

#[test]
fn bad_inputs_are_refused_and_previous_deployment_keeps_serving() {
    let sky = Skyport::serve();
    sky.deploy_ok(&example("hello"), "keep");
    sky.check_hello("keep", "before");

    // (a) a name that cannot be a URL path segment.
    let run = sky.deploy(&example("hello"), "Bad_Name!", &[]);
    assert!(!run.success, "an invalid name was accepted\n{run}");
    assert!(
        run.stderr.to_lowercase().contains("name"),
        "the invalid-name error does not say so\n{run}"
    );
    sky.check_hello("keep", "after-name");

    // (b) a folder without main.py (and no entrypoint given).
    let noentry = sky.scratch().join("noentry");
    fs::create_dir_all(&noentry).expect("create a folder");
    fs::write(noentry.join("other.py"), "x = 1\n").expect("write a file");
    let run = sky.deploy(&noentry, "keep", &[]);
    assert!(!run.success, "a folder without main.py was deployed\n{run}");
    let lower = run.stderr.to_lowercase();
    assert!(
        lower.contains("main.py") || lower.contains("entrypoint"),
        "the missing-entrypoint error is unclear\n{run}"
    );
    sky.check_hello("keep", "after-noentry");

    // (c) an entrypoint object that does not exist.
    let run = sky.deploy(&example("hello"), "keep", &["--entrypoint", "main.py:nope"]);
    assert!(
        !run.success,
        "an entrypoint naming a missing object was deployed\n{run}"
    );
    assert!(
        run.stderr.contains("nope"),
        "the missing-object error does not name `nope`\n{run}"
    );
    sky.check_hello("keep", "after-object");

    // (d) a syntax error on a known line.
    let broken = sky.scratch().join("broken");
    copy_dir(&example("hello"), &broken).expect("copy examples/hello");
    let source = fs::read_to_string(broken.join("main.py")).expect("read main.py");
    let line = source.lines().count() + 1;
    fs::write(broken.join("main.py"), format!("{source}def oops(:\n")).expect("write main.py");
    let run = sky.deploy(&broken, "keep", &[]);
    assert!(!run.success, "a syntax error was deployed\n{run}");
    let lower = run.stderr.to_lowercase();
    assert!(
        lower.contains("syntax"),
        "the error does not mention the syntax error\n{run}"
    );
    assert!(
        lower.contains(&format!("line {line}")) || lower.contains(&format!(":{line}")),
        "the syntax error does not give line {line}\n{run}"
    );
    sky.check_hello("keep", "after-syntax");

    // The failed builds are kept, each with the kind of failure.
    let run = sky.cli(&["deployments", "keep", "--json"]);
    assert!(run.success, "{run}");
    let all = deployments_of(&run.json());
    let failed: Vec<_> = all.iter().filter(|d| d["status"] == "failed").collect();
    let kinds: Vec<&str> = failed
        .iter()
        .filter_map(|d| d["failure"]["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.len(),
        failed.len(),
        "a failed deployment lacks failure.kind\n{run}"
    );
    assert!(
        kinds.contains(&"entrypoint"),
        "no failed deployment of kind entrypoint: {kinds:?}\n{run}"
    );
    assert!(
        all.iter().any(|d| d["status"] != "failed"),
        "the good deployment is not listed\n{run}"
    );
}
