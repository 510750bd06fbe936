//! Package sources at the edge (names, versions, commands) and the choice of a command.

use super::{PackageSource, Registry, choose_command, normalized};

fn parse(text: &str) -> Result<PackageSource, String> {
    PackageSource::parse(text, None, Vec::new())
        .expect("a package source")
        .map_err(|e| e.to_string())
}

#[test]
fn package_sources_parse_with_and_without_versions() {
    let time = parse("pypi:mcp-server-time").unwrap();
    assert_eq!(time.registry, Registry::Pypi);
    assert_eq!(time.name, "mcp-server-time");
    assert_eq!(time.version, None);
    let pinned = parse("pypi:mcp-server-time==2026.10.19").unwrap();
    assert_eq!(pinned.version.as_deref(), Some("2026.10.19"));
    assert_eq!(pinned.to_string(), "pypi:mcp-server-time==2026.10.19");

    let scoped = parse("npm:@modelcontextprotocol/server-memory@2026.8.31").unwrap();
    assert_eq!(scoped.registry, Registry::Npm);
    assert_eq!(scoped.name, "@modelcontextprotocol/server-memory");
    assert_eq!(scoped.version.as_deref(), Some("2026.8.31"));
    assert_eq!(
        scoped.to_string(),
        "npm:@modelcontextprotocol/server-memory@2026.8.31"
    );
    let newest = parse("npm:@modelcontextprotocol/server-memory").unwrap();
    assert_eq!(newest.version, None);
    let plain = parse("npm:cowsay@1.6.0").unwrap();
    assert_eq!(
        (plain.name.as_str(), plain.version.as_deref()),
        ("cowsay", Some("1.6.0"))
    );

    assert!(PackageSource::parse("./folder", None, Vec::new()).is_none());
    assert!(PackageSource::parse("https://x/y.git", None, Vec::new()).is_none());
}

#[test]
fn bad_package_sources_say_what_to_write() {
    let report: Vec<String> = [
        "pypi:",
        "pypi:--index-url=http://evil",
        "pypi:mcp-server-time>=1",
        "pypi:a==1==2",
        "pypi:name with space",
        "npm:",
        "npm:-g",
        "npm:@scope",
        "npm:Upper",
        "npm:x@^1.2",
        "npm:x@",
    ]
    .iter()
    .map(|text| format!("{text:?} -> {}", parse(text).unwrap_err()))
    .collect();
    insta::assert_snapshot!(report.join("\n"));
}

#[test]
fn commands_and_arguments_are_checked() {
    let bad_command = PackageSource::parse("pypi:x", Some("--evil"), Vec::new())
        .unwrap()
        .unwrap_err();
    assert!(bad_command.to_string().contains("not a command name"));
    let nul = PackageSource::parse("pypi:x", None, vec!["a\0b".to_owned()])
        .unwrap()
        .unwrap_err();
    assert!(nul.to_string().contains("NUL"));
}

#[test]
fn the_command_is_the_one_asked_for_named_like_the_package_or_the_only_one() {
    let package = parse("pypi:mcp-server-time").unwrap();
    let many = ["other".to_owned(), "mcp-server-time".to_owned()];
    assert_eq!(
        choose_command(&package, "mcp-server-time", &many).unwrap(),
        "mcp-server-time"
    );
    assert_eq!(
        choose_command(&package, "mcp-server-time", &["only".to_owned()]).unwrap(),
        "only"
    );
    let two = ["a".to_owned(), "b".to_owned()];
    let ambiguous = choose_command(&package, "mcp-server-time", &two).unwrap_err();
    assert!(
        ambiguous.message.contains("--entrypoint"),
        "{}",
        ambiguous.message
    );
    let none = choose_command(&package, "mcp-server-time", &[]).unwrap_err();
    assert!(none.message.contains("no command"), "{}", none.message);
    let asked = PackageSource::parse("pypi:mcp-server-time", Some("b"), Vec::new())
        .unwrap()
        .unwrap();
    assert_eq!(
        choose_command(&asked, "mcp-server-time", &two).unwrap(),
        "b"
    );
    let missing = PackageSource::parse("pypi:mcp-server-time", Some("c"), Vec::new())
        .unwrap()
        .unwrap();
    let refused = choose_command(&missing, "mcp-server-time", &two).unwrap_err();
    assert!(
        refused.message.contains("its commands: a, b"),
        "{}",
        refused.message
    );
}

#[test]
fn names_normalize_like_pypi() {
    assert_eq!(normalized("MCP_Server.time"), "mcp-server-time");
    assert_eq!(normalized("a--_b"), "a-b");
}

#[test]
fn a_package_serves_stdio_unless_told_a_port() {
    use skyport_store::Transport;
    let stdio = parse("npm:server").unwrap();
    assert_eq!(stdio.transport(), Transport::Stdio);
    let by_env = parse("npm:server")
        .unwrap()
        .serving_http_on("PORT")
        .unwrap();
    assert_eq!(
        by_env.transport(),
        Transport::HttpPort {
            env: Some("PORT".to_owned())
        }
    );
    let by_argument = PackageSource::parse("pypi:server", None, vec!["--port={port}".to_owned()])
        .unwrap()
        .unwrap();
    assert_eq!(by_argument.transport(), Transport::HttpPort { env: None });
    let bad = parse("npm:server")
        .unwrap()
        .serving_http_on("1PORT")
        .unwrap_err();
    assert!(
        bad.to_string().contains("not an environment variable name"),
        "{bad}"
    );
}
