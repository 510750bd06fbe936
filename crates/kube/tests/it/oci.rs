//! The OCI image layout: its structure as the image-layout spec describes it, digests that
//! match the blobs, a layer that holds the roots at their absolute paths, and digests that
//! depend on content only.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use skyport_kube::{ImageConfig, ImageLayout, write_layout};

/// An environment and an artifact as a build leaves them: a symlinked interpreter, an
/// executable script, nested sources.
fn artifact(root: &Path) -> (PathBuf, PathBuf) {
    let env = root.join("envs").join("e1");
    fs::create_dir_all(env.join("bin")).expect("env");
    std::os::unix::fs::symlink("/usr/bin/python3", env.join("bin").join("python")).expect("link");
    fs::write(env.join("bin").join("tool"), "#!/bin/sh\n").expect("tool");
    fs::set_permissions(
        env.join("bin").join("tool"),
        fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let artifact = root.join("artifacts").join("a1");
    fs::create_dir_all(artifact.join("src").join("pkg")).expect("artifact");
    fs::write(artifact.join("launcher.py"), "print('launch')\n").expect("launcher");
    fs::write(artifact.join("src").join("server.py"), "mcp = None\n").expect("server");
    fs::write(artifact.join("src").join("pkg").join("__init__.py"), "").expect("pkg");
    (env, artifact)
}

fn image(env: &Path, artifact: &Path) -> ImageConfig {
    ImageConfig {
        roots: vec![env.to_owned(), artifact.to_owned()],
        entrypoint: vec![
            env.join("bin/python").display().to_string(),
            "serve".to_owned(),
        ],
        working_dir: artifact.join("src"),
        env: vec!["SKYPORT_PORT=8000".to_owned()],
        exposed_ports: vec![8000],
        labels: BTreeMap::from([("dev.skyport.server".to_owned(), "weather".to_owned())]),
        tag: "dep_01jf8z3k5q7m2n4p6r8t0v2w4y".to_owned(),
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).expect("read")).expect("json")
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let bytes = fs::read(layout.join("blobs/sha256").join(hex)).expect("blob exists");
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        hex,
        "blob named by its digest"
    );
    bytes
}

fn check_structure(layout: &ImageLayout, root: &Path) {
    let dir = &layout.dir;
    assert_eq!(
        read_json(&dir.join("oci-layout"))["imageLayoutVersion"],
        "1.0.0"
    );
    let index = read_json(&dir.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    let entry = &index["manifests"][0];
    assert_eq!(entry["digest"], layout.manifest_digest.as_str());
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "dep_01jf8z3k5q7m2n4p6r8t0v2w4y"
    );
    let manifest_bytes = blob(dir, &layout.manifest_digest);
    assert_eq!(entry["size"], manifest_bytes.len());
    let manifest: Value = serde_json::from_slice(&manifest_bytes).expect("manifest");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );

    let config_bytes = blob(
        dir,
        manifest["config"]["digest"]
            .as_str()
            .expect("config digest"),
    );
    assert_eq!(manifest["config"]["size"], config_bytes.len());
    let config: Value = serde_json::from_slice(&config_bytes).expect("config");
    assert_eq!(config["os"], "linux");
    assert_eq!(
        config["config"]["ExposedPorts"]["8000/tcp"],
        serde_json::json!({})
    );

    let layer = &manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let gzipped = blob(dir, layer["digest"].as_str().expect("layer digest"));
    assert_eq!(layer["size"], gzipped.len());
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(gzipped.as_slice())
        .read_to_end(&mut tar_bytes)
        .expect("gunzip");
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&tar_bytes)));
    assert_eq!(config["rootfs"]["diff_ids"][0], diff_id.as_str());
    assert_eq!(layout.layer_diff_id, diff_id);

    // The layer: every root at its absolute path, parents first, links kept, no timestamps.
    let mut archive = tar::Archive::new(tar_bytes.as_slice());
    let mut paths = Vec::new();
    for entry in archive.entries().expect("tar") {
        let entry = entry.expect("entry");
        let header = entry.header();
        assert_eq!(header.mtime().expect("mtime"), 0);
        assert_eq!(header.uid().expect("uid"), 0);
        let path = entry.path().expect("path").display().to_string();
        if path.ends_with("bin/python") {
            assert!(header.entry_type().is_symlink());
            assert_eq!(
                entry.link_name().expect("link").expect("target").to_str(),
                Some("/usr/bin/python3")
            );
        }
        if path.ends_with("bin/tool") {
            assert_eq!(header.mode().expect("mode") & 0o777, 0o755);
        }
        paths.push(path);
    }
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "entries in a stable order");
    let root = root.display().to_string();
    let root = root.trim_start_matches('/');
    for wanted in [
        "envs/e1/bin/python",
        "artifacts/a1/launcher.py",
        "artifacts/a1/src/pkg/__init__.py",
    ] {
        let wanted = format!("{root}/{wanted}");
        assert!(paths.contains(&wanted), "{wanted} missing from {paths:?}");
    }
}

#[test]
fn layout_has_the_spec_structure() {
    let tree = tempfile::tempdir().expect("tempdir");
    let (env, artifact) = artifact(tree.path());
    let out = tempfile::tempdir().expect("tempdir");
    let layout = write_layout(&out.path().join("image"), &image(&env, &artifact)).expect("layout");
    check_structure(&layout, tree.path());
}

#[test]
fn digests_depend_on_content_only() {
    let tree = tempfile::tempdir().expect("tempdir");
    let (env, artifact) = artifact(tree.path());
    let out = tempfile::tempdir().expect("tempdir");
    let first = write_layout(&out.path().join("one"), &image(&env, &artifact)).expect("layout");

    // Same content, newer modification times, another output directory: the same image.
    std::thread::sleep(Duration::from_millis(1100));
    fs::write(artifact.join("src").join("server.py"), "mcp = None\n").expect("rewrite");
    let second = write_layout(&out.path().join("two"), &image(&env, &artifact)).expect("layout");
    assert_eq!(first.manifest_digest, second.manifest_digest);
    assert_eq!(first.layer_diff_id, second.layer_diff_id);

    // One byte of source changed: another layer, another image.
    fs::write(artifact.join("src").join("server.py"), "mcp = 1\n").expect("change");
    let third = write_layout(&out.path().join("three"), &image(&env, &artifact)).expect("layout");
    assert_ne!(first.layer_diff_id, third.layer_diff_id);
    assert_ne!(first.manifest_digest, third.manifest_digest);
}

#[test]
fn a_relative_root_is_refused() {
    let out = tempfile::tempdir().expect("tempdir");
    let mut config = image(
        Path::new("/nonexistent/env"),
        Path::new("/nonexistent/artifact"),
    );
    config.roots = vec![PathBuf::from("relative/dir")];
    let error = write_layout(out.path(), &config).expect_err("relative root");
    assert!(error.to_string().contains("absolute path"), "{error}");
}
