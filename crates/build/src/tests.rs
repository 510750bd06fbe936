//! Unit tests: parsing (entrypoints, upload ids), unpack safety, environment keys, uv settings,
//! locating entrypoints, interpreting the launcher's results, and saving uploads.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use skyport_store::FailureKind;

use crate::entrypoint::{Entrypoint, Target, locate};
use crate::environment::{Requirements, cache_key, uv_environment};
use crate::inspect::{interpret, summary};
use crate::toolchain::{Interpreter, Toolchain, VersionRequest};
use crate::unpack::{Limits, UnpackError, contained, unpack_from};
use crate::{BuildError, UploadId, upload};

// ---- entrypoints ----

#[test]
fn entrypoints_in_fastmcp_run_syntax_parse_and_round_trip() {
    let cases = [
        ("main.py", "main.py", None, "main.py"),
        ("main.py:mcp", "main.py", Some("mcp"), "main.py:mcp"),
        (
            "src/app/server.py:make_app",
            "src/app/server.py",
            Some("make_app"),
            "src/app/server.py:make_app",
        ),
        ("./main.py", "main.py", None, "main.py"),
        (
            " server.py:_private ",
            "server.py",
            Some("_private"),
            "server.py:_private",
        ),
        ("src//app.py", "src/app.py", None, "src/app.py"),
    ];
    for (text, file, object, shown) in cases {
        let parsed: Entrypoint = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(parsed.target(), &Target::File(file.to_owned()), "{text}");
        assert_eq!(parsed.object(), object, "{text}");
        assert_eq!(parsed.to_string(), shown, "{text}");
        let again: Entrypoint = parsed.to_string().parse().expect("display parses");
        assert_eq!(again, parsed, "{text}");
    }
}

#[test]
fn bad_entrypoints_are_rejected_with_what_to_do() {
    let cases = [
        "",
        "   ",
        "/srv/main.py",
        "../main.py",
        "src/../../main.py",
        "main-app",
        "pkg.mod:obj:x",
        "conf.json:mcp",
        "main.py:",
        "main.py:my-server",
        "main.py:a:b",
        "src\\main.py",
        ".py",
        "src/",
        "./ main.py",
        "./\u{a0}conf/fastmcp.json",
    ];
    let mut report = String::new();
    for text in cases {
        match text.parse::<Entrypoint>() {
            Ok(parsed) => panic!("{text:?} parsed as {parsed}"),
            Err(BuildError::InvalidEntrypoint(message)) => {
                report.push_str(&format!("{text:?} -> {message}\n"));
            }
            Err(other) => panic!("{text:?}: unexpected error {other:?}"),
        }
    }
    insta::assert_snapshot!(report);
}

// ---- upload ids ----

#[test]
fn upload_ids_parse_only_their_own_syntax() {
    let id = UploadId::generate();
    assert!(id.as_str().starts_with("upl_"));
    let parsed: UploadId = id.to_string().parse().expect("generated ids parse");
    assert_eq!(parsed, id);
    let rest = &id.as_str()[4..];
    let bad = [
        String::new(),
        "upl_".to_owned(),
        "upl_../../../../etc/passwd".to_owned(),
        format!("upl_{}", rest.to_ascii_uppercase()),
        format!("upl_{}", &rest[1..]),
        format!("upl_{rest}0"),
        format!("upl_{}/", &rest[1..]),
        format!("dep_{rest}"),
        format!("upl-{rest}"),
    ];
    for bad in bad {
        assert!(
            matches!(bad.parse::<UploadId>(), Err(BuildError::InvalidUploadId(_))),
            "{bad:?} was accepted"
        );
    }
}

#[test]
fn upload_ids_serialize_as_strings_and_validate_when_deserialized() {
    let id = UploadId::generate();
    let json = serde_json::to_string(&id).expect("serializes");
    assert_eq!(json, format!("\"{id}\""));
    let back: UploadId = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, id);
    assert!(serde_json::from_str::<UploadId>("\"upl_../x\"").is_err());
}

#[test]
fn sources_are_recorded_with_their_kind() {
    let id: UploadId = "upl_01j00000000000000000000000".parse().expect("valid id");
    assert_eq!(
        crate::Source::Upload(id).to_string(),
        "upload:upl_01j00000000000000000000000"
    );
}

// ---- uploads ----

fn body(
    chunks: Vec<Result<&'static [u8], &'static str>>,
) -> impl futures_util::Stream<Item = Result<Bytes, String>> + Unpin + Send {
    futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|chunk| chunk.map(Bytes::from_static).map_err(str::to_owned)),
    )
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn uploads_are_saved_whole_and_refused_past_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let uploads = dir.path().join("uploads");

    let id = upload::save(&uploads, body(vec![Ok(b"abc"), Ok(b"def")]), 6)
        .await
        .expect("within the limit");
    assert_eq!(std::fs::read(id.path(&uploads)).expect("saved"), b"abcdef");

    let too_large = upload::save(&uploads, body(vec![Ok(b"abcd"), Ok(b"efg")]), 6).await;
    assert!(matches!(
        too_large,
        Err(BuildError::UploadTooLarge { limit: 6 })
    ));

    let broken = upload::save(&uploads, body(vec![Ok(b"ab"), Err("connection reset")]), 6).await;
    match broken {
        Err(BuildError::UploadBody(message)) => assert!(message.contains("connection reset")),
        other => panic!("unexpected {other:?}"),
    }

    let empty = upload::save(&uploads, body(vec![]), 6).await;
    assert!(matches!(empty, Err(BuildError::UploadBody(_))));

    // Refused uploads leave nothing behind, not even their partial file.
    assert_eq!(files_in(&uploads), vec![format!("{id}.tar.gz")]);
}

#[test]
fn a_full_disk_is_told_apart_and_says_what_to_do() {
    // ENOSPC, as a write to a full filesystem reports it.
    let full = BuildError::Io {
        context: "cannot write the upload file".to_owned(),
        source: std::io::Error::from_raw_os_error(28),
    };
    assert!(full.is_disk_full());
    let message = full.to_string();
    assert!(
        message.starts_with("cannot write the upload file: No space left on device")
            && message.ends_with("is full: free space on it and try again"),
        "{message}"
    );
    let denied = BuildError::Io {
        context: "cannot write the upload file".to_owned(),
        source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    };
    assert!(!denied.is_disk_full());
    assert!(!denied.to_string().contains("free space"), "{denied}");
}

// ---- unpacking ----

/// A tarball entry: `(path, kind, contents)`; the path is written raw into the header, so
/// that archives a well-behaved packer would refuse to make can be tested.
struct Entry {
    path: &'static str,
    kind: tar::EntryType,
    data: &'static [u8],
    link: Option<&'static str>,
}

fn file(path: &'static str, data: &'static [u8]) -> Entry {
    Entry {
        path,
        kind: tar::EntryType::Regular,
        data,
        link: None,
    }
}

fn tarball(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let name = &mut header.as_old_mut().name;
        name[..entry.path.len()].copy_from_slice(entry.path.as_bytes());
        header.set_entry_type(entry.kind);
        header.set_size(entry.data.len() as u64);
        header.set_mode(0o644);
        if let Some(link) = entry.link {
            header.set_link_name(link).expect("link name");
        }
        header.set_cksum();
        builder.append(&header, entry.data).expect("append");
    }
    let encoder = builder.into_inner().expect("finish tar");
    let mut bytes = encoder.finish().expect("finish gzip");
    bytes.flush().expect("flush");
    bytes
}

fn unpack_bytes(
    bytes: &[u8],
    limits: Limits,
) -> (
    tempfile::TempDir,
    PathBuf,
    Result<crate::unpack::Unpacked, UnpackError>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("artifact").join("src");
    let result = unpack_from(bytes, &dest, limits);
    (dir, dest, result)
}

#[test]
fn unpacking_creates_files_and_folders() {
    let bytes = tarball(&[
        file("main.py", b"print('hi')\n"),
        Entry {
            path: "pkg/",
            kind: tar::EntryType::Directory,
            data: b"",
            link: None,
        },
        file("pkg/__init__.py", b""),
        file("./src/app/server.py", b"x = 1\n"),
    ]);
    let (_dir, dest, result) = unpack_bytes(&bytes, Limits::default());
    let unpacked = result.expect("unpacks");
    assert_eq!(unpacked.files, 3);
    assert_eq!(unpacked.bytes, 18);
    assert!(unpacked.skipped.is_empty());
    assert_eq!(
        std::fs::read(dest.join("main.py")).expect("main.py"),
        b"print('hi')\n"
    );
    assert!(dest.join("pkg/__init__.py").is_file());
    assert!(dest.join("src/app/server.py").is_file());
}

#[test]
fn entries_leaving_the_source_folder_are_rejected() {
    for path in ["../evil.py", "src/../../evil.py", "/etc/evil.py"] {
        let bytes = tarball(&[file("main.py", b""), file(path, b"evil")]);
        let (dir, _dest, result) = unpack_bytes(&bytes, Limits::default());
        match result {
            Err(e @ UnpackError::UnsafePath(_)) => {
                assert!(e.to_string().contains(path), "{e}");
            }
            other => panic!("{path}: unexpected {other:?}"),
        }
        assert!(!dir.path().join("artifact/evil.py").exists());
        assert!(!dir.path().join("evil.py").exists());
    }
}

#[test]
fn links_and_devices_are_skipped_with_a_note() {
    let bytes = tarball(&[
        Entry {
            path: "passwd",
            kind: tar::EntryType::Symlink,
            data: b"",
            link: Some("/etc/passwd"),
        },
        Entry {
            path: "hard",
            kind: tar::EntryType::Link,
            data: b"",
            link: Some("main.py"),
        },
        Entry {
            path: "fifo",
            kind: tar::EntryType::Fifo,
            data: b"",
            link: None,
        },
        file("main.py", b"ok"),
    ]);
    let (_dir, dest, result) = unpack_bytes(&bytes, Limits::default());
    let unpacked = result.expect("unpacks");
    assert_eq!(unpacked.files, 1);
    assert_eq!(files_in(&dest), vec!["main.py"]);
    insta::assert_snapshot!(unpacked.skipped.join("\n"), @r"
    skipped passwd: symbolic link entries are not unpacked, only files and folders
    skipped hard: hard link entries are not unpacked, only files and folders
    skipped fifo: FIFO entries are not unpacked, only files and folders
    ");
}

fn symlink(path: &'static str, link: &'static str) -> Entry {
    Entry {
        path,
        kind: tar::EntryType::Symlink,
        data: b"",
        link: Some(link),
    }
}

#[test]
fn an_artifact_keeps_only_links_that_stay_inside_it() {
    let bytes = tarball(&[
        // Made before what they point to, as a packer may order them.
        symlink("node/node_modules/.bin/cli", "../pkg/cli.js"),
        symlink("venv/bin/python3", "python"),
        // A venv's interpreter links out to a Python this machine has (any file will do).
        symlink("venv/bin/python", "/bin/sh"),
        symlink("venv/bin/python3.99", "/nonexistent/python3.99"),
        symlink("venv/bin/pip", "/bin/sh"),
        symlink("up", "../outside"),
        symlink("climb", "pkg/../../outside"),
        symlink("dir", "node"),
        symlink("dir/escape", "../.."),
        symlink("dir/inner", "x"),
        file("node/node_modules/pkg/cli.js", b"cli"),
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("artifact");
    let unpacked =
        crate::unpack::unpack_artifact(&bytes[..], &dest, Limits::default()).expect("unpacks");
    assert_eq!(
        std::fs::read(dest.join("node/node_modules/.bin/cli")).expect("the bin link"),
        b"cli"
    );
    assert_eq!(
        std::fs::read_link(dest.join("venv/bin/python3")).expect("python3"),
        Path::new("python")
    );
    assert_eq!(
        std::fs::read_link(dest.join("venv/bin/python")).expect("python"),
        Path::new("/bin/sh")
    );
    assert!(std::fs::read_link(dest.join("dir")).is_ok());
    let refused = [
        "venv/bin/python3.99",
        "venv/bin/pip",
        "up",
        "climb",
        "dir/escape",
        "node/inner",
    ];
    for refused in refused {
        assert!(
            std::fs::symlink_metadata(dest.join(refused)).is_err(),
            "{refused} was made"
        );
    }
    insta::assert_snapshot!(unpacked.skipped.join("\n"), @r"
    skipped venv/bin/python3.99: the Python it links to (/nonexistent/python3.99) is not on this machine
    skipped venv/bin/pip: symbolic link entries are not unpacked, only files and folders
    skipped up: symbolic link entries are not unpacked, only files and folders
    skipped climb: symbolic link entries are not unpacked, only files and folders
    skipped dir/escape: symbolic link entries are not unpacked, only files and folders
    skipped dir/inner: a link inside another link
    ");
}

#[test]
fn unpacking_is_bounded_in_entries_and_bytes() {
    let bytes = tarball(&[file("a.py", b"12345"), file("b.py", b"67890")]);
    let (_d, _dest, result) = unpack_bytes(
        &bytes,
        Limits {
            entries: 1,
            bytes: 1 << 20,
        },
    );
    assert!(matches!(result, Err(UnpackError::TooManyEntries(1))));

    let (_d, _dest, result) = unpack_bytes(
        &bytes,
        Limits {
            entries: 10,
            bytes: 9,
        },
    );
    assert!(matches!(result, Err(UnpackError::TooLarge(9))));

    // Exactly at the limit is allowed.
    let (_d, _dest, result) = unpack_bytes(
        &bytes,
        Limits {
            entries: 10,
            bytes: 10,
        },
    );
    assert_eq!(result.expect("at the limit").bytes, 10);
}

#[test]
fn garbage_is_not_a_tarball() {
    let (_d, _dest, result) = unpack_bytes(b"this is not gzip", Limits::default());
    let error = result.expect_err("refused");
    assert!(matches!(error, UnpackError::Corrupt(_)), "{error:?}");
    assert!(error.to_string().contains("upload it again"), "{error}");
}

#[test]
fn contained_paths_drop_dots_and_refuse_escapes() {
    assert_eq!(
        contained(Path::new("./a/./b.py")),
        Some(PathBuf::from("a/b.py"))
    );
    assert_eq!(contained(Path::new("a/../b.py")), None);
    assert_eq!(contained(Path::new("/a")), None);
}

// ---- locating the entrypoint ----

fn source(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, b"").expect("write");
    }
    dir
}

#[test]
fn the_default_entrypoint_is_the_first_of_main_server_app() {
    let src = source(&["app.py", "server.py", "README.md"]);
    let located = locate(src.path(), None).expect("found");
    assert_eq!(located.target, Target::File("server.py".to_owned()));
    assert_eq!(located.object, None);
    assert!(located.path.is_absolute());

    let src = source(&["main.py", "server.py"]);
    assert_eq!(
        locate(src.path(), None).expect("found").target,
        Target::File("main.py".to_owned())
    );
}

#[test]
fn requested_entrypoints_are_found_in_subfolders() {
    let src = source(&["src/app/server.py"]);
    let wanted: Entrypoint = "src/app/server.py:make_app".parse().expect("valid");
    let located = locate(src.path(), Some(&wanted)).expect("found");
    assert_eq!(located.target, Target::File("src/app/server.py".to_owned()));
    assert_eq!(located.object.as_deref(), Some("make_app"));
}

#[test]
fn missing_entrypoints_say_what_is_there_and_what_to_pass() {
    let src = source(&["a.py", "b.txt", "pkg/x.py"]);
    let defaulted = locate(src.path(), None).expect_err("no default file");
    let wanted: Entrypoint = "main.py:mcp".parse().expect("valid");
    let requested = locate(src.path(), Some(&wanted)).expect_err("not there");
    let folder: Entrypoint = "pkg.py".parse().expect("valid");
    std::fs::create_dir(src.path().join("pkg.py")).expect("mkdir");
    let not_a_file = locate(src.path(), Some(&folder)).expect_err("a folder");
    insta::assert_snapshot!(format!("{defaulted}\n{requested}\n{not_a_file}"), @r"
    no entrypoint given and no fastmcp.json, main.py, server.py or app.py in the source (files at the top level: a.py, b.txt, pkg/); pass --entrypoint FILE.py[:OBJECT] (or package.module:OBJECT, or fastmcp.json)
    entrypoint main.py not found in the source (files at the top level: a.py, b.txt, pkg/); pass --entrypoint FILE.py[:OBJECT] (or package.module:OBJECT, or fastmcp.json)
    entrypoint pkg.py is not a file; pass --entrypoint FILE.py[:OBJECT] (or package.module:OBJECT, or fastmcp.json)
    ");
}

#[cfg(unix)]
#[test]
fn entrypoints_resolving_outside_the_source_are_refused() {
    let outside = source(&["main.py"]);
    let src = source(&[]);
    std::os::unix::fs::symlink(outside.path().join("main.py"), src.path().join("main.py"))
        .expect("symlink");
    let message = locate(src.path(), None).expect_err("refused");
    assert!(
        message.message.contains("outside the source folder"),
        "{message}"
    );
}

// ---- environment keys and uv settings ----

fn toolchain() -> Toolchain {
    Toolchain {
        python: PathBuf::from("/usr/bin/python3.11"),
        python_version: "3.11.7".to_owned(),
        uv: PathBuf::from("uv"),
        uv_version: "uv 0.13.9".to_owned(),
        interpreters: vec![
            Interpreter {
                path: PathBuf::from("/usr/bin/python3.11"),
                version: "3.11.7".to_owned(),
            },
            Interpreter {
                path: PathBuf::from("/usr/bin/python3.10"),
                version: "3.10.14".to_owned(),
            },
        ],
    }
}

fn default_python(tc: &Toolchain) -> Interpreter {
    tc.select(None).expect("default")
}

#[test]
fn environment_keys_follow_the_requirements_and_nothing_else() {
    let tc = toolchain();
    let py = default_python(&tc);
    let none = Requirements::default();
    let reqs = |text: &str| Requirements {
        files: vec![("requirements.txt".to_owned(), text.as_bytes().to_vec())],
        ..Requirements::default()
    };
    let key = cache_key(&tc, &py, &reqs("httpx==0.28.1\n"), &[]);
    assert_eq!(key.len(), 16);
    assert!(key.bytes().all(|b| b.is_ascii_hexdigit()));
    // Stable for the same inputs...
    assert_eq!(key, cache_key(&tc, &py, &reqs("httpx==0.28.1\n"), &[]));
    // ...and different when the requirements change.
    assert_ne!(key, cache_key(&tc, &py, &reqs("httpx==0.28.0\n"), &[]));
    assert_ne!(key, cache_key(&tc, &py, &none, &[]));
    // The same bytes in another file are another environment.
    let as_pyproject = Requirements {
        files: vec![("pyproject.toml".to_owned(), b"httpx==0.28.1\n".to_vec())],
        ..Requirements::default()
    };
    assert_ne!(key, cache_key(&tc, &py, &as_pyproject, &[]));
    let with_package = Requirements {
        packages: vec!["httpx".to_owned()],
        ..reqs("httpx==0.28.1\n")
    };
    assert_ne!(key, cache_key(&tc, &py, &with_package, &[]));
    // A new interpreter or uv means a new environment.
    let other_python = tc.select(Some(("3.10", "test"))).expect("3.10");
    assert_ne!(
        key,
        cache_key(&tc, &other_python, &reqs("httpx==0.28.1\n"), &[])
    );
    let mut other = toolchain();
    other.uv_version = "uv 0.14.0".to_owned();
    assert_ne!(key, cache_key(&other, &py, &reqs("httpx==0.28.1\n"), &[]));
    // Variables uv reads (a private index) make another environment; others do not.
    let var = |name: &str, value: &str, secret: bool| skyport_store::EnvVar {
        name: name.to_owned(),
        value: value.to_owned(),
        secret,
    };
    let httpx = reqs("httpx==0.28.1\n");
    let index = cache_key(
        &tc,
        &py,
        &httpx,
        &[var("UV_INDEX_URL", "http://a/simple", true)],
    );
    assert_ne!(key, index);
    let other_index = [var("UV_INDEX_URL", "http://b/simple", true)];
    assert_ne!(index, cache_key(&tc, &py, &httpx, &other_index));
    let app_only = [var("API_KEY", "x", true), var("MODE", "fast", false)];
    assert_eq!(key, cache_key(&tc, &py, &httpx, &app_only));
}

#[test]
fn python_requests_pick_a_matching_interpreter_or_name_what_there_is() {
    let tc = toolchain();
    for (request, version) in [
        ("3.11", "3.11.7"),
        ("3.10", "3.10.14"),
        (">=3.10,<3.11", "3.10.14"),
        ("~=3.10.1", "3.10.14"),
        ("==3.10.*", "3.10.14"),
        ("cpython@3.10", "3.10.14"),
        (">=3.9", "3.11.7"),
        ("!=3.11.*", "3.10.14"),
    ] {
        let chosen = tc.select(Some((request, "test"))).expect(request);
        assert_eq!(chosen.version, version, "{request}");
    }
    let failure = tc
        .select(Some(("3.12", "fastmcp.json")))
        .expect_err("no 3.12");
    assert_eq!(failure.kind, FailureKind::Toolchain);
    assert!(
        failure
            .message
            .contains("fastmcp.json asks for Python 3.12")
            && failure.message.contains("3.11.7")
            && failure.message.contains("3.10.14")
            && failure.message.contains("python3.12"),
        "{failure}"
    );
    let bad = tc
        .select(Some(("latest", "test")))
        .expect_err("not a version");
    assert_eq!(bad.kind, FailureKind::Config);
    assert_eq!(
        VersionRequest::parse("3.12.1"),
        Some(VersionRequest::Prefix(vec![3, 12, 1]))
    );
}

#[test]
fn requirements_come_from_fastmcp_json_then_the_nearest_file() {
    let src = source(&["app/server.py", "app/requirements.txt", "requirements.txt"]);
    let wanted: Entrypoint = "app/server.py".parse().expect("valid");
    let located = locate(src.path(), Some(&wanted)).expect("located");
    let found = Requirements::resolve(src.path(), &located).expect("resolved");
    assert_eq!(found.files.len(), 1);
    assert_eq!(found.files[0].0, "app/requirements.txt");
    assert!(!found.has_fastmcp);

    let src = source(&["src/pkg/server.py", ".python-version"]);
    std::fs::write(src.path().join(".python-version"), "3.10\n").expect("write");
    std::fs::write(
        src.path().join("pyproject.toml"),
        "[project]\nname = 'pkg'\nrequires-python = '>=3.10'\ndependencies = ['fastmcp>=4', 'httpx']\n[build-system]\nrequires = ['hatchling']\nbuild-backend = 'hatchling.build'\n",
    )
    .expect("write");
    let wanted: Entrypoint = "src/pkg/server.py".parse().expect("valid");
    let located = locate(src.path(), Some(&wanted)).expect("located");
    let found = Requirements::resolve(src.path(), &located).expect("resolved");
    assert_eq!(found.files[0].0, "pyproject.toml");
    assert!(found.has_fastmcp);
    assert_eq!(found.projects.len(), 1);
    assert!(found.projects[0].buildable);
    assert_eq!(found.projects[0].import_root, "src");
    // requires-python is read with the project, before .python-version is looked at.
    assert_eq!(
        found.python,
        Some((
            ">=3.10".to_owned(),
            "pyproject.toml requires-python".to_owned()
        ))
    );

    let src = source(&["server.py", "requirements.txt"]);
    std::fs::write(
        src.path().join("fastmcp.json"),
        r#"{"source": {"path": "server.py", "entrypoint": "app"},
            "environment": {"python": "3.11", "dependencies": ["humanize"]}}"#,
    )
    .expect("write");
    let located = locate(src.path(), None).expect("located");
    assert_eq!(located.object.as_deref(), Some("app"));
    let found = Requirements::resolve(src.path(), &located).expect("resolved");
    assert!(found.files.is_empty(), "fastmcp.json's environment wins");
    assert_eq!(found.packages, ["humanize"]);
    assert_eq!(
        found.python,
        Some(("3.11".to_owned(), "fastmcp.json".to_owned()))
    );
}

#[test]
fn module_and_config_entrypoints_are_located() {
    let src = source(&["src/weather/server.py", "src/weather/__init__.py"]);
    let wanted: Entrypoint = "weather.server:mcp".parse().expect("valid");
    let located = locate(src.path(), Some(&wanted)).expect("found");
    assert_eq!(located.target, Target::Module("weather.server".to_owned()));
    assert_eq!(located.import_root.as_deref(), Some("src"));
    let missing: Entrypoint = "weather.client".parse().expect("valid");
    let failure = locate(src.path(), Some(&missing)).expect_err("missing");
    assert_eq!(failure.kind, FailureKind::Entrypoint);
    assert!(failure.message.contains("weather/client.py"), "{failure}");

    std::fs::create_dir_all(src.path().join("deploy")).expect("mkdir");
    std::fs::write(
        src.path().join("deploy/prod.fastmcp.json"),
        r#"{"source": {"path": "../src/weather/server.py", "entrypoint": "mcp"}}"#,
    )
    .expect("write");
    let wanted: Entrypoint = "deploy/prod.fastmcp.json".parse().expect("valid");
    let located = locate(src.path(), Some(&wanted)).expect("found");
    assert_eq!(
        located.target,
        Target::File("src/weather/server.py".to_owned())
    );
    assert_eq!(located.object.as_deref(), Some("mcp"));
    std::fs::write(src.path().join("fastmcp.json"), "{ not json").expect("write");
    let failure = locate(src.path(), None).expect_err("invalid");
    assert_eq!(failure.kind, FailureKind::Config);
}

#[test]
fn pip_settings_are_carried_over_to_uv_unless_uv_has_its_own() {
    let cache = Path::new("/data/cache/uv");
    let pip_only = |name: &str| match name {
        "PIP_INDEX_URL" => Some("https://mirror.example/simple".to_owned()),
        "PIP_EXTRA_INDEX_URL" => {
            Some("https://a.example/simple https://b.example/simple".to_owned())
        }
        "PIP_FIND_LINKS" => Some("/opt/wheels /srv/wheels".to_owned()),
        "PIP_CERT" => Some("/etc/ssl/ca.pem".to_owned()),
        _ => None,
    };
    let set = uv_environment(cache, pip_only);
    let text: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
    insta::assert_snapshot!(text.join("\n"), @r"
    UV_PYTHON_DOWNLOADS=never
    UV_NO_PROGRESS=1
    NO_COLOR=1
    UV_CACHE_DIR=/data/cache/uv
    UV_DEFAULT_INDEX=https://mirror.example/simple
    UV_INDEX=https://a.example/simple https://b.example/simple
    UV_FIND_LINKS=/opt/wheels,/srv/wheels
    SSL_CERT_FILE=/etc/ssl/ca.pem
    ");

    let uv_configured = |name: &str| match name {
        "UV_CACHE_DIR" | "UV_INDEX_URL" | "SSL_CERT_FILE" => Some("set".to_owned()),
        other => pip_only(other),
    };
    let names: Vec<String> = uv_environment(cache, uv_configured)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(!names.contains(&"UV_CACHE_DIR".to_owned()));
    assert!(!names.contains(&"UV_DEFAULT_INDEX".to_owned()));
    assert!(!names.contains(&"SSL_CERT_FILE".to_owned()));
}

// ---- inspection results ----

#[test]
fn launcher_results_map_to_failure_kinds() {
    let failure = |kind: &str| {
        interpret(serde_json::json!({"ok": false, "kind": kind, "message": "m"}))
            .expect_err("fails")
    };
    for kind in [
        "syntax",
        "import",
        "entrypoint",
        "not_a_server",
        "something new",
    ] {
        assert_eq!(failure(kind).kind, FailureKind::Entrypoint, "{kind}");
    }
    assert_eq!(failure("inspection").kind, FailureKind::Inspection);
    assert_eq!(failure("syntax").message, "m");
}

#[test]
fn a_successful_inspection_names_the_object_and_is_kept_without_ok() {
    let inspected = interpret(serde_json::json!({
        "ok": true,
        "object": "mcp",
        "server": {"name": "hello", "version": "1.0"},
        "tools": [{"name": "hello", "description": "Say hello."}],
        "resources": [],
        "resource_templates": [{"uri_template": "x://{id}", "name": "x"}],
        "prompts": [{"name": "a"}, {"name": "b"}],
    }))
    .expect("succeeds");
    assert_eq!(inspected.object, "mcp");
    assert!(inspected.inspection.get("ok").is_none());
    assert_eq!(
        summary(&inspected.inspection),
        "found server 'hello': 1 tool, 1 resource, 2 prompts"
    );
}

// ---- starting builds (no Python needed: these fail before the environment) ----

async fn builder_and_server() -> (
    tempfile::TempDir,
    skyport_store::Store,
    crate::Builder,
    skyport_store::Server,
) {
    let store = skyport_store::Store::open_in_memory().await.expect("store");
    let data = tempfile::tempdir().expect("data");
    let builder = crate::Builder::new(store.clone(), data.path().to_path_buf());
    let name: skyport_store::ServerName = "demo".parse().expect("name");
    let (server, _) = store.servers().ensure(&name, None).await.expect("server");
    (data, store, builder, server)
}

async fn build_tarball(
    builder: &crate::Builder,
    store: &skyport_store::Store,
    server: &skyport_store::Server,
    entries: &[Entry],
    entrypoint: Option<&str>,
) -> (skyport_store::Deployment, String) {
    let chunks = vec![Ok::<_, String>(Bytes::from(tarball(entries)))];
    let upload = builder
        .save_upload(futures_util::stream::iter(chunks))
        .await
        .expect("upload");
    let request = crate::BuildRequest {
        source: crate::Source::Upload(upload),
        entrypoint: entrypoint.map(|e| e.parse().expect("entrypoint")),
        preview: None,
    };
    let queued = builder.start(server, request).await.expect("start");
    builder.drain().await;
    let done = store
        .deployments()
        .get(&queued.id)
        .await
        .expect("get")
        .expect("exists");
    let query = skyport_store::LogQuery {
        deployment_id: Some(done.id.clone()),
        ..Default::default()
    };
    let log: Vec<String> = store
        .logs()
        .tail(&query, 100)
        .await
        .expect("log")
        .into_iter()
        .map(|l| l.line.line)
        .collect();
    (done, log.join("\n"))
}

#[tokio::test]
async fn starting_a_build_of_an_unknown_upload_creates_no_deployment() {
    let (_data, store, builder, server) = builder_and_server().await;
    let request = crate::BuildRequest {
        source: crate::Source::Upload(UploadId::generate()),
        entrypoint: None,
        preview: None,
    };
    let result = builder.start(&server, request).await;
    assert!(
        matches!(result, Err(BuildError::UnknownUpload(_))),
        "{result:?}"
    );
    assert!(
        store
            .deployments()
            .list(&server.id)
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn a_source_without_a_default_file_fails_in_the_entrypoint_phase() {
    let (data, store, builder, server) = builder_and_server().await;
    let (done, log) = build_tarball(
        &builder,
        &store,
        &server,
        &[file("helper.py", b"x = 1\n"), file("README.md", b"hi")],
        None,
    )
    .await;
    assert_eq!(done.status, skyport_store::DeploymentStatus::Failed);
    assert_eq!(done.phase, Some(skyport_store::BuildPhase::Resolve));
    let failure = done.failure.expect("failure");
    assert_eq!(failure.kind, FailureKind::Entrypoint);
    assert!(failure.message.contains("main.py") && failure.message.contains("entrypoint"));
    assert_eq!(done.source.split(':').next(), Some("upload"));
    assert!(log.contains("unpacked 2 files (1 KiB)"), "{log}");
    assert!(log.contains(&failure.message), "{log}");
    // The upload is used up and the failed artifact removed; the log stays.
    assert!(files_in(&data.path().join("uploads")).is_empty());
    assert!(files_in(&data.path().join("artifacts")).is_empty());
    let server = store
        .servers()
        .by_id(&server.id)
        .await
        .expect("get")
        .expect("server");
    assert_eq!(server.live_deployment, None);
}

#[tokio::test]
async fn a_requested_file_that_is_missing_fails_naming_it() {
    let (_data, store, builder, server) = builder_and_server().await;
    let (done, _log) = build_tarball(
        &builder,
        &store,
        &server,
        &[file("main.py", b"")],
        Some("src/server.py:mcp"),
    )
    .await;
    assert_eq!(
        done.requested_entrypoint.as_deref(),
        Some("src/server.py:mcp")
    );
    let failure = done.failure.expect("failure");
    assert_eq!(failure.kind, FailureKind::Entrypoint);
    assert!(
        failure
            .message
            .starts_with("entrypoint src/server.py not found"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn an_unsafe_archive_fails_in_the_source_phase() {
    let (data, store, builder, server) = builder_and_server().await;
    let (done, log) = build_tarball(
        &builder,
        &store,
        &server,
        &[file("main.py", b""), file("../escape.py", b"evil")],
        None,
    )
    .await;
    assert_eq!(done.phase, Some(skyport_store::BuildPhase::Source));
    let failure = done.failure.expect("failure");
    assert_eq!(failure.kind, FailureKind::Source);
    assert!(
        failure.message.contains("../escape.py"),
        "{}",
        failure.message
    );
    assert!(log.contains("leaves the source folder"), "{log}");
    assert!(!data.path().join("artifacts/escape.py").exists());
    assert!(files_in(&data.path().join("artifacts")).is_empty());
}

// ---- processes of builds that Skyport did not see end ----

/// `sh` leading its own group (as every build child does) with a `sleep` helper of its own.
fn sleeping_group() -> tokio::process::Child {
    let mut cmd = crate::process::command("sh");
    cmd.args(["-c", "sleep 600 & wait"]);
    cmd.spawn().expect("start sh")
}

fn recorded(data: &Path) -> Vec<String> {
    files_in(&data.join("build-processes"))
}

#[tokio::test]
async fn a_build_child_whose_guard_never_ran_and_its_work_folder_go_at_the_next_start() {
    let (data, _store, builder, _server) = builder_and_server().await;
    let groups = builder.inner.groups.clone();
    let leader = crate::process::recording(groups.clone(), async {
        let child = sleeping_group();
        let guard = crate::process::GroupGuard::new(&child);
        let leader = child.id().expect("pid");
        // What a `kill -9` of Skyport amounts to: neither the guard nor kill_on_drop runs.
        std::mem::forget(guard);
        std::mem::forget(child);
        leader
    })
    .await;
    assert_eq!(recorded(data.path()), [leader.to_string()]);
    let leader = skyport_leftovers::Stamp::of(leader).expect("the child runs");
    let artifacts = data.path().join("artifacts");
    let work = artifacts.join(skyport_store::DeploymentId::generate().as_str());
    std::fs::create_dir_all(work.join("src")).expect("a work folder");
    std::fs::create_dir_all(artifacts.join("0123abcd")).expect("an artifact");

    let ended = crate::Builder::new(
        skyport_store::Store::open_in_memory().await.expect("store"),
        data.path().to_path_buf(),
    )
    .clean_up_interrupted_builds()
    .await;
    // sh, and its sleep once sh got to start it.
    assert!(ended >= 1, "nothing was ended");
    assert!(!leader.running(), "the recorded group leader survived");
    assert!(recorded(data.path()).is_empty());
    assert_eq!(
        files_in(&artifacts),
        ["0123abcd"],
        "the work folder is left"
    );
}

#[tokio::test]
async fn a_build_child_that_ends_leaves_no_record_and_one_outside_a_build_none_at_all() {
    let (data, _store, builder, _server) = builder_and_server().await;
    crate::process::recording(builder.inner.groups.clone(), async {
        let mut child = sleeping_group();
        let guard = crate::process::GroupGuard::new(&child);
        assert_eq!(recorded(data.path()).len(), 1);
        drop(guard);
        child.wait().await.expect("wait");
        assert!(
            recorded(data.path()).is_empty(),
            "a killed group kept its record"
        );

        // A child that waits for its stdin, so that it is surely recorded before it ends.
        let mut child = crate::process::command("sh")
            .args(["-c", "read line"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("start sh");
        let guard = crate::process::GroupGuard::new(&child);
        assert_eq!(recorded(data.path()).len(), 1);
        drop(child.stdin.take());
        child.wait().await.expect("wait");
        guard.disarm();
        assert!(
            recorded(data.path()).is_empty(),
            "a finished child kept its record"
        );
    })
    .await;

    let mut child = sleeping_group();
    let guard = crate::process::GroupGuard::new(&child);
    assert!(recorded(data.path()).is_empty(), "recorded outside a build");
    drop(guard);
    child.wait().await.expect("wait");
    assert_eq!(builder.clean_up_interrupted_builds().await, 0);
}
