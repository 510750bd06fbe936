//! The runtime's life cycle through a real `kube::Client` against the fake API server:
//! acquire → objects applied → pod ready → lease on its endpoint → idle → scale to zero →
//! acquire → scale up → retire → objects deleted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use skyport_kube::{KubeRuntime, KubeRuntimeConfig, Workload, object_name};
use skyport_runtime::{EnvVar, Lease, Runtime, StartError, Target};
use skyport_store::{LaunchSpec, RuntimeSettings, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fake::{FakeApi, NAMESPACE, Pods};

/// The fake cluster, the "pod" behind every endpoint, and a runtime on them.
struct Harness {
    api: FakeApi,
    pod: SocketAddr,
    runtime: KubeRuntime,
}

impl Harness {
    async fn start(ready_after: Option<Duration>) -> Harness {
        let pod = serve_pod().await;
        let api = FakeApi::start(Pods::Simulated {
            addr: pod,
            ready_after,
        })
        .await;
        let runtime = runtime_on(&api).await;
        Harness { api, pod, runtime }
    }

    /// Waits (up to 10 s) until `condition` holds; the message says what did not happen.
    async fn eventually(&self, what: &str, condition: impl Fn(&FakeApi) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition(&self.api) {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub(crate) async fn runtime_on(api: &FakeApi) -> KubeRuntime {
    runtime_with_store(api, &in_memory_store().await).await
}

/// A runtime on `api` writing pod logs to `store`.
pub(crate) async fn runtime_with_store(api: &FakeApi, store: &Store) -> KubeRuntime {
    let config = KubeRuntimeConfig {
        start_timeout: Duration::from_secs(3),
        concurrency: 2,
        sweep_interval: Duration::from_millis(100),
        ..KubeRuntimeConfig::new(NAMESPACE, "registry.example.com/skyport")
    };
    KubeRuntime::start(api.client(), config, store)
        .await
        .expect("the runtime reaches the fake API")
}

/// A fresh SQLite store in memory.
pub(crate) async fn in_memory_store() -> Store {
    Store::open_in_memory().await.expect("an in-memory store")
}

/// An HTTP server standing in for every pod: `GET /mcp` answers `pod`.
pub(crate) async fn serve_pod() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the pod");
    let addr = listener.local_addr().expect("pod address");
    let app = Router::new().route("/mcp", get(|| async { "pod" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Talks to the instance behind `lease`, as the gateway would.
async fn call(lease: &Lease) -> String {
    let mut stream = tokio::net::TcpStream::connect(lease.addr())
        .await
        .expect("connect to the leased pod");
    stream
        .write_all(b"GET /mcp HTTP/1.0\r\nHost: pod\r\n\r\n")
        .await
        .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer
}

pub(crate) fn target(idle_timeout: Duration, min_instances: u32) -> Target {
    Target {
        server_id: "srv_01jf0000000000000000000000".parse().expect("server id"),
        server_name: "weather".parse().expect("server name"),
        deployment: skyport_store::DeploymentId::generate(),
        launch: LaunchSpec {
            program: PathBuf::from("/srv/skyport/envs/e1/bin/python"),
            args: vec![
                "/srv/skyport/artifacts/a1/launcher.py".to_owned(),
                "serve".to_owned(),
            ],
            working_dir: PathBuf::from("/srv/skyport/artifacts/a1/src"),
            transport: Default::default(),
        },
        settings: RuntimeSettings {
            memory_bytes: 256 * 1024 * 1024,
            idle_timeout,
            min_instances,
            max_instances: 2,
            ..RuntimeSettings::default()
        },
        env: Arc::from(vec![
            EnvVar {
                name: "API_KEY".to_owned(),
                value: "k-123".to_owned(),
                secret: true,
            },
            EnvVar {
                name: "UNITS".to_owned(),
                value: "metric".to_owned(),
                secret: false,
            },
        ]),
    }
}

#[tokio::test]
async fn acquire_scales_from_zero_and_idle_scales_back() {
    let h = Harness::start(Some(Duration::from_millis(300))).await;
    let target = target(Duration::from_secs(2), 0);
    let name = object_name(&target);

    // First acquire: objects applied, a pod started, the lease points at its endpoint.
    let lease = h.runtime.acquire(&target, None).await.expect("a ready pod");
    assert_eq!(lease.addr(), h.pod);
    assert!(call(&lease).await.ends_with("pod"));
    let deployment = h.api.get("deployments", &name).expect("the Deployment");
    assert_eq!(deployment["status"]["readyReplicas"], 1);
    let uid = &deployment["metadata"]["uid"];
    for owned in ["services", "secrets"] {
        let object = h.api.get(owned, &name).expect(owned);
        assert_eq!(
            object["metadata"]["ownerReferences"][0]["uid"], *uid,
            "{owned}"
        );
        assert_eq!(
            object["metadata"]["labels"]["skyport.dev/deployment"],
            target.deployment.as_str()
        );
    }
    let secret = h.api.get("secrets", &name).expect("the Secret");
    assert_eq!(secret["data"]["API_KEY"], "ay0xMjM="); // base64 of k-123
    let pod_spec = deployment["spec"]["template"]["spec"].to_string();
    assert!(
        !pod_spec.contains("k-123"),
        "a secret value in the pod spec: {pod_spec}"
    );
    let instances = h.runtime.instances();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].in_flight, 1);

    // A session's next request goes to the same pod.
    let again = h
        .runtime
        .acquire(&target, Some(lease.instance()))
        .await
        .expect("the same pod");
    assert_eq!(again.instance(), lease.instance());

    // Busy beyond the concurrency of one pod: a second pod is asked for (max 2).
    let third = h.runtime.acquire(&target, None).await.expect("a lease");
    h.eventually("a scale-out to 2 replicas", |api| {
        api.replicas(&name) == Some(2)
    })
    .await;
    h.eventually("the second pod in the runtime's view", |_| {
        h.runtime.instances().len() == 2
    })
    .await;
    drop((lease, again, third));

    // Idle for its timeout: scaled to zero, endpoints gone.
    h.eventually("scale to zero after the idle timeout", |api| {
        api.replicas(&name) == Some(0)
    })
    .await;
    h.eventually("no instance left", |_| h.runtime.instances().is_empty())
        .await;
    h.eventually("no pod left, the Deployment kept", |api| {
        api.get("deployments", &name)
            .is_some_and(|d| d["status"]["replicas"] == 0)
    })
    .await;

    // The next request scales it up again through the scale subresource.
    let scale_patches_before = scale_patches(&h.api, &name);
    let lease = h.runtime.acquire(&target, None).await.expect("a pod again");
    assert!(call(&lease).await.ends_with("pod"));
    assert_eq!(h.api.replicas(&name), Some(1));
    assert_eq!(scale_patches(&h.api, &name), scale_patches_before + 1);
    let metrics = h.runtime.metrics();
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0].cold_starts.count, 2);
    assert_eq!(metrics[0].requests.count, 3);

    // Retired: waits for the lease, then deletes every object; no new leases.
    let retire = {
        let runtime = h.runtime.clone();
        let deployment = target.deployment.clone();
        tokio::spawn(async move { runtime.retire(&deployment, Duration::from_secs(5)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        h.api.get("deployments", &name).is_some(),
        "deleted under a lease"
    );
    drop(lease);
    retire.await.expect("retire");
    for resource in ["deployments", "services", "secrets"] {
        assert_eq!(
            h.api.names(resource),
            Vec::<String>::new(),
            "{resource} left"
        );
    }
    h.eventually("the EndpointSlice gone with its Service", |api| {
        api.names("endpointslices").is_empty()
    })
    .await;

    // A rollback makes a retired deployment live again: it starts from nothing.
    let lease = h
        .runtime
        .acquire(&target, None)
        .await
        .expect("a pod after a rollback");
    assert!(call(&lease).await.ends_with("pod"));
    assert!(h.api.get("deployments", &name).is_some());
}

#[tokio::test]
async fn a_retiring_deployment_takes_no_new_leases() {
    let h = Harness::start(Some(Duration::from_millis(100))).await;
    let target = target(Duration::from_secs(60), 0);
    let lease = h.runtime.acquire(&target, None).await.expect("a pod");
    let retire = {
        let runtime = h.runtime.clone();
        let deployment = target.deployment.clone();
        tokio::spawn(async move { runtime.retire(&deployment, Duration::from_secs(1)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(matches!(
        h.runtime.acquire(&target, None).await,
        Err(StartError::Stopping)
    ));
    // The grace period ends with the lease still held: the objects go anyway.
    retire.await.expect("retire");
    assert_eq!(h.api.names("deployments"), Vec::<String>::new());
    drop(lease);
}

#[tokio::test]
async fn concurrent_acquires_share_one_start() {
    let h = Harness::start(Some(Duration::from_millis(300))).await;
    let target = target(Duration::from_secs(60), 0);
    let name = object_name(&target);
    let (a, b, c) = tokio::join!(
        h.runtime.acquire(&target, None),
        h.runtime.acquire(&target, None),
        h.runtime.acquire(&target, None),
    );
    for lease in [a, b, c] {
        assert_eq!(lease.expect("a lease").addr(), h.pod);
    }
    let applies = h
        .api
        .calls()
        .iter()
        .filter(|c| {
            c.path.ends_with(&format!("deployments/{name}"))
                && c.content_type == "application/apply-patch+yaml"
        })
        .count();
    assert_eq!(applies, 1, "one start applies the Deployment once");
}

#[tokio::test]
async fn a_pod_that_never_gets_ready_times_out_with_the_reason() {
    let h = Harness::start(None).await;
    let target = target(Duration::from_secs(60), 0);
    let error = h
        .runtime
        .acquire(&target, None)
        .await
        .expect_err("no pod ever ready");
    let StartError::Timeout { stderr_tail, .. } = &error else {
        panic!("expected a timeout, got {error:?}");
    };
    assert!(
        stderr_tail.contains("does not have minimum availability"),
        "{error}"
    );
}

#[tokio::test]
async fn warm_minimum_is_kept_and_never_idled_away() {
    let h = Harness::start(Some(Duration::from_millis(100))).await;
    let target = target(Duration::from_secs(1), 1);
    let name = object_name(&target);
    h.runtime.keep_warm(std::slice::from_ref(&target));
    h.eventually("a warm pod without any request", |api| {
        api.get("deployments", &name)
            .is_some_and(|d| d["status"]["readyReplicas"] == 1)
    })
    .await;
    // Three idle timeouts later it is still there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(h.api.replicas(&name), Some(1));
}

#[tokio::test]
async fn a_replica_does_not_scale_down_what_another_is_using() {
    let h = Harness::start(Some(Duration::from_millis(100))).await;
    let other = runtime_on(&h.api).await;
    let target = target(Duration::from_secs(2), 0);
    let name = object_name(&target);
    // This replica holds a long request; the other one sweeps and sees the annotation.
    let lease = h.runtime.acquire(&target, None).await.expect("a pod");
    let _ = other.instances();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(h.api.replicas(&name), Some(1), "scaled down under a lease");
    drop(lease);
    h.eventually("scale to zero once the request ended", |api| {
        api.replicas(&name) == Some(0)
    })
    .await;
}

fn scale_patches(api: &FakeApi, name: &str) -> usize {
    api.calls()
        .iter()
        .filter(|c| {
            c.method == axum::http::Method::PATCH && c.path.ends_with(&format!("{name}/scale"))
        })
        .count()
}

#[tokio::test]
async fn knative_services_are_applied_and_leased_at_their_address() {
    let pod = serve_pod().await;
    let api = FakeApi::start(Pods::Simulated {
        addr: pod,
        ready_after: Some(Duration::from_millis(100)),
    })
    .await;
    let config = KubeRuntimeConfig {
        workload: Workload::Knative,
        start_timeout: Duration::from_secs(3),
        sweep_interval: Duration::from_millis(100),
        ..KubeRuntimeConfig::new(NAMESPACE, "registry.example.com/skyport")
    };
    let runtime = KubeRuntime::start(api.client(), config, &in_memory_store().await)
        .await
        .expect("the runtime reaches the fake API");
    let target = target(Duration::from_secs(60), 0);
    let name = object_name(&target);

    let lease = runtime.acquire(&target, None).await.expect("a lease");
    assert_eq!(lease.addr(), pod);
    assert!(call(&lease).await.ends_with("pod"));
    let service = api.get("ksvc", &name).expect("the Knative Service");
    let annotations = &service["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["autoscaling.knative.dev/max-scale"], "2");
    assert!(api.get("secrets", &name).is_some(), "the Secret beside it");
    assert_eq!(
        api.names("deployments"),
        Vec::<String>::new(),
        "no Deployment"
    );
    drop(lease);

    runtime
        .retire(&target.deployment, Duration::from_secs(1))
        .await;
    assert_eq!(api.names("ksvc"), Vec::<String>::new());
    assert_eq!(api.names("secrets"), Vec::<String>::new());
}

#[tokio::test]
async fn the_image_layout_is_written_before_the_first_start() {
    let h = Harness::start(Some(Duration::from_millis(100))).await;
    let tree = tempfile::tempdir().expect("tempdir");
    let env = tree.path().join("envs/e1");
    std::fs::create_dir_all(env.join("bin")).expect("env");
    std::os::unix::fs::symlink("/usr/bin/python3", env.join("bin/python")).expect("link");
    let artifact = tree.path().join("artifacts/a1");
    std::fs::create_dir_all(artifact.join("src")).expect("artifact");
    std::fs::write(artifact.join("src/server.py"), "mcp = None\n").expect("server");
    let images = tempfile::tempdir().expect("tempdir");
    let config = KubeRuntimeConfig {
        start_timeout: Duration::from_secs(3),
        image_dir: Some(images.path().to_owned()),
        ..KubeRuntimeConfig::new(NAMESPACE, "registry.example.com/skyport")
    };
    let runtime = KubeRuntime::start(h.api.client(), config, &in_memory_store().await)
        .await
        .expect("the runtime reaches the fake API");
    let mut target = target(Duration::from_secs(60), 0);
    target.launch = LaunchSpec {
        program: env.join("bin/python"),
        args: vec![
            artifact.join("launcher.py").display().to_string(),
            "serve".to_owned(),
        ],
        working_dir: artifact.join("src"),
        transport: Default::default(),
    };
    let _lease = runtime.acquire(&target, None).await.expect("a lease");

    let layout = images.path().join(target.deployment.as_str());
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("json");
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        target.deployment.as_str()
    );
    let blob = |digest: &serde_json::Value| -> serde_json::Value {
        let hex = digest
            .as_str()
            .and_then(|d| d.strip_prefix("sha256:"))
            .expect("digest");
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).expect("blob"))
            .expect("json blob")
    };
    let manifest = blob(&entry["digest"]);
    let config = blob(&manifest["config"]["digest"]);
    // The image runs what the pod spec runs: the launch spec, unchanged.
    assert_eq!(
        config["config"]["Entrypoint"][0],
        env.join("bin/python").display().to_string()
    );
    assert_eq!(
        config["config"]["WorkingDir"],
        artifact.join("src").display().to_string()
    );
}
