//! Signed identity tokens end to end: a server deployed with `--identity-token on` receives a
//! `skyport-identity` JWT for a caller with an API key, which verifies with the keys Skyport
//! publishes at `/.well-known/jwks.json` (and fails once tampered with); a client's own
//! `skyport-identity` header never reaches the server, and with the setting off none is sent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use skyport_e2e::{Skyport, http, wait_until};
use skyport_identity::{Expected, Jwks, VerifyError, verify};

use crate::keys::{headers_server, seen_headers};

const FORGED: &str = "skyport-identity=eyJhbGciOiJub25lIn0.eyJzdWIiOiJyb290In0.";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[test]
fn servers_that_ask_get_a_token_that_verifies_with_the_published_keys() {
    let sky = Skyport::serve();
    let source = headers_server(&sky);
    let run = sky.deploy(&source, "signed", &["--identity-token", "on"]);
    assert!(run.success, "deploy\n{run}\n{}", sky.log_tail(40));
    let shown = sky.cli(&["servers", "show", "signed", "--json"]);
    assert_eq!(shown.json()["settings"]["identity_token"], true, "{shown}");
    let created = sky.cli(&["keys", "create", "--name", "caller"]);
    assert!(created.success, "{created}");
    let key = created.stdout.trim().to_owned();

    let seen = seen_headers(&sky, "signed", Some(&key), &[FORGED])
        .unwrap_or_else(|e| panic!("the call failed: {e}\n{}", sky.log_tail(40)));
    let token = seen["skyport-identity"]
        .as_str()
        .unwrap_or_else(|| panic!("no skyport-identity header: {seen}"))
        .to_owned();
    assert!(
        !FORGED.ends_with(&token),
        "the client's header got through: {seen}"
    );

    let published = http(&sky.addr(), "GET", "/.well-known/jwks.json", &[], None)
        .expect("GET /.well-known/jwks.json");
    assert_eq!(published.status, 200, "{published:?}");
    let jwks: Jwks = serde_json::from_value(published.json().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not a JWKS ({e}): {published:?}"));
    let keys = jwks.public_keys();
    assert_eq!(keys.len(), 1, "{jwks:?}");
    let audience = sky.mcp_url("signed");
    let url = sky.url();
    let expected = Expected {
        issuer: &url,
        audience: &audience,
    };
    let claims = verify(&token, &keys, &expected, now())
        .unwrap_or_else(|e| panic!("the token does not verify: {e}\n{token}"));
    assert_eq!(claims.sub, seen["skyport-user-id"].as_str().unwrap_or("?"));
    assert!(claims.sub.starts_with("prn_"), "{claims:?}");
    assert_eq!(claims.name, "admin");
    assert_eq!(claims.roles, ["admin"]);
    assert!(
        claims.exp > now() && claims.exp <= now() + 300,
        "{claims:?}"
    );

    let tampered = swap_payload(&token, &claims.sub, "prn_01jzzzzzzzzzzzzzzzzzzzzzzz");
    assert_eq!(
        verify(&tampered, &keys, &expected, now()),
        Err(VerifyError::Signature)
    );
    let elsewhere = sky.mcp_url("other");
    let other_server = Expected {
        issuer: &url,
        audience: &elsewhere,
    };
    assert!(matches!(
        verify(&token, &keys, &other_server, now()),
        Err(VerifyError::Audience(_))
    ));

    // After a rotation, new tokens name the new key and the old token still verifies.
    let rotated = sky.cli(&["keys", "rotate-signing", "--json"]);
    assert!(rotated.success, "{rotated}");
    let kid = rotated.json()["kid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let seen = seen_headers(&sky, "signed", Some(&key), &[])
        .unwrap_or_else(|e| panic!("the call failed: {e}\n{}", sky.log_tail(40)));
    let fresh = seen["skyport-identity"].as_str().unwrap_or_default();
    let published = http(&sky.addr(), "GET", "/.well-known/jwks.json", &[], None)
        .expect("GET /.well-known/jwks.json");
    let jwks: Jwks = serde_json::from_value(published.json().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not a JWKS ({e}): {published:?}"));
    assert_eq!(jwks.keys.len(), 2, "{jwks:?}");
    assert_eq!(jwks.keys[0].kid, kid, "{jwks:?}");
    let keys = jwks.public_keys();
    verify(&token, &keys, &expected, now()).expect("the old token verifies");
    verify(fresh, &keys, &expected, now()).expect("the new token verifies");
    assert!(
        verify(fresh, &keys[1..], &expected, now()).is_err(),
        "the new token is not signed with the new key"
    );

    // Turned off, the server gets the plain identity headers only, and still never the forgery.
    let off = sky.cli(&["servers", "set", "signed", "--identity-token", "off"]);
    assert!(off.success, "{off}");
    let mut last = serde_json::Value::Null;
    let unsigned = wait_until(Duration::from_secs(10), || {
        last = seen_headers(&sky, "signed", Some(&key), &[FORGED]).unwrap_or_default();
        last["skyport-user-id"].is_string() && last.get("skyport-identity").is_none()
    });
    assert!(unsigned, "still signed after --identity-token off: {last}");
}

/// `token` with one string of its claims replaced, keeping its header and signature.
fn swap_payload(token: &str, from: &str, to: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWS: {token}");
    let claims = URL_SAFE_NO_PAD.decode(parts[1]).expect("base64url claims");
    let claims = String::from_utf8(claims).expect("UTF-8 claims");
    assert!(claims.contains(from), "{from} is not in {claims}");
    let forged = URL_SAFE_NO_PAD.encode(claims.replace(from, to));
    format!("{}.{forged}.{}", parts[0], parts[2])
}
