//! Composition: a remix's list of one kind from its sources' lists, and the way back from a
//! composed name to the source and the name it has there. Pure functions on JSON values: no
//! HTTP, no sessions, no store.
//!
//! The rules (documented for users in ARCHITECTURE.md, "Remix servers"):
//! - a tool or prompt keeps its name, or takes the rename its author gave;
//! - a name that more than one source would give gets the source's name as a prefix
//!   (`{source}_{name}`) on every item that was not renamed: only colliding names change, so
//!   adding a source does not rename what clients already use unless it collides;
//! - a rename is kept as written (the author chose it), and the edge refuses two renames to
//!   one name; should a prefixed name still meet another (`a_b` given by a source beside
//!   source `a`'s `b`), the first source in the remix's order keeps it and the other is
//!   dropped with a warning;
//! - collisions count the last known items of a source that is down, so that a source
//!   going down does not rename the others' tools under their clients;
//! - resources and resource templates keep their URIs, which are addresses, not labels:
//!   prefixing a scheme would break clients that build URIs from templates. When two sources
//!   offer one URI, the first source in order wins and the other's is dropped with a warning;
//! - a description override replaces the item's `description`.

use std::collections::HashMap;

use serde_json::Value;
use skyport_store::{CapabilityKind, SourceSpec};

/// One source's list of one kind, as it answered.
pub(crate) struct SourceItems<'a> {
    /// What the remix takes from the source.
    pub(crate) spec: &'a SourceSpec,
    /// The items of the source's list result (`tools`, `prompts`, …).
    pub(crate) items: Vec<Value>,
    /// Whether the source answered now. The last items known of a source that is down are
    /// given with `false`: they count for collisions but are not listed, so that the names
    /// of the other sources stay the same while one is down.
    pub(crate) present: bool,
}

/// Where a composed item comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The source's position in the remix.
    pub(crate) source: usize,
    /// The item's name (or URI) at the source.
    pub(crate) name: String,
}

/// A composed list with its way back.
#[derive(Debug, Default)]
pub(crate) struct Composed {
    /// The items, in source order, renamed and described as the remix says.
    pub(crate) items: Vec<Value>,
    /// Each composed name (or URI, or URI template) to where it comes from, including the
    /// names of sources that are down.
    pub(crate) origins: HashMap<String, Origin>,
    /// What was dropped and why, for the log.
    pub(crate) warnings: Vec<String>,
}

/// The field that names an item of `kind`.
pub(crate) fn key(kind: CapabilityKind) -> &'static str {
    match kind {
        CapabilityKind::Tool | CapabilityKind::Prompt => "name",
        CapabilityKind::Resource => "uri",
        CapabilityKind::Template => "uriTemplate",
    }
}

/// The remix's list of `kind` from `sources` (in the remix's order; a source that is down is
/// simply absent, and its position is still its index in the remix).
pub(crate) fn compose(kind: CapabilityKind, sources: &[(usize, SourceItems<'_>)]) -> Composed {
    let field = key(kind);
    let renamable = matches!(kind, CapabilityKind::Tool | CapabilityKind::Prompt);
    // Every taken item with the name it would have without a prefix.
    let mut taken: Vec<Taken<'_>> = Vec::new();
    for (index, source) in sources {
        let selection = match kind {
            CapabilityKind::Tool => &source.spec.tools,
            CapabilityKind::Prompt => &source.spec.prompts,
            CapabilityKind::Resource | CapabilityKind::Template => &source.spec.resources,
        };
        for item in &source.items {
            let Some(name) = item.get(field).and_then(Value::as_str) else {
                continue;
            };
            if !selection.includes(name) {
                continue;
            }
            let renamed = renamable
                .then(|| source.spec.renames.get(name).map(String::as_str))
                .flatten();
            taken.push(Taken {
                index: *index,
                spec: source.spec,
                item,
                name,
                renamed,
                present: source.present,
            });
        }
    }
    let mut given: HashMap<&str, usize> = HashMap::new();
    for item in &taken {
        *given.entry(item.renamed.unwrap_or(item.name)).or_default() += 1;
    }
    let mut composed = Composed::default();
    for Taken {
        index,
        spec,
        item,
        name,
        renamed,
        present,
    } in taken
    {
        let final_name = match renamed {
            Some(renamed) => renamed.to_owned(),
            None if renamable && given.get(name).is_some_and(|n| *n > 1) => {
                format!("{}_{name}", spec.server)
            }
            None => name.to_owned(),
        };
        if let Some(first) = composed.origins.get(&final_name) {
            composed.warnings.push(format!(
                "{}.{name} is left out: source #{} already gives '{final_name}'",
                spec.server,
                first.source + 1
            ));
            continue;
        }
        let mut item = item.clone();
        if let Some(object) = item.as_object_mut() {
            object.insert(field.to_owned(), Value::String(final_name.clone()));
            if renamable && let Some(description) = spec.descriptions.get(name) {
                object.insert("description".to_owned(), Value::String(description.clone()));
            }
        }
        // A source that is down keeps its names routed (a call then gets an error naming
        // the source, not "unknown tool"), but its items are not listed.
        if present {
            composed.items.push(item);
        }
        composed.origins.insert(
            final_name,
            Origin {
                source: index,
                name: name.to_owned(),
            },
        );
    }
    composed
}

/// An item a source's selection takes, before its final name is decided.
struct Taken<'a> {
    index: usize,
    spec: &'a SourceSpec,
    item: &'a Value,
    /// Its name at the source.
    name: &'a str,
    /// The name its author gave it, if any.
    renamed: Option<&'a str>,
    present: bool,
}

/// The source among `templates` (URI templates with their source) whose template could have
/// made `uri`: its literal text before the first expression is a prefix of `uri`, the longest
/// such prefix winning. Enough to route reads of templated URIs without a full RFC 6570
/// matcher; an ambiguous URI goes to the first source in order.
pub(crate) fn template_source<'a>(
    templates: impl Iterator<Item = (&'a str, usize)>,
    uri: &str,
) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (template, source) in templates {
        let literal = template.split('{').next().unwrap_or_default();
        if uri.starts_with(literal) && best.is_none_or(|(length, _)| literal.len() > length) {
            best = Some((literal.len(), source));
        }
    }
    best.map(|(_, source)| source)
}

#[cfg(test)]
mod tests;
