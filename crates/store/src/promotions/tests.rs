//! Choosing a rollback's deployment, its refusals, and the record of promotions, against a real
//! (in-memory) SQLite database.

use std::path::PathBuf;

use crate::*;

struct Fixture {
    store: Store,
    server: Server,
}

impl Fixture {
    async fn new() -> Fixture {
        let store = crate::testdb::store().await.unwrap();
        let (server, _) = store
            .servers()
            .ensure(&"api".parse().unwrap(), None)
            .await
            .unwrap();
        Fixture { store, server }
    }

    async fn create(&self, by: Option<&PrincipalId>) -> Deployment {
        let new = NewDeployment {
            source: "upload".to_owned(),
            created_by: by.cloned(),
            ..NewDeployment::default()
        };
        self.store
            .deployments()
            .create(&self.server.id, &new)
            .await
            .unwrap()
    }

    /// A ready deployment with its own artifact, named `artifact`.
    async fn ready(&self, artifact: &str) -> Deployment {
        self.ready_by(artifact, None).await
    }

    /// Like [`Fixture::ready`], created by `by`.
    async fn ready_by(&self, artifact: &str, by: Option<&PrincipalId>) -> Deployment {
        let d = self.create(by).await;
        let built = Built {
            artifact: artifact.to_owned(),
            manifest: serde_json::json!({ "hash": artifact }),
            entrypoint: "main.py:mcp".to_owned(),
            launch: LaunchSpec {
                program: PathBuf::from("python"),
                args: Vec::new(),
                working_dir: PathBuf::from("src"),
                transport: Default::default(),
            },
            inspection: serde_json::json!({}),
        };
        self.store
            .deployments()
            .succeed(&d.id, &built)
            .await
            .unwrap();
        d
    }

    async fn failed(&self, kind: FailureKind) -> Deployment {
        let d = self.create(None).await;
        let failure = BuildFailure {
            kind,
            message: "it broke".to_owned(),
        };
        self.store
            .deployments()
            .fail(&d.id, &failure)
            .await
            .unwrap();
        d
    }

    /// The server as stored now (its live pointer moves).
    async fn server(&self) -> Server {
        self.store
            .servers()
            .get(&self.server.name)
            .await
            .unwrap()
            .unwrap()
    }

    async fn target(&self, chosen: Option<&str>) -> Result<DeploymentId, RollbackRefusal> {
        self.store
            .deployments()
            .rollback_target(&self.server().await, chosen)
            .await
            .unwrap()
            .map(|d| d.id)
    }
}

async fn without_a_choice_the_newest_ready_deployment_older_than_the_live_one_is_chosen() {
    let f = Fixture::new().await;
    assert!(matches!(
        f.target(None).await,
        Err(RollbackRefusal::NothingLive { .. })
    ));
    let v1 = f.ready("a1").await;
    let v2 = f.ready("a2").await;
    f.failed(FailureKind::Entrypoint).await;
    let v3 = f.ready("a3").await;
    let _newer_than_live = f.ready("a4").await;
    f.store.deployments().promote(&v3.id).await.unwrap();

    // The failed build between v2 and v3 is skipped; v4, newer than the live one, is not a
    // rollback.
    assert_eq!(f.target(None).await, Ok(v2.id.clone()));

    // v2's artifact is collected: the next older one with an artifact is chosen.
    let kept = vec!["a1".to_owned(), "a3".to_owned(), "a4".to_owned()];
    f.store.deployments().prune_artifacts(&kept).await.unwrap();
    assert_eq!(f.target(None).await, Ok(v1.id.clone()));

    f.store.deployments().promote(&v1.id).await.unwrap();
    let refused = f.target(None).await.unwrap_err();
    assert!(matches!(refused, RollbackRefusal::NoEarlier { .. }));
    assert!(refused.to_string().contains("skyport deployments api"));
}

async fn a_chosen_deployment_is_found_by_id_or_unique_prefix() {
    let f = Fixture::new().await;
    let v1 = f.ready("a1").await;
    let v2 = f.ready("a2").await;
    f.store.deployments().promote(&v2.id).await.unwrap();

    assert_eq!(f.target(Some(v1.id.as_str())).await, Ok(v1.id.clone()));
    let without_prefix = &v1.id.as_str()["dep_".len()..];
    assert_eq!(f.target(Some(without_prefix)).await, Ok(v1.id.clone()));
    // Both ids were made within the same second: their first characters are the same.
    let shared = &v1.id.as_str()[..8];
    match f.target(Some(shared)).await {
        Err(RollbackRefusal::Ambiguous { matches, .. }) => assert_eq!(matches.len(), 2),
        other => panic!("{shared} matched {other:?}"),
    }
    for unknown in ["", "dep_zzzz", "nope"] {
        assert!(
            matches!(
                f.target(Some(unknown)).await,
                Err(RollbackRefusal::Unknown { .. })
            ),
            "{unknown:?}"
        );
    }
}

async fn deployments_that_cannot_serve_are_refused_with_what_to_do() {
    let f = Fixture::new().await;
    let live = f.ready("a1").await;
    f.store.deployments().promote(&live.id).await.unwrap();
    let failed = f.failed(FailureKind::Dependencies).await;
    let cancelled = f.failed(FailureKind::Cancelled).await;
    let queued = f.create(None).await;
    let pruned = f.ready("gone").await;
    f.store
        .deployments()
        .prune_artifacts(&["a1".to_owned()])
        .await
        .unwrap();
    let (other, _) = f
        .store
        .servers()
        .ensure(&"other".parse().unwrap(), None)
        .await
        .unwrap();
    let foreign = f
        .store
        .deployments()
        .create(&other.id, &NewDeployment::default())
        .await
        .unwrap();

    let mut messages = Vec::new();
    for id in [
        &failed.id,
        &cancelled.id,
        &queued.id,
        &pruned.id,
        &live.id,
        &foreign.id,
    ] {
        messages.push(f.target(Some(id.as_str())).await.unwrap_err().to_string());
    }
    let expected = [
        "failed to build (dependencies)",
        "was cancelled before it was built",
        "still being built (queued)",
        "redeploy its source instead",
        "already live on 'api'",
        "belongs to server 'other'",
    ];
    for (message, expected) in messages.iter().zip(expected) {
        assert!(message.contains(expected), "{message:?} lacks {expected:?}");
    }
    // A pruned deployment cannot be made live by any path.
    let err = f.store.deployments().promote(&pruned.id).await.unwrap_err();
    assert!(err.to_string().contains("was removed"), "{err}");
}

async fn promotions_are_recorded_with_their_kind_and_who() {
    let f = Fixture::new().await;
    let admin = f.store.keys().ensure_admin().await.unwrap();
    let v1 = f.ready_by("a1", Some(&admin.id)).await;
    f.store.deployments().promote(&v1.id).await.unwrap();
    let v2 = f.ready("a2").await;
    f.store.deployments().promote(&v2.id).await.unwrap();
    let mut changes = f.store.subscribe();
    let previous = f
        .store
        .deployments()
        .roll_back_to(&v1.id, &admin.id)
        .await
        .unwrap();
    assert_eq!(previous, Some(v2.id.clone()));
    assert!(matches!(
        changes.recv().await.unwrap(),
        Change::Promoted { live, .. } if live == v1.id
    ));
    assert_eq!(f.server().await.live_deployment, Some(v1.id.clone()));

    let stored = f.store.deployments().get(&v1.id).await.unwrap().unwrap();
    let admin_actor = Actor {
        id: admin.id.clone(),
        name: Some("admin".to_owned()),
    };
    assert_eq!(stored.created_by, Some(admin_actor.clone()));

    let promotions = f
        .store
        .deployments()
        .promotions(&f.server.id)
        .await
        .unwrap();
    let seen: Vec<_> = promotions
        .iter()
        .map(|p| {
            (
                p.kind,
                p.deployment.clone(),
                p.previous.clone(),
                p.by.clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                PromotionKind::Rollback,
                v1.id.clone(),
                Some(v2.id.clone()),
                Some(admin_actor.clone())
            ),
            // v2 was created by nobody (a push, say): its deploy is credited to nobody.
            (
                PromotionKind::Deploy,
                v2.id.clone(),
                Some(v1.id.clone()),
                None
            ),
            (
                PromotionKind::Deploy,
                v1.id.clone(),
                None,
                Some(admin_actor)
            ),
        ]
    );
}

crate::testdb::on_both_databases!(
    without_a_choice_the_newest_ready_deployment_older_than_the_live_one_is_chosen,
    a_chosen_deployment_is_found_by_id_or_unique_prefix,
    deployments_that_cannot_serve_are_refused_with_what_to_do,
    promotions_are_recorded_with_their_kind_and_who,
);
