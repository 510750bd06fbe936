//! Access tokens: JWTs per RFC 9068 (`typ: at+jwt`), signed with the same Ed25519 keys as
//! identity tokens (so the JWKS publishes both) but never mistaken for one: each kind checks
//! the header's `typ`. One token is for one server: `aud` is that server's MCP URL.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use skyport_identity::{Keypair, PublicKey, VerifyError, decode_part, verify_signature};

/// The JWS `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// Clock difference tolerated for `exp`: the issuer and the gateway are the same platform,
/// often the same process, so a few seconds cover replicas.
pub const ACCESS_LEEWAY: Duration = Duration::from_secs(5);

/// The claims of an access token (RFC 9068 §2.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The issuer: Skyport's public URL.
    pub iss: String,
    /// The principal's id.
    pub sub: String,
    /// The one server's MCP URL the token is for.
    pub aud: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The granted scope, space-separated.
    pub scope: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: u64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: u64,
    /// A unique id, by which it is revoked.
    pub jti: String,
}

impl AccessClaims {
    /// Claims for `sub` at `aud`, valid `lifetime` from `now`, with a fresh `jti`.
    pub fn issue(
        iss: &str,
        sub: &str,
        aud: &str,
        client_id: &str,
        scope: &str,
        now: u64,
        lifetime: Duration,
    ) -> AccessClaims {
        let mut jti = [0u8; 16];
        rand::rng().fill_bytes(&mut jti);
        AccessClaims {
            iss: iss.to_owned(),
            sub: sub.to_owned(),
            aud: aud.to_owned(),
            client_id: client_id.to_owned(),
            scope: scope.to_owned(),
            iat: now,
            exp: now.saturating_add(lifetime.as_secs()),
            jti: URL_SAFE_NO_PAD.encode(jti),
        }
    }

    /// The signed token.
    pub fn sign(&self, key: &Keypair) -> String {
        let payload = serde_json::json!({
            "iss": self.iss,
            "sub": self.sub,
            "aud": self.aud,
            "client_id": self.client_id,
            "scope": self.scope,
            "iat": self.iat,
            "exp": self.exp,
            "jti": self.jti,
        });
        key.sign_typed(ACCESS_TOKEN_TYPE, &payload.to_string())
    }
}

/// Why an access token is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessTokenError {
    /// Not a token Skyport signed as an access token.
    #[error(transparent)]
    Signature(#[from] VerifyError),
    /// Issued by someone else.
    #[error("the token was issued by {0}, not this Skyport")]
    Issuer(String),
    /// For another server.
    #[error("the token is for {0}, not this server; ask for a token for this server's URL")]
    Audience(String),
    /// Past its expiry.
    #[error("the token expired; refresh it or authorize again")]
    Expired,
}

/// The claims of `token` if Skyport (`issuer`) signed it as an access token with one of
/// `keys`, it is not expired at `now` (seconds since the epoch) and `audience` is its `aud`.
/// Revocation is the caller's check (it keeps the revoked ids).
pub fn verify_access_token(
    token: &str,
    keys: &[PublicKey],
    issuer: &str,
    audience: &str,
    now: u64,
) -> Result<AccessClaims, AccessTokenError> {
    let claims = verify_unbound(token, keys, issuer, now)?;
    if claims.aud != audience {
        return Err(AccessTokenError::Audience(claims.aud));
    }
    Ok(claims)
}

/// Like [`verify_access_token`] for any audience: what revocation needs (a client revokes its
/// token without naming the server).
pub fn verify_unbound(
    token: &str,
    keys: &[PublicKey],
    issuer: &str,
    now: u64,
) -> Result<AccessClaims, AccessTokenError> {
    let payload = verify_signature(token, keys, ACCESS_TOKEN_TYPE)?;
    let claims: AccessClaims = decode_part(payload, "the claims")?;
    if claims.iss != issuer {
        return Err(AccessTokenError::Issuer(claims.iss));
    }
    if now >= claims.exp.saturating_add(ACCESS_LEEWAY.as_secs()) {
        return Err(AccessTokenError::Expired);
    }
    Ok(claims)
}
