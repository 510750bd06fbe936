//! A source's `server.json`: its describing fields read, its absence fine, a broken file a
//! configuration failure.

use serde_json::json;
use skyport_store::FailureKind;

use crate::metadata::{ServerMetadata, read};

#[test]
fn describing_fields_are_read_and_the_rest_ignored() {
    let src = tempfile::tempdir().unwrap();
    assert_eq!(read(src.path()).unwrap(), None);
    let doc = json!({
        "name": "io.github.acme/weather", "title": "Weather", "description": " Forecasts ",
        "version": "2.1.0", "websiteUrl": "https://acme.example",
        "repository": {"url": "https://github.com/acme/weather", "source": "github"},
        "packages": [{"registryType": "pypi"}], "remotes": []
    });
    std::fs::write(src.path().join("server.json"), doc.to_string()).unwrap();
    let read = read(src.path()).unwrap().unwrap();
    assert_eq!(
        read,
        ServerMetadata {
            title: Some("Weather".to_owned()),
            description: Some("Forecasts".to_owned()),
            version: Some("2.1.0".to_owned()),
            website_url: Some("https://acme.example".to_owned()),
            repository: Some(json!({"url": "https://github.com/acme/weather", "source": "github"})),
        }
    );
}

#[test]
fn a_broken_server_json_fails_the_build_as_configuration() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("server.json"), "{ nope").unwrap();
    let failure = read(src.path()).unwrap_err();
    assert_eq!(failure.kind, FailureKind::Config);
    assert!(
        failure.message.contains("fix or remove it"),
        "{}",
        failure.message
    );
    std::fs::write(src.path().join("server.json"), "[1]").unwrap();
    assert_eq!(read(src.path()).unwrap_err().kind, FailureKind::Config);
}
