//! The catalog's domain: what an external entry's settings may be (`remote.rs`), and the
//! rules the registry API and search follow.
//!
//! Pure parsing and rules: no SQL (the store keeps entries), no HTTP (the gateway proxies and
//! checks remotes, `web` serves the API).

mod remote;

pub use remote::{RemoteError, parse_header, parse_remote_url, shown_url};

#[cfg(test)]
mod tests;
