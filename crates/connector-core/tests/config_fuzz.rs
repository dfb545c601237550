//! Whatever the file and the environment hold, loading returns a config or errors: it
//! never panics (input from outside must never crash a process).

use std::path::PathBuf;

use connector_core::config::{ConfigSource, Environment};
use connector_core::testing::items::ItemsProvider;
use connector_core::{ConnectorRegistry, Factories};
use proptest::prelude::*;
use serde_json::{Map, Value};

const FIELDS: [&str; 22] = [
    "name",
    "type",
    "enabled",
    "pollIntervalMs",
    "requestTimeoutMs",
    "maxRetries",
    "outputStream",
    "leaseTtlSeconds",
    "commitBatchSize",
    "streamMaxLen",
    "emitRemovals",
    "removalGraceMs",
    "removalGracePolls",
    "retryConfig",
    "providerConfig",
    "baseDelayMs",
    "maxDelayMs",
    "jitterRatio",
    "baseUrl",
    "path",
    "apiToken",
    "limit",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("${".to_owned()),
        Just("${X}".to_owned()),
        Just("${X:-http://d}".to_owned()),
        Just("${file:/nonexistent}".to_owned()),
        Just("$${X}".to_owned()),
        Just("TEST_ITEMS".to_owned()),
        Just("http://127.0.0.1:1".to_owned()),
        Just("a".to_owned()),
        "[a-zA-Z0-9_${}:/.,\\- ]{0,12}",
        any::<String>(),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text().prop_map(Value::String),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS.to_vec()), inner), 0..8).prop_map(
                |pairs| {
                    Value::Object(
                        pairs
                            .into_iter()
                            .map(|(k, v)| (k.to_owned(), v))
                            .collect::<Map<_, _>>(),
                    )
                }
            ),
        ]
    })
}

fn file() -> impl Strategy<Value = String> {
    prop_oneof![
        json().prop_map(|connectors| serde_json::json!({ "connectors": [connectors] }).to_string()),
        prop::collection::vec(json(), 0..4)
            .prop_map(|list| serde_json::json!({ "connectors": list }).to_string()),
        json().prop_map(|v| v.to_string()),
        any::<String>(),
    ]
}

fn environment() -> impl Strategy<Value = Vec<(String, String)>> {
    let names = prop_oneof![
        Just("ENABLED_CONNECTORS".to_owned()),
        Just("X".to_owned()),
        Just("CONNECTOR_A_TYPE".to_owned()),
        Just("CONNECTOR_B_TYPE".to_owned()),
        "CONNECTOR_(A|B|A_B)_[A-Z_]{0,20}",
    ];
    prop::collection::vec((names, text()), 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn loading_never_panics(file in file(), env in environment()) {
        let mut factories = Factories::new();
        factories.register::<ItemsProvider>();
        let source = ConfigSource::Text { name: PathBuf::from("connectors.json"), text: file };
        let env = Environment::from_pairs(env);
        let _ = ConnectorRegistry::load(&source, &env, &factories);
        let _ = ConnectorRegistry::load(&ConfigSource::EnvOnly, &env, &factories);
    }
}
