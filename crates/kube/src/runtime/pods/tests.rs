//! Which pod statuses are failures, and which are not (yet).

use serde_json::json;

use super::*;

fn pod(status: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": "skyport-weather-1-abc" },
        "status": status,
    }))
    .expect("a pod")
}

fn server(state: serde_json::Value, last_state: serde_json::Value) -> serde_json::Value {
    json!({
        "containerStatuses": [{
            "name": "server", "image": "img", "imageID": "", "ready": false,
            "restartCount": 1, "state": state, "lastState": last_state,
        }],
    })
}

fn since() -> Timestamp {
    "2026-01-01T00:00:10.5Z".parse().expect("timestamp")
}

#[test]
fn a_pod_starting_up_is_no_failure() {
    let creating = server(
        json!({ "waiting": { "reason": "ContainerCreating" } }),
        json!({}),
    );
    assert_eq!(failure(&pod(creating), since()), None);
    let running = server(json!({ "running": {} }), json!({}));
    assert_eq!(failure(&pod(running), since()), None);
}

#[test]
fn an_exit_before_the_start_is_history_and_one_during_it_a_failure() {
    let exited_at = |at: &str| {
        server(
            json!({ "running": {} }),
            json!({ "terminated": { "exitCode": 137, "reason": "OOMKilled", "finishedAt": at } }),
        )
    };
    assert_eq!(
        failure(&pod(exited_at("2026-01-01T00:00:09Z")), since()),
        None
    );
    // `finishedAt` has whole seconds: the start's own second counts.
    let failed = failure(&pod(exited_at("2026-01-01T00:00:10Z")), since());
    assert!(
        matches!(failed, Some(PodFailure::OutOfMemory { ref exit, .. }) if exit.restarted && exit.code == 137),
        "{failed:?}"
    );
}

#[test]
fn a_failing_pod_is_classified() {
    let image = server(
        json!({ "waiting": { "reason": "ErrImagePull", "message": "not found" } }),
        json!({}),
    );
    assert_eq!(
        failure(&pod(image), since()),
        Some(PodFailure::Image {
            pod: "skyport-weather-1-abc".to_owned(),
            image: "img".to_owned(),
            why: "ErrImagePull: not found".to_owned(),
        })
    );
    let config = server(
        json!({ "waiting": { "reason": "CreateContainerConfigError", "message": "secret \"x\" not found" } }),
        json!({}),
    );
    assert!(matches!(
        failure(&pod(config), since()),
        Some(PodFailure::Config { .. })
    ));
    let exited = server(
        json!({ "terminated": { "exitCode": 1, "reason": "Error" } }),
        json!({}),
    );
    assert!(matches!(
        failure(&pod(exited), since()),
        Some(PodFailure::Exited { ref exit, .. }) if !exit.restarted && exit.code == 1
    ));
}

#[test]
fn instance_ids_are_stable_and_distinct_per_pod() {
    let a = instance_id("servers", "skyport-weather-1-abc");
    assert_eq!(a, instance_id("servers", "skyport-weather-1-abc"));
    assert_ne!(a, instance_id("servers", "skyport-weather-1-abd"));
    assert!(a.as_str().starts_with("ins_"));
}
