//! The search index: entries and tools found by words of their names and descriptions,
//! replaced and forgotten per entry.

use crate::*;

fn tool(name: &str, description: &str) -> ToolSummary {
    ToolSummary {
        name: name.to_owned(),
        description: description.to_owned(),
    }
}

async fn entries_and_tools_are_found_by_their_words() {
    let store = crate::testdb::store().await.unwrap();
    let search = store.search();
    let weather: ServerName = "weather".parse().unwrap();
    let notes: ServerName = "notes".parse().unwrap();
    search
        .index(
            &weather,
            "Skies",
            &[tool("get_forecast", "Tomorrow's forecast for a city")],
        )
        .await
        .unwrap();
    search
        .index(
            &notes,
            "Forecasts of nothing",
            &[tool("read_note", "Reads a note")],
        )
        .await
        .unwrap();

    let hits = search.query("\"forecast\"*", 10).await.unwrap();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert!(
        hits.iter()
            .any(|h| h.server == weather
                && h.tool.as_ref().is_some_and(|t| t.name == "get_forecast"))
    );
    assert!(hits.iter().any(|h| h.server == notes && h.tool.is_none()));

    // Re-indexing replaces; forgetting removes.
    search.index(&weather, "Skies", &[]).await.unwrap();
    let hits = search.query("\"forecast\"*", 10).await.unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    search.forget(&notes).await.unwrap();
    assert!(search.query("\"forecast\"*", 10).await.unwrap().is_empty());
    assert_eq!(search.indexed().await.unwrap(), [weather]);
}

crate::testdb::on_both_databases!(entries_and_tools_are_found_by_their_words,);
