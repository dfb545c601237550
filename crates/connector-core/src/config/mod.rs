//! Connector configuration: the typed model, its defaults, its JSON Schema, and redaction.
//!
//! Loading and validation live in [`load`]; by the time a [`ConnectorConfig`] exists it is
//! valid, so nothing downstream re-checks ranges or re-parses durations.

mod errors;
mod load;
mod substitute;

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use errors::{ConfigError, ConfigErrors, Location};
pub use load::{
    CONFIG_PATH_VAR, ConfigSource, ENABLED_VAR, Environment, FieldError, PathSegment, env_prefix,
    load, load_for, parse_provider_config,
};

/// The stream every connector writes to unless its config names another.
pub const DEFAULT_OUTPUT_STREAM: &str = "raw-input-signals";

/// One connector instance: universal settings the framework acts on, plus the provider's own.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "Connector")]
pub struct ConnectorConfig {
    /// Unique instance name; it becomes part of Redis keys (as a Cluster hash tag), log
    /// fields and metric labels, so it is limited to letters, digits, `-` and `_`.
    pub name: String,
    /// The provider type, e.g. `NOAA_WEATHER`, `JIRA`, `GITHUB`, `DATADOG`.
    #[serde(rename = "type")]
    pub connector_type: String,
    /// A disabled connector is validated but never polled.
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    /// Time between the starts of two polls, in milliseconds.
    #[serde(default = "defaults::poll_interval_ms")]
    #[schemars(range(min = 1))]
    pub poll_interval_ms: u64,
    /// Upper bound for one HTTP request, including reading the body, in milliseconds.
    #[serde(default = "defaults::request_timeout_ms")]
    #[schemars(range(min = 1))]
    pub request_timeout_ms: u64,
    /// Retries of one request after its first attempt (0 = no retries).
    #[serde(default = "defaults::max_retries")]
    #[schemars(range(max = 100))]
    pub max_retries: u32,
    /// The Redis Stream signals are appended to.
    #[serde(default = "defaults::output_stream")]
    pub output_stream: String,
    /// How long a lease outlives its holder if the holder stops renewing it, in seconds.
    #[serde(default = "defaults::lease_ttl_seconds")]
    #[schemars(range(min = 1))]
    pub lease_ttl_seconds: u64,
    /// Most signals written in one atomic commit; a poll with more commits in chunks.
    #[serde(default = "defaults::commit_batch_size")]
    #[schemars(range(min = 1, max = 100_000))]
    pub commit_batch_size: u32,
    /// Approximate cap on the stream's length (`XADD MAXLEN ~`); absent = unbounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub stream_max_len: Option<u64>,
    /// For snapshot sources: publish an item that left the current set once, as `removed`.
    #[serde(default)]
    pub emit_removals: bool,
    /// Backoff between retries of one request.
    #[serde(default)]
    pub retry_config: RetryConfig,
    /// Settings of the provider named by `type`; each provider documents its own.
    #[serde(default)]
    pub provider_config: Map<String, Value>,
}

impl std::fmt::Debug for ConnectorConfig {
    // `{:?}` of a config ends up in logs sooner or later: print the redacted form.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnectorConfig({})", self.redacted())
    }
}

/// Exponential backoff with jitter, applied per request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryConfig {
    /// Delay before the first retry, in milliseconds; each further retry doubles it.
    #[serde(default = "defaults::base_delay_ms")]
    pub base_delay_ms: u64,
    /// Ceiling for one delay, in milliseconds.
    #[serde(default = "defaults::max_delay_ms")]
    pub max_delay_ms: u64,
    /// Random spread applied to each delay, as a fraction of it (0 to 1), so that many
    /// connectors failing together do not retry in lockstep.
    #[serde(default = "defaults::jitter_ratio")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub jitter_ratio: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            base_delay_ms: defaults::base_delay_ms(),
            max_delay_ms: defaults::max_delay_ms(),
            jitter_ratio: defaults::jitter_ratio(),
        }
    }
}

/// Defaults in one place so the schema, the README and the loader cannot disagree.
pub mod defaults {
    /// Connectors are enabled unless they say otherwise.
    pub fn enabled() -> bool {
        true
    }
    /// One minute: gentle on public APIs.
    pub fn poll_interval_ms() -> u64 {
        60_000
    }
    /// Thirty seconds per request.
    pub fn request_timeout_ms() -> u64 {
        30_000
    }
    /// Three retries per request.
    pub fn max_retries() -> u32 {
        3
    }
    /// `raw-input-signals`.
    pub fn output_stream() -> String {
        super::DEFAULT_OUTPUT_STREAM.to_owned()
    }
    /// Thirty seconds: a crashed instance's connectors move within half a minute.
    pub fn lease_ttl_seconds() -> u64 {
        30
    }
    /// 500 signals per atomic commit.
    pub fn commit_batch_size() -> u32 {
        500
    }
    /// One second before the first retry.
    pub fn base_delay_ms() -> u64 {
        1_000
    }
    /// Thirty seconds at most between retries.
    pub fn max_delay_ms() -> u64 {
        30_000
    }
    /// ±20 % spread.
    pub fn jitter_ratio() -> f64 {
        0.2
    }
}

impl ConnectorConfig {
    /// A config with every default, for tests and programmatic use.
    pub fn new(name: impl Into<String>, connector_type: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            connector_type: connector_type.into(),
            enabled: defaults::enabled(),
            poll_interval_ms: defaults::poll_interval_ms(),
            request_timeout_ms: defaults::request_timeout_ms(),
            max_retries: defaults::max_retries(),
            output_stream: defaults::output_stream(),
            lease_ttl_seconds: defaults::lease_ttl_seconds(),
            commit_batch_size: defaults::commit_batch_size(),
            stream_max_len: None,
            emit_removals: false,
            retry_config: RetryConfig::default(),
            provider_config: Map::new(),
        }
    }

    /// The poll interval as a `Duration`.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// The per-request timeout as a `Duration`.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The lease TTL as a `Duration`.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl_seconds)
    }

    /// The config as JSON with every secret-looking provider field replaced by `****`:
    /// the only form in which a config may be printed or logged.
    pub fn redacted(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(provider) = value.get_mut("providerConfig") {
            redact(provider);
        }
        value
    }
}

/// Field names that hold credentials. Matching is on the lower-cased name, so `apiToken`,
/// `DD_API_KEY` and `clientSecret` are all caught; the cost of a false positive is only a
/// hidden value in `validate` output.
const SECRET_MARKERS: [&str; 7] = [
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "credential",
    "authorization",
];

/// Whether a provider field's name marks its value as a secret.
pub fn is_secret_field(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_MARKERS.iter().any(|m| lower.contains(m))
}

/// Replaces, in place and at any depth, the values of secret-looking fields with `****`.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_secret_field(k) && !v.is_null() {
                    *v = Value::String("****".into());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The top level of `connectors.json`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "connectors.json")]
pub struct ConfigFile {
    /// Every connector instance this deployment knows about.
    pub connectors: Vec<ConnectorConfig>,
}

/// JSON Schema of `connectors.json`, with each registered provider's `providerConfig`
/// schema attached through `if type == X then ...`, so editors check provider fields too.
pub fn json_schema(providers: &[(&str, Value)]) -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(ConfigFile)).unwrap_or_default();
    // `$schema`, `$id`-less: editors accept it as is.
    let conditionals: Vec<Value> = providers
        .iter()
        .map(|(ty, provider_schema)| {
            serde_json::json!({
                "if": { "properties": { "type": { "const": ty } } },
                "then": { "properties": { "providerConfig": provider_schema } }
            })
        })
        .collect();
    let types: Vec<&str> = providers.iter().map(|(ty, _)| *ty).collect();
    if let Some(connector) = schema.pointer_mut("/$defs/ConnectorConfig") {
        if !conditionals.is_empty() {
            connector["allOf"] = Value::Array(conditionals);
        }
        if !types.is_empty() {
            connector["properties"]["type"]["enum"] = serde_json::json!(types);
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let mut cfg = ConnectorConfig::new("jira-prod", "JIRA");
        cfg.provider_config = serde_json::json!({
            "baseUrl": "https://x.atlassian.net",
            "apiToken": "s3cr3t",
            "auth": { "password": "hunter2", "user": "me" },
            "DD_API_KEY": "k",
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        let shown = cfg.redacted().to_string();
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(shown.contains("https://x.atlassian.net") && shown.contains("\"me\""));
        assert_eq!(cfg.redacted()["providerConfig"]["DD_API_KEY"], "****");
    }

    #[test]
    fn schema_lists_every_universal_field_and_provider_types() {
        let schema = json_schema(&[("NOAA_WEATHER", serde_json::json!({"type": "object"}))]);
        let props = schema
            .pointer("/$defs/ConnectorConfig/properties")
            .and_then(Value::as_object)
            .expect("connector properties");
        let mut names: Vec<&str> = props.keys().map(String::as_str).collect();
        names.sort_unstable();
        let mut known = load::UNIVERSAL_FIELDS.to_vec();
        known.sort_unstable();
        assert_eq!(
            names, known,
            "the loader's field list and the schema disagree"
        );
        assert_eq!(
            schema.pointer("/$defs/ConnectorConfig/properties/type/enum"),
            Some(&serde_json::json!(["NOAA_WEATHER"]))
        );
    }
}
