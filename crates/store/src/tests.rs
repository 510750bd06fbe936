//! The repositories against a real SQLite database (in memory or in a temporary file).

use std::path::PathBuf;
use std::time::Duration;

use crate::*;

async fn store() -> Store {
    crate::testdb::store().await.unwrap()
}

fn name(s: &str) -> ServerName {
    s.parse().unwrap()
}

fn launch() -> LaunchSpec {
    LaunchSpec {
        program: PathBuf::from("envs/abc/bin/python"),
        args: vec!["launcher.py".into(), "serve".into()],
        working_dir: PathBuf::from("artifacts/x/src"),
        transport: Default::default(),
    }
}

fn built() -> Built {
    Built {
        artifact: "a1b2".to_owned(),
        manifest: serde_json::json!({"hash": "a1b2"}),
        entrypoint: "main.py:mcp".into(),
        launch: launch(),
        inspection: serde_json::json!({"tools": ["hello"]}),
    }
}

async fn ready_deployment(store: &Store, server: &Server) -> Deployment {
    let d = store
        .deployments()
        .create(&server.id, &upload("upload", None))
        .await
        .unwrap();
    store.deployments().succeed(&d.id, &built()).await.unwrap();
    d
}

#[test]
fn server_names_follow_dns_label_rules() {
    for ok in ["a", "hello", "weather-2", "0x", &"a".repeat(63), "a--b"] {
        assert!(ok.parse::<ServerName>().is_ok(), "{ok} should be valid");
    }
    let errors: Vec<String> = [
        "",
        "Bad_Name!",
        "-a",
        "a-",
        "a--b--c",
        &"a".repeat(64),
        "ünï",
    ]
    .iter()
    .map(|s| s.parse::<ServerName>().unwrap_err().to_string())
    .collect();
    insta::assert_snapshot!(errors.join("\n"));
}

#[test]
fn ids_are_prefixed_and_checked() {
    let id = DeploymentId::generate();
    assert!(id.as_str().starts_with("dep_"));
    assert_eq!(id.as_str().parse::<DeploymentId>().unwrap(), id);
    assert!(id.as_str().parse::<ServerId>().is_err());
    assert!("dep_../../etc".parse::<DeploymentId>().is_err());
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(serde_json::from_str::<DeploymentId>(&json).unwrap(), id);
    assert!(serde_json::from_str::<DeploymentId>("\"nope\"").is_err());
}

async fn ensure_creates_once_and_updates_the_description() {
    let store = store().await;
    let (a, created) = store.servers().ensure(&name("a"), None).await.unwrap();
    assert!(created);
    let (again, created) = store
        .servers()
        .ensure(&name("a"), Some("demo"))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.id, a.id);
    assert_eq!(again.description, "demo");
    let (kept, _) = store.servers().ensure(&name("a"), None).await.unwrap();
    assert_eq!(kept.description, "demo");
    assert_eq!(store.servers().list().await.unwrap().len(), 1);
}

async fn a_build_goes_from_queued_to_ready_or_failed() {
    let store = store().await;
    let (server, _) = store.servers().ensure(&name("a"), None).await.unwrap();
    let d = store
        .deployments()
        .create(&server.id, &upload("upload (3 files)", Some("main.py")))
        .await
        .unwrap();
    assert_eq!(d.status, DeploymentStatus::Queued);
    assert_eq!(d.requested_entrypoint.as_deref(), Some("main.py"));

    store
        .deployments()
        .enter_phase(&d.id, BuildPhase::Install)
        .await
        .unwrap();
    let d = store.deployments().get(&d.id).await.unwrap().unwrap();
    assert_eq!(
        (d.status, d.phase),
        (DeploymentStatus::Building, Some(BuildPhase::Install))
    );
    assert!(d.started_at.is_some());

    store.deployments().succeed(&d.id, &built()).await.unwrap();
    let d = store.deployments().get(&d.id).await.unwrap().unwrap();
    assert_eq!(d.status, DeploymentStatus::Ready);
    assert_eq!(d.built, Some(built()));

    let f = store
        .deployments()
        .create(&server.id, &upload("upload", None))
        .await
        .unwrap();
    let failure = BuildFailure {
        kind: FailureKind::Entrypoint,
        message: "main.py:3: invalid syntax".into(),
    };
    store.deployments().fail(&f.id, &failure).await.unwrap();
    let f = store.deployments().get(&f.id).await.unwrap().unwrap();
    assert_eq!(
        (f.status, f.failure),
        (DeploymentStatus::Failed, Some(failure))
    );

    let listed = store.deployments().list(&server.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|d| &d.id).collect::<Vec<_>>(),
        vec![&f.id, &d.id]
    );
}

async fn promotion_moves_the_live_pointer_and_announces_it() {
    let store = store().await;
    let mut changes = store.subscribe();
    let (server, _) = store.servers().ensure(&name("a"), None).await.unwrap();
    let first = ready_deployment(&store, &server).await;
    assert_eq!(store.deployments().promote(&first.id).await.unwrap(), None);
    let second = ready_deployment(&store, &server).await;
    assert_eq!(
        store.deployments().promote(&second.id).await.unwrap(),
        Some(first.id.clone())
    );

    assert_eq!(
        changes.recv().await.unwrap(),
        Change::Promoted {
            server: name("a"),
            live: first.id.clone(),
            previous: None
        }
    );
    assert_eq!(
        changes.recv().await.unwrap(),
        Change::Promoted {
            server: name("a"),
            live: second.id.clone(),
            previous: Some(first.id.clone())
        }
    );
    let route = store
        .deployments()
        .route(&name("a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        route.live,
        Some(LiveDeployment {
            id: second.id.clone(),
            launch: launch(),
            env: Vec::new().into(),
        })
    );
    assert_eq!(store.deployments().routes().await.unwrap(), vec![route]);
}

async fn only_ready_deployments_are_promoted_and_live_ones_are_kept() {
    let store = store().await;
    let (server, _) = store.servers().ensure(&name("a"), None).await.unwrap();
    let queued = store
        .deployments()
        .create(&server.id, &upload("upload", None))
        .await
        .unwrap();
    let err = store.deployments().promote(&queued.id).await.unwrap_err();
    assert!(err.to_string().contains("only a ready deployment"), "{err}");
    assert!(
        store
            .servers()
            .get(&name("a"))
            .await
            .unwrap()
            .unwrap()
            .live_deployment
            .is_none()
    );

    let live = ready_deployment(&store, &server).await;
    store.deployments().promote(&live.id).await.unwrap();
    let err = store.deployments().remove(&live.id).await.unwrap_err();
    assert!(err.to_string().contains("is live"), "{err}");
    let err = store.deployments().remove(&queued.id).await.unwrap_err();
    assert!(err.to_string().contains("still building"), "{err}");
    let old = ready_deployment(&store, &server).await;
    assert!(store.deployments().remove(&old.id).await.unwrap());
    assert!(!store.deployments().remove(&old.id).await.unwrap());
}

async fn interrupted_builds_are_failed_on_start() {
    let store = store().await;
    let (server, _) = store.servers().ensure(&name("a"), None).await.unwrap();
    let d = store
        .deployments()
        .create(&server.id, &upload("upload", None))
        .await
        .unwrap();
    store
        .deployments()
        .enter_phase(&d.id, BuildPhase::Inspect)
        .await
        .unwrap();
    ready_deployment(&store, &server).await;
    assert_eq!(store.deployments().fail_interrupted().await.unwrap(), 1);
    let d = store.deployments().get(&d.id).await.unwrap().unwrap();
    assert_eq!(d.status, DeploymentStatus::Failed);
    assert_eq!(d.phase, Some(BuildPhase::Inspect));
    assert_eq!(d.failure.unwrap().kind, FailureKind::Interrupted);
}

async fn removing_a_server_removes_its_deployments_and_logs() {
    let store = store().await;
    let mut changes = store.subscribe();
    let (server, _) = store.servers().ensure(&name("a"), None).await.unwrap();
    let d = ready_deployment(&store, &server).await;
    store.deployments().promote(&d.id).await.unwrap();
    let writer = store.logs().writer();
    writer.write(line(&server.id, "hello"));
    writer.flush().await;

    let removed = store.servers().remove(&name("a")).await.unwrap().unwrap();
    assert_eq!(removed.id, server.id);
    assert!(store.servers().remove(&name("a")).await.unwrap().is_none());
    assert!(store.deployments().get(&d.id).await.unwrap().is_none());
    let all = LogQuery {
        server_id: Some(server.id.clone()),
        ..LogQuery::default()
    };
    assert!(store.logs().tail(&all, 10).await.unwrap().is_empty());
    changes.recv().await.unwrap();
    assert_eq!(
        changes.recv().await.unwrap(),
        Change::ServerRemoved {
            server: name("a"),
            previous: Some(d.id)
        }
    );
}

fn upload(source: &str, entrypoint: Option<&str>) -> NewDeployment {
    NewDeployment {
        source: source.to_owned(),
        git_ref: None,
        entrypoint: entrypoint.map(str::to_owned),
        created_by: None,
    }
}

fn line(server: &ServerId, text: &str) -> NewLogLine {
    NewLogLine {
        server_id: server.clone(),
        deployment_id: None,
        instance_id: None,
        source: LogSource::Instance,
        stream: LogStream::Stdout,
        phase: None,
        at: Timestamp::now(),
        line: text.into(),
    }
}

async fn logs_are_written_in_order_and_read_by_cursor() {
    let store = store().await;
    let (a, _) = store.servers().ensure(&name("a"), None).await.unwrap();
    let (b, _) = store.servers().ensure(&name("b"), None).await.unwrap();
    let writer = store.logs().writer();
    for i in 0..5 {
        writer.write(line(&a.id, &format!("a{i}")));
        writer.write(line(&b.id, &format!("b{i}")));
    }
    writer.write(line(&a.id, &"x".repeat(20_000)));
    writer.flush().await;

    let only_a = LogQuery {
        server_id: Some(a.id.clone()),
        ..LogQuery::default()
    };
    let tail = store.logs().tail(&only_a, 3).await.unwrap();
    let texts: Vec<&str> = tail.iter().map(|l| &l.line.line[..2]).collect();
    assert_eq!(texts, ["a3", "a4", "xx"]);
    assert!(tail[2].line.line.len() < 9000 && tail[2].line.line.ends_with("[truncated]"));

    let after = store.logs().after(&only_a, tail[0].id, 10).await.unwrap();
    assert_eq!(after.len(), 2);
    let builds = LogQuery {
        source: Some(LogSource::Build),
        ..only_a
    };
    assert!(store.logs().tail(&builds, 10).await.unwrap().is_empty());
}

async fn an_instances_output_end_is_its_last_lines_time_and_count() {
    let store = store().await;
    let (a, _) = store.servers().ensure(&name("a"), None).await.unwrap();
    let deployment = DeploymentId::generate();
    let instance = InstanceId::generate();
    let end = async || {
        store
            .logs()
            .output_end(&deployment, &instance)
            .await
            .unwrap()
    };
    assert_eq!(end().await, None);
    // Recent times: older lines would be pruned as past their retention age.
    let base = Timestamp::now().as_millisecond();
    let at = |ms: i64| Timestamp::from_millisecond(base + ms).unwrap();
    let writer = store.logs().writer();
    let of_instance = |ms: i64, stream: LogStream, text: &str| NewLogLine {
        deployment_id: Some(deployment.clone()),
        instance_id: Some(instance.clone()),
        stream,
        at: at(ms),
        ..line(&a.id, text)
    };
    writer.write(of_instance(1_000, LogStream::Stdout, "first"));
    writer.write(of_instance(2_000, LogStream::Stdout, "second"));
    writer.write(of_instance(2_000, LogStream::Stderr, "also second"));
    // Skyport's own lines about the instance are not its output.
    writer.write(of_instance(3_000, LogStream::Skyport, "stopped"));
    // Another instance's lines are not either.
    writer.write(NewLogLine {
        instance_id: Some(InstanceId::generate()),
        ..of_instance(4_000, LogStream::Stdout, "other")
    });
    writer.flush().await;
    assert_eq!(
        end().await,
        Some(OutputEnd {
            at: at(2_000),
            lines: 2
        })
    );
}

async fn followers_are_woken_by_new_lines() {
    let store = store().await;
    let (a, _) = store.servers().ensure(&name("a"), None).await.unwrap();
    let logs = store.logs();
    let appended = logs.appended();
    store.logs().writer().write(line(&a.id, "late"));
    tokio::time::timeout(std::time::Duration::from_secs(5), appended)
        .await
        .expect("no wake-up after a line was appended");
}

#[tokio::test]
async fn a_file_database_keeps_data_across_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("skyport.db");
    let store = Store::open(&path).await.unwrap();
    store.servers().ensure(&name("kept"), None).await.unwrap();
    store.close().await;
    let reopened = Store::open(&path).await.unwrap();
    assert!(
        reopened
            .servers()
            .get(&name("kept"))
            .await
            .unwrap()
            .is_some()
    );
}

/// A transaction that reads and then writes used to fail at once with "database is locked"
/// when another connection wrote in between; writers now take the lock first and wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_that_read_then_write_wait_for_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("skyport.db")).await.unwrap();
    let churn = |prefix: &'static str| {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                let name = format!("{prefix}-{i}");
                let new = NewPrincipal {
                    name: &name,
                    email: None,
                    kind: PrincipalKind::Service,
                    is_admin: false,
                };
                store.users().create(&new, None).await?;
                store.users().remove(&name).await?;
            }
            Ok::<_, AccountError>(())
        })
    };
    let tasks = [churn("a"), churn("b"), churn("c"), churn("d")];
    for task in tasks {
        task.await.unwrap().unwrap();
    }
}

async fn commits_and_artifacts_are_recorded_and_old_artifacts_pruned() {
    let store = store().await;
    let (server, _) = store.servers().ensure(&name("gc"), None).await.unwrap();
    let git = NewDeployment {
        source: "https://example.com/acme/gc.git".to_owned(),
        git_ref: Some("main".to_owned()),
        entrypoint: None,
        created_by: None,
    };
    let mut ids = Vec::new();
    for n in 0..4 {
        let d = store.deployments().create(&server.id, &git).await.unwrap();
        let commit = Commit {
            sha: format!("{n:040}"),
            author: "A <a@example.com>".to_owned(),
            message: format!("change {n}"),
            committed_at: Timestamp::from_second(1_700_000_000 + n).unwrap(),
        };
        store
            .deployments()
            .record_commit(&d.id, &commit)
            .await
            .unwrap();
        let built = Built {
            artifact: format!("a{n}"),
            ..built()
        };
        store.deployments().succeed(&d.id, &built).await.unwrap();
        ids.push(d.id);
    }
    // The oldest one is live: it is kept although it is not among the newest two.
    store.deployments().promote(&ids[0]).await.unwrap();
    let d = store.deployments().get(&ids[1]).await.unwrap().unwrap();
    assert_eq!(d.git_ref.as_deref(), Some("main"));
    assert_eq!(
        d.commit.as_ref().map(|c| c.message.as_str()),
        Some("change 1")
    );
    assert_eq!(d.built.as_ref().map(|b| b.artifact.as_str()), Some("a1"));

    let mut kept = store.deployments().retained_artifacts(2).await.unwrap();
    kept.sort();
    assert_eq!(kept, ["a0", "a2", "a3"]);
    let pruned = store.deployments().prune_artifacts(&kept).await.unwrap();
    assert_eq!(pruned, ["a1"]);
    let d = store.deployments().get(&ids[1]).await.unwrap().unwrap();
    assert!(d.pruned_at.is_some());
    // Pruned deployments no longer count, and nothing is pruned twice.
    assert!(
        store
            .deployments()
            .prune_artifacts(&kept)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn build_log_lines_keep_their_phase() {
    let store = store().await;
    let (server, _) = store.servers().ensure(&name("phases"), None).await.unwrap();
    let writer = store.logs().writer();
    writer.write(NewLogLine {
        phase: Some(BuildPhase::Install),
        source: LogSource::Build,
        ..line(&server.id, "installing")
    });
    writer.flush().await;
    let lines = store.logs().tail(&LogQuery::default(), 10).await.unwrap();
    assert_eq!(lines[0].line.phase, Some(BuildPhase::Install));
}

async fn settings_default_patch_validate_and_reach_routes() {
    let store = store().await;
    let (server, _) = store.servers().ensure(&name("a"), None).await.unwrap();
    assert_eq!(server.settings, RuntimeSettings::default());
    let mut changes = store.subscribe();
    let patch = SettingsPatch {
        memory_bytes: Some(512 * 1024 * 1024),
        idle_timeout: Some(std::time::Duration::from_secs(2)),
        min_instances: Some(1),
        ..SettingsPatch::default()
    };
    let updated = store
        .servers()
        .set_settings(&name("a"), &patch)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(updated.settings.memory_bytes, 512 * 1024 * 1024);
    assert_eq!(updated.settings.max_instances, 4);
    assert_eq!(
        changes.recv().await.unwrap(),
        Change::SettingsChanged { server: name("a") }
    );
    let route = store
        .deployments()
        .route(&name("a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(route.settings, updated.settings);

    let refused = SettingsPatch {
        min_instances: Some(9),
        ..SettingsPatch::default()
    };
    let error = store
        .servers()
        .set_settings(&name("a"), &refused)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(error.to_string().contains("--min-instances"), "{error}");
    let kept = store.servers().get(&name("a")).await.unwrap().unwrap();
    assert_eq!(kept.settings, updated.settings);
    assert!(
        store
            .servers()
            .set_settings(&name("nope"), &patch)
            .await
            .unwrap()
            .is_none()
    );
}

async fn logs_are_read_since_a_time_and_pruned_by_age() {
    let store = store().await;
    let (a, _) = store.servers().ensure(&name("a"), None).await.unwrap();
    let writer = store.logs().writer();
    let now = Timestamp::now();
    let old = NewLogLine {
        at: now - std::time::Duration::from_secs(8 * 24 * 3600),
        ..line(&a.id, "old")
    };
    let recent = NewLogLine {
        at: now - std::time::Duration::from_secs(60),
        ..line(&a.id, "recent")
    };
    writer.write(old);
    writer.write(recent);
    writer.write(line(&a.id, "now"));
    writer.flush().await;
    let since = LogQuery {
        since: Some(now - std::time::Duration::from_secs(600)),
        ..LogQuery::default()
    };
    let texts: Vec<String> = store
        .logs()
        .tail(&since, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.line.line)
        .collect();
    assert_eq!(texts, ["recent", "now"]);
    // The first batch of a writer prunes lines past the retention age.
    let all = store.logs().tail(&LogQuery::default(), 10).await.unwrap();
    assert!(all.iter().all(|l| l.line.line != "old"), "{all:?}");
}

async fn gateway_settings_follow_the_platform_until_set_and_reach_routes() {
    let store = store().await;
    let (server, _) = store.servers().ensure(&name("a"), None).await.unwrap();
    assert_eq!(server.gateway, GatewaySettings::default());
    let patch = SettingsPatch {
        auth: Some(Some(true)),
        request_timeout: Some(Some(std::time::Duration::from_secs(30))),
        ..SettingsPatch::default()
    };
    let set = |patch: SettingsPatch| {
        let store = store.clone();
        async move {
            store
                .servers()
                .set_settings(&name("a"), &patch)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let updated = set(patch).await.unwrap();
    assert_eq!(updated.gateway.auth, Some(true));
    assert_eq!(updated.settings, RuntimeSettings::default());
    let route = store
        .deployments()
        .route(&name("a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(route.gateway, updated.gateway);
    let listed = store.deployments().routes().await.unwrap();
    assert_eq!(listed[0].gateway, updated.gateway);

    // Leaving a field out keeps it; `Some(None)` returns to the platform's default.
    let reset = SettingsPatch {
        auth: Some(None),
        ..SettingsPatch::default()
    };
    let updated = set(reset).await.unwrap();
    assert_eq!(updated.gateway.auth, None);
    assert_eq!(
        updated.gateway.request_timeout,
        Some(std::time::Duration::from_secs(30))
    );

    for bad in [
        std::time::Duration::from_millis(500),
        MAX_REQUEST_TIMEOUT * 2,
    ] {
        let refused = SettingsPatch {
            request_timeout: Some(Some(bad)),
            ..SettingsPatch::default()
        };
        let error = set(refused).await.unwrap_err();
        assert!(error.to_string().contains("--request-timeout"), "{error}");
    }
    let kept = store.servers().get(&name("a")).await.unwrap().unwrap();
    assert_eq!(kept.gateway, updated.gateway);
}

/// Everything SQLite wrote for the database at `path`: the file and its write-ahead log.
pub(crate) fn database_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    let wal = path.with_extension("db-wal");
    if let Ok(more) = std::fs::read(wal) {
        bytes.extend(more);
    }
    bytes
}

/// Whether `needle` is somewhere in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

crate::testdb::on_both_databases!(
    ensure_creates_once_and_updates_the_description,
    a_build_goes_from_queued_to_ready_or_failed,
    promotion_moves_the_live_pointer_and_announces_it,
    only_ready_deployments_are_promoted_and_live_ones_are_kept,
    interrupted_builds_are_failed_on_start,
    removing_a_server_removes_its_deployments_and_logs,
    logs_are_written_in_order_and_read_by_cursor,
    an_instances_output_end_is_its_last_lines_time_and_count,
    followers_are_woken_by_new_lines,
    commits_and_artifacts_are_recorded_and_old_artifacts_pruned,
    build_log_lines_keep_their_phase,
    settings_default_patch_validate_and_reach_routes,
    logs_are_read_since_a_time_and_pruned_by_age,
    gateway_settings_follow_the_platform_until_set_and_reach_routes,
);

/// Replicas on one PostgreSQL database: what one publishes reaches the other's feed, in
/// order, and a store does not hear its own changes twice.
#[tokio::test]
async fn changes_cross_to_other_stores_on_the_same_postgres_database() {
    crate::testdb::on_postgres(async {
        let (a, b) = crate::testdb::replicas().await;
        let mut on_a = a.subscribe();
        let mut on_b = b.subscribe();
        let (server, _) = a.servers().ensure(&name("hello"), None).await.unwrap();
        let d = ready_deployment(&a, &server).await;
        a.deployments().promote(&d.id).await.unwrap();
        let admin = a.keys().ensure_admin().await.unwrap();
        let (key, _) = a.keys().create(&admin.id, "ci", None).await.unwrap();
        a.keys().revoke(&key.id).await.unwrap();

        // The publishing store's own feed has each change once, as it was made.
        let mut own = Vec::new();
        while let Ok(change) = on_a.try_recv() {
            own.push(change);
        }
        assert!(
            own.contains(&Change::Promoted {
                server: name("hello"),
                live: d.id.clone(),
                previous: None
            }),
            "{own:?}"
        );
        assert_eq!(own.last(), Some(&Change::Keys), "{own:?}");

        let mut heard = Vec::new();
        while heard.len() < own.len() {
            let change = tokio::time::timeout(Duration::from_secs(10), on_b.recv())
                .await
                .expect("the other store heard nothing within 10 s")
                .unwrap();
            heard.push(change);
        }
        assert_eq!(heard, own);
    })
    .await;
}

/// Work claimed by one replica is not claimed by another until the holder lets go.
#[tokio::test]
async fn a_claim_is_held_by_one_store_at_a_time() {
    crate::testdb::on_postgres(async {
        let (a, b) = crate::testdb::replicas().await;
        let mut on_a = a.claim("pollers");
        let mut on_b = b.claim("pollers");
        assert!(on_a.held().await);
        assert!(!on_b.held().await);
        assert!(on_a.held().await, "the holder keeps its claim");
        let mut other_work = b.claim("previews");
        assert!(other_work.held().await, "claims on other work are separate");
        drop(on_a);
        let mut taken = false;
        for _ in 0..100 {
            if on_b.held().await {
                taken = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(taken, "the claim was not free after its holder let go");
    })
    .await;
}

#[tokio::test]
async fn on_sqlite_every_claim_is_held() {
    let store = store().await;
    assert!(store.claim("pollers").held().await);
    assert!(store.claim("pollers").held().await);
}

/// A replica starting next to a running one leaves that one's builds alone; once the other
/// is gone, its unfinished builds are marked failed.
#[tokio::test]
async fn interrupted_builds_are_failed_only_when_no_other_replica_runs() {
    crate::testdb::on_postgres(async {
        let (a, b) = crate::testdb::replicas().await;
        let (server, _) = a.servers().ensure(&name("app"), None).await.unwrap();
        let queued = a
            .deployments()
            .create(&server.id, &upload("upload", None))
            .await
            .unwrap();
        assert_eq!(b.deployments().fail_interrupted().await.unwrap(), 0);
        a.close().await;
        drop(a);
        let mut failed = 0;
        for _ in 0..100 {
            failed = b.deployments().fail_interrupted().await.unwrap();
            if failed > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            failed, 1,
            "the departed replica's build was not marked failed"
        );
        let d = b.deployments().get(&queued.id).await.unwrap().unwrap();
        assert_eq!(d.status, DeploymentStatus::Failed);
    })
    .await;
}

/// A replica's unfinished builds are named by it while it is connected and reported as
/// departed once it is not; failing them leaves other replicas' builds alone.
#[tokio::test]
async fn builds_of_a_departed_replica_are_found_and_failed_alone() {
    crate::testdb::on_postgres(async {
        let (a, b) = crate::testdb::replicas().await;
        let (server, _) = a.servers().ensure(&name("app"), None).await.unwrap();
        let of_a = a
            .deployments()
            .create(&server.id, &upload("upload", None))
            .await
            .unwrap();
        let of_b = b
            .deployments()
            .create(&server.id, &upload("upload", None))
            .await
            .unwrap();
        assert_eq!(b.deployments().departed_builders().await.unwrap(), vec![]);
        a.close().await;
        drop(a);
        let mut departed = Vec::new();
        for _ in 0..100 {
            departed = b.deployments().departed_builders().await.unwrap();
            if !departed.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(departed.len(), 1, "the departed replica was not found");
        assert_eq!(
            b.deployments().fail_builds_of(&departed[0]).await.unwrap(),
            1
        );
        let failed = b.deployments().get(&of_a.id).await.unwrap().unwrap();
        assert_eq!(failed.status, DeploymentStatus::Failed);
        let message = failed.failure.unwrap().message;
        assert!(message.contains("replica"), "{message}");
        let kept = b.deployments().get(&of_b.id).await.unwrap().unwrap();
        assert_eq!(kept.status, DeploymentStatus::Queued);
        assert_eq!(b.deployments().departed_builders().await.unwrap(), vec![]);
    })
    .await;
}

#[tokio::test]
async fn on_sqlite_no_builder_departs() {
    let store = store().await;
    let (server, _) = store.servers().ensure(&name("app"), None).await.unwrap();
    store
        .deployments()
        .create(&server.id, &upload("upload", None))
        .await
        .unwrap();
    assert_eq!(
        store.deployments().departed_builders().await.unwrap(),
        vec![]
    );
}
