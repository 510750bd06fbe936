//! The registry browser: the catalog the viewer sees (hosted, external and remix servers),
//! grouped by kind, and the catalog search (`GET /api/v1/registry/search`, the store's
//! full-text index down to tools) with the tools that matched. Each entry links to its page.
//! Markup comes from the API's views only: what a viewer may not see is not listed there.

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use skyport_api::{SearchMatch, SearchResults, ServerView};
use skyport_store::ServerKind;

use super::UiState;
use super::forward::{get_json, segment};
use super::layout::{self, Section, Viewer};
use super::pages;
use super::session::Session;

/// Query of the registry page.
#[derive(Debug, Deserialize)]
pub(crate) struct RegistryParams {
    #[serde(default)]
    q: String,
}

/// `GET /ui/registry[?q=…]`.
pub(crate) async fn registry(
    State(state): State<UiState>,
    Extension(session): Extension<Session>,
    Query(params): Query<RegistryParams>,
) -> Response {
    let viewer = super::pages::viewer(&session);
    let query = params.q.trim();
    let found = if query.is_empty() {
        get_json::<Vec<ServerView>>(&state, &session, "/servers")
            .await
            .map(|servers| {
                Found::Catalog(
                    servers
                        .into_iter()
                        .filter(|s| s.preview.is_none())
                        .collect(),
                )
            })
    } else {
        let path = format!("/registry/search?q={}", segment(query));
        get_json::<SearchResults>(&state, &session, &path)
            .await
            .map(|results| Found::Matches(results.servers))
    };
    match found {
        Ok(found) => Html(registry_page(&viewer, query, &found).into_string()).into_response(),
        Err(refusal) => pages::refused(&viewer, refusal).await,
    }
}

/// What the page lists: the whole catalog, or a search's matches.
pub(crate) enum Found {
    Catalog(Vec<ServerView>),
    Matches(Vec<SearchMatch>),
}

const KINDS: [(ServerKind, &str, &str); 3] = [
    (
        ServerKind::Hosted,
        "Hosted",
        "Deployed and run by this Skyport.",
    ),
    (
        ServerKind::External,
        "External",
        "Remote MCP servers proxied through the gateway.",
    ),
    (
        ServerKind::Remix,
        "Remix",
        "Composed from tools of other servers.",
    ),
];

/// The registry page for `query` (empty: the catalog).
pub(crate) fn registry_page(viewer: &Viewer<'_>, query: &str, found: &Found) -> Markup {
    layout::page(
        "Registry",
        viewer,
        Section::Registry,
        html! {
            h1 { "Registry" }
            form.search role="search" method="get" action="/ui/registry" {
                label for="r-q" { "Search servers and their tools" }
                div.toolbar {
                    input #r-q type="search" name="q" value=(query) placeholder="weather forecast";
                    button type="submit" { "Search" }
                }
            }
            @match found {
                Found::Catalog(servers) => {
                    @if servers.is_empty() {
                        p.muted { "The catalog is empty. " a href="/ui/deploy" { "Deploy a server" } ", or add an external one with " code { "skyport registry add-external NAME URL" } "." }
                    }
                    @for (kind, title, about) in KINDS {
                        @let entries: Vec<&ServerView> = servers.iter().filter(|s| s.kind == kind).collect();
                        @if !entries.is_empty() {
                            section.kind #{ "kind-" (kind.as_str()) } {
                                h2 { (title) " " span.badge { (entries.len()) } }
                                p.muted { (about) }
                                ul.entries {
                                    @for s in entries {
                                        li { (entry(s.name.as_str(), &s.description, &s.url)) }
                                    }
                                }
                            }
                        }
                    }
                }
                Found::Matches(matches) => {
                    p role="status" { (matches.len()) @if matches.len() == 1 { " server matches " } @else { " servers match " } strong { (query) } ". " a href="/ui/registry" { "Show the whole catalog" } }
                    ul.entries #matches {
                        @for m in matches {
                            li {
                                (entry(m.name.as_str(), &m.description, &m.url))
                                " " span.badge { (m.kind.as_str()) }
                                @if !m.tools.is_empty() {
                                    ul.tools {
                                        @for t in &m.tools {
                                            li { code { (t.name) } @if !t.description.is_empty() { " — " (t.description) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn entry(name: &str, description: &str, url: &str) -> Markup {
    html! {
        a.entry href={ "/ui/servers/" (segment(name)) } { strong { (name) } }
        @if !description.is_empty() { " — " (description) }
        br;
        code.muted { (url) } " " (pages::copy_button(url))
    }
}
