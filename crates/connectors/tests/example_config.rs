//! The repository's `connectors.json`, checked by every real provider this product ships
//! (the core's own test knows only the type names).

use connector_core::ConnectorRegistry;
use connector_core::config::{ConfigSource, Environment};

#[test]
fn every_example_connector_is_valid_for_its_real_provider() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../connectors.json");
    // Credentials the examples reference, as a deployment would set them.
    let env = Environment::from_pairs([
        ("JIRA_EMAIL", "ops@example.com"),
        ("JIRA_API_TOKEN", "t"),
        ("GITHUB_TOKEN", "t"),
        ("DATADOG_API_KEY", "k"),
        ("DATADOG_APP_KEY", "k"),
        ("STATUSPAGE_API_KEY", "k"),
        ("PAGERDUTY_TOKEN", "t"),
    ]);
    let registry = ConnectorRegistry::load(
        &ConfigSource::File(path.into()),
        &env,
        &connectors::factories(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let types: std::collections::BTreeSet<&str> = registry
        .all()
        .iter()
        .map(|c| c.connector_type.as_str())
        .collect();
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        ["DATADOG", "GITHUB", "HTTP_JSON", "JIRA", "NOAA_WEATHER"]
    );
    // Each one builds: the factory accepts what the loader accepted.
    for config in registry.all() {
        let built = connectors::factories().create(
            config.clone(),
            connector_core::Backends::from_one(std::sync::Arc::new(
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

/// `connectors.json` names `./connectors.schema.json` for editors: the file is in the
/// repository and is exactly what `connectors schema` prints (deploy-check then applies it
/// with a JSON Schema validator to every config the repository ships).
#[test]
fn the_committed_schema_is_what_the_binary_prints() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../connectors.schema.json");
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}")),
    )
    .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        committed == connectors::factories().json_schema(),
        "connectors.schema.json is stale: run `just schema` (or `cargo run -q -p connectors -- schema > connectors.schema.json`)"
    );
    let names: Vec<&String> = committed["$defs"]
        .as_object()
        .map(|d| d.keys().collect())
        .unwrap_or_default();
    assert!(
        names.iter().any(|n| n.as_str() == "GITHUB.Resources")
            && names.iter().any(|n| n.as_str() == "DATADOG.Resources"),
        "each provider keeps its own definitions: {names:?}"
    );
}
