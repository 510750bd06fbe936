//! Inspecting a stdio server: start it as an instance would, ask over its stdin/stdout for
//! `initialize` and every list, and describe it the way the launcher describes a FastMCP
//! server (so search, the UI and the registry read both alike). Its stderr goes to the build
//! log.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use skyport_store::{EnvVar, FailureKind, LogStream};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};

use crate::inspect::minimal_environment;
use crate::job::Failure;
use crate::process::{BuildLog, GroupGuard, command};

/// A server that needs longer than this to answer its lists would also make every session
/// wait as long.
const TIME_LIMIT: Duration = Duration::from_secs(60);
/// Pages of one list read at most (a server that keeps returning cursors must end).
const MAX_PAGES: usize = 50;
/// The revision offered; servers answer with the newest they support.
const REVISION: &str = "2025-11-25";
/// Lines of stderr quoted when the server fails.
const ERROR_TAIL: usize = 20;

/// Runs `program args…` in `dir` with the deployment's `variables` and describes the server.
pub(crate) async fn inspect(
    program: &Path,
    args: &[String],
    dir: &Path,
    variables: &[EnvVar],
    log: &BuildLog,
) -> Result<Value, Failure> {
    let mut cmd = command(program);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .envs(minimal_environment())
        .envs(variables.iter().map(|v| (&v.name, &v.value)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| {
        Failure::new(
            FailureKind::Entrypoint,
            format!("cannot start the server ({}): {e}", program.display()),
        )
    })?;
    let _group = GroupGuard::new(&child);
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(Failure::new(
            FailureKind::Internal,
            "the server's pipes were not created".to_owned(),
        ));
    };
    let tail_log = log.clone();
    let stderr = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut tail = std::collections::VecDeque::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if tail.len() == ERROR_TAIL {
                tail.pop_front();
            }
            tail.push_back(line.clone());
            tail_log.line(LogStream::Stderr, line);
        }
        tail.into_iter().collect::<Vec<_>>().join("\n")
    });
    let mut client = Client {
        stdin,
        lines: BufReader::new(stdout).lines(),
        next_id: 0,
    };
    let described = tokio::time::timeout(TIME_LIMIT, describe(&mut client)).await;
    drop(client);
    let _ = child.start_kill();
    let status = child.wait().await.ok();
    let tail = tokio::time::timeout(Duration::from_secs(2), stderr)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let quoted = if tail.is_empty() {
        String::new()
    } else {
        format!("; its last output:\n{tail}")
    };
    match described {
        Ok(Ok(description)) => Ok(description),
        Ok(Err(Problem::Exited)) => Err(Failure::new(
            FailureKind::Inspection,
            format!(
                "the server exited before answering ({}){quoted}\ncheck its arguments and required environment variables (skyport env set NAME KEY=VALUE)",
                status.map_or_else(|| "status unknown".to_owned(), |s| s.to_string())
            ),
        )),
        Ok(Err(Problem::Refused(message))) => Err(Failure::new(
            FailureKind::Inspection,
            format!("the server refused a request while being inspected: {message}{quoted}"),
        )),
        Err(_) => Err(Failure::new(
            FailureKind::Inspection,
            format!(
                "the server did not answer initialize and its lists over stdio within {} s{quoted}\ncheck that it is an MCP server speaking stdio",
                TIME_LIMIT.as_secs()
            ),
        )),
    }
}

/// Why a description could not be taken.
enum Problem {
    /// Its stdout closed.
    Exited,
    /// It answered `initialize` with an error, or wrote something that is not JSON-RPC.
    Refused(String),
}

/// `initialize`, then each list the server's capabilities announce.
async fn describe(client: &mut Client) -> Result<Value, Problem> {
    let init = client
        .request(
            "initialize",
            json!({
                "protocolVersion": REVISION,
                "capabilities": {},
                "clientInfo": {"name": "skyport-inspect", "version": env!("CARGO_PKG_VERSION")},
            }),
        )
        .await?;
    client
        .notify(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .await?;
    let capabilities = init.get("capabilities").cloned().unwrap_or(Value::Null);
    let offers = |what: &str| capabilities.get(what).is_some_and(|v| !v.is_null());
    let tools = if offers("tools") {
        client.list("tools/list", "tools").await?
    } else {
        Vec::new()
    };
    let prompts = if offers("prompts") {
        client.list("prompts/list", "prompts").await?
    } else {
        Vec::new()
    };
    let (resources, templates) = if offers("resources") {
        (
            client.list("resources/list", "resources").await?,
            client
                .list("resources/templates/list", "resourceTemplates")
                .await?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let field = |item: &Value, key: &str| item.get(key).cloned().unwrap_or(Value::Null);
    let server = init.get("serverInfo").cloned().unwrap_or(Value::Null);
    Ok(json!({
        "kind": "stdio",
        "server": {"name": field(&server, "name"), "version": field(&server, "version")},
        "versions": {"protocol": field(&init, "protocolVersion")},
        "tools": tools.iter().map(|t| json!({"name": field(t, "name"), "description": field(t, "description")})).collect::<Vec<_>>(),
        "resources": resources.iter().map(|r| json!({"uri": field(r, "uri"), "name": field(r, "name")})).collect::<Vec<_>>(),
        "resource_templates": templates.iter().map(|t| json!({"uri_template": field(t, "uriTemplate"), "name": field(t, "name")})).collect::<Vec<_>>(),
        "prompts": prompts.iter().map(|p| json!({"name": field(p, "name"), "description": field(p, "description")})).collect::<Vec<_>>(),
    }))
}

/// The smallest MCP client over a child's pipes: one request at a time.
struct Client {
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next_id: u64,
}

impl Client {
    async fn notify(&mut self, line: &str) -> Result<(), Problem> {
        let mut framed = line.to_owned();
        framed.push('\n');
        self.stdin
            .write_all(framed.as_bytes())
            .await
            .map_err(|_| Problem::Exited)?;
        self.stdin.flush().await.map_err(|_| Problem::Exited)
    }

    /// Sends a request and returns its result; the server's own requests meanwhile (roots,
    /// sampling) are refused, its notifications ignored.
    async fn request(&mut self, method: &str, params: Value) -> Result<Value, Problem> {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.notify(&message.to_string()).await?;
        loop {
            let Some(line) = self.lines.next_line().await.map_err(|_| Problem::Exited)? else {
                return Err(Problem::Exited);
            };
            if line.trim().is_empty() {
                continue;
            }
            let Ok(answer) = serde_json::from_str::<Value>(&line) else {
                return Err(Problem::Refused(format!(
                    "it printed a line that is not JSON-RPC on stdout (servers must log to stderr): {}",
                    line.chars().take(200).collect::<String>()
                )));
            };
            if let Some(method) = answer.get("method").and_then(Value::as_str) {
                if let Some(theirs) = answer.get("id") {
                    let refusal = json!({"jsonrpc": "2.0", "id": theirs, "error": {"code": -32601, "message": format!("{method} is not available while Skyport inspects the server")}});
                    self.notify(&refusal.to_string()).await?;
                }
                continue;
            }
            if answer.get("id") != Some(&json!(id)) {
                continue;
            }
            if let Some(error) = answer.get("error") {
                return Err(Problem::Refused(format!("{method}: {error}")));
            }
            return Ok(answer.get("result").cloned().unwrap_or(Value::Null));
        }
    }

    /// Every page of a list.
    async fn list(&mut self, method: &str, key: &str) -> Result<Vec<Value>, Problem> {
        let mut items = Vec::new();
        let mut cursor: Option<Value> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(cursor) => json!({"cursor": cursor}),
                None => json!({}),
            };
            let page = self.request(method, params).await?;
            if let Some(found) = page.get(key).and_then(Value::as_array) {
                items.extend(found.iter().cloned());
            }
            cursor = page.get("nextCursor").filter(|c| !c.is_null()).cloned();
            if cursor.is_none() {
                break;
            }
        }
        Ok(items)
    }
}
