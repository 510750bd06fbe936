//! State that replicas must agree on, beyond what the change feed already carries: two serves
//! (their own data dirs and ports, one PostgreSQL database, one master key).
//!
//! A key's rate limit holds for both together: requests with one key alternating between A
//! and B are admitted at most the burst's worth in total (each replica leases from the
//! key's bucket in the database), then refused with `429` and `Retry-After` by both. A
//! signing key rotated through A is what B publishes and signs with, without a restart.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use skyport_e2e::{HttpResponse, PostgresDatabase, Skyport, http, wait_until};
use skyport_identity::{Expected, Jwks, decode_part, verify};

use crate::keys::{headers_server, seen_headers};
use crate::postgres::{external_hello, replica};

const ACCEPT: (&str, &str) = ("Accept", "application/json, text/event-stream");
const JSON: (&str, &str) = ("Content-Type", "application/json");
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"0"}}}"#;
/// The burst; at 20 an hour nothing refills while the test runs, so the total is exact.
const BURST: usize = 20;

/// `initialize` of `hello` through `replica` with `key`.
fn initialize(replica: &Skyport, key: &str) -> HttpResponse {
    let bearer = format!("Bearer {key}");
    let headers = [ACCEPT, JSON, ("Authorization", bearer.as_str())];
    http(
        &replica.addr(),
        "POST",
        "/servers/hello/mcp",
        &headers,
        Some(INITIALIZE),
    )
    .unwrap_or_else(|e| panic!("POST to {}: {e}\n{}", replica.addr(), replica.log_tail(40)))
}

#[test]
fn a_keys_rate_limit_holds_across_replicas() {
    let Some(database) = PostgresDatabase::create() else {
        return;
    };
    let burst = BURST.to_string();
    let flags = [
        "--allow-private-externals",
        "--rate-limit",
        "20/h",
        "--rate-limit-burst",
        burst.as_str(),
    ];
    let a = replica(&database, &flags);
    let _remote = external_hello(&a);
    let created = a.cli(&["keys", "create", "--name", "limited"]);
    assert!(created.success, "{created}");
    let key = created.stdout.trim().to_owned();
    // B starts after the server and the key exist, so it knows both from its first request.
    let b = replica(&database, &flags);

    let replicas = [&a, &b];
    let mut admitted = [0usize; 2];
    let mut answers = Vec::new();
    // Enough requests for both replicas to spend every lease they could take, and more.
    for i in 0..(3 * BURST) {
        let answer = initialize(replicas[i % 2], &key);
        match answer.status {
            200 => admitted[i % 2] += 1,
            429 => {
                let retry: u64 = answer
                    .header("retry-after")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("a 429 without Retry-After: {answer:?}"));
                // One request frees every 3 minutes.
                assert!(
                    (1..=180).contains(&retry),
                    "Retry-After {retry}: {answer:?}"
                );
            }
            other => panic!(
                "request {i} got {other}: {answer:?}\n{}",
                replicas[i % 2].log_tail(30)
            ),
        }
        answers.push(answer.status);
    }
    let total = admitted[0] + admitted[1];
    assert!(
        total <= BURST,
        "{total} requests were admitted with a burst of {BURST} ({admitted:?}): {answers:?}"
    );
    assert!(
        admitted.iter().all(|&n| n > 0),
        "one replica admitted nothing ({admitted:?}): {answers:?}"
    );
    // Per replica, the limit would have admitted twice the burst; shared, the tail is refused
    // by both.
    let tail = &answers[2 * BURST..];
    assert!(
        tail.iter().all(|&status| status == 429),
        "requests past the shared burst were admitted: {answers:?}"
    );
    assert_eq!(
        database.value("SELECT COUNT(*) FROM rate_buckets"),
        "1",
        "the key's bucket is not one row in the database"
    );
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The JWKS `replica` publishes.
fn jwks(replica: &Skyport) -> Jwks {
    let published = http(&replica.addr(), "GET", "/.well-known/jwks.json", &[], None)
        .expect("GET /.well-known/jwks.json");
    assert_eq!(published.status, 200, "{published:?}");
    serde_json::from_value(published.json().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not a JWKS ({e}): {published:?}"))
}

/// The identity token `signed` on `replica` received for `key`'s caller.
fn identity_token(replica: &Skyport, key: &str) -> String {
    let seen = seen_headers(replica, "signed", Some(key), &[])
        .unwrap_or_else(|e| panic!("the call failed: {e}\n{}", replica.log_tail(40)));
    seen["skyport-identity"]
        .as_str()
        .unwrap_or_else(|| panic!("no skyport-identity header: {seen}"))
        .to_owned()
}

/// The `kid` a token's header names.
fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap_or_default();
    let header: serde_json::Value =
        decode_part(header, "the header").unwrap_or_else(|e| panic!("{e}: {token}"));
    header["kid"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_signing_key_rotated_through_one_replica_signs_on_the_other() {
    let Some(database) = PostgresDatabase::create() else {
        return;
    };
    let a = replica(&database, &[]);
    let b = replica(&database, &[]);
    // Deployed through B, so that B has the artifact and serves it.
    let source = headers_server(&b);
    let run = b.deploy(&source, "signed", &["--identity-token", "on"]);
    assert!(run.success, "deploy\n{run}\n{}", b.log_tail(40));
    let created = b.cli(&["keys", "create", "--name", "caller"]);
    assert!(created.success, "{created}");
    let key = created.stdout.trim().to_owned();

    let before = identity_token(&b, &key);
    let old_kid = kid_of(&before);
    let kids: Vec<String> = jwks(&b).keys.into_iter().map(|k| k.kid).collect();
    assert_eq!(
        kids,
        std::slice::from_ref(&old_kid),
        "B's JWKS before the rotation"
    );

    let rotated = a.cli(&["keys", "rotate-signing", "--json"]);
    assert!(rotated.success, "{rotated}\n{}", a.log_tail(30));
    let new_kid = rotated.json()["kid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_ne!(new_kid, old_kid);

    // B hears of the rotation from the change feed: no restart, a bounded wait.
    let mut published = Vec::new();
    let follows = wait_until(Duration::from_secs(5), || {
        published = jwks(&b).keys.into_iter().map(|k| k.kid).collect();
        published.first() == Some(&new_kid)
    });
    assert!(
        follows,
        "B's JWKS does not lead with {new_kid} within 5 s: {published:?}\n{}",
        b.log_tail(30)
    );
    assert_eq!(
        published,
        [new_kid.clone(), old_kid],
        "B's JWKS keeps the retired key after the new one"
    );
    let on_a: Vec<String> = jwks(&a).keys.into_iter().map(|k| k.kid).collect();
    assert_eq!(on_a, published, "A and B publish different keys");

    // B signs with the new key, and the token verifies with what B publishes.
    let after = identity_token(&b, &key);
    assert_eq!(kid_of(&after), new_kid, "B still signs with the old key");
    let audience = b.mcp_url("signed");
    let issuer = b.url();
    let expected = Expected {
        issuer: &issuer,
        audience: &audience,
    };
    verify(&after, &jwks(&b).public_keys(), &expected, now())
        .unwrap_or_else(|e| panic!("B's new token does not verify: {e}\n{after}"));
}
