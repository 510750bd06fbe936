//! `skyport users`, `skyport login`, `skyport groups` and `skyport access`: accounts, the
//! password login that saves a key for this user, and per-server roles.
//!
//! Passwords are read from standard input (`--password-stdin`), `SKYPORT_PASSWORD` or a
//! prompt without echo, and never printed except a generated one, once.

use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use skyport_api::{AccessView, CreateUser, GroupView};

use crate::cli::{
    AccessArgs, AccessCommand, Connection, GroupsArgs, GroupsCommand, LoginArgs, UsersArgs,
    UsersCommand,
};
use crate::config;

pub(crate) async fn users(connection: &Connection, args: UsersArgs) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let mut out = std::io::stdout().lock();
    match args.command.unwrap_or(UsersCommand::Ls) {
        UsersCommand::Ls => {
            let users = client.users().await?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&users)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "{:<24} {:<8} {:<6} {:<28} GROUPS",
                "NAME", "KIND", "ADMIN", "EMAIL"
            )?;
            for user in &users {
                writeln!(
                    out,
                    "{:<24} {:<8} {:<6} {:<28} {}",
                    user.name,
                    user.kind,
                    if user.admin { "yes" } else { "-" },
                    user.email.as_deref().unwrap_or("-"),
                    user.groups.join(",")
                )?;
            }
        }
        UsersCommand::Add {
            name,
            email,
            admin,
            service,
            password_stdin,
        } => {
            let password = password_stdin.then(read_stdin_line).transpose()?;
            let request = CreateUser {
                name,
                email,
                admin,
                service,
                password,
            };
            let created = client.create_user(&request).await?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&created)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            let user = &created.user;
            match &created.password {
                Some(password) => {
                    // The password alone goes to stdout, so `PW=$(skyport users add …)` works.
                    writeln!(out, "{password}")?;
                    eprintln!(
                        "added user '{}'; the password above will not be shown again. They log in with `skyport login --user {}`",
                        user.name, user.name
                    );
                }
                None if user.kind == "service" => writeln!(
                    out,
                    "added service account '{}'; give it a key with `skyport keys create --for {}`",
                    user.name, user.name
                )?,
                None => writeln!(out, "added user '{}'", user.name)?,
            }
        }
        UsersCommand::Rm { name } => {
            client.remove_user(&name).await?;
            writeln!(out, "removed '{name}' with its keys and grants")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn login(connection: &Connection, args: LoginArgs) -> anyhow::Result<ExitCode> {
    let url = config::url(connection);
    let user = match args.user {
        Some(user) => user,
        None => {
            eprint!("user: ");
            std::io::stderr().flush()?;
            read_stdin_line()?
        }
    };
    let password = if args.password_stdin {
        read_stdin_line()?
    } else if let Ok(password) = std::env::var("SKYPORT_PASSWORD") {
        password
    } else {
        rpassword::prompt_password(format!("password for {user} at {url}: "))
            .context("cannot read the password; pass --password-stdin or set SKYPORT_PASSWORD")?
    };
    // A login needs no credential: the password is the credential.
    let created = skyport_client::Client::new(&url, None)
        .login(&user, &password)
        .await?;
    let path = config::save_login(config::SavedLogin {
        url: url.clone(),
        user: created.key.principal.clone(),
        token: created.secret,
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "logged in to {url} as {}; the CLI uses the key saved in {} (SKYPORT_TOKEN overrides it)",
        created.key.principal,
        path.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn groups(connection: &Connection, args: GroupsArgs) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let mut out = std::io::stdout().lock();
    let changed = match args.command.unwrap_or(GroupsCommand::Ls) {
        GroupsCommand::Ls => {
            let groups = client.groups().await?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string_pretty(&groups)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(out, "{:<24} MEMBERS", "GROUP")?;
            for group in &groups {
                writeln!(out, "{:<24} {}", group.name, group.members.join(","))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        GroupsCommand::Create { group } => client.create_group(&group).await?,
        GroupsCommand::Rm { group } => {
            client.remove_group(&group).await?;
            writeln!(out, "removed group '{group}' and its grants")?;
            return Ok(ExitCode::SUCCESS);
        }
        GroupsCommand::Add { group, user } => client.set_member(&group, &user, true).await?,
        GroupsCommand::Remove { group, user } => client.set_member(&group, &user, false).await?,
    };
    print_group(&mut out, &changed, args.json)
}

fn print_group(out: &mut impl Write, group: &GroupView, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(group)?)?;
    } else if group.members.is_empty() {
        writeln!(out, "group '{}' has no members", group.name)?;
    } else {
        writeln!(out, "group '{}': {}", group.name, group.members.join(", "))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn access(connection: &Connection, args: AccessArgs) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let view = match &args.command {
        AccessCommand::Ls { name } => client.access(name).await?,
        AccessCommand::Grant { name, who, role } => client.grant(name, who, role).await?,
        AccessCommand::Revoke { name, who } => client.revoke(name, who).await?,
        AccessCommand::Default { name, role } => client.set_default_role(name, role).await?,
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&view)?)?;
    } else {
        print_access(&mut out, &view)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_access(out: &mut impl Write, view: &AccessView) -> anyhow::Result<()> {
    writeln!(
        out,
        "server '{}': organisation members without a grant: {}",
        view.server, view.default_role
    )?;
    if view.grants.is_empty() {
        writeln!(out, "no grants (org admins administer every server)")?;
        return Ok(());
    }
    writeln!(out, "{:<32} ROLE", "WHO")?;
    for grant in &view.grants {
        writeln!(out, "{:<32} {}", grant.who, grant.role)?;
    }
    Ok(())
}

/// One line of standard input without its line ending; refuses an empty one.
pub(crate) fn read_stdin_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read standard input")?;
    let line = line.trim_end_matches(['\n', '\r']).to_owned();
    if line.is_empty() {
        bail!("standard input is empty; write the value on its first line");
    }
    Ok(line)
}
