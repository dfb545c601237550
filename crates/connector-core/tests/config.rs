//! Config loading: file and environment, substitution, and every error kind with the exact
//! message a person sees.

use std::path::PathBuf;

use connector_core::config::{ConfigErrors, ConfigSource, Environment, json_schema};
use connector_core::testing::items::{ItemsConfig, ItemsProvider};
use connector_core::{ConnectorConfig, ConnectorRegistry, Factories};

/// The product these tests pretend to be part of (its other types are skipped, not
/// refused), as a binary declares it.
const PRODUCT: [&str; 5] = ["DATADOG", "GITHUB", "HTTP_JSON", "JIRA", "NOAA_WEATHER"];

fn factories() -> Factories {
    let mut f = Factories::new();
    f.register::<ItemsProvider>();
    f.with_product_types(&PRODUCT)
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
    assert_eq!(c.request_timeout_ms, 10_000);
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
fn a_comment_pasted_from_an_example_is_named() {
    let msgs = errors(
        "{\"connectors\": [\n  {\"name\": \"a\", \"type\": \"TEST_ITEMS\", // the name\n  \"providerConfig\": {}}\n]}",
        &[],
    );
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(
        msgs[0].starts_with("connectors.json:2:")
            && msgs[0].contains("comments are not allowed in connectors.json"),
        "{msgs:?}"
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
            "connectors.json:2:39: connectors[0].pollIntervalMs: expected a whole number of milliseconds of at least 100 (got 0)",
            "connectors.json:4:40: connectors[1].retryConfig.jitterRatio: expected a number between 0 and 1 (got 1.5)",
            "connectors.json:5:4: connectors[1].requestTimeoutMs: expected a whole number of milliseconds greater than 0 (got -5)",
            "connectors.json:7:4: connectors[2].name: duplicate connector name \"a\" (first defined at connectors[0], line 2); names must be unique",
            "connectors.json:7:17: connectors[2].type: unknown connector type \"TEST_ITEM\" (did you mean \"TEST_ITEMS\"?); known types: DATADOG, GITHUB, HTTP_JSON, JIRA, NOAA_WEATHER, TEST_ITEMS",
            "connectors.json:8:3: connectors[3]: missing required field \"name\"",
            "connectors.json:8:26: connectors[3].enabled: expected true or false (got \"yes\")",
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
            "connectors.json:2:58: connectors[0].providerConfig.baseUrl: expected an absolute URL with its scheme, such as https://api.example.com",
            "connectors.json:2:82: connectors[0].providerConfig.limt: unknown field \"limt\", did you mean \"limit\"?",
            "connectors.json:2:93: connectors[0].providerConfig.limit: expected a page size from 1 to 100",
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
            "environment variable CONNECTOR_A_POLL_INTERVAL_MS: connectors[0].pollIntervalMs: expected a whole number of milliseconds of at least 100"
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
        names[..4],
        ["weather-noaa", "jira-prod", "github-main", "datadog-prod"]
    );
    assert!(
        names[4..].iter().all(|n| n.starts_with("http-")),
        "{names:?}"
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

mod secrets {
    //! A provider whose secrets have names no list of words would catch.

    use std::sync::Arc;

    use connector_core::Backends;
    use connector_core::config::{
        FieldError, Headers, ProviderSettings, References, Secret, parse_provider, schema_of,
    };
    use connector_core::pipeline::{CreateError, PollingConnector};
    use connector_core::registry::ConnectorFactory;
    use connector_core::{ConnectorConfig, Factories};
    use schemars::JsonSchema;
    use serde::{Deserialize, Serialize};
    use serde_json::{Map, Value};

    #[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct Oddly {
        pub pat: Secret,
        #[serde(default)]
        pub pwd: Option<Secret>,
        #[serde(default)]
        pub bearer: Option<Secret>,
        #[serde(default)]
        pub webhook_url: Option<Secret>,
        #[serde(default)]
        pub headers: Headers,
        #[serde(default)]
        pub max_body_bytes: Option<u64>,
        #[serde(default)]
        pub region: Option<String>,
    }

    pub struct OddlyFactory;

    impl ConnectorFactory for OddlyFactory {
        fn connector_type(&self) -> &'static str {
            "ODDLY"
        }
        fn parse(
            &self,
            settings: Map<String, Value>,
            references: &References,
        ) -> Result<ProviderSettings, Vec<FieldError>> {
            let (typed, resolved) =
                parse_provider::<Oddly>(settings, &schema_of::<Oddly>(), references, &|o| {
                    // A check that quotes the value, as providers' checks do.
                    match o.region.as_deref() {
                        Some(r) if r != "eu" && r != "us" => vec![FieldError::new(
                            &["region"],
                            format!("unknown region \"{r}\"; expected eu or us"),
                        )],
                        _ => Vec::new(),
                    }
                })?;
            Ok(ProviderSettings::typed(typed, &resolved))
        }
        fn provider_schema(&self) -> Value {
            schema_of::<Oddly>()
        }
        fn create(
            &self,
            _: Arc<ConnectorConfig>,
            _: Backends,
        ) -> Result<Box<dyn PollingConnector>, CreateError> {
            Err(CreateError("config tests only".into()))
        }
    }

    pub fn factories() -> Factories {
        let mut f = super::factories();
        f.register_connector("ODDLY", OddlyFactory);
        f
    }
}

fn load_oddly(json: &str, env: &[(&str, &str)]) -> Result<Vec<ConnectorConfig>, ConfigErrors> {
    let env = Environment::from_pairs(env.iter().copied());
    ConnectorRegistry::load(&text(json), &env, &secrets::factories())
        .map(|r| r.all().iter().map(|c| (**c).clone()).collect())
}

#[test]
fn secrets_are_hidden_by_their_type_whatever_the_field_is_called() {
    let json = r#"{"connectors": [{"name": "o", "type": "ODDLY", "providerConfig": {
  "pat": "ghp_pat_value", "pwd": "${PWD_VALUE}", "bearer": "bearer-value",
  "webhookUrl": "https://hooks.example/T0/secret-path", "region": "eu",
  "headers": {"Accept": "application/json", "X-Api-Version": "2", "X-Custom-Auth": "custom-value"}
}}]}"#;
    let cfgs = load_oddly(json, &[("PWD_VALUE", "pwd-value")]).expect("valid");
    let shown = serde_json::to_string(&cfgs[0].redacted()).expect("json");
    let debug = format!("{:?}", cfgs[0]);
    for secret in [
        "ghp_pat_value",
        "pwd-value",
        "bearer-value",
        "secret-path",
        "custom-value",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    let p = &cfgs[0].redacted()["providerConfig"];
    assert_eq!(p["pat"], "****");
    assert_eq!(p["webhookUrl"], "****");
    assert_eq!(p["region"], "eu", "plain settings stay readable");
    assert_eq!(
        p["headers"],
        serde_json::json!({"Accept": "application/json", "X-Api-Version": "2", "X-Custom-Auth": "****"})
    );
    let typed = cfgs[0]
        .provider_config
        .get::<secrets::Oddly>()
        .expect("typed");
    assert_eq!(typed.pwd.as_ref().map(|s| s.expose()), Some("pwd-value"));
}

#[test]
fn a_wrong_secret_is_reported_without_its_value_whatever_its_name() {
    let msgs = load_oddly(
        r#"{"connectors": [{"name": "o", "type": "ODDLY", "providerConfig": {"pat": 123456789}}]}"#,
        &[],
    )
    .expect_err("a number is not a token")
    .messages();
    assert_eq!(
        msgs,
        vec![
            "connectors.json:1:67: connectors[0].providerConfig.pat: has the wrong type or an invalid value (not shown: it is a secret)"
        ]
    );
}

#[test]
fn a_value_from_a_variable_is_never_echoed_the_variable_is_named_instead() {
    let json = r#"{"connectors": [{"name": "o", "type": "ODDLY", "providerConfig": {
  "pat": "x", "maxBodyBytes": "${SIZE}"}}]}"#;
    let msgs = load_oddly(json, &[("SIZE", "the-secret-text")])
        .expect_err("not a number")
        .messages();
    assert_eq!(
        msgs,
        vec![
            "connectors.json:2:15: connectors[0].providerConfig.maxBodyBytes: invalid value from ${SIZE} (not shown): expected a whole number"
        ]
    );
    let cfgs = load_oddly(json, &[("SIZE", "1048576")]).expect("a number from text");
    let typed = cfgs[0]
        .provider_config
        .get::<secrets::Oddly>()
        .expect("typed");
    assert_eq!(typed.max_body_bytes, Some(1_048_576));
}

#[test]
fn secrets_are_read_from_files_at_every_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, "first-token\n").expect("write");
    let json = format!(
        r#"{{"connectors": [{{"name": "o", "type": "ODDLY", "providerConfig": {{"pat": "${{file:{}}}"}}}}]}}"#,
        token.display()
    );
    let first = load_oddly(&json, &[]).expect("valid");
    let pat = |c: &ConnectorConfig| {
        c.provider_config
            .get::<secrets::Oddly>()
            .map(|o| o.pat.expose().to_owned())
    };
    assert_eq!(
        pat(&first[0]).as_deref(),
        Some("first-token"),
        "trailing newline dropped"
    );

    // A rotated Secret: the next load (a SIGHUP) reads the new value, and the config
    // compares unequal, so the running connector restarts with it.
    std::fs::write(&token, "second-token").expect("write");
    let second = load_oddly(&json, &[]).expect("valid");
    assert_eq!(pat(&second[0]).as_deref(), Some("second-token"));
    assert_ne!(first[0], second[0]);
    assert_eq!(second[0], load_oddly(&json, &[]).expect("valid")[0]);

    std::fs::remove_file(&token).expect("remove");
    let msgs = load_oddly(&json, &[]).expect_err("missing file").messages();
    assert_eq!(
        msgs,
        vec![format!(
            "connectors.json:1:67: connectors[0].providerConfig.pat: cannot read {path} (referenced as ${{file:{path}}} by connector \"o\"): No such file or directory (os error 2)",
            path = token.display()
        )]
    );
}

#[test]
fn every_declared_universal_field_is_loaded_checked_and_in_the_schema() {
    // The universal fields are declared once, on ConnectorConfig: whatever the schema
    // lists, the loader accepts from the file and from the environment and checks.
    let schema = factories().json_schema();
    let props = schema
        .pointer("/$defs/ConnectorConfig/properties")
        .and_then(serde_json::Value::as_object)
        .expect("connector properties");
    assert!(props.len() >= 13);
    let base = r#"{"connectors": [{"name": "a", "type": "TEST_ITEMS", "providerConfig": {"baseUrl": "http://x"}}]}"#;
    for field in props.keys() {
        if ["name", "type", "providerConfig"].contains(&field.as_str()) {
            continue;
        }
        // A list fits no universal field: each one must say so, naming the field.
        let json = base.replace(
            r#""providerConfig""#,
            &format!(r#""{field}": [[]], "providerConfig""#),
        );
        let msgs = errors(&json, &[]);
        assert_eq!(msgs.len(), 1, "{field}: {msgs:?}");
        assert!(
            msgs[0].contains(&format!("connectors[0].{field}: expected ")),
            "{field}: {msgs:?}"
        );
        // And the environment reaches it by its SNAKE_CASE name.
        let snake: String = field
            .chars()
            .flat_map(|c| {
                if c.is_ascii_uppercase() {
                    vec!['_', c]
                } else {
                    vec![c.to_ascii_uppercase()]
                }
            })
            .collect();
        if field == "retryConfig" {
            continue; // reached through RETRY_<FIELD>, tested above
        }
        let var = format!("CONNECTOR_A_{snake}");
        match load(base, &[(var.as_str(), "[not valid]")]) {
            Err(e) => assert_eq!(e.messages().len(), 1, "{field}: {:?}", e.messages()),
            // Text is a valid value of a text field: it must have arrived there.
            Ok(cfgs) => assert_eq!(cfgs[0].redacted()[field], "[not valid]", "{field}"),
        }
        if let Err(e) = load(base, &[(var.as_str(), "[not valid]")]) {
            let msg = &e.messages()[0];
            assert!(
                msg.starts_with(&format!(
                    "environment variable {var}: connectors[0].{field}: expected "
                )),
                "{field}: {msg}"
            );
        }
    }
}

#[test]
fn the_schema_carries_the_ranges_the_loader_enforces() {
    let schema = factories().json_schema();
    let lease = schema
        .pointer("/$defs/ConnectorConfig/properties/leaseTtlSeconds")
        .expect("leaseTtlSeconds");
    assert_eq!(lease["minimum"], 1);
    assert_eq!(lease["maximum"], 86_400);
    let json = r#"{"connectors": [{"name": "a", "type": "TEST_ITEMS", "leaseTtlSeconds": 86401, "providerConfig": {"baseUrl": "http://x"}}]}"#;
    assert_eq!(
        errors(json, &[]),
        vec![
            "connectors.json:1:53: connectors[0].leaseTtlSeconds: expected a whole number of seconds from 1 to 86400 (got 86401)"
        ]
    );
}

#[test]
fn a_providers_own_check_never_quotes_a_value_from_a_variable() {
    let json = r#"{"connectors": [{"name": "o", "type": "ODDLY", "providerConfig": {"pat": "x", "region": "${REGION}"}}]}"#;
    assert_eq!(
        load_oddly(json, &[("REGION", "mars-secret-text")])
            .expect_err("unknown region")
            .messages(),
        vec![
            "connectors.json:1:79: connectors[0].providerConfig.region: unknown region \"${REGION}\"; expected eu or us"
        ]
    );
}

#[test]
fn a_wrong_value_in_place_of_a_header_map_is_not_quoted() {
    let json = r#"{"connectors": [{"name": "o", "type": "ODDLY", "providerConfig": {"pat": "x", "headers": "Bearer abc123"}}]}"#;
    let msgs = load_oddly(json, &[]).expect_err("not a map").messages();
    assert_eq!(
        msgs,
        vec![
            "connectors.json:1:79: connectors[0].providerConfig.headers: has the wrong type or an invalid value (not shown: it is a secret)"
        ]
    );
}

#[test]
fn a_secret_file_must_be_a_small_regular_file() {
    let json = r#"{"connectors": [{"name": "o", "type": "ODDLY", "providerConfig": {"pat": "${file:/dev/zero}"}}]}"#;
    assert_eq!(
        load_oddly(json, &[]).expect_err("a device").messages(),
        vec![
            "connectors.json:1:67: connectors[0].providerConfig.pat: cannot read /dev/zero (referenced as ${file:/dev/zero} by connector \"o\"): it is not a regular file"
        ]
    );
}

#[test]
fn an_error_in_an_object_the_environment_touched_points_at_the_file() {
    // The environment sets `limit` inside providerConfig; the missing `baseUrl` is the
    // file's mistake, and the message says where it is in the file.
    let json = r#"{"connectors": [{"name": "a", "type": "TEST_ITEMS", "providerConfig": {}}]}"#;
    assert_eq!(
        errors(json, &[("CONNECTOR_A_LIMIT", "5")]),
        vec![
            "connectors.json:1:53: connectors[0].providerConfig: missing required field \"baseUrl\""
        ]
    );
}

#[test]
fn a_connector_disabled_from_the_environment_needs_no_variables() {
    let json = r#"{"connectors": [{"name": "a", "type": "TEST_ITEMS", "providerConfig": {"baseUrl": "http://x", "apiToken": "${UNSET_TOKEN}"}}]}"#;
    let cfgs = load(json, &[("CONNECTOR_A_ENABLED", "false")]).expect("disabled");
    assert!(!cfgs[0].enabled);
}

/// A webhook block is checked like the rest: a bad kind, a missing header, an unset
/// secret variable each name their place; the secret comes from the environment.
#[test]
fn webhook_mistakes_name_file_line_and_field() {
    let json = r#"{"connectors": [
  {"name": "a", "type": "TEST_ITEMS", "providerConfig": {"baseUrl": "http://x"},
   "webhook": {"verify": "hmac", "secret": "${HOOK_SECRET}"}},
  {"name": "b", "type": "TEST_ITEMS", "providerConfig": {"baseUrl": "http://x"},
   "webhook": {"verify": "gitlab", "secret": "0123456789"}}
]}"#;
    let msgs = errors(json, &[("HOOK_SECRET", "from-the-environment")]);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs[0].starts_with("connectors.json:3:")
            && msgs[0].contains("connectors[0].webhook.header")
            && msgs[0].contains("\"hmac\" needs the name of the header"),
        "{msgs:?}"
    );
    assert!(
        msgs[1].starts_with("connectors.json:5:")
            && msgs[1].contains("connectors[1].webhook.verify")
            && msgs[1].contains("expected one of \"github\", \"jira\", \"hmac\", \"token\""),
        "{msgs:?}"
    );
    let unset = errors(
        r#"{"connectors": [{"name": "a", "type": "TEST_ITEMS", "providerConfig": {"baseUrl": "http://x"},
   "webhook": {"verify": "token", "secret": "${HOOK_SECRET}"}}]}"#,
        &[],
    );
    assert!(
        unset[0].contains("connectors[0].webhook.secret")
            && unset[0].contains("HOOK_SECRET is not set"),
        "{unset:?}"
    );
    let loaded = load(
        r#"{"connectors": [{"name": "a", "type": "TEST_ITEMS", "providerConfig": {"baseUrl": "http://x"},
   "webhook": {"verify": "token", "secret": "${HOOK_SECRET}"}}]}"#,
        &[("HOOK_SECRET", "from-the-environment")],
    )
    .expect("valid");
    let webhook = loaded[0].webhook.as_ref().expect("webhook");
    assert_eq!(webhook.secret.expose(), "from-the-environment");
    assert!(
        loaded[0]
            .secret_values()
            .any(|s| s == "from-the-environment")
    );
    assert_eq!(loaded[0].redacted()["webhook"]["secret"], "****");
}
