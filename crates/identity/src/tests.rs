//! The identity crate on its own: tokens signed and checked, tampering, audiences, clocks,
//! unknown keys, and the JWKS shape.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::{
    Claims, Expected, Jwks, Keypair, PublicKey, Subject, VerifyError, verify, verify_signature,
};

const ISSUER: &str = "https://skyport.example";
const AUDIENCE: &str = "https://skyport.example/servers/notes/mcp";
const NOW: u64 = 1_800_000_000;

fn subject() -> Subject {
    Subject {
        id: "prn_01jabcdefghjkmnpqrstvwxyz0".to_owned(),
        name: "ada".to_owned(),
        email: Some("ada@example.com".to_owned()),
        roles: vec!["viewer".to_owned()],
    }
}

fn claims() -> Claims {
    Claims::issue(ISSUER, AUDIENCE, subject(), NOW, Duration::from_secs(300))
}

const EXPECTED: Expected<'static> = Expected {
    issuer: ISSUER,
    audience: AUDIENCE,
};

/// Verifies `token` at `now` against `key`'s public half, as a server holding the JWKS would.
fn check(token: &str, key: &Keypair, now: u64) -> Result<Claims, VerifyError> {
    let jwks = Jwks::of(&[key.public()]);
    verify(token, &jwks.public_keys(), &EXPECTED, now)
}

#[test]
fn a_signed_token_verifies_with_the_published_key() {
    let key = Keypair::generate();
    let token = key.sign(&claims());
    assert_eq!(check(&token, &key, NOW + 10), Ok(claims_with_jti(&token)));
    let claims = check(&token, &key, NOW).expect("verifies");
    assert_eq!(claims.sub, subject().id);
    assert_eq!(claims.aud, AUDIENCE);
    assert_eq!(claims.exp, NOW + 300);
    assert_eq!(claims.roles, ["viewer"]);
    assert_eq!(claims.email.as_deref(), Some("ada@example.com"));
}

/// The claims of `token` as issued (its `jti` is random).
fn claims_with_jti(token: &str) -> Claims {
    let payload = token.split('.').nth(1).expect("a payload");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url");
    serde_json::from_slice(&bytes).expect("claims")
}

#[test]
fn a_tampered_payload_or_signature_fails() {
    let key = Keypair::generate();
    let token = key.sign(&claims());
    let parts: Vec<&str> = token.split('.').collect();

    let mut forged = claims();
    forged.sub = "prn_01jzzzzzzzzzzzzzzzzzzzzzzz".to_owned();
    forged.roles = vec!["admin".to_owned()];
    let forged_payload = URL_SAFE_NO_PAD.encode(forged.to_json());
    let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_eq!(check(&tampered, &key, NOW), Err(VerifyError::Signature));

    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("base64url");
    signature[0] ^= 1;
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(signature)
    );
    assert_eq!(check(&tampered, &key, NOW), Err(VerifyError::Signature));

    let other = Keypair::generate();
    let resigned = Keypair::from_secret(key.kid(), &other.secret_bytes())
        .expect("a key")
        .sign(&claims());
    assert_eq!(check(&resigned, &key, NOW), Err(VerifyError::Signature));
}

#[test]
fn a_token_for_another_server_or_issuer_fails() {
    let key = Keypair::generate();
    let mut other = claims();
    other.aud = "https://skyport.example/servers/billing/mcp".to_owned();
    assert_eq!(
        check(&key.sign(&other), &key, NOW),
        Err(VerifyError::Audience(other.aud.clone()))
    );
    let mut other = claims();
    other.iss = "https://evil.example".to_owned();
    assert_eq!(
        check(&key.sign(&other), &key, NOW),
        Err(VerifyError::Issuer(other.iss.clone()))
    );
}

#[test]
fn expired_and_early_tokens_fail_past_the_leeway() {
    let key = Keypair::generate();
    let token = key.sign(&claims());
    assert!(check(&token, &key, NOW + 300 + 29).is_ok());
    assert_eq!(
        check(&token, &key, NOW + 300 + 30),
        Err(VerifyError::Expired)
    );
    assert!(check(&token, &key, NOW - 30).is_ok());
    assert_eq!(check(&token, &key, NOW - 31), Err(VerifyError::NotYetValid));
}

#[test]
fn unknown_keys_other_algorithms_and_garbage_fail() {
    let key = Keypair::generate();
    let token = key.sign(&claims());
    let stranger = Keypair::generate();
    assert_eq!(
        check(&token, &stranger, NOW),
        Err(VerifyError::UnknownKey(key.kid().to_owned()))
    );
    let parts: Vec<&str> = token.split('.').collect();
    let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"x"}"#);
    assert_eq!(
        check(&format!("{none}.{}.", parts[1]), &key, NOW),
        Err(VerifyError::Algorithm("none".to_owned()))
    );
    for garbage in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
        assert!(
            matches!(check(garbage, &key, NOW), Err(VerifyError::Malformed(_))),
            "{garbage:?} was not refused as malformed"
        );
    }
}

#[test]
fn keys_survive_sealed_storage_as_bytes() {
    let key = Keypair::generate();
    let restored = Keypair::from_secret(key.kid(), &key.secret_bytes()).expect("a key");
    assert_eq!(restored.public(), key.public());
    let public = PublicKey::from_bytes(key.kid(), &key.public().to_bytes()).expect("a key");
    assert!(check(&restored.sign(&claims()), &key, NOW).is_ok());
    assert_eq!(public, key.public());
    assert!(Keypair::from_secret("k", &[0; 31]).is_err());
}

#[test]
fn the_jwks_lists_ed25519_keys_as_okp_jwks() {
    let key = Keypair::from_secret("test-key", &[7; 32]).expect("a key");
    let jwks = Jwks::of(&[key.public()]);
    insta::assert_json_snapshot!(jwks, @r#"
    {
      "keys": [
        {
          "kty": "OKP",
          "crv": "Ed25519",
          "x": "6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw",
          "kid": "test-key",
          "alg": "EdDSA",
          "use": "sig"
        }
      ]
    }
    "#);
    let parsed: Jwks = serde_json::from_value(serde_json::json!({
        "keys": [
            {"kty": "RSA", "crv": "", "x": "", "kid": "rsa"},
            serde_json::to_value(&jwks.keys[0]).expect("json"),
        ]
    }))
    .expect("a JWKS");
    assert_eq!(parsed.public_keys(), [key.public()]);
}

#[test]
fn a_token_of_another_type_never_verifies_as_an_identity_token() {
    let key = Keypair::from_secret("k", &[3; 32]).expect("a key");
    let payload =
        r#"{"iss":"https://sky","aud":"https://sky/servers/a/mcp","sub":"p","exp":99999999999}"#;
    let access = key.sign_typed("at+jwt", payload);
    let expected = Expected {
        issuer: "https://sky",
        audience: "https://sky/servers/a/mcp",
    };
    assert_eq!(
        verify(&access, &[key.public()], &expected, 1),
        Err(VerifyError::Type("at+jwt".to_owned()))
    );
    assert!(verify_signature(&access, &[key.public()], "at+jwt").is_ok());
    let identity = key.sign(&Claims::issue(
        "https://sky",
        "https://sky/servers/a/mcp",
        Subject {
            id: "p".to_owned(),
            name: "p".to_owned(),
            email: None,
            roles: Vec::new(),
        },
        1,
        Duration::from_secs(60),
    ));
    assert_eq!(
        verify_signature(&identity, &[key.public()], "at+jwt"),
        Err(VerifyError::Type("JWT".to_owned()))
    );
}
