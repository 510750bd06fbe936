//! Test databases: every repository test runs twice, on a private in-memory SQLite database
//! and on a fresh PostgreSQL database made for it (and dropped after it, even when it fails).
//!
//! PostgreSQL is the server at `SKYPORT_TEST_DATABASE_URL`, else
//! `postgres://postgres@127.0.0.1:5432/postgres`; the URL's user must be allowed to create
//! databases. When it cannot be reached the PostgreSQL half of each test says so and passes,
//! except under `CI=true`, where it fails: CI has PostgreSQL, so missing it is a broken setup.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor};

use crate::{Store, StoreError};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

tokio::task_local! {
    static BACKEND: Backend;
}

#[derive(Clone)]
enum Backend {
    Sqlite,
    Postgres(Arc<Databases>),
}

/// The databases one test made, dropped when the test ends.
struct Databases {
    admin_url: String,
    names: Mutex<Vec<String>>,
}

/// Declares each named `async fn` (no arguments) a test on both databases: `NAME::sqlite`
/// and `NAME::postgres`. Inside, [`store`] opens a store on the database of the run.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                $crate::testdb::on_sqlite(super::$name()).await
            }

            #[tokio::test]
            async fn postgres() {
                $crate::testdb::on_postgres(super::$name()).await
            }
        }
    )*};
}
pub(crate) use on_both_databases;

/// A new, empty store on the database the running test is for (in-memory SQLite outside
/// [`on_both_databases`]); each call on PostgreSQL makes another database.
pub(crate) async fn store() -> Result<Store, StoreError> {
    match BACKEND.try_with(Backend::clone) {
        Ok(Backend::Postgres(databases)) => {
            let url = databases.create().await;
            Store::connect(&url).await
        }
        Ok(Backend::Sqlite) | Err(_) => Store::open_in_memory().await,
    }
}

/// Two stores on one new PostgreSQL database, as two replicas would have; only for tests run
/// by [`on_postgres`].
pub(crate) async fn replicas() -> (Store, Store) {
    let Ok(Backend::Postgres(databases)) = BACKEND.try_with(Backend::clone) else {
        panic!("replicas() needs a test run by on_postgres");
    };
    let url = databases.create().await;
    let first = Store::connect(&url).await.unwrap();
    let second = Store::connect(&url).await.unwrap();
    (first, second)
}

/// Whether the running test is the PostgreSQL half of an [`on_both_databases`] pair.
pub(crate) fn on_postgres_now() -> bool {
    matches!(BACKEND.try_with(Backend::clone), Ok(Backend::Postgres(_)))
}

/// Every row of every table of `store`'s PostgreSQL database, as text: what a test that
/// reads a SQLite file's bytes reads on PostgreSQL.
pub(crate) async fn every_row(store: &Store) -> Vec<u8> {
    use sqlx::Row;
    let tables: Vec<String> = crate::sql::query_scalar(
        "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&store.pool)
    .await
    .unwrap();
    let mut text = String::new();
    for table in tables {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(t AS TEXT) AS row FROM \"{table}\" t"
        )))
        .fetch_all(&store.pool)
        .await
        .unwrap();
        for row in rows {
            text.push_str(&row.get::<String, _>("row"));
            text.push('\n');
        }
    }
    text.into_bytes()
}

/// Runs `test` with [`store`] giving SQLite stores.
pub(crate) async fn on_sqlite(test: impl Future<Output = ()>) {
    BACKEND.scope(Backend::Sqlite, test).await;
}

/// Runs `test` with [`store`] giving stores on fresh PostgreSQL databases.
pub(crate) async fn on_postgres(test: impl Future<Output = ()>) {
    let admin_url =
        std::env::var("SKYPORT_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.into());
    if let Err(e) = admin(&admin_url).await {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "PostgreSQL is not reachable at {admin_url} ({e}), and CI=true says it must be: \
             start it or set SKYPORT_TEST_DATABASE_URL"
        );
        eprintln!("skipped: PostgreSQL is not reachable at {admin_url}: {e}");
        return;
    }
    let databases = Arc::new(Databases {
        admin_url,
        names: Mutex::default(),
    });
    let _drop = DropDatabases(databases.clone());
    BACKEND.scope(Backend::Postgres(databases), test).await;
}

impl Databases {
    /// Creates a database with a name no other test uses; returns its URL.
    async fn create(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "skyport_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let mut conn = admin(&self.admin_url).await.expect("PostgreSQL went away");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("cannot create a test database");
        self.names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(name.clone());
        with_database(&self.admin_url, &name)
    }
}

/// Drops a test's databases when it ends, passed or failed; on a thread of its own, because
/// the test's runtime may be unwinding.
struct DropDatabases(Arc<Databases>);

impl Drop for DropDatabases {
    fn drop(&mut self) {
        let databases = self.0.clone();
        let names: Vec<String> = std::mem::take(
            &mut *databases
                .names
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if names.is_empty() {
            return;
        }
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop test databases");
            runtime.block_on(async {
                let mut conn = admin(&databases.admin_url).await?;
                for name in names {
                    // FORCE ends the connections the test's pool still holds.
                    conn.execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .await?;
                }
                Ok::<(), sqlx::Error>(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("cannot drop a test database: {e}");
        }
    }
}

async fn admin(url: &str) -> Result<PgConnection, sqlx::Error> {
    match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(url)).await {
        Ok(conn) => conn,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
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
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}
