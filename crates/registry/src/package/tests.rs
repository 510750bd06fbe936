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
