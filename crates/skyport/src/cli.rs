//! The command-line contract (names are fixed by DESIGN.md: scripts depend on them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use skyport_gateway::RateLimit;
use skyport_store::{Capability, EnvScope, PolicyEffect, PolicySelector, ProviderKind};

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
    /// Build SOURCE (a folder or a git repository), make it the server's live deployment, and
    /// print its MCP URL.
    Deploy(DeployArgs),
    /// List, show or remove servers.
    Servers(ServersArgs),
    /// List a server's deployments (newest first) and the moves of its live deployment.
    Deployments(DeploymentsArgs),
    /// Make an earlier deployment live again, without a build (default: the one before the
    /// live one).
    Rollback(RollbackArgs),
    /// Show a server's logs (instances and builds).
    Logs(LogsArgs),
    /// List or cancel the builds that are queued or running.
    Builds(BuildsArgs),
    /// Create, list or revoke API keys (for MCP clients and the CLI).
    Keys(KeysArgs),
    /// OAuth clients for service accounts (client credentials), organisation admins.
    Oauth(OauthArgs),
    /// Show the MCP requests made through the gateway and the changes made through the API,
    /// newest first.
    Audit(AuditArgs),
    /// Set, remove or list a server's environment variables and secrets.
    Env(EnvArgs),
    /// Add, list or remove users and service accounts (organisation admins).
    Users(UsersArgs),
    /// Log in with a user's password: saves a new key as this user's credential for the URL.
    Login(LoginArgs),
    /// Create, list or remove groups and their members (organisation admins).
    Groups(GroupsArgs),
    /// Grant, revoke or list roles on a server, and set its default role.
    Access(AccessArgs),
    /// Add, remove or list a server's tool-level policy rules (who may see and use which
    /// tools, prompts and resources).
    #[command(long_about = POLICY_ABOUT)]
    Policy(PolicyArgs),
    /// Create, change or show remix servers: one MCP endpoint composed of tools, prompts
    /// and resources of up to 10 other servers.
    Remix(RemixArgs),
    /// Talk MCP to a server (by name, through the gateway) or to any MCP URL: list its
    /// capabilities, call a tool, or print everything it offers.
    Mcp(McpArgs),
    /// Chat with an agent (or, with --server, with a server's tools and the default model):
    /// one message, or a conversation read line by line from stdin.
    Chat(ChatArgs),
    /// Print (or write into the client's file) an MCP client's configuration for a server.
    Connect(ConnectArgs),
    /// The catalog: add external (remote) MCP servers and check them.
    Registry(RegistryArgs),
    /// Add, list, change or remove the language-model providers agents use (organisation
    /// admins).
    Providers(ProvidersArgs),
    /// Create, change, list, show or remove agents: chat interfaces over servers' tools.
    Agents(AgentsArgs),
    /// Serve a stdio MCP server as streamable HTTP on the instance's listening socket (run by
    /// the runtime as a packaged server's instance, not by people).
    #[command(hide = true)]
    Bridge(BridgeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BridgeArgs {
    /// Sessions served at once, each by its own process of the server.
    #[arg(long, default_value_t = 16)]
    pub(crate) max_sessions: usize,
    /// One process serves every session (a server that keeps no state per client).
    #[arg(long)]
    pub(crate) shared: bool,
    /// The stdio server's program and arguments.
    #[arg(last = true, required = true, num_args = 1..)]
    pub(crate) command: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ChatArgs {
    /// The agent (left out with --server).
    pub(crate) agent: Option<String>,
    /// The message; without one, each line of stdin is a message, until its end.
    pub(crate) message: Option<String>,
    /// Chat with this server's tools and the default provider's model instead of an agent.
    #[arg(long, value_name = "NAME")]
    pub(crate) server: Option<String>,
    /// Continue this conversation.
    #[arg(long, value_name = "ID")]
    pub(crate) conversation: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct McpArgs {
    #[command(subcommand)]
    pub(crate) command: McpCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum McpCommand {
    /// List the tools, resources, resource templates and prompts.
    List {
        /// A server name, or an MCP URL (http:// or https://).
        target: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Call a tool with arguments NAME=VALUE (VALUE is read as JSON when it parses, else as a
    /// string); exits non-zero when the tool reports an error.
    Call {
        /// A server name, or an MCP URL (http:// or https://).
        target: String,
        /// The tool.
        tool: String,
        /// Arguments as NAME=VALUE.
        args: Vec<String>,
        /// All arguments as one JSON object (merged under the NAME=VALUE ones).
        #[arg(long)]
        json_args: Option<String>,
        /// Print the whole result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the server's `initialize` answer and every list, as JSON.
    Inspect {
        /// A server name, or an MCP URL (http:// or https://).
        target: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// The server.
    pub(crate) name: String,
    /// The client: claude-desktop, claude-code, cursor or vscode.
    #[arg(long)]
    pub(crate) client: String,
    /// Merge the server into the client's configuration file (a backup of the file is kept
    /// beside it as FILE.bak) instead of printing it.
    #[arg(long)]
    pub(crate) write: bool,
    /// The configuration file to write [default: the client's usual one]
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// A key the client sends as a bearer credential (servers with auth on need one; create
    /// it with `skyport keys create`).
    #[arg(long)]
    pub(crate) key: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RegistryArgs {
    #[command(subcommand)]
    pub(crate) command: RegistryCommand,
    /// Print JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// What an external server is sent to authenticate Skyport.
#[derive(Debug, Args)]
pub(crate) struct RemoteCredentials {
    /// A header sent with every request, `NAME: VALUE` (stored encrypted, never shown);
    /// repeat it for several.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub(crate) headers: Vec<String>,
    /// Send `Authorization: Bearer` with the token in this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "bearer_stdin")]
    pub(crate) bearer_env: Option<String>,
    /// Send `Authorization: Bearer` with the token read from standard input.
    #[arg(long)]
    pub(crate) bearer_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RegistryCommand {
    /// Add a remote MCP server (streamable HTTP) to the catalog, served through the gateway at
    /// /servers/NAME/mcp with Skyport's keys, roles, policies and audit.
    AddExternal {
        /// Its name in the catalog: a lowercase DNS label.
        name: String,
        /// The remote's MCP endpoint, e.g. https://mcp.example.com/mcp
        #[arg(value_name = "URL")]
        remote: String,
        #[command(flatten)]
        credentials: RemoteCredentials,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Add the remote server a `server.json` document (MCP registry format) describes as an
    /// external server: its first streamable-http remote, its description and its headers
    /// with fixed values.
    Import {
        /// The server.json file.
        file: std::path::PathBuf,
        /// Its name in the catalog [default: the part of the document's name after '/']
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        credentials: RemoteCredentials,
    },
    /// Search the catalog: servers and tools whose names or descriptions have every word.
    Search {
        /// The words, e.g. "forecast".
        words: String,
    },
    /// Check an external server now (initialize + tools/list) and show the verdict.
    Check {
        /// The external server.
        name: String,
    },
}

/// `skyport policy --help`: the rule language and its semantics.
const POLICY_ABOUT: &str = "\
Add, remove or list a server's tool-level policy rules.

A rule is EFFECT SELECTOR CAPABILITY:
  EFFECT      allow or deny
  SELECTOR    principal:NAME (a user or service account), group:NAME,
              role:admin|editor|viewer (the caller's role on the server),
              or * (everyone, anonymous callers included)
  CAPABILITY  tool:GLOB, prompt:GLOB, resource:GLOB (matched against the URI)
              or template:GLOB (matched against the uriTemplate);
              in a GLOB, * matches any run of characters and ? one character

For one caller and one kind of capability, the rules whose selector matches the caller
decide: if any of them denies the name, it is denied (deny wins); else, if any of them
allows names of that kind, only names an allow rule matches are permitted (an allow-list);
else the name is permitted. Denied tools, prompts and resources disappear from lists, and
calling one gets the answer the server gives for an unknown name; the audit log records it
as denied.

Example: skyport policy add notes deny role:viewer 'tool:delete_*'";

#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8420")]
    pub(crate) listen: SocketAddr,
    /// Where the database, artifacts and environments live [default: ~/.local/share/skyport]
    #[arg(long, env = "SKYPORT_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Database URL: postgres://USER@HOST/DB (several replicas may share it) or sqlite://PATH
    /// [default: skyport.db in the data dir]
    #[arg(long, env = "SKYPORT_DATABASE_URL")]
    pub(crate) database_url: Option<String>,
    /// How long in-flight requests get to finish on shutdown, in seconds.
    #[arg(long, default_value_t = 10)]
    pub(crate) shutdown_grace: u64,
    /// Builds that run at once; later ones wait in a queue.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) build_concurrency: u16,
    /// The longest a build may take (e.g. 90s, 15m, 1h).
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub(crate) build_timeout: Duration,
    /// Ready deployments kept per server (besides the live one) with their artifacts; older
    /// artifacts are deleted and cannot be rolled back to.
    #[arg(long, default_value_t = 10)]
    pub(crate) keep_deployments: u32,
    /// How long a server instance may take from start to its first answer before the request
    /// that started it fails, e.g. 60s.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) start_timeout: Duration,
    /// Start every instance as a fresh process instead of forking it from a pre-imported
    /// interpreter of its environment (slower cold starts; for comparison or troubleshooting).
    #[arg(long)]
    pub(crate) no_zygotes: bool,
    /// How long an unused client session is kept (and resumed on a new instance when its own
    /// is gone) before it expires and its client must initialize again.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub(crate) session_ttl: Duration,
    /// Serve server NAME at NAME.BASE_DOMAIN/mcp too (point a wildcard DNS record at Skyport).
    #[arg(long, value_name = "BASE_DOMAIN")]
    pub(crate) base_domain: Option<String>,
    /// A web origin whose pages may call the gateway (CORS), besides loopback ones; repeat it
    /// for several, or `*` for any.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub(crate) cors_origins: Vec<String>,
    /// The address clients reach Skyport at (e.g. https://mcp.example.com), when it is not
    /// the listen address (a proxy in front); servers then require API keys by default.
    #[arg(long, env = "SKYPORT_PUBLIC_URL")]
    pub(crate) public_url: Option<String>,
    /// How long an MCP request may take before the gateway answers with an error, for
    /// servers that set no --request-timeout of their own.
    #[arg(long, default_value = "170s", value_parser = parse_duration)]
    pub(crate) request_timeout: Duration,
    /// Requests each API key may make through the gateway, e.g. 100/s or 600/m [default: no
    /// limit]. Requests without a key are not limited. Replicas on one PostgreSQL database
    /// share each key's limit.
    #[arg(long, value_parser = clap::value_parser!(RateLimit))]
    pub(crate) rate_limit: Option<RateLimit>,
    /// Requests a key may make at once after a quiet spell [default: twice the rate's count]
    #[arg(long, requires = "rate_limit", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) rate_limit_burst: Option<u32>,
    /// How long MCP requests and control-plane changes stay in the audit logs (at most a
    /// million of each are kept), e.g. 90d.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub(crate) audit_retention: Duration,
    /// How long OAuth access tokens live, e.g. 1h or 15m.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub(crate) oauth_token_lifetime: Duration,
    /// Fetch OAuth client metadata documents from private and loopback addresses, and over
    /// plain http (for closed networks and tests; the default refuses them, against request
    /// forgery).
    #[arg(long, env = "SKYPORT_OAUTH_ALLOW_PRIVATE_CIMD")]
    pub(crate) oauth_allow_private_cimd: bool,
    /// Let external servers (`skyport registry add-external`) be on private, loopback and
    /// link-local addresses (for closed networks and tests; the default refuses them, so that
    /// the gateway cannot be pointed at the network behind it).
    #[arg(long, env = "SKYPORT_ALLOW_PRIVATE_EXTERNALS")]
    pub(crate) allow_private_externals: bool,
    /// How long metric samples (the UI's charts) are kept, e.g. 7d.
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    pub(crate) metrics_retention: Duration,
    /// The period of one metric sample. Hidden: a minute suits charts; tests shorten it.
    #[arg(long, env = "SKYPORT_METRICS_INTERVAL", default_value = "60s", value_parser = parse_duration, hide = true)]
    pub(crate) metrics_interval: Duration,
    /// Where server instances run: child processes of Skyport (`local`), or a Deployment
    /// and Service per deployment in a Kubernetes namespace (`kubernetes`, docs/kubernetes.md).
    #[arg(long, value_enum, default_value_t = RuntimeKind::Local, env = "SKYPORT_RUNTIME")]
    pub(crate) runtime: RuntimeKind,
    /// The namespace of servers' objects [default: the kubeconfig's, or the pod's own]
    #[arg(long, env = "SKYPORT_KUBE_NAMESPACE", value_name = "NS")]
    pub(crate) kube_namespace: Option<String>,
    /// The registry repository server images are pushed to and pulled from, e.g.
    /// registry.example.com/skyport (images are PREFIX/SERVER:DEPLOYMENT_ID).
    #[arg(long, env = "SKYPORT_KUBE_IMAGE_PREFIX", value_name = "REGISTRY/PATH")]
    pub(crate) kube_image_prefix: Option<String>,
    /// Run deployments as Knative Services (Knative scales them, to zero too) instead of
    /// Deployments that Skyport scales.
    #[arg(long, env = "SKYPORT_KUBE_KNATIVE")]
    pub(crate) kube_knative: bool,
}

/// Where server instances run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RuntimeKind {
    /// Child processes of Skyport on this machine.
    Local,
    /// Pods in a Kubernetes cluster.
    Kubernetes,
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
    /// The server's code: a folder (packed and uploaded), a git repository — a URL with
    /// `://`, `user@host:path`, or the path of a bare repository —, a published stdio server
    /// (`pypi:NAME[==VERSION]`, `npm:NAME[@VERSION]`), or a server.json with --package.
    pub(crate) source: String,
    /// Server name: a lowercase DNS label (a-z, 0-9, '-'); its URL is /servers/NAME/mcp.
    #[arg(long)]
    pub(crate) name: String,
    /// FILE.py[:OBJECT], MODULE:OBJECT or fastmcp.json, as `fastmcp run` takes it [default:
    /// fastmcp.json, main.py, server.py or app.py]; for a package, the command of it to run
    /// [default: the one named like the package, or its only one]
    #[arg(long)]
    pub(crate) entrypoint: Option<String>,
    /// With a server.json as SOURCE: which of its `packages` to deploy (0 is the first).
    #[arg(long, value_name = "INDEX")]
    pub(crate) package: Option<usize>,
    /// For a package that serves streamable HTTP itself (at /mcp): the environment variable it
    /// reads its port from; `{port}` in an argument after `--` is replaced by the port too.
    #[arg(long, value_name = "VAR")]
    pub(crate) port_env: Option<String>,
    /// Arguments the packaged server is started with (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    pub(crate) args: Vec<String>,
    /// Git branch, tag or commit to build [default: --branch, else the repository's default
    /// branch]
    #[arg(long = "ref", value_name = "REF")]
    pub(crate) reference: Option<String>,
    /// The branch whose pushes redeploy the server (webhooks, --poll) and whose other
    /// branches get previews [default: main]
    #[arg(long)]
    pub(crate) branch: Option<String>,
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
    /// A production variable set on the server before the build; repeat it for several.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub(crate) env: Vec<String>,
    /// Store every --env of this command as a secret: encrypted, never shown, redacted from
    /// logs.
    #[arg(long, requires = "env")]
    pub(crate) secret: bool,
    #[command(flatten)]
    pub(crate) settings: SettingsArgs,
}

/// How a server's instances run (`deploy` and `servers set`); absent flags keep the value.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct SettingsArgs {
    /// Memory cap of each instance, e.g. 512M or 2G [default for new servers: 1024M]
    #[arg(long, value_parser = parse_size)]
    pub(crate) memory: Option<u64>,
    /// Stop an instance after this long without requests, e.g. 30s, 5m [default: 5m]
    #[arg(long, value_parser = parse_duration)]
    pub(crate) idle_timeout: Option<Duration>,
    /// Instances kept running even when idle [default: 0]
    #[arg(long)]
    pub(crate) min_instances: Option<u32>,
    /// Most instances started when the running ones are busy [default: 4]
    #[arg(long)]
    pub(crate) max_instances: Option<u32>,
    /// For a packaged stdio server: sessions each instance serves at once, each with its own
    /// process [default: 16]
    #[arg(long)]
    pub(crate) stdio_sessions: Option<u32>,
    /// For a packaged stdio server that keeps no state per client: one process serves every
    /// session of an instance [default: off]
    #[arg(long, value_enum)]
    pub(crate) stdio_shared: Option<OnOff>,
    /// Whether MCP clients need an API key; `default` follows the platform (off while Skyport
    /// listens only on loopback, on otherwise)
    #[arg(long, value_enum)]
    pub(crate) auth: Option<AuthArg>,
    /// How long an MCP request may take, e.g. 30s or 10m; `default` follows `serve
    /// --request-timeout` (170s)
    #[arg(long, value_parser = parse_request_timeout)]
    pub(crate) request_timeout: Option<Inherit<Duration>>,
    /// Whether requests from authenticated callers carry a signed identity token
    /// (`skyport-identity`, verifiable with /.well-known/jwks.json) [default: off]
    #[arg(long, value_enum)]
    pub(crate) identity_token: Option<OnOff>,
}

/// Where a server's code comes from and what redeploys it (`servers set`); absent flags keep
/// the value.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct SourceArgs {
    /// What the server is for.
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// FILE.py[:OBJECT], MODULE:OBJECT or fastmcp.json for later builds.
    #[arg(long)]
    pub(crate) entrypoint: Option<String>,
    /// The git repository later builds fetch (pushes, polling, previews).
    #[arg(long, value_name = "URL")]
    pub(crate) source: Option<String>,
    /// The branch whose pushes redeploy the server; other branches get previews.
    #[arg(long)]
    pub(crate) branch: Option<String>,
    /// The secret GitHub signs webhook deliveries with (16+ characters); `generate` makes
    /// a random one and prints it once; `off` turns the webhook off.
    #[arg(long, value_name = "SECRET|generate|off")]
    pub(crate) webhook_secret: Option<String>,
    /// Check the tracked branch for new commits this often (e.g. 60s), or `off`.
    #[arg(long, value_name = "INTERVAL|off", value_parser = parse_duration_or_off)]
    pub(crate) poll: Option<OrOff<Duration>>,
    /// Remove a preview this long after its last build (e.g. 7d), or `off` (previews then
    /// go when their branch is deleted or their pull request closed).
    #[arg(long, value_name = "TTL|off", value_parser = parse_duration_or_off)]
    pub(crate) preview_ttl: Option<OrOff<Duration>>,
}

/// A value, or `off` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrOff<T> {
    /// The value.
    Set(T),
    /// Turned off.
    Off,
}

impl<T> OrOff<T> {
    /// The value, or `None` when off.
    pub(crate) fn value(self) -> Option<T> {
        match self {
            OrOff::Set(value) => Some(value),
            OrOff::Off => None,
        }
    }
}

fn parse_duration_or_off(text: &str) -> Result<OrOff<Duration>, String> {
    if text.trim() == "off" {
        return Ok(OrOff::Off);
    }
    parse_duration(text).map(OrOff::Set)
}

/// `--auth on|off|default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AuthArg {
    /// Clients must send an API key.
    On,
    /// Anyone who can reach Skyport may call the server.
    Off,
    /// Follow the platform's default.
    Default,
}

/// A switch: `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnOff {
    /// Turned on.
    On,
    /// Turned off.
    Off,
}

/// A per-server value or the platform's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inherit<T> {
    /// The server's own value.
    Set(T),
    /// Follow the platform.
    Default,
}

fn parse_request_timeout(text: &str) -> Result<Inherit<Duration>, String> {
    if text.trim() == "default" {
        return Ok(Inherit::Default);
    }
    parse_duration(text).map(Inherit::Set)
}

/// A size like `512M`, `2G`, `1048576` (bytes); K, M and G are powers of 1024.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let upper = text.to_ascii_uppercase();
    let digits = upper
        .trim_end_matches('B')
        .trim_end_matches('I')
        .trim_end_matches(['K', 'M', 'G']);
    let unit = &upper[digits.len()..];
    let scale: u64 = match unit.trim_end_matches('B').trim_end_matches('I') {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("'{text}' is not a size: write e.g. 512M or 2G")),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size: write e.g. 512M or 2G"))?;
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("'{text}' is too large"))
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
    /// Change a server's description, source, redeploys, previews and how its instances run.
    Set {
        /// The server.
        name: String,
        #[command(flatten)]
        settings: SettingsArgs,
        #[command(flatten)]
        source: Box<SourceArgs>,
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
pub(crate) struct RollbackArgs {
    /// The server.
    pub(crate) name: String,
    /// The deployment to make live: its id or a unique prefix of it [default: the newest ready
    /// deployment older than the live one whose artifact is still kept]
    pub(crate) deployment: Option<String>,
    /// Print the deployment now live as JSON.
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
    /// Only lines from the last DURATION, e.g. 10m or 2h.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) since: Option<Duration>,
    /// Print JSON lines.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BuildsArgs {
    #[command(subcommand)]
    pub(crate) command: Option<BuildsCommand>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BuildsCommand {
    /// List running builds, then queued ones (the default).
    Ls {
        /// Only this server's builds.
        name: Option<String>,
    },
    /// Stop a queued or running build.
    Cancel {
        /// The deployment id (`skyport builds ls` lists them).
        id: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    pub(crate) command: Option<KeysCommand>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// List keys, revoked and expired ones too (the default).
    Ls,
    /// Create a key acting as you; its secret is printed once and cannot be shown again.
    Create {
        /// What it is for (unique among live keys) [default: key- and the end of its id]
        #[arg(long)]
        name: Option<String>,
        /// Stop working after this long, e.g. 30d, 12h [default: never]
        #[arg(long, value_parser = parse_duration)]
        expires: Option<Duration>,
        /// Act as this user or service account instead of you (organisation admins).
        #[arg(long = "for", value_name = "NAME")]
        principal: Option<String>,
    },
    /// Revoke a key at once, by id or name.
    Revoke {
        /// The key's id (key_…) or name.
        key: String,
    },
    /// Make a new key sign identity tokens (`skyport-identity`); the previous one stays in
    /// /.well-known/jwks.json for a day, so tokens it signed still verify.
    RotateSigning,
}

#[derive(Debug, Args)]
pub(crate) struct OauthArgs {
    #[command(subcommand)]
    pub(crate) command: OauthCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum OauthCommand {
    /// OAuth clients whose client-credentials tokens act as a service account.
    Clients {
        #[command(subcommand)]
        command: Option<OauthClientsCommand>,
        /// Print JSON.
        #[arg(long, global = true)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum OauthClientsCommand {
    /// List them (the default).
    Ls,
    /// Make one for a service account; prints the client id and its secret, once.
    Create {
        /// The service account its tokens act as.
        #[arg(long = "for", value_name = "ACCOUNT")]
        account: String,
        /// What it is for [default: the account's name]
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove one; tokens it holds stop refreshing.
    Rm {
        /// Its client id (oac_…).
        id: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct EnvArgs {
    #[command(subcommand)]
    pub(crate) command: EnvCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EnvCommand {
    /// Set variables; running deployments keep theirs until the next deployment (--redeploy).
    Set {
        /// The server.
        name: String,
        /// The variables.
        #[arg(required = true, value_name = "KEY=VALUE")]
        vars: Vec<String>,
        /// Store them as secrets: encrypted, never shown, redacted from logs.
        #[arg(long)]
        secret: bool,
        #[command(flatten)]
        change: EnvChangeArgs,
    },
    /// Remove variables from a scope.
    Unset {
        /// The server.
        name: String,
        /// The variable names.
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
        #[command(flatten)]
        change: EnvChangeArgs,
    },
    /// List variables (secrets masked).
    Ls {
        /// The server.
        name: String,
        /// Only this scope [default: every scope]
        #[arg(long, value_parser = parse_scope)]
        scope: Option<EnvScope>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What `env set` and `env unset` share.
#[derive(Debug, Args)]
pub(crate) struct EnvChangeArgs {
    /// production, preview (every preview deployment) or branch:NAME (previews of one branch)
    #[arg(long, default_value = "production", value_parser = parse_scope)]
    pub(crate) scope: EnvScope,
    /// Build a new deployment from the live one's source now, so that the change takes effect.
    #[arg(long)]
    pub(crate) redeploy: bool,
    /// Print the build log while redeploying.
    #[arg(long, short)]
    pub(crate) verbose: bool,
    /// Print the answer as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_scope(text: &str) -> Result<EnvScope, String> {
    text.parse()
        .map_err(|e: skyport_store::EnvError| e.to_string())
}

#[derive(Debug, Args)]
pub(crate) struct PolicyArgs {
    #[command(subcommand)]
    pub(crate) command: PolicyCommand,
    /// Print JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Add a rule: EFFECT SELECTOR CAPABILITY, e.g. `deny role:viewer 'tool:delete_*'`.
    Add {
        /// The server.
        name: String,
        /// allow or deny.
        #[arg(value_parser = parse_rule_part::<PolicyEffect>)]
        effect: String,
        /// principal:NAME, group:NAME, role:admin|editor|viewer, or * for everyone.
        #[arg(value_parser = parse_rule_part::<PolicySelector>)]
        selector: String,
        /// tool:GLOB, prompt:GLOB, resource:GLOB or template:GLOB (* any run, ? one character).
        #[arg(value_parser = parse_rule_part::<Capability>)]
        capability: String,
    },
    /// Remove a rule by id (`skyport policy ls N` lists them).
    Rm {
        /// The server.
        name: String,
        /// The rule's id (pol_…).
        id: String,
    },
    /// List a server's rules, oldest first.
    Ls {
        /// The server.
        name: String,
    },
}

/// A part of a rule, checked here so that a typo is reported before anything is sent; sent
/// as written.
fn parse_rule_part<T>(text: &str) -> Result<String, String>
where
    T: std::str::FromStr<Err = skyport_store::PolicyError>,
{
    text.parse::<T>().map_err(|e| e.to_string())?;
    Ok(text.to_owned())
}

#[derive(Debug, Args)]
pub(crate) struct RemixArgs {
    #[command(subcommand)]
    pub(crate) command: RemixCommand,
    /// Print JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RemixCommand {
    /// Create a remix, e.g. `skyport remix create kit --source weather:forecast --source notes`.
    Create {
        /// The remix's name (served at /servers/NAME/mcp).
        name: String,
        #[command(flatten)]
        sources: RemixSources,
        /// What the remix is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Change a remix: --description alone changes the description; --source flags (with
    /// their --rename, --describe, --prompts, --resources) replace the whole source list.
    Edit {
        /// The remix.
        name: String,
        #[command(flatten)]
        sources: RemixSources,
        /// A new description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Show a remix and what it takes from each source.
    Show {
        /// The remix.
        name: String,
    },
}

/// What a remix takes from its sources.
#[derive(Debug, Args)]
pub(crate) struct RemixSources {
    /// A source: SRC takes all its tools, SRC:tool1,tool2 only those (SRC: none); in order,
    /// up to 10.
    #[arg(long)]
    pub(crate) source: Vec<String>,
    /// SRC:p1,p2 takes only those prompts of SRC (default all; SRC: none).
    #[arg(long)]
    pub(crate) prompts: Vec<String>,
    /// SRC:uri1,uri2 takes only those resources (and templates) of SRC (default all).
    #[arg(long)]
    pub(crate) resources: Vec<String>,
    /// SRC.old=new renames a tool or prompt of SRC.
    #[arg(long)]
    pub(crate) rename: Vec<String>,
    /// SRC.tool=TEXT replaces the description of a tool or prompt of SRC.
    #[arg(long)]
    pub(crate) describe: Vec<String>,
}

impl RemixSources {
    /// Whether any flag other than --source is given.
    pub(crate) fn is_set(&self) -> bool {
        !(self.prompts.is_empty()
            && self.resources.is_empty()
            && self.rename.is_empty()
            && self.describe.is_empty())
    }
}

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Only events of this server.
    #[arg(long)]
    pub(crate) server: Option<String>,
    /// Only events from the last DURATION, e.g. 10m or 2h.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) since: Option<Duration>,
    /// How many events to show at most.
    #[arg(long, short = 'n', default_value_t = 100)]
    pub(crate) limit: u32,
    /// Only MCP requests (`mcp`) or only control-plane changes (`control`) [default: both]
    #[arg(long, value_enum)]
    pub(crate) kind: Option<AuditKind>,
    /// Print a JSON array.
    #[arg(long, conflicts_with = "jsonl")]
    pub(crate) json: bool,
    /// Print JSON Lines: one event per line, for log shippers and SIEMs.
    #[arg(long)]
    pub(crate) jsonl: bool,
}

/// Which audit log `skyport audit` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AuditKind {
    /// MCP requests through the gateway.
    Mcp,
    /// Changes made through the API.
    Control,
}

#[derive(Debug, Args)]
pub(crate) struct ProvidersArgs {
    #[command(subcommand)]
    pub(crate) command: ProvidersCommand,
    /// Print JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ProvidersCommand {
    /// Add a provider, e.g. `skyport providers add openai --kind openai --base-url
    /// https://api.openai.com/v1 --api-key-env OPENAI_API_KEY --model gpt-4o-mini --default`.
    Add {
        /// Its name, as agents refer to it.
        name: String,
        /// The API it speaks: openai (any Chat Completions endpoint) or anthropic.
        #[arg(long, value_parser = parse_provider_kind)]
        kind: ProviderKind,
        /// Its base URL (https://api.openai.com/v1, https://api.anthropic.com).
        #[arg(long)]
        base_url: String,
        #[command(flatten)]
        key: ApiKeyFlags,
        /// The model agents without one use.
        #[arg(long)]
        model: Option<String>,
        /// How long one request may take.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: Duration,
        /// How often a failed request is tried again.
        #[arg(long, default_value_t = 2)]
        retries: u32,
        /// Make it the default provider (chats over a single server use it).
        #[arg(long)]
        default: bool,
    },
    /// List the providers (never their keys).
    Ls,
    /// Change a provider: only what is given changes.
    Set {
        /// The provider.
        name: String,
        /// A new base URL.
        #[arg(long)]
        base_url: Option<String>,
        #[command(flatten)]
        key: ApiKeyFlags,
        /// Remove its API key.
        #[arg(long, conflicts_with_all = ["api_key_env", "api_key_stdin"])]
        clear_api_key: bool,
        /// A new default model.
        #[arg(long)]
        model: Option<String>,
        /// A new timeout.
        #[arg(long, value_parser = parse_duration)]
        timeout: Option<Duration>,
        /// A new number of retries.
        #[arg(long)]
        retries: Option<u32>,
        /// Make it the default provider.
        #[arg(long, conflicts_with = "not_default")]
        default: bool,
        /// Make it no longer the default provider.
        #[arg(long)]
        not_default: bool,
    },
    /// Remove a provider (refused while agents use it).
    Rm {
        /// The provider.
        name: String,
    },
}

/// Where a provider's API key comes from (never the command line, which others can read).
#[derive(Debug, Args)]
pub(crate) struct ApiKeyFlags {
    /// Read the API key from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "api_key_stdin")]
    pub(crate) api_key_env: Option<String>,
    /// Read the API key from the first line of standard input.
    #[arg(long)]
    pub(crate) api_key_stdin: bool,
}

#[derive(Debug, Args)]
pub(crate) struct AgentsArgs {
    #[command(subcommand)]
    pub(crate) command: AgentsCommand,
    /// Print JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AgentsCommand {
    /// Create an agent, e.g. `skyport agents create helper --provider openai --server notes
    /// --instructions 'Answer from the notes.'`.
    Create {
        /// Its name (what `skyport chat` takes).
        name: String,
        /// The provider that serves its model.
        #[arg(long)]
        provider: String,
        #[command(flatten)]
        flags: AgentFlags,
    },
    /// Change an agent: only what is given changes (--server and --allow replace the lists).
    Edit {
        /// The agent.
        name: String,
        /// Another provider.
        #[arg(long)]
        provider: Option<String>,
        #[command(flatten)]
        flags: AgentFlags,
        /// Use the provider's default model again.
        #[arg(long, conflicts_with = "model")]
        default_model: bool,
        /// Let every signed-in user chat with it again.
        #[arg(long, conflicts_with = "allow")]
        clear_allow: bool,
    },
    /// List the agents you may chat with.
    Ls,
    /// Show an agent.
    Show {
        /// The agent.
        name: String,
    },
    /// Remove an agent and every conversation with it.
    Rm {
        /// The agent.
        name: String,
    },
}

/// An agent's definition, as flags.
#[derive(Debug, Args)]
pub(crate) struct AgentFlags {
    /// Its model [default: the provider's default model].
    #[arg(long)]
    pub(crate) model: Option<String>,
    /// What it is for.
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// The system prompt its model gets.
    #[arg(long, conflicts_with = "instructions_file")]
    pub(crate) instructions: Option<String>,
    /// Read the system prompt from this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) instructions_file: Option<PathBuf>,
    /// A server whose tools it uses (hosted, external or remix); repeat it, in order.
    #[arg(long = "server", value_name = "SERVER")]
    pub(crate) servers: Vec<String>,
    /// The most model turns it takes to answer one message (1 to 50) [default: 8].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub(crate) step_limit: Option<u32>,
    /// Who may chat with it: USER or group:GROUP; repeat it [default: every signed-in user].
    #[arg(long, value_name = "USER|group:GROUP")]
    pub(crate) allow: Vec<String>,
}

fn parse_provider_kind(text: &str) -> Result<ProviderKind, String> {
    text.parse()
        .map_err(|e: skyport_store::UnknownProviderKind| e.to_string())
}

/// A duration as people write it: `90s`, `15m`, `1h30m`, `500ms`; a bare number is seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("'{text}' is not a duration; write it like 90s, 15m or 1h30m");
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(invalid)?;
        let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            "d" => Duration::from_secs(number.saturating_mul(86_400)),
            _ => return Err(invalid()),
        };
        total = total.saturating_add(unit);
        rest = &rest[unit_len..];
    }
    if total.is_zero() {
        return Err(format!(
            "'{text}' is no time at all; give a positive duration like 15m"
        ));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_the_way_people_write_them() {
        let secs = Duration::from_secs;
        assert_eq!(parse_duration("90s"), Ok(secs(90)));
        assert_eq!(parse_duration("15m"), Ok(secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("42"), Ok(secs(42)));
        for bad in ["", "m", "15x", "1.5h", "0s", "-3s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(parse_duration("1d"), Ok(secs(86_400)));
        assert!(parse_duration("5 minutes").is_err());
    }

    #[test]
    fn source_flags_parse_with_off_values() {
        let cli = Cli::try_parse_from([
            "skyport",
            "servers",
            "set",
            "api",
            "--poll",
            "60s",
            "--preview-ttl",
            "off",
            "--branch",
            "dev",
            "--webhook-secret",
            "generate",
        ])
        .unwrap();
        let Command::Servers(ServersArgs {
            command: Some(ServersCommand::Set { source, .. }),
            ..
        }) = cli.command
        else {
            panic!("not servers set: {cli:?}");
        };
        assert_eq!(source.poll, Some(OrOff::Set(Duration::from_secs(60))));
        assert_eq!(source.preview_ttl, Some(OrOff::Off));
        assert_eq!(source.branch.as_deref(), Some("dev"));
        assert_eq!(source.webhook_secret.as_deref(), Some("generate"));
    }

    #[test]
    fn sizes_parse_as_documented() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").unwrap_err().contains("512M"));
    }
}

#[derive(Debug, Args)]
pub(crate) struct UsersArgs {
    #[command(subcommand)]
    pub(crate) command: Option<UsersCommand>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// List users and service accounts (the default).
    Ls,
    /// Add a user (its generated password is printed once) or, with --service, a service
    /// account.
    Add {
        /// Its unique name (lowercase letters, digits, '-', '_', '.', '@').
        name: String,
        /// Its e-mail address (servers see it as skyport-user-email).
        #[arg(long)]
        email: Option<String>,
        /// Make it an organisation admin.
        #[arg(long)]
        admin: bool,
        /// A service account: no password, keys only (`skyport keys create --for NAME`).
        #[arg(long, conflicts_with = "password_stdin")]
        service: bool,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a user or service account with its keys and grants.
    Rm {
        /// Its name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    /// The user [default: asked]
    #[arg(long)]
    pub(crate) user: Option<String>,
    /// Read the password from standard input [default: SKYPORT_PASSWORD, else asked]
    #[arg(long)]
    pub(crate) password_stdin: bool,
}

#[derive(Debug, Args)]
pub(crate) struct GroupsArgs {
    #[command(subcommand)]
    pub(crate) command: Option<GroupsCommand>,
    /// Print JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum GroupsCommand {
    /// List groups and their members (the default).
    Ls,
    /// Create a group.
    Create {
        /// Its unique name.
        group: String,
    },
    /// Remove a group and its grants.
    Rm {
        /// Its name.
        group: String,
    },
    /// Add a user or service account to a group.
    Add {
        /// The group.
        group: String,
        /// The member.
        user: String,
    },
    /// Remove a user or service account from a group.
    Remove {
        /// The group.
        group: String,
        /// The member.
        user: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct AccessArgs {
    #[command(subcommand)]
    pub(crate) command: AccessCommand,
    /// Print JSON.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AccessCommand {
    /// Show a server's default role and grants.
    Ls {
        /// The server.
        name: String,
    },
    /// Give a user, service account or group:NAME a role on a server (replacing its role there).
    Grant {
        /// The server.
        name: String,
        /// A user or service account's name, or group:NAME.
        who: String,
        /// admin, editor or viewer.
        role: String,
    },
    /// Remove a grant.
    Revoke {
        /// The server.
        name: String,
        /// A user or service account's name, or group:NAME.
        who: String,
    },
    /// Set the role every organisation member has on a server without a grant.
    Default {
        /// The server.
        name: String,
        /// admin, editor, viewer or none.
        role: String,
    },
}
