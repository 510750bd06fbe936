//! The catalog's full-text index (SQLite FTS5, or a PostgreSQL `tsvector`): entries and
//! their tools by name and description. Callers decide what an entry's tools are (the
//! registry: a hosted server's live inspection, an external server's last health check) and
//! hand over a query already in FTS5 syntax; this module only stores and matches. On
//! PostgreSQL the query's words become a `tsquery` (see [`tsquery`]).

use sqlx::Row;

use crate::dialect::Dialect;
use crate::{ServerName, Store, StoreError, ToolSummary};

/// One match: an entry itself (`tool` is `None`) or one of its tools.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchHit {
    /// The entry.
    pub server: ServerName,
    /// The matching tool, when the match is a tool.
    pub tool: Option<ToolSummary>,
}

/// Access to the search index; obtained from [`Store::search`].
pub struct Search<'a> {
    pub(crate) store: &'a Store,
}

impl Search<'_> {
    /// Replaces what the index holds about `server`: its description and its tools.
    pub async fn index(
        &self,
        server: &ServerName,
        description: &str,
        tools: &[ToolSummary],
    ) -> Result<(), StoreError> {
        let mut tx = self.store.write().await?;
        crate::sql::query("DELETE FROM catalog_search WHERE server = ?")
            .bind(server)
            .execute(&mut *tx)
            .await?;
        crate::sql::query(
            "INSERT INTO catalog_search (server, tool, name, description) VALUES (?, '', ?, ?)",
        )
        .bind(server)
        .bind(server.as_str())
        .bind(description)
        .execute(&mut *tx)
        .await?;
        for tool in tools {
            crate::sql::query(
                "INSERT INTO catalog_search (server, tool, name, description) VALUES (?, ?, ?, ?)",
            )
            .bind(server)
            .bind(&tool.name)
            .bind(&tool.name)
            .bind(&tool.description)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forgets `server`.
    pub async fn forget(&self, server: &ServerName) -> Result<(), StoreError> {
        crate::sql::query("DELETE FROM catalog_search WHERE server = ?")
            .bind(server)
            .execute(&self.store.pool)
            .await?;
        Ok(())
    }

    /// The names of every entry the index holds.
    pub async fn indexed(&self) -> Result<Vec<ServerName>, StoreError> {
        crate::sql::query("SELECT DISTINCT server FROM catalog_search WHERE tool = ''")
            .fetch_all(&self.store.pool)
            .await?
            .iter()
            .map(|row| Ok(row.try_get("server")?))
            .collect()
    }

    /// Matches of `fts_query` (FTS5 syntax, built by the caller from the user's words), best
    /// first, at most `limit`.
    pub async fn query(&self, fts_query: &str, limit: u32) -> Result<Vec<SearchHit>, StoreError> {
        let rows = match self.store.dialect {
            Dialect::Sqlite => crate::sql::query(
                "SELECT server, tool, description FROM catalog_search WHERE catalog_search MATCH ?
                     ORDER BY bm25(catalog_search, 2.0, 1.0), server, tool LIMIT ?",
            )
            .bind(fts_query)
            .bind(i64::from(limit))
            .fetch_all(&self.store.pool)
            .await?,
            Dialect::Postgres => {
                let Some(words) = tsquery(fts_query) else {
                    return Ok(Vec::new());
                };
                crate::sql::query(
                    "SELECT server, tool, description FROM catalog_search
                     WHERE document @@ to_tsquery('english', ?1)
                     ORDER BY ts_rank(document, to_tsquery('english', ?1)) DESC, server, tool
                     LIMIT ?2",
                )
                .bind(words)
                .bind(i64::from(limit))
                .fetch_all(&self.store.pool)
                .await?
            }
        };
        rows.iter()
            .map(|row| {
                let tool: String = row.try_get("tool")?;
                Ok(SearchHit {
                    server: row.try_get("server")?,
                    tool: (!tool.is_empty())
                        .then(|| -> Result<ToolSummary, StoreError> {
                            Ok(ToolSummary {
                                name: tool,
                                description: row.try_get("description")?,
                            })
                        })
                        .transpose()?,
                })
            })
            .collect()
    }
}

/// The PostgreSQL `tsquery` for an FTS5 query as the registry writes them (`"word"*` terms
/// joined by `AND`): every word, as a prefix, all required. Only letters and digits of each
/// word are kept, so nothing in the input is `tsquery` syntax; `None` when no word is left.
fn tsquery(fts_query: &str) -> Option<String> {
    let terms: Vec<String> = fts_query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty() && *word != "AND")
        .map(|word| format!("{}:*", word.to_lowercase()))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" & "))
}

#[cfg(test)]
mod tests;
