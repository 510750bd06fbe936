//! A fresh PostgreSQL database per test, made and dropped with `psql` on the server at
//! `SKYPORT_TEST_DATABASE_URL` (else `postgres://postgres@127.0.0.1:5432/postgres`), whose
//! user must be allowed to create databases.
//!
//! Without a reachable server a test that needs one says so and returns early, except under
//! `CI=true`, where it fails: CI provides PostgreSQL, so its absence is a broken setup.

use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Skyport, command};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The master key replicas share in tests (replicas on one database must share one).
const REPLICA_MASTER_KEY: &str = "7c1f5e0a9b3d2c4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e";

/// A database made for one test; dropped (with the connections still on it) when this is.
pub struct PostgresDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PostgresDatabase {
    /// Two `skyport serve` replicas on this database (their own data dirs and ports, one
    /// master key), with `extra` flags.
    pub fn replicas(&self, extra: &[&str]) -> (Skyport, Skyport) {
        let mut flags = vec!["--database-url", self.url()];
        flags.extend_from_slice(extra);
        let env = [("SKYPORT_MASTER_KEY", REPLICA_MASTER_KEY)];
        let a = Skyport::serve_with_env(&flags, &env);
        let b = Skyport::serve_with_env(&flags, &env);
        (a, b)
    }

    /// A new, empty database, or `None` (after saying why) when PostgreSQL is not reachable
    /// and this is not CI.
    pub fn create() -> Option<PostgresDatabase> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let admin_url = std::env::var("SKYPORT_TEST_DATABASE_URL")
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        if let Err(why) = psql(&admin_url, "SELECT 1") {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL is not reachable at {admin_url} ({why}), and CI=true says it must be: \
                 start it or set SKYPORT_TEST_DATABASE_URL"
            );
            eprintln!("skipped: PostgreSQL is not reachable at {admin_url}: {why}");
            return None;
        }
        let name = format!(
            "skyport_e2e_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(why) = psql(&admin_url, &format!("CREATE DATABASE {name}")) {
            panic!("cannot create database {name}: {why}");
        }
        let url = with_database(&admin_url, &name);
        Some(PostgresDatabase {
            admin_url,
            name,
            url,
        })
    }

    /// Its URL, for `skyport serve --database-url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The first column of the first row `query` returns, as `psql` prints it.
    pub fn value(&self, query: &str) -> String {
        let output = command("psql")
            .args(["--no-psqlrc", "-At", "-v", "ON_ERROR_STOP=1"])
            .arg("--dbname")
            .arg(&self.url)
            .arg("--command")
            .arg(query)
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "{query}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(why) = psql(&self.admin_url, &drop) {
            eprintln!("cannot drop test database {}: {why}", self.name);
        }
    }
}

/// Runs one statement with `psql`; the error is what psql said.
fn psql(url: &str, statement: &str) -> Result<(), String> {
    let output: Output = command("psql")
        .args(["--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1"])
        .arg("--dbname")
        .arg(url)
        .arg("--command")
        .arg(statement)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// `url` with its database (the path) replaced by `name`, its query kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    match query {
        Some(query) => format!("{}/{name}?{query}", &base[..host_end]),
        None => format!("{}/{name}", &base[..host_end]),
    }
}
