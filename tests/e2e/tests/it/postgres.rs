//! Skyport on PostgreSQL: `skyport serve --database-url postgres://…` on a fresh database
//! deploys the hello example, answers through the gateway with the official `mcp` SDK, and a
//! session held open by that client continues after serve is killed with -9 and restarted
//! (the session is read back from PostgreSQL and its initialize replayed).

use skyport_e2e::{HeldClient, PostgresDatabase, Skyport, copy_dir, example};

#[test]
fn serve_on_postgres_deploys_answers_and_keeps_a_session_across_a_restart() {
    let Some(database) = PostgresDatabase::create() else {
        return;
    };
    let mut sky = Skyport::serve_with(&["--database-url", database.url()]);
    assert_eq!(
        database.value("SELECT COUNT(*) FROM principals WHERE is_admin = 1"),
        "1",
        "serve did not make its admin in PostgreSQL\n{}",
        sky.log_tail(30)
    );
    let source = sky.scratch().join("hello");
    copy_dir(&example("hello"), &source).expect("copy the example");
    sky.deploy_ok(&source, "hello");
    assert_eq!(
        database.value(
            "SELECT d.status FROM servers s JOIN deployments d ON d.id = s.live_deployment_id \
             WHERE s.name = 'hello'"
        ),
        "ready",
        "the live deployment is not recorded in PostgreSQL"
    );
    sky.check_hello("hello", "postgres");

    let (mut client, ready) =
        HeldClient::open("sdk", "session_client.py", &["sdk", &sky.mcp_url("hello")]);
    assert_eq!(ready["ready"], true, "sdk client did not connect: {ready}");
    let first = client.hello("before-restart");
    assert_eq!(first["text"], "Hello, before-restart!", "{first}");
    assert_eq!(
        database.value("SELECT COUNT(*) FROM gateway_sessions"),
        "1",
        "the session is not in PostgreSQL"
    );

    sky.kill9();
    sky.restart();
    let after = client.hello("after-restart");
    assert_eq!(
        after["text"],
        "Hello, after-restart!",
        "the session did not survive the restart: {after}\n{}",
        sky.log_tail(40)
    );
    assert!(
        sky.log().contains("replayed a session's initialize"),
        "no replay was logged\n{}",
        sky.log_tail(40)
    );
}
