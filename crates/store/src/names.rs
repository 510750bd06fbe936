//! Server, agent and provider names: the part of every URL and command that users type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A server name: a lowercase DNS label (`[a-z0-9-]`, 1–63 characters, no dash at either end),
/// so that it can become a host name (`NAME.example.com`) as well as a path segment. A double
/// dash is reserved: it separates a server from a branch in preview names (`api--feature-x`),
/// which parse (they are looked up like any name) but are made only by [`ServerName::preview`].
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
)]
#[serde(try_from = "String", into = "String")]
#[sqlx(transparent)]
pub struct ServerName(String);

impl ServerName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a preview's name (`PARENT--LABEL`); only previews may have one.
    pub fn is_preview(&self) -> bool {
        self.0.contains("--")
    }

    /// The name of `parent`'s preview of git branch `branch`: `PARENT--LABEL`, the label being
    /// the branch as a DNS label (lowercase, other characters turned into dashes, dashes
    /// collapsed and trimmed), cut so that the whole name fits 63 characters. Two branches can
    /// map to one label (`Feature/X`, `feature-x`): [`ServerName::preview_hashed`] tells them
    /// apart. A branch with nothing left of it (`___`) gets the hashed name.
    pub fn preview(parent: &ServerName, branch: &str) -> Result<ServerName, NameError> {
        let room = preview_room(parent, branch, 0)?;
        let label = cut(&label(branch), room);
        if label.is_empty() {
            return ServerName::preview_hashed(parent, branch);
        }
        format!("{parent}--{label}").parse()
    }

    /// Like [`ServerName::preview`], with `-` and the first 6 hex digits of the branch's
    /// SHA-256 after the label: the same branch always gets the same name.
    pub fn preview_hashed(parent: &ServerName, branch: &str) -> Result<ServerName, NameError> {
        let hash = hex::encode(&Sha256::digest(branch.as_bytes())[..3]);
        let room = preview_room(parent, branch, hash.len())?;
        match cut(&label(branch), room.saturating_sub(1)) {
            label if label.is_empty() => format!("{parent}--{hash}").parse(),
            label => format!("{parent}--{label}-{hash}").parse(),
        }
    }
}

/// Characters left for a preview's label after `PARENT--` and `reserved` more, if any.
fn preview_room(parent: &ServerName, branch: &str, reserved: usize) -> Result<usize, NameError> {
    let refuse = |reason| NameError {
        kind: "server",
        given: format!("{parent}--{branch}").chars().take(100).collect(),
        reason,
        suggestion: None,
    };
    if parent.is_preview() {
        return Err(refuse("a preview has no previews of its own"));
    }
    63usize
        .checked_sub(parent.0.len() + 2 + reserved)
        .filter(|room| *room > 0 || reserved > 0)
        .ok_or_else(|| refuse("the server's name is too long to leave room for a branch"))
}

/// `label` cut to at most `room` characters, with no dash left at its end.
fn cut(label: &str, room: usize) -> String {
    let cut: String = label.chars().take(room).collect();
    cut.trim_end_matches('-').to_owned()
}

/// A git branch as a DNS label: lowercase ASCII letters and digits, other characters turned
/// into dashes, runs of dashes collapsed, no dash at either end.
fn label(branch: &str) -> String {
    let mut out = String::new();
    for c in branch.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(out.trim_end_matches('-').len());
    out
}

/// Why a string is not a server name; the message shows the rule and a corrected suggestion.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name '{given}': {reason}; names are lowercase letters, digits and single dashes, 1-63 characters, starting and ending with a letter or digit{}", suggestion.as_ref().map(|s| format!(" (try '{s}')")).unwrap_or_default())]
pub struct NameError {
    kind: &'static str,
    given: String,
    reason: &'static str,
    suggestion: Option<String>,
}

impl FromStr for ServerName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, NameError> {
        match problem(s) {
            None => Ok(ServerName(s.to_owned())),
            Some(reason) => Err(NameError {
                kind: "server",
                given: s.chars().take(100).collect(),
                reason,
                suggestion: suggest(s),
            }),
        }
    }
}

/// What is wrong with `s` as a name, if anything: a base name, or a preview's `BASE--LABEL`.
fn problem(s: &str) -> Option<&'static str> {
    match s.split_once("--") {
        Some((base, label)) if !base.is_empty() && !label.is_empty() && s.len() <= 63 => {
            base_problem(base).or_else(|| base_problem(label))
        }
        _ => base_problem(s),
    }
}

/// What is wrong with `s` as a name without a preview part, if anything.
fn base_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("it is empty")
    } else if s.len() > 63 {
        Some("it is longer than 63 characters")
    } else if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("it contains characters other than a-z, 0-9 and '-'")
    } else if s.starts_with('-') || s.ends_with('-') {
        Some("it starts or ends with '-'")
    } else if s.contains("--") {
        Some("'--' is reserved for preview deployments (NAME--BRANCH)")
    } else {
        None
    }
}

/// The closest valid name, if there is one: lowercased, other characters turned into dashes.
fn suggest(s: &str) -> Option<String> {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    out.truncate(63);
    let out = out.trim_end_matches('-').to_owned();
    problem(&out).is_none().then_some(out)
}

impl TryFrom<String> for ServerName {
    type Error = NameError;

    fn try_from(s: String) -> Result<Self, NameError> {
        s.parse()
    }
}

impl From<ServerName> for String {
    fn from(name: ServerName) -> String {
        name.0
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Declares a name type with the rules of a server name without its preview part: a
/// lowercase DNS label, 1–63 characters, no double dash.
macro_rules! label_name {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type,
        )]
        #[serde(try_from = "String", into = "String")]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = NameError;

            fn from_str(s: &str) -> Result<Self, NameError> {
                match base_problem(s) {
                    None => Ok($name(s.to_owned())),
                    Some(reason) => Err(NameError {
                        kind: $kind,
                        given: s.chars().take(100).collect(),
                        reason,
                        suggestion: suggest(s),
                    }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;

            fn try_from(s: String) -> Result<Self, NameError> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

label_name!(
    /// An agent's name: what `skyport chat NAME` and the chat URLs take, and the model name of
    /// the OpenAI-compatible facade.
    AgentName, "agent"
);
label_name!(
    /// A language-model provider's name, as agents refer to it.
    ProviderName, "provider"
);
