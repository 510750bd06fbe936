//! Rollbacks through the warm-up hook, against a real (in-memory) store: the hook sees the
//! candidate before the switch, and a failed warm-up changes nothing that serves.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use skyport_store::{
    Built, Deployment, DeploymentId, LaunchSpec, NewDeployment, PromotionKind, Server, Store,
};

use crate::{BuildLimits, Builder, Candidate, RollbackError, Warmed, Warmup};

/// One warm-up asked of the hook: the candidate, what was live then, the candidate's launch args.
type Asked = (DeploymentId, Option<DeploymentId>, Vec<String>);

/// A hook that records what it was asked to ready, and what was live at that moment.
struct Recorder {
    store: Store,
    fail_with: Option<String>,
    seen: Mutex<Vec<Asked>>,
}

impl Warmup for Recorder {
    fn warm_up<'a>(&'a self, candidate: Candidate<'a>) -> BoxFuture<'a, Result<Warmed, String>> {
        Box::pin(async move {
            let server = self.store.servers().by_id(candidate.server).await;
            let live = server.ok().flatten().and_then(|s| s.live_deployment);
            self.seen.lock().unwrap().push((
                candidate.deployment.clone(),
                live,
                candidate.launch.args.clone(),
            ));
            match &self.fail_with {
                Some(message) => Err(message.clone()),
                None => Ok(Warmed::Ready),
            }
        })
    }
}

struct Fixture {
    _data: tempfile::TempDir,
    store: Store,
    builder: Builder,
    hook: Arc<Recorder>,
    server: Server,
    v1: Deployment,
    v2: Deployment,
}

impl Fixture {
    /// The server's live deployment now.
    async fn live(&self) -> Option<DeploymentId> {
        let server = self.store.servers().by_id(&self.server.id).await.unwrap();
        server.and_then(|s| s.live_deployment)
    }
}

/// A server with two ready deployments, the second live, and a builder readying with a
/// [`Recorder`] that fails with `fail_with`.
async fn fixture(fail_with: Option<&str>) -> Fixture {
    let store = Store::open_in_memory().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let hook = Arc::new(Recorder {
        store: store.clone(),
        fail_with: fail_with.map(str::to_owned),
        seen: Mutex::default(),
    });
    let builder = Builder::with_warmup(
        store.clone(),
        data.path().to_path_buf(),
        BuildLimits::default(),
        hook.clone(),
    );
    let (server, _) = store
        .servers()
        .ensure(&"api".parse().unwrap(), None)
        .await
        .unwrap();
    let mut ready = Vec::new();
    for version in ["v1", "v2"] {
        let d = store
            .deployments()
            .create(&server.id, &NewDeployment::default())
            .await
            .unwrap();
        let built = Built {
            entrypoint: "main.py:mcp".to_owned(),
            artifact: version.to_owned(),
            manifest: serde_json::json!({}),
            launch: LaunchSpec {
                program: PathBuf::from("python"),
                args: vec![version.to_owned()],
                working_dir: PathBuf::from("src"),
                transport: Default::default(),
            },
            inspection: serde_json::json!({}),
        };
        store.deployments().succeed(&d.id, &built).await.unwrap();
        store.deployments().promote(&d.id).await.unwrap();
        ready.push(d);
    }
    let server = store.servers().by_id(&server.id).await.unwrap().unwrap();
    let v2 = ready.pop().unwrap();
    let v1 = ready.pop().unwrap();
    Fixture {
        _data: data,
        store,
        builder,
        hook,
        server,
        v1,
        v2,
    }
}

#[tokio::test]
async fn a_rollback_readies_the_earlier_deployment_before_switching_to_it() {
    let f = fixture(None).await;
    let admin = f.store.keys().ensure_admin().await.unwrap();
    let rolled = f
        .builder
        .roll_back(&f.server, None, &admin.id)
        .await
        .unwrap();
    assert_eq!(rolled.id, f.v1.id);
    // The hook ran while v2 was still live, with v1's own launch spec.
    assert_eq!(
        *f.hook.seen.lock().unwrap(),
        vec![(
            f.v1.id.clone(),
            Some(f.v2.id.clone()),
            vec!["v1".to_owned()]
        )]
    );
    assert_eq!(f.live().await, Some(f.v1.id.clone()));
    let promotions = f
        .store
        .deployments()
        .promotions(&f.server.id)
        .await
        .unwrap();
    assert_eq!(promotions[0].kind, PromotionKind::Rollback);
    assert_eq!(promotions[0].by.as_ref().map(|a| &a.id), Some(&admin.id));
    // Nothing was built: still two deployments.
    assert_eq!(
        f.store
            .deployments()
            .list(&f.server.id)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn a_failed_warm_up_keeps_the_live_deployment_and_says_why() {
    let f = fixture(Some("exit code 1; its last output:\nboom")).await;
    let admin = f.store.keys().ensure_admin().await.unwrap();
    let chosen = f.v1.id.as_str();
    let err = f
        .builder
        .roll_back(&f.server, Some(chosen), &admin.id)
        .await
        .unwrap_err();
    assert!(matches!(err, RollbackError::Start { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("failed to start") && message.contains("boom"),
        "{message}"
    );
    assert_eq!(f.live().await, Some(f.v2.id.clone()));
}

#[tokio::test]
async fn a_refused_rollback_never_reaches_the_hook() {
    let f = fixture(None).await;
    let admin = f.store.keys().ensure_admin().await.unwrap();
    let live = f.v2.id.as_str();
    let err = f
        .builder
        .roll_back(&f.server, Some(live), &admin.id)
        .await
        .unwrap_err();
    assert!(matches!(err, RollbackError::Refused(_)), "{err:?}");
    assert!(f.hook.seen.lock().unwrap().is_empty());
}
