//! The command-line contract (names are fixed by DESIGN.md: scripts depend on them).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Skyport: deploy, run and serve MCP servers on your own machine.
#[derive(Debug, Parser)]
#[command(name = "skyport", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) connection: Connection,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How the CLI reaches a running Skyport.
#[derive(Debug, Args)]
pub(crate) struct Connection {
    /// Skyport's address [default: the one in DATA_DIR/credentials, else http://127.0.0.1:8420]
    #[arg(long, env = "SKYPORT_URL", global = true)]
    pub(crate) url: Option<String>,
    /// API key [default: the one in DATA_DIR/credentials]
    #[arg(long, env = "SKYPORT_TOKEN", global = true, hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Skyport's data directory [default: ~/.local/share/skyport]
    #[arg(long, env = "SKYPORT_DATA_DIR", global = true)]
    pub(crate) data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the platform (API, gateway, runtime) in the foreground.
    Serve(ServeArgs),
    /// Run the platform and deploy SOURCE (default: examples/hello); prints the MCP URL.
    Up(UpArgs),
    /// Build SOURCE, make it the server's live deployment, and print its MCP URL.
    Deploy(DeployArgs),
    /// List, show or remove servers.
    Servers(ServersArgs),
    /// List a server's deployments, newest first.
    Deployments(DeploymentsArgs),
    /// Show a server's logs (instances and builds).
    Logs(LogsArgs),
}

#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8420")]
    pub(crate) listen: SocketAddr,
    /// Where the database, artifacts and environments live [default: ~/.local/share/skyport]
    #[arg(long, env = "SKYPORT_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Database URL; only SQLite in the data dir is supported in this version.
    #[arg(long, env = "SKYPORT_DATABASE_URL")]
    pub(crate) database_url: Option<String>,
    /// How long in-flight requests get to finish on shutdown, in seconds.
    #[arg(long, default_value_t = 10)]
    pub(crate) shutdown_grace: u64,
}

#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// Folder to deploy [default: examples/hello, or the built-in copy of it]
    pub(crate) source: Option<PathBuf>,
    /// Server name [default: the folder's name]
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// FILE.py[:OBJECT], as `fastmcp run` takes it.
    #[arg(long)]
    pub(crate) entrypoint: Option<String>,
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    /// Folder holding the server.
    pub(crate) source: PathBuf,
    /// Server name: a lowercase DNS label (a-z, 0-9, '-'); its URL is /servers/NAME/mcp.
    #[arg(long)]
    pub(crate) name: String,
    /// FILE.py[:OBJECT], as `fastmcp run` takes it [default: main.py, server.py or app.py]
    #[arg(long)]
    pub(crate) entrypoint: Option<String>,
    /// What the server is for.
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// Return once the build is queued instead of waiting for it.
    #[arg(long)]
    pub(crate) no_wait: bool,
    /// Print the build log while waiting.
    #[arg(long, short)]
    pub(crate) verbose: bool,
    /// Print the deployment as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ServersArgs {
    #[command(subcommand)]
    pub(crate) command: Option<ServersCommand>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ServersCommand {
    /// List servers (the default).
    Ls,
    /// Show one server.
    Show {
        /// The server.
        name: String,
    },
    /// Remove a server, its deployments and instances.
    Rm {
        /// The server.
        name: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct DeploymentsArgs {
    /// The server.
    pub(crate) name: String,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The server.
    pub(crate) name: String,
    /// Build logs only; with a deployment id, that build's log.
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    pub(crate) build: Option<String>,
    /// Keep printing new lines.
    #[arg(long, short)]
    pub(crate) follow: bool,
    /// How many past lines to show.
    #[arg(long, short = 'n', default_value_t = 200)]
    pub(crate) lines: u32,
    /// Print JSON lines.
    #[arg(long)]
    pub(crate) json: bool,
}
