//! Signed identity tokens: short-lived JWTs (RFC 7519) signed with Ed25519 (`alg: EdDSA`,
//! RFC 8037) that tell a server who is calling, and the JWKS document (RFC 7517) that publishes
//! the keys to check them with.
//!
//! Skyport's gateway signs one per caller and server (`skyport-identity` header); anyone
//! holding the JWKS can verify it, so a server trusts the token rather than plain headers. The
//! crate depends on no other Skyport crate so that other token issuers (OAuth access tokens)
//! can use it too. It does no I/O and keeps no state: storing keys, caching tokens and serving
//! the JWKS belong to its callers. The compact encoding is written here (it is three base64url
//! parts); the signature is `ed25519-dalek`'s.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// The JWS algorithm of every token: Ed25519 signatures.
pub const ALGORITHM: &str = "EdDSA";

/// The JWS `typ` of identity tokens; tokens of another type (OAuth access tokens, `at+jwt`)
/// never verify as identity tokens.
pub const IDENTITY_TYPE: &str = "JWT";

/// Clock difference tolerated between the signer and a verifier, for `nbf` and `exp`.
pub const LEEWAY: Duration = Duration::from_secs(30);

/// A signing key with its key id; the secret half never leaves except through
/// [`Keypair::secret_bytes`], for sealed storage.
pub struct Keypair {
    kid: String,
    key: SigningKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({}, [redacted])", self.kid)
    }
}

/// The public half of a [`Keypair`], as a verifier holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    kid: String,
    key: VerifyingKey,
}

/// Why stored or published key material is not a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The bytes are not an Ed25519 key of 32 bytes.
    #[error("key {kid} is not a 32-byte Ed25519 key")]
    Invalid {
        /// The key's id.
        kid: String,
    },
    /// A JWK that is not an Ed25519 signing key (`kty: OKP`, `crv: Ed25519`).
    #[error("key {kid} is a {kty}/{crv} key; only OKP/Ed25519 keys verify identity tokens")]
    Unsupported {
        /// The key's id.
        kid: String,
        /// Its `kty`.
        kty: String,
        /// Its `crv`.
        crv: String,
    },
}

impl Keypair {
    /// A new random key with a random key id.
    pub fn generate() -> Keypair {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let mut kid = [0u8; 12];
        rand::rng().fill_bytes(&mut kid);
        Keypair {
            kid: URL_SAFE_NO_PAD.encode(kid),
            key: SigningKey::from_bytes(&secret),
        }
    }

    /// The key `kid` whose secret is `secret` (as [`Keypair::secret_bytes`] gave it).
    pub fn from_secret(kid: &str, secret: &[u8]) -> Result<Keypair, KeyError> {
        let secret = <[u8; 32]>::try_from(secret).map_err(|_| KeyError::Invalid {
            kid: kid.to_owned(),
        })?;
        Ok(Keypair {
            kid: kid.to_owned(),
            key: SigningKey::from_bytes(&secret),
        })
    }

    /// The key id, carried in every token's header as `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The 32 secret bytes, to seal before storing them.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            kid: self.kid.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// `claims` as a compact JWS: `header.payload.signature`, each base64url without padding.
    pub fn sign(&self, claims: &Claims) -> String {
        self.sign_typed(IDENTITY_TYPE, &claims.to_json())
    }

    /// The JSON object `payload` as a compact JWS whose header says `typ`: for other token
    /// kinds signed with the same keys (OAuth access tokens are `at+jwt`, RFC 9068).
    pub fn sign_typed(&self, typ: &str, payload: &str) -> String {
        let header = serde_json::json!({ "alg": ALGORITHM, "typ": typ, "kid": self.kid });
        let mut token = URL_SAFE_NO_PAD.encode(header.to_string());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(payload));
        let signature = self.key.sign(token.as_bytes());
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature.to_bytes()));
        token
    }
}

impl PublicKey {
    /// The key `kid` from its 32 public bytes.
    pub fn from_bytes(kid: &str, bytes: &[u8]) -> Result<PublicKey, KeyError> {
        let invalid = || KeyError::Invalid {
            kid: kid.to_owned(),
        };
        let bytes = <[u8; 32]>::try_from(bytes).map_err(|_| invalid())?;
        Ok(PublicKey {
            kid: kid.to_owned(),
            key: VerifyingKey::from_bytes(&bytes).map_err(|_| invalid())?,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The 32 public bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The key as a JWK (RFC 8037: `kty: OKP`, `crv: Ed25519`, `x` = the public bytes).
    pub fn jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: URL_SAFE_NO_PAD.encode(self.key.to_bytes()),
            kid: self.kid.clone(),
            alg: Some(ALGORITHM.to_owned()),
            usage: Some("sig".to_owned()),
        }
    }
}

/// One published key (RFC 7517), as the JWKS lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `OKP` for Ed25519.
    pub kty: String,
    /// Curve: `Ed25519`.
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    /// The key id tokens name in their header.
    pub kid: String,
    /// The algorithm the key signs with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// What the key is for: `sig`.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
}

impl Jwk {
    /// The key this JWK publishes, if it is an Ed25519 one.
    pub fn public_key(&self) -> Result<PublicKey, KeyError> {
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err(KeyError::Unsupported {
                kid: self.kid.clone(),
                kty: self.kty.clone(),
                crv: self.crv.clone(),
            });
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(&self.x)
            .map_err(|_| KeyError::Invalid {
                kid: self.kid.clone(),
            })?;
        PublicKey::from_bytes(&self.kid, &bytes)
    }
}

/// The JWKS document: every key a token in circulation may be signed with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys, current first.
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// The document listing `keys`.
    pub fn of(keys: &[PublicKey]) -> Jwks {
        Jwks {
            keys: keys.iter().map(PublicKey::jwk).collect(),
        }
    }

    /// The Ed25519 keys of the document; keys of other kinds are skipped (a JWKS may list
    /// keys for other uses).
    pub fn public_keys(&self) -> Vec<PublicKey> {
        self.keys
            .iter()
            .filter_map(|jwk| jwk.public_key().ok())
            .collect()
    }
}

/// Who a token is about, before it becomes [`Claims`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// A stable id (`sub`).
    pub id: String,
    /// A display name.
    pub name: String,
    /// An e-mail address, when known.
    pub email: Option<String>,
    /// Roles, as the issuer names them.
    pub roles: Vec<String>,
}

/// The claims of an identity token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer: the URL of who signed it.
    pub iss: String,
    /// The subject's id.
    pub sub: String,
    /// The audience: the URL of the one server the token is for.
    pub aud: String,
    /// The subject's display name.
    pub name: String,
    /// The subject's e-mail address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The subject's roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Issued at, in seconds since the Unix epoch.
    pub iat: u64,
    /// Not valid before, in seconds since the Unix epoch.
    pub nbf: u64,
    /// Expires at, in seconds since the Unix epoch.
    pub exp: u64,
    /// A unique id of this token.
    pub jti: String,
}

impl Claims {
    /// Claims about `subject` for `audience`, issued by `issuer` at `now` (seconds since the
    /// Unix epoch) and valid for `lifetime`, with a fresh random `jti`.
    pub fn issue(
        issuer: &str,
        audience: &str,
        subject: Subject,
        now: u64,
        lifetime: Duration,
    ) -> Claims {
        let mut jti = [0u8; 16];
        rand::rng().fill_bytes(&mut jti);
        Claims {
            iss: issuer.to_owned(),
            sub: subject.id,
            aud: audience.to_owned(),
            name: subject.name,
            email: subject.email,
            roles: subject.roles,
            iat: now,
            nbf: now,
            exp: now.saturating_add(lifetime.as_secs()),
            jti: URL_SAFE_NO_PAD.encode(jti),
        }
    }

    /// The claims as JSON; built as a value so that encoding cannot fail.
    fn to_json(&self) -> String {
        let mut claims = serde_json::json!({
            "iss": self.iss,
            "sub": self.sub,
            "aud": self.aud,
            "name": self.name,
            "roles": self.roles,
            "iat": self.iat,
            "nbf": self.nbf,
            "exp": self.exp,
            "jti": self.jti,
        });
        if let Some(email) = &self.email {
            claims["email"] = email.as_str().into();
        }
        claims.to_string()
    }
}

/// What a verifier requires of a token besides its signature.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The issuer (`iss`) it trusts.
    pub issuer: &'a str,
    /// Its own URL, which must be the token's audience (`aud`).
    pub audience: &'a str,
}

/// Why a token does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a compact JWS with a JSON header and claims.
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    /// A token of another kind (its header's `typ`), e.g. an OAuth access token offered as an
    /// identity token.
    #[error("the token is of type {0}, not the expected one")]
    Type(String),
    /// Signed with another algorithm than EdDSA.
    #[error("the token is signed with {0}; only EdDSA tokens are accepted")]
    Algorithm(String),
    /// Its key is not among the published ones.
    #[error("the token's key {0} is not published; fetch the JWKS again")]
    UnknownKey(String),
    /// The signature does not match the header and claims.
    #[error("the token's signature does not match its contents")]
    Signature,
    /// Issued by someone else.
    #[error("the token was issued by {0}, not the expected issuer")]
    Issuer(String),
    /// Meant for another server.
    #[error("the token is for {0}, not this server")]
    Audience(String),
    /// Past its expiry.
    #[error("the token expired")]
    Expired,
    /// Not valid yet.
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// The claims of `token` if it is signed by one of `keys` and meets `expected` at `now`
/// (seconds since the Unix epoch, with [`LEEWAY`] either side).
pub fn verify(
    token: &str,
    keys: &[PublicKey],
    expected: &Expected<'_>,
    now: u64,
) -> Result<Claims, VerifyError> {
    let payload = verify_signature(token, keys, IDENTITY_TYPE)?;
    let claims: Claims = decode_json(payload, "the claims")?;
    if claims.iss != expected.issuer {
        return Err(VerifyError::Issuer(claims.iss));
    }
    if claims.aud != expected.audience {
        return Err(VerifyError::Audience(claims.aud));
    }
    let leeway = LEEWAY.as_secs();
    if now >= claims.exp.saturating_add(leeway) {
        return Err(VerifyError::Expired);
    }
    if now.saturating_add(leeway) < claims.nbf {
        return Err(VerifyError::NotYetValid);
    }
    Ok(claims)
}

/// The payload part (base64url, still encoded) of `token` if its header says `typ` and
/// `alg: EdDSA` and one of `keys` signed it; checking the claims is the caller's job. A header
/// without `typ` counts as `JWT`.
pub fn verify_signature<'t>(
    token: &'t str,
    keys: &[PublicKey],
    typ: &str,
) -> Result<&'t str, VerifyError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed(
            "it must have three dot-separated parts",
        ));
    };
    let header: Header = decode_json(header, "the header")?;
    if header.alg != ALGORITHM {
        return Err(VerifyError::Algorithm(header.alg));
    }
    let kind = header.typ.as_deref().unwrap_or(IDENTITY_TYPE);
    if !kind.eq_ignore_ascii_case(typ) {
        return Err(VerifyError::Type(kind.to_owned()));
    }
    let kid = header
        .kid
        .ok_or(VerifyError::Malformed("the header has no kid"))?;
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or(VerifyError::UnknownKey(kid))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|bytes| Signature::from_slice(&bytes).ok())
        .ok_or(VerifyError::Malformed(
            "the signature is not an Ed25519 one",
        ))?;
    let signed = &token[..header_and_payload_len(token)];
    key.key
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| VerifyError::Signature)?;
    Ok(payload)
}

/// `part` (base64url JSON) decoded; `what` names it in the error.
pub fn decode_part<T: serde::de::DeserializeOwned>(
    part: &str,
    what: &'static str,
) -> Result<T, VerifyError> {
    decode_json(part, what)
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    kid: Option<String>,
}

fn decode_json<T: serde::de::DeserializeOwned>(
    part: &str,
    what: &'static str,
) -> Result<T, VerifyError> {
    let malformed = || VerifyError::Malformed(what);
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| malformed())?;
    serde_json::from_slice(&bytes).map_err(|_| malformed())
}

/// The length of `header.payload`, the signed part; the caller checked there are two dots.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

#[cfg(test)]
mod tests;
