//! Composition rules: prefixes only on collisions, renames kept, overrides applied, URIs kept
//! with the first source winning.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use skyport_store::{CapabilityKind, Selection, SourceSpec};

use super::{SourceItems, compose, template_source};

fn spec(server: &str) -> SourceSpec {
    SourceSpec {
        server: server.parse().unwrap(),
        tools: Selection::All,
        prompts: Selection::All,
        resources: Selection::All,
        renames: BTreeMap::new(),
        descriptions: BTreeMap::new(),
    }
}

fn tools(names: &[&str]) -> Vec<Value> {
    names
        .iter()
        .map(|n| json!({"name": n, "description": format!("{n} at the source"), "inputSchema": {"type": "object"}}))
        .collect()
}

/// The composed list as names → (source, original) and descriptions, sorted for a snapshot.
fn summary(composed: &super::Composed) -> Value {
    let items: Vec<Value> = composed
        .items
        .iter()
        .map(|item| {
            let name = item["name"]
                .as_str()
                .unwrap_or_else(|| item["uri"].as_str().unwrap());
            let origin = &composed.origins[name];
            json!({
                "name": name,
                "from": format!("#{}.{}", origin.source, origin.name),
                "description": item.get("description"),
            })
        })
        .collect();
    json!({"items": items, "warnings": composed.warnings})
}

#[test]
fn only_colliding_names_get_a_prefix_and_renames_and_overrides_apply() {
    let mut weather = spec("weather");
    weather
        .renames
        .insert("forecast".into(), "weather_forecast".into());
    weather
        .descriptions
        .insert("echo".into(), "Echoes, the weather way.".into());
    let mut notes = spec("notes");
    notes.tools = Selection::Only(BTreeSet::from(["echo".into(), "add_note".into()]));
    let composed = compose(
        CapabilityKind::Tool,
        &[
            (
                0,
                SourceItems {
                    spec: &weather,
                    items: tools(&["echo", "forecast", "status"]),
                    present: true,
                },
            ),
            (
                1,
                SourceItems {
                    spec: &notes,
                    items: tools(&["echo", "add_note", "delete_note"]),
                    present: true,
                },
            ),
        ],
    );
    insta::assert_json_snapshot!(summary(&composed), @r###"
    {
      "items": [
        {
          "description": "Echoes, the weather way.",
          "from": "#0.echo",
          "name": "weather_echo"
        },
        {
          "description": "forecast at the source",
          "from": "#0.forecast",
          "name": "weather_forecast"
        },
        {
          "description": "status at the source",
          "from": "#0.status",
          "name": "status"
        },
        {
          "description": "echo at the source",
          "from": "#1.echo",
          "name": "notes_echo"
        },
        {
          "description": "add_note at the source",
          "from": "#1.add_note",
          "name": "add_note"
        }
      ],
      "warnings": []
    }
    "###);
}

#[test]
fn a_rename_is_kept_and_the_name_it_meets_is_prefixed() {
    let mut a = spec("a");
    a.renames.insert("ping".into(), "echo".into());
    let b = spec("b");
    let composed = compose(
        CapabilityKind::Prompt,
        &[
            (
                0,
                SourceItems {
                    spec: &a,
                    items: tools(&["ping"]),
                    present: true,
                },
            ),
            (
                1,
                SourceItems {
                    spec: &b,
                    items: tools(&["echo"]),
                    present: true,
                },
            ),
        ],
    );
    let names: Vec<_> = composed.items.iter().map(|i| i["name"].clone()).collect();
    assert_eq!(names, vec![json!("echo"), json!("b_echo")]);
    assert_eq!(composed.origins["b_echo"].name, "echo");
}

#[test]
fn a_prefixed_name_meeting_another_leaves_the_later_source_out() {
    // Source `a` gives `b_x` itself; source `b`'s `x` collides with `a`'s `x`, so it would
    // become `b_x` too.
    let a = spec("a");
    let b = spec("b");
    let composed = compose(
        CapabilityKind::Tool,
        &[
            (
                0,
                SourceItems {
                    spec: &a,
                    items: tools(&["b_x", "x"]),
                    present: true,
                },
            ),
            (
                1,
                SourceItems {
                    spec: &b,
                    items: tools(&["x"]),
                    present: true,
                },
            ),
        ],
    );
    insta::assert_json_snapshot!(summary(&composed), @r###"
    {
      "items": [
        {
          "description": "b_x at the source",
          "from": "#0.b_x",
          "name": "b_x"
        },
        {
          "description": "x at the source",
          "from": "#0.x",
          "name": "a_x"
        }
      ],
      "warnings": [
        "b.x is left out: source #1 already gives 'b_x'"
      ]
    }
    "###);
}

#[test]
fn resources_keep_their_uris_and_the_first_source_wins() {
    let a = spec("a");
    let mut b = spec("b");
    b.resources = Selection::Only(BTreeSet::from(["data://shared".into(), "data://b".into()]));
    let resources = |uris: &[&str]| -> Vec<Value> {
        uris.iter().map(|u| json!({"uri": u, "name": u})).collect()
    };
    let composed = compose(
        CapabilityKind::Resource,
        &[
            (
                0,
                SourceItems {
                    spec: &a,
                    items: resources(&["data://shared", "data://a"]),
                    present: true,
                },
            ),
            (
                2,
                SourceItems {
                    spec: &b,
                    items: resources(&["data://shared", "data://b", "data://hidden"]),
                    present: true,
                },
            ),
        ],
    );
    insta::assert_json_snapshot!(summary(&composed), @r###"
    {
      "items": [
        {
          "description": null,
          "from": "#0.data://shared",
          "name": "data://shared"
        },
        {
          "description": null,
          "from": "#0.data://a",
          "name": "data://a"
        },
        {
          "description": null,
          "from": "#2.data://b",
          "name": "data://b"
        }
      ],
      "warnings": [
        "b.data://shared is left out: source #1 already gives 'data://shared'"
      ]
    }
    "###);
}

#[test]
fn templated_uris_go_to_the_source_with_the_longest_matching_literal() {
    let templates = [
        ("notes://{id}", 0),
        ("notes://archive/{id}", 1),
        ("w://{city}", 2),
    ];
    let find = |uri| template_source(templates.iter().map(|(t, s)| (*t, *s)), uri);
    assert_eq!(find("notes://7"), Some(0));
    assert_eq!(find("notes://archive/7"), Some(1));
    assert_eq!(find("w://paris"), Some(2));
    assert_eq!(find("other://x"), None);
}

#[test]
fn a_source_that_is_down_still_counts_for_collisions() {
    let a = spec("a");
    let b = spec("b");
    let composed = compose(
        CapabilityKind::Tool,
        &[
            (
                0,
                SourceItems {
                    spec: &a,
                    items: tools(&["echo", "solo"]),
                    present: true,
                },
            ),
            (
                1,
                SourceItems {
                    spec: &b,
                    items: tools(&["echo"]),
                    present: false,
                },
            ),
        ],
    );
    let names: Vec<_> = composed.items.iter().map(|i| i["name"].clone()).collect();
    assert_eq!(names, vec![json!("a_echo"), json!("solo")]);
    // Its names still route, so that a call gets an error naming the source.
    assert_eq!(composed.origins["b_echo"].source, 1);
}
