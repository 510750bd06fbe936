//! The one place where the store's SQL text meets the database driver: queries are written
//! once, with `?` or `?N` placeholders, and run unchanged on SQLite and PostgreSQL.
//!
//! PostgreSQL only understands `$N` placeholders; SQLite understands `$N` too (as the N-th
//! bound value), so every statement is rewritten to `$N` before it reaches either driver.
//! A statement's rewritten text is computed once per process and shared, which also keeps the
//! drivers' prepared-statement caches keyed by one string per statement. What cannot be written
//! portably (full-text search, JSON arrays, locking) lives in [`crate::dialect`], not here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use sqlx::any::{Any, AnyArguments, AnyRow};
use sqlx::query::{Query, QueryScalar};
use sqlx::{AssertSqlSafe, Decode, Type};

/// A statement with its placeholders rewritten, ready for values to be bound.
pub(crate) fn query<'q>(sql: &'static str) -> Query<'q, Any, AnyArguments> {
    sqlx::query(AssertSqlSafe(cached(sql)))
}

/// Like [`query`], for a statement that returns one column.
pub(crate) fn query_scalar<'q, O>(sql: &'static str) -> QueryScalar<'q, Any, O, AnyArguments>
where
    O: Send + Unpin + Type<Any> + for<'r> Decode<'r, Any>,
{
    sqlx::query_scalar(AssertSqlSafe(cached(sql)))
}

/// Like [`query`], for a statement assembled at run time (a multi-row insert); not cached.
pub(crate) fn query_built<'q>(sql: &str) -> Query<'q, Any, AnyArguments> {
    sqlx::query(AssertSqlSafe(numbered(sql)))
}

fn cached(sql: &'static str) -> Arc<str> {
    static REWRITTEN: OnceLock<Mutex<HashMap<&'static str, Arc<str>>>> = OnceLock::new();
    let mut map = REWRITTEN
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.entry(sql)
        .or_insert_with(|| Arc::from(numbered(sql)))
        .clone()
}

/// `sql` with every `?` placeholder outside quotes and comments turned into `$N`: a bare `?`
/// takes the next number after the highest seen so far (as SQLite numbers them), `?N` keeps N.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut highest = 0u32;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let n = match digits.parse::<u32>() {
                    Ok(n) => n,
                    Err(_) => highest + 1,
                };
                highest = highest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// Reads a flag column: flags are stored as integers (0 or 1) on both databases, so that
/// statements can compare them with `= 1` and both drivers decode them alike.
pub(crate) fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    use sqlx::Row;
    Ok(row.try_get::<i64, _>(column)? != 0)
}

/// Like [`flag`], for a column where NULL means "not chosen".
pub(crate) fn optional_flag(row: &AnyRow, column: &str) -> Result<Option<bool>, sqlx::Error> {
    use sqlx::Row;
    Ok(row.try_get::<Option<i64>, _>(column)?.map(|v| v != 0))
}

#[cfg(test)]
mod tests;
