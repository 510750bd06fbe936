//! [`KubeRuntime`]: the [`Runtime`] that runs deployments as Kubernetes Deployments.
//!
//! `acquire` applies the deployment's objects (server-side apply, so every Skyport replica
//! converges on the same objects), raises the replicas through the scale subresource when no
//! pod is ready, and waits until the Service's EndpointSlices show a ready endpoint. Leases
//! point at pods (their endpoint addresses), not at the Service's virtual IP: a session lives
//! in one Python process, and a Service would spread one session's requests over every pod.
//!
//! A sweeper refreshes endpoints and scales idle Deployments down to `min_instances`. Idleness
//! is judged from the Deployment itself (the `skyport.dev/last-used` annotation, which every
//! replica touches while it leases pods), so any replica can scale down what another used,
//! and none does while another is busy. No lock is held across an await.
//!
//! Pod logs go to the store (`logs.rs`), and a start that a pod's status shows cannot succeed
//! (an out-of-memory kill, a crash loop, an image that cannot be pulled, no node for it)
//! fails at once with what happened (`pods.rs`), written to the deployment's log too.

mod idle;
mod logs;
mod pods;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod as KubePod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, LogParams, Patch,
    PatchParams,
};
use kube::{Client, Resource, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;
use skyport_runtime::{
    DeploymentMetrics, Exit, Histogram, InstanceInfo, InstanceLog, Lease, LeaseHold, Runtime,
    StartError, Target, start_backoff,
};
use skyport_store::{DeploymentId, InstanceId, LogStream, Redactor, Store, Timestamp, Transport};
use tokio::sync::watch;

use self::logs::PodLog;
use self::pods::PodFailure;
use crate::objects::{self, CONTAINER, DEPLOYMENT_LABEL, LAST_USED, MANAGED_BY, SKYPORT};
use crate::{ImageConfig, KubeError, KubeRuntimeConfig, Workload, oci};

/// The field manager of Skyport's server-side applies.
const FIELD_MANAGER: &str = "skyport";
/// How often a start looks for a ready endpoint.
const START_POLL: Duration = Duration::from_millis(250);
/// The `last-used` annotation is written at most this often per deployment and replica (and
/// at least three times per idle timeout, so that no replica takes a busy deployment for idle).
const TOUCH_EVERY: Duration = Duration::from_secs(30);
/// Lines of a failed container quoted in the start's error.
const TAIL_LINES: i64 = 30;
/// The store claim of the replica that writes pod logs (`logs.rs`).
const LOGS_CLAIM: &str = "kube-logs";

/// Runs deployments on Kubernetes; see the module docs.
#[derive(Clone)]
pub struct KubeRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    config: KubeRuntimeConfig,
    /// Where pod output and pod failures are written.
    store: Store,
    state: Mutex<State>,
    /// Set at shutdown; stops the sweeper.
    stop: watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    deployments: HashMap<DeploymentId, Entry>,
    stopping: bool,
}

type StartFuture = Shared<BoxFuture<'static, Result<(), StartError>>>;

/// What this replica knows of one deployment.
struct Entry {
    target: Target,
    name: String,
    /// Ready pods, as the last look at the EndpointSlices found them.
    pods: Vec<Arc<Pod>>,
    /// The replicas this replica last asked for.
    replicas: u32,
    /// The start in progress; concurrent askers await it.
    starting: Option<StartFuture>,
    /// A scale-up for load is in flight: ask for one more pod at a time.
    scaling: bool,
    /// Failed starts in a row: a start that fails at once (a crash-looping pod, say) must
    /// not be retried by every request.
    failures: Failures,
    retiring: bool,
    stats: Arc<Stats>,
    /// Last lease taken or returned, in milliseconds since `epoch`.
    activity: Arc<AtomicU64>,
    /// Last time this replica wrote `last-used`.
    touched: Option<Instant>,
}

/// Failed starts in a row, as the local runtime counts them ([`start_backoff`]).
#[derive(Default)]
struct Failures {
    count: u32,
    /// While in the future, starts are refused with the last failure.
    retry_at: Option<Instant>,
    last: Option<StartError>,
}

impl Failures {
    /// Counts a start's outcome.
    fn record(&mut self, result: &Result<(), StartError>) {
        match result {
            Ok(()) => *self = Failures::default(),
            Err(StartError::Stopping) => {}
            Err(error) => {
                self.count += 1;
                self.last = Some(error.clone());
                let wait = start_backoff(self.count);
                self.retry_at = (!wait.is_zero()).then(|| Instant::now() + wait);
            }
        }
    }

    /// The crash-loop error to answer with instead of starting, while backing off.
    fn backing_off(&self, now: Instant) -> Option<StartError> {
        let retry_at = self.retry_at.filter(|at| *at > now)?;
        Some(StartError::CrashLoop {
            retry_in: retry_at - now,
            last: Box::new(self.last.clone()?),
        })
    }
}

/// A ready pod: one instance, as the gateway sees it.
struct Pod {
    id: InstanceId,
    name: String,
    addr: SocketAddr,
    started_at: Timestamp,
    in_flight: AtomicU64,
}

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    request_nanos: AtomicU64,
    request_max_nanos: AtomicU64,
    errors: AtomicU64,
    starts: AtomicU64,
    start_nanos: AtomicU64,
    start_max_nanos: AtomicU64,
    failed_starts: AtomicU64,
}

impl KubeRuntime {
    /// Checks that the namespace is reachable with `client` and starts the sweeper and the
    /// follower of pod logs, which writes to `store`'s logs while this replica holds the
    /// store's `kube-logs` claim.
    pub async fn start(
        client: Client,
        config: KubeRuntimeConfig,
        store: &Store,
    ) -> Result<KubeRuntime, KubeError> {
        if config.image_prefix.is_empty() {
            return Err(KubeError::Config(
                "--kube-image-prefix must name a registry repository, e.g. registry.example.com/skyport".to_owned(),
            ));
        }
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), &config.namespace);
        deployments
            .list(&ListParams::default().labels(&managed()).limit(1))
            .await
            .map_err(|source| KubeError::Api {
                namespace: config.namespace.clone(),
                source,
            })?;
        let (stop, stopped) = watch::channel(false);
        let inner = Arc::new(Inner {
            client,
            config,
            store: store.clone(),
            state: Mutex::default(),
            stop,
        });
        tokio::spawn(idle::sweep(Arc::downgrade(&inner), stopped.clone()));
        tokio::spawn(logs::follow(
            Arc::downgrade(&inner),
            store.claim(LOGS_CLAIM),
            stopped,
        ));
        Ok(KubeRuntime { inner })
    }
}

impl Runtime for KubeRuntime {
    fn acquire<'a>(
        &'a self,
        target: &'a Target,
        affinity: Option<&'a InstanceId>,
    ) -> BoxFuture<'a, Result<Lease, StartError>> {
        async move {
            // The bridge and port assignment of packaged servers live in the local runtime.
            if target.launch.transport != Transport::Http {
                return Err(StartError::Spawn(
                    "packaged servers (stdio, or with an HTTP port of their own) run only on the local runtime so far; serve this one from a Skyport with --runtime local".to_owned(),
                ));
            }
            // At most two rounds: a start, then a lease on what it made ready.
            for _ in 0..2 {
                let start = match self.inner.lease_or_start(target, affinity)? {
                    Ok(lease) => return Ok(lease),
                    Err(start) => start,
                };
                start.await?;
            }
            Err(StartError::Spawn(
                "the pod became ready and left again at once; see `kubectl describe pods -l skyport.dev/deployment=…`".to_owned(),
            ))
        }
        .boxed()
    }

    fn retire(&self, deployment: &DeploymentId, grace: Duration) -> BoxFuture<'_, ()> {
        let deployment = deployment.clone();
        async move {
            let deadline = Instant::now() + grace;
            let pods = {
                let mut state = self.inner.state.lock();
                match state.deployments.get_mut(&deployment) {
                    Some(entry) => {
                        entry.retiring = true;
                        entry.pods.clone()
                    }
                    None => Vec::new(),
                }
            };
            while pods
                .iter()
                .any(|pod| pod.in_flight.load(Ordering::Relaxed) > 0)
                && Instant::now() < deadline
            {
                tokio::time::sleep(START_POLL).await;
            }
            self.inner.delete(&deployment).await;
            self.inner.state.lock().deployments.remove(&deployment);
        }
        .boxed()
    }

    fn keep_warm(&self, live: &[Target]) {
        for target in live {
            let warm = target.settings.min_instances;
            let below = {
                let mut state = self.inner.state.lock();
                if state.stopping {
                    return;
                }
                let entry = self.inner.entry(&mut state, target);
                entry.replicas < warm && entry.starting.is_none()
            };
            if below {
                let inner = self.inner.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    if let Err(e) = inner.ensure(&target, warm).await {
                        tracing::warn!(deployment = %target.deployment, "cannot keep {warm} pod(s) warm: {e}");
                    }
                });
            }
        }
    }

    fn instances(&self) -> Vec<InstanceInfo> {
        let state = self.inner.state.lock();
        state
            .deployments
            .values()
            .flat_map(|entry| {
                entry.pods.iter().map(|pod| InstanceInfo {
                    id: pod.id.clone(),
                    deployment: entry.target.deployment.clone(),
                    server: entry.target.server_name.clone(),
                    pid: None,
                    addr: pod.addr,
                    started_at: pod.started_at,
                    in_flight: pod.in_flight.load(Ordering::Relaxed),
                    memory_bytes: None,
                })
            })
            .collect()
    }

    fn metrics(&self) -> Vec<DeploymentMetrics> {
        let state = self.inner.state.lock();
        state
            .deployments
            .values()
            .map(|entry| {
                let stats = &entry.stats;
                DeploymentMetrics {
                    server: entry.target.server_name.clone(),
                    deployment: entry.target.deployment.clone(),
                    instances: entry.pods.len() as u64,
                    // The kubelet measures pods' memory; metrics-server is not assumed.
                    memory_bytes: 0,
                    cold_starts: histogram(
                        &stats.starts,
                        &stats.start_nanos,
                        &stats.start_max_nanos,
                    ),
                    failed_starts: stats.failed_starts.load(Ordering::Relaxed),
                    requests: histogram(
                        &stats.requests,
                        &stats.request_nanos,
                        &stats.request_max_nanos,
                    ),
                    errors: stats.errors.load(Ordering::Relaxed),
                    crashes: 0,
                    oom_kills: 0,
                }
            })
            .collect()
    }

    fn shutdown(&self, grace: Duration) -> BoxFuture<'_, ()> {
        async move {
            let pods: Vec<Arc<Pod>> = {
                let mut state = self.inner.state.lock();
                state.stopping = true;
                state
                    .deployments
                    .values()
                    .flat_map(|entry| entry.pods.iter().cloned())
                    .collect()
            };
            self.inner.stop.send_replace(true);
            let deadline = Instant::now() + grace;
            while pods
                .iter()
                .any(|pod| pod.in_flight.load(Ordering::Relaxed) > 0)
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Pods are left as they are: they are not this process's children, other
            // replicas may be serving them, and whichever replica runs next scales them
            // down when the `last-used` annotation says they are idle.
        }
        .boxed()
    }
}

impl Inner {
    /// The entry of `target`, made if new, with its latest settings.
    fn entry<'s>(&self, state: &'s mut State, target: &Target) -> &'s mut Entry {
        let entry = state
            .deployments
            .entry(target.deployment.clone())
            .or_insert_with(|| Entry {
                target: target.clone(),
                name: objects::object_name(target),
                pods: Vec::new(),
                replicas: 0,
                starting: None,
                scaling: false,
                failures: Failures::default(),
                retiring: false,
                stats: Arc::default(),
                activity: Arc::new(AtomicU64::new(now_millis())),
                touched: None,
            });
        entry.target.settings = target.settings;
        entry
    }

    /// A lease on a ready pod, or the start to wait for before asking again.
    fn lease_or_start(
        self: &Arc<Self>,
        target: &Target,
        affinity: Option<&InstanceId>,
    ) -> Result<Result<Lease, StartFuture>, StartError> {
        let mut state = self.state.lock();
        if state.stopping {
            return Err(StartError::Stopping);
        }
        let concurrency = self.config.concurrency;
        let entry = self.entry(&mut state, target);
        if entry.retiring {
            return Err(StartError::Stopping);
        }
        entry.activity.store(now_millis(), Ordering::Relaxed);
        let chosen = affinity
            .and_then(|id| entry.pods.iter().find(|pod| &pod.id == id))
            .or_else(|| {
                entry
                    .pods
                    .iter()
                    .min_by_key(|pod| pod.in_flight.load(Ordering::Relaxed))
            })
            .cloned();
        let Some(pod) = chosen else {
            if entry.starting.is_none()
                && let Some(error) = entry.failures.backing_off(Instant::now())
            {
                return Err(error);
            }
            let start = entry
                .starting
                .get_or_insert_with(|| {
                    let inner = self.clone();
                    let target = target.clone();
                    async move { inner.start(target).await }.boxed().shared()
                })
                .clone();
            return Ok(Err(start));
        };
        let busy = pod.in_flight.fetch_add(1, Ordering::Relaxed) + 1 > concurrency;
        if busy && !entry.scaling && entry.replicas < entry.target.settings.max_instances {
            entry.scaling = true;
            let inner = self.clone();
            let target = entry.target.clone();
            let replicas = entry.replicas + 1;
            tokio::spawn(async move { inner.scale_out(&target, replicas).await });
        }
        if entry
            .touched
            .is_none_or(|at| at.elapsed() >= touch_every(&entry.target))
        {
            entry.touched = Some(Instant::now());
            let inner = self.clone();
            let name = entry.name.clone();
            tokio::spawn(async move { inner.touch(&name).await });
        }
        let hold = PodLease {
            pod: pod.clone(),
            stats: entry.stats.clone(),
            activity: entry.activity.clone(),
            since: Instant::now(),
        };
        Ok(Ok(Lease::new(pod.addr, pod.id.clone(), Box::new(hold))))
    }

    /// Makes the objects exist, asks for at least one pod and waits for a ready endpoint.
    async fn start(self: Arc<Self>, target: Target) -> Result<(), StartError> {
        let began = Instant::now();
        let result = self.start_inner(&target).await;
        let mut state = self.state.lock();
        if let Some(entry) = state.deployments.get_mut(&target.deployment) {
            entry.starting = None;
            entry.failures.record(&result);
            let stats = &entry.stats;
            match &result {
                Ok(()) => {
                    let took = nanos(began.elapsed());
                    stats.starts.fetch_add(1, Ordering::Relaxed);
                    stats.start_nanos.fetch_add(took, Ordering::Relaxed);
                    stats.start_max_nanos.fetch_max(took, Ordering::Relaxed);
                }
                Err(_) => {
                    stats.failed_starts.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        result
    }

    async fn start_inner(&self, target: &Target) -> Result<(), StartError> {
        let began = Timestamp::now();
        let replicas = target.settings.min_instances.max(1);
        self.ensure(target, replicas).await.map_err(api_error)?;
        let deadline = Instant::now() + self.config.start_timeout;
        loop {
            if self.refresh(target).await.map_err(api_error)? > 0 {
                return Ok(());
            }
            if self.gone(&target.deployment) {
                return Err(StartError::Stopping);
            }
            if self.config.workload == Workload::Deployment
                && let Some(failure) = self.pod_failure(target, began).await
            {
                return Err(self.failed(target, &failure).await);
            }
            if Instant::now() >= deadline {
                return Err(StartError::Timeout {
                    timeout: self.config.start_timeout,
                    stderr_tail: self.why_not_ready(target).await,
                });
            }
            tokio::time::sleep(START_POLL).await;
        }
    }

    /// The first failure the pods of `target` show, if any has happened since `since`.
    async fn pod_failure(&self, target: &Target, since: Timestamp) -> Option<PodFailure> {
        let pods: Api<KubePod> = self.api();
        let selector = format!("{DEPLOYMENT_LABEL}={}", target.deployment);
        match pods.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list.items.iter().find_map(|pod| pods::failure(pod, since)),
            Err(e) => {
                tracing::debug!(deployment = %target.deployment, "cannot read the pods' status: {e}");
                None
            }
        }
    }

    /// The error of a start that `failure` ended, written to the deployment's log with the
    /// failed container's last lines.
    async fn failed(&self, target: &Target, failure: &PodFailure) -> StartError {
        let log = self.pod_log(target, failure.pod());
        let tail = match failure.output() {
            Some(previous) => self.tail(failure.pod(), previous, &log.redactor).await,
            None => String::new(),
        };
        let error = failure.start_error(target, &self.config.namespace, tail);
        log.write(
            LogStream::Skyport,
            Timestamp::now(),
            &format!("start failed: {error}"),
        );
        error
    }

    /// The last lines of pod `pod`'s container (`previous`: of the one before the current).
    async fn tail(&self, pod: &str, previous: bool, redactor: &Redactor) -> String {
        let pods: Api<KubePod> = self.api();
        let params = LogParams {
            container: Some(CONTAINER.to_owned()),
            previous,
            tail_lines: Some(TAIL_LINES),
            ..LogParams::default()
        };
        match pods.logs(pod, &params).await {
            Ok(text) => redactor.apply(text.trim_end()).into_owned(),
            Err(e) => {
                tracing::debug!(pod, "cannot read the pod's last output: {e}");
                String::new()
            }
        }
    }

    /// Who the lines of pod `pod` of `target` belong to.
    fn pod_log(&self, target: &Target, pod: &str) -> PodLog {
        PodLog {
            log: InstanceLog::new(
                self.store.logs().writer(),
                target.server_id.clone(),
                target.deployment.clone(),
                pods::instance_id(&self.config.namespace, pod),
            ),
            redactor: Arc::new(Redactor::new(&target.env)),
            memory_bytes: target.settings.memory_bytes,
        }
    }

    /// Whether Skyport is stopping or `deployment` was retired since a start began.
    fn gone(&self, deployment: &DeploymentId) -> bool {
        let state = self.state.lock();
        state.stopping
            || state
                .deployments
                .get(deployment)
                .is_none_or(|entry| entry.retiring)
    }

    /// Applies the objects of `target` and raises its replicas to at least `replicas`.
    async fn ensure(&self, target: &Target, replicas: u32) -> Result<(), kube::Error> {
        self.write_image(target).await;
        let name = objects::object_name(target);
        match self.config.workload {
            Workload::Deployment => self.apply_deployment(target).await?,
            Workload::Knative => self.apply_knative(target).await?,
        }
        let current = if self.config.workload == Workload::Deployment {
            let deployments: Api<Deployment> = self.api();
            let scale = deployments.get_scale(&name).await?;
            scale
                .spec
                .and_then(|spec| spec.replicas)
                .unwrap_or(0)
                .max(0) as u32
        } else {
            replicas
        };
        let wanted = current.max(replicas);
        if wanted > current {
            self.scale(&name, wanted).await?;
        }
        if let Some(entry) = self.state.lock().deployments.get_mut(&target.deployment) {
            entry.replicas = wanted;
        }
        Ok(())
    }

    async fn apply_deployment(&self, target: &Target) -> Result<(), kube::Error> {
        let objects = objects::objects(target, &self.config);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let deployments: Api<Deployment> = self.api();
        let name = objects::object_name(target);
        let mut deployment = objects.deployment;
        // A start is a use: without this, another replica's sweeper would take a Deployment
        // created a moment ago for one idle since ever.
        deployment
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(LAST_USED.to_owned(), unix_seconds().to_string());
        let applied = deployments
            .patch(&name, &params, &Patch::Apply(&deployment))
            .await?;
        // The Service and Secret go with their Deployment when it is deleted.
        let owner = applied.controller_owner_ref(&());
        let mut service = objects.service;
        service.metadata.owner_references = owner.clone().map(|owner| vec![owner]);
        let services: Api<Service> = self.api();
        services
            .patch(&name, &params, &Patch::Apply(&service))
            .await?;
        if let Some(mut secret) = objects.secret {
            secret.metadata.owner_references = owner.map(|owner| vec![owner]);
            let secrets: Api<Secret> = self.api();
            secrets
                .patch(&name, &params, &Patch::Apply(&secret))
                .await?;
        }
        Ok(())
    }

    async fn apply_knative(&self, target: &Target) -> Result<(), kube::Error> {
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let name = objects::object_name(target);
        if let Some(secret) = objects::objects(target, &self.config).secret {
            let secrets: Api<Secret> = self.api();
            secrets
                .patch(&name, &params, &Patch::Apply(&secret))
                .await?;
        }
        let services: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.config.namespace,
            &knative_resource(),
        );
        let service = objects::knative_service(target, &self.config);
        services
            .patch(&name, &params, &Patch::Apply(&service))
            .await?;
        Ok(())
    }

    /// Writes the image layout of `target` once, if the runtime is configured to.
    async fn write_image(&self, target: &Target) {
        let Some(dir) = &self.config.image_dir else {
            return;
        };
        let dir = dir.join(target.deployment.as_str());
        if dir.join("index.json").exists() {
            return;
        }
        let image = image_config(target);
        let reference = objects::image(target, &self.config);
        let written = tokio::task::spawn_blocking(move || oci::write_layout(&dir, &image)).await;
        match written {
            Ok(Ok(layout)) => tracing::info!(
                deployment = %target.deployment,
                "image layout written to {} ({}); push it with `skopeo copy oci:{}:{} docker://{reference}`",
                layout.dir.display(),
                layout.manifest_digest,
                layout.dir.display(),
                target.deployment,
            ),
            Ok(Err(e)) => tracing::warn!(deployment = %target.deployment, "{e}"),
            Err(e) => {
                tracing::warn!(deployment = %target.deployment, "image layout task failed: {e}")
            }
        }
    }

    async fn scale(&self, name: &str, replicas: u32) -> Result<(), kube::Error> {
        let deployments: Api<Deployment> = self.api();
        deployments
            .patch_scale(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "replicas": replicas } })),
            )
            .await?;
        Ok(())
    }

    /// One more pod for load; the sweeper's next refresh picks it up when ready.
    async fn scale_out(&self, target: &Target, replicas: u32) {
        let name = objects::object_name(target);
        let result = self.scale(&name, replicas).await;
        let mut state = self.state.lock();
        if let Some(entry) = state.deployments.get_mut(&target.deployment) {
            entry.scaling = false;
            if result.is_ok() {
                entry.replicas = entry.replicas.max(replicas);
            }
        }
        if let Err(e) = result {
            tracing::warn!(deployment = %target.deployment, "cannot scale out to {replicas} pod(s): {e}");
        }
    }

    /// Reads where `target` can be reached into its entry; returns how many pods that is.
    async fn refresh(&self, target: &Target) -> Result<usize, kube::Error> {
        let ready = match self.config.workload {
            Workload::Deployment => self.ready_endpoints(target).await?,
            Workload::Knative => self.knative_address(target).await?,
        };
        let mut state = self.state.lock();
        let Some(entry) = state.deployments.get_mut(&target.deployment) else {
            return Ok(ready.len());
        };
        // Known pods keep their instance id and in-flight count.
        let mut known: HashMap<String, Arc<Pod>> = entry
            .pods
            .drain(..)
            .map(|pod| (pod.name.clone(), pod))
            .collect();
        entry.pods = ready
            .into_iter()
            .map(|(name, addr)| match known.remove(&name) {
                Some(pod) if pod.addr == addr => pod,
                _ => Arc::new(Pod {
                    id: pods::instance_id(&self.config.namespace, &name),
                    name,
                    addr,
                    started_at: Timestamp::now(),
                    in_flight: AtomicU64::new(0),
                }),
            })
            .collect();
        Ok(entry.pods.len())
    }

    /// The ready endpoints of the Service of `target`, as (pod name, address).
    async fn ready_endpoints(
        &self,
        target: &Target,
    ) -> Result<Vec<(String, SocketAddr)>, kube::Error> {
        let name = objects::object_name(target);
        let slices: Api<EndpointSlice> = self.api();
        let list = slices
            .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={name}")))
            .await?;
        let mut ready = Vec::new();
        for slice in list.items {
            let port = slice
                .ports
                .iter()
                .flatten()
                .find(|port| port.name.as_deref() == Some("mcp"))
                .and_then(|port| port.port)
                .and_then(|port| u16::try_from(port).ok());
            let Some(port) = port else { continue };
            for endpoint in slice.endpoints.into_iter().flatten() {
                // An absent `ready` condition means ready (discovery/v1).
                let conditions = endpoint.conditions.unwrap_or_default();
                if conditions.ready == Some(false) || conditions.terminating == Some(true) {
                    continue;
                }
                let Some(ip) = endpoint
                    .addresses
                    .first()
                    .and_then(|a| a.parse::<IpAddr>().ok())
                else {
                    continue;
                };
                let pod = endpoint
                    .target_ref
                    .and_then(|r| r.name)
                    .unwrap_or_else(|| ip.to_string());
                ready.push((pod, SocketAddr::new(ip, port)));
            }
        }
        ready.sort();
        Ok(ready)
    }

    /// The cluster-local address of a ready Knative Service: one "instance", since Knative's
    /// activator and queue proxies pick the pod (a session moved between pods is replayed by
    /// the gateway on the pod's 404).
    async fn knative_address(
        &self,
        target: &Target,
    ) -> Result<Vec<(String, SocketAddr)>, kube::Error> {
        let name = objects::object_name(target);
        let services: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.config.namespace,
            &knative_resource(),
        );
        let Some(service) = services.get_opt(&name).await? else {
            return Ok(Vec::new());
        };
        let status = &service.data["status"];
        let ready = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        let url = status["address"]["url"].as_str().unwrap_or_default();
        let Some(host) = url
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
        else {
            return Ok(Vec::new());
        };
        if !ready {
            return Ok(Vec::new());
        }
        let authority = if host.contains(':') {
            host.to_owned()
        } else {
            format!("{host}:80")
        };
        match tokio::net::lookup_host(authority).await {
            Ok(mut addrs) => Ok(addrs.next().map(|addr| (name, addr)).into_iter().collect()),
            Err(e) => {
                tracing::warn!("cannot resolve {host}, the address of Knative Service {name}: {e}");
                Ok(Vec::new())
            }
        }
    }

    /// Deletes every object of `deployment` (found by label, so objects made by an earlier
    /// Skyport process go too).
    async fn delete(&self, deployment: &DeploymentId) {
        let selector = format!("{DEPLOYMENT_LABEL}={deployment}");
        let result = match self.config.workload {
            Workload::Deployment => {
                let deployments: Api<Deployment> = self.api();
                let services: Api<Service> = self.api();
                let secrets: Api<Secret> = self.api();
                let mut result = delete_labelled(&deployments, &selector).await;
                result = result.and(delete_labelled(&services, &selector).await);
                result.and(delete_labelled(&secrets, &selector).await)
            }
            Workload::Knative => {
                let services: Api<DynamicObject> = Api::namespaced_with(
                    self.client.clone(),
                    &self.config.namespace,
                    &knative_resource(),
                );
                let secrets: Api<Secret> = self.api();
                let result = delete_labelled(&services, &selector).await;
                result.and(delete_labelled(&secrets, &selector).await)
            }
        };
        if let Err(e) = result {
            tracing::warn!(%deployment, "cannot delete the retired deployment's objects: {e}");
        }
    }

    /// What Kubernetes says about a deployment that did not become ready, for the user.
    async fn why_not_ready(&self, target: &Target) -> String {
        let deployments: Api<Deployment> = self.api();
        let Ok(deployment) = deployments.get(&objects::object_name(target)).await else {
            return String::new();
        };
        deployment
            .status
            .and_then(|status| status.conditions)
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c.status.as_deref() != Some("True"))
            .map(|c| {
                format!(
                    "{}: {}",
                    c.type_.unwrap_or_default(),
                    c.message.unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.config.namespace)
    }
}

async fn delete_labelled<K>(api: &Api<K>, selector: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = api.list(&ListParams::default().labels(selector)).await?;
    for object in list.items {
        match api
            .delete(&object.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            // Gone already: its owner's deletion collected it.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The lease's hold on a pod: counts it in flight until dropped.
struct PodLease {
    pod: Arc<Pod>,
    stats: Arc<Stats>,
    activity: Arc<AtomicU64>,
    since: Instant,
}

impl LeaseHold for PodLease {
    fn fail(&self) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
    }

    fn exit(&self, _wait: Duration) -> BoxFuture<'static, Option<Exit>> {
        // A pod's exit is the kubelet's to report (`kubectl describe pod`); the endpoint
        // simply leaves the EndpointSlice.
        async { None }.boxed()
    }
}

impl Drop for PodLease {
    fn drop(&mut self) {
        self.pod.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.activity.store(now_millis(), Ordering::Relaxed);
        let took = nanos(self.since.elapsed());
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.stats.request_nanos.fetch_add(took, Ordering::Relaxed);
        self.stats
            .request_max_nanos
            .fetch_max(took, Ordering::Relaxed);
    }
}

/// The image config of `target`: its launch spec as the entrypoint, its artifact and
/// environment as the layer. The runtime does not know the artifact's layout beyond the
/// launch spec: the environment is the directory above the program's `bin/`, the artifact the
/// working directory's parent.
pub(crate) fn image_config(target: &Target) -> ImageConfig {
    let launch = &target.launch;
    let mut roots = Vec::new();
    if let Some(env) = launch.program.parent().and_then(|bin| bin.parent()) {
        roots.push(env.to_owned());
    }
    if let Some(artifact) = launch.working_dir.parent() {
        roots.push(artifact.to_owned());
    }
    let mut entrypoint = vec![launch.program.to_string_lossy().into_owned()];
    entrypoint.extend(launch.args.iter().cloned());
    ImageConfig {
        roots,
        entrypoint,
        working_dir: launch.working_dir.clone(),
        env: vec![
            "SKYPORT_HOST=0.0.0.0".to_owned(),
            format!("SKYPORT_PORT={}", objects::MCP_PORT),
        ],
        exposed_ports: vec![objects::MCP_PORT as u16],
        labels: [
            ("dev.skyport.server", target.server_name.as_str()),
            ("dev.skyport.deployment", target.deployment.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        tag: target.deployment.to_string(),
    }
}

/// Waits one sweep interval; then the runtime, or `None` once Skyport stops or the runtime
/// is dropped (the sweeper and the log follower hold it weakly).
async fn next_sweep(
    inner: &Weak<Inner>,
    stopped: &mut watch::Receiver<bool>,
) -> Option<Arc<Inner>> {
    let interval = inner.upgrade()?.config.sweep_interval;
    tokio::select! {
        _ = stopped.wait_for(|stopped| *stopped) => return None,
        () = tokio::time::sleep(interval) => {}
    }
    inner.upgrade()
}

fn touch_every(target: &Target) -> Duration {
    TOUCH_EVERY.min(target.settings.idle_timeout / 3)
}

fn knative_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "serving.knative.dev",
        "v1",
        "Service",
    ))
}

fn managed() -> String {
    format!("{MANAGED_BY}={SKYPORT}")
}

fn api_error(e: kube::Error) -> StartError {
    StartError::Spawn(format!(
        "the Kubernetes API refused: {e}; check the runtime's RBAC in its namespace (docs/kubernetes.md)"
    ))
}

fn histogram(count: &AtomicU64, nanos: &AtomicU64, max_nanos: &AtomicU64) -> Histogram {
    Histogram {
        buckets: Vec::new(),
        count: count.load(Ordering::Relaxed),
        sum: Duration::from_nanos(nanos.load(Ordering::Relaxed)),
        max: Duration::from_nanos(max_nanos.load(Ordering::Relaxed)),
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
