//! Where things are: the data directory, the CLI credential in it, and the client built from
//! them.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use skyport_client::Client;

use crate::cli::Connection;

/// The address the CLI talks to when nothing else says.
pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:8420";

/// The data directory: the flag or `SKYPORT_DATA_DIR`, else the user's data directory.
pub(crate) fn data_dir(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_path_buf());
    }
    dirs::data_dir().map(|d| d.join("skyport")).context(
        "cannot find a data directory for this user: pass --data-dir or set SKYPORT_DATA_DIR",
    )
}

/// Creates the data directory, readable by its owner only (it holds the API credential).
pub(crate) fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))
}

/// What `serve` writes to `DATA_DIR/credentials` for the CLI on the same machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Credentials {
    /// Where that Skyport listens.
    pub(crate) url: String,
    /// An admin API key.
    pub(crate) token: String,
}

fn credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join("credentials")
}

/// The credential file's contents, if there is a readable one.
pub(crate) fn read_credentials(data_dir: &Path) -> Option<Credentials> {
    let text = std::fs::read_to_string(credentials_path(data_dir)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the credential file with mode 0600, replacing it atomically.
pub(crate) fn write_credentials(data_dir: &Path, credentials: &Credentials) -> anyhow::Result<()> {
    let path = credentials_path(data_dir);
    let temporary = data_dir.join(".credentials.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    file.write_all(serde_json::to_string_pretty(credentials)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// A client for the Skyport the flags, the environment or the credential file point at.
pub(crate) fn client(connection: &Connection) -> Client {
    let stored = data_dir(connection.data_dir.as_deref())
        .ok()
        .and_then(|dir| read_credentials(&dir));
    let url = connection
        .url
        .clone()
        .or_else(|| stored.as_ref().map(|c| c.url.clone()))
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let token = connection.token.clone().or_else(|| stored.map(|c| c.token));
    Client::new(&url, token)
}
