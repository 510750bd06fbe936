//! Unpacking an uploaded gzip tarball into an artifact's `src` folder, safely: the archive
//! comes from a user, so only regular files and folders are created, every path must stay
//! inside the destination, and counts and sizes are bounded. Blocking I/O: run it on a
//! blocking thread.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

/// Bounds on what one source may unpack to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Files and folders together.
    pub(crate) entries: u64,
    /// Total bytes of file contents.
    pub(crate) bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            entries: 20_000,
            bytes: 500 * 1024 * 1024,
        }
    }
}

/// What was unpacked.
#[derive(Debug, Default)]
pub(crate) struct Unpacked {
    pub(crate) files: u64,
    pub(crate) bytes: u64,
    /// One note per entry that was not unpacked (links, devices), for the build log.
    pub(crate) skipped: Vec<String>,
}

/// Why a source could not be unpacked; messages are for the user.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UnpackError {
    #[error(
        "the source archive contains the path '{0}', which leaves the source folder; pack the folder with relative paths only"
    )]
    UnsafePath(String),
    #[error(
        "the source has more than {0} files and folders; leave out virtual environments, node_modules and data"
    )]
    TooManyEntries(u64),
    #[error(
        "the source unpacks to more than {} MiB; leave out virtual environments, build outputs and data files",
        .0 / (1024 * 1024)
    )]
    TooLarge(u64),
    #[error("the source archive is not a readable gzip tarball ({0}); upload it again")]
    Corrupt(io::Error),
    #[error("cannot write the unpacked source: {0}")]
    Write(io::Error),
}

/// Unpacks the gzip tarball at `archive` into `dest` (created if missing).
pub(crate) fn unpack(archive: &Path, dest: &Path, limits: Limits) -> Result<Unpacked, UnpackError> {
    let file = fs::File::open(archive).map_err(UnpackError::Corrupt)?;
    unpack_from(file, dest, limits)
}

/// Unpacks a gzip tarball read from `reader` into `dest`.
pub(crate) fn unpack_from<R: Read>(
    reader: R,
    dest: &Path,
    limits: Limits,
) -> Result<Unpacked, UnpackError> {
    fs::create_dir_all(dest).map_err(UnpackError::Write)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    let mut done = Unpacked::default();
    let mut entries_seen: u64 = 0;
    for entry in archive.entries().map_err(UnpackError::Corrupt)? {
        let mut entry = entry.map_err(UnpackError::Corrupt)?;
        entries_seen += 1;
        if entries_seen > limits.entries {
            return Err(UnpackError::TooManyEntries(limits.entries));
        }
        let raw = entry.path().map_err(UnpackError::Corrupt)?.into_owned();
        let shown = raw.display().to_string();
        let Some(relative) = contained(&raw) else {
            return Err(UnpackError::UnsafePath(shown));
        };
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            // Metadata records (`git archive` writes a global one); not part of the tree.
            continue;
        }
        if kind.is_dir() {
            if !relative.as_os_str().is_empty() {
                fs::create_dir_all(dest.join(&relative)).map_err(UnpackError::Write)?;
            }
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            // Links could point anywhere (or make later entries write through them), and
            // devices and FIFOs have no place in a server's source.
            done.skipped.push(format!(
                "skipped {shown}: {} entries are not unpacked, only files and folders",
                kind_name(kind)
            ));
            continue;
        }
        if relative.as_os_str().is_empty() {
            return Err(UnpackError::UnsafePath(shown));
        }
        let target = dest.join(&relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(UnpackError::Write)?;
        }
        let remaining = limits.bytes - done.bytes;
        let mut out = fs::File::create(&target).map_err(UnpackError::Write)?;
        // Count what is actually read, not the header's claim, and read one byte past the
        // allowance to tell "exactly at the limit" from "over it".
        let copied = io::copy(&mut (&mut entry).take(remaining + 1), &mut out).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData || e.kind() == io::ErrorKind::UnexpectedEof {
                UnpackError::Corrupt(e)
            } else {
                UnpackError::Write(e)
            }
        })?;
        if copied > remaining {
            return Err(UnpackError::TooLarge(limits.bytes));
        }
        done.bytes += copied;
        done.files += 1;
        if let Ok(mode) = entry.header().mode() {
            set_executable(&target, mode);
        }
    }
    Ok(done)
}

/// The entry's path made relative to the destination, or `None` if it is absolute or climbs
/// out with `..`. `.` components are dropped.
pub(crate) fn contained(path: &Path) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(relative)
}

fn kind_name(kind: tar::EntryType) -> &'static str {
    match kind {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "FIFO",
        _ => "special",
    }
}

/// Keeps a file's executable bit (scripts in the source may rely on it); nothing else of the
/// archive's mode is trusted.
fn set_executable(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if mode & 0o111 != 0 {
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o755));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}
