//! `skyport`: the command line. Parses arguments and dispatches; the work happens in the
//! library crates (`serve` wires them together, the other commands use the API client).

mod audit;
mod cli;
mod config;
mod deploy;
mod env;
mod inspect;
mod keys;
mod policy;
mod progress;
mod rollback;
mod serve;
mod sources;
mod warmup;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            serve::init_tracing();
            serve::serve(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Up(args) => {
            serve::init_tracing();
            serve::up(args).await
        }
        Command::Deploy(args) => deploy::deploy(&cli.connection, args).await,
        Command::Servers(args) => inspect::servers(&cli.connection, args).await,
        Command::Deployments(args) => inspect::deployments(&cli.connection, args).await,
        Command::Rollback(args) => rollback::rollback(&cli.connection, args).await,
        Command::Logs(args) => inspect::logs(&cli.connection, args).await,
        Command::Builds(args) => inspect::builds(&cli.connection, args).await,
        Command::Keys(args) => keys::keys(&cli.connection, args).await,
        Command::Audit(args) => audit::audit(&cli.connection, args).await,
        Command::Env(args) => env::env(&cli.connection, args).await,
        Command::Policy(args) => policy::policy(&cli.connection, args).await,
    }
}
