//! Uploaded sources: the `UploadId` newtype and streaming an upload body to disk with a size
//! limit. An upload is a gzip tarball waiting to be used by one build; it is not inspected here
//! (unpacking, with its safety rules, happens in the build job).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::BuildError;

/// Largest accepted upload (compressed).
pub const MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;

const PREFIX: &str = "upl_";

/// Identifies an uploaded source tarball: `upl_` followed by a lowercase ULID.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UploadId(String);

impl UploadId {
    /// A new, unique id.
    pub fn generate() -> Self {
        UploadId(format!(
            "{PREFIX}{}",
            ulid::Ulid::new().to_string().to_ascii_lowercase()
        ))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where the upload is kept until a build uses it. The id's syntax is validated on
    /// parsing, so it cannot name a file outside `uploads`.
    pub(crate) fn path(&self, uploads: &Path) -> PathBuf {
        uploads.join(format!("{}.tar.gz", self.0))
    }
}

impl FromStr for UploadId {
    type Err = BuildError;

    fn from_str(s: &str) -> Result<Self, BuildError> {
        let valid = s.strip_prefix(PREFIX).is_some_and(|rest| {
            rest.len() == 26
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        });
        if valid {
            Ok(UploadId(s.to_owned()))
        } else {
            Err(BuildError::InvalidUploadId(s.chars().take(80).collect()))
        }
    }
}

impl TryFrom<String> for UploadId {
    type Error = BuildError;

    fn try_from(s: String) -> Result<Self, BuildError> {
        s.parse()
    }
}

impl From<UploadId> for String {
    fn from(id: UploadId) -> String {
        id.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Streams `body` into a new upload file in `uploads`, refusing more than `limit` bytes.
pub(crate) async fn save<S, E>(
    uploads: &Path,
    mut body: S,
    limit: u64,
) -> Result<UploadId, BuildError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: fmt::Display,
{
    let io = |context: &str| {
        let context = context.to_owned();
        move |source| BuildError::Io { context, source }
    };
    tokio::fs::create_dir_all(uploads)
        .await
        .map_err(io("cannot create the uploads directory"))?;
    let id = UploadId::generate();
    let target = id.path(uploads);
    // Written under a temporary name and renamed once complete, so a build never sees half an
    // upload and an abandoned one is recognisable.
    let partial = uploads.join(format!("{id}.part"));
    let result = async {
        let mut file = tokio::fs::File::create(&partial)
            .await
            .map_err(io("cannot create the upload file"))?;
        let mut written: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| BuildError::UploadBody(e.to_string()))?;
            written += chunk.len() as u64;
            if written > limit {
                return Err(BuildError::UploadTooLarge { limit });
            }
            file.write_all(&chunk)
                .await
                .map_err(io("cannot write the upload file"))?;
        }
        if written == 0 {
            return Err(BuildError::UploadBody("the upload is empty".to_owned()));
        }
        file.flush()
            .await
            .map_err(io("cannot write the upload file"))?;
        tokio::fs::rename(&partial, &target)
            .await
            .map_err(io("cannot store the upload"))
    }
    .await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e);
    }
    Ok(id)
}
