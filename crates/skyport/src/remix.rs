//! `skyport remix create|edit|show`: remix servers, composed from tools, prompts and
//! resources of other servers. The flags are parsed here into the API's source list.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use skyport_api::{CreateRemix, EditRemix, RemixView};
use skyport_store::{Selection, ServerName, SourceSpec};

use crate::cli::{Connection, RemixArgs, RemixCommand, RemixSources};
use crate::config;

pub(crate) async fn remix(connection: &Connection, args: RemixArgs) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let mut out = std::io::stdout().lock();
    let (done, remix) = match args.command {
        RemixCommand::Create {
            name,
            sources,
            description,
        } => {
            let create = CreateRemix {
                name: name.parse()?,
                description: description.unwrap_or_default(),
                sources: specs(&sources)?,
            };
            ("created", client.create_remix(&create).await?)
        }
        RemixCommand::Edit {
            name,
            sources,
            description,
        } => {
            let edit = EditRemix {
                description,
                sources: if sources.source.is_empty() {
                    if sources.is_set() {
                        bail!(
                            "--rename, --describe, --prompts and --resources go with the --source flags they belong to: give the whole source list again"
                        );
                    }
                    None
                } else {
                    Some(specs(&sources)?)
                },
            };
            ("changed", client.edit_remix(&name, &edit).await?)
        }
        RemixCommand::Show { name } => ("", client.remix(&name).await?),
    };
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&remix)?)?;
    } else {
        if !done.is_empty() {
            writeln!(out, "Remix '{}' {done}.", remix.name)?;
        }
        print(&mut out, &remix)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The sources the flags describe, in `--source` order.
fn specs(flags: &RemixSources) -> anyhow::Result<Vec<SourceSpec>> {
    let mut specs = Vec::new();
    for source in &flags.source {
        let (server, tools) = split_list(source)?;
        specs.push(SourceSpec {
            server,
            tools,
            prompts: Selection::All,
            resources: Selection::All,
            renames: Default::default(),
            descriptions: Default::default(),
        });
    }
    let find = |specs: &mut Vec<SourceSpec>, server: &ServerName| -> anyhow::Result<usize> {
        specs
            .iter()
            .position(|s| s.server == *server)
            .with_context(|| {
                format!("'{server}' is not among the --source flags; add --source {server}")
            })
    };
    for prompts in &flags.prompts {
        let (server, selection) = split_list(prompts)?;
        let at = find(&mut specs, &server)?;
        specs[at].prompts = selection;
    }
    for resources in &flags.resources {
        let (server, selection) = split_list(resources)?;
        let at = find(&mut specs, &server)?;
        specs[at].resources = selection;
    }
    for rename in &flags.rename {
        let (server, name, new) = split_assignment(rename, "--rename SRC.old=new")?;
        let at = find(&mut specs, &server)?;
        specs[at].renames.insert(name, new);
    }
    for describe in &flags.describe {
        let (server, name, text) = split_assignment(describe, "--describe SRC.tool='text'")?;
        let at = find(&mut specs, &server)?;
        specs[at].descriptions.insert(name, text);
    }
    Ok(specs)
}

/// `SRC` (everything) or `SRC:a,b` (only those; `SRC:` takes none).
fn split_list(flag: &str) -> anyhow::Result<(ServerName, Selection)> {
    match flag.split_once(':') {
        None => Ok((flag.parse()?, Selection::All)),
        Some((server, list)) => {
            let names: BTreeSet<String> = list
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect();
            Ok((server.parse()?, Selection::Only(names)))
        }
    }
}

/// `SRC.name=value`.
fn split_assignment(flag: &str, form: &str) -> anyhow::Result<(ServerName, String, String)> {
    let parts = flag
        .split_once('.')
        .and_then(|(server, rest)| Some((server, rest.split_once('=')?)));
    let Some((server, (name, value))) = parts else {
        bail!("'{flag}' is not of the form {form}");
    };
    if name.is_empty() {
        bail!("'{flag}' names no tool: write {form}");
    }
    Ok((server.parse()?, name.to_owned(), value.to_owned()))
}

fn print(out: &mut impl Write, remix: &RemixView) -> anyhow::Result<()> {
    writeln!(out, "{}  {}", remix.name, remix.url)?;
    if !remix.description.is_empty() {
        writeln!(out, "  {}", remix.description)?;
    }
    if remix.sources.is_empty() {
        writeln!(
            out,
            "  no sources (each was removed): `skyport remix edit {} --source …`",
            remix.name
        )?;
    }
    for source in &remix.sources {
        writeln!(out, "  source {}", source.server)?;
        for (kind, selection) in [
            ("tools", &source.tools),
            ("prompts", &source.prompts),
            ("resources", &source.resources),
        ] {
            let taken = match selection {
                Selection::All => "all".to_owned(),
                Selection::Only(names) if names.is_empty() => "none".to_owned(),
                Selection::Only(names) => names.iter().cloned().collect::<Vec<_>>().join(", "),
            };
            writeln!(out, "    {kind:<10} {taken}")?;
        }
        for (from, to) in &source.renames {
            writeln!(out, "    rename     {from} -> {to}")?;
        }
        for (name, text) in &source.descriptions {
            writeln!(out, "    describe   {name}: {text}")?;
        }
    }
    Ok(())
}
