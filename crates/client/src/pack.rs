//! Packing a source folder for upload: what `git` would commit, roughly. `.gitignore` rules
//! are honoured, and virtual environments, caches and VCS metadata are never sent (they are
//! large, machine-specific, and rebuilt by Skyport anyway).

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

/// Directories that never belong in an upload.
const SKIPPED_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".venv",
    "venv",
    "__pycache__",
    "node_modules",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".tox",
];

/// A packed folder.
#[derive(Debug)]
pub struct Packed {
    /// The gzip tarball.
    pub tarball: Vec<u8>,
    /// How many files it holds.
    pub files: usize,
}

/// Why a folder could not be packed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The path is not a directory.
    #[error("{0} is not a directory: deploy a folder that holds your server (e.g. main.py)")]
    NotADirectory(PathBuf),
    /// Reading the folder failed.
    #[error("cannot read {path}: {detail}")]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// What the system reported.
        detail: String,
    },
}

/// Packs `root` into a gzip tarball with paths relative to it.
pub fn pack(root: &Path) -> Result<Packed, PackError> {
    if !root.is_dir() {
        return Err(PackError::NotADirectory(root.to_path_buf()));
    }
    let read_error = |path: &Path, detail: String| PackError::Read {
        path: path.to_path_buf(),
        detail,
    };
    let mut archive = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    archive.follow_symlinks(false);
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .git_global(false)
        .require_git(false)
        .filter_entry(|entry| {
            !(entry.file_type().is_some_and(|t| t.is_dir())
                && SKIPPED_DIRS.contains(&entry.file_name().to_string_lossy().as_ref()))
        })
        .sort_by_file_name(std::cmp::Ord::cmp)
        .build();
    let mut files = 0;
    for entry in walker {
        let entry = entry.map_err(|e| read_error(root, e.to_string()))?;
        let path = entry.path();
        let Ok(relative) = path.strip_prefix(root) else {
            continue;
        };
        if relative.as_os_str().is_empty() || !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        archive
            .append_path_with_name(path, relative)
            .map_err(|e| read_error(path, e.to_string()))?;
        files += 1;
    }
    let encoder = archive
        .into_inner()
        .map_err(|e| read_error(root, e.to_string()))?;
    let mut tarball = encoder
        .finish()
        .map_err(|e| read_error(root, e.to_string()))?;
    tarball
        .flush()
        .map_err(|e| read_error(root, e.to_string()))?;
    Ok(Packed { tarball, files })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn names(tarball: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tarball));
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn packs_sources_and_leaves_out_environments_caches_and_ignored_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in [
            "main.py",
            "pkg/tool.py",
            ".venv/bin/python",
            "pkg/__pycache__/tool.pyc",
            ".git/HEAD",
            "secret.env",
            ".gitignore",
        ] {
            std::fs::create_dir_all(root.join(file).parent().unwrap()).unwrap();
            std::fs::write(root.join(file), file).unwrap();
        }
        std::fs::write(root.join(".gitignore"), "*.env\n").unwrap();
        let packed = pack(root).unwrap();
        assert_eq!(
            names(&packed.tarball),
            [".gitignore", "main.py", "pkg/tool.py"]
        );
        assert_eq!(packed.files, 3);
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&packed.tarball[..]));
        let mut main = String::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.path().unwrap().ends_with("main.py") {
                entry.read_to_string(&mut main).unwrap();
            }
        }
        assert_eq!(main, "main.py");
    }

    #[test]
    fn a_file_is_not_a_source_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("main.py");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(pack(&file), Err(PackError::NotADirectory(_))));
    }
}
