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
