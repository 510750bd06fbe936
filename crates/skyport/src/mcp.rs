//! `skyport mcp list|call|inspect TARGET`: the MCP client verbs. TARGET is a server name
//! (its gateway URL on this Skyport, with the CLI's credential) or any MCP URL (sent no
//! credential unless it is on this Skyport, so a key never leaks to another host).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Map, Value, json};
use skyport_client::McpClient;

use crate::cli::{Connection, McpArgs, McpCommand};
use crate::config;

/// The four lists an MCP server may offer: method, result key, capability, heading.
const LISTS: [(&str, &str, &str, &str); 4] = [
    ("tools/list", "tools", "tools", "Tools"),
    ("resources/list", "resources", "resources", "Resources"),
    (
        "resources/templates/list",
        "resourceTemplates",
        "resources",
        "Resource templates",
    ),
    ("prompts/list", "prompts", "prompts", "Prompts"),
];

pub(crate) async fn mcp(connection: &Connection, args: McpArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        McpCommand::List { target, json } => {
            let (mut client, _) = connect(connection, &target).await?;
            let lists = lists(&mut client).await;
            client.close().await;
            let lists = lists?;
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&Value::Object(lists))?
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            for (_, key, _, heading) in LISTS {
                let items = lists.get(key).and_then(Value::as_array);
                writeln!(out, "{heading}:")?;
                match items {
                    Some(items) if !items.is_empty() => {
                        for item in items {
                            let name = ["uri", "uriTemplate", "name"]
                                .iter()
                                .find_map(|k| item[*k].as_str())
                                .unwrap_or("?");
                            let about = item["description"].as_str().unwrap_or("");
                            let about = about.lines().next().unwrap_or("");
                            writeln!(out, "  {name}  {about}")?;
                        }
                    }
                    _ => writeln!(out, "  (none)")?,
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        McpCommand::Call {
            target,
            tool,
            args,
            json_args,
            json,
        } => {
            let arguments = arguments(json_args.as_deref(), &args)?;
            let (mut client, _) = connect(connection, &target).await?;
            let params = json!({ "name": tool, "arguments": arguments });
            let mut notes = Vec::new();
            let result = client
                .request("tools/call", params, &mut |m| notes.push(m.clone()))
                .await;
            client.close().await;
            let result = result?;
            for note in &notes {
                eprintln!("{}", describe_notification(note));
            }
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&result)?)?;
            } else {
                for item in result["content"].as_array().into_iter().flatten() {
                    match item["type"].as_str() {
                        Some("text") => writeln!(out, "{}", item["text"].as_str().unwrap_or(""))?,
                        _ => writeln!(out, "{item}")?,
                    }
                }
            }
            if result["isError"] == json!(true) {
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        McpCommand::Inspect { target } => {
            let (mut client, init) = connect(connection, &target).await?;
            let lists = lists(&mut client).await;
            client.close().await;
            let mut all = Map::new();
            all.insert("initialize".to_owned(), init);
            all.extend(lists?);
            writeln!(
                std::io::stdout().lock(),
                "{}",
                serde_json::to_string_pretty(&Value::Object(all))?
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// An initialized client of TARGET and its `initialize` answer.
async fn connect(connection: &Connection, target: &str) -> anyhow::Result<(McpClient, Value)> {
    let base = config::url(connection);
    let url = if target.starts_with("http://") || target.starts_with("https://") {
        target.to_owned()
    } else {
        format!("{base}/servers/{target}/mcp")
    };
    let token = url
        .starts_with(&format!("{base}/"))
        .then(|| config::token(connection, &base))
        .flatten();
    let mut client = McpClient::new(&url, token);
    let init = client
        .initialize()
        .await
        .with_context(|| format!("cannot open an MCP session with {url}"))?;
    Ok((client, init))
}

/// Every list the server's capabilities offer, keyed like the answers (`tools`, …).
async fn lists(client: &mut McpClient) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    for (method, key, _, _) in LISTS {
        // A server without the capability answers "method not found"; that is an empty list.
        let items = match client.list_all(method, key).await {
            Ok(items) => items,
            Err(skyport_client::McpError::Rpc { code: -32601, .. }) => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("{method} failed")),
        };
        out.insert(key.to_owned(), Value::Array(items));
    }
    Ok(out)
}

/// The tool's arguments: `--json-args`, then each NAME=VALUE over it.
fn arguments(json_args: Option<&str>, pairs: &[String]) -> anyhow::Result<Value> {
    let mut arguments = match json_args {
        Some(text) => match serde_json::from_str(text).context("--json-args is not JSON")? {
            Value::Object(map) => map,
            _ => anyhow::bail!("--json-args must be a JSON object"),
        },
        None => Map::new(),
    };
    for pair in pairs {
        let (name, value) = pair
            .split_once('=')
            .with_context(|| format!("argument '{pair}' is not NAME=VALUE"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        arguments.insert(name.to_owned(), value);
    }
    Ok(Value::Object(arguments))
}

fn describe_notification(message: &Value) -> String {
    let params = &message["params"];
    match message["method"].as_str() {
        Some("notifications/progress") => format!(
            "progress {}{}{}",
            params["progress"],
            params["total"]
                .as_f64()
                .map(|t| format!("/{t}"))
                .unwrap_or_default(),
            params["message"]
                .as_str()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
        Some("notifications/message") => format!(
            "{}: {}",
            params["level"].as_str().unwrap_or("log"),
            params["data"]
                .as_str()
                .map_or_else(|| params["data"].to_string(), str::to_owned)
        ),
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_read_json_values_and_plain_strings() {
        let pairs = [
            "name=Ada".to_owned(),
            "n=3".to_owned(),
            "flag=true".to_owned(),
        ];
        let args = arguments(Some(r#"{"n": 1, "extra": [1]}"#), &pairs).expect("valid");
        assert_eq!(
            args,
            json!({ "name": "Ada", "n": 3, "flag": true, "extra": [1] })
        );
        assert!(arguments(None, &["novalue".to_owned()]).is_err());
        assert!(arguments(Some("[1]"), &[]).is_err());
    }
}
