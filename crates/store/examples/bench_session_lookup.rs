//! What a gateway session lookup costs when it misses memory and reads the store: SQLite (a
//! file in a temporary directory, as `serve` keeps it) against PostgreSQL (a fresh database on
//! the server at `SKYPORT_BENCH_DATABASE_URL`, else `postgres://postgres@127.0.0.1:5432/postgres`,
//! dropped afterwards), measured in the same run and printed as a ratio.
//!
//! ```text
//! cargo run -p skyport-store --example bench_session_lookup [SESSIONS] [LOOKUPS]
//! ```
//!
//! Both stores hold SESSIONS sessions (default 10,000); each round looks up LOOKUPS (default
//! 2,000) of them, one at a time as the gateway does, alternating the backends for 5 rounds so
//! that the machine's noise falls on both. Prints the median round per backend (µs per lookup)
//! and PostgreSQL / SQLite.

use std::io::Write;
use std::time::{Duration, Instant};

use skyport_store::{DeploymentId, ServerName, SessionBinding, Store, StoredSession, Timestamp};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Executor};

const ROUNDS: usize = 5;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let sessions: usize = args.next().map_or(Ok(10_000), |a| a.parse())?;
    let lookups: usize = args.next().map_or(Ok(2_000), |a| a.parse())?;

    let dir = tempfile::tempdir()?;
    let sqlite = Store::open(&dir.path().join("skyport.db")).await?;
    let admin_url = std::env::var("SKYPORT_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let database = format!("skyport_bench_{}", std::process::id());
    let mut admin = PgConnection::connect(&admin_url).await?;
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .await?;
    let measured = async {
        let postgres = Store::connect(&replace_database(&admin_url, &database)).await?;
        let ids = fill(&sqlite, sessions).await?;
        fill_with(&postgres, &ids).await?;

        let mut on_sqlite = Vec::new();
        let mut on_postgres = Vec::new();
        for round in 0..ROUNDS {
            let picks: Vec<&String> = (0..lookups)
                .map(|i| &ids[(i * 7919 + round * 104_729) % ids.len()])
                .collect();
            on_sqlite.push(per_lookup(&sqlite, &picks).await?);
            on_postgres.push(per_lookup(&postgres, &picks).await?);
        }
        postgres.close().await;
        Ok::<_, Box<dyn std::error::Error>>((median(on_sqlite), median(on_postgres)))
    }
    .await;
    admin
        .execute(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
        )))
        .await?;
    let (on_sqlite, on_postgres) = measured?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "session lookup ({sessions} sessions, {lookups} lookups x {ROUNDS} rounds, median round)"
    )?;
    writeln!(out, "  sqlite:     {:>8.1} us/lookup", micros(on_sqlite))?;
    writeln!(out, "  postgresql: {:>8.1} us/lookup", micros(on_postgres))?;
    writeln!(
        out,
        "  postgresql / sqlite = {:.2}",
        on_postgres.as_secs_f64() / on_sqlite.as_secs_f64()
    )?;
    Ok(())
}

/// Stores `count` sessions of one server; returns their client-facing ids.
async fn fill(store: &Store, count: usize) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let ids: Vec<String> = (0..count).map(|i| format!("session-{i:08}")).collect();
    fill_with(store, &ids).await?;
    Ok(ids)
}

async fn fill_with(store: &Store, ids: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let name: ServerName = "echo".parse()?;
    let (server, _) = store.servers().ensure(&name, None).await?;
    let deployment = DeploymentId::generate();
    let initialize = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}}"#;
    for id in ids {
        let session = StoredSession {
            server: server.id.clone(),
            principal: None,
            binding: SessionBinding {
                deployment: deployment.clone(),
                instance: None,
                upstream: Some("upstream".to_owned()),
            },
            initialize: initialize.to_vec(),
            protocol_version: Some("2025-06-18".to_owned()),
            created_at: Timestamp::now(),
            last_used_at: Timestamp::now(),
        };
        store.sessions().insert(id, &session).await?;
    }
    Ok(())
}

/// The mean time of one lookup of each of `ids`, in order.
async fn per_lookup(
    store: &Store,
    ids: &[&String],
) -> Result<Duration, Box<dyn std::error::Error>> {
    let since = Timestamp::UNIX_EPOCH;
    let started = Instant::now();
    for id in ids {
        if store.sessions().get(id, since).await?.is_none() {
            return Err(format!("session {id} is missing").into());
        }
    }
    Ok(started.elapsed() / u32::try_from(ids.len())?)
}

fn median(mut rounds: Vec<Duration>) -> Duration {
    rounds.sort();
    rounds[rounds.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `url` with its database replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let host_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|i| start + i))
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..host_end]);
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
    out
}
