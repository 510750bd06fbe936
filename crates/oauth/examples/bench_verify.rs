//! What an OAuth access token costs the gateway per request, against an API key, in one run.
//!
//! ```text
//! cargo run --release -p skyport-oauth --example bench_verify [ROUNDS]
//! ```
//!
//! The gateway checks an API key as a SHA-256 of the secret and a map lookup. An access token
//! is verified once (Ed25519 signature, claims) and then cached by the SHA-256 of the token: a
//! hash of a longer string, a map lookup and a lookup in the revoked set. Prints ns per check
//! for the three and the ratios to the API key. It reports; it never fails on a figure.

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use skyport_identity::Keypair;
use skyport_oauth::{AccessClaims, verify_access_token};

fn main() -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let key = Keypair::generate();
    let keys = [key.public()];
    let audience = "https://sky.example/servers/notes/mcp";
    let claims = AccessClaims::issue(
        "https://sky.example",
        "prn_01jabcdefghjkmnpqrstvwxyz0",
        audience,
        "oac_01jabcdefghjkmnpqrstvwxyz0",
        "mcp offline_access",
        now(),
        Duration::from_secs(3600),
    );
    let token = claims.sign(&key);
    let secret = "sk_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";

    let keyring: HashMap<[u8; 32], u32> = [(hash(secret), 1)].into_iter().collect();
    let cache: HashMap<[u8; 32], (String, u64, String)> = [(
        hash(&token),
        (audience.to_owned(), claims.exp, claims.jti.clone()),
    )]
    .into_iter()
    .collect();
    let revoked: HashSet<String> = HashSet::new();

    let api_key = per_check(rounds, || {
        black_box(keyring.get(&hash(black_box(secret))));
    });
    let cached = per_check(rounds, || {
        let entry = cache.get(&hash(black_box(&token)));
        black_box(entry.is_some_and(|(aud, _, jti)| aud == audience && !revoked.contains(jti)));
    });
    let verified = per_check(rounds / 20, || {
        black_box(
            verify_access_token(
                black_box(&token),
                &keys,
                "https://sky.example",
                audience,
                now(),
            )
            .is_ok(),
        );
    });
    writeln!(out, "token length: {} bytes", token.len())?;
    writeln!(out, "API key (hash + lookup):          {api_key:>9.0} ns")?;
    writeln!(
        out,
        "access token, cached:             {cached:>9.0} ns  ({:.1}x the API key)",
        cached / api_key
    )?;
    writeln!(
        out,
        "access token, first use (verify): {verified:>9.0} ns  ({:.1}x the API key)",
        verified / api_key
    )?;
    Ok(())
}

fn hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn per_check(rounds: u32, mut check: impl FnMut()) -> f64 {
    for _ in 0..rounds / 10 {
        check();
    }
    let start = Instant::now();
    for _ in 0..rounds {
        check();
    }
    start.elapsed().as_nanos() as f64 / f64::from(rounds.max(1))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
