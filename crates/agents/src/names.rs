//! The names tools get in front of the model: `SERVER__TOOL`, so that tools of different
//! servers never clash and the loop knows where a call goes. Providers accept only
//! `[a-zA-Z0-9_-]{1,64}` as a function name, so other characters become `_` and a name too
//! long (or taken by another tool after that) is cut and given a short hash of the server
//! and tool, which keeps it stable from one turn to the next.

use std::collections::HashMap;

/// What separates the server from the tool in an exposed name.
const SEPARATOR: &str = "__";
/// The longest function name providers take.
const MAX_LEN: usize = 64;
/// Hex digits of the hash that ends a cut name.
const HASH_DIGITS: usize = 6;

/// The tools offered in one turn: exposed name → (server, tool).
#[derive(Clone, Debug, Default)]
pub struct ToolNames {
    by_name: HashMap<String, (String, String)>,
}

impl ToolNames {
    /// Gives `tool` of `server` its exposed name and returns it.
    pub fn add(&mut self, server: &str, tool: &str) -> String {
        let plain = sanitize(&format!("{server}{SEPARATOR}{tool}"));
        let name = if plain.len() <= MAX_LEN && !self.by_name.contains_key(&plain) {
            plain
        } else {
            let keep = MAX_LEN - HASH_DIGITS - 1;
            let head: String = plain.chars().take(keep).collect();
            format!(
                "{head}_{:0width$x}",
                hash(server, tool),
                width = HASH_DIGITS
            )
        };
        self.by_name
            .insert(name.clone(), (server.to_owned(), tool.to_owned()));
        name
    }

    /// The server and tool an offered name stands for.
    pub fn resolve(&self, name: &str) -> Option<(&str, &str)> {
        self.by_name
            .get(name)
            .map(|(server, tool)| (server.as_str(), tool.as_str()))
    }
}

/// `text` with every character outside `[a-zA-Z0-9_-]` replaced by `_`.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The server and tool a name not offered would stand for, when its server part is one of
/// `servers`: a model may call a tool it was not shown (hidden by a policy), and that call
/// must still reach the gateway, which refuses and audits it.
pub(crate) fn forged<'a>(name: &'a str, servers: &[String]) -> Option<(String, &'a str)> {
    let (server, tool) = name.split_once(SEPARATOR)?;
    let known = servers.iter().find(|s| sanitize(s) == server)?;
    (!tool.is_empty()).then(|| (known.clone(), tool))
}

/// FNV-1a over the server and tool, cut to the suffix's width: stable across runs and
/// machines, which a randomly seeded hasher would not be.
fn hash(server: &str, tool: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for byte in server.bytes().chain([0]).chain(tool.bytes()) {
        h ^= u32::from(byte);
        h = h.wrapping_mul(0x0100_0193);
    }
    h & 0x00ff_ffff
}

#[cfg(test)]
mod tests {
    use super::{ToolNames, forged};

    #[test]
    fn names_are_namespaced_sanitised_and_cut_with_a_hash() {
        let mut names = ToolNames::default();
        assert_eq!(names.add("hello", "hello"), "hello__hello");
        assert_eq!(names.add("notes", "read.note v2"), "notes__read_note_v2");
        // Another tool sanitising to the same name keeps both distinct.
        let second = names.add("notes", "read note_v2");
        assert_ne!(second, "notes__read_note_v2");
        assert!(second.starts_with("notes__read_note_v2_"), "{second}");
        let long = names.add("weather", &"forecast".repeat(10));
        assert_eq!(long.len(), 64, "{long}");
        assert!(long.starts_with("weather__forecastforecast"), "{long}");
        // The same tool gets the same name in another turn.
        assert_eq!(
            ToolNames::default().add("weather", &"forecast".repeat(10)),
            long
        );
        assert_eq!(
            names.resolve(&long),
            Some(("weather", &*"forecast".repeat(10)))
        );
        assert_eq!(names.resolve(&second), Some(("notes", "read note_v2")));
        assert_eq!(names.resolve("nope__x"), None);
    }

    #[test]
    fn a_name_not_offered_resolves_only_to_the_agents_servers() {
        let servers = vec!["notes".to_owned(), "hello".to_owned()];
        assert_eq!(
            forged("notes__delete_note", &servers),
            Some(("notes".to_owned(), "delete_note"))
        );
        assert_eq!(forged("other__delete_note", &servers), None);
        assert_eq!(forged("notes__", &servers), None);
        assert_eq!(forged("delete_note", &servers), None);
    }
}
