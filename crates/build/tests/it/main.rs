//! Real builds: real uv (found or installed by the builder itself), real Python, real FastMCP
//! from the package index. One test drives every case through one `Builder`, as Skyport does,
//! so the uv installation and the environment cache are shared between cases.
//!
//! Skipped (with a note) only when the machine has no Python 3.10 or newer.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use skyport_build::{BuildRequest, Builder, Entrypoint, GitSource, Source};
use skyport_store::{Deployment, DeploymentStatus, FailureKind, LogQuery, ServerName, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HELLO: &str = r#"from fastmcp import FastMCP

mcp = FastMCP("hello")


@mcp.tool
def hello(name: str = "world") -> str:
    """Say hello."""
    return f"hello, {name}"


@mcp.resource("data://greeting")
def greeting() -> str:
    return "hi"
"#;

const SYNTAX_ERROR: &str = r#"from fastmcp import FastMCP

mcp = FastMCP("broken")

def hello(name:
    return name
"#;

const IMPORT_ERROR: &str = r#"import skyport_no_such_module_for_tests
from fastmcp import FastMCP

mcp = FastMCP("broken")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_from_git_record_the_commit_and_reuse_mirror_and_artifact() {
    if usable_python().is_none() {
        eprintln!("skipping: no Python 3.10 or newer on PATH (set SKYPORT_PYTHON)");
        return;
    }
    let h = Harness::new().await;
    let repo = GitRepo::new(h.work.path(), &[("main.py", HELLO)]);
    let first_sha = repo.head();
    let git = |reference: Option<&str>| {
        Source::Git(GitSource {
            url: repo.url().parse().expect("url"),
            reference: reference.map(|r| r.parse().expect("ref")),
        })
    };

    let first = h.build("gitted", git(None), None).await;
    h.check_live(&first).await;
    let commit = first.commit.clone().expect("the commit is recorded");
    assert_eq!(commit.sha, first_sha);
    assert_eq!(commit.message, "first");
    assert!(
        commit.author.contains("Tester <tester@example.com>"),
        "{commit:?}"
    );
    let log = h.log(&first).await;
    assert!(log.contains("new mirror of"), "{log}");

    // The same commit again: the mirror and the artifact are reused, nothing is installed.
    let again = h.build("gitted", git(Some("main")), None).await;
    h.check_live(&again).await;
    let log = h.log(&again).await;
    assert!(log.contains("reusing the mirror"), "{log}");
    assert!(log.contains("already built"), "{log}");
    assert_eq!(
        again.built.as_ref().map(|b| &b.artifact),
        first.built.as_ref().map(|b| &b.artifact)
    );

    // A code change is a new artifact in the same environment.
    repo.commit("main.py", &HELLO.replace("hello, ", "hi, "), "second");
    let changed = h.build("gitted", git(None), None).await;
    h.check_live(&changed).await;
    assert_ne!(
        changed.built.as_ref().map(|b| &b.artifact),
        first.built.as_ref().map(|b| &b.artifact)
    );
    assert_eq!(
        changed.built.as_ref().map(|b| &b.manifest["environment"]),
        first.built.as_ref().map(|b| &b.manifest["environment"])
    );

    // An older commit by abbreviated SHA, and a ref that does not exist.
    let old = h.build("gitted", git(Some(&first_sha[..10])), None).await;
    h.check_live(&old).await;
    assert_eq!(old.commit.map(|c| c.sha), Some(first_sha.clone()));
    let missing = h.build("gitted", git(Some("no-such-branch")), None).await;
    let message = h.check_failed(&missing, FailureKind::Source).await;
    assert!(message.contains("no-such-branch"), "{message}");
}

/// A git repository with a working tree, committed on `main`.
struct GitRepo {
    dir: PathBuf,
}

impl GitRepo {
    fn new(root: &Path, files: &[(&str, &str)]) -> GitRepo {
        let dir = root.join(format!("repo-{}", ulid_like()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let repo = GitRepo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        for (path, text) in files {
            std::fs::write(repo.dir.join(path), text).expect("write");
        }
        repo.git(&["add", "-A"]);
        repo.git(&["commit", "-q", "-m", "first"]);
        repo
    }

    fn url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).trim().to_owned()
    }

    fn commit(&self, path: &str, text: &str, message: &str) {
        std::fs::write(self.dir.join(path), text).expect("write");
        self.git(&["commit", "-q", "-am", message]);
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "the test drives git as a user would"
    )]
    fn git(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=Tester",
                "-c",
                "user.email=tester@example.com",
            ])
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_inspect_and_promote_real_servers() {
    let Some(python) = usable_python() else {
        eprintln!(
            "skipping the real build test: no Python 3.10 or newer on PATH (set SKYPORT_PYTHON)"
        );
        return;
    };
    eprintln!("building with {python}");
    let h = Harness::new().await;

    // A cold environment: uv may be installed, the environment is created.
    let started = Instant::now();
    let first = h.deploy("hello", &[("main.py", HELLO)], None).await;
    let cold = started.elapsed();
    h.check_live(&first).await;
    let log = h.log(&first).await;
    let environment_line = log
        .lines()
        .find(|l| l.contains(" ready in "))
        .unwrap_or_default()
        .to_owned();
    assert!(log.contains("unpacked 1 files"), "{log}");
    assert!(log.contains("creating environment"), "{log}");
    assert!(
        log.contains("found server 'hello': 1 tool, 1 resource, 0 prompts"),
        "{log}"
    );
    assert!(
        log.contains("promoted; this is the server's first live deployment"),
        "{log}"
    );
    let built = first.built.as_ref().expect("built");
    assert_eq!(built.entrypoint, "main.py:mcp");
    let tools: Vec<&str> = built.inspection["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(tools, ["hello"]);
    assert_eq!(built.inspection["server"]["name"], "hello");
    assert!(built.launch.program.is_file(), "{:?}", built.launch);
    assert!(built.launch.working_dir.join("main.py").is_file());
    assert_eq!(built.launch.args[1], "serve");
    assert_eq!(built.launch.args[3], "mcp");
    assert!(
        h.files("uploads").is_empty(),
        "the upload was used up: {:?}",
        h.files("uploads")
    );

    // The same dependencies again: the environment is reused, the previous deployment retired.
    let started = Instant::now();
    let second = h
        .deploy("hello", &[("main.py", HELLO)], Some("main.py:mcp"))
        .await;
    let warm = started.elapsed();
    h.check_live(&second).await;
    let log = h.log(&second).await;
    assert!(log.contains("(cached)"), "{log}");
    assert!(
        log.contains(&format!(
            "promoted; previous live deployment {} will be retired",
            first.id
        )),
        "{log}"
    );
    assert_eq!(
        first.built.as_ref().map(|b| &b.launch.program),
        second.built.as_ref().map(|b| &b.launch.program),
        "one shared environment"
    );

    // Failures, built concurrently (they share the cached environment).
    let (syntax, missing_object, no_main, import, deps) = tokio::join!(
        h.deploy("broken", &[("main.py", SYNTAX_ERROR)], None),
        h.deploy("nope", &[("main.py", HELLO)], Some("main.py:nope")),
        h.deploy("nomain", &[("helper.py", HELLO), ("notes.txt", "x")], None),
        h.deploy("imports", &[("main.py", IMPORT_ERROR)], None),
        h.deploy(
            "deps",
            &[
                ("main.py", HELLO),
                (
                    "requirements.txt",
                    "skyport-no-such-package-for-tests==1.0\n"
                ),
            ],
            None,
        ),
    );
    let message = h.check_failed(&syntax, FailureKind::Entrypoint).await;
    assert!(message.contains("syntax"), "{message}");
    assert!(message.contains("line 5"), "{message}");
    assert!(message.contains("main.py"), "{message}");

    let message = h
        .check_failed(&missing_object, FailureKind::Entrypoint)
        .await;
    assert!(message.contains("'nope'"), "{message}");
    assert!(message.contains("mcp"), "candidates are listed: {message}");

    let message = h.check_failed(&no_main, FailureKind::Entrypoint).await;
    assert!(message.contains("main.py"), "{message}");
    assert!(message.contains("entrypoint"), "{message}");
    assert!(message.contains("helper.py"), "{message}");

    let message = h.check_failed(&import, FailureKind::Entrypoint).await;
    assert!(
        message.contains("skyport_no_such_module_for_tests"),
        "{message}"
    );

    let message = h.check_failed(&deps, FailureKind::Dependencies).await;
    assert!(
        message.contains("skyport-no-such-package-for-tests"),
        "{message}"
    );
    assert!(message.contains("requirements.txt"), "{message}");

    // The live deployment is untouched by failed builds of other servers.
    let hello = h.server_live("hello").await;
    assert_eq!(hello.as_ref(), Some(&second.id));

    // The artifact serves: the launcher's `serve` mode on a socket bound by its parent.
    let built = second.built.as_ref().expect("built");
    let answer = serve_and_initialize(&built.launch).await;
    assert!(answer.contains("\"serverInfo\""), "{answer}");
    assert!(answer.contains("\"hello\""), "{answer}");

    eprintln!(
        "timings: cold build {:.1} s ({environment_line}), warm build {:.1} s",
        cold.as_secs_f64(),
        warm.as_secs_f64()
    );
}

struct Harness {
    store: Store,
    builder: Builder,
    data: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Harness {
        let store = Store::open_in_memory().await.expect("store");
        let data = tempfile::tempdir().expect("data dir");
        // Share downloaded packages across runs through the builder's own cache path (rather
        // than UV_CACHE_DIR, which would need mutating this process's environment).
        let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/uv-cache");
        std::fs::create_dir_all(&shared).expect("shared uv cache");
        std::fs::create_dir_all(data.path().join("cache")).expect("cache dir");
        std::os::unix::fs::symlink(&shared, data.path().join("cache/uv")).expect("symlink");
        let builder = Builder::new(store.clone(), data.path().to_path_buf());
        Harness {
            store,
            builder,
            data,
            work: tempfile::tempdir().expect("work dir"),
        }
    }

    /// Packs `files` like the CLI does, uploads them in chunks, builds, and waits for the end.
    async fn deploy(
        &self,
        name: &str,
        files: &[(&str, &str)],
        entrypoint: Option<&str>,
    ) -> Deployment {
        let folder = self.work.path().join(format!("{name}-{}", ulid_like()));
        for (path, text) in files {
            let path = folder.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        tar.append_dir_all(".", &folder).expect("pack");
        let tarball = tar.into_inner().expect("tar").finish().expect("gzip");
        let chunks: Vec<Result<Bytes, std::io::Error>> = tarball
            .chunks(1000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let upload = self
            .builder
            .save_upload(futures_util::stream::iter(chunks))
            .await
            .expect("upload");
        let done = self
            .build(name, Source::Upload(upload.clone()), entrypoint)
            .await;
        assert_eq!(done.source, format!("upload:{upload}"));
        done
    }

    /// Builds `source` as server `name` and waits for the end.
    async fn build(&self, name: &str, source: Source, entrypoint: Option<&str>) -> Deployment {
        let name: ServerName = name.parse().expect("name");
        let (server, _) = self
            .store
            .servers()
            .ensure(&name, None)
            .await
            .expect("server");
        let entrypoint: Option<Entrypoint> = entrypoint.map(|e| e.parse().expect("entrypoint"));
        let queued = self
            .builder
            .start(
                &server,
                BuildRequest {
                    source,
                    entrypoint,
                    preview: None,
                },
            )
            .await
            .expect("start");
        assert_eq!(queued.status, DeploymentStatus::Queued);
        // Bounded wait for its final state: failed, or ready and live (promotion follows the
        // ready state at once).
        let mut done = queued.clone();
        for _ in 0..3000 {
            done = self
                .store
                .deployments()
                .get(&queued.id)
                .await
                .expect("get")
                .expect("exists");
            let live = self.server_live_by_id(&done).await;
            let finished = done.status == DeploymentStatus::Failed
                || (done.status == DeploymentStatus::Ready && live.as_ref() == Some(&done.id));
            if finished {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let live = self.server_live_by_id(&done).await;
        match done.status {
            DeploymentStatus::Failed => {}
            DeploymentStatus::Ready => assert_eq!(live.as_ref(), Some(&done.id), "promoted"),
            other => panic!("the build did not finish in 5 minutes: {other:?}"),
        }
        done
    }

    async fn server_live_by_id(
        &self,
        deployment: &Deployment,
    ) -> Option<skyport_store::DeploymentId> {
        self.store
            .servers()
            .by_id(&deployment.server_id)
            .await
            .expect("get")
            .and_then(|s| s.live_deployment)
    }

    async fn server_live(&self, name: &str) -> Option<skyport_store::DeploymentId> {
        let name: ServerName = name.parse().expect("name");
        self.store
            .servers()
            .get(&name)
            .await
            .expect("get")
            .and_then(|s| s.live_deployment)
    }

    async fn log(&self, deployment: &Deployment) -> String {
        let query = LogQuery {
            deployment_id: Some(deployment.id.clone()),
            ..LogQuery::default()
        };
        let lines = self.store.logs().tail(&query, 5000).await.expect("log");
        lines
            .iter()
            .map(|l| l.line.line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn check_live(&self, deployment: &Deployment) {
        if deployment.status != DeploymentStatus::Ready {
            panic!(
                "expected a ready deployment, got {:?}: {:?}\n{}",
                deployment.status,
                deployment.failure,
                self.log(deployment).await
            );
        }
        let built = deployment
            .built
            .as_ref()
            .expect("a ready deployment is built");
        let artifact = self.data.path().join("artifacts").join(&built.artifact);
        assert!(
            artifact.join("launcher.py").is_file(),
            "{}",
            artifact.display()
        );
        assert_eq!(built.manifest["hash"], built.artifact.as_str());
        assert!(
            built.manifest["packages"].as_array().is_some_and(|p| p
                .iter()
                .any(|p| p.as_str().is_some_and(|p| p.starts_with("fastmcp==")))),
            "the manifest lists the installed packages: {}",
            built.manifest
        );
        assert!(
            !self
                .data
                .path()
                .join("artifacts")
                .join(deployment.id.as_str())
                .exists(),
            "the build folder was renamed to the content hash"
        );
    }

    /// Checks a failed build's kind, that its log holds the message, and that it left no
    /// artifact; returns the message.
    async fn check_failed(&self, deployment: &Deployment, kind: FailureKind) -> String {
        let log = self.log(deployment).await;
        let failure = deployment
            .failure
            .as_ref()
            .unwrap_or_else(|| panic!("expected a failure, got {deployment:?}\n{log}"));
        assert_eq!(failure.kind, kind, "{}\n{log}", failure.message);
        let first_line = failure.message.lines().next().unwrap_or_default();
        assert!(log.contains(first_line), "the log has the message: {log}");
        assert!(
            !self
                .data
                .path()
                .join("artifacts")
                .join(deployment.id.as_str())
                .exists(),
            "failed builds leave no artifact"
        );
        failure.message.clone()
    }

    fn files(&self, dir: &str) -> Vec<PathBuf> {
        std::fs::read_dir(self.data.path().join(dir))
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default()
    }
}

fn ulid_like() -> String {
    format!("{:?}", Instant::now()).replace(|c: char| !c.is_ascii_alphanumeric(), "")
}

/// `SKYPORT_PYTHON`, or a `python3` of version 3.10 or newer, the way the builder would look.
#[allow(clippy::disallowed_methods)] // tests may spawn to probe the machine
fn usable_python() -> Option<String> {
    let candidates = match std::env::var("SKYPORT_PYTHON") {
        Ok(python) => vec![python],
        Err(_) => [
            "python3.13",
            "python3.12",
            "python3.11",
            "python3.10",
            "python3",
        ]
        .map(str::to_owned)
        .to_vec(),
    };
    candidates.into_iter().find(|python| {
        std::process::Command::new(python)
            .args([
                "-c",
                "import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)",
            ])
            .output()
            .is_ok_and(|out| out.status.success())
    })
}

/// Starts the launch spec the way the runtime does — a listening socket on fd 3 with
/// `SKYPORT_LISTEN_FD=3` and `SKYPORT_PORT` — using Python to bind the socket and exec the
/// program (passing a descriptor from Rust needs `unsafe`), then sends `initialize`.
#[allow(clippy::disallowed_methods)] // tests may spawn the server they test
async fn serve_and_initialize(launch: &skyport_store::LaunchSpec) -> String {
    const TRAMPOLINE: &str = r#"
import os, socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
# dup2 onto itself keeps close-on-exec; the descriptor must survive exec.
os.set_inheritable(3, True)
os.environ["SKYPORT_LISTEN_FD"] = "3"
os.environ["SKYPORT_PORT"] = str(s.getsockname()[1])
print(s.getsockname()[1], flush=True)
os.execv(sys.argv[1], sys.argv[1:])
"#;
    let mut child = tokio::process::Command::new(&launch.program)
        .arg("-c")
        .arg(TRAMPOLINE)
        .arg(&launch.program)
        .args(&launch.args)
        .current_dir(&launch.working_dir)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    while stdout.read(&mut byte).await.expect("read port") == 1 && byte[0] != b'\n' {
        first.push(byte[0]);
    }
    let port: u16 = String::from_utf8_lossy(&first)
        .trim()
        .parse()
        .expect("port");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"skyport-build-test","version":"1"}}}"#;
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // The socket accepts connections at once (the kernel queues them); the answer comes
        // once the server has imported and started.
        if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            stream.write_all(request.as_bytes()).await.expect("send");
            let mut answer = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut answer))
                    .await;
            if read.is_ok() && !answer.is_empty() {
                let _ = child.kill().await;
                return String::from_utf8_lossy(&answer).into_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the server never answered on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
