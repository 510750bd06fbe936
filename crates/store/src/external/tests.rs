//! External entries: headers sealed at rest and opened only for the gateway, names unique
//! across kinds, health recorded.

use crate::*;

async fn store() -> Store {
    crate::testdb::store()
        .await
        .unwrap()
        .with_master_key(MasterKey::generate())
}

fn new(name: &str) -> NewExternal {
    NewExternal {
        name: name.parse().unwrap(),
        description: "remote notes".to_owned(),
        url: "http://127.0.0.1:9/mcp".to_owned(),
        headers: vec![RemoteHeader {
            name: "Authorization".to_owned(),
            value: "Bearer s3cret".to_owned(),
        }],
    }
}

async fn headers_are_sealed_shown_by_name_and_opened_for_the_gateway() {
    let store = store().await;
    let created = store.externals().create(&new("notes")).await.unwrap();
    assert_eq!(created.server.kind, ServerKind::External);
    assert_eq!(created.header_names, ["Authorization"]);
    assert_eq!(created.health, Health::Unknown);
    assert!(!format!("{created:?}").contains("s3cret"));

    let connections = store.externals().connections().await.unwrap();
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0].headers[0].value, "Bearer s3cret");
    assert!(!format!("{connections:?}").contains("s3cret"));

    // Another name's sealed value does not open under this one.
    let sealed: Vec<u8> = crate::sql::query_scalar("SELECT sealed FROM external_headers")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains("s3cret"));
    let key = store.master_key().unwrap();
    assert!(secrets::open(key, "external:other:Authorization", &sealed).is_none());
}

async fn names_are_unique_across_kinds() {
    let store = store().await;
    store
        .servers()
        .ensure(&"hello".parse().unwrap(), None)
        .await
        .unwrap();
    let refused = store.externals().create(&new("hello")).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("already a server of kind hosted"),
        "{refused}"
    );
    store.externals().create(&new("notes")).await.unwrap();
    let twice = store.externals().create(&new("notes")).await.unwrap_err();
    assert!(twice.to_string().contains("'notes' is already"), "{twice}");
}

async fn health_checks_are_recorded_and_a_failure_keeps_the_last_tools() {
    let store = store().await;
    let created = store.externals().create(&new("notes")).await.unwrap();
    let tools = [ToolSummary {
        name: "forecast".to_owned(),
        description: "Tomorrow's weather".to_owned(),
    }];
    let externals = store.externals();
    externals
        .record_health(&created.server.id, Ok(&tools))
        .await
        .unwrap();
    let up = externals.get(&created.server.name).await.unwrap().unwrap();
    assert_eq!(
        (up.health, up.tools.as_slice()),
        (Health::Up, tools.as_slice())
    );
    externals
        .record_health(&created.server.id, Err("unreachable: connection refused"))
        .await
        .unwrap();
    let down = externals.get(&created.server.name).await.unwrap().unwrap();
    assert_eq!(down.health, Health::Down);
    assert_eq!(
        down.health_error.as_deref(),
        Some("unreachable: connection refused")
    );
    assert_eq!(down.tools, tools);
    assert!(down.checked_at.is_some());
}

crate::testdb::on_both_databases!(
    headers_are_sealed_shown_by_name_and_opened_for_the_gateway,
    names_are_unique_across_kinds,
    health_checks_are_recorded_and_a_failure_keeps_the_last_tools,
);
