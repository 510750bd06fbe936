//! PKCE (RFC 7636), S256 only: OAuth 2.1 drops `plain`, which protects nothing against an
//! attacker who sees the authorization request.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::OAuthError;

/// A code challenge: base64url of the SHA-256 of the verifier the client keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// The challenge of an authorization request; a missing one, a method other than `S256`
    /// or a value that is not 43 base64url characters is refused.
    pub fn parse(
        challenge: Option<&str>,
        method: Option<&str>,
    ) -> Result<CodeChallenge, OAuthError> {
        let challenge = challenge.ok_or_else(|| {
            OAuthError::InvalidRequest("code_challenge is required (PKCE with S256)".to_owned())
        })?;
        match method {
            Some("S256") => {}
            Some(other) => {
                return Err(OAuthError::InvalidRequest(format!(
                    "code_challenge_method {other} is not supported; use S256"
                )));
            }
            None => {
                return Err(OAuthError::InvalidRequest(
                    "code_challenge_method is required and must be S256 (plain is not supported)"
                        .to_owned(),
                ));
            }
        }
        let well_formed = challenge.len() == 43
            && challenge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return Err(OAuthError::InvalidRequest(
                "code_challenge must be the base64url SHA-256 of the verifier (43 characters)"
                    .to_owned(),
            ));
        }
        Ok(CodeChallenge(challenge.to_owned()))
    }

    /// A challenge as stored with a code.
    pub fn stored(challenge: String) -> CodeChallenge {
        CodeChallenge(challenge)
    }

    /// The challenge as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `verifier` (RFC 7636 §4.1: 43–128 unreserved characters) is the one this
    /// challenge was made from.
    pub fn accepts(&self, verifier: &str) -> bool {
        let well_formed = (43..=128).contains(&verifier.len())
            && verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        well_formed && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == self.0
    }
}
