//! How a server's instances run (`--memory`, `--idle-timeout`, `--min-instances`,
//! `--max-instances`, and for stdio servers `--stdio-sessions`, `--stdio-shared`) and how the gateway treats it (`--auth`, `--request-timeout`, `--identity-token`): the stored
//! values, their defaults and the rules that keep them sane.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Smallest memory cap accepted: a FastMCP server needs about 60 MiB just to import.
pub const MIN_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// Most instances one server may run.
pub const MAX_INSTANCES: u32 = 64;
/// Most stdio sessions (processes) one instance of a stdio server may serve.
pub const MAX_STDIO_SESSIONS: u32 = 256;
/// Longest request timeout a server may set: a day, past which a request is a stream and
/// belongs on `GET`.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// How a server's instances run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeSettings {
    /// Memory cap of each instance, in bytes.
    pub memory_bytes: u64,
    /// How long an instance may sit without work before it is stopped.
    pub idle_timeout: Duration,
    /// Instances kept running even when idle.
    pub min_instances: u32,
    /// Most instances started when every running one is at its concurrency limit.
    pub max_instances: u32,
    /// For a stdio server: sessions one instance serves at once, each with its own process.
    pub stdio_sessions: u32,
    /// For a stdio server: one process serves every session (the server keeps no state per
    /// client), instead of one process per session.
    pub stdio_shared: bool,
}

impl Default for RuntimeSettings {
    fn default() -> RuntimeSettings {
        RuntimeSettings {
            memory_bytes: 1024 * 1024 * 1024,
            idle_timeout: Duration::from_secs(300),
            min_instances: 0,
            max_instances: 4,
            stdio_sessions: 16,
            stdio_shared: false,
        }
    }
}

/// How the gateway treats a server. `None` follows the platform's default (the flags of
/// `skyport serve`), so a server that never chose changes with the platform.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewaySettings {
    /// Whether requests need a credential.
    pub auth: Option<bool>,
    /// How long a request may take before the gateway answers with an error.
    pub request_timeout: Option<Duration>,
    /// Whether requests carry a signed identity token (`skyport-identity`); off by default.
    pub identity_token: bool,
}

/// Changes to a server's [`RuntimeSettings`] and [`GatewaySettings`]; `None` keeps the current
/// value, and for the gateway's settings `Some(None)` returns to the platform's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsPatch {
    /// New memory cap per instance, in bytes.
    pub memory_bytes: Option<u64>,
    /// New idle timeout.
    pub idle_timeout: Option<Duration>,
    /// New minimum of running instances.
    pub min_instances: Option<u32>,
    /// New maximum of running instances.
    pub max_instances: Option<u32>,
    /// New number of stdio sessions per instance.
    #[serde(default)]
    pub stdio_sessions: Option<u32>,
    /// Whether a stdio server's sessions share one process.
    #[serde(default)]
    pub stdio_shared: Option<bool>,
    /// Whether the gateway requires a credential.
    pub auth: Option<Option<bool>>,
    /// New request timeout.
    pub request_timeout: Option<Option<Duration>>,
    /// Whether requests carry a signed identity token.
    pub identity_token: Option<bool>,
}

/// Why settings were refused; messages say which flag to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// The memory cap is too small to run a server.
    #[error("--memory must be at least {} MiB (got {} MiB)", MIN_MEMORY_BYTES / (1024 * 1024), .0 / (1024 * 1024))]
    MemoryTooSmall(u64),
    /// An idle timeout of zero would stop instances between requests.
    #[error("--idle-timeout must be at least 1s")]
    IdleTimeoutTooShort,
    /// `max_instances` is 0 or above [`MAX_INSTANCES`].
    #[error("--max-instances must be between 1 and {MAX_INSTANCES} (got {0})")]
    MaxInstances(u32),
    /// More instances kept warm than may run.
    #[error("--min-instances ({min}) must not exceed --max-instances ({max})")]
    MinAboveMax {
        /// The minimum asked for.
        min: u32,
        /// The maximum in force.
        max: u32,
    },
    /// `stdio_sessions` is 0 or above [`MAX_STDIO_SESSIONS`].
    #[error("--stdio-sessions must be between 1 and {MAX_STDIO_SESSIONS} (got {0})")]
    StdioSessions(u32),
    /// A request timeout below a second or above [`MAX_REQUEST_TIMEOUT`].
    #[error("--request-timeout must be between 1s and 24h (got {}ms)", .0.as_millis())]
    RequestTimeout(Duration),
}

impl RuntimeSettings {
    /// These settings with `patch` applied, if the result is valid.
    pub fn patched(self, patch: &SettingsPatch) -> Result<RuntimeSettings, SettingsError> {
        let settings = RuntimeSettings {
            memory_bytes: patch.memory_bytes.unwrap_or(self.memory_bytes),
            idle_timeout: patch.idle_timeout.unwrap_or(self.idle_timeout),
            min_instances: patch.min_instances.unwrap_or(self.min_instances),
            max_instances: patch.max_instances.unwrap_or(self.max_instances),
            stdio_sessions: patch.stdio_sessions.unwrap_or(self.stdio_sessions),
            stdio_shared: patch.stdio_shared.unwrap_or(self.stdio_shared),
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the rules in [`SettingsError`].
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.memory_bytes < MIN_MEMORY_BYTES {
            return Err(SettingsError::MemoryTooSmall(self.memory_bytes));
        }
        if self.idle_timeout < Duration::from_secs(1) {
            return Err(SettingsError::IdleTimeoutTooShort);
        }
        if self.max_instances == 0 || self.max_instances > MAX_INSTANCES {
            return Err(SettingsError::MaxInstances(self.max_instances));
        }
        if self.stdio_sessions == 0 || self.stdio_sessions > MAX_STDIO_SESSIONS {
            return Err(SettingsError::StdioSessions(self.stdio_sessions));
        }
        if self.min_instances > self.max_instances {
            return Err(SettingsError::MinAboveMax {
                min: self.min_instances,
                max: self.max_instances,
            });
        }
        Ok(())
    }
}

impl GatewaySettings {
    /// These settings with `patch` applied, if the result is valid.
    pub fn patched(self, patch: &SettingsPatch) -> Result<GatewaySettings, SettingsError> {
        let settings = GatewaySettings {
            auth: patch.auth.unwrap_or(self.auth),
            request_timeout: patch.request_timeout.unwrap_or(self.request_timeout),
            identity_token: patch.identity_token.unwrap_or(self.identity_token),
        };
        if let Some(timeout) = settings.request_timeout
            && (timeout < Duration::from_secs(1) || timeout > MAX_REQUEST_TIMEOUT)
        {
            return Err(SettingsError::RequestTimeout(timeout));
        }
        Ok(settings)
    }
}
