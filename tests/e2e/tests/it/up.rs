//! `skyport up` with no source serves the example and says where.

use skyport_e2e::{DEPLOY_TIMEOUT, Skyport, wait_until};

#[test]
fn up_serves_the_example() {
    let sky = Skyport::up();
    let printed = wait_until(DEPLOY_TIMEOUT, || sky.log().contains("/servers/hello/mcp"));
    assert!(
        printed,
        "skyport up never printed the MCP URL of hello\n{}",
        sky.log_tail(60)
    );
    // The URL is printed once the deploy is promoted; the first call may still start the instance.
    sky.check_hello("hello", "up");
}
