//! End-to-end tests: each test starts its own `skyport serve` (see `skyport_e2e::Skyport`), deploys
//! real FastMCP servers through the CLI and talks to them through the gateway with real clients.
//! One test binary so that the harness is compiled once; tests are independent and run in parallel.

mod access;
mod agents;
mod audit;
mod build;
mod builds;
mod conformance;
mod deploy;
mod env;
mod faults;
mod gateway;
mod identity;
mod keys;
mod legacy_sse;
mod matrix;
mod mcp_cli;
mod oauth;
mod packaged;
mod policy;
mod postgres;
mod registry;
mod remix;
mod remix_sessions;
mod replica_artifacts;
mod replica_limits;
mod rollback;
mod runtime;
mod security;
mod servers;
mod sessions;
mod ui;
mod ui_chat;
mod up;
mod webhooks;
