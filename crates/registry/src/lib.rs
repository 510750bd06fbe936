//! The catalog's domain: what an external entry's settings may be (`remote.rs`), and the
//! `server.json` documents of the official registry API (`document.rs`): reverse-DNS names,
//! versions, import; the packages a `server.json` declares (`package.rs`); and search (`search.rs`): queries and keeping the index current.
//!
//! Parsing and rules: no SQL (the store keeps entries and the index), no HTTP (the gateway proxies and
//! checks remotes, `web` serves the API).

mod document;
mod package;
mod remote;
mod search;

pub use document::{
    CatalogEntry, ImportError, Imported, META_KEY, OFFICIAL_META_KEY, SCHEMA_URL, ServerResponse,
    catalog_name, document, import, namespace, registry_name, response,
};
pub use package::{DeclaredPackage, DeclaredVariable, PackageError, declared_package};
pub use remote::{RemoteError, parse_header, parse_remote_url, shown_url};
pub use search::{QueryError, follow_search_index, fts_query, tools_of_inspection};

#[cfg(test)]
mod tests;
