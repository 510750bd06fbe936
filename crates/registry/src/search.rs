//! Catalog search: the user's words turned into a safe FTS5 query, what an entry's tools are
//! (a hosted server's live inspection; an external server's last health check), and the task
//! that keeps the store's index in step with the change feed.

use serde_json::Value;
use skyport_store::{Change, ServerKind, ServerName, Store, StoreError, ToolSummary};
use tokio::sync::broadcast::error::RecvError;

/// The longest query accepted, in characters.
const MAX_QUERY: usize = 200;

/// Why a search query cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    /// Nothing to search for.
    #[error("the search has no words: give one or more, e.g. \"forecast\"")]
    Empty,
    /// Too long.
    #[error("the search is longer than {MAX_QUERY} characters; use fewer words")]
    TooLong,
}

/// The FTS5 query for the user's words: every word must match, each as a prefix (so
/// `forecast` finds `forecasts`). Words are quoted, so FTS5 operators in the input
/// (`OR`, `NEAR`, `*`, `"`, `:`) are only words.
pub fn fts_query(text: &str) -> Result<String, QueryError> {
    if text.chars().count() > MAX_QUERY {
        return Err(QueryError::TooLong);
    }
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{}\"*", w.to_lowercase()))
        .collect();
    if words.is_empty() {
        return Err(QueryError::Empty);
    }
    Ok(words.join(" AND "))
}

/// The tools of an inspection snapshot (`{"tools": [{"name", "description"}]}`).
pub fn tools_of_inspection(inspection: &Value) -> Vec<ToolSummary> {
    inspection["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tool| {
            Some(ToolSummary {
                name: tool["name"].as_str()?.to_owned(),
                description: tool["description"].as_str().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

/// Keeps the search index in step with the catalog until the store's change feed closes:
/// everything at start, then each entry whose live deployment or catalog record changed.
/// (External servers' tools are indexed by their health checks, in the store.)
pub async fn follow_search_index(store: Store) {
    let mut changes = store.subscribe();
    if let Err(e) = reindex_all(&store).await {
        tracing::warn!("cannot build the search index: {e}");
    }
    loop {
        let outcome = match changes.recv().await {
            Ok(Change::Promoted { server, .. } | Change::Catalog { server }) => {
                reindex(&store, &server).await
            }
            Ok(Change::ServerRemoved { server, .. }) => store.search().forget(&server).await,
            Ok(_) => Ok(()),
            Err(RecvError::Lagged(_)) => reindex_all(&store).await,
            Err(RecvError::Closed) => return,
        };
        if let Err(e) = outcome {
            tracing::warn!("cannot update the search index: {e}");
        }
    }
}

/// Rebuilds the whole index.
async fn reindex_all(store: &Store) -> Result<(), StoreError> {
    let servers = store.servers().list().await?;
    for gone in store.search().indexed().await? {
        if !servers.iter().any(|s| s.name == gone) {
            store.search().forget(&gone).await?;
        }
    }
    for server in servers {
        reindex(store, &server.name).await?;
    }
    Ok(())
}

/// Re-indexes one entry from what it serves now.
async fn reindex(store: &Store, name: &ServerName) -> Result<(), StoreError> {
    let Some(server) = store.servers().get(name).await? else {
        return store.search().forget(name).await;
    };
    let tools = match server.kind {
        ServerKind::Hosted => match &server.live_deployment {
            Some(live) => store
                .deployments()
                .get(live)
                .await?
                .and_then(|d| d.built)
                .map(|built| tools_of_inspection(&built.inspection))
                .unwrap_or_default(),
            None => Vec::new(),
        },
        ServerKind::External => store
            .externals()
            .get(name)
            .await?
            .map(|e| e.tools)
            .unwrap_or_default(),
        ServerKind::Remix => Vec::new(),
    };
    store
        .search()
        .index(&server.name, &server.description, &tools)
        .await
}
