//! `skyport oauth clients`: OAuth clients for service accounts (create, printing the secret
//! once; list; remove).

use std::io::Write;
use std::process::ExitCode;

use skyport_api::CreateOAuthClient;

use crate::cli::{Connection, OauthArgs, OauthClientsCommand, OauthCommand};
use crate::config;

pub(crate) async fn oauth(connection: &Connection, args: OauthArgs) -> anyhow::Result<ExitCode> {
    let client = config::client(connection);
    let mut out = std::io::stdout().lock();
    let OauthCommand::Clients { command, json } = args.command;
    match command.unwrap_or(OauthClientsCommand::Ls) {
        OauthClientsCommand::Ls => {
            let clients = client.oauth_clients().await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&clients)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "{:<32} {:<20} {:<20} CREATED",
                "CLIENT ID", "NAME", "ACCOUNT"
            )?;
            for c in &clients {
                writeln!(
                    out,
                    "{:<32} {:<20} {:<20} {}",
                    c.client_id, c.name, c.account, c.created_at
                )?;
            }
        }
        OauthClientsCommand::Create { account, name } => {
            let created = client
                .create_oauth_client(&CreateOAuthClient { account, name })
                .await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&created)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(out, "client_id:     {}", created.client.client_id)?;
            writeln!(out, "client_secret: {}", created.client_secret)?;
            writeln!(out, "token URL:     {}", created.token_endpoint)?;
            eprintln!(
                "The secret is shown once. Ask for a token with grant_type=client_credentials and resource=the server's MCP URL."
            );
        }
        OauthClientsCommand::Rm { id } => {
            client.remove_oauth_client(&id).await?;
            writeln!(out, "Removed OAuth client {id}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
