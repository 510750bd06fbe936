//! Remix sessions against the scripted upstream of the gateway's tests (one hosted source,
//! `echo`): a session outlives the gateway that opened it, its source session included, uses
//! reach the store only when flushed, and `DELETE` removes it for every gateway.

use std::time::Duration;

use http::StatusCode;
use skyport_store::{RemixSpec, Selection, SourceSpec, Timestamp};

use crate::tests::{INITIALIZE, fixture, methods, post, send};
use crate::{Gateway, GatewayOptions};

const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
const CALL: &str =
    r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"read_note"}}"#;
const MIX: &str = "/servers/mix/mcp";

/// The scripted upstream lists tools only when asked with this header (passed on by remixes).
fn with_tools(mut request: http::Request<axum::body::Body>) -> http::Request<axum::body::Body> {
    request
        .headers_mut()
        .insert("x-list-tools", http::HeaderValue::from_static("1"));
    request
}

/// The fixture's store and upstream with remix `mix` of `echo`, and a session opened on it.
async fn remix_session() -> (crate::tests::Fixture, String) {
    let f = fixture().await;
    let source = SourceSpec {
        server: "echo".parse().unwrap(),
        tools: Selection::All,
        prompts: Selection::All,
        resources: Selection::All,
        renames: Default::default(),
        descriptions: Default::default(),
    };
    let spec = RemixSpec::new(vec![source]).unwrap();
    f.store
        .remixes()
        .create(&"mix".parse().unwrap(), "", &spec)
        .await
        .unwrap();
    let (status, headers, body) = send(&f.gateway, post(MIX, None, INITIALIZE)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session = headers["mcp-session-id"].to_str().unwrap().to_owned();
    assert_eq!(
        methods(&f),
        ["initialize", "notifications/initialized"],
        "the remix opened its session on the source"
    );
    (f, session)
}

async fn restarted(f: &crate::tests::Fixture) -> Gateway {
    Gateway::new(
        f.store.clone(),
        f.runtime.clone(),
        GatewayOptions::default(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_remix_session_continues_on_another_gateway_through_its_source_session() {
    let (f, session) = remix_session().await;
    let other = restarted(&f).await;

    let (status, headers, body) = send(&other, with_tools(post(MIX, Some(&session), CALL))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["mcp-session-id"], session.as_str());
    // The source saw its own session (no new initialize): the link came back from the store.
    assert_eq!(body["result"]["headers"]["mcp-session-id"], "upstream-1");
    assert_eq!(methods(&f), ["tools/list", "tools/call"]);

    // Composed lists are caches: the new gateway built its own with that call.
    let (status, _, body) = send(&other, with_tools(post(MIX, Some(&session), LIST))).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["read_note", "delete_note"], "{body}");

    // Not valid on another server's path, even with a store to look it up in.
    let (status, _, _) = send(&other, post("/servers/echo/mcp", Some(&session), LIST)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn uses_reach_the_store_only_when_flushed() {
    let (f, session) = remix_session().await;
    let long_ago = Timestamp::now() - Duration::from_secs(60);
    let stored = async || {
        let sessions = f.store.remix_sessions();
        sessions.get(&session, long_ago).await.unwrap().unwrap()
    };
    let opened = stored().await.last_used_at;
    // A later millisecond than the one the session opened in.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, _, _) = send(&f.gateway, with_tools(post(MIX, Some(&session), LIST))).await;
    assert_eq!(status, StatusCode::OK);
    let before_flush = stored().await;
    assert_eq!(
        before_flush.last_used_at, opened,
        "a request wrote to the store"
    );
    assert_eq!(before_flush.links.len(), 1, "the source session is stored");

    f.gateway.flush().await;
    let flushed = stored().await;
    assert!(flushed.last_used_at > opened);
}

#[tokio::test]
async fn delete_ends_a_remix_session_for_every_gateway() {
    let (f, session) = remix_session().await;
    let other = restarted(&f).await;
    let delete = http::Request::delete(MIX)
        .header("mcp-session-id", session.as_str())
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, _, _) = send(&f.gateway, delete).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        f.seen.lock().sessions.is_empty(),
        "the source session ended too"
    );

    let (status, _, _) = send(&other, post(MIX, Some(&session), LIST)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_expired_remix_session_is_a_404_and_leaves_the_store() {
    let (f, session) = remix_session().await;
    let short = GatewayOptions {
        session_ttl: Duration::from_millis(50),
        ..GatewayOptions::default()
    };
    let other = Gateway::new(f.store.clone(), f.runtime.clone(), short)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _, _) = send(&other, post(MIX, Some(&session), LIST)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    other.flush().await;
    let long_ago = Timestamp::now() - Duration::from_secs(3600);
    let left = f.store.remix_sessions().get(&session, long_ago).await;
    assert!(
        left.unwrap().is_none(),
        "the expired session is still stored"
    );
}
