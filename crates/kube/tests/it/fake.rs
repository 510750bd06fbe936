//! A fake Kubernetes API server: the endpoints `KubeRuntime` calls, on 127.0.0.1, with the
//! behaviour of the real ones that the runtime depends on:
//!
//! - server-side apply creates or merges (`application/apply-patch+yaml`), merge patches
//!   follow RFC 7386, and a Deployment created without replicas gets one;
//! - the scale subresource reads and writes a Deployment's `spec.replicas`;
//! - a "controller" ticks every 50 ms: it makes or removes pods to match each Deployment's
//!   replicas, a pod becomes ready `ready_after` its creation (never, when told so), the
//!   Deployment's status and conditions follow, and each Service gets an EndpointSlice listing
//!   the pods its selector picks, with their readiness;
//! - deleting an object deletes the objects it owns (`ownerReferences`), as the garbage
//!   collector would; unknown objects are `404` with a `Status` body.
//!
//! Every pod "listens" at `pod_addr`: the test runs a real HTTP server there, so leases can
//! be used. Everything else (watches, field selectors, other namespaces) is not implemented
//! and answers 501, so a runtime that starts using it fails loudly here.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{Value, json};

pub const NAMESPACE: &str = "skyport-servers";

/// The fake's knobs.
#[derive(Clone, Copy)]
pub struct Behaviour {
    /// Where every pod's endpoint points.
    pub pod_addr: SocketAddr,
    /// How long a new pod takes to become ready; `None`: never (a crash-looping image).
    pub ready_after: Option<Duration>,
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
    pub content_type: String,
}

struct Cluster {
    behaviour: Behaviour,
    /// (resource, name) → object.
    objects: BTreeMap<(String, String), Value>,
    /// Deployment name → its pods (name, created).
    pods: HashMap<String, Vec<(String, Instant)>>,
    calls: Vec<Call>,
    version: u64,
}

impl FakeApi {
    pub async fn start(behaviour: Behaviour) -> FakeApi {
        let cluster = Arc::new(Mutex::new(Cluster {
            behaviour,
            objects: BTreeMap::new(),
            pods: HashMap::new(),
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
    let mut cluster = cluster.lock();
    cluster.calls.push(Call {
        method: method.clone(),
        path: uri.path().to_owned(),
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
fn parse_path(path: &str) -> Option<(String, Option<String>, Option<String>)> {
    let rest = ["/api/v1/", "/apis/apps/v1/", "/apis/discovery.k8s.io/v1/"]
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))?;
    let rest = rest.strip_prefix("namespaces/")?;
    let mut parts = rest.split('/');
    if parts.next()? != NAMESPACE {
        return None;
    }
    let resource = parts.next()?.to_owned();
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
        let wanted: Vec<(&str, &str)> = selector
            .map(|s| {
                s.split(',')
                    .filter_map(|term| term.split_once('='))
                    .collect()
            })
            .unwrap_or_default();
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|((r, _), _)| r == resource)
            .map(|(_, object)| object)
            .filter(|object| {
                wanted
                    .iter()
                    .all(|(k, v)| object["metadata"]["labels"][*k] == *v)
            })
            .cloned()
            .collect();
        axum::Json(json!({
            "apiVersion": "v1",
            "kind": "List",
            "metadata": { "resourceVersion": self.version.to_string() },
            "items": items,
        }))
        .into_response()
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

    /// What the Deployment, ReplicaSet and EndpointSlice controllers would do by now.
    fn reconcile(&mut self) {
        let now = Instant::now();
        let ready_after = self.behaviour.ready_after;
        let is_ready = |created: &Instant| ready_after.is_some_and(|after| now >= *created + after);
        let deployments: Vec<(String, i64)> = self
            .objects
            .iter()
            .filter(|((r, _), _)| r == "deployments")
            .map(|((_, name), d)| (name.clone(), d["spec"]["replicas"].as_i64().unwrap_or(0)))
            .collect();
        let mut serial = self.version;
        for (name, replicas) in &deployments {
            let pods = self.pods.entry(name.clone()).or_default();
            let wanted = usize::try_from(*replicas).unwrap_or(0);
            while pods.len() < wanted {
                serial += 1;
                pods.push((format!("{name}-pod-{serial}"), now));
            }
            // Scale-down removes the newest pods first, as a ReplicaSet prefers.
            pods.truncate(wanted);
            let ready = pods.iter().filter(|(_, created)| is_ready(created)).count();
            let status = json!({
                "observedGeneration": 1,
                "replicas": pods.len(),
                "updatedReplicas": pods.len(),
                "readyReplicas": ready,
                "availableReplicas": ready,
                "conditions": [{
                    "type": "Available",
                    "status": if ready >= wanted { "True" } else { "False" },
                    "reason": if ready >= wanted { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                    "message": if ready >= wanted {
                        "Deployment has minimum availability.".to_owned()
                    } else {
                        format!("Deployment does not have minimum availability: {} of {wanted} pod(s) ready.", ready)
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
        // One EndpointSlice per Service, listing the pods of Deployments its selector picks.
        let services: Vec<(String, Value)> = self
            .objects
            .iter()
            .filter(|((r, _), _)| r == "services")
            .map(|((_, name), s)| (name.clone(), s["spec"]["selector"].clone()))
            .collect();
        self.objects.retain(|(r, name), _| {
            r != "endpointslices" || services.iter().any(|(s, _)| format!("{s}-fake") == *name)
        });
        for (service, selector) in services {
            let mut endpoints = Vec::new();
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
                for (pod, created) in self.pods.get(deployment).into_iter().flatten() {
                    endpoints.push(json!({
                        "addresses": [self.behaviour.pod_addr.ip().to_string()],
                        "conditions": { "ready": is_ready(created), "serving": is_ready(created), "terminating": false },
                        "targetRef": { "kind": "Pod", "name": pod, "namespace": NAMESPACE },
                    }));
                }
            }
            let slice = json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": format!("{service}-fake"),
                    "namespace": NAMESPACE,
                    "labels": { "kubernetes.io/service-name": service },
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": [{ "name": "mcp", "port": self.behaviour.pod_addr.port(), "protocol": "TCP" }],
            });
            self.objects.insert(
                ("endpointslices".to_owned(), format!("{service}-fake")),
                slice,
            );
        }
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
