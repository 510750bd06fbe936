//! A fake Kubernetes API server: the endpoints `KubeRuntime` calls, on 127.0.0.1, with the
//! behaviour of the real ones that the runtime depends on:
//!
//! - server-side apply creates or merges (`application/apply-patch+yaml`), merge patches
//!   follow RFC 7386, and a Deployment created without replicas gets one;
//! - the scale subresource reads and writes a Deployment's `spec.replicas`; a Knative Service
//!   (`ksvc` here) is ready at once at the simulated pod's address;
//! - a "controller" ticks every 50 ms: it makes or removes pods to match each Deployment's
//!   replicas, a pod becomes ready `ready_after` its creation (never, when told so), the
//!   Deployment's status and conditions follow, and each Service gets an EndpointSlice listing
//!   the pods its selector picks, with their readiness;
//! - deleting an object deletes the objects it owns (`ownerReferences`), as the garbage
//!   collector would; unknown objects are `404` with a `Status` body;
//! - pods are listed (`pods?labelSelector=`) with their labels, spec and status: a running
//!   container with its readiness, or the status a test sets for a deployment's pods (a
//!   container `OOMKilled`, in `CrashLoopBackOff`, a pod `Unschedulable`), whose pods are
//!   then never ready;
//! - `pods/NAME/log` serves what the pod printed as plain text lines, each after its RFC 3339
//!   timestamp with `timestamps=true`, from `sinceTime` (whole seconds, as the API takes it)
//!   or the last `tailLines`; with `follow=true` the connection stays open and new lines
//!   follow until the pod is gone or the test drops every stream ([`FakeApi::drop_log_streams`]).
//!
//! Pods are simulated ([`Pods::Simulated`]: every endpoint is one address where the test
//! runs an HTTP server, ready after a delay or never) or run ([`Pods::Processes`]: a small
//! kubelet runs each pod's container command as a local process with the pod spec's working
//! directory and environment — `secretKeyRef`s read from the Secret — on a port of its own,
//! ready when the port accepts, like the `tcpSocket` probe; one EndpointSlice per pod; its
//! stdout and stderr are the pod's log). A test prints into a simulated pod's log with
//! [`FakeApi::print`].
//! Everything else (watches, field selectors, other namespaces) is not implemented and
//! answers 501, so a runtime that starts using it fails loudly here.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use parking_lot::Mutex;
use serde_json::{Value, json};

pub const NAMESPACE: &str = "skyport-servers";
/// The address of pods run as processes: a loopback address other than 127.0.0.1, so that a
/// server listening on the default address would not be reached.
const POD_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 2);

/// What the fake's pods are.
#[derive(Clone, Copy)]
pub enum Pods {
    /// Every endpoint is `addr`; a pod is ready `ready_after` its creation (`None`: never, a
    /// crash-looping image).
    Simulated {
        addr: SocketAddr,
        ready_after: Option<Duration>,
    },
    /// Each pod runs its container's command as a local process on [`POD_IP`].
    Processes,
}

/// A pod of the fake.
struct Pod {
    name: String,
    uid: String,
    created: Instant,
    container: Option<Container>,
    /// The last probe's verdict, which the EndpointSlices show.
    ready: bool,
    /// What it printed; log streams hold it weakly, so they end when the pod goes.
    log: Arc<PodLog>,
}

/// The lines a pod printed, with when.
#[derive(Default)]
struct PodLog(Mutex<Vec<(Timestamp, String)>>);

impl PodLog {
    fn print(&self, line: &str) {
        self.0.lock().push((Timestamp::now(), line.to_owned()));
    }
}

/// Follow streams open now, and how many times the test dropped them all.
#[derive(Default)]
struct Streams {
    open: AtomicUsize,
    drops: AtomicU64,
}

/// A container run by the fake kubelet; killed when its pod goes.
struct Container {
    child: std::process::Child,
    port: u16,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running fake; dropped, it stops.
pub struct FakeApi {
    pub addr: SocketAddr,
    cluster: Arc<Mutex<Cluster>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A request the fake received: method, path and content type.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: String,
}

struct Cluster {
    behaviour: Pods,
    /// (resource, name) → object.
    objects: BTreeMap<(String, String), Value>,
    /// Deployment name → its pods.
    pods: HashMap<String, Vec<Pod>>,
    /// Deployment name → the status its pods report instead of running (never ready), and
    /// what they print first.
    statuses: HashMap<String, (Value, Vec<String>)>,
    streams: Arc<Streams>,
    calls: Vec<Call>,
    version: u64,
}

impl FakeApi {
    pub async fn start(pods: Pods) -> FakeApi {
        let cluster = Arc::new(Mutex::new(Cluster {
            behaviour: pods,
            objects: BTreeMap::new(),
            pods: HashMap::new(),
            statuses: HashMap::new(),
            streams: Arc::default(),
            calls: Vec::new(),
            version: 0,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake API server");
        let addr = listener.local_addr().expect("local address");
        let app = Router::new().fallback(handle).with_state(cluster.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake API server");
        });
        let controller = {
            let cluster = cluster.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    cluster.lock().reconcile();
                }
            })
        };
        FakeApi {
            addr,
            cluster,
            tasks: vec![server, controller],
        }
    }

    /// A client of this fake, as `kube` makes one from a kubeconfig.
    pub fn client(&self) -> kube::Client {
        let url = format!("http://{}", self.addr).parse().expect("url");
        let mut config = kube::Config::new(url);
        config.default_namespace = NAMESPACE.to_owned();
        kube::Client::try_from(config).expect("kube client")
    }

    /// The object `resource/name`, if it exists.
    pub fn get(&self, resource: &str, name: &str) -> Option<Value> {
        self.cluster
            .lock()
            .objects
            .get(&(resource.to_owned(), name.to_owned()))
            .cloned()
    }

    /// The names of the objects of `resource`.
    pub fn names(&self, resource: &str) -> Vec<String> {
        self.cluster
            .lock()
            .objects
            .keys()
            .filter(|(r, _)| r == resource)
            .map(|(_, name)| name.clone())
            .collect()
    }

    /// The requests so far.
    pub fn calls(&self) -> Vec<Call> {
        self.cluster.lock().calls.clone()
    }

    /// The names of the pods of Deployment `deployment`.
    pub fn pods(&self, deployment: &str) -> Vec<String> {
        let cluster = self.cluster.lock();
        cluster
            .pods
            .get(deployment)
            .into_iter()
            .flatten()
            .map(|pod| pod.name.clone())
            .collect()
    }

    /// Pod `pod` prints `line` (now).
    pub fn print(&self, pod: &str, line: &str) {
        let log = self.cluster.lock().pod(pod).map(|pod| pod.log.clone());
        log.expect("the pod exists").print(line);
    }

    /// From now on, the pods of Deployment `deployment` report `status` (a PodStatus) and
    /// are never ready; new ones start with `output` printed (what a failed container said).
    pub fn set_pod_status(&self, deployment: &str, status: Value, output: &[&str]) {
        let output = output.iter().map(|line| (*line).to_owned()).collect();
        self.cluster
            .lock()
            .statuses
            .insert(deployment.to_owned(), (status, output));
    }

    /// What pod `pod` printed, with when.
    pub fn printed(&self, pod: &str) -> Vec<(Timestamp, String)> {
        let log = self.cluster.lock().pod(pod).map(|pod| pod.log.clone());
        log.expect("the pod exists").0.lock().clone()
    }

    /// Ends every open `follow` log stream, as a dropped connection would.
    pub fn drop_log_streams(&self) {
        let streams = self.cluster.lock().streams.clone();
        streams.drops.fetch_add(1, Ordering::SeqCst);
    }

    /// How many `follow` log streams are open.
    pub fn log_streams(&self) -> usize {
        let streams = self.cluster.lock().streams.clone();
        streams.open.load(Ordering::SeqCst)
    }

    /// `spec.replicas` of Deployment `name`.
    pub fn replicas(&self, name: &str) -> Option<i64> {
        self.get("deployments", name)
            .and_then(|d| d["spec"]["replicas"].as_i64())
    }
}

async fn handle(
    State(cluster): State<Arc<Mutex<Cluster>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let shared = cluster.clone();
    let mut cluster = cluster.lock();
    cluster.calls.push(Call {
        method: method.clone(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        content_type: content_type.clone(),
    });
    let Some((resource, name, sub)) = parse_path(uri.path()) else {
        return status(StatusCode::NOT_IMPLEMENTED, "NotImplemented", uri.path());
    };
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_owned(), decode(v)))
                .collect()
        })
        .unwrap_or_default();
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(e) => return status(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string()),
        }
    };
    match (method, name, sub.as_deref()) {
        (Method::GET, None, None) if resource == "pods" => {
            cluster.list_pods(query.get("labelSelector"))
        }
        (Method::GET, Some(name), Some("log")) if resource == "pods" => {
            drop(cluster);
            log(&shared, &name, &query)
        }
        (Method::GET, None, None) => cluster.list(&resource, query.get("labelSelector")),
        (Method::GET, Some(name), None) => match cluster.object(&resource, &name) {
            Some(object) => axum::Json(object).into_response(),
            None => not_found(&resource, &name),
        },
        (Method::PATCH, Some(name), None) => cluster.patch(&resource, &name, &content_type, body),
        (Method::DELETE, Some(name), None) => cluster.delete(&resource, &name),
        (Method::GET, Some(name), Some("scale")) if resource == "deployments" => {
            cluster.scale(&name)
        }
        (Method::PATCH, Some(name), Some("scale")) if resource == "deployments" => {
            let Some(replicas) = body["spec"]["replicas"].as_i64() else {
                return status(StatusCode::BAD_REQUEST, "BadRequest", "spec.replicas");
            };
            let key = ("deployments".to_owned(), name.clone());
            match cluster.objects.get_mut(&key) {
                Some(deployment) => {
                    deployment["spec"]["replicas"] = json!(replicas);
                    cluster.bump(&key);
                    cluster.scale(&name)
                }
                None => not_found("deployments", &name),
            }
        }
        (method, _, _) => status(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            &format!("{method} {}", uri.path()),
        ),
    }
}

/// `(resource, name, subresource)` of a namespaced path in [`NAMESPACE`].
/// Knative Services are `ksvc` here, apart from core Services.
fn parse_path(path: &str) -> Option<(String, Option<String>, Option<String>)> {
    let (knative, rest) = [
        "/api/v1/",
        "/apis/apps/v1/",
        "/apis/discovery.k8s.io/v1/",
        "/apis/serving.knative.dev/v1/",
    ]
    .iter()
    .find_map(|prefix| Some((prefix.contains("knative"), path.strip_prefix(prefix)?)))?;
    let rest = rest.strip_prefix("namespaces/")?;
    let mut parts = rest.split('/');
    if parts.next()? != NAMESPACE {
        return None;
    }
    let resource = match parts.next()? {
        "services" if knative => "ksvc".to_owned(),
        other => other.to_owned(),
    };
    let name = parts.next().map(str::to_owned);
    let sub = parts.next().map(str::to_owned);
    Some((resource, name, sub))
}

impl Cluster {
    fn object(&self, resource: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&(resource.to_owned(), name.to_owned()))
            .cloned()
    }

    fn list(&self, resource: &str, selector: Option<&String>) -> Response {
        let objects = self
            .objects
            .iter()
            .filter(|((r, _), _)| r == resource)
            .map(|(_, object)| object.clone());
        self.list_of(objects, selector)
    }

    /// The objects among `objects` that `selector` (`k=v,…`) picks, as a list.
    fn list_of(&self, objects: impl Iterator<Item = Value>, selector: Option<&String>) -> Response {
        let wanted: Vec<(&str, &str)> = selector
            .map(|s| {
                s.split(',')
                    .filter_map(|term| term.split_once('='))
                    .collect()
            })
            .unwrap_or_default();
        let items: Vec<Value> = objects
            .filter(|object| {
                wanted
                    .iter()
                    .all(|(k, v)| object["metadata"]["labels"][*k] == *v)
            })
            .collect();
        axum::Json(json!({
            "apiVersion": "v1",
            "kind": "List",
            "metadata": { "resourceVersion": self.version.to_string() },
            "items": items,
        }))
        .into_response()
    }

    /// Every pod as the API shows it: the Deployment's pod template, and a status.
    fn list_pods(&self, selector: Option<&String>) -> Response {
        let pods: Vec<Value> = self
            .pods
            .iter()
            .flat_map(|(deployment, pods)| pods.iter().map(move |pod| (deployment, pod)))
            .filter_map(|(deployment, pod)| {
                let template = &self
                    .objects
                    .get(&("deployments".to_owned(), deployment.clone()))?["spec"]["template"];
                let status = self.statuses.get(deployment).map(|(status, _)| status.clone());
                let status = status.unwrap_or_else(|| {
                    json!({
                        "phase": "Running",
                        "conditions": [{ "type": "Ready", "status": if pod.ready { "True" } else { "False" } }],
                        "containerStatuses": [{
                            "name": template["spec"]["containers"][0]["name"],
                            "image": template["spec"]["containers"][0]["image"],
                            "imageID": "",
                            "ready": pod.ready,
                            "restartCount": 0,
                            "state": { "running": { "startedAt": "2026-01-01T00:00:00Z" } },
                        }],
                    })
                });
                Some(json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": pod.name,
                        "namespace": NAMESPACE,
                        "uid": pod.uid,
                        "labels": template["metadata"]["labels"],
                    },
                    "spec": template["spec"],
                    "status": status,
                }))
            })
            .collect();
        self.list_of(pods.into_iter(), selector)
    }

    fn pod(&self, name: &str) -> Option<&Pod> {
        self.pods.values().flatten().find(|pod| pod.name == name)
    }

    fn patch(&mut self, resource: &str, name: &str, content_type: &str, body: Value) -> Response {
        let key = (resource.to_owned(), name.to_owned());
        let apply = content_type == "application/apply-patch+yaml";
        match self.objects.get_mut(&key) {
            Some(object) => {
                if !apply && content_type != "application/merge-patch+json" {
                    return status(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "UnsupportedMediaType",
                        content_type,
                    );
                }
                merge(object, &body);
            }
            None if apply => {
                if body["metadata"]["name"] != name {
                    return status(StatusCode::BAD_REQUEST, "BadRequest", "name mismatch");
                }
                let mut object = body;
                self.version += 1;
                object["metadata"]["uid"] = json!(format!("uid-{resource}-{}", self.version));
                object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
                object["metadata"]["generation"] = json!(1);
                if resource == "deployments" && object["spec"]["replicas"].is_null() {
                    object["spec"]["replicas"] = json!(1);
                }
                self.objects.insert(key.clone(), object);
            }
            None => return not_found(resource, name),
        }
        self.bump(&key);
        axum::Json(self.objects[&key].clone()).into_response()
    }

    fn delete(&mut self, resource: &str, name: &str) -> Response {
        let Some(object) = self.objects.remove(&(resource.to_owned(), name.to_owned())) else {
            return not_found(resource, name);
        };
        // The garbage collector: what this object owned goes with it.
        let uid = object["metadata"]["uid"].clone();
        self.objects.retain(|_, owned| {
            !owned["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
        });
        if resource == "deployments" {
            self.pods.remove(name);
        }
        axum::Json(object).into_response()
    }

    fn scale(&self, name: &str) -> Response {
        let Some(deployment) = self.object("deployments", name) else {
            return not_found("deployments", name);
        };
        axum::Json(json!({
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": { "name": name, "namespace": NAMESPACE },
            "spec": { "replicas": deployment["spec"]["replicas"] },
            "status": { "replicas": deployment["status"]["replicas"].as_i64().unwrap_or(0) },
        }))
        .into_response()
    }

    fn bump(&mut self, key: &(String, String)) {
        self.version += 1;
        let version = self.version.to_string();
        if let Some(object) = self.objects.get_mut(key) {
            object["metadata"]["resourceVersion"] = json!(version);
        }
    }

    /// What the Deployment, ReplicaSet, kubelet and EndpointSlice controllers would do by now.
    fn reconcile(&mut self) {
        let deployments: Vec<(String, i64)> = self
            .objects
            .iter()
            .filter(|((r, _), _)| r == "deployments")
            .map(|((_, name), d)| (name.clone(), d["spec"]["replicas"].as_i64().unwrap_or(0)))
            .collect();
        let mut serial = self.version;
        for (name, replicas) in &deployments {
            let wanted = usize::try_from(*replicas).unwrap_or(0);
            let mut pods = self.pods.remove(name).unwrap_or_default();
            while pods.len() < wanted {
                serial += 1;
                let log = Arc::new(PodLog::default());
                for line in self
                    .statuses
                    .get(name)
                    .into_iter()
                    .flat_map(|(_, output)| output)
                {
                    log.print(line);
                }
                let container = match self.behaviour {
                    Pods::Simulated { .. } => None,
                    Pods::Processes => self.run_container(name, &log),
                };
                pods.push(Pod {
                    name: format!("{name}-pod-{serial}"),
                    uid: format!("uid-pod-{serial}"),
                    created: Instant::now(),
                    container,
                    ready: false,
                    log,
                });
            }
            // Scale-down removes the newest pods first, as a ReplicaSet prefers.
            pods.truncate(wanted);
            let behaviour = self.behaviour;
            let failing = self.statuses.contains_key(name);
            for pod in &mut pods {
                pod.ready = !failing && behaviour.probe(pod);
            }
            let ready = pods.iter().filter(|pod| pod.ready).count();
            self.pods.insert(name.clone(), pods);
            let status = json!({
                "observedGeneration": 1,
                "replicas": wanted,
                "updatedReplicas": wanted,
                "readyReplicas": ready,
                "availableReplicas": ready,
                "conditions": [{
                    "type": "Available",
                    "status": if ready >= wanted { "True" } else { "False" },
                    "reason": if ready >= wanted { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                    "message": if ready >= wanted {
                        "Deployment has minimum availability.".to_owned()
                    } else {
                        format!("Deployment does not have minimum availability: {ready} of {wanted} pod(s) ready.")
                    },
                }],
            });
            if let Some(deployment) = self
                .objects
                .get_mut(&("deployments".to_owned(), name.clone()))
            {
                deployment["status"] = status;
            }
        }
        // Knative: a Service is ready at once and reachable at its cluster-local address
        // (here the simulated pod's), its activator scaling pods behind it.
        if let Pods::Simulated { addr, .. } = self.behaviour {
            for ((r, _), service) in self.objects.iter_mut() {
                if r == "ksvc" {
                    service["status"] = json!({
                        "conditions": [{ "type": "Ready", "status": "True" }],
                        "address": { "url": format!("http://{addr}") },
                    });
                }
            }
        }
        // EndpointSlices, rebuilt: one per Service (simulated pods share an address) or one per
        // pod (processes listen on ports of their own).
        self.objects.retain(|(r, _), _| r != "endpointslices");
        let services: Vec<(String, Value)> = self
            .objects
            .iter()
            .filter(|((r, _), _)| r == "services")
            .map(|((_, name), s)| (name.clone(), s["spec"]["selector"].clone()))
            .collect();
        for (service, selector) in services {
            let mut slices: Vec<(String, u16, Vec<Value>)> = Vec::new();
            for ((r, deployment), object) in &self.objects {
                if r != "deployments" {
                    continue;
                }
                let labels = &object["spec"]["template"]["metadata"]["labels"];
                let selected = selector
                    .as_object()
                    .is_some_and(|s| s.iter().all(|(k, v)| labels[k] == *v));
                if !selected {
                    continue;
                }
                for pod in self.pods.get(deployment).into_iter().flatten() {
                    let ready = pod.ready;
                    let address = match self.behaviour {
                        Pods::Simulated { addr, .. } => addr.ip(),
                        Pods::Processes => POD_IP.into(),
                    };
                    let endpoint = json!({
                        "addresses": [address.to_string()],
                        "conditions": { "ready": ready, "serving": ready, "terminating": false },
                        "targetRef": { "kind": "Pod", "name": pod.name, "namespace": NAMESPACE },
                    });
                    match (&self.behaviour, &pod.container) {
                        (Pods::Simulated { addr, .. }, _) => match slices.first_mut() {
                            Some((_, _, endpoints)) => endpoints.push(endpoint),
                            None => slices.push((
                                format!("{service}-fake"),
                                addr.port(),
                                vec![endpoint],
                            )),
                        },
                        (Pods::Processes, Some(container)) => {
                            slices.push((
                                format!("{service}-{}", pod.name),
                                container.port,
                                vec![endpoint],
                            ));
                        }
                        (Pods::Processes, None) => {}
                    }
                }
            }
            if slices.is_empty()
                && let Pods::Simulated { addr, .. } = self.behaviour
            {
                slices.push((format!("{service}-fake"), addr.port(), Vec::new()));
            }
            for (name, port, endpoints) in slices {
                let slice = json!({
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": name,
                        "namespace": NAMESPACE,
                        "labels": { "kubernetes.io/service-name": service },
                    },
                    "addressType": "IPv4",
                    "endpoints": endpoints,
                    "ports": [{ "name": "mcp", "port": port, "protocol": "TCP" }],
                });
                self.objects
                    .insert(("endpointslices".to_owned(), name), slice);
            }
        }
    }

    /// Runs the container of Deployment `name`'s pod template as the kubelet would: its
    /// command and arguments in its working directory with exactly its environment, secret
    /// references resolved from their Secret. The pod's network is this machine's loopback,
    /// so the pod gets a port of its own instead of the spec's.
    #[allow(clippy::disallowed_methods)] // tests may spawn the server they test
    fn run_container(&self, name: &str, log: &Arc<PodLog>) -> Option<Container> {
        let deployment = self
            .objects
            .get(&("deployments".to_owned(), name.to_owned()))?;
        let spec = &deployment["spec"]["template"]["spec"]["containers"][0];
        let strings = |value: &Value| -> Vec<String> {
            value
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        let command = strings(&spec["command"]);
        let port = std::net::TcpListener::bind((POD_IP, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut env = Vec::new();
        for var in spec["env"].as_array().into_iter().flatten() {
            let name = var["name"].as_str().expect("env name").to_owned();
            let value = match var["value"].as_str() {
                Some(value) => value.to_owned(),
                None => {
                    let reference = &var["valueFrom"]["secretKeyRef"];
                    let secret = self
                        .objects
                        .get(&("secrets".to_owned(), reference["name"].as_str()?.to_owned()))
                        .expect(
                            "the referenced Secret exists (else the kubelet cannot start the pod)",
                        );
                    let data = secret["data"][reference["key"].as_str()?].clone();
                    let bytes: k8s_openapi::ByteString =
                        serde_json::from_value(data).expect("the referenced key holds base64");
                    String::from_utf8(bytes.0).expect("utf-8 secret")
                }
            };
            env.push((name, value));
        }
        env.push(("SKYPORT_PORT".to_owned(), port.to_string()));
        // The spec says 0.0.0.0 (every address of the pod); here the pod's address is
        // POD_IP, which only a launcher that honours SKYPORT_HOST listens on.
        env.push(("SKYPORT_HOST".to_owned(), POD_IP.to_string()));
        let mut child = std::process::Command::new(command.first()?)
            .args(&command[1..])
            .args(strings(&spec["args"]))
            .current_dir(spec["workingDir"].as_str()?)
            .env_clear()
            .envs(env)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the container's command starts");
        // The container runtime: both streams, line by line, into the pod's log.
        let outputs: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("piped stdout")),
            Box::new(child.stderr.take().expect("piped stderr")),
        ];
        for output in outputs {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(output).lines() {
                    let Ok(line) = line else { return };
                    log.print(&line);
                }
            });
        }
        Some(Container { child, port })
    }
}

impl Pods {
    /// The readiness probe: time for simulated pods, the `tcpSocket` probe for processes.
    fn probe(self, pod: &mut Pod) -> bool {
        match (self, &mut pod.container) {
            (Pods::Simulated { ready_after, .. }, _) => {
                ready_after.is_some_and(|after| pod.created.elapsed() >= after)
            }
            (Pods::Processes, Some(container)) => {
                matches!(container.child.try_wait(), Ok(None))
                    && std::net::TcpStream::connect_timeout(
                        &SocketAddr::from((POD_IP, container.port)),
                        Duration::from_millis(100),
                    )
                    .is_ok()
            }
            (Pods::Processes, None) => false,
        }
    }
}

/// `GET pods/NAME/log`: the pod's lines from `sinceTime` or the last `tailLines`, followed
/// with `follow=true` until the pod is gone or the test drops the stream.
fn log(cluster: &Arc<Mutex<Cluster>>, pod: &str, query: &HashMap<String, String>) -> Response {
    let (log, streams) = {
        let cluster = cluster.lock();
        let Some(pod) = cluster.pod(pod) else {
            return not_found("pods", pod);
        };
        (Arc::downgrade(&pod.log), cluster.streams.clone())
    };
    let timestamps = query.get("timestamps").is_some_and(|v| v == "true");
    let since: Option<Timestamp> = query
        .get("sinceTime")
        .map(|t| t.parse().expect("sinceTime is RFC 3339"));
    let render = move |lines: &[(Timestamp, String)]| -> String {
        lines
            .iter()
            .filter(|(at, _)| since.is_none_or(|since| *at >= since))
            .map(|(at, line)| {
                if timestamps {
                    format!("{at} {line}\n")
                } else {
                    format!("{line}\n")
                }
            })
            .collect()
    };
    let lines = log
        .upgrade()
        .map(|log| log.0.lock().clone())
        .unwrap_or_default();
    let skip = match query
        .get("tailLines")
        .map(|n| n.parse::<usize>().expect("tailLines"))
    {
        Some(tail) => lines.len().saturating_sub(tail),
        None => 0,
    };
    let first = render(&lines[skip..]);
    if query.get("follow").is_none_or(|v| v != "true") {
        return first.into_response();
    }
    // Followed: what is there now, then every new line, polled.
    let stream = Stream {
        log,
        sent: lines.len(),
        drops: streams.drops.load(Ordering::SeqCst),
        streams,
    };
    stream.streams.open.fetch_add(1, Ordering::SeqCst);
    let body = futures_util::stream::unfold(
        (Some(first), stream),
        move |(first, mut stream)| async move {
            if let Some(first) = first {
                return Some((Ok::<_, std::io::Error>(Bytes::from(first)), (None, stream)));
            }
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if stream.streams.drops.load(Ordering::SeqCst) != stream.drops {
                    return None;
                }
                let log = stream.log.upgrade()?;
                let lines = log.0.lock()[stream.sent..].to_vec();
                if !lines.is_empty() {
                    stream.sent += lines.len();
                    return Some((Ok(Bytes::from(render(&lines))), (None, stream)));
                }
            }
        },
    );
    Body::from_stream(body).into_response()
}

/// An open `follow` stream of a pod's log.
struct Stream {
    log: std::sync::Weak<PodLog>,
    sent: usize,
    /// [`Streams::drops`] when it opened.
    drops: u64,
    streams: Arc<Streams>,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.streams.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(target), Some(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

fn decode(value: &str) -> String {
    let mut out = Vec::new();
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn not_found(resource: &str, name: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{resource} \"{name}\" not found"),
    )
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    (
        code,
        axum::Json(json!({
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code.as_u16(),
        })),
    )
        .into_response()
}
