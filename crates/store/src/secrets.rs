//! Secret values at rest: each is sealed with XChaCha20-Poly1305 under the platform's master key,
//! with a random 24-byte nonce per value (large enough that random nonces never repeat in
//! practice) and the variable's name as associated data, so a sealed value copied under another
//! name does not open. The master key comes from `SKYPORT_MASTER_KEY` or `DATA_DIR/master.key`.
//!
//! This module must never log, format or return a plaintext except to the caller of [`open`].

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use rand::RngCore;

/// The key file's name inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// The key that seals secrets: 32 bytes, written as 64 hex digits (or base64 of 32 bytes).
#[derive(Clone)]
pub struct MasterKey([u8; KEY_LEN]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

/// Where the master key came from, for the startup message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The `SKYPORT_MASTER_KEY` variable.
    Variable,
    /// An existing key file.
    File(PathBuf),
    /// A key file created now, because there was none.
    Created(PathBuf),
}

/// Why the master key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// The text is not a key.
    #[error(
        "{origin} is not a master key: write 64 hex digits or the base64 of 32 bytes (e.g. the output of `openssl rand -hex 32`)"
    )]
    Malformed {
        /// The variable or file it came from.
        origin: String,
    },
    /// The key file may be read by others.
    #[error(
        "{} is readable by other users (mode {mode:o}); run `chmod 600 {}` and start again",
        .path.display(), .path.display()
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file could not be read or written.
    #[error("cannot use the master key file {}: {source}", .path.display())]
    Io {
        /// The key file.
        path: PathBuf,
        /// What the operating system reported.
        source: std::io::Error,
    },
}

impl MasterKey {
    /// A new random key.
    pub fn generate() -> MasterKey {
        let mut bytes = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut bytes);
        MasterKey(bytes)
    }

    /// Parses 64 hex digits or standard base64 of 32 bytes; `origin` names where it came from.
    pub fn parse(text: &str, origin: &str) -> Result<MasterKey, MasterKeyError> {
        let text = text.trim();
        let bytes = hex::decode(text)
            .ok()
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok());
        bytes
            .and_then(|b| <[u8; KEY_LEN]>::try_from(b.as_slice()).ok())
            .map(MasterKey)
            .ok_or_else(|| MasterKeyError::Malformed {
                origin: origin.to_owned(),
            })
    }

    /// The key in `variable` (the value of `SKYPORT_MASTER_KEY`) when set, else the one in
    /// `DATA_DIR/master.key`, created (mode 0600) when missing. A key file that others may
    /// read, or that does not hold a key, is refused.
    pub fn load_or_create(
        variable: Option<&str>,
        data_dir: &Path,
    ) -> Result<(MasterKey, KeySource), MasterKeyError> {
        if let Some(text) = variable {
            return Ok((
                MasterKey::parse(text, "SKYPORT_MASTER_KEY")?,
                KeySource::Variable,
            ));
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        let io = |source| MasterKeyError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::metadata(&path) {
            Ok(meta) => {
                use std::os::unix::fs::PermissionsExt;
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(MasterKeyError::Permissions { path, mode });
                }
                let text = std::fs::read_to_string(&path).map_err(io)?;
                let key = MasterKey::parse(&text, &path.display().to_string())?;
                Ok((key, KeySource::File(path)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use std::os::unix::fs::OpenOptionsExt;
                let key = MasterKey::generate();
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io)?;
                writeln!(file, "{}", hex::encode(key.0)).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok((key, KeySource::Created(path)))
            }
            Err(e) => Err(io(e)),
        }
    }
}

/// `plaintext` sealed under `key` for the variable `name`: the nonce, then the ciphertext.
/// `None` only for values far larger than any variable (gigabytes).
pub(crate) fn seal(key: &MasterKey, name: &str, plaintext: &str) -> Option<Vec<u8>> {
    seal_with(&key.0, name, plaintext)
}

/// Like [`seal`], under any 32-byte key (one derived from something only its owner holds).
pub(crate) fn seal_with(key: &[u8; KEY_LEN], name: &str, plaintext: &str) -> Option<Vec<u8>> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let payload = Payload {
        msg: plaintext.as_bytes(),
        aad: name.as_bytes(),
    };
    let sealed = cipher.encrypt(&XNonce::from(nonce), payload).ok()?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Some(out)
}

/// The plaintext of a value [`seal`]ed for `name`, or `None` when `key` is not the key it was
/// sealed with (or the bytes were altered).
pub(crate) fn open(key: &MasterKey, name: &str, sealed: &[u8]) -> Option<String> {
    open_with(&key.0, name, sealed)
}

/// Like [`open`], for a value [`seal_with`]ed under `key`.
pub(crate) fn open_with(key: &[u8; KEY_LEN], name: &str, sealed: &[u8]) -> Option<String> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce).ok()?;
    let cipher = XChaCha20Poly1305::new(key.into());
    let payload = Payload {
        msg: ciphertext,
        aad: name.as_bytes(),
    };
    let plain = cipher.decrypt(&nonce, payload).ok()?;
    String::from_utf8(plain).ok()
}
