//! `skyport serve` and `skyport up`: wiring the store, builder, runtime, gateway and web
//! application together, and taking them down in order.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::serve::ListenerExt;
use skyport_api::{DeploymentView, SettingsUpdate};
use skyport_build::{
    BuildLimits, Builder, DEPARTED_INTERVAL, SWEEP_INTERVAL, SharedArtifacts,
    fail_builds_of_departed_replicas, follow_sources, prefetch_promoted,
};
use skyport_client::Client;
use skyport_gateway::{
    Gateway, GatewayOptions, RateLimit, RateLimitScope, SamplerOptions, record_metric_samples,
};
use skyport_oauth::{AuthorizationServer, OAuthConfig};
use skyport_runtime::{Runtime, follow_live_deployments};
use skyport_store::{AuditRetention, DeploymentStatus, Dialect, KeySource, MasterKey, Store};
use skyport_web::{AppOptions, AppState, ServerDefaults};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::artifacts::BuiltArtifacts;
use crate::cli::{ServeArgs, UpArgs};
use crate::config::{self, Credentials};
use crate::deploy::{self, Deploy, SourceArg};
use crate::warmup::RuntimeWarmup;

/// In-flight requests to a superseded deployment get this long before it is stopped.
const RETIRE_GRACE: Duration = Duration::from_secs(30);
/// Instances get this long to finish in-flight work at shutdown, after the HTTP server stopped.
const INSTANCE_STOP_GRACE: Duration = Duration::from_secs(2);

/// The example `skyport up` deploys when there is no `examples/hello` folder at hand
/// (an installed binary, a different working directory).
const EMBEDDED_HELLO: &str = include_str!("../../../examples/hello/main.py");

/// Logs to stderr; `RUST_LOG` overrides the default level.
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,hyper=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let platform = Platform::start(&args).await?;
    platform.run_until(shutdown_signal()).await
}

pub(crate) async fn up(args: UpArgs) -> anyhow::Result<ExitCode> {
    let platform = Platform::start(&args.serve).await?;
    let source = match args.source {
        Some(source) => source,
        None => default_example(&platform.data_dir)?,
    };
    let name = match args.name {
        Some(name) => name,
        None => name_of(&source)?,
    };
    let client = Client::new(&platform.url, Some(platform.token.clone()));
    let source = SourceArg::Folder(source);
    let request = Deploy {
        source: &source,
        reference: None,
        branch: None,
        name: &name,
        entrypoint: args.entrypoint.as_deref(),
        description: None,
        verbose: false,
        settings: SettingsUpdate::default(),
        env: Vec::new(),
    };
    let deployment = match deploy::run(&client, &request).await {
        Ok(deployment) => deployment,
        Err(e) => {
            platform.stop().await;
            return Err(e);
        }
    };
    if deployment.status == DeploymentStatus::Failed {
        platform.stop().await;
        return Ok(ExitCode::FAILURE);
    }
    print_welcome(&platform, &deployment);
    platform.run_until(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Everything `serve` runs, started.
struct Platform {
    url: String,
    token: String,
    data_dir: PathBuf,
    store: Store,
    builder: Builder,
    runtime: Arc<dyn Runtime>,
    gateway: Gateway,
    http: JoinHandle<std::io::Result<()>>,
    stop_http: Option<oneshot::Sender<()>>,
    /// Polls sources and removes expired previews.
    sources: JoinHandle<()>,
    stop_sources: CancellationToken,
    grace: Duration,
}

impl Platform {
    async fn start(args: &ServeArgs) -> anyhow::Result<Platform> {
        let data_dir = config::data_dir(args.data_dir.as_deref())?;
        config::create_data_dir(&data_dir)?;
        // The data dir holds artifacts, environments and the master key in any case; the
        // database is its SQLite file unless a URL names another (PostgreSQL, shared by
        // replicas that each have their own data dir and the same master key).
        let store = match args.database_url.as_deref() {
            Some(url) => Store::connect(url).await?,
            None => Store::open(&data_dir.join("skyport.db")).await?,
        }
        .with_master_key(master_key(&data_dir)?);
        let secrets = store.env().check_secrets().await?;
        tracing::debug!("{secrets} stored secret(s) open with the master key");
        let sealed = store.servers().seal_webhook_secrets().await?;
        if sealed > 0 {
            tracing::info!("{sealed} webhook secret(s) stored in plaintext are now sealed");
        }
        let interrupted = store.deployments().fail_interrupted().await?;
        if interrupted > 0 {
            tracing::warn!(
                "{interrupted} build(s) were interrupted by the last shutdown and are marked failed"
            );
        }

        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {}: is another Skyport running? Pass --listen ADDR to use another address",
                    args.listen
                )
            })?;
        let addr = listener.local_addr()?;
        let url = public_url(addr);
        let token = ensure_credentials(&store, &data_dir, &url).await?;
        let public = match &args.public_url {
            Some(given) => checked_public_url(given)?,
            None => url.clone(),
        };
        // DESIGN.md: servers are open while only this machine can reach Skyport, and need a
        // key as soon as anything else can (another listen address, or a public URL, which
        // means a proxy forwards to it).
        let default_auth = !addr.ip().is_loopback() || args.public_url.is_some();
        let gateway_options = GatewayOptions {
            request_timeout: args.request_timeout,
            default_auth,
            public_url: public.clone(),
            rate_limit: args.rate_limit.map(|limit| RateLimit {
                burst: args.rate_limit_burst.unwrap_or(limit.burst),
                ..limit
            }),
            // Replicas share only a PostgreSQL database, and then must share the limit too.
            rate_limit_scope: match store.dialect() {
                Dialect::Postgres => RateLimitScope::Shared,
                Dialect::Sqlite => RateLimitScope::Replica,
            },
            base_domain: args.base_domain.clone(),
            cors_origins: args.cors_origins.clone(),
            session_ttl: args.session_ttl,
            allow_private_externals: args.allow_private_externals,
            audit_retention: AuditRetention {
                max_age: args.audit_retention,
                ..AuditRetention::default()
            },
            ..GatewayOptions::default()
        };

        let limits = BuildLimits {
            concurrency: usize::from(args.build_concurrency),
            timeout: args.build_timeout,
            keep_deployments: args.keep_deployments,
        };
        // Artifacts go through the database between replicas: this replica's builds store
        // theirs, and its instances fetch those others built.
        let shared = SharedArtifacts::new(store.clone(), &data_dir);
        let runtime = crate::runtime::start(
            args,
            &data_dir,
            &store,
            Arc::new(BuiltArtifacts(shared.clone())),
        )
        .await?;
        let dyn_runtime: Arc<dyn Runtime> = runtime.clone();
        let warmup = Arc::new(RuntimeWarmup {
            store: store.clone(),
            runtime: dyn_runtime.clone(),
        });
        let builder = Builder::with_shared_artifacts(&shared, limits, warmup);
        tokio::spawn(prefetch_promoted(shared));
        let ended = builder.clean_up_interrupted_builds().await;
        if ended > 0 {
            tracing::warn!("ended {ended} build process(es) left running by the last shutdown");
        }
        let gateway = Gateway::new(store.clone(), dyn_runtime.clone(), gateway_options).await?;
        tokio::spawn(skyport_registry::follow_search_index(store.clone()));
        tokio::spawn(follow_live_deployments(
            store.clone(),
            dyn_runtime.clone(),
            RETIRE_GRACE,
        ));
        let stop_sources = CancellationToken::new();
        let sources = tokio::spawn(follow_sources(
            builder.clone(),
            SWEEP_INTERVAL,
            stop_sources.clone(),
        ));
        // Stopped with the source poller: these only write to the store.
        tokio::spawn(fail_builds_of_departed_replicas(
            store.clone(),
            DEPARTED_INTERVAL,
            stop_sources.clone(),
        ));
        tokio::spawn(record_metric_samples(
            gateway.clone(),
            store.clone(),
            SamplerOptions {
                period: args.metrics_interval,
                retention: args.metrics_retention,
            },
            stop_sources.clone(),
        ));
        let oauth = AuthorizationServer::new(
            store.clone(),
            OAuthConfig {
                access_token_lifetime: args.oauth_token_lifetime,
                allow_private_cimd: args.oauth_allow_private_cimd,
                ..OAuthConfig::new(&public)
            },
        )
        .await?;
        let state = AppState {
            oauth,
            store: store.clone(),
            builder: builder.clone(),
            runtime: dyn_runtime,
            public_url: public,
            server_defaults: ServerDefaults {
                auth: default_auth,
                request_timeout: args.request_timeout,
            },
            allow_private_externals: args.allow_private_externals,
        };
        let options = AppOptions {
            loopback_only: addr.ip().is_loopback(),
        };
        let app = skyport_web::app(state, &gateway, &options);
        let (stop_http, stopped) = oneshot::channel::<()>();
        // Event-stream answers go out in small writes; with Nagle's algorithm each one waits
        // for the client's delayed ACK (~40 ms on Linux).
        let listener = listener.tap_io(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY on a client connection: {e}");
            }
        });
        let http = tokio::spawn(async move {
            // Connection info: the OAuth login throttles failures per client address.
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
        });
        tracing::info!(
            "Skyport {} listening on {url} (data in {})",
            env!("CARGO_PKG_VERSION"),
            data_dir.display()
        );
        Ok(Platform {
            url,
            token,
            data_dir,
            store,
            builder,
            runtime,
            gateway,
            http,
            stop_http: Some(stop_http),
            sources,
            stop_sources,
            grace: Duration::from_secs(args.shutdown_grace),
        })
    }

    /// Serves until `signal`, then shuts down in order.
    async fn run_until(mut self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        let failed = tokio::select! {
            () = signal => None,
            result = &mut self.http => Some(result),
        };
        if let Some(result) = failed {
            self.stop_rest().await;
            return match result {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e).context("the HTTP server failed"),
                Err(e) => Err(e).context("the HTTP server task failed"),
            };
        }
        self.stop().await;
        Ok(())
    }

    /// Stops accepting, gives in-flight requests the grace period, then stops instances,
    /// waits for builds, and flushes the audit log and the logs.
    async fn stop(mut self) {
        tracing::info!(
            "shutting down: finishing in-flight requests (up to {}s)",
            self.grace.as_secs()
        );
        if let Some(stop_http) = self.stop_http.take() {
            let _ = stop_http.send(());
        }
        self.gateway.close_streams();
        if tokio::time::timeout(self.grace, &mut self.http)
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish in time; closing them");
            self.http.abort();
        }
        self.stop_rest().await;
    }

    async fn stop_rest(self) {
        // No new builds from polling once shutdown begins; a check in progress is aborted.
        self.stop_sources.cancel();
        if let Err(e) = self.sources.await {
            tracing::warn!("the source poller ended badly: {e}");
        }
        self.runtime.shutdown(INSTANCE_STOP_GRACE).await;
        if tokio::time::timeout(self.grace, self.builder.drain())
            .await
            .is_err()
        {
            tracing::warn!("builds still running at shutdown will be marked failed on next start");
        }
        self.gateway.flush().await;
        // Requests finished while shutting down are audited before the store closes.
        self.gateway.flush_audit().await;
        self.store.logs().writer().flush().await;
        self.store.close().await;
        tracing::info!("stopped");
    }
}

/// The URL clients use: an unspecified listen address is reached through loopback.
fn public_url(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => format!("http://127.0.0.1:{}", v4.port()),
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => format!("http://[::1]:{}", v6.port()),
        addr => format!("http://{addr}"),
    }
}

/// `--public-url` without its trailing slash, if it is an http(s) URL.
fn checked_public_url(given: &str) -> anyhow::Result<String> {
    let trimmed = given.trim().trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
            Ok(trimmed.to_owned())
        }
        _ => bail!(
            "--public-url must be an http:// or https:// URL like https://mcp.example.com (got '{given}')"
        ),
    }
}

/// The key that seals secrets: `SKYPORT_MASTER_KEY`, else `DATA_DIR/master.key` (created on
/// the first start).
fn master_key(data_dir: &Path) -> anyhow::Result<MasterKey> {
    let variable = std::env::var("SKYPORT_MASTER_KEY").ok();
    let (key, source) = MasterKey::load_or_create(variable.as_deref(), data_dir)?;
    match source {
        KeySource::Created(path) => tracing::info!(
            "created the master key that encrypts secrets at {}; back it up with the data directory: without it, secrets cannot be read",
            path.display()
        ),
        KeySource::File(path) => tracing::debug!("master key from {}", path.display()),
        KeySource::Variable => tracing::debug!("master key from SKYPORT_MASTER_KEY"),
    }
    Ok(key)
}

/// Makes sure `DATA_DIR/credentials` holds a valid admin key for this Skyport, creating one
/// on first start, so the CLI on this machine needs no login. On first start it also creates
/// the `admin` user and prints its generated password, once.
async fn ensure_credentials(store: &Store, data_dir: &Path, url: &str) -> anyhow::Result<String> {
    if let Some(password) = store.users().bootstrap().await? {
        announce_admin_password(&password);
    }
    let admin = store.keys().ensure_admin().await?;
    if let Some(stored) = config::read_credentials(data_dir)
        && store.keys().authenticate(&stored.token).await?.is_some()
    {
        if stored.url != url {
            config::write_credentials(
                data_dir,
                &Credentials {
                    url: url.to_owned(),
                    token: stored.token.clone(),
                },
            )?;
        }
        return Ok(stored.token);
    }
    let (_, token) = store.keys().create(&admin.id, "cli", None).await?;
    config::write_credentials(
        data_dir,
        &Credentials {
            url: url.to_owned(),
            token: token.clone(),
        },
    )?;
    Ok(token)
}

/// Shows the first admin's password on the terminal: it is not stored anywhere else.
fn announce_admin_password(password: &str) {
    use std::io::Write;
    let text = format!(
        "\nCreated the organisation admin 'admin' with the password:\n\n    {password}\n\n\
         It is shown this once. Log in from another machine with `skyport login --user admin`.\n\n"
    );
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// `examples/hello` when run from a checkout, else the embedded copy written to the data dir.
fn default_example(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let checkout = PathBuf::from("examples/hello");
    if checkout.join("main.py").is_file() {
        return Ok(checkout);
    }
    let copy = data_dir.join("examples").join("hello");
    std::fs::create_dir_all(&copy)?;
    std::fs::write(copy.join("main.py"), EMBEDDED_HELLO)
        .with_context(|| format!("cannot write the example to {}", copy.display()))?;
    Ok(copy)
}

/// A server name from a folder name: lowercased, other characters replaced by dashes.
fn name_of(source: &Path) -> anyhow::Result<String> {
    let folder = std::fs::canonicalize(source)
        .with_context(|| format!("cannot read {}", source.display()))?;
    let raw = folder
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let name = name.trim_matches('-').chars().take(63).collect::<String>();
    if name.is_empty() {
        bail!(
            "cannot derive a server name from {}; pass --name",
            source.display()
        );
    }
    Ok(name)
}

fn print_welcome(platform: &Platform, deployment: &DeploymentView) {
    let name = &deployment.server;
    let url = format!("{}/servers/{name}/mcp", platform.url);
    let config = serde_json::json!({ "mcpServers": { name.as_str(): { "url": url } } });
    let credentials = platform.data_dir.join("credentials");
    let text = format!(
        "\nSkyport is running at {base}\n\
         Web UI: {base}/ui/ (log in as admin with the password printed on first start)\n\n  {name}: {url}\n\n\
         Connect a client:\n\
         \x20 Claude Code     claude mcp add --transport http {name} {url}\n\
         \x20 FastMCP         Client(\"{url}\")\n\
         \x20 JSON config     (Claude Desktop, Cursor, VS Code)\n{config}\n\n\
         Admin credential: {credentials} (the CLI on this machine uses it)\n\
         Logs: skyport logs {name} -f        Stop: Ctrl-C\n",
        base = platform.url,
        config = serde_json::to_string_pretty(&config).unwrap_or_default(),
        credentials = credentials.display(),
    );
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_folder_names() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("My_Weather Server");
        std::fs::create_dir(&folder).unwrap();
        assert_eq!(name_of(&folder).unwrap(), "my-weather-server");
    }

    #[test]
    fn public_urls_are_http_without_a_trailing_slash() {
        assert_eq!(
            checked_public_url("https://mcp.example.com/").unwrap(),
            "https://mcp.example.com"
        );
        for bad in ["mcp.example.com", "ftp://x", "https://", "http://a b"] {
            assert!(checked_public_url(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn unspecified_addresses_are_reached_through_loopback() {
        assert_eq!(
            public_url("0.0.0.0:8420".parse().unwrap()),
            "http://127.0.0.1:8420"
        );
        assert_eq!(
            public_url("127.0.0.1:9".parse().unwrap()),
            "http://127.0.0.1:9"
        );
    }
}
