//! Reading the packages of a server.json: arguments, variables, and what is refused.

use super::{DeclaredVariable, PackageError, declared_package};

const SERVER_JSON: &str = r#"{
  "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
  "name": "io.github.example/weather",
  "version": "1.2.0",
  "packages": [
    {
      "registryType": "pypi",
      "identifier": "weather-mcp",
      "version": "1.2.0",
      "transport": {"type": "stdio"},
      "packageArguments": [
        {"type": "positional", "value": "serve"},
        {"type": "named", "name": "--units", "default": "metric"},
        {"type": "named", "name": "--verbose"}
      ],
      "environmentVariables": [
        {"name": "WEATHER_API_KEY", "isRequired": true, "isSecret": true, "description": "API key"},
        {"name": "WEATHER_REGION", "isRequired": true, "default": "eu"},
        {"name": "WEATHER_DEBUG"}
      ]
    },
    {"registryType": "oci", "identifier": "docker.io/example/weather", "transport": {"type": "stdio"}},
    {"registryType": "npm", "identifier": "weather-mcp", "transport": {"type": "streamable-http", "url": "http://localhost:8080/mcp"}}
  ]
}"#;

#[test]
fn a_package_gives_its_arguments_and_variables() {
    let package = declared_package(SERVER_JSON, 0).unwrap();
    assert_eq!(package.registry, "pypi");
    assert_eq!(package.identifier, "weather-mcp");
    assert_eq!(package.version.as_deref(), Some("1.2.0"));
    assert_eq!(package.args, ["serve", "--units", "metric", "--verbose"]);
    assert_eq!(
        package.variables,
        [
            DeclaredVariable {
                name: "WEATHER_API_KEY".to_owned(),
                required: true,
                secret: true,
                description: Some("API key".to_owned()),
            },
            DeclaredVariable {
                name: "WEATHER_REGION".to_owned(),
                required: false,
                secret: false,
                description: None,
            },
            DeclaredVariable {
                name: "WEATHER_DEBUG".to_owned(),
                required: false,
                secret: false,
                description: None,
            },
        ]
    );
}

#[test]
fn what_cannot_be_deployed_says_why() {
    let report: Vec<String> = [
        (SERVER_JSON, 1),
        (SERVER_JSON, 2),
        (SERVER_JSON, 7),
        ("{}", 0),
        ("not json", 0),
        (r#"{"packages":[{"registryType":"pypi"}]}"#, 0),
        (
            r#"{"packages":[{"registryType":"npm","identifier":"x","packageArguments":[{"type":"positional","valueHint":"path","isRequired":true}]}]}"#,
            0,
        ),
    ]
    .iter()
    .map(|(text, index)| {
        let error: PackageError = declared_package(text, *index).unwrap_err();
        format!("{index}: {error}")
    })
    .collect();
    insta::assert_snapshot!(report.join("\n"));
}

#[test]
fn a_package_serving_http_names_its_port_variable() {
    let by_env = r#"{"packages":[{"registryType":"npm","identifier":"@modelcontextprotocol/server-everything",
        "transport":{"type":"streamable-http","url":"http://localhost:{PORT}/mcp"},
        "packageArguments":[{"type":"positional","value":"streamableHttp"}],
        "environmentVariables":[{"name":"PORT","isRequired":true},{"name":"TOKEN","isRequired":true}]}]}"#;
    let package = declared_package(by_env, 0).unwrap();
    assert_eq!(package.transport, "streamable-http");
    assert_eq!(package.port_env.as_deref(), Some("PORT"));
    assert_eq!(package.args, ["streamableHttp"]);
    // The port is Skyport's to choose: it is not a variable the user must set.
    let names: Vec<&str> = package.variables.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["TOKEN"]);

    let by_argument = r#"{"packages":[{"registryType":"pypi","identifier":"x",
        "transport":{"type":"streamable-http","url":"http://127.0.0.1:{port}/mcp"},
        "packageArguments":[{"type":"named","name":"--port","value":"{port}"}]}]}"#;
    let package = declared_package(by_argument, 0).unwrap();
    assert_eq!(package.port_env, None);
    assert_eq!(package.args, ["--port", "{port}"]);

    let undeclared = r#"{"packages":[{"registryType":"pypi","identifier":"x",
        "transport":{"type":"streamable-http","url":"http://127.0.0.1:{P}/mcp"}}]}"#;
    let error = declared_package(undeclared, 0).unwrap_err().to_string();
    assert!(error.contains("none of its arguments"), "{error}");
}
