//! Client sessions that outlive what serves them: one session of the official `mcp` SDK and one of
//! the FastMCP `Client`, each held open by a client process, keep answering after the server scales
//! to zero, after its instance is killed with -9, after a redeploy, and after `skyport serve` itself
//! is killed with -9 and restarted; neither client ever re-initializes.

use std::time::Duration;

use skyport_e2e::{HeldClient, Skyport, copy_dir, example, signal, wait_until};

/// Opens a client of library `kind` holding one session at `url`.
fn open(kind: &str, url: &str) -> HeldClient {
    let (client, ready) = HeldClient::open(kind, "session_client.py", &[kind, url]);
    assert_eq!(
        ready["ready"], true,
        "{kind} client did not connect: {ready}"
    );
    client
}

#[test]
fn one_session_survives_scale_to_zero_kill_redeploy_and_restart() {
    let mut sky = Skyport::serve();
    let source = sky.scratch().join("hello");
    copy_dir(&example("hello"), &source).expect("copy the example");
    let deployed = sky.deploy(&source, "hello", &["--idle-timeout", "2s"]);
    assert!(deployed.success, "{deployed}");
    let url = sky.mcp_url("hello");
    let mut clients = [open("sdk", &url), open("fastmcp", &url)];
    let mut all_say = |step: &str, greeting: &str| {
        for client in &mut clients {
            let answer = client.hello(step);
            assert_eq!(
                answer["ok"], true,
                "{} client, {step}: {answer}",
                client.kind
            );
            assert_eq!(
                answer["text"],
                format!("{greeting}, {step}!"),
                "{} client after {step}",
                client.kind
            );
        }
    };
    all_say("first", "Hello");

    let idle = wait_until(Duration::from_secs(30), || sky.instances().is_empty());
    assert!(
        idle,
        "the server did not scale to zero\n{}",
        sky.log_tail(30)
    );
    all_say("after-scale-to-zero", "Hello");

    let instances = sky.instances();
    assert!(!instances.is_empty(), "no instance serves the session");
    for instance in &instances {
        signal(&instance.pid.to_string(), "KILL");
    }
    let replaced = wait_until(Duration::from_secs(10), || {
        sky.instances().iter().all(|i| !instances.contains(i))
    });
    assert!(replaced, "the killed instance is still listed");
    all_say("after-kill", "Hello");

    let server = source.join("main.py");
    let code = std::fs::read_to_string(&server).expect("read the example");
    std::fs::write(&server, code.replace("Hello, {name}!", "Howdy, {name}!")).expect("edit");
    let redeployed = sky.deploy(&source, "hello", &["--idle-timeout", "2s"]);
    assert!(redeployed.success, "{redeployed}");
    all_say("after-redeploy", "Howdy");

    sky.kill9();
    sky.restart();
    all_say("after-restart", "Howdy");
    assert!(
        sky.log().contains("replayed a session's initialize"),
        "no replay was logged\n{}",
        sky.log_tail(40)
    );
}
