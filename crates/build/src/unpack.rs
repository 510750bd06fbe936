//! Unpacking an uploaded gzip tarball into an artifact's `src` folder, safely: the archive
//! comes from a user, so only regular files and folders are created, every path must stay
//! inside the destination, and counts and sizes are bounded. An artifact fetched from another
//! replica is unpacked the same way, keeping only links that stay inside it. Blocking I/O: run it on a
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
    unpack_entries(reader, dest, limits, Links::Skip)
}

/// Unpacks an artifact's tarball (made by Skyport from a finished artifact) into `dest`:
/// like [`unpack_from`], but it also restores the relative symbolic links the installers
/// made (npm's `.bin`, a virtual environment's `python3 -> python`) when they stay inside
/// `dest` (see [`inside_link`]), and a virtual environment's link to a Python this machine
/// has (see [`interpreter_link`]); they are created after every file, so nothing is written
/// through one. Any other link is skipped and reported.
pub(crate) fn unpack_artifact<R: Read>(
    reader: R,
    dest: &Path,
    limits: Limits,
) -> Result<Unpacked, UnpackError> {
    unpack_entries(reader, dest, limits, Links::Inside)
}

/// What to do with symbolic links.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Links {
    /// Skip every link (a user's source).
    Skip,
    /// Restore links that stay inside the destination (an artifact).
    Inside,
}

fn unpack_entries<R: Read>(
    reader: R,
    dest: &Path,
    limits: Limits,
    links: Links,
) -> Result<Unpacked, UnpackError> {
    fs::create_dir_all(dest).map_err(UnpackError::Write)?;
    let mut kept_links: Vec<(PathBuf, PathBuf)> = Vec::new();
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
        if kind == tar::EntryType::Symlink && links == Links::Inside {
            let target = entry.link_name().map_err(UnpackError::Corrupt)?;
            if let Some(target) = target {
                if inside_link(&relative, &target) || interpreter_link(&relative, &target) {
                    kept_links.push((relative, target.into_owned()));
                    continue;
                }
                if is_interpreter(&relative) && target.is_absolute() {
                    done.skipped.push(format!(
                        "skipped {shown}: the Python it links to ({}) is not on this machine",
                        target.display()
                    ));
                    continue;
                }
            }
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
    // A link under another link could lead anywhere once both exist.
    let nested = |path: &Path| {
        kept_links
            .iter()
            .any(|(other, _)| other != path && path.starts_with(other))
    };
    for (path, target) in &kept_links {
        if nested(path) {
            done.skipped.push(format!(
                "skipped {}: a link inside another link",
                path.display()
            ));
            continue;
        }
        let at = dest.join(path);
        if let Some(parent) = at.parent() {
            fs::create_dir_all(parent).map_err(UnpackError::Write)?;
        }
        symlink(target, &at).map_err(UnpackError::Write)?;
    }
    Ok(done)
}

/// Whether a link at `path` to `target` is a virtual environment's interpreter that this
/// machine has: `bin/python…` to an absolute path where there is a file. A venv links to the
/// Python it was made with, outside the artifact; replicas made from one image have it at
/// the same place, and an artifact is read-only, so nothing is written through the link.
fn interpreter_link(path: &Path, target: &Path) -> bool {
    is_interpreter(path) && target.is_absolute() && target.is_file()
}

/// Whether `path` names a venv's interpreter: `bin/python`, `bin/python3`, `bin/python3.12`.
fn is_interpreter(path: &Path) -> bool {
    let in_bin = path
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|dir| dir == "bin");
    let named = path
        .file_name()
        .and_then(|name| name.to_str())
        .and_then(|name| name.strip_prefix("python"))
        .is_some_and(|version| version.chars().all(|c| c.is_ascii_digit() || c == '.'));
    in_bin && named
}

/// Whether a link at `path` (relative to the destination) to `target` stays inside the
/// destination whatever else is there: `target` is relative, climbs (`..`) only before its
/// first name and never above the destination, so it resolves through real folders only
/// until it reaches names inside.
fn inside_link(path: &Path, target: &Path) -> bool {
    let mut depth = path.components().count().saturating_sub(1);
    let mut named = false;
    for component in target.components() {
        match component {
            Component::Normal(_) => named = true,
            Component::CurDir => {}
            Component::ParentDir if !named && depth > 0 => depth -= 1,
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    named
}

#[cfg(unix)]
fn symlink(target: &Path, at: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, at)
}

#[cfg(not(unix))]
fn symlink(_: &Path, _: &Path) -> io::Result<()> {
    Err(io::Error::other("links are restored on Unix only"))
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
