//! Artifacts: the immutable, content-addressed result of a build. A build assembles its artifact
//! in `DATA/artifacts/<deployment id>/` and, once inspected, renames it to
//! `DATA/artifacts/<hash>/`, where the hash covers everything that decides what runs (the
//! source tree, the environment's key, the entrypoint, the launcher). Two builds of the same
//! commit with the same dependencies therefore share one artifact, and the second one skips
//! installing and inspecting. Garbage collection removes artifacts (and environments) that no
//! retained deployment refers to.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use skyport_store::{Commit, FailureKind, Store};

use crate::job::Failure;

/// Changes when the layout of an artifact changes, so that old artifacts are not reused.
const LAYOUT: &str = "skyport-artifact-1";
/// The manifest inside an artifact.
pub(crate) const MANIFEST: &str = "manifest.json";
/// What inspection found, kept so that a reused artifact needs no second inspection.
pub(crate) const INSPECTION: &str = "inspection.json";
/// Environments younger than this are never collected: a build may be about to use one.
const ENV_GRACE: Duration = Duration::from_secs(15 * 60);

/// What an artifact holds, written into it as `manifest.json` and stored with the deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// The content hash that names the artifact.
    pub(crate) hash: String,
    /// Where the source came from (never with credentials).
    pub(crate) source: String,
    /// The git commit, for git sources.
    pub(crate) commit: Option<Commit>,
    /// `FILE.py:OBJECT` or `MODULE:OBJECT`.
    pub(crate) entrypoint: String,
    /// The Python version it runs on.
    pub(crate) python: String,
    /// The environment's cache key.
    pub(crate) environment: String,
    /// `name==version` of every package installed.
    pub(crate) packages: Vec<String>,
    /// What the source's own `server.json` says about the server, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) metadata: Option<crate::metadata::ServerMetadata>,
    /// The package, for an artifact of a packaged server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) package: Option<crate::package::PackageManifest>,
}

/// The inputs of an artifact's hash besides its source tree.
pub(crate) struct HashInputs<'a> {
    pub(crate) environment: &'a str,
    pub(crate) entrypoint: &'a str,
    pub(crate) launcher: &'a str,
    pub(crate) projects: &'a [String],
}

/// 24 hex digits of a SHA-256 over the source tree under `src` and `inputs`.
pub(crate) fn hash(src: &Path, inputs: &HashInputs<'_>) -> Result<String, Failure> {
    let mut files = Vec::new();
    collect(src, src, &mut files).map_err(|e| {
        Failure::new(
            FailureKind::Internal,
            format!("cannot read the source to hash it: {e}"),
        )
    })?;
    files.sort();
    let mut hash = Sha256::new();
    let mut field = |tag: &str, bytes: &[u8]| {
        hash.update(tag.as_bytes());
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    };
    field("layout", LAYOUT.as_bytes());
    field("environment", inputs.environment.as_bytes());
    field("entrypoint", inputs.entrypoint.as_bytes());
    field("launcher", inputs.launcher.as_bytes());
    for project in inputs.projects {
        field("project", project.as_bytes());
    }
    for relative in files {
        let path = src.join(&relative);
        let bytes = std::fs::read(&path).map_err(|e| {
            Failure::new(
                FailureKind::Internal,
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        field("path", relative.as_bytes());
        field("executable", &[u8::from(is_executable(&path))]);
        field("contents", &bytes);
    }
    Ok(hex::encode(&hash.finalize()[..12]))
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            if entry.file_name() != "__pycache__" {
                collect(root, &path, files)?;
            }
        } else if kind.is_file()
            && let Ok(relative) = path.strip_prefix(root)
        {
            files.push(relative.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(_: &Path) -> bool {
    false
}

/// A finished artifact's manifest and inspection, if `dir` holds one.
pub(crate) fn load(dir: &Path) -> Option<(Manifest, serde_json::Value)> {
    let manifest = read_manifest(dir)?;
    let inspection = serde_json::from_slice(&std::fs::read(dir.join(INSPECTION)).ok()?).ok()?;
    Some((manifest, inspection))
}

/// The manifest of the artifact in `dir`, if it has a readable one.
pub(crate) fn read_manifest(dir: &Path) -> Option<Manifest> {
    serde_json::from_slice(&std::fs::read(dir.join(MANIFEST)).ok()?).ok()
}

/// Writes the manifest and inspection into `work`, makes it read-only and moves it to
/// `dest`. When `dest` already exists (a concurrent build of the same content), `work` is
/// dropped and the existing artifact is used.
pub(crate) fn finish(
    work: &Path,
    dest: &Path,
    manifest: &Manifest,
    inspection: &serde_json::Value,
) -> Result<(), Failure> {
    let internal = |what: String| Failure::new(FailureKind::Internal, what);
    write_json(&work.join(INSPECTION), inspection)
        .map_err(|e| internal(format!("cannot write the inspection: {e}")))?;
    write_json(&work.join(MANIFEST), manifest)
        .map_err(|e| internal(format!("cannot write the manifest: {e}")))?;
    set_read_only(work, true);
    match std::fs::rename(work, dest) {
        Ok(()) => Ok(()),
        Err(_) if dest.join(MANIFEST).is_file() => {
            remove(work);
            Ok(())
        }
        Err(e) => Err(internal(format!(
            "cannot move the artifact into {}: {e}",
            dest.display()
        ))),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    std::fs::write(path, bytes)
}

/// The source folder of the finished artifact `hash`, if it is still there.
pub(crate) fn source_of(artifacts: &Path, hash: &str) -> Result<PathBuf, Failure> {
    let src = artifacts.join(hash).join("src");
    if is_hash(hash) && src.is_dir() {
        Ok(src)
    } else {
        Err(Failure::new(
            FailureKind::Source,
            format!(
                "artifact {hash} is gone (garbage collection removed it); deploy the source again with `skyport deploy`"
            ),
        ))
    }
}

/// Copies an artifact's (read-only) source folder to `to`, writable, leaving out bytecode
/// caches: a new build of the same files, as an upload would give it.
pub(crate) fn copy_source(from: &Path, to: &Path) -> Result<(), Failure> {
    copy_tree(from, to).map_err(|e| {
        Failure::new(
            FailureKind::Internal,
            format!("cannot copy the source from {}: {e}", from.display()),
        )
    })
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            if entry.file_name() != "__pycache__" {
                copy_tree(&entry.path(), &target)?;
            }
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
            // The copy keeps the read-only mode of the artifact's file; the build may write.
            set_read_only(&target, false);
        }
    }
    Ok(())
}

/// Removes an artifact (or a build's unfinished one), read-only or not.
pub(crate) fn remove(dir: &Path) {
    set_read_only(dir, false);
    if let Err(e) = std::fs::remove_dir_all(dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, path = %dir.display(), "cannot remove an artifact");
    }
}

/// Instances must not change what they run; the builder (and garbage collection) lifts it.
#[cfg(unix)]
fn set_read_only(path: &Path, read_only: bool) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_symlink() {
        return;
    }
    let mode = meta.permissions().mode();
    let mode = if read_only {
        mode & !0o222
    } else {
        mode | 0o200
    };
    let set = || {
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    };
    if !meta.is_dir() {
        set();
        return;
    }
    // A folder is made writable before and read-only after its children, so that it never
    // blocks changing them.
    if !read_only {
        set();
    }
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            set_read_only(&entry.path(), read_only);
        }
    }
    if read_only {
        set();
    }
}

#[cfg(not(unix))]
fn set_read_only(_: &Path, _: bool) {}

/// Removes the artifacts that none of each server's live and `keep` newest ready
/// deployments use, then environments no remaining artifact uses; returns the artifacts kept,
/// for the collection of stored ones. Failures are logged: collection is housekeeping and
/// never fails a build.
pub(crate) async fn collect_garbage(
    store: Store,
    artifacts: PathBuf,
    envs: PathBuf,
    keep: u32,
) -> Option<Vec<String>> {
    let deployments = store.deployments();
    let kept = match deployments.retained_artifacts(keep).await {
        Ok(kept) => kept,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the artifacts to keep");
            return None;
        }
    };
    let pruned = match deployments.prune_artifacts(&kept).await {
        Ok(pruned) => pruned,
        Err(e) => {
            tracing::warn!(error = %e, "cannot mark pruned deployments");
            return Some(kept);
        }
    };
    let retained = kept.clone();
    let work = tokio::task::spawn_blocking(move || {
        for hash in &pruned {
            if is_hash(hash) {
                remove(&artifacts.join(hash));
                tracing::info!(artifact = %hash, "removed an artifact no retained deployment uses");
            }
        }
        let used: Vec<String> = kept
            .iter()
            .filter_map(|hash| load(&artifacts.join(hash)))
            .map(|(manifest, _)| manifest.environment)
            .collect();
        let Ok(entries) = std::fs::read_dir(&envs) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > ENV_GRACE);
            let abandoned = name.starts_with(".tmp-");
            if old && (abandoned || (is_hash(&name) && !used.contains(&name))) {
                remove(&entry.path());
                tracing::info!(environment = %name, "removed an environment no artifact uses");
            }
        }
    });
    if let Err(e) = work.await {
        tracing::warn!(error = %e, "garbage collection crashed");
    }
    Some(retained)
}

pub(crate) fn is_hash(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> HashInputs<'static> {
        HashInputs {
            environment: "env1",
            entrypoint: "main.py:mcp",
            launcher: "launcher",
            projects: &[],
        }
    }

    #[test]
    fn the_hash_follows_content_not_location() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for dir in [a.path(), b.path()] {
            std::fs::create_dir_all(dir.join("pkg/__pycache__")).unwrap();
            std::fs::write(dir.join("main.py"), "print(1)").unwrap();
            std::fs::write(dir.join("pkg/x.py"), "x = 1").unwrap();
        }
        std::fs::write(b.path().join("pkg/__pycache__/x.pyc"), "bytecode").unwrap();
        let ha = hash(a.path(), &inputs()).unwrap();
        assert_eq!(ha, hash(b.path(), &inputs()).unwrap());
        std::fs::write(b.path().join("pkg/x.py"), "x = 2").unwrap();
        assert_ne!(ha, hash(b.path(), &inputs()).unwrap());
        let other_env = HashInputs {
            environment: "env2",
            ..inputs()
        };
        assert_ne!(ha, hash(a.path(), &other_env).unwrap());
    }

    #[test]
    fn finished_artifacts_are_read_only_and_removable() {
        let root = tempfile::tempdir().unwrap();
        let work = root.path().join("dep_x");
        std::fs::create_dir_all(work.join("src/pkg")).unwrap();
        std::fs::write(work.join("src/pkg/a.py"), "a = 1").unwrap();
        let manifest = Manifest {
            hash: "abc123".to_owned(),
            source: "upload".to_owned(),
            commit: None,
            entrypoint: "main.py:mcp".to_owned(),
            python: "3.11.7".to_owned(),
            environment: "e".to_owned(),
            packages: vec!["fastmcp==4.1.2".to_owned()],
            metadata: None,
            package: None,
        };
        let dest = root.path().join("abc123");
        finish(&work, &dest, &manifest, &serde_json::json!({"tools": []})).unwrap();
        let (loaded, inspection) = load(&dest).unwrap();
        assert_eq!(loaded, manifest);
        assert_eq!(inspection, serde_json::json!({"tools": []}));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dest.join("src/pkg/a.py"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o222, 0, "{mode:o}");
        }
        remove(&dest);
        assert!(!dest.exists());
    }
}
