//! `skyport servers set`'s source flags (`--source`, `--branch`, `--entrypoint`,
//! `--webhook-secret`, `--poll`, `--preview-ttl`) as the API takes them, and how a server's
//! source and previews are shown.

use std::io::Write;

use skyport_api::{ServerView, SourceUpdate};

use crate::cli::SourceArgs;

/// A source change asked for on the command line.
pub(crate) struct SourceChange {
    /// What the API is sent.
    pub(crate) update: SourceUpdate,
    /// A webhook secret made here for `--webhook-secret generate`, shown once.
    pub(crate) generated: Option<String>,
}

impl SourceChange {
    /// The flags' change; `generate` makes a random 256-bit secret.
    pub(crate) fn from_args(args: &SourceArgs) -> SourceChange {
        let mut generated = None;
        let webhook_secret = args.webhook_secret.as_deref().map(|secret| match secret {
            "off" => None,
            "generate" => {
                let secret: String = rand::random::<[u8; 32]>()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                generated = Some(secret.clone());
                Some(secret)
            }
            given => Some(given.to_owned()),
        });
        let update = SourceUpdate {
            url: args
                .source
                .as_deref()
                .map(|url| (url != "off").then(|| url.to_owned())),
            branch: args.branch.clone(),
            entrypoint: args.entrypoint.clone().map(Some),
            webhook_secret,
            poll_interval_seconds: args.poll.map(|p| p.value().map(|d| d.as_secs().max(1))),
            preview_ttl_seconds: args
                .preview_ttl
                .map(|t| t.value().map(|d| d.as_secs().max(1))),
        };
        SourceChange { update, generated }
    }

    /// Whether later builds differ: the code's origin or how it starts changed.
    fn needs_build(&self) -> bool {
        self.update.url.is_some()
            || self.update.branch.is_some()
            || self.update.entrypoint.is_some()
    }

    /// Says what the change means: the secret made (once), and when it takes effect.
    pub(crate) fn explain(&self, out: &mut impl Write, server: &ServerView) -> std::io::Result<()> {
        if let Some(secret) = &self.generated {
            writeln!(out, "webhook secret: {secret}")?;
            writeln!(
                out,
                "  (shown this once; enter it as the secret of a webhook to {} with content type application/json, events: push and pull requests)",
                hook_url(server)
            )?;
        }
        if self.needs_build() {
            writeln!(
                out,
                "the source change takes effect on the next build: push, or run `skyport deploy {} --name {}`",
                server.source.url.as_deref().unwrap_or("SOURCE"),
                server.name
            )?;
        }
        Ok(())
    }
}

/// Where GitHub sends `server`'s deliveries.
fn hook_url(server: &ServerView) -> String {
    let base = server
        .url
        .strip_suffix(&format!("/servers/{}/mcp", server.name))
        .unwrap_or(&server.url);
    format!("{base}/hooks/github/{}", server.name)
}

/// The source lines of `servers show` and `servers set`.
pub(crate) fn print(out: &mut impl Write, server: &ServerView) -> std::io::Result<()> {
    let source = &server.source;
    if let Some(preview) = &server.preview {
        writeln!(
            out,
            "preview of:   {} (branch {}{})",
            preview.parent,
            preview.branch,
            preview
                .expires_at
                .map(|at| format!(", expires {}", at.strftime("%Y-%m-%d %H:%M UTC")))
                .unwrap_or_default()
        )?;
        return Ok(());
    }
    let Some(url) = &source.url else {
        return Ok(());
    };
    writeln!(out, "tracks:       {url} branch {}", source.branch)?;
    let seconds = |s: Option<u64>| s.map_or("off".to_owned(), |s| format!("{s}s"));
    writeln!(
        out,
        "redeploys:    webhook {}, poll {}, preview ttl {}",
        if source.webhook {
            hook_url(server)
        } else {
            "off".to_owned()
        },
        seconds(source.poll_interval_seconds),
        seconds(source.preview_ttl_seconds)
    )?;
    Ok(())
}

/// `servers ls`'s mark of a preview.
pub(crate) fn mark(server: &ServerView) -> String {
    server
        .preview
        .as_ref()
        .map(|p| format!("  (preview of {}, branch {})", p.parent, p.branch))
        .unwrap_or_default()
}
