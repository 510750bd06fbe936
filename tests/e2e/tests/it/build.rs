//! Builds from git: a matrix of real repositories, made by the tests as local bare repositories,
//! deployed through the CLI. Good layouts serve their tools through the gateway; broken ones fail
//! with their class and a clear summary while the server's previous deployment keeps serving.

use std::fs;
use std::path::{Path, PathBuf};

use skyport_e2e::{Skyport, deployments_of, git};

const HELLO: &str = r#"from fastmcp import FastMCP

mcp = FastMCP("matrix")


@mcp.tool
def hello(name: str) -> str:
    """Say hello."""
    return f"Hello, {name}!"
"#;

/// A bare repository at `ROOT/NAME.git` holding `files`, committed on `main`; returns its URL.
fn repo(root: &Path, name: &str, files: &[(&str, &str)]) -> String {
    let work = root.join(format!("{name}-work"));
    fs::create_dir_all(&work).expect("create the work tree");
    for (path, text) in files {
        let path = work.join(path);
        fs::create_dir_all(path.parent().expect("a parent")).expect("create folders");
        fs::write(path, text).expect("write a file");
    }
    let bare = root.join(format!("{name}.git"));
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "-A"]);
    git(
        &work,
        &[
            "-c",
            "user.email=e2e@example.com",
            "-c",
            "user.name=E2E Tester",
            "commit",
            "-q",
            "-m",
            &format!("{name}: first commit"),
        ],
    );
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            &work.to_string_lossy(),
            &bare.to_string_lossy(),
        ],
    );
    format!("file://{}", bare.display())
}

/// The newest deployment of `server`, as `skyport deployments --json` shows it.
fn newest(sky: &Skyport, server: &str) -> serde_json::Value {
    let run = sky.cli(&["deployments", server, "--json"]);
    assert!(run.success, "{run}");
    deployments_of(&run.json())
        .into_iter()
        .next()
        .expect("a deployment")
}

pub(crate) fn deploy_git(sky: &Skyport, url: &str, name: &str, extra: &[&str]) -> skyport_e2e::Run {
    let mut args = vec!["deploy", url, "--name", name];
    args.extend_from_slice(extra);
    sky.cli_bounded(&args, std::time::Duration::from_secs(600))
}

fn scratch(sky: &Skyport) -> PathBuf {
    let dir = sky.scratch().join("repos");
    fs::create_dir_all(&dir).expect("create the repos folder");
    dir
}

#[test]
fn good_layouts_build_from_git_and_serve_their_tools() {
    let sky = Skyport::serve();
    let root = scratch(&sky);

    // A flat main.py, the default entrypoint, on the remote's default branch.
    let flat = repo(&root, "flat", &[("main.py", HELLO)]);
    let run = deploy_git(&sky, &flat, "flat", &[]);
    assert!(run.success, "{run}\n{}", sky.log_tail(40));
    sky.check_hello("flat", "flat");
    let d = newest(&sky, "flat");
    assert_eq!(d["status"], "ready", "{d}");
    assert_eq!(
        d["commit"]["message"].as_str(),
        Some("flat: first commit"),
        "{d}"
    );
    assert!(
        d["commit"]["author"]
            .as_str()
            .is_some_and(|a| a.contains("E2E Tester")),
        "{d}"
    );

    // A src/ package with pyproject.toml and a version from git tags (none in a shallow clone),
    // run as a module.
    let pyproject = r#"[project]
name = "weather"
dynamic = ["version"]
requires-python = ">=3.10"
dependencies = ["fastmcp"]

[build-system]
requires = ["hatchling", "hatch-vcs"]
build-backend = "hatchling.build"

[tool.hatch.version]
source = "vcs"
"#;
    let server = r#"from importlib.metadata import version

from fastmcp import FastMCP

mcp = FastMCP("weather")


@mcp.tool
def hello(name: str) -> str:
    """Say hello."""
    return f"Hello, {name}!"


@mcp.tool
def installed_version() -> str:
    """The package's own installed version."""
    return version("weather")
"#;
    let src = repo(
        &root,
        "src-layout",
        &[
            ("pyproject.toml", pyproject),
            ("src/weather/__init__.py", ""),
            ("src/weather/server.py", server),
        ],
    );
    let run = deploy_git(
        &sky,
        &src,
        "weather",
        &["--entrypoint", "weather.server:mcp"],
    );
    assert!(run.success, "{run}\n{}", sky.log_tail(40));
    sky.check_hello("weather", "src");
    let d = newest(&sky, "weather");
    assert!(
        d.to_string().contains("weather=="),
        "the package list lacks the project: {d}"
    );

    // requirements.txt next to the server in a subfolder.
    let with_humanize = r#"import humanize
from fastmcp import FastMCP

mcp = FastMCP("sub")


@mcp.tool
def hello(name: str) -> str:
    """Say hello."""
    return f"Hello, {name}!"


@mcp.tool
def size(n: int) -> str:
    """A human-readable size."""
    return humanize.naturalsize(n)
"#;
    let sub = repo(
        &root,
        "subfolder",
        &[
            ("server/main.py", with_humanize),
            ("server/requirements.txt", "fastmcp\nhumanize\n"),
            ("README.md", "a server in a subfolder\n"),
        ],
    );
    let run = deploy_git(&sky, &sub, "sub", &["--entrypoint", "server/main.py"]);
    assert!(run.success, "{run}\n{}", sky.log_tail(40));
    sky.check_hello("sub", "sub");

    // fastmcp.json naming the server object and an extra dependency.
    let app = with_humanize
        .replace("mcp = FastMCP", "server = FastMCP")
        .replace("@mcp.", "@server.");
    let config = r#"{
  "$schema": "https://gofastmcp.com/public/schemas/fastmcp.json/v1.json",
  // where the server lives
  "source": {"path": "app.py", "entrypoint": "server"},
  "environment": {"python": ">=3.10", "dependencies": ["humanize"]}
}"#;
    let configured = repo(
        &root,
        "configured",
        &[("app.py", app.as_str()), ("fastmcp.json", config)],
    );
    let run = deploy_git(&sky, &configured, "configured", &[]);
    assert!(run.success, "{run}\n{}", sky.log_tail(40));
    sky.check_hello("configured", "json");
    let d = newest(&sky, "configured");
    assert!(d.to_string().contains("app.py:server"), "{d}");
}

#[test]
fn broken_repositories_fail_with_their_class_and_the_live_deployment_keeps_serving() {
    let sky = Skyport::serve();
    let root = scratch(&sky);
    let good = repo(&root, "good", &[("main.py", HELLO)]);
    let run = deploy_git(&sky, &good, "keep", &[]);
    assert!(run.success, "{run}\n{}", sky.log_tail(40));
    sky.check_hello("keep", "before");

    let syntax = format!("{HELLO}\ndef oops(:\n");
    let missing = format!("import notamodule_skyport_e2e\n{HELLO}");
    let cases: Vec<(&str, String, Vec<&str>, &str, &str)> = vec![
        (
            "syntax",
            repo(&root, "syntax", &[("main.py", &syntax)]),
            vec![],
            "entrypoint",
            "syntax",
        ),
        (
            "missing-module",
            repo(&root, "missing", &[("main.py", &missing)]),
            vec![],
            "entrypoint",
            "notamodule_skyport_e2e",
        ),
        (
            "wrong-object",
            good.clone(),
            vec!["--entrypoint", "main.py:nope"],
            "entrypoint",
            "nope",
        ),
        (
            "unsatisfiable",
            repo(
                &root,
                "unsatisfiable",
                &[
                    ("main.py", HELLO),
                    (
                        "requirements.txt",
                        "fastmcp\nskyport-e2e-no-such-package==9.9.9\n",
                    ),
                ],
            ),
            vec![],
            "dependencies",
            "skyport-e2e-no-such-package",
        ),
        (
            "no-such-ref",
            good.clone(),
            vec!["--ref", "no-such-branch"],
            "source",
            "no-such-branch",
        ),
        (
            "python-version",
            repo(
                &root,
                "python399",
                &[
                    ("main.py", HELLO),
                    (
                        "fastmcp.json",
                        r#"{"source": {"path": "main.py"}, "environment": {"python": "3.99"}}"#,
                    ),
                ],
            ),
            vec![],
            "toolchain",
            "Python 3.99",
        ),
        (
            "invalid-config",
            repo(
                &root,
                "badconfig",
                &[
                    ("main.py", HELLO),
                    ("fastmcp.json", "{\"source\": {\"path\": 3}}"),
                ],
            ),
            vec![],
            "config",
            "fastmcp.json",
        ),
    ];
    for (case, url, extra, class, mentions) in cases {
        let run = deploy_git(&sky, &url, "keep", &extra);
        assert!(!run.success, "{case}: the deploy succeeded\n{run}");
        assert!(
            run.stderr.contains(mentions),
            "{case}: the error does not mention {mentions}\n{run}"
        );
        let d = newest(&sky, "keep");
        assert_eq!(d["status"], "failed", "{case}: {d}");
        assert_eq!(d["failure"]["kind"], class, "{case}: {d}");
        sky.check_hello("keep", case);
    }
}
