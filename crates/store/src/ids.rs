//! Identifier newtypes. Each is a prefixed, lowercase ULID (`dep_01j…`): sortable by creation
//! time, readable in logs, and impossible to confuse with another kind of id.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, sqlx::Type)]
        #[serde(try_from = "String", into = "String")]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            /// A new, unique id.
            pub fn generate() -> Self {
                $name(format!("{}_{}", $prefix, ulid::Ulid::new().to_string().to_ascii_lowercase()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                let valid = s
                    .strip_prefix(concat!($prefix, "_"))
                    .is_some_and(|rest| rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
                if valid {
                    Ok($name(s.to_owned()))
                } else {
                    Err(IdError { kind: stringify!($name), prefix: $prefix, given: s.chars().take(80).collect() })
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(s: String) -> Result<Self, IdError> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// Identifies a server across renames of nothing: names are unique, ids are forever.
    ServerId, "srv"
);
id_type!(
    /// Identifies one deployment (one build of a server's source and its artifact).
    DeploymentId, "dep"
);
id_type!(
    /// Identifies one running process (or pod) of a deployment.
    InstanceId, "ins"
);
id_type!(
    /// Identifies a user or service account.
    PrincipalId, "prn"
);
id_type!(
    /// Identifies an API key (not its secret).
    ApiKeyId, "key"
);
id_type!(
    /// Identifies a group of principals.
    GroupId, "grp"
);
id_type!(
    /// Identifies one rule of a server's tool-level policy.
    PolicyId, "pol"
);
id_type!(
    /// Identifies a language-model provider.
    ProviderId, "prv"
);
id_type!(
    /// Identifies an agent (its name may be reused after it is removed; this is not).
    AgentId, "agt"
);
id_type!(
    /// Identifies one conversation of a user with an agent or a server.
    ConversationId, "cnv"
);

/// A string that is not an id of the expected kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{given}' is not a valid {kind} (expected '{prefix}_' followed by 26 lowercase letters and digits)"
)]
pub struct IdError {
    kind: &'static str,
    prefix: &'static str,
    given: String,
}
