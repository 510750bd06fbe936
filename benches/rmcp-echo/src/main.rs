//! A minimal MCP server over streamable HTTP with one tool, `echo(text) -> text`.
//!
//! It is the backend that makes the gateway's own cost visible in `benches/gateway-overhead`:
//! a FastMCP server spends a few milliseconds per call, which hides a fraction of a millisecond
//! of proxying; this one answers in microseconds. Sessions are stateful (an `Mcp-Session-Id` at
//! `initialize`, responses as event streams), like FastMCP's default, so the gateway does the
//! same work in front of either.
//!
//!   rmcp-echo [PORT]     (listens on 127.0.0.1:PORT/mcp; 0 or nothing picks a free port)
//!
//! The address it listens on is printed as the first line of stdout, for the script to read.

use std::io::Write;

use axum::serve::ListenerExt;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ServerHandler, schemars, tool, tool_handler, tool_router};

/// The arguments of `echo`.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// The text to send back.
    text: String,
}

/// The server: a tool router with the one tool.
#[derive(Clone)]
struct Echo {
    tool_router: ToolRouter<Echo>,
}

#[tool_router]
impl Echo {
    fn new() -> Echo {
        Echo {
            tool_router: Echo::tool_router(),
        }
    }

    #[tool(description = "Return the text unchanged.")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }
}

// The router built once in `new`; the macro's default would build a new one for every call.
#[tool_handler(router = self.tool_router)]
impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("usage: rmcp-echo [PORT]; '{arg}' is not a port number"))?,
        None => 0,
    };
    let service: StreamableHttpService<Echo, LocalSessionManager> = StreamableHttpService::new(
        || Ok(Echo::new()),
        Default::default(),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    // An event-stream reply goes out in several small writes; without TCP_NODELAY, Nagle's
    // algorithm holds each behind the client's delayed ACK (40 ms on Linux). Uvicorn, under
    // FastMCP, sets it too.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{addr}")?;
    stdout.flush()?;
    drop(stdout);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            // Ctrl-C or nothing: the script ends it with SIGTERM, which needs no handler.
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
