//! Skyport's security claims, each proven once end to end against a real `skyport serve`:
//!
//! - the gateway owns identity: a client's `skyport-*` headers never reach a server, and its
//!   credentials (API key, OAuth access token, cookies) stay behind the gateway;
//! - nothing a user names leaves the source or the data dir: `..` in an entrypoint, entries of
//!   an uploaded tarball that climb, are absolute or are links, a `fastmcp.json` or a symlink
//!   in a git repository pointing out, and encoded `..` in the API's and the UI's routes;
//! - Skyport reaches no private address for a user: external servers and OAuth client
//!   metadata documents on loopback, private or link-local addresses are refused by default;
//! - a secret is in no API answer, no build or instance log line, no error message and not in
//!   Skyport's own log;
//! - the UI sends a Content-Security-Policy, refuses framing and sniffing, keeps its referrer
//!   to itself, sets its session cookie `HttpOnly; SameSite=Strict` (and `Secure` behind an
//!   https public URL), and every state-changing route of its router (read from the router's
//!   source, so a new form cannot slip past) refuses a foreign or a missing `Origin`.

use std::fs;
use std::time::Duration;

use skyport_e2e::{
    CLI_TIMEOUT, GitRepo, HttpResponse, Skyport, fixture, git, http, wait_until, workspace_root,
};

use crate::access::printed_admin_password;
use crate::build::deploy_git;
use crate::env::seen;
use crate::keys::{headers_server, seen_headers};
use crate::oauth::{form, token};

/// A secret long and unique enough that any leak is found.
const SECRET: &str = "sk-security-e2e-3f9b2c71d4";

/// An API key made with the CLI (an org admin's).
fn admin_key(sky: &Skyport) -> String {
    let created = sky.cli(&["keys", "create"]);
    assert!(created.success, "{created}");
    created.stdout.trim().to_owned()
}

/// `METHOD path` with `headers`, answered (panics when Skyport does not answer at all).
fn request(
    sky: &Skyport,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> HttpResponse {
    http(&sky.addr(), method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", sky.log_tail(30)))
}

#[test]
fn the_gateway_owns_identity_and_keeps_client_credentials() {
    let sky = Skyport::serve();
    let run = sky.deploy(&headers_server(&sky), "headers", &["--auth", "off"]);
    assert!(run.success, "deploy\n{run}\n{}", sky.log_tail(40));
    let key = admin_key(&sky);

    // An OAuth access token, from a service account's client credentials.
    for args in [
        &["users", "add", "ci-bot", "--service"][..],
        &["access", "grant", "headers", "ci-bot", "viewer"],
    ] {
        let run = sky.cli(args);
        assert!(run.success, "{run}");
    }
    let made = sky.cli(&["oauth", "clients", "create", "--for", "ci-bot", "--json"]);
    assert!(made.success, "{made}");
    let made = made.json();
    let id = made["client"]["client_id"].as_str().unwrap_or_default();
    let secret = made["client_secret"].as_str().unwrap_or_default();
    let resource = sky.mcp_url("headers");
    let (status, answer) = token(
        &sky,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("resource", &resource),
        ],
    );
    assert_eq!(status, 200, "{answer}");
    let access_token = answer["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let forged = [
        "skyport-user-id=prn_forged",
        "skyport-email=root@example.com",
        "skyport-roles=admin",
        "skyport-identity=eyJhbGciOiJub25lIn0.e30.",
        "Cookie=skyport_session=key_x.stolen; other=1",
        "x-tenant=acme",
    ];
    for (who, credential, user, role) in [
        (
            "the admin's key",
            Some(key.as_str()),
            "admin",
            Some("admin"),
        ),
        (
            "an OAuth token",
            Some(access_token.as_str()),
            "ci-bot",
            Some("viewer"),
        ),
        ("nobody", None, "", None),
    ] {
        let seen = seen_headers(&sky, "headers", credential, &forged)
            .unwrap_or_else(|e| panic!("{who}: the call failed: {e}\n{}", sky.log_tail(40)));
        for header in [
            "authorization",
            "cookie",
            "skyport-email",
            "skyport-identity",
        ] {
            assert!(
                seen.get(header).is_none(),
                "{who}: {header} reached the server: {seen}"
            );
        }
        let text = seen.to_string();
        for leaked in ["prn_forged", "stolen", "root@example.com", key.as_str()] {
            assert!(
                !text.contains(leaked),
                "{who}: {leaked} reached the server: {seen}"
            );
        }
        assert!(
            !text.contains(&access_token),
            "{who}: the token reached the server: {seen}"
        );
        assert_eq!(
            seen["x-tenant"], "acme",
            "{who}: other headers must pass: {seen}"
        );
        match role {
            Some(role) => {
                let id = seen["skyport-user-id"].as_str().unwrap_or_default();
                assert!(id.starts_with("prn_"), "{who} ({user}): {seen}");
                assert_eq!(seen["skyport-roles"], role, "{who} ({user}): {seen}");
            }
            None => {
                assert!(seen.get("skyport-user-id").is_none(), "{who}: {seen}");
                assert!(seen.get("skyport-roles").is_none(), "{who}: {seen}");
            }
        }
    }
}

/// An entry of a hand-made tarball: a file, or a symbolic link to `target`.
enum Entry<'a> {
    File { path: &'a str, text: &'a str },
    Link { path: &'a str, target: &'a str },
}

/// A gzip tarball of `entries` with their paths written as given: `tar`'s builder refuses
/// `..` and absolute paths, so the names go into the header raw, as a hostile client would.
fn tarball(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for entry in entries {
        let mut header = tar::Header::new_old();
        let (path, data, kind, target) = match entry {
            Entry::File { path, text } => (*path, text.as_bytes(), tar::EntryType::Regular, ""),
            Entry::Link { path, target } => (*path, &b""[..], tar::EntryType::Symlink, *target),
        };
        assert!(
            path.len() < 100 && target.len() < 100,
            "too long for a tar header: {path}"
        );
        let old = header.as_old_mut();
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname[..target.len()].copy_from_slice(target.as_bytes());
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append(&header, data)
            .expect("append to the tarball");
    }
    builder
        .into_inner()
        .and_then(|gz| gz.finish())
        .expect("finish the tarball")
}

/// Uploads `tarball` with the API and deploys it as `server`; the failure message of the
/// build once it is over (panics when it succeeds).
fn deploy_upload(sky: &Skyport, key: &str, server: &str, tarball: Vec<u8>) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for the HTTP client");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = sky.url();
    let created: serde_json::Value = runtime.block_on(async {
        let client = reqwest::Client::new();
        let upload: serde_json::Value = client
            .post(format!("{url}/api/v1/uploads"))
            .bearer_auth(key)
            .body(tarball)
            .timeout(CLI_TIMEOUT)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("the upload is taken")
            .json()
            .await
            .expect("the upload's id");
        let deploy = serde_json::json!({ "source": { "upload": upload["id"] } });
        client
            .post(format!("{url}/api/v1/servers/{server}/deployments"))
            .bearer_auth(key)
            .json(&deploy)
            .timeout(CLI_TIMEOUT)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("the deployment is accepted")
            .json()
            .await
            .expect("the deployment")
    });
    let id = created["id"].as_str().unwrap_or_default();
    let path = format!("/api/v1/deployments/{id}");
    let bearer = format!("Bearer {key}");
    let mut last = serde_json::Value::Null;
    let over = wait_until(Duration::from_secs(120), || {
        last = request(sky, "GET", &path, &[("Authorization", &bearer)], None)
            .json()
            .unwrap_or_default();
        matches!(last["status"].as_str(), Some("failed" | "ready"))
    });
    assert!(over, "the build did not end: {last}\n{}", sky.log_tail(40));
    assert_eq!(last["status"], "failed", "a hostile upload built: {last}");
    last["failure"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn paths_that_climb_out_are_refused_and_nothing_lands_outside() {
    let sky = Skyport::serve();
    let key = admin_key(&sky);
    let outside = sky.scratch().join("outside");
    fs::create_dir_all(&outside).expect("create the folder a climb would reach");
    let outside_text = outside.to_string_lossy().into_owned();
    let up = "../".repeat(12);

    // An entrypoint that climbs is refused before anything is uploaded.
    let run = sky.deploy(
        &fixture("env"),
        "climb",
        &["--entrypoint", "../../etc/passwd:mcp"],
    );
    assert!(
        !run.success && run.stderr.contains("must stay inside the source folder"),
        "{run}"
    );

    // Tarball entries: a climbing path and an absolute one stop the build with the path named;
    // a link is never made, so nothing is written through it.
    let climbing = format!("{up}{}/climbed.py", outside_text.trim_start_matches('/'));
    let absolute = format!("{outside_text}/absolute.py");
    for (server, path) in [
        ("tar-climb", climbing.as_str()),
        ("tar-absolute", absolute.as_str()),
    ] {
        let message = deploy_upload(
            &sky,
            &key,
            server,
            tarball(&[
                Entry::File {
                    path: "main.py",
                    text: "print('hi')\n",
                },
                Entry::File {
                    path,
                    text: "pwned = True\n",
                },
            ]),
        );
        assert!(
            message.contains("leaves the source folder") && message.contains(path),
            "{server}: {message}"
        );
    }
    let message = deploy_upload(
        &sky,
        &key,
        "tar-link",
        tarball(&[
            Entry::Link {
                path: "escape",
                target: &outside_text,
            },
            Entry::File {
                path: "escape/main.py",
                text: "pwned = True\n",
            },
        ]),
    );
    assert!(message.contains("main.py"), "tar-link: {message}");
    let logs = sky.cli(&["logs", "tar-link", "-n", "200"]);
    assert!(
        logs.stdout.contains("skipped escape"),
        "the skipped link is not logged\n{logs}"
    );

    // A git repository naming a file outside in fastmcp.json, or holding a symlink out.
    let repo = GitRepo::new(&sky.scratch().join("repos"), "climb");
    let config = format!(r#"{{"source": {{"path": "{up}etc/passwd", "entrypoint": "mcp"}}}}"#);
    repo.commit("fastmcp.json", &config, "Mallory", "climb out");
    repo.push("main");
    let run = deploy_git(&sky, &repo.url(), "git-config", &[]);
    assert!(
        !run.success && run.output().contains("points outside the source"),
        "{run}"
    );
    fs::remove_file(repo.work.join("fastmcp.json")).expect("remove fastmcp.json");
    std::os::unix::fs::symlink(outside.join("target.py"), repo.work.join("main.py"))
        .expect("make the symlink");
    fs::write(outside.join("target.py"), "outside = True\n").expect("write the link's target");
    git(&repo.work, &["add", "-A"]);
    git(
        &repo.work,
        &[
            "-c",
            "user.name=M",
            "-c",
            "user.email=m@example.com",
            "commit",
            "-qm",
            "link",
        ],
    );
    repo.push("main");
    let run = deploy_git(&sky, &repo.url(), "git-link", &[]);
    assert!(
        !run.success && run.output().contains("main.py"),
        "a symlink out of the repository built\n{run}"
    );

    // Encoded climbs in routes are names that do not exist, never files.
    let bearer = format!("Bearer {key}");
    for path in [
        "/api/v1/deployments/..%2f..%2fskyport.db",
        "/api/v1/deployments/..%2F..%2Fmaster.key/logs",
        "/api/v1/deployments/%2e%2e%2f%2e%2e/logs",
        "/api/v1/servers/..%2f..%2fmaster.key/logs",
        "/api/v1/servers/%2e%2e/deployments",
        "/api/v1/../../../etc/passwd",
        "/ui/assets/x/..%2f..%2f..%2fCargo.toml",
    ] {
        let answer = request(&sky, "GET", path, &[("Authorization", &bearer)], None);
        assert!(
            (400..500).contains(&answer.status),
            "{path} answered {}: {}",
            answer.status,
            answer.body
        );
        assert!(!answer.body.contains("root:"), "{path}: {}", answer.body);
    }
    let removed = request(
        &sky,
        "DELETE",
        "/api/v1/deployments/..%2f..%2fskyport.db",
        &[("Authorization", &bearer)],
        None,
    );
    assert!((400..500).contains(&removed.status), "{removed:?}");
    assert!(
        sky.data_dir().join("skyport.db").exists(),
        "the database is gone"
    );

    // Nothing was written next to the data dir.
    let mut found: Vec<String> = fs::read_dir(&outside)
        .expect("read the outside folder")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, ["target.py"], "files landed outside the data dir");
}

#[test]
fn private_addresses_are_refused_for_externals_and_client_documents() {
    let sky = Skyport::serve();
    for url in [
        "http://127.0.0.1:8000/mcp",
        "http://10.1.2.3/mcp",
        "http://192.168.1.20:8080/mcp",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8000/mcp",
        "http://localhost:8000/mcp",
        "https://0.0.0.0/mcp",
    ] {
        let run = sky.cli(&["registry", "add-external", "inside", url]);
        assert!(
            !run.success && run.stderr.contains("--allow-private-externals"),
            "{url} was accepted\n{run}"
        );
    }
    let listed = sky.cli(&["servers", "--json"]);
    assert!(!listed.stdout.contains("inside"), "{listed}");

    // Client metadata documents on such addresses are not fetched.
    let resource = sky.mcp_url("any");
    for client in [
        "https://127.0.0.1:9/client.json",
        "https://169.254.169.254/client.json",
        "https://[::1]:9/client.json",
    ] {
        let query = form(&[
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", "http://127.0.0.1:4999/callback"),
            (
                "code_challenge",
                "moQgulZ-oSov5El0oCdvD4sDllAt0G25lvzhG53k_6M",
            ),
            ("code_challenge_method", "S256"),
            ("resource", &resource),
        ]);
        let page = request(&sky, "GET", &format!("/oauth/authorize?{query}"), &[], None);
        assert_eq!(page.status, 400, "{client}: {}", page.body);
        assert!(page.body.contains("private"), "{client}: {}", page.body);
    }

    // An operator of a closed network allows them.
    let open = Skyport::serve_with(&["--allow-private-externals"]);
    let run = open.cli(&[
        "registry",
        "add-external",
        "inside",
        "http://127.0.0.1:9/mcp",
    ]);
    assert!(run.success, "{run}\n{}", open.log_tail(20));
}

/// A server that fails its inspection by quoting its secret in the exception.
const LEAKY_SERVER: &str = r#"import os

raise RuntimeError("cannot start with API_TOKEN=" + os.environ.get("API_TOKEN", ""))
"#;

#[test]
fn secrets_stay_out_of_answers_logs_errors_and_skyports_log() {
    let sky = Skyport::serve();
    let assignment = format!("API_TOKEN={SECRET}");
    let run = sky.deploy(&fixture("env"), "envd", &["--env", &assignment, "--secret"]);
    assert!(run.success, "deploy\n{run}\n{}", sky.log_tail(40));
    assert_eq!(
        seen(&sky, "envd", "API_TOKEN"),
        SECRET,
        "the tool does not see the secret"
    );

    let leaky = sky.scratch().join("leaky");
    fs::create_dir_all(&leaky).expect("create the leaky server's folder");
    fs::write(leaky.join("main.py"), LEAKY_SERVER).expect("write the leaky server");
    let run = sky.deploy(&leaky, "leaky", &["--env", &assignment, "--secret"]);
    assert!(!run.success, "a server raising at import deployed\n{run}");
    assert!(
        !run.output().contains(SECRET),
        "the deploy's error shows the secret\n{run}"
    );
    assert!(
        run.output().contains("[redacted:API_TOKEN]"),
        "the deploy's error does not quote the server's exception\n{run}"
    );

    // Every answer of the API about the servers, read raw.
    let key = admin_key(&sky);
    let bearer = format!("Bearer {key}");
    let mut paths = vec![
        "/api/v1/servers".to_owned(),
        "/api/v1/builds".to_owned(),
        "/api/v1/audit".to_owned(),
        "/api/v1/audit/control".to_owned(),
        "/metrics".to_owned(),
    ];
    for server in ["envd", "leaky"] {
        for tail in [
            "",
            "/deployments",
            "/env",
            "/logs?limit=1000",
            "/promotions",
        ] {
            paths.push(format!("/api/v1/servers/{server}{tail}"));
        }
        let deployments = request(
            &sky,
            "GET",
            &format!("/api/v1/servers/{server}/deployments"),
            &[("Authorization", &bearer)],
            None,
        );
        let listed = deployments.json().unwrap_or_default();
        let listed = skyport_e2e::deployments_of(&listed);
        assert!(!listed.is_empty(), "{server}: {}", deployments.body);
        for deployment in listed {
            let id = deployment["id"].as_str().unwrap_or_default();
            paths.push(format!("/api/v1/deployments/{id}"));
            paths.push(format!("/api/v1/deployments/{id}/logs"));
        }
    }
    let mut redacted = false;
    for path in &paths {
        let answer = request(&sky, "GET", path, &[("Authorization", &bearer)], None);
        assert_eq!(answer.status, 200, "{path}: {}", answer.body);
        assert!(
            !answer.body.contains(SECRET),
            "{path} shows the secret: {}",
            answer.body
        );
        redacted |= answer.body.contains("[redacted:API_TOKEN]");
    }
    assert!(
        redacted,
        "no log line the servers printed with the secret was read"
    );

    // Errors that name the variable do not show its value.
    let run = sky.cli(&[
        "env",
        "set",
        "envd",
        &format!("SKYPORT_X={SECRET}"),
        "--secret",
    ]);
    assert!(!run.success && !run.output().contains(SECRET), "{run}");

    assert!(
        !sky.log().contains(SECRET),
        "Skyport's own log shows the secret"
    );
}

/// The state-changing routes of the UI's router, read from its source: every `.route(…)` whose
/// handlers take a POST (`post(…)`, `.post(…)`, `any(…)`) or another writing method.
fn ui_writing_routes() -> Vec<String> {
    let source = fs::read_to_string(workspace_root().join("crates/web/src/ui.rs"))
        .expect("read the UI router's source");
    let mut routes = Vec::new();
    for call in source.split(".route(").skip(1) {
        let call = call.split(".route_layer(").next().unwrap_or(call);
        let call = call.split(".merge(").next().unwrap_or(call);
        let Some(path) = call.split('"').nth(1) else {
            continue;
        };
        let writes = ["post(", "put(", "patch(", "delete(", "any("]
            .iter()
            .any(|method| call.contains(method));
        if writes {
            routes.push(path.to_owned());
        }
    }
    routes
}

/// Signs in to the UI as the admin; the session cookie as `Set-Cookie` gave it.
fn ui_login(sky: &Skyport) -> String {
    let password = printed_admin_password(sky);
    let body = form(&[("user", "admin"), ("password", &password), ("next", "")]);
    let origin = sky.url();
    let answer = request(
        sky,
        "POST",
        "/ui/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", &origin),
        ],
        Some(&body),
    );
    assert_eq!(answer.status, 303, "{answer:?}");
    answer.header("set-cookie").unwrap_or_default().to_owned()
}

/// Asserts the security headers of a UI answer.
fn assert_ui_headers(path: &str, answer: &HttpResponse) {
    let csp = answer.header("content-security-policy").unwrap_or_default();
    for directive in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(
            csp.contains(directive),
            "{path}: CSP without {directive}: {answer:?}"
        );
    }
    assert_eq!(
        answer.header("x-frame-options"),
        Some("DENY"),
        "{path}: {answer:?}"
    );
    assert_eq!(
        answer.header("x-content-type-options"),
        Some("nosniff"),
        "{path}"
    );
    assert_eq!(
        answer.header("referrer-policy"),
        Some("same-origin"),
        "{path}"
    );
}

#[test]
fn the_ui_sends_security_headers_and_refuses_foreign_origins_on_every_form() {
    let sky = Skyport::serve();
    let cookie = ui_login(&sky);
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(
            cookie.contains(flag),
            "the session cookie is not {flag}: {cookie}"
        );
    }
    assert!(
        !cookie.contains("Secure"),
        "Secure over plain http: {cookie}"
    );
    let session = cookie.split(';').next().unwrap_or_default().to_owned();

    for (path, with_session) in [
        ("/ui/login", false),
        ("/ui/servers", true),
        ("/ui/settings", true),
        ("/ui/servers/nothing/inspector", true),
        ("/ui/servers/nothing/chat", true),
        ("/ui/api/servers", true),
    ] {
        let headers: &[(&str, &str)] = if with_session {
            &[("Cookie", &session)]
        } else {
            &[]
        };
        let answer = request(&sky, "GET", path, headers, None);
        assert_ui_headers(path, &answer);
    }
    // The pages' policy lets no inline script run but the import map.
    let page = request(&sky, "GET", "/ui/servers", &[("Cookie", &session)], None);
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("script-src 'self' 'sha256-") && !csp.contains("unsafe-inline"),
        "{csp}"
    );

    let routes = ui_writing_routes();
    for expected in [
        "/ui/login",
        "/ui/logout",
        "/ui/settings/keys",
        "/ui/servers/{name}/env",
    ] {
        assert!(
            routes.iter().any(|r| r == expected),
            "{expected} not found in {routes:?}"
        );
    }
    // Logout last: with this host's Origin it ends the session.
    let mut routes = routes;
    routes.sort_by_key(|r| r == "/ui/logout");
    let own = sky.url();
    for route in &routes {
        let path = route
            .replace("{name}", "nothing")
            .replace("{*path}", "servers/nothing/redeploy");
        let content = ("Content-Type", "application/x-www-form-urlencoded");
        let cookie = ("Cookie", session.as_str());
        for origin in [Some("http://evil.example"), Some("null"), None] {
            let mut headers = vec![content, cookie];
            headers.extend(origin.map(|o| ("Origin", o)));
            let answer = request(&sky, "POST", &path, &headers, Some(""));
            assert_eq!(answer.status, 403, "{path} from {origin:?}: {answer:?}");
            assert!(answer.body.contains("Origin"), "{path}: {}", answer.body);
        }
        // From this host the same request gets past the check (so the route is real).
        let answer = request(
            &sky,
            "POST",
            &path,
            &[content, cookie, ("Origin", &own)],
            Some(""),
        );
        assert!(
            !(answer.status == 403 && answer.body.contains("Origin")),
            "{path} refused its own origin: {answer:?}"
        );
    }

    // Behind an https public URL the cookie is Secure.
    let public = Skyport::serve_with(&["--public-url", "https://skyport.example"]);
    let cookie = ui_login(&public);
    assert!(cookie.contains("; Secure"), "{cookie}");
}
