//! `skyport`: the command line. Parses arguments and dispatches; the work happens in the
//! library crates (`serve` wires them together, the other commands use the API client).

mod access;
mod agents;
mod artifacts;
mod audit;
mod chat;
mod cli;
mod config;
mod connect;
mod deploy;
mod env;
mod inspect;
mod keys;
mod mcp;
mod oauth;
mod policy;
mod progress;
mod registry;
mod remix;
mod rollback;
mod runtime;
mod serve;
mod sources;
mod warmup;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads())
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

/// Skyport's share of the cores: half of them (at least one), since the Python servers it runs
/// need the rest; `TOKIO_WORKER_THREADS` overrides it. More workers than the proxy needs cost
/// more than they give: every request then wakes an idle worker to look for work, a futex wake
/// and a thread switch each time (about five per request measured on 2 cores, none with one
/// worker), which is most of what the gateway adds to a call's latency on a small machine.
fn worker_threads() -> usize {
    let configured = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0);
    configured
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)))
}

/// `skyport bridge`: the instance process of a stdio server, on the socket the runtime passed.
async fn bridge(args: cli::BridgeArgs) -> anyhow::Result<ExitCode> {
    let listener = skyport_runtime::inherited_listener().map_err(|e| {
        anyhow::anyhow!("skyport bridge runs as an instance and needs the listening socket the runtime passes on descriptor 3: {e}")
    })?;
    let mut command = args.command.into_iter();
    let program = command.next().unwrap_or_default();
    let config = skyport_bridge::BridgeConfig {
        command: skyport_bridge::Command {
            program: program.into(),
            args: command.collect(),
        },
        max_sessions: args.max_sessions.max(1),
        shared: args.shared,
    };
    skyport_bridge::serve(listener, config).await?;
    Ok(ExitCode::SUCCESS)
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
        Command::Oauth(args) => oauth::oauth(&cli.connection, args).await,
        Command::Audit(args) => audit::audit(&cli.connection, args).await,
        Command::Env(args) => env::env(&cli.connection, args).await,
        Command::Users(args) => access::users(&cli.connection, args).await,
        Command::Login(args) => access::login(&cli.connection, args).await,
        Command::Groups(args) => access::groups(&cli.connection, args).await,
        Command::Access(args) => access::access(&cli.connection, args).await,
        Command::Policy(args) => policy::policy(&cli.connection, args).await,
        Command::Remix(args) => remix::remix(&cli.connection, args).await,
        Command::Mcp(args) => mcp::mcp(&cli.connection, args).await,
        Command::Chat(args) => chat::chat(&cli.connection, args).await,
        Command::Connect(args) => connect::connect(&cli.connection, args).await,
        Command::Registry(args) => registry::registry(&cli.connection, args).await,
        Command::Providers(args) => agents::providers(&cli.connection, args).await,
        Command::Agents(args) => agents::agents(&cli.connection, args).await,
        Command::Bridge(args) => {
            serve::init_tracing();
            bridge(args).await
        }
    }
}
