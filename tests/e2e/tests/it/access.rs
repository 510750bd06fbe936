//! Users and roles end to end: the first admin's printed password, `skyport users add`,
//! `skyport login` with a printed password, `skyport access grant` to a user and to a group, and
//! what each role gets through the real gateway (`tools/call` of an auth-on server with the
//! official SDK) and the control plane (`skyport deploy` refused to a viewer).

use std::path::{Path, PathBuf};
use std::time::Duration;

use skyport_e2e::{Run, Skyport, wait_until};

use crate::keys::{headers_server, initialize, seen_headers};

/// A person at their own machine: their config dir holds what `skyport login` saves.
pub(crate) struct Person<'a> {
    sky: &'a Skyport,
    home: PathBuf,
}

impl<'a> Person<'a> {
    pub(crate) fn new(sky: &'a Skyport, name: &str) -> Person<'a> {
        let home = sky.scratch().join("people").join(name);
        std::fs::create_dir_all(home.join("data")).expect("create a home");
        Person { sky, home }
    }

    pub(crate) fn cli(&self, args: &[&str]) -> Run {
        self.sky.cli_as(&self.home, &[], args)
    }

    pub(crate) fn login(&self, user: &str, password: &str) -> Run {
        let env = [("SKYPORT_PASSWORD", password)];
        self.sky
            .cli_as(&self.home, &env, &["login", "--user", user])
    }

    /// A new key acting as this person (its secret).
    pub(crate) fn key(&self) -> String {
        let created = self.cli(&["keys", "create"]);
        assert!(created.success, "{created}");
        created.stdout.trim().to_owned()
    }

    fn home(&self) -> &Path {
        &self.home
    }
}

/// The password `serve` printed for the first admin.
pub(crate) fn printed_admin_password(sky: &Skyport) -> String {
    let log = sky.log();
    let after = log
        .split("Created the organisation admin 'admin' with the password:")
        .nth(1)
        .unwrap_or_else(|| panic!("serve printed no admin password\n{}", sky.log_tail(40)));
    after
        .split_whitespace()
        .next()
        .expect("a password after the announcement")
        .to_owned()
}

/// The role the server saw for `key`, once the gateway's access table shows `want`.
fn role_seen(sky: &Skyport, key: &str, want: &str) -> serde_json::Value {
    let mut seen = serde_json::Value::Null;
    let reached = wait_until(Duration::from_secs(10), || {
        match seen_headers(sky, "guarded", Some(key), &["skyport-roles=admin"]) {
            Ok(headers) => {
                seen = headers;
                seen["skyport-roles"] == want
            }
            Err(_) => false,
        }
    });
    assert!(
        reached,
        "never called as {want}: {seen}\n{}",
        sky.log_tail(40)
    );
    seen
}

#[test]
fn users_log_in_and_get_what_their_role_allows_through_gateway_and_cli() {
    let sky = Skyport::serve();
    let source = headers_server(&sky);
    let run = sky.deploy(&source, "guarded", &["--auth", "on"]);
    assert!(run.success, "{run}\n{}", sky.log_tail(40));

    // The first admin's password works once typed on another machine.
    let admin = Person::new(&sky, "admin");
    let wrong = admin.login("admin", "not-the-password");
    assert!(
        !wrong.success && wrong.output().contains("wrong user name or password"),
        "{wrong}"
    );
    let logged = admin.login("admin", &printed_admin_password(&sky));
    assert!(logged.success, "{logged}");
    assert!(
        admin.home().join("config/skyport/credentials").is_file(),
        "{logged}"
    );
    let servers = admin.cli(&["servers", "ls", "--json"]);
    assert!(
        servers.success && servers.stdout.contains("guarded"),
        "{servers}"
    );

    // An org admin adds users; each gets a password printed once.
    let added = sky.cli(&["users", "add", "ann", "--email", "ann@example.com"]);
    assert!(added.success, "{added}");
    let ann_password = added.stdout.trim().to_owned();
    assert!(ann_password.len() >= 16, "{added}");
    let added = sky.cli(&["users", "add", "carl"]);
    assert!(added.success, "{added}");
    let carl_password = added.stdout.trim().to_owned();
    let bot = sky.cli(&["users", "add", "bot", "--service"]);
    assert!(
        bot.success && bot.stdout.contains("keys create --for bot"),
        "{bot}"
    );
    let users = sky.cli(&["users", "ls", "--json"]).json();
    let kinds: Vec<(String, String)> = users
        .as_array()
        .expect("users ls --json is an array")
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap_or_default().to_owned(),
                u["kind"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(kinds.contains(&("bot".into(), "service".into())), "{users}");
    assert!(kinds.contains(&("ann".into(), "user".into())), "{users}");

    // Ann logs in with her printed password; the CLI then acts as her.
    let ann = Person::new(&sky, "ann");
    let logged = ann.login("ann", &ann_password);
    assert!(
        logged.success && logged.stdout.contains("as ann"),
        "{logged}"
    );
    let ann_key = ann.key();
    let listed = ann.cli(&["servers", "ls", "--json"]);
    assert!(listed.success, "{listed}");
    assert_eq!(
        listed.json(),
        serde_json::json!([]),
        "ann sees no server yet"
    );

    // Without a role, the auth-on server's gateway refuses her key with a 403 saying why.
    let refused = initialize(&sky, "guarded", Some(&ann_key));
    assert_eq!(refused.status, 403, "{refused:?}");
    let message = refused.json().unwrap_or_default()["error"]["message"].to_string();
    assert!(
        message.contains("skyport access grant guarded ann viewer"),
        "{message}"
    );

    // A viewer calls tools through the gateway and is named to the server as one...
    let granted = sky.cli(&["access", "grant", "guarded", "ann", "viewer"]);
    assert!(
        granted.success && granted.stdout.contains("viewer"),
        "{granted}"
    );
    let seen = role_seen(&sky, &ann_key, "viewer");
    assert_eq!(seen["skyport-user-email"], "ann@example.com", "{seen}");

    // ...but may neither deploy nor read the environment.
    let deploy = ann.cli(&["deploy", &source.to_string_lossy(), "--name", "guarded"]);
    assert!(!deploy.success, "a viewer deployed\n{deploy}");
    assert!(
        deploy.output().contains("ask an org admin") && deploy.output().contains("editor"),
        "{deploy}"
    );
    let env = ann.cli(&["env", "ls", "guarded"]);
    assert!(!env.success && env.output().contains("editor"), "{env}");

    // A user without any grant is refused at the gateway; a group grant lets him in as editor.
    let carl = Person::new(&sky, "carl");
    assert!(carl.login("carl", &carl_password).success);
    let carl_key = carl.key();
    assert_eq!(initialize(&sky, "guarded", Some(&carl_key)).status, 403);
    for args in [
        &["groups", "create", "ops"][..],
        &["groups", "add", "ops", "carl"],
        &["access", "grant", "guarded", "group:ops", "editor"],
    ] {
        let run = sky.cli(args);
        assert!(run.success, "{run}");
    }
    role_seen(&sky, &carl_key, "editor");
    let env = carl.cli(&["env", "ls", "guarded"]);
    assert!(env.success, "an editor reads the environment\n{env}");

    let access = sky.cli(&["access", "ls", "guarded", "--json"]);
    assert!(access.success, "{access}");
    let grants = &access.json()["grants"];
    assert!(
        grants
            .to_string()
            .contains(r#"{"role":"editor","who":"group:ops"}"#)
            && grants
                .to_string()
                .contains(r#"{"role":"viewer","who":"ann"}"#),
        "{access}"
    );

    // A service account's key comes from an org admin and follows the server's default role.
    let created = sky.cli(&["keys", "create", "--for", "bot"]);
    assert!(
        created.success && created.stderr.contains("acting as bot"),
        "{created}"
    );
    let bot_key = created.stdout.trim().to_owned();
    assert_eq!(initialize(&sky, "guarded", Some(&bot_key)).status, 403);
    assert!(sky.cli(&["access", "default", "guarded", "viewer"]).success);
    role_seen(&sky, &bot_key, "viewer");

    // Removing a user takes their keys with them.
    assert!(sky.cli(&["users", "rm", "ann"]).success);
    assert!(
        wait_until(Duration::from_secs(10), || initialize(
            &sky,
            "guarded",
            Some(&ann_key)
        )
        .status
            == 401),
        "a removed user's key still works"
    );
}
