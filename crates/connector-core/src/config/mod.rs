//! Connector configuration: the typed model, declared once.
//!
//! Each universal field is declared here, once: its type, its default (`defaults`), its
//! range (`#[schemars(range)]`) and its doc. The JSON Schema that `schema` prints is
//! generated from these declarations, and the loader checks a file against that same
//! schema (`check`), so the two cannot disagree. A provider's `providerConfig` is
//! declared the same way on its own typed config.
//!
//! Files, by concept: [`env`] (the environment as a source), `source` (the file),
//! [`load`] (layering with figment, then checking), `check` (the schema checker),
//! `substitute` (`${VAR}`, `${file:...}`), `provider` (typed provider settings),
//! `secret` (secrets as a type), `positions` (line and column), `errors`.

mod check;
mod env;
mod errors;
pub mod fields;
mod load;
mod positions;
mod provider;
mod resources;
mod schema;
mod secret;
mod source;
mod substitute;
pub mod webhook;

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use env::{CONFIG_PATH_VAR, ENABLED_VAR, Environment, SUPERVISED_VAR, env_prefix};
pub(crate) use errors::closest as closest_name;
pub use errors::{
    ConfigError, ConfigErrors, FieldError, Location, PathSegment, render_field_path, write_problems,
};
pub use load::{load, load_for};
pub use provider::{
    Expanded, ProviderCatalog, ProviderSettings, Reference, References, mask_references,
    parse_provider, schema_of,
};
pub use resources::Resources;
pub use schema::json_schema;
pub use secret::{Headers, REDACTED, Secret, is_shown_header};
pub use source::ConfigSource;

/// The stream every connector writes to unless its config names another.
pub const DEFAULT_OUTPUT_STREAM: &str = "raw-input-signals";

/// One connector instance: universal settings the framework acts on, plus the provider's own.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "Connector")]
pub struct ConnectorConfig {
    /// Unique instance name; it becomes part of Redis keys (as a Cluster hash tag), log
    /// fields and metric labels, so it is limited to letters, digits, `-` and `_`.
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z0-9_-]+$"),
        extend("format" = "connector-name", "x-expected" = "a name of 1 to 64 letters, digits, '-' or '_' (it becomes part of Redis keys and metric labels)")
    )]
    pub name: String,
    /// The provider type, e.g. `NOAA_WEATHER`, `JIRA`, `GITHUB`, `DATADOG`.
    #[serde(rename = "type")]
    #[schemars(extend("x-expected" = "a connector type name such as \"NOAA_WEATHER\""))]
    pub connector_type: String,
    /// A disabled connector is validated but never polled.
    #[serde(default = "defaults::enabled")]
    pub enabled: bool,
    /// Time between the starts of two polls, in milliseconds (at least 100: a tighter
    /// loop is a mistake, not a poll, and public APIs ban for it).
    #[serde(default = "defaults::poll_interval_ms")]
    #[schemars(range(min = 100), extend("x-unit" = "milliseconds"))]
    pub poll_interval_ms: u64,
    /// Upper bound for one HTTP request, including reading the body, in milliseconds.
    #[serde(default = "defaults::request_timeout_ms")]
    #[schemars(range(min = 1), extend("x-unit" = "milliseconds"))]
    pub request_timeout_ms: u64,
    /// Retries of one request after its first attempt (0 = no retries).
    #[serde(default = "defaults::max_retries")]
    #[schemars(range(max = 100))]
    pub max_retries: u32,
    /// The Redis Stream signals are appended to.
    #[serde(default = "defaults::output_stream")]
    #[schemars(length(min = 1), extend("format" = "non-blank", "x-expected" = "a non-empty stream name"))]
    pub output_stream: String,
    /// How long a lease outlives its holder if the holder stops renewing it, in seconds.
    #[serde(default = "defaults::lease_ttl_seconds")]
    #[schemars(range(min = 1, max = 86_400), extend("x-unit" = "seconds"))]
    pub lease_ttl_seconds: u64,
    /// Most signals written in one atomic commit; a poll with more commits in chunks.
    #[serde(default = "defaults::commit_batch_size")]
    #[schemars(range(min = 1, max = 100_000))]
    pub commit_batch_size: u32,
    /// Approximate cap on the stream's length (`XADD MAXLEN ~`); absent = unbounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("x-expected" = "a whole number greater than 0, or null for no cap"))]
    pub stream_max_len: Option<u64>,
    /// Most new or changed items one poll publishes. The read stops at the page where the
    /// cap is reached; the rest follow in the next polls, and a capped read prunes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_items_per_poll: Option<u32>,
    /// The API's published limit, for an API that states it in its documentation but not
    /// in its responses: the connector's rate budget (shared by every connector sending
    /// under the same credential) paces requests to it when no response said otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateCeiling>,
    /// A record that fails to parse (or to become a signal) in this many polls in a row is
    /// skipped for good (with an error log, counted as `stage="poisoned"`), so it cannot
    /// hold its stream's watermark forever.
    #[serde(default = "defaults::poison_after_polls")]
    #[schemars(range(min = 1, max = 1000))]
    pub poison_after_polls: u32,
    /// For snapshot sources: publish an item that left the current set once, as `removed`
    /// (after `removalGracePolls` complete reads without it).
    #[serde(default)]
    pub emit_removals: bool,
    /// For snapshot sources without `emitRemovals`: how long a missing item's version is
    /// kept, so an item a response dropped once and that comes back unchanged is not
    /// published again. 0 forgets it at once.
    #[serde(default = "defaults::removal_grace_ms")]
    #[schemars(range(max = 2_592_000_000_u64))]
    pub removal_grace_ms: u64,
    /// For snapshot sources with `emitRemovals`: in how many complete reads in a row an item
    /// must be missing before it is published as `removed`.
    #[serde(default = "defaults::removal_grace_polls")]
    #[schemars(range(min = 1, max = 100))]
    pub removal_grace_polls: u32,
    /// Backoff between retries of one request.
    #[serde(default)]
    pub retry_config: RetryConfig,
    /// Settings of the provider named by `type`; each provider documents its own.
    #[serde(default)]
    pub provider_config: ProviderSettings,
    /// Signed webhooks that make this connector poll now (`POST /webhooks/{name}`); off
    /// without this block. A webhook never publishes anything itself: polling stays the
    /// source of truth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<webhook::WebhookConfig>,
}

/// A published rate limit: `requests` per `perSeconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateCeiling {
    /// Requests allowed per window.
    #[schemars(range(min = 1, max = 100_000_000))]
    pub requests: u32,
    /// The window, in seconds.
    #[schemars(range(min = 1, max = 86_400))]
    pub per_seconds: u32,
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
    #[schemars(range(max = 3_600_000), extend("x-unit" = "milliseconds"))]
    pub base_delay_ms: u64,
    /// Ceiling for one delay, in milliseconds.
    #[serde(default = "defaults::max_delay_ms")]
    #[schemars(range(max = 3_600_000), extend("x-unit" = "milliseconds"))]
    pub max_delay_ms: u64,
    /// Random spread applied to each delay, as a fraction of it (0 to 1), so that many
    /// connectors failing together do not retry in lockstep.
    #[serde(default = "defaults::jitter_ratio")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub jitter_ratio: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({}))
            .unwrap_or_else(|e| unreachable!("every retry field has a default: {e}"))
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
    /// Ten seconds per request: at a stop no request is retried, so the one in flight ends
    /// well inside the runtime's default 25 s shutdown grace period.
    pub fn request_timeout_ms() -> u64 {
        10_000
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
    /// Three polls: a record broken by a passing glitch gets two more chances.
    pub fn poison_after_polls() -> u32 {
        3
    }
    /// A day: a vanished item that returns unchanged within it publishes nothing.
    pub fn removal_grace_ms() -> u64 {
        86_400_000
    }
    /// Two complete reads: one response dropping an item is not a removal.
    pub fn removal_grace_polls() -> u32 {
        2
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
    ///
    /// Built through serde so the defaults are the declared ones: a new field needs no
    /// line here.
    pub fn new(name: impl Into<String>, connector_type: impl Into<String>) -> Self {
        let value = serde_json::json!({ "name": name.into(), "type": connector_type.into() });
        serde_json::from_value(value)
            .unwrap_or_else(|e| unreachable!("every field but name and type has a default: {e}"))
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

    /// Every value this connector sends as a credential (typed secrets, values from
    /// `${VAR}` and `${file:…}`), for the redactor that masks them where echoed.
    pub fn secret_values(&self) -> impl Iterator<Item = &str> {
        let webhook = self.webhook.as_ref().map(|w| w.secret.expose());
        self.provider_config.secrets().chain(webhook)
    }

    /// The config as JSON with every secret hidden (by type: see [`Secret`]): the only
    /// form in which a config may be printed or logged.
    pub fn redacted(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The same config with `providerConfig` given as JSON, to be parsed by the provider's
    /// factory when the connector is built (tests and programmatic use; the loader parses
    /// it at load instead).
    pub fn with_provider_config(mut self, settings: Value) -> Self {
        if let Value::Object(map) = settings {
            self.provider_config = ProviderSettings::raw(map);
        }
        self
    }
}

/// The top level of `connectors.json`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "connectors.json")]
pub struct ConfigFile {
    /// The JSON Schema this file follows, for editors (the file `schema` prints).
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// A note for people; ignored.
    #[serde(rename = "$comment", default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Every connector instance this deployment knows about.
    pub connectors: Vec<ConnectorConfig>,
}
