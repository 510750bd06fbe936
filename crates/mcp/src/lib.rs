//! MCP wire pieces shared by the gateway and clients: JSON-RPC 2.0 envelopes, JSON-RPC error
//! bodies, server-sent events and the streamable-HTTP header names.
//!
//! This crate performs no I/O and knows nothing about Skyport's servers, storage or HTTP stack: it
//! turns bytes into the few facts the gateway needs (which method, which id) and builds error
//! bodies. Everything else in a message is forwarded untouched, so it is never modelled here.

pub mod clients;
pub mod era;
pub mod headers;
pub mod jsonrpc;
pub mod sse;
