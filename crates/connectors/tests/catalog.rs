//! The catalog as a user meets it: `connectors catalog`, `catalog show`, and every entry's
//! smallest config (as CATALOG.md prints it) valid and buildable as written.

use std::process::Command;

use connector_core::config::{ConfigSource, Environment};
use connector_core::{Backends, ConnectorRegistry};
use serde_json::{Value, json};

fn connectors(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_connectors"))
        .args(args)
        .env_remove("CONFIG_PATH")
        .env_remove("REDIS_URL")
        .output()
        .expect("run connectors")
}

#[test]
fn catalog_lists_one_entry_per_line_beginning_with_its_name() {
    let out = connectors(&["catalog"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let catalog = connector_http::catalog();
    let latest = catalog.latest();
    assert!(latest.len() >= 30, "at least 30 entries: {}", latest.len());
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), latest.len(), "{text}");
    for (line, entry) in lines.iter().zip(&latest) {
        assert!(line.starts_with(&format!("{} ", entry.pinned())), "{line}");
        assert!(
            line.contains(&format!("publishes {}", entry.publishes)),
            "{line}"
        );
        assert!(
            line.contains(&format!("needs: {}", entry.required())),
            "{line}"
        );
    }
}

#[test]
fn catalog_show_prints_the_definition_and_a_wrong_name_a_suggestion() {
    let out = connectors(&["catalog", "show", "pagerduty/incidents@1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(shown["name"], "pagerduty/incidents");
    assert_eq!(shown["read"]["records"]["id"], "/id");
    let wrong = connectors(&["catalog", "show", "pagerduty/incident"]);
    assert_eq!(wrong.status.code(), Some(1));
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        said.contains("did you mean \"pagerduty/incidents\""),
        "{said}"
    );
}

/// The environment a deployment of every example would set: each `${VAR}` the examples
/// reference.
fn environment(configs: &[Value]) -> Environment {
    let text = serde_json::to_string(configs).unwrap_or_default();
    let mut pairs = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("${") {
        let end = rest[at..].find('}').map_or(rest.len(), |e| at + e);
        let name = rest[at + 2..end].to_owned();
        // A private key must be one (the loader checks it); the core's test key is.
        let value = match name.ends_with("PRIVATE_KEY") {
            true => std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../connector-core/tests/fixtures/jwt/test-key.pem"
            ))
            .expect("the test key"),
            false => "example-secret-value".to_owned(),
        };
        pairs.push((name, value));
        rest = &rest[end..];
    }
    Environment::from_pairs(pairs)
}

#[test]
fn every_entrys_smallest_config_is_valid_and_builds_with_secrets_hidden() {
    let catalog = connector_http::catalog();
    let configs: Vec<Value> = catalog
        .latest()
        .iter()
        .map(|e| e.example_config())
        .collect();
    let text = serde_json::to_string_pretty(&json!({ "connectors": configs })).expect("JSON");
    let source = ConfigSource::Text {
        name: "catalog-examples.json".into(),
        text,
    };
    let factories = connectors::factories();
    let registry = ConnectorRegistry::load(&source, &environment(&configs), &factories)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(registry.all().len(), configs.len());
    for config in registry.all() {
        let shown = serde_json::to_string(config.provider_config.shown()).expect("JSON");
        assert!(
            !shown.contains("example-secret-value") && !shown.contains("PRIVATE KEY"),
            "{}: {shown}",
            config.name
        );
        let built = factories.create(
            config.clone(),
            Backends::from_one(std::sync::Arc::new(
                connector_core::embedded::EmbeddedBackend::in_memory(),
            )),
        );
        assert!(
            built.is_ok(),
            "{}: {:?}",
            config.name,
            built.err().map(|e| e.to_string())
        );
    }
}
