//! Control-plane permissions through the whole application: users log in, roles come from
//! grants, groups and default roles, and every refusal is a `403` that says what to run.

use http::StatusCode;
use serde_json::{Value, json};

use super::{Fixture, fixture, send};

/// An upload id that is well formed but names nothing: a deploy with it passes the
/// permission check and then fails as `unknown_upload`.
const NO_UPLOAD: &str = "upl_01jaaaaaaaaaaaaaaaaaaaaaaa";

impl Fixture {
    pub(super) async fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        send(&self.app, self.request_as(token, method, path, &[], body)).await
    }

    /// Creates user `name` with `password` and logs them in; returns their key's secret.
    pub(super) async fn user(&self, name: &str, password: &str) -> String {
        let body = json!({"name": name, "password": password});
        let (status, created) = self.call("POST", "/api/v1/users", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        assert_eq!(created["password"], Value::Null, "no generated password");
        let login = json!({"user": name, "password": password});
        let (status, key) = self.call_as("", "POST", "/api/v1/login", Some(login)).await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        assert_eq!(key["key"]["principal"], name);
        key["secret"].as_str().unwrap().to_owned()
    }

    async fn grant(&self, server: &str, who: &str, role: &str) {
        let path = format!("/api/v1/servers/{server}/access/grants");
        let body = json!({"who": who, "role": role});
        let (status, answer) = self.call("POST", &path, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
}

fn deploy_body() -> Value {
    json!({"source": {"upload": NO_UPLOAD}})
}

fn assert_forbidden(answer: &(StatusCode, Value), command: &str) {
    assert_eq!(answer.0, StatusCode::FORBIDDEN, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], "forbidden");
    let message = answer.1["error"]["message"].as_str().unwrap();
    assert!(message.contains(command), "{message}");
}

#[tokio::test]
async fn logins_answer_keys_and_never_tell_whether_a_user_exists() {
    let f = fixture().await;
    let ann = f.user("ann", "correct horse").await;
    let (status, _) = f.call_as(&ann, "GET", "/api/v1/servers", None).await;
    assert_eq!(status, StatusCode::OK);

    let wrong = f
        .call_as(
            "",
            "POST",
            "/api/v1/login",
            Some(json!({"user": "ann", "password": "nope"})),
        )
        .await;
    let unknown = f
        .call_as(
            "",
            "POST",
            "/api/v1/login",
            Some(json!({"user": "zed", "password": "nope"})),
        )
        .await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown);

    // Generated passwords are answered once; service accounts get none and cannot log in.
    let (status, created) = f
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"name": "bea", "email": "bea@example.com"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let password = created["password"].as_str().unwrap();
    let login = json!({"user": "bea", "password": password});
    assert_eq!(
        f.call_as("", "POST", "/api/v1/login", Some(login)).await.0,
        StatusCode::CREATED
    );
    let (status, bot) = f
        .call(
            "POST",
            "/api/v1/users",
            Some(json!({"name": "bot", "service": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        (&bot["password"], &bot["user"]["kind"]),
        (&Value::Null, &json!("service"))
    );
    let (_, users) = f.call("GET", "/api/v1/users", None).await;
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "ann", "bea", "bot"]);
    assert_eq!(users[2]["email"], "bea@example.com");

    // Only org admins manage users; the last one cannot be removed.
    assert_forbidden(
        &f.call_as(&ann, "GET", "/api/v1/users", None).await,
        "organisation admins",
    );
    let (status, body) = f.call("DELETE", "/api/v1/users/admin", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        f.call("DELETE", "/api/v1/users/ann", None).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, _) = f.call_as(&ann, "GET", "/api/v1/servers", None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a removed user's keys stop working"
    );
}

#[tokio::test]
async fn a_viewer_cannot_deploy_or_read_env_an_editor_can_and_admins_manage_access() {
    let f = fixture().await;
    let ann = f.user("ann", "ann's password").await;
    let bob = f.user("bob", "bob's password").await;
    let (status, _) = f
        .call("PUT", "/api/v1/servers/weather", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // No role: the server is not listed and every action is refused with the way out.
    let (_, listed) = f.call_as(&ann, "GET", "/api/v1/servers", None).await;
    assert_eq!(listed, json!([]));
    let refused = f
        .call_as(&ann, "GET", "/api/v1/servers/weather", None)
        .await;
    assert_forbidden(&refused, "skyport access grant weather ann viewer");

    f.grant("weather", "ann", "viewer").await;
    let (_, listed) = f.call_as(&ann, "GET", "/api/v1/servers", None).await;
    assert_eq!(listed[0]["name"], "weather");
    for path in [
        "/api/v1/servers/weather",
        "/api/v1/servers/weather/deployments",
        "/api/v1/servers/weather/access",
    ] {
        assert_eq!(
            f.call_as(&ann, "GET", path, None).await.0,
            StatusCode::OK,
            "{path}"
        );
    }
    let deploy = "/api/v1/servers/weather/deployments";
    assert_forbidden(
        &f.call_as(&ann, "POST", deploy, Some(deploy_body())).await,
        "skyport access grant weather ann editor",
    );
    for path in [
        "/api/v1/servers/weather/env",
        "/api/v1/servers/weather/logs",
    ] {
        assert_forbidden(&f.call_as(&ann, "GET", path, None).await, "editor");
    }
    let set_env = json!({"vars": [{"name": "A", "value": "1"}]});
    assert_forbidden(
        &f.call_as(
            &ann,
            "PUT",
            "/api/v1/servers/weather/env",
            Some(set_env.clone()),
        )
        .await,
        "editor",
    );
    assert_forbidden(
        &f.call_as(
            &ann,
            "POST",
            "/api/v1/servers/weather/rollback",
            Some(json!({})),
        )
        .await,
        "editor",
    );

    // An editor deploys (the unknown upload is the next thing to fail) and reads env, but
    // neither changes settings nor access nor removes the server.
    f.grant("weather", "ann", "editor").await;
    let (status, body) = f.call_as(&ann, "POST", deploy, Some(deploy_body())).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("unknown_upload"))
    );
    let (status, body) = f
        .call_as(&ann, "PUT", "/api/v1/servers/weather/env", Some(set_env))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, env) = f
        .call_as(&ann, "GET", "/api/v1/servers/weather/env", None)
        .await;
    assert_eq!(
        (status, &env["vars"][0]["name"]),
        (StatusCode::OK, &json!("A"))
    );
    let settings = json!({"settings": {"max_instances": 2}});
    assert_forbidden(
        &f.call_as(&ann, "PUT", "/api/v1/servers/weather", Some(settings))
            .await,
        "admin",
    );
    let grant = json!({"who": "bob", "role": "viewer"});
    assert_forbidden(
        &f.call_as(
            &ann,
            "POST",
            "/api/v1/servers/weather/access/grants",
            Some(grant.clone()),
        )
        .await,
        "admin",
    );
    assert_forbidden(
        &f.call_as(&ann, "DELETE", "/api/v1/servers/weather", None)
            .await,
        "admin",
    );

    // A group grant makes bob an admin of the server: he manages its access.
    assert_forbidden(
        &f.call_as(&bob, "GET", "/api/v1/servers/weather", None)
            .await,
        "bob",
    );
    let (status, _) = f
        .call("POST", "/api/v1/groups", Some(json!({"name": "ops"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, group) = f.call("PUT", "/api/v1/groups/ops/members/bob", None).await;
    assert_eq!(
        (status, &group["members"]),
        (StatusCode::OK, &json!(["bob"]))
    );
    f.grant("weather", "group:ops", "admin").await;
    let (status, access) = f
        .call_as(
            &bob,
            "POST",
            "/api/v1/servers/weather/access/grants",
            Some(json!({"who": "ann", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{access}");
    assert_eq!(
        access,
        json!({"server": "weather", "default_role": "none", "grants": [
            {"who": "admin", "role": "admin"}, {"who": "ann", "role": "viewer"},
            {"who": "group:ops", "role": "admin"}
        ]}),
        "the server's creator holds an admin grant"
    );
}

#[tokio::test]
async fn creators_administer_new_servers_and_default_roles_reach_every_member() {
    let f = fixture().await;
    let ann = f.user("ann", "ann's password").await;
    let (status, body) = f
        .call_as(&ann, "PUT", "/api/v1/servers/notes", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, access) = f
        .call_as(&ann, "GET", "/api/v1/servers/notes/access", None)
        .await;
    assert_eq!(access["grants"], json!([{"who": "ann", "role": "admin"}]));

    // A service account gets a key from an org admin only, and sees what the default allows.
    f.call(
        "POST",
        "/api/v1/users",
        Some(json!({"name": "bot", "service": true})),
    )
    .await;
    let for_bot = json!({"principal": "bot", "name": "ci"});
    assert_forbidden(
        &f.call_as(&ann, "POST", "/api/v1/keys", Some(for_bot.clone()))
            .await,
        "organisation admins",
    );
    let (status, key) = f.call("POST", "/api/v1/keys", Some(for_bot)).await;
    assert_eq!(
        (status, &key["key"]["principal"]),
        (StatusCode::CREATED, &json!("bot"))
    );
    let bot = key["secret"].as_str().unwrap();
    assert_forbidden(
        &f.call_as(bot, "GET", "/api/v1/servers/notes", None).await,
        "bot",
    );
    let (status, access) = f
        .call_as(
            &ann,
            "PUT",
            "/api/v1/servers/notes/access/default",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(
        (status, &access["default_role"]),
        (StatusCode::OK, &json!("viewer"))
    );
    assert_eq!(
        f.call_as(bot, "GET", "/api/v1/servers/notes", None).await.0,
        StatusCode::OK
    );
    assert_forbidden(
        &f.call_as(bot, "GET", "/api/v1/servers/notes/env", None)
            .await,
        "editor",
    );

    // The audit log: org admins read all of it, a server's admins that server's.
    assert_forbidden(
        &f.call_as(&ann, "GET", "/api/v1/audit", None).await,
        "--server",
    );
    assert_eq!(
        f.call_as(&ann, "GET", "/api/v1/audit?server=notes", None)
            .await
            .0,
        StatusCode::OK
    );
    assert_forbidden(
        &f.call_as(bot, "GET", "/api/v1/audit?server=notes", None)
            .await,
        "admin",
    );
    assert_eq!(f.call("GET", "/api/v1/audit", None).await.0, StatusCode::OK);

    let (status, _) = f
        .call_as(
            &ann,
            "DELETE",
            "/api/v1/servers/notes/access/grants/ann",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_forbidden(
        &f.call_as(
            &ann,
            "PUT",
            "/api/v1/servers/notes/access/default",
            Some(json!({"role": "none"})),
        )
        .await,
        "admin",
    );
}

#[tokio::test]
async fn a_remix_needs_sight_of_its_sources_and_admin_to_edit() {
    let f = fixture().await;
    for name in ["alpha", "beta"] {
        f.store
            .servers()
            .ensure(&name.parse().unwrap(), None)
            .await
            .unwrap();
    }
    let ann = f.user("ann", "correct horse").await;
    let remix = json!({
        "name": "mix",
        "description": "both",
        "sources": [
            {"server": "alpha", "renames": {"echo": "alpha_echo"}},
            {"server": "beta", "tools": {"only": ["add"]}}
        ]
    });
    // Ann sees neither source: she may not publish their tools.
    let refused = f
        .call_as(&ann, "POST", "/api/v1/remixes", Some(remix.clone()))
        .await;
    assert_forbidden(&refused, "skyport access grant alpha ann viewer");
    f.grant("alpha", "ann", "viewer").await;
    f.grant("beta", "ann", "viewer").await;
    let (status, created) = f
        .call_as(&ann, "POST", "/api/v1/remixes", Some(remix.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["url"], "http://127.0.0.1:8420/servers/mix/mcp");
    assert_eq!(created["sources"][1]["tools"], json!({"only": ["add"]}));
    assert_eq!(created["sources"][0]["tools"], "all");

    // The name is taken now; a malformed definition says what is wrong.
    let (status, _) = f.call("POST", "/api/v1/remixes", Some(remix)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let clash = json!({"name": "mix2", "sources": [
        {"server": "alpha", "renames": {"a": "same"}},
        {"server": "beta", "renames": {"b": "same"}}
    ]});
    let (status, body) = f.call("POST", "/api/v1/remixes", Some(clash)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_remix");

    // Its creator administers it; another viewer sees it but may not change it.
    let bob = f.user("bob", "battery staple").await;
    f.grant("mix", "bob", "viewer").await;
    let (status, shown) = f.call_as(&bob, "GET", "/api/v1/remixes/mix", None).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    let edit = json!({"description": "changed"});
    let refused = f
        .call_as(&bob, "PATCH", "/api/v1/remixes/mix", Some(edit.clone()))
        .await;
    assert_forbidden(&refused, "skyport access grant mix bob admin");
    let (status, edited) = f
        .call_as(&ann, "PATCH", "/api/v1/remixes/mix", Some(edit))
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["description"], "changed");
    assert_eq!(edited["sources"].as_array().map(Vec::len), Some(2));

    // A hosted server is not a remix, and a remix has no code to deploy.
    let (status, _) = f.call("GET", "/api/v1/remixes/alpha", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let deploy = f
        .call(
            "POST",
            "/api/v1/servers/mix/deployments",
            Some(deploy_body()),
        )
        .await;
    assert_eq!(deploy.0, StatusCode::CONFLICT, "{}", deploy.1);
    assert!(
        deploy.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("skyport remix edit mix")
    );
}
