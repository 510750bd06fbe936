//! Launch specs moved between data dirs, and packed artifacts unpacked back.

use std::path::{Path, PathBuf};

use skyport_store::{LaunchSpec, Transport};

use super::*;

fn spec(data: &str) -> LaunchSpec {
    LaunchSpec {
        program: PathBuf::from(format!("{data}/envs/0a1b/bin/python")),
        args: vec![
            format!("{data}/artifacts/ab12cd/launcher.py"),
            "serve".to_owned(),
            format!("{data}/artifacts/ab12cd/src/server.py"),
            "mcp".to_owned(),
        ],
        working_dir: PathBuf::from(format!("{data}/artifacts/ab12cd/src")),
        transport: Transport::Http,
    }
}

#[test]
fn a_spec_names_the_data_dir_and_artifact_it_was_built_in() {
    assert_eq!(
        artifact_home(Path::new("/srv/a/artifacts/ab12cd/src")),
        Some((PathBuf::from("/srv/a"), "ab12cd".to_owned()))
    );
    // A packaged server runs from the artifact folder itself.
    assert_eq!(
        artifact_home(Path::new("/srv/a/artifacts/ab12cd")),
        Some((PathBuf::from("/srv/a"), "ab12cd".to_owned()))
    );
    assert_eq!(artifact_home(Path::new("/srv/a/src")), None);
    assert_eq!(
        artifact_home(Path::new("/srv/a/artifacts/not-a-hash/src")),
        None
    );
}

#[test]
fn a_relocated_spec_points_into_the_other_data_dir_only() {
    let mut original = spec("/srv/a");
    original.args.push("/elsewhere/keep".to_owned());
    let moved = relocated(&original, Path::new("/srv/a"), Path::new("/data/b"));
    let mut expected = spec("/data/b");
    expected.args.push("/elsewhere/keep".to_owned());
    assert_eq!(moved, expected);
}

#[test]
fn a_packed_artifact_installs_read_only_under_its_hash() {
    let root = tempfile::tempdir().unwrap();
    let built = root.path().join("a/artifacts");
    let work = built.join("work");
    std::fs::create_dir_all(work.join("src/pkg")).unwrap();
    std::fs::write(work.join("src/pkg/mod.py"), "x = 1").unwrap();
    std::fs::write(work.join("launcher.py"), "#!/usr/bin/env python").unwrap();
    let manifest = Manifest {
        hash: "ab12cd".to_owned(),
        source: "upload".to_owned(),
        commit: None,
        entrypoint: "server.py:mcp".to_owned(),
        python: "3.11.7".to_owned(),
        environment: "e1".to_owned(),
        packages: vec!["fastmcp==4.1.2".to_owned()],
        metadata: None,
        package: None,
    };
    let inspection = serde_json::json!({"tools": []});
    artifact::finish(&work, &built.join("ab12cd"), &manifest, &inspection).unwrap();
    let bytes = pack(&built.join("ab12cd")).unwrap();

    let other = root.path().join("b/artifacts");
    std::fs::create_dir_all(&other).unwrap();
    install(&bytes, &other, "ab12cd").unwrap();
    let (loaded, read) = artifact::load(&other.join("ab12cd")).unwrap();
    assert_eq!((loaded, read), (manifest, inspection));
    assert_eq!(
        std::fs::read_to_string(other.join("ab12cd/src/pkg/mod.py")).unwrap(),
        "x = 1"
    );
    // A blob under another name than its manifest's is refused, and leaves nothing.
    assert!(install(&bytes, &other, "ffff").is_err());
    assert!(!other.join("ffff").exists());
    let left: Vec<_> = std::fs::read_dir(&other).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "{left:?}");
    artifact::remove(&built.join("ab12cd"));
    artifact::remove(&other.join("ab12cd"));
}

#[test]
fn frozen_projects_are_named_as_their_dist_info() {
    assert_eq!(project_of("My_Project==0.1.0"), "my-project");
    assert_eq!(project_of("pkg @ git+https://example.org/pkg"), "pkg");
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir(site.path().join("my_project-0.1.0.dist-info")).unwrap();
    std::fs::create_dir(site.path().join("my_project")).unwrap();
    assert_eq!(
        installed_projects(site.path()),
        vec!["my-project".to_owned()]
    );
}
