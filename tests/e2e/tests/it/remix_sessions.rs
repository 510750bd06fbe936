//! Remix sessions that outlive Skyport: a session of a remix of two hosted servers, held open by
//! the official `mcp` SDK, calls a tool of each source after `skyport serve` is killed with -9
//! and restarted (the remix session is read back from the store, its source sessions replay
//! their `initialize` on new instances) without the client initializing again; and on
//! PostgreSQL, a remix session of two external servers initialized through one replica
//! continues through another.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use skyport_e2e::{
    DirectServer, HeldClient, HttpResponse, PostgresDatabase, Skyport, copy_dir, example, mcp_post,
    wait_until,
};

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"0"}}}"#;
const INITIALIZED: &str = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// The hello example deployed as `name`, greeting with `greeting` instead of "Hello".
fn deploy_greeter(sky: &Skyport, name: &str, greeting: &str) {
    let folder = sky.scratch().join(name);
    copy_dir(&example("hello"), &folder).expect("copy the example");
    let main = folder.join("main.py");
    let code = fs::read_to_string(&main).expect("read the example");
    let code = code.replace("Hello, {name}!", &format!("{greeting}, {{name}}!"));
    fs::write(&main, code).expect("write the greeter");
    sky.deploy_ok(&folder, name);
}

/// Both sources' `hello` through the remix (named `{source}_hello`, since they collide)
/// answer on the held session.
fn both_answer(client: &mut HeldClient, sky: &Skyport, step: &str) {
    for (tool, greeting) in [("alpha_hello", "Hello"), ("beta_hello", "Howdy")] {
        let answer = client.call(tool, step);
        assert_eq!(
            answer["text"],
            format!("{greeting}, {step}!"),
            "{tool} {step}: {answer}\n{}",
            sky.log_tail(40)
        );
    }
}

#[test]
fn a_remix_session_continues_after_serve_is_killed_and_restarted() {
    let mut sky = Skyport::serve();
    deploy_greeter(&sky, "alpha", "Hello");
    deploy_greeter(&sky, "beta", "Howdy");
    let created = sky.cli(&[
        "remix", "create", "mix", "--source", "alpha", "--source", "beta",
    ]);
    assert!(created.success, "{created}");

    let (mut client, ready) =
        HeldClient::open("sdk", "session_client.py", &["sdk", &sky.mcp_url("mix")]);
    assert_eq!(ready["ready"], true, "sdk client did not connect: {ready}");
    both_answer(&mut client, &sky, "before-restart");

    sky.kill9();
    sky.restart();
    both_answer(&mut client, &sky, "after-restart");
    let log = sky.log();
    assert!(
        log.contains("resumed a remix session from the store"),
        "the remix session was not read back\n{}",
        sky.log_tail(40)
    );
    assert!(
        log.contains("replayed a session's initialize"),
        "no source session was replayed\n{}",
        sky.log_tail(40)
    );
}

/// A FastMCP server whose `hello` greets with `greeting`, run directly
/// (`main.py --port P --host H`).
fn remote_greeter(greeting: &str) -> String {
    format!(
        r#"import argparse

from fastmcp import FastMCP

mcp = FastMCP("greeter")


@mcp.tool
def hello(name: str) -> str:
    return f"{greeting}, {{name}}!"


parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int)
parser.add_argument("--host")
args = parser.parse_args()
mcp.run(transport="http", host=args.host, port=args.port)
"#
    )
}

/// A greeter running outside Skyport, in the catalog of `replica` as external server `name`.
fn external_greeter(replica: &Skyport, name: &str, greeting: &str) -> DirectServer {
    let folder: PathBuf = replica.scratch().join(name);
    fs::create_dir_all(&folder).expect("create the greeter's folder");
    fs::write(folder.join("main.py"), remote_greeter(greeting)).expect("write main.py");
    let log = replica.scratch().join(format!("{name}.log"));
    let server = DirectServer::start(&folder, &log);
    let added = replica.cli(&["registry", "add-external", name, &server.mcp_url()]);
    assert!(added.success, "{added}\n{}", replica.log_tail(30));
    server
}

/// POSTs one MCP message to `/servers/mix/mcp` of `replica`, in `session`.
fn post(replica: &Skyport, session: Option<&str>, body: &str) -> HttpResponse {
    mcp_post(&replica.addr(), "/servers/mix/mcp", None, session, body)
        .unwrap_or_else(|e| panic!("POST to {}: {e}\n{}", replica.addr(), replica.log_tail(40)))
}

fn call(tool: &str, who: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{{"name":"{tool}","arguments":{{"name":"{who}"}}}}}}"#
    )
}

#[test]
fn a_remix_session_initialized_through_one_replica_continues_through_another() {
    let Some(database) = PostgresDatabase::create() else {
        return;
    };
    let (mut a, b) = database.replicas(&["--allow-private-externals"]);
    let _one = external_greeter(&a, "one", "One");
    let _two = external_greeter(&a, "two", "Two");
    let created = a.cli(&[
        "remix", "create", "mix", "--source", "one", "--source", "two",
    ]);
    assert!(created.success, "{created}");

    // B learns of the remix from A's changes, without a restart.
    let reached = wait_until(Duration::from_secs(10), || {
        post(&b, None, INITIALIZE).status == 200
    });
    assert!(reached, "B does not serve the remix\n{}", b.log_tail(30));

    let init = post(&a, None, INITIALIZE);
    assert_eq!(init.status, 200, "initialize via A: {init:?}");
    let session = init
        .header("mcp-session-id")
        .unwrap_or_else(|| panic!("no session id from A: {init:?}"))
        .to_owned();
    let ack = post(&a, Some(&session), INITIALIZED);
    assert!(
        (200..300).contains(&ack.status),
        "initialized via A: {ack:?}"
    );
    let links = format!(
        "SELECT COUNT(*) FROM remix_session_links \
         WHERE session_hash = encode(sha256('{session}'::bytea), 'hex')"
    );
    assert_eq!(
        database.value(&links),
        "2",
        "the remix session's source sessions are not in PostgreSQL"
    );

    // A is gone before B sees the session: B has only the database to go by.
    a.kill9();
    for (tool, greeting) in [("one_hello", "One"), ("two_hello", "Two")] {
        let answer = post(&b, Some(&session), &call(tool, "via-b"));
        assert!(
            answer.status == 200 && answer.body.contains(&format!("{greeting}, via-b!")),
            "{tool} via B in A's remix session: {answer:?}\n{}",
            b.log_tail(30)
        );
    }
    assert!(
        b.log().contains("resumed a remix session from the store"),
        "B did not read the remix session back\n{}",
        b.log_tail(30)
    );
}
