//! Which database a store runs on. Every statement of the store is written once for both
//! (see `sql.rs`), except these, which match on the [`Dialect`] where they are:
//! how a write transaction starts (`Store::write`: `BEGIN IMMEDIATE`, or an advisory lock),
//! full-text search (`search.rs`: FTS5, or `tsvector`), a JSON array as rows
//! (`Deployments::prune_artifacts`: `json_each`, or `jsonb_array_elements_text`), and what
//! only replicas need (PostgreSQL only): the change feed across processes (`feed.rs`), claims
//! on work (`claims.rs`), and telling other replicas' connections from this one's
//! (`Deployments::fail_interrupted`).

/// Which database a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// An embedded SQLite file (one Skyport).
    Sqlite,
    /// A PostgreSQL server (one or several Skyports).
    Postgres,
}

/// The key of the advisory lock that every PostgreSQL write transaction takes (see
/// `Store::write`); "skyport" in ASCII, so that it is recognisable in `pg_locks`.
pub(crate) const WRITE_LOCK: i64 = 0x0073_6b79_706f_7274;

impl Dialect {
    /// The dialect a database URL speaks, if Skyport supports it.
    pub fn of_url(url: &str) -> Option<Dialect> {
        let scheme = url.split_once(':')?.0;
        match scheme {
            "postgres" | "postgresql" => Some(Dialect::Postgres),
            "sqlite" => Some(Dialect::Sqlite),
            _ => None,
        }
    }
}
