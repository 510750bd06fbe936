//! Unit tests of the catalog domain: remote settings, server.json documents, import.

use crate::{RemoteError, parse_header, parse_remote_url, shown_url};

#[test]
fn remote_urls_are_absolute_http_without_credentials() {
    assert_eq!(
        parse_remote_url(" https://mcp.example.com/mcp ").as_deref(),
        Ok("https://mcp.example.com/mcp")
    );
    assert!(parse_remote_url("http://127.0.0.1:8000/mcp").is_ok());
    assert!(parse_remote_url("http://[::1]:8000/mcp").is_ok());
    for bad in [
        "ftp://x/mcp",
        "mcp.example.com",
        "https:///mcp",
        "http://a b/",
    ] {
        assert!(
            matches!(parse_remote_url(bad), Err(RemoteError::Url(_))),
            "{bad}"
        );
    }
    assert_eq!(
        parse_remote_url("https://u:p@x.example/mcp"),
        Err(RemoteError::UrlCredentials)
    );
}

#[test]
fn shown_urls_hide_their_query() {
    assert_eq!(shown_url("https://x/mcp?key=s3cret"), "https://x/mcp?…");
    assert_eq!(shown_url("https://x/mcp"), "https://x/mcp");
}

#[test]
fn headers_parse_and_reserved_ones_are_refused() {
    let header = parse_header("X-Api-Key:  abc def ").expect("a header");
    assert_eq!(
        (header.name.as_str(), header.value.as_str()),
        ("X-Api-Key", "abc def")
    );
    assert_eq!(
        parse_header("nocolon"),
        Err(RemoteError::Header("nocolon".into()))
    );
    assert_eq!(
        parse_header("X-Empty:"),
        Err(RemoteError::Header("X-Empty".into()))
    );
    assert_eq!(
        parse_header("Bad Name: v"),
        Err(RemoteError::Header("Bad Name".into()))
    );
    assert_eq!(
        parse_header("Mcp-Session-Id: 1"),
        Err(RemoteError::Reserved("Mcp-Session-Id".into()))
    );
    assert_eq!(
        parse_header("skyport-user-id: x"),
        Err(RemoteError::Reserved("skyport-user-id".into()))
    );
    // The value never shows in an error.
    let error = parse_header("X-Key: s3cret\u{1}").expect_err("a control character");
    assert!(!error.to_string().contains("s3cret"), "{error}");
}

fn entry(description: &str) -> crate::CatalogEntry {
    let at: skyport_store::Timestamp = "2026-01-02T03:04:05Z".parse().expect("a timestamp");
    crate::CatalogEntry {
        name: "weather".parse().expect("a name"),
        kind: skyport_store::ServerKind::Hosted,
        description: description.to_owned(),
        version: "1.0.3".to_owned(),
        url: "http://127.0.0.1:8420/servers/weather/mcp".to_owned(),
        created_at: at,
        updated_at: at,
        metadata: serde_json::Value::Null,
    }
}

#[test]
fn namespaces_come_from_the_public_host() {
    use crate::namespace;
    assert_eq!(namespace("http://127.0.0.1:8420"), "io.skyport.127.0.0.1");
    assert_eq!(
        namespace("https://MCP.Example.com/base"),
        "io.skyport.mcp.example.com"
    );
    assert_eq!(namespace("http://[::1]:8420"), "io.skyport.--1");
    let ns = namespace("https://mcp.example.com");
    let name = crate::registry_name(&ns, &"weather".parse().expect("a name"));
    assert_eq!(name, "io.skyport.mcp.example.com/weather");
    assert_eq!(
        crate::catalog_name(&ns, &name).map(|n| n.to_string()),
        Some("weather".to_owned())
    );
    assert_eq!(crate::catalog_name("io.other", &name), None);
}

#[test]
fn documents_follow_the_official_shape() {
    let ns = crate::namespace("http://127.0.0.1:8420");
    insta::assert_json_snapshot!(crate::response(&ns, &entry("Forecasts for any city")));
}

#[test]
fn descriptions_fit_the_schema() {
    let ns = crate::namespace("http://127.0.0.1:8420");
    let empty = crate::document(&ns, &entry(""));
    assert_eq!(empty["description"], "MCP server weather served by Skyport");
    let long = crate::document(&ns, &entry(&"x".repeat(300)));
    assert_eq!(
        long["description"].as_str().map(|d| d.chars().count()),
        Some(100)
    );
}

#[test]
fn imports_take_the_first_streamable_remote_and_fixed_headers() {
    let doc = r#"{"name": "com.example/Acme_Analytics", "description": "BI", "version": "2.0.0",
        "remotes": [{"type": "sse", "url": "https://a.example/sse"},
                    {"type": "streamable-http", "url": "https://a.example/mcp",
                     "headers": [{"name": "X-Tenant", "value": "acme"},
                                 {"name": "Authorization", "value": "Bearer {token}", "isSecret": true}]}]}"#;
    let imported = crate::import(doc).expect("importable");
    assert_eq!(imported.name, "acme-analytics");
    assert_eq!(imported.url, "https://a.example/mcp");
    assert_eq!(imported.headers, ["X-Tenant: acme"]);
    assert_eq!(imported.needs, ["Authorization"]);
    let packaged = r#"{"name": "com.example/local", "packages": []}"#;
    assert_eq!(
        crate::import(packaged),
        Err(crate::ImportError::NoRemote("com.example/local".to_owned()))
    );
    assert!(matches!(
        crate::import("nope"),
        Err(crate::ImportError::NotADocument(_))
    ));
}

#[test]
fn queries_are_words_matched_as_prefixes_and_operators_are_only_words() {
    use crate::{QueryError, fts_query};
    assert_eq!(fts_query("Forecast").as_deref(), Ok("\"forecast\"*"));
    assert_eq!(
        fts_query("weather OR \"x\" NEAR:y*").as_deref(),
        Ok("\"weather\"* AND \"or\"* AND \"x\"* AND \"near\"* AND \"y\"*")
    );
    assert_eq!(fts_query(" *:\" "), Err(QueryError::Empty));
    assert_eq!(fts_query(&"a".repeat(201)), Err(QueryError::TooLong));
}

#[test]
fn inspection_snapshots_give_their_tools() {
    let inspection = serde_json::json!({"tools": [
        {"name": "hello", "description": "Greet someone by name."},
        {"name": "bare"},
        {"description": "no name"}
    ]});
    let tools = crate::tools_of_inspection(&inspection);
    let names: Vec<(&str, &str)> = tools
        .iter()
        .map(|t| (t.name.as_str(), t.description.as_str()))
        .collect();
    assert_eq!(names, [("hello", "Greet someone by name."), ("bare", "")]);
}

#[test]
fn a_servers_own_metadata_fills_its_document() {
    let ns = crate::namespace("http://127.0.0.1:8420");
    let mut own = entry("");
    own.metadata = serde_json::json!({
        "title": "Weather", "description": "Forecasts", "version": "2.1.0",
        "websiteUrl": "https://acme.example",
        "repository": {"url": "https://github.com/acme/weather", "source": "github"}
    });
    let doc = crate::document(&ns, &own);
    assert_eq!(doc["title"], "Weather");
    assert_eq!(doc["description"], "Forecasts");
    assert_eq!(doc["version"], "2.1.0");
    assert_eq!(doc["websiteUrl"], "https://acme.example");
    assert_eq!(doc["repository"]["source"], "github");
    assert_eq!(doc["name"], "io.skyport.127.0.0.1/weather");
    // A description set in Skyport wins over the server's own.
    own.description = "Set by the operator".to_owned();
    assert_eq!(
        crate::document(&ns, &own)["description"],
        "Set by the operator"
    );
}
