//! Secret values out of build and instance output: every line is rewritten before it is stored,
//! streamed or quoted in an error, so a server (or a build step) that prints its API key does not
//! leak it through Skyport. It lives beside the secrets because both the build and the runtime
//! use it, and neither may depend on the other.

use std::borrow::Cow;

use crate::EnvVar;

/// Values shorter than this are not redacted: replacing every `1` or `on` in a log would
/// destroy it and protect nothing.
const MIN_SECRET_LEN: usize = 4;

/// Replaces secret values by `[redacted:NAME]`.
#[derive(Clone, Default)]
pub struct Redactor {
    /// `(value, replacement)`, longest value first so a secret containing another is replaced
    /// whole.
    secrets: Vec<(String, String)>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The values are the secrets themselves: only their names may be shown.
        f.debug_list()
            .entries(self.secrets.iter().map(|(_, replacement)| replacement))
            .finish()
    }
}

impl Redactor {
    /// A redactor for the secrets among `env`.
    pub fn new(env: &[EnvVar]) -> Redactor {
        let mut secrets: Vec<(String, String)> = env
            .iter()
            .filter(|v| v.secret && v.value.len() >= MIN_SECRET_LEN)
            .map(|v| (v.value.clone(), format!("[redacted:{}]", v.name)))
            .collect();
        secrets.sort_by_key(|(value, _)| std::cmp::Reverse(value.len()));
        Redactor { secrets }
    }

    /// `line` with every secret value replaced.
    pub fn apply<'a>(&self, line: &'a str) -> Cow<'a, str> {
        let mut line = Cow::Borrowed(line);
        for (value, replacement) in &self.secrets {
            if line.contains(value.as_str()) {
                line = Cow::Owned(line.replace(value.as_str(), replacement));
            }
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(name: &str, value: &str, secret: bool) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: value.into(),
            secret,
        }
    }

    #[test]
    fn secrets_are_replaced_and_plain_values_kept() {
        let redactor = Redactor::new(&[
            var("API_KEY", "sk-12345", true),
            var("LONG", "sk-12345-and-more", true),
            var("REGION", "eu-west-1", false),
            var("FLAG", "on", true),
        ]);
        assert_eq!(
            redactor.apply("key sk-12345 then sk-12345-and-more in eu-west-1 on"),
            "key [redacted:API_KEY] then [redacted:LONG] in eu-west-1 on"
        );
        assert!(matches!(redactor.apply("nothing here"), Cow::Borrowed(_)));
    }
}
