//! Pods that cannot serve make a start fail at once with what happened, instead of timing
//! out: a container killed for memory, one crash-looping, an image that cannot be pulled, a
//! pod no node can take. The failure is in the deployment's log too.

use serde_json::{Value, json};
use skyport_kube::object_name;
use skyport_runtime::{Runtime, StartError};
use skyport_store::LogStream;

use crate::logs::Cluster;

/// The start's error and the deployment's log after pods report `status` having printed
/// `output`; the pod's name and the deployment id read `POD` and `DEPLOYMENT`.
async fn check(status: Value, output: &[&str]) -> (StartError, String, String) {
    let c = Cluster::start().await;
    let name = object_name(&c.target);
    c.api.set_pod_status(&name, status, output);
    let error = c
        .runtime
        .acquire(&c.target, None)
        .await
        .expect_err("a pod that cannot serve");
    let lines = c
        .lines_until("the failure in the deployment's log", |lines| {
            lines.iter().any(|l| l.line.stream == LogStream::Skyport)
        })
        .await;
    let pod = c.api.pods(&name).pop().expect("the pod");
    let normalize = |text: String| {
        text.replace(&pod, "POD")
            .replace(c.target.deployment.as_str(), "DEPLOYMENT")
    };
    let event = lines
        .iter()
        .find(|l| l.line.stream == LogStream::Skyport)
        .map(|l| l.line.line.clone())
        .unwrap_or_default();
    let message = normalize(error.to_string());
    (error, message, normalize(event))
}

/// A container status of the server's container with `state` and `last_state`.
fn container(restarts: u32, state: Value, last_state: Value) -> Value {
    json!({
        "phase": "Running",
        "containerStatuses": [{
            "name": "server",
            "image": "registry.example.com/skyport/weather:dep",
            "imageID": "",
            "ready": false,
            "restartCount": restarts,
            "state": state,
            "lastState": last_state,
        }],
    })
}

fn crash_looping(exit_code: i32, reason: &str) -> Value {
    container(
        3,
        json!({ "waiting": { "reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container" } }),
        json!({ "terminated": { "exitCode": exit_code, "reason": reason, "finishedAt": "2026-01-01T00:00:00Z" } }),
    )
}

#[tokio::test]
async fn an_out_of_memory_kill_fails_the_start_with_the_limit() {
    let (error, message, event) = check(
        crash_looping(137, "OOMKilled"),
        &["loading the model", "allocating 2 GiB, key k-123"],
    )
    .await;
    let StartError::Exited { exit } = &error else {
        panic!("expected an exit, got {error:?}");
    };
    assert_eq!(exit.out_of_memory, Some(256 * 1024 * 1024));
    insta::assert_snapshot!("out_of_memory", message);
    assert_eq!(event, format!("start failed: {message}"));
}

#[tokio::test]
async fn starts_that_keep_failing_back_off_like_the_local_runtimes() {
    let c = Cluster::start().await;
    c.api.set_pod_status(
        &object_name(&c.target),
        crash_looping(137, "OOMKilled"),
        &[],
    );
    // The first two failures are retried at once; from the third a request is answered
    // with the last failure until the wait is over (1 s, then 2 s, 4 s…), which bounds
    // this loop well before its end.
    let mut errors = Vec::new();
    for _ in 0..6 {
        let error = c
            .runtime
            .acquire(&c.target, None)
            .await
            .expect_err("a failing pod");
        let backing_off = matches!(error, StartError::CrashLoop { .. });
        errors.push(error);
        if backing_off {
            break;
        }
    }
    let Some(StartError::CrashLoop { last, .. }) = errors.last() else {
        panic!("no back-off after {errors:?}");
    };
    assert!(
        matches!(**last, StartError::Exited { ref exit } if exit.out_of_memory.is_some()),
        "{last:?}"
    );
    assert!(
        errors.len() >= 3,
        "backed off before the third failure: {errors:?}"
    );
}

#[tokio::test]
async fn a_crash_loop_fails_the_start_with_the_containers_output() {
    let (error, message, _) = check(
        crash_looping(1, "Error"),
        &["ImportError: no module named requests"],
    )
    .await;
    assert!(matches!(error, StartError::Exited { .. }), "{error:?}");
    insta::assert_snapshot!("crash_loop", message);
}

#[tokio::test]
async fn an_image_that_cannot_be_pulled_fails_the_start() {
    let (error, message, event) = check(
        container(
            0,
            json!({ "waiting": { "reason": "ImagePullBackOff", "message": "Back-off pulling image" } }),
            Value::Null,
        ),
        &[],
    )
    .await;
    assert!(matches!(error, StartError::Spawn(_)), "{error:?}");
    insta::assert_snapshot!("image_pull", message);
    assert_eq!(event, format!("start failed: {message}"));
}

#[tokio::test]
async fn an_unschedulable_pod_fails_the_start() {
    let (error, message, _) = check(
        json!({
            "phase": "Pending",
            "conditions": [{
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient memory.",
            }],
        }),
        &[],
    )
    .await;
    assert!(matches!(error, StartError::Spawn(_)), "{error:?}");
    insta::assert_snapshot!("unschedulable", message);
}
