//! Where things are: the data directory, the CLI credential in it, the credentials
//! `skyport login` saves in the user's config directory, and the client built from them.

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
    write_private(data_dir, credentials)
}

/// Writes `value` as `DIR/credentials` with mode 0600, replacing it atomically.
fn write_private(dir: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let path = credentials_path(dir);
    let temporary = dir.join(".credentials.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    file.write_all(serde_json::to_string_pretty(value)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, &path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// What `skyport login` saves: one key per Skyport URL, in
/// `$XDG_CONFIG_HOME/skyport/credentials` (else `~/.config/skyport/credentials`), mode 0600.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Logins {
    /// The saved logins, one per URL.
    pub(crate) logins: Vec<SavedLogin>,
}

/// One saved login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SavedLogin {
    /// The Skyport it is for.
    pub(crate) url: String,
    /// Who logged in.
    pub(crate) user: String,
    /// The API key the login answered.
    pub(crate) token: String,
}

fn logins_dir() -> anyhow::Result<PathBuf> {
    dirs::config_dir()
        .map(|d| d.join("skyport"))
        .context("cannot find a config directory for this user: set XDG_CONFIG_HOME or HOME")
}

/// The saved logins, if there is a readable file of them.
pub(crate) fn read_logins() -> Logins {
    logins_dir()
        .ok()
        .and_then(|dir| std::fs::read_to_string(credentials_path(&dir)).ok())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Saves `login`, replacing an earlier one for the same URL; returns the file written.
pub(crate) fn save_login(login: SavedLogin) -> anyhow::Result<PathBuf> {
    let dir = logins_dir()?;
    create_data_dir(&dir)?;
    let mut logins = read_logins();
    logins.logins.retain(|l| l.url != login.url);
    logins.logins.push(login);
    write_private(&dir, &logins)?;
    Ok(credentials_path(&dir))
}

/// The URL the CLI talks to: the flag or `SKYPORT_URL`, else the data dir credential's,
/// else the default.
pub(crate) fn url(connection: &Connection) -> String {
    connection
        .url
        .clone()
        .or_else(|| stored(connection).map(|c| c.url))
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
        .trim_end_matches('/')
        .to_owned()
}

fn stored(connection: &Connection) -> Option<Credentials> {
    data_dir(connection.data_dir.as_deref())
        .ok()
        .and_then(|dir| read_credentials(&dir))
}

/// A client for the Skyport the flags, the environment or the credential files point at. The
/// credential: `SKYPORT_TOKEN` (or `--token`), else the saved login for that URL, else the
/// data directory's.
pub(crate) fn client(connection: &Connection) -> Client {
    let url = url(connection);
    let token = token(connection, &url);
    Client::new(&url, token)
}

/// The credential for the Skyport at `url`, found as [`client`] says.
pub(crate) fn token(connection: &Connection, url: &str) -> Option<String> {
    connection
        .token
        .clone()
        .or_else(|| {
            read_logins()
                .logins
                .into_iter()
                .find(|l| l.url == url)
                .map(|l| l.token)
        })
        .or_else(|| stored(connection).map(|c| c.token))
}
