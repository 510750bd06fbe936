//! Server names: the part of every URL and command that users type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A server name: a lowercase DNS label (`[a-z0-9-]`, 1–63 characters, no dash at either end),
/// so that it can become a host name (`NAME.example.com`) as well as a path segment. A double
/// dash is reserved: it separates a server from a branch in preview names (`api--feature-x`).
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
}

/// Why a string is not a server name; the message shows the rule and a corrected suggestion.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid server name '{given}': {reason}; names are lowercase letters, digits and single dashes, 1-63 characters, starting and ending with a letter or digit{}", suggestion.as_ref().map(|s| format!(" (try '{s}')")).unwrap_or_default())]
pub struct NameError {
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
                given: s.chars().take(100).collect(),
                reason,
                suggestion: suggest(s),
            }),
        }
    }
}

/// What is wrong with `s` as a name, if anything.
fn problem(s: &str) -> Option<&'static str> {
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
