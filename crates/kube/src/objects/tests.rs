//! Snapshots of the objects a representative deployment becomes, and the rules they keep
//! (secret values out of pod specs, names that fit a Service name).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use skyport_runtime::{EnvVar, Target};
use skyport_store::{LaunchSpec, RuntimeSettings};

use super::{knative_service, object_name, objects};
use crate::KubeRuntimeConfig;

/// A server with a plain variable, a secret and settings other than the defaults.
fn weather() -> Target {
    Target {
        server_id: "srv_01jf0000000000000000000000".parse().expect("server id"),
        server_name: "weather".parse().expect("server name"),
        deployment: "dep_01jf8z3k5q7m2n4p6r8t0v2w4y"
            .parse()
            .expect("deployment id"),
        launch: LaunchSpec {
            program: PathBuf::from("/var/lib/skyport/envs/3f2a9c/bin/python"),
            args: vec![
                "/var/lib/skyport/artifacts/9b1e77/launcher.py".to_owned(),
                "serve".to_owned(),
                "/var/lib/skyport/artifacts/9b1e77/src/server.py".to_owned(),
                "mcp".to_owned(),
                "/var/lib/skyport/artifacts/9b1e77/src".to_owned(),
            ],
            working_dir: PathBuf::from("/var/lib/skyport/artifacts/9b1e77/src"),
            transport: Default::default(),
        },
        settings: RuntimeSettings {
            memory_bytes: 512 * 1024 * 1024,
            idle_timeout: Duration::from_secs(300),
            min_instances: 0,
            max_instances: 4,
            ..RuntimeSettings::default()
        },
        env: Arc::from(vec![
            EnvVar {
                name: "FORECAST_API_KEY".to_owned(),
                value: "s3cr3t".to_owned(),
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

fn config() -> KubeRuntimeConfig {
    KubeRuntimeConfig::new("skyport-servers", "registry.example.com/skyport/")
}

#[test]
fn deployment() {
    insta::assert_json_snapshot!(objects(&weather(), &config()).deployment);
}

#[test]
fn service() {
    insta::assert_json_snapshot!(objects(&weather(), &config()).service);
}

#[test]
fn secret() {
    insta::assert_json_snapshot!(objects(&weather(), &config()).secret);
}

#[test]
fn knative() {
    insta::assert_json_snapshot!(knative_service(&weather(), &config()));
}

#[test]
fn no_secret_object_without_secrets() {
    let mut target = weather();
    target.env = Arc::from(vec![EnvVar {
        name: "UNITS".to_owned(),
        value: "metric".to_owned(),
        secret: false,
    }]);
    assert_eq!(objects(&target, &config()).secret, None);
}

#[test]
fn secret_values_stay_out_of_the_pod_spec() {
    let deployment =
        serde_json::to_string(&objects(&weather(), &config()).deployment).expect("serializable");
    assert!(!deployment.contains("s3cr3t"), "{deployment}");
    assert!(deployment.contains("secretKeyRef"), "{deployment}");
}

#[test]
fn names_fit_a_service_name() {
    let mut target = weather();
    target.server_name = "a-very-long-server-name-that-goes-on-and-on-to-sixty-three-chars"[..63]
        .parse()
        .expect("server name");
    let name = object_name(&target);
    assert!(name.len() <= 63, "{name} is {} characters", name.len());
    assert!(name.starts_with("skyport-a-very-long"), "{name}");
    assert!(name.ends_with("01jf8z3k5q7m2n4p6r8t0v2w4y"), "{name}");
}
