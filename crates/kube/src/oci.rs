//! An artifact as an OCI image layout (image-spec v1.1 `image-layout.md`): a directory with
//! `oci-layout`, `index.json` and `blobs/sha256/…` holding one gzip layer, the image config and
//! the manifest. Tools push it as it is (`skopeo copy oci:DIR:TAG docker://…`,
//! `crane push DIR …`); see `docs/kubernetes.md`.
//!
//! The layer holds the given directories at their absolute paths, so the deployment's
//! `LaunchSpec` runs unchanged in the container. The bytes depend on the files' contents, modes
//! and paths only (sorted entries, zero timestamps and owners, no creation date in the config),
//! so packaging the same artifact twice gives the same digests and a registry stores it once.
//! This module writes files and nothing else: it never talks to a registry.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest, Sha256};

/// What the image runs and how it describes itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageConfig {
    /// Directories copied into the layer at their absolute paths (the artifact, its
    /// environment).
    pub roots: Vec<PathBuf>,
    /// The command (`Entrypoint` of the image config).
    pub entrypoint: Vec<String>,
    /// The working directory.
    pub working_dir: PathBuf,
    /// `NAME=VALUE` variables of the image.
    pub env: Vec<String>,
    /// The ports it listens on.
    pub exposed_ports: Vec<u16>,
    /// Image labels (`org.opencontainers.image.*` and Skyport's own).
    pub labels: BTreeMap<String, String>,
    /// The tag recorded in `index.json` (`org.opencontainers.image.ref.name`).
    pub tag: String,
}

/// What [`write_layout`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageLayout {
    /// The layout's directory.
    pub dir: PathBuf,
    /// `sha256:…` of the manifest: the image's digest once pushed.
    pub manifest_digest: String,
    /// `sha256:…` of the uncompressed layer (the config's `diff_id`).
    pub layer_diff_id: String,
    /// Size of the compressed layer in bytes.
    pub layer_size: u64,
}

/// Why a layout could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// A file could not be read or written.
    #[error(
        "cannot write the image layout at {path}: {source}; check that the directory is writable and the artifact still exists"
    )]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A root is not an absolute directory.
    #[error(
        "{0} is not an absolute path of a directory; an image layer holds its roots at their absolute paths"
    )]
    Root(PathBuf),
}

const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// Writes the image layout of `image` into `dir` (created if needed; blobs already there are
/// kept, since their names are their digests).
pub fn write_layout(dir: &Path, image: &ImageConfig) -> Result<ImageLayout, OciError> {
    for root in &image.roots {
        if !root.is_absolute() || !root.is_dir() {
            return Err(OciError::Root(root.clone()));
        }
    }
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(io_at(&blobs))?;

    let layer = layer(&image.roots)?;
    let layer_digest = write_blob(&blobs, &layer.gzipped)?;
    let layer_diff_id = format!("sha256:{}", hex::encode(layer.diff_id));

    let config = json!({
        "architecture": architecture(),
        "os": "linux",
        "config": {
            "Entrypoint": image.entrypoint,
            "WorkingDir": image.working_dir,
            "Env": image.env,
            "ExposedPorts": image.exposed_ports.iter()
                .map(|port| (format!("{port}/tcp"), json!({})))
                .collect::<BTreeMap<_, _>>(),
            "Labels": image.labels,
        },
        "rootfs": { "type": "layers", "diff_ids": [layer_diff_id] },
    });
    let config = to_bytes(&config);
    let config_digest = write_blob(&blobs, &config)?;

    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": descriptor(CONFIG_MEDIA_TYPE, &config_digest, config.len()),
        "layers": [descriptor(LAYER_MEDIA_TYPE, &layer_digest, layer.gzipped.len())],
        "annotations": image.labels,
    });
    let manifest = to_bytes(&manifest);
    let manifest_digest = write_blob(&blobs, &manifest)?;

    let mut entry = descriptor(MANIFEST_MEDIA_TYPE, &manifest_digest, manifest.len());
    entry["annotations"] = json!({ "org.opencontainers.image.ref.name": image.tag });
    let index = json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [entry],
    });
    write_file(&dir.join("index.json"), &to_bytes(&index))?;
    write_file(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    Ok(ImageLayout {
        dir: dir.to_owned(),
        manifest_digest,
        layer_diff_id,
        layer_size: layer.gzipped.len() as u64,
    })
}

struct Layer {
    gzipped: Vec<u8>,
    diff_id: [u8; 32],
}

/// A writer that hashes what goes through it: the tar stream's digest is the `diff_id`.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hash.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn layer(roots: &[PathBuf]) -> Result<Layer, OciError> {
    let mut entries = BTreeMap::new();
    for root in roots {
        // The parents of a root come first so that extraction creates them with known modes.
        let mut parent = root.parent();
        while let Some(dir) = parent {
            if dir.parent().is_some() {
                entries.insert(relative(dir), Entry::Dir(0o755));
            }
            parent = dir.parent();
        }
        collect(root, &mut entries)?;
    }
    // A gzip header carries a modification time; flate2 writes zero unless told otherwise.
    let gzip = GzEncoder::new(Vec::new(), Compression::default());
    let mut builder = tar::Builder::new(Hashing {
        inner: gzip,
        hash: Sha256::new(),
    });
    for (path, entry) in &entries {
        append(&mut builder, path, entry)?;
    }
    let hashing = builder
        .into_inner()
        .map_err(io_at(Path::new("layer.tar")))?;
    let gzipped = hashing
        .inner
        .finish()
        .map_err(io_at(Path::new("layer.tar.gz")))?;
    Ok(Layer {
        gzipped,
        diff_id: hashing.hash.finalize().into(),
    })
}

/// One entry of the layer, keyed by its path without the leading `/`.
enum Entry {
    Dir(u32),
    File { source: PathBuf, mode: u32 },
    Symlink(PathBuf),
}

fn collect(dir: &Path, entries: &mut BTreeMap<String, Entry>) -> Result<(), OciError> {
    let meta = fs::symlink_metadata(dir).map_err(io_at(dir))?;
    entries.insert(relative(dir), Entry::Dir(mode(&meta)));
    for item in fs::read_dir(dir).map_err(io_at(dir))? {
        let item = item.map_err(io_at(dir))?;
        let path = item.path();
        let meta = fs::symlink_metadata(&path).map_err(io_at(&path))?;
        if meta.is_dir() {
            collect(&path, entries)?;
        } else if meta.file_type().is_symlink() {
            // Kept as links: a virtual environment's `python` points at the base interpreter,
            // which the base image provides at the same path.
            let target = fs::read_link(&path).map_err(io_at(&path))?;
            entries.insert(relative(&path), Entry::Symlink(target));
        } else if meta.is_file() {
            entries.insert(
                relative(&path),
                Entry::File {
                    source: path.clone(),
                    mode: mode(&meta),
                },
            );
        }
    }
    Ok(())
}

fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    entry: &Entry,
) -> Result<(), OciError> {
    let mut header = tar::Header::new_gnu();
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    let at = Path::new(path);
    let result = match entry {
        Entry::Dir(mode) => {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(*mode);
            header.set_size(0);
            builder.append_data(&mut header, at, io::empty())
        }
        Entry::Symlink(target) => {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            builder.append_link(&mut header, at, target)
        }
        Entry::File { source, mode } => {
            let bytes = fs::read(source).map_err(io_at(source))?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(*mode);
            header.set_size(bytes.len() as u64);
            builder.append_data(&mut header, at, bytes.as_slice())
        }
    };
    result.map_err(io_at(at))
}

fn relative(path: &Path) -> String {
    path.to_string_lossy().trim_start_matches('/').to_owned()
}

/// Permission bits only; what the image runs as decides ownership.
fn mode(meta: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

fn descriptor(media_type: &str, digest: &str, size: usize) -> serde_json::Value {
    json!({ "mediaType": media_type, "digest": digest, "size": size })
}

fn to_bytes(value: &serde_json::Value) -> Vec<u8> {
    // Maps are sorted (or, with `preserve_order`, in the fixed order built here), so equal
    // images give equal bytes.
    value.to_string().into_bytes()
}

fn write_blob(blobs: &Path, bytes: &[u8]) -> Result<String, OciError> {
    let hex = hex::encode(Sha256::digest(bytes));
    let path = blobs.join(&hex);
    if !path.exists() {
        write_file(&path, bytes)?;
    }
    Ok(format!("sha256:{hex}"))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), OciError> {
    // Written beside and renamed, so a crash never leaves a blob whose name lies.
    let partial = path.with_extension("partial");
    fs::write(&partial, bytes).map_err(io_at(&partial))?;
    fs::rename(&partial, path).map_err(io_at(path))
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> OciError + '_ {
    move |source| OciError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The OCI name of this machine's architecture: the environment holds native wheels built
/// for it.
fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
