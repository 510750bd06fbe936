//! GitHub's webhook format: the `X-Hub-Signature-256` check and the `push`, `pull_request`
//! and `ping` payloads, read into [`SourceEvent`]s. Pure functions, no I/O.
//!
//! The signature is HMAC-SHA256 (RFC 2104) of the raw body, written out here over `sha2`
//! rather than pulling another digest stack into the build, and compared in constant time.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use skyport_build::SourceEvent;

/// What a verified delivery asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// GitHub checking that the webhook works.
    Ping,
    /// An event this module reads, as the builder takes it.
    Event(SourceEvent),
    /// A delivery that needs nothing built, and why.
    Ignored(String),
}

/// Why a signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SignatureError {
    /// No `X-Hub-Signature-256` header.
    #[error(
        "the delivery is not signed: send the X-Hub-Signature-256 header (set the webhook's secret to the server's webhook secret)"
    )]
    Missing,
    /// The header is not `sha256=` and 64 hex digits.
    #[error("X-Hub-Signature-256 must be 'sha256=' followed by 64 hex digits")]
    Malformed,
    /// The signature is not the body's under the server's secret.
    #[error(
        "the signature does not match the body under this server's webhook secret; set the webhook's secret to the one given to `skyport servers set --webhook-secret`"
    )]
    Mismatch,
}

/// Checks `header` (`sha256=<hex>`) against the HMAC-SHA256 of `body` under `secret`.
pub(crate) fn verify(
    secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let given = header.ok_or(SignatureError::Missing)?;
    let hex = given
        .trim()
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let given = hex::decode(hex).map_err(|_| SignatureError::Malformed)?;
    if given.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let expected = hmac_sha256(secret, body);
    // Every byte is compared whatever the first difference, so the time taken does not tell
    // an attacker how much of a forged signature was right.
    let difference = expected
        .iter()
        .zip(&given)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if difference == 0 {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// HMAC-SHA256 of `message` under `key` (RFC 2104, block size 64).
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Reads a delivery of event `event` (the `X-GitHub-Event` header); the error says what is
/// wrong with the payload.
pub(crate) fn parse(event: &str, body: &[u8]) -> Result<Delivery, String> {
    match event {
        "ping" => Ok(Delivery::Ping),
        "push" => push(&payload(body)?),
        "pull_request" => pull_request(&payload(body)?),
        other => Ok(Delivery::Ignored(format!(
            "'{other}' events build nothing; send push and pull_request events"
        ))),
    }
}

fn payload<'de, T: Deserialize<'de>>(body: &'de [u8]) -> Result<T, String> {
    serde_json::from_slice(body)
        .map_err(|e| format!("the payload is not a GitHub webhook payload of its event: {e}"))
}

#[derive(Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    reference: String,
    after: String,
    #[serde(default)]
    deleted: bool,
}

#[derive(Deserialize)]
struct PullRequestEvent {
    action: String,
    pull_request: PullRequest,
}

#[derive(Deserialize)]
struct PullRequest {
    head: Head,
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "ref")]
    reference: String,
    sha: String,
}

/// The commit GitHub names as `after` when a push deleted the branch.
const NO_COMMIT: &str = "0000000000000000000000000000000000000000";

fn push(push: &Push) -> Result<Delivery, String> {
    let Some(branch) = push.reference.strip_prefix("refs/heads/") else {
        return Ok(Delivery::Ignored(format!(
            "a push to {}, which is not a branch",
            push.reference
        )));
    };
    if branch.is_empty() {
        return Err(format!("the push's ref {} names no branch", push.reference));
    }
    let branch = branch.to_owned();
    // GitHub sends a deletion as `deleted: true` with `after` all zeros (a full SHA's 40: a
    // shorter or empty `after` is a malformed push, not a deletion).
    if push.deleted || push.after == NO_COMMIT {
        return Ok(Delivery::Event(SourceEvent::BranchGone { branch }));
    }
    Ok(Delivery::Event(SourceEvent::Pushed {
        branch,
        sha: commit(&push.after)?,
    }))
}

fn pull_request(event: &PullRequestEvent) -> Result<Delivery, String> {
    let head = &event.pull_request.head;
    if head.reference.is_empty() {
        return Err("the pull request's head names no branch".to_owned());
    }
    let branch = head.reference.clone();
    match event.action.as_str() {
        "opened" | "reopened" | "synchronize" => Ok(Delivery::Event(SourceEvent::PullRequest {
            branch,
            sha: commit(&head.sha)?,
        })),
        "closed" => Ok(Delivery::Event(SourceEvent::BranchGone { branch })),
        other => Ok(Delivery::Ignored(format!(
            "pull request action '{other}' builds nothing"
        ))),
    }
}

/// A full commit SHA (40 hex digits, lowercase as git prints it).
fn commit(sha: &str) -> Result<String, String> {
    if sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha.to_ascii_lowercase())
    } else {
        Err(format!("'{sha}' is not a full commit SHA"))
    }
}

#[cfg(test)]
mod tests;
