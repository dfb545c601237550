//! Config loading: file and environment, substitution, and every error kind with the exact
//! message a person sees.

use std::path::PathBuf;

use connector_core::config::{ConfigErrors, ConfigSource, Environment, json_schema};
use connector_core::testing::items::{ItemsConfig, ItemsProvider};
use connector_core::{ConnectorConfig, ConnectorRegistry, Factories};

fn factories() -> Factories {
    let mut f = Factories::new();
    f.register::<ItemsProvider>();
    f
}

fn text(json: &str) -> ConfigSource {
    ConfigSource::Text {
        name: PathBuf::from("connectors.json"),
        text: json.to_owned(),
    }
}

fn load(json: &str, env: &[(&str, &str)]) -> Result<Vec<ConnectorConfig>, ConfigErrors> {
    let env = Environment::from_pairs(env.iter().copied());
    ConnectorRegistry::load(&text(json), &env, &factories())
        .map(|r| r.all().iter().map(|c| (**c).clone()).collect())
}

/// The typed settings the provider receives.
fn items(c: &ConnectorConfig) -> &ItemsConfig {
    c.provider_config
        .get::<ItemsConfig>()
        .expect("parsed at load into the provider's config")
}

fn errors(json: &str, env: &[(&str, &str)]) -> Vec<String> {
    match load(json, env) {
        Ok(c) => panic!("expected errors, loaded {c:?}"),
        Err(e) => e.messages(),
    }
}

#[test]
fn a_minimal_connector_gets_every_default() {
    let cfgs = load(
        r#"{"connectors": [{"name": "a", "type": "TEST_ITEMS", "providerConfig": {"baseUrl": "http://x"}}]}"#,
        &[],
    )
    .expect("valid");
    let c = &cfgs[0];
    assert!(c.enabled);
    assert_eq!(c.poll_interval_ms, 60_000);
    assert_eq!(c.request_timeout_ms, 30_000);
    assert_eq!(c.max_retries, 3);
    assert_eq!(c.output_stream, "raw-input-signals");
    assert_eq!(c.lease_ttl_seconds, 30);
    assert_eq!(c.commit_batch_size, 500);
    assert_eq!(c.retry_config.base_delay_ms, 1_000);
    assert_eq!(c.retry_config.max_delay_ms, 30_000);
    assert_eq!(c.retry_config.jitter_ratio, 0.2);
}

#[test]
fn malformed_json_names_file_line_and_column() {
    let msgs = errors(
        "{\n  \"connectors\": [\n    {\"name\": \"a\",}\n  ]\n}",
        &[],
    );
    assert_eq!(
        msgs,
        vec!["connectors.json:3:18: invalid JSON: trailing comma"]
    );
}

#[test]
fn a_misspelt_field_suggests_the_intended_one_with_its_line() {
    let json = r#"{"connectors": [
  {
    "name": "a",
    "type": "TEST_ITEMS",
    "pollIntervalMS": 1000,
    "providerConfig": {"baseUrl": "http://x"}
  }
]}"#;
    assert_eq!(
        errors(json, &[]),
        vec![
            "connectors.json:5:5: connectors[0].pollIntervalMS: unknown field \"pollIntervalMS\", did you mean \"pollIntervalMs\"?"
        ]
    );
}

#[test]
fn every_mistake_in_the_file_is_reported_at_once() {
    let json = r#"{"connectors": [
  {"name": "a", "type": "TEST_ITEMS", "pollIntervalMs": 0, "providerConfig": {"baseUrl": "http://x"}},
  {"name": "b", "type": "TEST_ITEMS",
   "retryConfig": {"baseDelayMs": 100, "jitterRatio": 1.5},
   "requestTimeoutMs": -5,
   "providerConfig": {"baseUrl": "http://x"}},
  {"name": "a", "type": "TEST_ITEM", "providerConfig": {}},
  {"type": "TEST_ITEMS", "enabled": "yes", "providerConfig": {"baseUrl": "http://x"}}
]}"#;
    assert_eq!(
        errors(json, &[]),
        vec![
            "connectors.json:2:39: connectors[0].pollIntervalMs: expected a whole number of milliseconds greater than 0",
            "connectors.json:4:40: connectors[1].retryConfig.jitterRatio: expected a number between 0 and 1",
            "connectors.json:5:4: connectors[1].requestTimeoutMs: expected a whole number of milliseconds greater than 0",
            "connectors.json:7:4: connectors[2].name: duplicate connector name \"a\" (first defined at connectors[0], line 2); names must be unique",
            "connectors.json:7:17: connectors[2].type: unknown connector type \"TEST_ITEM\" (did you mean \"TEST_ITEMS\"?); known types: DATADOG, GITHUB, JIRA, NOAA_WEATHER, TEST_ITEMS",
            "connectors.json:8:3: connectors[3]: missing required field \"name\"",
            "connectors.json:8:26: connectors[3].enabled: expected true or false",
        ]
    );
}

#[test]
fn provider_settings_are_checked_by_the_provider() {
    let json = r#"{"connectors": [
  {"name": "a", "type": "TEST_ITEMS", "providerConfig": {"baseUrl": "not a url", "limt": 5, "limit": 500, "path": [7]}}
]}"#;
    let msgs = errors(json, &[]);
    assert_eq!(
        msgs,
        vec![
            "connectors.json:2:58: connectors[0].providerConfig.baseUrl: relative URL without a base: \"not a url\"",
            "connectors.json:2:82: connectors[0].providerConfig.limt: unknown field \"limt\", did you mean \"limit\"?",
            "connectors.json:2:107: connectors[0].providerConfig.path: invalid type: sequence, expected a string",
        ]
    );
    let msgs = errors(
        r#"{"connectors": [{"name": "a", "type": "TEST_ITEMS", "providerConfig": {"baseUrl": "http://x", "limit": 500}}]}"#,
        &[],
    );
    assert_eq!(
        msgs,
        vec![
            "connectors.json:1:95: connectors[0].providerConfig.limit: expected a page size from 1 to 100"
        ]
    );
}

#[test]
fn secret_values_never_appear_in_errors() {
    let msgs = errors(
        r#"{"connectors": [{"name": "a", "type": "TEST_ITEMS", "providerConfig": {"baseUrl": "http://x", "apiToken": {"value": "123456789"}}}]}"#,
        &[],
    );
    assert_eq!(
        msgs,
        vec![
            "connectors.json:1:95: connectors[0].providerConfig.apiToken: has the wrong type or an invalid value (not shown: it is a secret)"
        ]
    );
    assert!(!msgs[0].contains("123456789"));
}

#[test]
fn a_connector_type_of_another_binary_is_accepted_unchecked() {
    let cfgs = load(
        r#"{"connectors": [{"name": "j", "type": "JIRA", "providerConfig": {"anything": 1}}]}"#,
        &[],
    )
    .expect("built-in types are left to their own binary");
    assert_eq!(cfgs[0].connector_type, "JIRA");
}

#[test]
fn the_environment_defines_connectors_with_typed_values() {
    let cfgs = load(
        r#"{"connectors": []}"#,
        &[
            ("ENABLED_CONNECTORS", "weather-local"),
            ("CONNECTOR_WEATHER_LOCAL_TYPE", "TEST_ITEMS"),
            ("CONNECTOR_WEATHER_LOCAL_POLL_INTERVAL_MS", "300000"),
            ("CONNECTOR_WEATHER_LOCAL_RETRY_JITTER_RATIO", "0.5"),
            ("CONNECTOR_WEATHER_LOCAL_BASE_URL", "http://localhost:1"),
            ("CONNECTOR_WEATHER_LOCAL_LIMIT", "10"),
        ],
    )
    .expect("valid");
    assert_eq!(cfgs.len(), 1);
    let c = &cfgs[0];
    assert_eq!(c.name, "weather-local");
    assert_eq!(c.poll_interval_ms, 300_000);
    assert_eq!(c.retry_config.jitter_ratio, 0.5);
    let p = items(c);
    assert_eq!(p.base_url.as_str(), "http://localhost:1/");
    assert_eq!(
        p.limit,
        Some(10),
        "text from the environment is a number here"
    );
    assert!(c.enabled);
}

#[test]
fn the_environment_overrides_the_file_field_by_field() {
    let json = r#"{"connectors": [
  {"name": "a", "type": "TEST_ITEMS", "maxRetries": 1, "retryConfig": {"baseDelayMs": 5},
   "providerConfig": {"baseUrl": "http://file", "path": "/keep"}},
  {"name": "b", "type": "TEST_ITEMS", "providerConfig": {"baseUrl": "http://b"}}
]}"#;
    let cfgs = load(
        json,
        &[
            ("CONNECTOR_A_MAX_RETRIES", "7"),
            ("CONNECTOR_A_RETRY_MAX_DELAY_MS", "90"),
            ("CONNECTOR_A_BASE_URL", "http://env"),
        ],
    )
    .expect("valid");
    assert_eq!(cfgs[0].max_retries, 7);
    assert_eq!(cfgs[0].retry_config.base_delay_ms, 5, "file value kept");
    assert_eq!(cfgs[0].retry_config.max_delay_ms, 90);
    assert_eq!(items(&cfgs[0]).base_url.as_str(), "http://env/");
    assert_eq!(items(&cfgs[0]).path, "/keep");
    assert!(cfgs[1].enabled);

    let only_a = load(json, &[("ENABLED_CONNECTORS", "a")]).expect("valid");
    assert!(only_a[0].enabled);
    assert!(
        !only_a[1].enabled,
        "ENABLED_CONNECTORS lists the enabled ones"
    );
}

#[test]
fn a_bad_environment_value_names_the_variable() {
    let json = r#"{"connectors": [{"name": "a", "type": "TEST_ITEMS", "providerConfig": {"baseUrl": "http://x"}}]}"#;
    assert_eq!(
        errors(json, &[("CONNECTOR_A_POLL_INTERVAL_MS", "soon")]),
        vec![
            "environment variable CONNECTOR_A_POLL_INTERVAL_MS: connectors[0].pollIntervalMs: expected a whole number of milliseconds greater than 0"
        ]
    );
    assert_eq!(
        errors(json, &[("ENABLED_CONNECTORS", "a,ghost")]),
        vec![
            "environment variable ENABLED_CONNECTORS: connectors[ghost]: \"ghost\" is listed in ENABLED_CONNECTORS but is not in connectors.json and CONNECTOR_GHOST_TYPE is not set"
        ]
    );
}

#[test]
fn variables_in_provider_settings_are_substituted() {
    let json = r#"{"connectors": [{"name": "a", "type": "TEST_ITEMS",
  "providerConfig": {"baseUrl": "${API_URL:-http://default}", "apiToken": "${API_TOKEN}"}}]}"#;
    let cfgs = load(json, &[("API_TOKEN", "tok-1")]).expect("valid");
    assert_eq!(items(&cfgs[0]).base_url.as_str(), "http://default/");
    let token = items(&cfgs[0]).api_token.as_ref().map(|t| t.expose());
    assert_eq!(token, Some("tok-1"));
    let shown = serde_json::to_string(&cfgs[0].redacted()).expect("json");
    assert!(!shown.contains("tok-1"), "{shown}");

    assert_eq!(
        errors(json, &[]),
        vec![
            "connectors.json:2:63: connectors[0].providerConfig.apiToken: environment variable API_TOKEN is not set (referenced as ${API_TOKEN} by connector \"a\"); set it or write ${API_TOKEN:-default}"
        ]
    );
}

#[test]
fn unset_variables_matter_only_for_connectors_that_run_here() {
    let json = r#"{"connectors": [
  {"name": "off", "type": "TEST_ITEMS", "enabled": false, "providerConfig": {"baseUrl": "http://x", "apiToken": "${NOPE}"}},
  {"name": "other", "type": "JIRA", "providerConfig": {"apiToken": "${NOPE}"}}
]}"#;
    let cfgs = load(json, &[]).expect("neither connector runs in this binary");
    assert_eq!(cfgs.len(), 2);
}

#[test]
fn text_from_the_environment_takes_the_type_the_provider_declares() {
    let json = r#"{"connectors": [{"name": "a", "type": "TEST_ITEMS",
  "providerConfig": {"baseUrl": "http://x", "limit": "${LIMIT:-5}"}}]}"#;
    let cfgs = load(json, &[("CONNECTOR_A_API_TOKEN", "12345")]).expect("valid");
    // The provider receives a string token and a numeric limit.
    let p = items(&cfgs[0]);
    assert_eq!(p.api_token.as_ref().map(|t| t.expose()), Some("12345"));
    assert_eq!(p.limit, Some(5));
}

#[test]
fn a_missing_file_says_which_and_how_to_fix_it() {
    let env = Environment::default();
    let err = ConnectorRegistry::load(
        &ConfigSource::File("/nonexistent/connectors.json".into()),
        &env,
        &factories(),
    )
    .expect_err("missing file");
    let msg = err.to_string();
    assert!(msg.starts_with("1 problem in the connector configuration:\n  cannot read config file /nonexistent/connectors.json"), "{msg}");
    assert!(msg.contains("CONNECTORS_CONFIG_PATH"));
}

#[test]
fn the_repository_example_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../connectors.json");
    // No credentials set: the connectors that need them are disabled in the example.
    let env = Environment::default();
    let reg = ConnectorRegistry::load(&ConfigSource::File(path.into()), &env, &factories())
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = reg.all().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["weather-noaa", "jira-prod", "github-main", "datadog-prod"]
    );
}

#[test]
fn the_schema_describes_provider_settings() {
    let schema = factories().json_schema();
    let text = schema.to_string();
    assert!(text.contains("\"baseUrl\""), "provider schema attached");
    assert!(text.contains("\"pollIntervalMs\""));
    let _ = json_schema(&[], &[]);
}
