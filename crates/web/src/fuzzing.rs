//! The crate-private parsers the fuzz targets in `fuzz/` drive, behind the `fuzzing` feature
//! (hidden from the docs). Only `fuzz/Cargo.toml` turns the feature on; nothing in the
//! workspace may call this module.

use skyport_build::SourceEvent;

use crate::hooks::github::{self, Delivery};

/// Reads a GitHub delivery of `event` as `POST /hooks/github/N` does once its signature
/// checked out: the event it becomes, `None` for a ping or a delivery that builds nothing, or
/// what is wrong with the payload.
pub fn github_delivery(event: &str, body: &[u8]) -> Result<Option<SourceEvent>, String> {
    Ok(match github::parse(event, body)? {
        Delivery::Event(event) => Some(event),
        Delivery::Ping | Delivery::Ignored(_) => None,
    })
}
