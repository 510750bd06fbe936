//! Variables and secrets against a real SQLite database: scopes, resolution, snapshots, sealing.

use crate::tests::{contains, database_bytes};
use crate::*;

async fn store() -> Store {
    crate::testdb::store()
        .await
        .unwrap()
        .with_master_key(MasterKey::generate())
}

async fn server(store: &Store, name: &str) -> Server {
    store
        .servers()
        .ensure(&name.parse().unwrap(), None)
        .await
        .unwrap()
        .0
}

fn var(name: &str, value: &str, secret: bool) -> NewEnvVar {
    NewEnvVar::new(name.parse().unwrap(), value.to_owned(), secret).unwrap()
}

fn scope(text: &str) -> EnvScope {
    text.parse().unwrap()
}

async fn deployment(store: &Store, server: &Server) -> DeploymentId {
    let new = NewDeployment {
        source: "upload".to_owned(),
        ..NewDeployment::default()
    };
    store
        .deployments()
        .create(&server.id, &new)
        .await
        .unwrap()
        .id
}

fn pairs(vars: &[EnvVar]) -> Vec<(&str, &str, bool)> {
    vars.iter()
        .map(|v| (v.name.as_str(), v.value.as_str(), v.secret))
        .collect()
}

#[test]
fn names_and_scopes_are_parsed_at_the_edge() {
    for ok in ["API_KEY", "_x", "a1", "UV_INDEX_URL", "SKYPORTX"] {
        assert!(ok.parse::<EnvKey>().is_ok(), "{ok} was refused");
    }
    for bad in ["", "1A", "A-B", "A B", "É", "A=B"] {
        assert!(
            matches!(bad.parse::<EnvKey>(), Err(EnvError::InvalidName(_))),
            "{bad:?} was accepted"
        );
    }
    for reserved in ["SKYPORT_PORT", "PATH", "HOME", "PYTHONPATH"] {
        let error = reserved.parse::<EnvKey>().unwrap_err();
        assert!(matches!(error, EnvError::ReservedName(_)));
        assert!(error.to_string().contains("choose another name"), "{error}");
    }
    assert_eq!(scope("production"), EnvScope::Production);
    assert_eq!(scope("preview"), EnvScope::Preview);
    assert_eq!(
        scope("branch:feature/x"),
        EnvScope::Branch("feature/x".into())
    );
    assert_eq!(scope("branch:feature/x").to_string(), "branch:feature/x");
    for bad in ["prod", "branch:", "branch:a b", "Production"] {
        assert!(bad.parse::<EnvScope>().is_err(), "{bad:?} was accepted");
    }
    let nul = NewEnvVar::new("A".parse().unwrap(), "a\0b".into(), false).unwrap_err();
    assert!(nul.to_string().contains("NUL"), "{nul}");
    let long = NewEnvVar::new("A".parse().unwrap(), "x".repeat(MAX_VALUE_BYTES + 1), true);
    assert!(long.is_err());
}

#[test]
fn branch_overrides_preview_and_production_stands_apart() {
    let stored = || {
        vec![
            (EnvScope::Branch("feat".into()), "A".to_owned(), "branch"),
            (EnvScope::Production, "A".to_owned(), "production"),
            (EnvScope::Preview, "A".to_owned(), "preview"),
            (EnvScope::Preview, "B".to_owned(), "preview"),
            (EnvScope::Production, "C".to_owned(), "production"),
            (EnvScope::Branch("other".into()), "D".to_owned(), "other"),
        ]
    };
    let owned = |v: &[(&str, &'static str)]| -> Vec<(String, &'static str)> {
        v.iter().map(|(n, val)| ((*n).to_owned(), *val)).collect()
    };
    assert_eq!(
        resolve(stored(), None),
        owned(&[("A", "production"), ("C", "production")])
    );
    assert_eq!(
        resolve(stored(), Some("feat")),
        owned(&[("A", "branch"), ("B", "preview")])
    );
    assert_eq!(
        resolve(stored(), Some("main")),
        owned(&[("A", "preview"), ("B", "preview")])
    );
}

async fn variables_are_set_listed_and_unset_per_scope_and_secrets_are_not_listed() {
    let store = store().await;
    let a = server(&store, "a").await;
    let env = store.env();
    env.set(
        &a.id,
        &EnvScope::Production,
        &[
            var("REGION", "eu", false),
            var("API_KEY", "sk-live-1", true),
        ],
    )
    .await
    .unwrap();
    env.set(&a.id, &scope("branch:feat"), &[var("REGION", "us", false)])
        .await
        .unwrap();
    // Setting again replaces, and may turn a plain variable into a secret.
    env.set(
        &a.id,
        &EnvScope::Production,
        &[var("REGION", "eu-west", false)],
    )
    .await
    .unwrap();

    let all = env.list(&a.id, None).await.unwrap();
    let shown: Vec<(String, String, bool, Option<String>)> = all
        .iter()
        .map(|e| {
            (
                e.scope.to_string(),
                e.name.clone(),
                e.secret,
                e.value.clone(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            (
                "branch:feat".into(),
                "REGION".into(),
                false,
                Some("us".into())
            ),
            ("production".into(), "API_KEY".into(), true, None),
            (
                "production".into(),
                "REGION".into(),
                false,
                Some("eu-west".into())
            ),
        ]
    );
    let production = env.list(&a.id, Some(&EnvScope::Production)).await.unwrap();
    assert_eq!(production.len(), 2);

    let removed = env
        .unset(
            &a.id,
            &EnvScope::Production,
            &["REGION".parse().unwrap(), "MISSING".parse().unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(removed, vec!["REGION".parse::<EnvKey>().unwrap()]);
    let left: Vec<String> = env
        .list(&a.id, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{}/{}", e.scope, e.name))
        .collect();
    assert_eq!(left, ["branch:feat/REGION", "production/API_KEY"]);

    // Removing the server removes its variables and secrets.
    store.servers().remove(&a.name).await.unwrap();
    let b = server(&store, "a").await;
    assert!(env.list(&b.id, None).await.unwrap().is_empty());
    assert_eq!(env.check_secrets().await.unwrap(), 0);
}

async fn a_snapshot_is_fixed_when_taken_and_secrets_open_for_the_deployment_only() {
    let store = store().await;
    let a = server(&store, "a").await;
    let env = store.env();
    env.set(
        &a.id,
        &EnvScope::Production,
        &[var("TOKEN", "secret-one", true), var("MODE", "fast", false)],
    )
    .await
    .unwrap();
    env.set(&a.id, &EnvScope::Preview, &[var("MODE", "preview", false)])
        .await
        .unwrap();
    let first = deployment(&store, &a).await;
    let names = env.snapshot(&first, &a.id, None).await.unwrap();
    assert_eq!(names, ["MODE", "TOKEN"]);

    env.set(
        &a.id,
        &EnvScope::Production,
        &[var("TOKEN", "secret-two", true)],
    )
    .await
    .unwrap();
    env.unset(&a.id, &EnvScope::Production, &["MODE".parse().unwrap()])
        .await
        .unwrap();
    assert_eq!(
        pairs(&env.of_deployment(&first).await.unwrap()),
        [("MODE", "fast", false), ("TOKEN", "secret-one", true)]
    );
    let second = deployment(&store, &a).await;
    env.snapshot(&second, &a.id, None).await.unwrap();
    assert_eq!(
        pairs(&env.of_deployment(&second).await.unwrap()),
        [("TOKEN", "secret-two", true)]
    );

    // A preview child takes its parent's preview scopes, not its own production scope.
    let child = server(&store, "a-feat-preview").await;
    let preview = deployment(&store, &child).await;
    let of = Preview {
        parent: a.id.clone(),
        branch: "feat".to_owned(),
    };
    env.snapshot(&preview, &child.id, Some(&of)).await.unwrap();
    assert_eq!(
        pairs(&env.of_deployment(&preview).await.unwrap()),
        [("MODE", "preview", false)]
    );

    // The live deployment's environment reaches its route (what the runtime starts).
    store
        .deployments()
        .succeed(
            &first,
            &Built {
                entrypoint: "main.py:mcp".into(),
                artifact: "h".into(),
                manifest: serde_json::Value::Null,
                launch: LaunchSpec {
                    program: "python".into(),
                    args: Vec::new(),
                    working_dir: "src".into(),
                    transport: Default::default(),
                },
                inspection: serde_json::Value::Null,
            },
        )
        .await
        .unwrap();
    store.deployments().promote(&first).await.unwrap();
    let route = store.deployments().route(&a.name).await.unwrap().unwrap();
    assert_eq!(
        pairs(&route.live.unwrap().env),
        [("MODE", "fast", false), ("TOKEN", "secret-one", true)]
    );
    let routes = store.deployments().routes().await.unwrap();
    let live = routes.iter().find(|r| r.name == a.name).unwrap();
    assert_eq!(live.live.as_ref().unwrap().env.len(), 2);
}

#[tokio::test]
async fn secrets_are_ciphertext_on_disk_and_need_their_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("skyport.db");
    let key = MasterKey::generate();
    let store = Store::open(&path)
        .await
        .unwrap()
        .with_master_key(key.clone());
    let a = server(&store, "a").await;
    let secret = "sk-do-not-store-me-7f3a9c";
    let plain = "plain-value-kept-as-text-41b2";
    store
        .env()
        .set(
            &a.id,
            &EnvScope::Production,
            &[var("API_KEY", secret, true), var("REGION", plain, false)],
        )
        .await
        .unwrap();
    let d = deployment(&store, &a).await;
    store.env().snapshot(&d, &a.id, None).await.unwrap();
    store.close().await;

    let bytes = database_bytes(&path);
    // The plain value is found, which shows the search would find the secret if it were there.
    assert!(contains(&bytes, plain));
    assert!(!contains(&bytes, secret));

    let reopened = Store::open(&path).await.unwrap().with_master_key(key);
    assert_eq!(reopened.env().check_secrets().await.unwrap(), 2);
    let opened = reopened.env().of_deployment(&d).await.unwrap();
    assert_eq!(opened[0].value, secret);
    assert!(!format!("{opened:?}").contains(secret));
    reopened.close().await;

    let wrong = Store::open(&path)
        .await
        .unwrap()
        .with_master_key(MasterKey::generate());
    let error = wrong.env().check_secrets().await.unwrap_err().to_string();
    assert!(
        error.contains("cannot decrypt the secret API_KEY") && error.contains("master.key"),
        "{error}"
    );
    assert!(wrong.env().of_deployment(&d).await.is_err());
    wrong.close().await;

    let keyless = Store::open(&path).await.unwrap();
    let error = keyless.env().check_secrets().await.unwrap_err().to_string();
    assert!(error.contains("master key"), "{error}");
}

#[test]
fn the_master_key_file_is_created_private_and_checked() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (created, source) = MasterKey::load_or_create(None, dir.path()).unwrap();
    let file = dir.path().join(MASTER_KEY_FILE);
    assert_eq!(source, KeySource::Created(file.clone()));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (loaded, source) = MasterKey::load_or_create(None, dir.path()).unwrap();
    assert_eq!(source, KeySource::File(file.clone()));
    // The same key: what one sealed, the other opens.
    let sealed = crate::secrets::seal(&created, "A", "value").unwrap();
    assert_eq!(
        crate::secrets::open(&loaded, "A", &sealed).as_deref(),
        Some("value")
    );
    assert_eq!(crate::secrets::open(&loaded, "B", &sealed), None);
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(!format!("{loaded:?}").contains(written.trim()));

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = MasterKey::load_or_create(None, dir.path()).unwrap_err();
    assert!(error.to_string().contains("chmod 600"), "{error}");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&file, "too short\n").unwrap();
    let error = MasterKey::load_or_create(None, dir.path()).unwrap_err();
    assert!(error.to_string().contains("64 hex digits"), "{error}");

    let hex_key = "ab".repeat(32);
    let (_, source) = MasterKey::load_or_create(Some(&hex_key), dir.path()).unwrap();
    assert_eq!(source, KeySource::Variable);
    assert!(MasterKey::load_or_create(Some("nope"), dir.path()).is_err());
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
    assert!(MasterKey::parse(&b64, "test").is_ok());
}

crate::testdb::on_both_databases!(
    variables_are_set_listed_and_unset_per_scope_and_secrets_are_not_listed,
    a_snapshot_is_fixed_when_taken_and_secrets_open_for_the_deployment_only,
);
