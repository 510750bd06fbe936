//! Pod logs into the store: what a started deployment's pod prints is in that deployment's
//! log (a real SQLite store), at the pod's timestamps, with the pod as the instance and
//! secret values redacted; a dropped log stream resumes without losing or repeating a line;
//! following ends with the deployment.

use std::time::{Duration, Instant};

use skyport_kube::{KubeRuntime, object_name};
use skyport_runtime::{Runtime, Target};
use skyport_store::{LogLine, LogQuery, LogSource, LogStream, Store};

use crate::fake::{FakeApi, Pods};
use crate::flow::{in_memory_store, runtime_with_store, serve_pod, target};

/// A fake cluster whose pods are ready at once, a store, and a runtime writing to it.
pub(crate) struct Cluster {
    pub(crate) api: FakeApi,
    pub(crate) store: Store,
    pub(crate) runtime: KubeRuntime,
    /// A deployment of a server the store knows (log lines need their server).
    pub(crate) target: Target,
}

impl Cluster {
    pub(crate) async fn start() -> Cluster {
        let pod = serve_pod().await;
        let api = FakeApi::start(Pods::Simulated {
            addr: pod,
            ready_after: Some(Duration::from_millis(100)),
        })
        .await;
        let store = in_memory_store().await;
        let mut target = target(Duration::from_secs(60), 0);
        let (server, _) = store
            .servers()
            .ensure(&target.server_name, None)
            .await
            .expect("the server");
        target.server_id = server.id;
        let runtime = runtime_with_store(&api, &store).await;
        Cluster {
            api,
            store,
            runtime,
            target,
        }
    }

    /// The deployment's instance lines once there are at least `count` (10 s at most).
    pub(crate) async fn lines(&self, count: usize) -> Vec<LogLine> {
        self.lines_until(&format!("{count} log lines"), |lines| lines.len() >= count)
            .await
    }

    /// The deployment's instance lines once `enough` says so (10 s at most).
    pub(crate) async fn lines_until(
        &self,
        what: &str,
        enough: impl Fn(&[LogLine]) -> bool,
    ) -> Vec<LogLine> {
        instance_lines(&self.store, &self.target, what, enough).await
    }

    /// Waits (up to 10 s) until `condition` holds.
    async fn eventually(&self, what: &str, condition: impl Fn(&FakeApi) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition(&self.api) {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The one pod of the deployment.
    fn pod(&self) -> String {
        let pods = self.api.pods(&object_name(&self.target));
        assert_eq!(pods.len(), 1, "one pod: {pods:?}");
        pods[0].clone()
    }

    /// Requests for the pod's log so far.
    fn log_requests(&self) -> Vec<String> {
        self.api
            .calls()
            .into_iter()
            .filter(|call| call.path.ends_with("/log"))
            .map(|call| call.query)
            .collect()
    }
}

/// The instance lines of `target`'s deployment in `store` once `enough` says so (10 s at
/// most).
pub(crate) async fn instance_lines(
    store: &Store,
    target: &Target,
    what: &str,
    enough: impl Fn(&[LogLine]) -> bool,
) -> Vec<LogLine> {
    let query = LogQuery {
        deployment_id: Some(target.deployment.clone()),
        source: Some(LogSource::Instance),
        ..LogQuery::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = store.logs().tail(&query, 1000).await.expect("logs");
        if enough(&lines) {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; have {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lines as `stream text`, one per line.
fn text(lines: &[LogLine]) -> String {
    lines
        .iter()
        .map(|l| format!("{:?} {}", l.line.stream, l.line.line))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_pods_output_is_in_its_deployments_log_with_secrets_redacted() {
    let c = Cluster::start().await;
    let lease = c.runtime.acquire(&c.target, None).await.expect("a pod");
    let pod = c.pod();
    c.api.print(&pod, "weather server starting");
    c.api.print(&pod, "calling the API with key k-123");
    c.api.print(&pod, &"x".repeat(40_000));

    let lines = c.lines(3).await;
    insta::assert_snapshot!(text(&lines).replace(&"x".repeat(8 * 1024), "x…"), @r"
    Stdout weather server starting
    Stdout calling the API with key [redacted:API_KEY]
    Stdout x… …[truncated]
    ");
    let printed = c.api.printed(&pod);
    for (line, (at, _)) in lines.iter().zip(&printed) {
        assert_eq!(line.line.server_id, c.target.server_id);
        assert_eq!(line.line.instance_id.as_ref(), Some(lease.instance()));
        assert_eq!(
            line.line.at.as_millisecond(),
            at.as_millisecond(),
            "the pod's timestamp"
        );
    }
    let request = &c.log_requests()[0];
    for parameter in ["follow=true", "timestamps=true", "container=server"] {
        assert!(request.contains(parameter), "{parameter} in {request}");
    }
}

#[tokio::test]
async fn a_dropped_log_stream_resumes_without_losing_or_repeating_lines() {
    let c = Cluster::start().await;
    let _lease = c.runtime.acquire(&c.target, None).await.expect("a pod");
    let pod = c.pod();
    for n in 1..=3 {
        c.api.print(&pod, &format!("line {n}"));
    }
    c.lines(3).await;

    c.api.drop_log_streams();
    c.eventually("a second log request", |_| c.log_requests().len() >= 2)
        .await;
    for n in 4..=6 {
        c.api.print(&pod, &format!("line {n}"));
    }
    c.lines(6).await;
    // The stream was asked to start at the second of the last line written, which repeats
    // lines 1–3 when they share it: they are not written twice.
    let resumed = &c.log_requests()[1];
    assert!(resumed.contains("sinceTime="), "{resumed}");
    // A last line, so that any repeat the resumed stream made is stored before it.
    c.api.print(&pod, "line 7");
    let lines = c.lines(7).await;
    let expected: Vec<String> = (1..=7).map(|n| format!("line {n}")).collect();
    let stored: Vec<String> = lines.iter().map(|l| l.line.line.clone()).collect();
    assert_eq!(stored, expected);
    assert!(lines.iter().all(|l| l.line.stream == LogStream::Stdout));
}

#[tokio::test]
async fn a_new_follower_of_a_pod_starts_where_its_stored_lines_end() {
    let c = Cluster::start().await;
    let lease = c.runtime.acquire(&c.target, None).await.expect("a pod");
    let pod = c.pod();
    for n in 1..=3 {
        c.api.print(&pod, &format!("line {n}"));
    }
    c.lines(3).await;
    // Skyport restarts (or another replica takes the claim over): the pod runs on.
    drop(lease);
    c.runtime.shutdown(Duration::from_secs(1)).await;
    c.eventually("the log no longer followed", |api| api.log_streams() == 0)
        .await;
    let next = runtime_with_store(&c.api, &c.store).await;
    let _lease = next.acquire(&c.target, None).await.expect("the same pod");
    c.api.print(&pod, "line 4");
    let lines = c.lines(4).await;
    let stored: Vec<&str> = lines.iter().map(|l| l.line.line.as_str()).collect();
    assert_eq!(stored, ["line 1", "line 2", "line 3", "line 4"]);
}

#[tokio::test]
async fn a_running_pods_out_of_memory_kill_is_in_its_log() {
    let c = Cluster::start().await;
    let lease = c.runtime.acquire(&c.target, None).await.expect("a pod");
    c.eventually("the pod's log followed", |api| api.log_streams() == 1)
        .await;
    let pod = c.pod();
    c.api.set_pod_status(
        &object_name(&c.target),
        serde_json::json!({
            "phase": "Running",
            "containerStatuses": [{
                "name": "server", "image": "img", "imageID": "", "ready": false,
                "restartCount": 1,
                "state": { "running": {} },
                "lastState": { "terminated": { "exitCode": 137, "reason": "OOMKilled" } },
            }],
        }),
        &[],
    );
    let lines = c
        .lines_until("the restart in the log", |lines| {
            lines.iter().any(|l| l.line.stream == LogStream::Skyport)
        })
        .await;
    let event = lines
        .iter()
        .find(|l| l.line.stream == LogStream::Skyport)
        .expect("the restart");
    assert_eq!(
        event.line.line.replace(&pod, "POD"),
        "pod POD was killed: out of memory (limit 256 MiB, exit code 137); raise it with `skyport servers set NAME --memory …`"
    );
    assert_eq!(event.line.instance_id.as_ref(), Some(lease.instance()));
}

#[tokio::test]
async fn following_ends_with_the_retired_deployments_pod() {
    let c = Cluster::start().await;
    let lease = c.runtime.acquire(&c.target, None).await.expect("a pod");
    c.eventually("the pod's log followed", |api| api.log_streams() == 1)
        .await;
    drop(lease);
    c.runtime
        .retire(&c.target.deployment, Duration::from_secs(1))
        .await;
    c.eventually("no log followed", |api| api.log_streams() == 0)
        .await;
}
