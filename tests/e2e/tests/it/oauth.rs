//! OAuth end to end: the FastMCP `Client` (`auth="oauth"`) and the official SDK's
//! `OAuthClientProvider` log in through Skyport's pages (the browser step driven by form posts)
//! and call a server with `--auth on`; a service account's client credentials; and every
//! refusal with its OAuth error and no token: wrong PKCE verifier, code reuse, redirect URI
//! mismatch, open-redirect attempts, a token for another server, revoked and expired tokens,
//! refresh-token reuse, and client metadata documents too large, too slow or private.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use skyport_e2e::{HttpResponse, Skyport, example, http, wait_until};

use crate::access::printed_admin_password;
use crate::keys::{headers_server, seen_headers};

/// A PKCE verifier and its S256 challenge.
const VERIFIER: &str = "e2e-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
const CHALLENGE: &str = "moQgulZ-oSov5El0oCdvD4sDllAt0G25lvzhG53k_6M";
const REDIRECT: &str = "http://127.0.0.1:4999/callback";

/// `pairs` as an `application/x-www-form-urlencoded` body.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn post_form(sky: &Skyport, path: &str, pairs: &[(&str, &str)]) -> HttpResponse {
    let body = form(pairs);
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    http(&sky.addr(), "POST", path, &headers, Some(&body))
        .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", sky.log_tail(30)))
}

fn get(sky: &Skyport, path: &str) -> HttpResponse {
    http(&sky.addr(), "GET", path, &[], None)
        .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", sky.log_tail(30)))
}

/// A public client registered by DCR with `REDIRECT` (any loopback port matches).
fn register(sky: &Skyport) -> String {
    let body = r#"{"redirect_uris":["http://127.0.0.1/callback"],"client_name":"e2e client","token_endpoint_auth_method":"none"}"#;
    let headers = [("Content-Type", "application/json")];
    let answer = http(&sky.addr(), "POST", "/oauth/register", &headers, Some(body))
        .expect("POST /oauth/register");
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.json().expect("a JSON registration")["client_id"]
        .as_str()
        .expect("a client_id")
        .to_owned()
}

/// The authorization request's fields for `client` at `server`.
fn authorization<'a>(client: &'a str, resource: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("state", "xyz"),
        ("resource", resource),
    ]
}

/// Signs in as admin and approves: the code from the redirect to the client.
fn code(sky: &Skyport, client: &str, server: &str) -> String {
    let resource = sky.mcp_url(server);
    let password = printed_admin_password(sky);
    let mut fields = authorization(client, &resource);
    fields.extend([("username", "admin"), ("password", password.as_str())]);
    let consent = post_form(sky, "/oauth/authorize", &fields);
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("e2e client"), "{}", consent.body);
    let ticket = consent
        .body
        .split(r#"name="ticket" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no ticket in {}", consent.body))
        .to_owned();
    let back = post_form(
        sky,
        "/oauth/consent",
        &[("ticket", &ticket), ("decision", "approve")],
    );
    assert_eq!(back.status, 303, "{}", back.body);
    let location = back.header("location").unwrap_or_default();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert!(location.contains("state=xyz"), "{location}");
    location
        .split("code=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .unwrap_or_else(|| panic!("no code in {location}"))
        .to_owned()
}

/// The token endpoint's answer to `pairs`.
pub(crate) fn token(sky: &Skyport, pairs: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let answer = post_form(sky, "/oauth/token", pairs);
    (answer.status, answer.json().unwrap_or_default())
}

fn exchange<'a>(client: &'a str, code: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("client_id", client),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ]
}

/// Asserts a refusal with OAuth error `error` and no token in the answer.
fn refused(answer: &(u16, serde_json::Value), error: &str) {
    assert_eq!(answer.1["error"], error, "{answer:?}");
    assert!(answer.0 == 400 || answer.0 == 401, "{answer:?}");
    assert!(answer.1.get("access_token").is_none(), "{answer:?}");
}

/// The status of `initialize` at `server` with bearer `token`, and its challenge.
fn call_status(sky: &Skyport, server: &str, token: &str) -> (u16, String) {
    let answer = crate::keys::initialize(sky, server, Some(token));
    let challenge = answer
        .header("www-authenticate")
        .unwrap_or_default()
        .to_owned();
    (answer.status, challenge)
}

#[test]
fn mcp_clients_log_in_through_the_browser_and_service_accounts_use_client_credentials() {
    let sky = Skyport::serve();
    for (source, name) in [
        (example("hello"), "hello"),
        (headers_server(&sky), "headers"),
    ] {
        let run = sky.deploy(&source, name, &["--auth", "on"]);
        assert!(run.success, "deploy {name}\n{run}\n{}", sky.log_tail(40));
    }
    let password = printed_admin_password(&sky);
    let url = sky.mcp_url("hello");

    // Both clients discover Skyport from the 401, register, send the user through the login
    // and consent pages (two form posts), exchange the code and call.
    for kind in ["fastmcp", "sdk"] {
        let (run, v) = sky.client("oauth_client.py", &[kind, &url, "admin", &password]);
        assert_eq!(v["ok"], true, "{kind}\n{run}\n{}", sky.log_tail(40));
        assert_eq!(v["text"], "Hello, admin!", "{kind}\n{run}");
        assert_eq!(v["forms"], 2, "{kind}\n{run}");
    }

    // A service account with a role on `headers` and an OAuth client for it.
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
    let id = made["client"]["client_id"].as_str().unwrap().to_owned();
    let secret = made["client_secret"].as_str().unwrap().to_owned();
    let listed = sky.cli(&["oauth", "clients", "ls"]);
    assert!(
        listed.stdout.contains(&id) && listed.stdout.contains("ci-bot"),
        "{listed}"
    );

    let headers_url = sky.mcp_url("headers");
    let credentials = |secret: &str, resource: &str| {
        token(
            &sky,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", secret),
                ("resource", resource),
            ],
        )
    };
    refused(&credentials("wrong", &headers_url), "invalid_client");
    refused(
        &credentials(&secret, "https://elsewhere.example/mcp"),
        "invalid_target",
    );
    let (status, tokens) = credentials(&secret, &headers_url);
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");

    // The SDK calls with the token; the server sees the service account, never the token.
    let seen = seen_headers(&sky, "headers", Some(&access), &[])
        .unwrap_or_else(|e| panic!("the access token was refused: {e}\n{}", sky.log_tail(40)));
    assert_eq!(seen["skyport-roles"], "viewer", "{seen}");
    assert!(seen.get("authorization").is_none(), "{seen}");
    assert!(!seen.to_string().contains(&access), "{seen}");

    // A token for `headers` is refused at `hello`, as invalid_token.
    let (status, challenge) = call_status(&sky, "hello", &access);
    assert_eq!(status, 401);
    assert!(challenge.contains("invalid_token"), "{challenge}");

    // Revoked: refused as soon as the gateway sees the change.
    let revoked = post_form(
        &sky,
        "/oauth/revoke",
        &[
            ("token", &access),
            ("client_id", &id),
            ("client_secret", &secret),
        ],
    );
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert!(
        wait_until(Duration::from_secs(5), || call_status(
            &sky, "headers", &access
        )
        .0 == 401),
        "a revoked token still works\n{}",
        sky.log_tail(30)
    );
}

#[test]
fn refusals_carry_the_right_oauth_error_and_no_token() {
    let sky = Skyport::serve_with(&["--oauth-allow-private-cimd", "--oauth-token-lifetime", "1s"]);
    let run = sky.deploy(&example("hello"), "hello", &["--auth", "on"]);
    assert!(run.success, "{run}\n{}", sky.log_tail(40));
    let client = register(&sky);
    let resource = sky.mcp_url("hello");

    // Wrong verifier: invalid_grant, and the code is spent.
    let c = code(&sky, &client, "hello");
    let wrong = "another-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
    refused(&token(&sky, &exchange(&client, &c, wrong)), "invalid_grant");
    refused(
        &token(&sky, &exchange(&client, &c, VERIFIER)),
        "invalid_grant",
    );

    // Redirect URI mismatch at the token endpoint.
    let c = code(&sky, &client, "hello");
    let mut moved = exchange(&client, &c, VERIFIER);
    moved[3] = ("redirect_uri", "http://127.0.0.1:4999/elsewhere");
    refused(&token(&sky, &moved), "invalid_grant");

    // A good exchange, then the same code again.
    let c = code(&sky, &client, "hello");
    let (status, first) = token(&sky, &exchange(&client, &c, VERIFIER));
    assert_eq!(status, 200, "{first}");
    refused(
        &token(&sky, &exchange(&client, &c, VERIFIER)),
        "invalid_grant",
    );

    // Refresh rotation; the spent token again revokes the family (the newer one too).
    let refresh = |t: &str| {
        token(
            &sky,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &client),
                ("refresh_token", t),
            ],
        )
    };
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let (status, second) = refresh(&r1);
    assert_eq!(status, 200, "{second}");
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    refused(&refresh(&r1), "invalid_grant");
    refused(&refresh(&r2), "invalid_grant");

    // Expired: the token lives 1 s (plus 5 s leeway).
    let access = first["access_token"].as_str().unwrap().to_owned();
    assert!(
        wait_until(Duration::from_secs(15), || call_status(
            &sky, "hello", &access
        )
        .0 == 401),
        "an expired token still works"
    );

    // Unsupported grants and resources.
    refused(
        &token(&sky, &[("grant_type", "password"), ("client_id", &client)]),
        "unsupported_grant_type",
    );

    // Open redirect attempts: an unregistered redirect URI, or an unknown client, get a page,
    // never a redirect.
    let mut evil = authorization(&client, &resource);
    evil[2] = ("redirect_uri", "https://evil.example/steal");
    for fields in [
        evil,
        authorization("oac_01jzzzzzzzzzzzzzzzzzzzzzzz", &resource),
    ] {
        let page = get(&sky, &format!("/oauth/authorize?{}", form(&fields)));
        assert_eq!(page.status, 400, "{}", page.body);
        assert!(page.header("location").is_none(), "{page:?}");
        assert!(!page.body.contains("evil.example/steal?"), "{}", page.body);
    }
    // After the redirect URI checked out, errors go back to the client.
    let mut plain = authorization(&client, &resource);
    plain[4] = ("code_challenge_method", "plain");
    let back = get(&sky, &format!("/oauth/authorize?{}", form(&plain)));
    assert_eq!(back.status, 303, "{back:?}");
    let location = back.header("location").unwrap_or_default();
    assert!(
        location.starts_with(REDIRECT) && location.contains("error=invalid_request"),
        "{location}"
    );
    let elsewhere = authorization(&client, "https://elsewhere.example/mcp");
    let back = get(&sky, &format!("/oauth/authorize?{}", form(&elsewhere)));
    let location = back.header("location").unwrap_or_default();
    assert!(location.contains("error=invalid_target"), "{back:?}");

    // Client metadata documents: a good one gets the login page; too large, too slow or not
    // naming itself get an error page.
    let documents = Documents::serve();
    let page = get(
        &sky,
        &format!(
            "/oauth/authorize?{}",
            form(&authorization(&documents.url("good"), &resource))
        ),
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Sign in to Skyport"), "{}", page.body);
    for (doc, why) in [
        ("large", "larger than"),
        ("slow", "no answer"),
        ("other", "not the document"),
    ] {
        let url = documents.url(doc);
        let fields = authorization(&url, &resource);
        let page = get(&sky, &format!("/oauth/authorize?{}", form(&fields)));
        assert_eq!(page.status, 400, "{doc}: {}", page.body);
        assert!(page.body.contains(why), "{doc}: {}", page.body);
    }

    // Without the flag, a document on a loopback address is not fetched at all.
    let strict = Skyport::serve();
    let https = documents.url("good").replace("http://", "https://");
    for (url, why) in [(https, "private"), (documents.url("good"), "https")] {
        let page = get(
            &strict,
            &format!("/oauth/authorize?{}", form(&authorization(&url, &resource))),
        );
        assert_eq!(page.status, 400, "{}", page.body);
        assert!(page.body.contains(why), "{why}: {}", page.body);
    }
    assert_eq!(
        documents.hits("good"),
        1,
        "the strict Skyport fetched the document"
    );
}

/// Client metadata documents served from 127.0.0.1: `good` (names itself, redirects to
/// `REDIRECT`'s host), `large` (over 5 KiB), `slow` (answers after the fetch limit), `other`
/// (names another client id).
struct Documents {
    port: u16,
    hits: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Documents {
    fn serve() -> Documents {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("an address").port();
        let hits = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = hits.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                thread::spawn(move || answer(stream, port, &seen));
            }
        });
        Documents { port, hits }
    }

    fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/clients/{name}.json", self.port)
    }

    fn hits(&self, name: &str) -> usize {
        let path = format!("/clients/{name}.json");
        self.hits
            .lock()
            .expect("the hits")
            .iter()
            .filter(|p| **p == path)
            .count()
    }
}

fn answer(mut stream: std::net::TcpStream, port: u16, seen: &std::sync::Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = [0u8; 2048];
    let n = stream.read(&mut request).unwrap_or(0);
    let head = String::from_utf8_lossy(&request[..n]).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    seen.lock().expect("the hits").push(path.clone());
    let url = format!("http://127.0.0.1:{port}{path}");
    let body = match path.as_str() {
        "/clients/good.json" | "/clients/slow.json" => format!(
            r#"{{"client_id":"{url}","client_name":"e2e client","redirect_uris":["http://127.0.0.1/callback"],"token_endpoint_auth_method":"none"}}"#
        ),
        "/clients/large.json" => format!(
            r#"{{"client_id":"{url}","redirect_uris":["http://127.0.0.1/callback"],"padding":"{}"}}"#,
            "x".repeat(6 * 1024)
        ),
        _ => r#"{"client_id":"https://someone.else/client.json","redirect_uris":["http://127.0.0.1/callback"]}"#.to_owned(),
    };
    if path == "/clients/slow.json" {
        thread::sleep(Duration::from_secs(5));
    }
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
