//! One MCP session over one kept-alive HTTP/1 connection: `initialize`,
//! `notifications/initialized`, then `tools/call echo` as often as asked.
//!
//! The connection is hyper's low-level client (no pool, no retries, no redirects), so what a
//! request costs here is a write, a read and a scan of the reply for the echoed text. A
//! connection the server closed while idle is opened again before the next request, outside
//! the timed part.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// An error of the load generator, said in words.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The protocol revision the sessions speak: the newest of the session era.
const PROTOCOL_VERSION: &str = "2025-11-25";

/// How long one request may take before the run is called broken.
const REQUEST_LIMIT: Duration = Duration::from_secs(30);

/// Where an MCP endpoint is: `http://HOST:PORT/PATH`.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// `HOST:PORT`, for the connection and the `Host` header.
    pub authority: String,
    /// The request path, e.g. `/servers/echo/mcp`.
    pub path: String,
}

impl Endpoint {
    /// Parses a plain `http://` URL; anything else is refused, since the bench stays on loopback.
    pub fn parse(url: &str) -> Result<Endpoint, Error> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("'{url}' is not an http:// URL"))?;
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("'{url}' names no host").into());
        }
        Ok(Endpoint {
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// An open MCP session on its own connection.
pub struct Session {
    endpoint: Endpoint,
    sender: SendRequest<Full<Bytes>>,
    id: String,
    next_id: u64,
    /// The text each call sends, and must find in the reply.
    text: String,
}

impl Session {
    /// Connects and opens a session (initialize, then the initialized notification).
    pub async fn open(endpoint: &Endpoint, text: &str) -> Result<Session, Error> {
        let sender = connect(&endpoint.authority).await?;
        let mut session = Session {
            endpoint: endpoint.clone(),
            sender,
            id: String::new(),
            next_id: 1,
            text: text.to_owned(),
        };
        session.initialize().await?;
        Ok(session)
    }

    /// Opens a new session on the same connection, leaving the previous one open on the
    /// server (never ended with DELETE): what a client that goes away without a word leaves.
    pub async fn initialize(&mut self) -> Result<(), Error> {
        if self.sender.is_closed() {
            self.sender = connect(&self.endpoint.authority).await?;
        }
        let initialize = serde_json::json!({
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "skyport-loadgen", "version": "0"},
            },
        });
        let (status, headers, body) = self.post(initialize.to_string(), false).await?;
        if status != StatusCode::OK {
            return Err(format!(
                "initialize at {}{} answered {status}: {}",
                self.endpoint.authority,
                self.endpoint.path,
                String::from_utf8_lossy(&body)
            )
            .into());
        }
        self.id = headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .ok_or("initialize answered without an Mcp-Session-Id: is the server stateful?")?
            .to_owned();
        let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        let (status, _, body) = self.post(initialized.to_owned(), true).await?;
        if !status.is_success() {
            return Err(format!(
                "notifications/initialized answered {status}: {}",
                String::from_utf8_lossy(&body)
            )
            .into());
        }
        Ok(())
    }

    /// Calls `echo` once and returns how long the request took, from the first byte written
    /// to the last byte of the reply read. A reply without the echoed text is an error.
    pub async fn call(&mut self) -> Result<Duration, Error> {
        if self.sender.is_closed() {
            self.sender = connect(&self.endpoint.authority).await?;
        }
        let id = self.next_id;
        self.next_id += 1;
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"{}"}}}}}}"#,
            self.text
        );
        let started = Instant::now();
        let (status, _, reply) = self.post(body, true).await?;
        let took = started.elapsed();
        let text = String::from_utf8_lossy(&reply);
        if status != StatusCode::OK
            || !text.contains(&self.text)
            || text.contains("\"isError\":true")
        {
            return Err(format!(
                "tools/call echo at {}{} answered {status}: {text}",
                self.endpoint.authority, self.endpoint.path
            )
            .into());
        }
        Ok(took)
    }

    async fn post(
        &mut self,
        body: String,
        in_session: bool,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), Error> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.endpoint.path.as_str())
            .header("host", self.endpoint.authority.as_str())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if in_session {
            request = request
                .header("mcp-session-id", self.id.as_str())
                .header("mcp-protocol-version", PROTOCOL_VERSION);
        }
        let request = request.body(Full::new(Bytes::from(body)))?;
        let exchange = async {
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>((parts.status, parts.headers, bytes))
        };
        match tokio::time::timeout(REQUEST_LIMIT, exchange).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(format!(
                "no complete answer from {}{} within {REQUEST_LIMIT:?}",
                self.endpoint.authority, self.endpoint.path
            )
            .into()),
        }
    }
}

/// Opens a kept-alive HTTP/1 connection; its driver runs as a task of the current runtime.
async fn connect(authority: &str) -> Result<SendRequest<Full<Bytes>>, Error> {
    let stream = TcpStream::connect(authority)
        .await
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // The connection ends when its sender is dropped or the server closes it; either is
        // seen by the next request on it.
        let _ = connection.await;
    });
    Ok(sender)
}
