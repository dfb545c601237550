//! The NOAA provider with a larger body cap, so one poll can read 100,000 alerts.
//!
//! `connector_noaa::NoaaProvider` reads through an `HttpClient` with the default cap of
//! `connector_core::http::DEFAULT_MAX_BODY_BYTES` (64 MiB), and a 100,000-alert collection
//! is about 150 MB: the real provider refuses it (`TooLarge`, measured by the bench as a
//! finding). [`BenchNoaa`] is `NoaaProvider::new` line for line with the cap raised: the
//! same `NoaaConfig`, the same `NoaaClient` (request, parsing, filtering), the same
//! `Alert` key and `alert_signal` transform, under the same generic pipeline.

use connector_core::config::FieldError;
use connector_core::http::HttpClient;
use connector_core::pipeline::{CreateError, FetchError, FetchOutcome};
use connector_core::{
    Change, ConnectorConfig, Cursor, ItemKey, Provider, RawSignal, SignalContext,
};
use connector_noaa::NoaaConfig;
use connector_noaa::client::NoaaClient;
use connector_noaa::schema::{Alert, alert_signal};

/// The body cap of [`BenchNoaa`]: room for 100,000 alerts and more.
pub const BENCH_MAX_BODY_BYTES: usize = 1 << 30;

/// `NOAA_WEATHER` with a 1 GiB body cap; otherwise `connector_noaa::NoaaProvider`.
pub struct BenchNoaa {
    client: NoaaClient,
}

impl Provider for BenchNoaa {
    const TYPE: &'static str = "NOAA_WEATHER";
    const SOURCE: &'static str = "noaa";
    const KIND: &'static str = "weather_alert";
    const SNAPSHOT: bool = true;
    type Config = NoaaConfig;
    type Item = Alert;

    fn check(config: &NoaaConfig) -> Vec<FieldError> {
        config.problems()
    }

    fn new(config: NoaaConfig, common: &ConnectorConfig) -> Result<Self, CreateError> {
        let http = HttpClient::builder(config.base_url.clone())
            .accept("application/geo+json")
            .user_agent(config.user_agent())
            .connector_settings(common)
            .max_body_bytes(BENCH_MAX_BODY_BYTES)
            .build()
            .map_err(|e| CreateError(e.to_string()))?;
        let mut first = http
            .url(&config.alerts_path)
            .map_err(|e| CreateError(format!("alertsPath: {e}")))?;
        first.query_pairs_mut().extend_pairs(config.query());
        let actual_only = config.status.eq_ignore_ascii_case("actual");
        let max = config.max_alerts_per_poll.map(|m| m as usize);
        let snapshot = config.alerts_path.starts_with("/alerts/active");
        Ok(Self {
            client: NoaaClient::new(http, first, max, actual_only, snapshot),
        })
    }

    async fn fetch(&self, cursor: &Cursor) -> Result<FetchOutcome<Alert>, FetchError> {
        self.client.fetch_alerts(cursor).await
    }

    fn key<'a>(&self, item: &'a Alert) -> ItemKey<'a> {
        item.key()
    }

    fn transform(
        &self,
        item: &Alert,
        _key: &ItemKey<'_>,
        change: Change,
        ctx: &SignalContext<'_>,
    ) -> Result<RawSignal, String> {
        Ok(alert_signal(item, change, ctx, Self::TYPE))
    }
}
