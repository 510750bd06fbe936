//! The page shell (head, navigation, the signed-in user, logout) and the login form: markup
//! only, from plain values, so snapshot tests render it without a server.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::assets;

/// The sections of the navigation bar.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Servers,
    Deploy,
    Registry,
    Agents,
    Settings,
}

/// Who is signed in, as the shell shows it.
pub(crate) struct Viewer<'a> {
    pub(crate) name: &'a str,
}

/// A whole page: head, navigation with `section` current, then `body`.
pub(crate) fn page(title: &str, viewer: &Viewer<'_>, section: Section, body: Markup) -> Markup {
    let nav = [
        (Section::Servers, "/ui/servers", "Servers"),
        (Section::Deploy, "/ui/deploy", "Deploy"),
        (Section::Registry, "/ui/registry", "Registry"),
        (Section::Agents, "/ui/agents", "Agents"),
        (Section::Settings, "/ui/settings", "Settings"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/servers" { "Skyport" }
                    nav aria-label="Main" {
                        ul {
                            @for (s, href, label) in nav {
                                li { a href=(href) aria-current=[(s == section).then_some("page")] { (label) } }
                            }
                        }
                    }
                    form.logout method="post" action="/ui/logout" {
                        span.who { (viewer.name) }
                        button type="submit" { "Log out" }
                    }
                }
                main #main { (body) }
                script type="module" src=(assets::url("ui.js")) {}
            }
        }
    }
}

/// The import map every page inlines, the one inline script (the Content-Security-Policy
/// names its hash).
pub(crate) fn import_map() -> String {
    serde_json::json!({ "imports": {
        "skyport/mcp.js": assets::url("mcp.js"),
        "skyport/apps.js": assets::url("apps.js"),
        "skyport/inspector.js": assets::url("inspector.js"),
    }})
    .to_string()
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="color-scheme" content="light dark";
            title { (title) " · Skyport" }
            link rel="icon" href="data:,";
            link rel="stylesheet" href=(assets::url("ui.css"));
            script type="importmap" { (PreEscaped(import_map())) }
        }
    }
}

/// The login form; `error` says why the last attempt failed.
pub(crate) fn login(next: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Log in"))
            body.login {
                main #main {
                    h1 { "Skyport" }
                    form.card method="post" action="/ui/login" {
                        @if let Some(error) = error { p.error role="alert" { (error) } }
                        input type="hidden" name="next" value=(next);
                        label for="user" { "User" }
                        input #user name="user" autocomplete="username" required autofocus;
                        label for="password" { "Password" }
                        input #password name="password" type="password" autocomplete="current-password" required;
                        button type="submit" { "Log in" }
                    }
                }
            }
        }
    }
}

/// An error page inside the shell.
pub(crate) fn problem(viewer: &Viewer<'_>, status: u16, message: &str) -> Markup {
    page(
        "Error",
        viewer,
        Section::Servers,
        html! { h1 { "Error " (status) } p.error role="alert" { (message) } },
    )
}
