//! Logs, traces and Prometheus metrics.
//!
//! Each event of interest (a poll finished, a lease changed hands, a reload) is one
//! function here that writes its metric, so the worker calls one thing per event and the
//! metric names live in one place. Labels come from fixed sets: the connector name (from
//! validated config), an outcome or a stage, never an error message.

use std::sync::Arc;
use std::time::Duration;

use connector_core::PollSummary;
use connector_core::pipeline::PollError;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How a poll ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    /// Completed, with or without new signals.
    success,
    /// The server said 304.
    not_modified,
    /// Fetch, transform or backend failure.
    failure,
    /// The lease had moved: nothing written.
    fenced,
    /// The lease was lost while the poll ran; it was cancelled.
    cancelled,
}

/// Where an item went in the pipeline.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Stage {
    /// Returned by the provider.
    fetched,
    /// Committed to the stream.
    published,
    /// Version already recorded.
    skipped_unchanged,
    /// Left a snapshot.
    removed,
    /// Could not be transformed.
    failed,
    /// Failed in too many polls: skipped for good, so the stream moves on.
    poisoned,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PollLabels {
    connector: String,
    outcome: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ItemLabels {
    connector: String,
    stage: Stage,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectorLabel {
    connector: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    connector: String,
    reason: String,
}

/// Polls in a row whose reads ended early without publishing anything, after which a
/// connector counts as unhealthy (a deliberate `maxItemsPerPoll` throttle publishes, so it
/// is progress).
pub const STALLED_PARTIAL_POLLS: u32 = 3;

/// How a connector's reads ended lately, for `/health/connectors`.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadHealth {
    /// The last poll's partial reads (and full pages without a next link), by reason.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub partial_reads: std::collections::BTreeMap<&'static str, u64>,
    /// Polls in a row with a partial read, nothing published and no watermark or resume
    /// point moved.
    pub stalled_polls: u32,
    /// The last poll's records whose time could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable_times: Option<connector_core::ports::UnreadableTimes>,
    /// Why the last poll failed, and when (none after a success): the reason an operator
    /// looks for behind "unhealthy".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
}

/// A failed poll's error and time.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    /// The error as logged (masked like every output).
    pub message: String,
    /// When the poll failed (RFC 3339).
    pub at: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    connector: String,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    outcome: &'static str,
}

/// How late scheduled polls start, for the whole process: 1 ms to ~8 s.
fn start_lag_histogram(r: &mut Registry) -> Histogram {
    let start_lag = Histogram::new(exponential_buckets(0.001, 2.0, 14));
    r.register(
        "connector_poll_start_lag_seconds",
        "How late scheduled polls start after their tick was due (a turn among the polls in flight included), all connectors of the process",
        start_lag.clone(),
    );
    start_lag
}

/// The duration of completed polls, by connector.
fn duration_histograms(r: &mut Registry) -> Family<ConnectorLabel, Histogram, fn() -> Histogram> {
    let duration = Family::<ConnectorLabel, Histogram, fn() -> Histogram>::new_with_constructor(
        poll_histogram,
    );
    r.register(
        "connector_poll_duration_seconds",
        "Duration of completed polls",
        duration.clone(),
    );
    duration
}

fn poll_histogram() -> Histogram {
    // 5 ms to ~40 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// The process's Prometheus metrics.
pub struct Metrics {
    registry: Registry,
    polls: Family<PollLabels, Counter>,
    items: Family<ItemLabels, Counter>,
    duration: Family<ConnectorLabel, Histogram, fn() -> Histogram>,
    last_success: Family<ConnectorLabel, Gauge>,
    lease_held: Family<ConnectorLabel, Gauge>,
    http: Family<HttpLabels, Counter>,
    reloads: Family<ReloadLabels, Counter>,
    provider: Family<GaugeLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    data_loss: Family<ConnectorLabel, Counter>,
    wait_shortfalls: Family<ConnectorLabel, Counter>,
    partial_reads: Family<ReasonLabels, Counter>,
    unreadable_times: Family<ConnectorLabel, Counter>,
    /// How late polls start after their tick was due, for the whole process (one series,
    /// not one per connector: a worker runs thousands).
    start_lag: Histogram,
    /// Webhooks, wakes and their latency.
    pub(crate) webhooks: crate::wake::WebhookMetrics,
    /// The shared rate budgets this process takes from.
    budgets: BudgetMetrics,
    reads: std::sync::Mutex<std::collections::HashMap<String, ReadHealth>>,
    /// The last fence token seen per connector, and the last time the counter went back.
    fences: std::sync::Mutex<Fences>,
    /// `None` without OTLP export.
    otel: Option<OtelInstruments>,
}

#[derive(Default)]
struct Fences {
    last: std::collections::HashMap<String, u64>,
    lost: Option<DataLoss>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabel {
    budget: String,
}

/// The rate budgets' figures, per budget (its HMAC's first characters).
struct BudgetMetrics {
    remaining: Family<BudgetLabel, Gauge>,
    waits: Family<BudgetLabel, Counter>,
    holds: Family<BudgetLabel, Counter>,
}

impl BudgetMetrics {
    fn register(r: &mut Registry) -> Self {
        Self {
            remaining: registered(
                r,
                "connector_rate_budget_remaining",
                "Requests left in a shared rate budget's window, as the API last said",
            ),
            waits: registered(
                r,
                "connector_rate_budget_waits",
                "Requests that waited their turn in a shared rate budget (pacing or a hold)",
            ),
            holds: registered(
                r,
                "connector_rate_budget_holds",
                "Responses that asked for a wait (429, Retry-After, a spent quota), per budget",
            ),
        }
    }

    /// Brings the figures up to what the budgets saw.
    fn update(&self, stats: &[connector_core::budget::BudgetStats]) {
        for s in stats {
            let label = BudgetLabel {
                budget: s.budget.clone(),
            };
            if let Some(left) = s.remaining {
                self.remaining
                    .get_or_create(&label)
                    .set(i64::try_from(left).unwrap_or(i64::MAX));
            }
            for (family, total) in [(&self.waits, s.waits), (&self.holds, s.holds)] {
                let counter = family.get_or_create(&label);
                counter.inc_by(total.saturating_sub(counter.get()));
            }
        }
    }
}

/// Redis lost its data: a connector's fence counter went back, or its state holds fewer
/// writes than this process made.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataLoss {
    /// The connector whose lease or state showed it.
    pub connector: String,
    /// When it was seen (RFC 3339).
    pub detected_at: String,
    /// The token before (when the fence showed it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_token: Option<u64>,
    /// The token after (when the fence showed it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<u64>,
    /// The state's write count found (when the state showed it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_writes: Option<u64>,
    /// The write count this process had made (when the state showed it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_writes: Option<u64>,
}

/// A provider gauge's labels: the connector and the gauge's name (from the provider's
/// fixed set).
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct GaugeLabels {
    connector: String,
    name: String,
}

/// The same poll figures as OpenTelemetry instruments, exported over OTLP when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
struct OtelInstruments {
    polls: opentelemetry::metrics::Counter<u64>,
    items: opentelemetry::metrics::Counter<u64>,
    duration: opentelemetry::metrics::Histogram<f64>,
}

/// A completed poll's item counts by stage.
fn stages(s: &PollSummary) -> [(Stage, u64); 6] {
    [
        (Stage::fetched, s.fetched),
        (Stage::published, s.published),
        (Stage::skipped_unchanged, s.skipped_unchanged),
        (Stage::removed, s.removed),
        (Stage::failed, s.failed),
        (Stage::poisoned, s.poisoned),
    ]
}

impl OtelInstruments {
    /// One poll's figures, as [`Metrics::poll_finished`] counts them for Prometheus.
    fn record(
        &self,
        connector: &str,
        outcome: Outcome,
        result: Option<&Result<PollSummary, PollError>>,
        took: Duration,
    ) {
        use opentelemetry::KeyValue;
        let who = KeyValue::new("connector", connector.to_owned());
        let said = KeyValue::new("outcome", format!("{outcome:?}"));
        self.polls.add(1, &[who.clone(), said]);
        if let Some(Ok(s)) = result {
            let took = took.as_secs_f64();
            self.duration.record(took, std::slice::from_ref(&who));
            for (stage, n) in stages(s) {
                let at = KeyValue::new("stage", format!("{stage:?}"));
                self.items.add(n, &[who.clone(), at]);
            }
        }
    }

    fn new(meter: &opentelemetry::metrics::Meter) -> Self {
        Self {
            polls: meter
                .u64_counter("connector.polls")
                .with_description("Polls by outcome")
                .build(),
            items: meter
                .u64_counter("connector.items")
                .with_description("Items by pipeline stage")
                .build(),
            duration: meter
                .f64_histogram("connector.poll.duration")
                .with_unit("s")
                .with_description("Duration of completed polls")
                .build(),
        }
    }
}

/// A metric of its own kind, registered under `name` with `help`.
fn registered<M>(registry: &mut Registry, name: &str, help: &str) -> M
where
    M: prometheus_client::registry::Metric + Clone + Default,
{
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    /// Registers every metric (documented in the README under "Metrics"); with `otlp`, the
    /// poll figures are also recorded through that meter.
    pub fn new(otlp: Option<&opentelemetry::metrics::Meter>) -> Arc<Self> {
        let mut registry = Registry::default();
        let r = &mut registry;
        let partial_reads: Family<ReasonLabels, Counter> = registered(
            r,
            "connector_partial_reads",
            "Reads that ended before their documented end, by reason (page_cap, item_cap, foreign_link, link_unresolvable), and full pages without a next link (full_page_no_next)",
        );
        let unreadable_times: Family<ConnectorLabel, Counter> = registered(
            r,
            "connector_unreadable_times",
            "Records published whose time field could not be read (the watermark cannot move on them)",
        );
        let wait_shortfalls: Family<ConnectorLabel, Counter> = registered(
            r,
            "connector_redis_wait_shortfalls",
            "Commits acknowledged by fewer replicas than REDIS_WAIT_REPLICAS asks (the poll stopped there)",
        );
        let data_loss: Family<ConnectorLabel, Counter> = registered(
            r,
            "connector_redis_data_loss",
            "Times Redis was seen to have lost a connector's data (its fence counter went back, or its state holds fewer writes than were made); what it lacks is published again",
        );
        let provider: Family<GaugeLabels, Gauge<f64, std::sync::atomic::AtomicU64>> = registered(
            r,
            "connector_provider_gauge",
            "Gauges a provider reports after each poll (e.g. name=\"rate_limit_remaining\")",
        );
        let polls: Family<PollLabels, Counter> =
            registered(r, "connector_polls", "Polls by outcome");
        let items: Family<ItemLabels, Counter> =
            registered(r, "connector_items", "Items by pipeline stage");
        let duration = duration_histograms(r);
        let last_success: Family<ConnectorLabel, Gauge> = registered(
            r,
            "connector_last_success_timestamp_seconds",
            "UNIX time of the last successful poll",
        );
        let lease_held: Family<ConnectorLabel, Gauge> = registered(
            r,
            "connector_lease_held",
            "1 while this process holds the connector's lease",
        );
        let http: Family<HttpLabels, Counter> = registered(
            r,
            "connector_http_requests",
            "HTTP requests to providers by status (\"error\" for timeouts and connection failures)",
        );
        let reloads: Family<ReloadLabels, Counter> =
            registered(r, "connector_config_reloads", "Config reloads by outcome");
        let webhooks = crate::wake::WebhookMetrics::register(r);
        let budgets = BudgetMetrics::register(r);
        let start_lag = start_lag_histogram(r);
        Arc::new(Self {
            start_lag,
            webhooks,
            budgets,
            registry,
            polls,
            items,
            duration,
            last_success,
            lease_held,
            http,
            reloads,
            provider,
            data_loss,
            wait_shortfalls,
            partial_reads,
            unreadable_times,
            reads: std::sync::Mutex::default(),
            fences: std::sync::Mutex::default(),
            otel: otlp.map(OtelInstruments::new),
        })
    }

    /// A lease was taken with fence `token`. Fence counters only grow, so a token not
    /// above the last one this process saw means Redis lost its data (restarted empty,
    /// flushed, or failed over to an empty replica): returns the previous token then.
    pub fn fence_observed(&self, connector: &str, token: u64) -> Option<u64> {
        let mut fences = self
            .fences
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let previous = fences.last.insert(connector.to_owned(), token)?;
        if token > previous {
            return None;
        }
        fences.lost = Some(DataLoss {
            connector: connector.to_owned(),
            detected_at: connector_core::signal::rfc3339_millis(connector_core::pipeline::now_ms()),
            previous_token: Some(previous),
            token: Some(token),
            stored_writes: None,
            written_writes: None,
        });
        drop(fences);
        self.count_data_loss(connector);
        Some(previous)
    }

    /// A connector's state held fewer writes than this process made (the pipeline said
    /// it, and republishes what was lost).
    pub fn state_loss_observed(&self, connector: &str, loss: connector_core::ports::StateLoss) {
        self.fences
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .lost = Some(DataLoss {
            connector: connector.to_owned(),
            detected_at: connector_core::signal::rfc3339_millis(connector_core::pipeline::now_ms()),
            previous_token: None,
            token: None,
            stored_writes: Some(loss.stored),
            written_writes: Some(loss.written),
        });
        self.count_data_loss(connector);
    }

    /// Records how a successful poll's reads ended: partial reads by reason, unreadable
    /// times, and whether the connector is stalled on partial reads.
    fn reads_finished(&self, connector: &str, summary: &PollSummary) {
        use connector_core::ports::PartialReason;
        for (reason, n) in &summary.partial_reads {
            self.partial_reads
                .get_or_create(&ReasonLabels {
                    connector: connector.to_owned(),
                    reason: reason.label().to_owned(),
                })
                .inc_by(*n);
        }
        if let Some(u) = &summary.unreadable_times {
            self.unreadable_times
                .get_or_create(&ConnectorLabel {
                    connector: connector.to_owned(),
                })
                .inc_by(u.count);
        }
        let partial = summary
            .partial_reads
            .keys()
            .any(|r| *r != PartialReason::FullPageNoNext);
        let mut reads = self
            .reads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let health = reads.entry(connector.to_owned()).or_default();
        health.stalled_polls = if partial && summary.published == 0 && !summary.progressed {
            health.stalled_polls + 1
        } else {
            0
        };
        health.partial_reads = summary
            .partial_reads
            .iter()
            .map(|(r, n)| (r.label(), *n))
            .collect();
        health.unreadable_times = summary.unreadable_times.clone();
        health.last_error = None;
    }

    /// A poll of `connector` failed with `error`.
    fn poll_failed(&self, connector: &str, error: &PollError) {
        let mut reads = self
            .reads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        reads.entry(connector.to_owned()).or_default().last_error = Some(LastError {
            message: error.to_string(),
            at: connector_core::signal::rfc3339_millis(connector_core::pipeline::now_ms()),
        });
    }

    /// How a connector's reads ended lately, when this process ran it.
    pub fn read_health(&self, connector: &str) -> Option<ReadHealth> {
        self.reads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(connector)
            .cloned()
    }

    /// A commit had fewer replica acknowledgements than asked.
    pub fn wait_shortfall(&self, connector: &str) {
        self.wait_shortfalls
            .get_or_create(&ConnectorLabel {
                connector: connector.to_owned(),
            })
            .inc();
    }

    fn count_data_loss(&self, connector: &str) {
        self.data_loss
            .get_or_create(&ConnectorLabel {
                connector: connector.to_owned(),
            })
            .inc();
    }

    /// The last sign that Redis lost its data, if any since this process started.
    pub fn data_loss(&self) -> Option<DataLoss> {
        self.fences
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .lost
            .clone()
    }

    /// A provider's gauges after a poll.
    pub fn provider_gauges(&self, connector: &str, gauges: &[(&'static str, f64)]) {
        for (name, value) in gauges {
            self.provider
                .get_or_create(&GaugeLabels {
                    connector: connector.to_owned(),
                    name: (*name).to_owned(),
                })
                .set(*value);
        }
    }

    /// A scheduled poll starts `late` after its tick was due.
    pub fn poll_started_late(&self, late: Duration) {
        self.start_lag.observe(late.as_secs_f64());
    }

    /// A poll ended.
    pub fn poll_finished(
        &self,
        connector: &str,
        result: Option<&Result<PollSummary, PollError>>,
        took: Duration,
        now_s: i64,
    ) {
        let outcome = match result {
            Some(Ok(s)) if s.not_modified => Outcome::not_modified,
            Some(Ok(_)) => Outcome::success,
            Some(Err(PollError::Fenced { .. })) => Outcome::fenced,
            Some(Err(_)) => Outcome::failure,
            None => Outcome::cancelled,
        };
        self.polls
            .get_or_create(&PollLabels {
                connector: connector.to_owned(),
                outcome,
            })
            .inc();
        if let Some(otel) = &self.otel {
            otel.record(connector, outcome, result, took);
        }
        if let Some(Err(e)) = result
            && !matches!(e, PollError::Fenced { .. })
        {
            self.poll_failed(connector, e);
        }
        if let Some(Ok(s)) = result {
            self.reads_finished(connector, s);
            let label = ConnectorLabel {
                connector: connector.to_owned(),
            };
            self.duration
                .get_or_create(&label)
                .observe(took.as_secs_f64());
            self.last_success.get_or_create(&label).set(now_s);
            for (stage, n) in stages(s) {
                self.items
                    .get_or_create(&ItemLabels {
                        connector: connector.to_owned(),
                        stage,
                    })
                    .inc_by(n);
            }
        }
    }

    /// The lease was taken (true) or given up / lost (false).
    pub fn lease_changed(&self, connector: &str, held: bool) {
        self.lease_held
            .get_or_create(&ConnectorLabel {
                connector: connector.to_owned(),
            })
            .set(i64::from(held));
    }

    /// An HTTP attempt to a provider finished.
    pub fn http_response(&self, connector: &str, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.http
            .get_or_create(&HttpLabels {
                connector: connector.to_owned(),
                status,
            })
            .inc();
    }

    /// A SIGHUP reload was applied or refused.
    pub fn reloaded(&self, ok: bool) {
        self.reloads
            .get_or_create(&ReloadLabels {
                outcome: if ok { "applied" } else { "refused" },
            })
            .inc();
    }

    /// The rate budgets' figures, brought up to date before an exposition.
    pub fn budgets(&self, stats: &[connector_core::budget::BudgetStats]) {
        self.budgets.update(stats);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Keeps the OpenTelemetry pipeline alive; dropping it without [`Telemetry::shutdown`]
/// may lose the last spans.
pub struct Telemetry {
    tracer_provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    meter_provider: Option<opentelemetry_sdk::metrics::SdkMeterProvider>,
}

impl Telemetry {
    /// The meter of the OTLP metric export, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub fn meter(&self) -> Option<opentelemetry::metrics::Meter> {
        use opentelemetry::metrics::MeterProvider;
        let provider = self.meter_provider.as_ref()?;
        Some(provider.meter("connectors"))
    }

    /// Flushes and stops trace and metric export.
    pub fn shutdown(self) {
        if let Some(provider) = self.tracer_provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("OpenTelemetry trace shutdown: {e}");
        }
        if let Some(provider) = self.meter_provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("OpenTelemetry metrics shutdown: {e}");
        }
    }
}

/// Standard error, with every credential the process knows masked in each line: an API
/// that echoes a token back must not get it into the logs.
struct Scrubbed(
    connector_core::redact::Redactor,
    Option<std::sync::Arc<str>>,
);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Scrubbed {
    type Writer = ScrubbedLine;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbedLine {
            redactor: self.0.clone(),
            child: self.1.clone(),
            line: Vec::with_capacity(256),
        }
    }
}

/// One event's text, collected whole (a secret split across two writes would escape a
/// per-write scrub) and written scrubbed when the event is done; a supervised child's
/// lines name it (`[name] …`, or a `"child"` field in JSON).
struct ScrubbedLine {
    redactor: connector_core::redact::Redactor,
    child: Option<std::sync::Arc<str>>,
    line: Vec<u8>,
}

/// `text` (any number of lines, not a log event) as the child `child` writes it to the
/// standard error it shares with the supervisor and its other children: each line
/// `[name] …`, like its log lines.
pub(crate) fn said_by(child: Option<&str>, text: &str) -> String {
    match child {
        None => text.to_owned(),
        Some(name) => text
            .lines()
            .map(|l| format!("[{name}] {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// `text` as the child `child` writes it.
fn named(child: Option<&str>, text: String) -> String {
    match child {
        None => text,
        Some(name) => match text.strip_prefix('{') {
            Some(rest) => {
                let field = serde_json::to_string(name).unwrap_or_default();
                format!("{{\"child\":{field},{rest}")
            }
            None => format!("[{name}] {text}"),
        },
    }
}

impl std::io::Write for ScrubbedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ScrubbedLine {
    fn drop(&mut self) {
        use std::io::Write as _;
        let text = named(self.child.as_deref(), self.redactor.scrub_bytes(&self.line));
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// Logs go to standard error, so standard output carries only signals and command output.
/// `LOG_FORMAT=json` for machine-readable lines; `RUST_LOG` sets levels (default `info`).
/// `RUST_LOG` with fred's "Broadcasting error" warnings kept to errors: fred logs one for
/// every connection its reader task loses, before the backend reconnects and says so in
/// its own words. A filter that names fred itself is left as written.
fn quieted(filter: &str) -> String {
    if filter.contains("fred") {
        filter.to_owned()
    } else {
        format!("{filter},fred::router::responses=error")
    }
}

/// With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans and the poll metrics are also exported
/// over OTLP/HTTP (`OTEL_SERVICE_NAME` names the service; default: the binary's name).
pub fn init(service: &str, settings: &crate::settings::Settings) -> Telemetry {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    // Checked in `Settings`, so this cannot fall back silently.
    let filter = EnvFilter::try_new(quieted(&settings.log_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = settings.log_format == crate::settings::LogFormat::Json;
    let service = settings.service_name.as_deref().unwrap_or(service);
    let otlp = settings.otlp.is_some();
    // Every line passes the redactor on its way out, whatever its level or format.
    let writer = Scrubbed(
        settings.redactor.clone(),
        settings.child.as_deref().map(std::sync::Arc::from),
    );
    let fmt_layer = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(writer)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(writer)
            .boxed()
    };
    let (otel_layer, tracer_provider) = match otlp
        .then(|| otlp_tracer(service, settings.redactor.clone()))
        .flatten()
    {
        Some((layer, provider)) => (Some(layer), Some(provider)),
        None => (None, None),
    };
    let meter_provider = otlp.then(|| otlp_meter(service)).flatten();
    let _ = tracing_subscriber::registry()
        .with(otel_layer)
        .with(fmt_layer)
        .with(filter)
        .try_init();
    Telemetry {
        tracer_provider,
        meter_provider,
    }
}

fn otel_resource(service: &str) -> opentelemetry_sdk::Resource {
    opentelemetry_sdk::Resource::builder()
        .with_service_name(service.to_owned())
        .build()
}

/// A meter provider exporting over OTLP/HTTP; [`Telemetry::meter`] hands its meter to
/// [`Metrics`].
fn otlp_meter(service: &str) -> Option<opentelemetry_sdk::metrics::SdkMeterProvider> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = match opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but the metric exporter failed: {e}; metrics are not exported"
            );
            return None;
        }
    };
    let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(exporter).build();
    let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(otel_resource(service))
        .build();
    Some(provider)
}

type OtelLayer = tracing_opentelemetry::OpenTelemetryLayer<
    tracing_subscriber::Registry,
    opentelemetry_sdk::trace::Tracer,
>;

/// The OTLP span exporter with every credential the process knows masked in span names,
/// attributes, event names and attributes, and status descriptions, on their way out.
#[derive(Debug)]
struct ScrubbedSpans<E> {
    inner: E,
    redactor: connector_core::redact::Redactor,
}

impl<E: opentelemetry_sdk::trace::SpanExporter> opentelemetry_sdk::trace::SpanExporter
    for ScrubbedSpans<E>
{
    fn export(
        &self,
        mut batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> impl std::future::Future<Output = opentelemetry_sdk::error::OTelSdkResult> + Send {
        for span in &mut batch {
            scrub_span(&self.redactor, span);
        }
        self.inner.export(batch)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

fn scrub_text(
    redactor: &connector_core::redact::Redactor,
    text: &mut std::borrow::Cow<'static, str>,
) {
    if let std::borrow::Cow::Owned(clean) = redactor.scrub(text) {
        *text = std::borrow::Cow::Owned(clean);
    }
}

fn scrub_attributes(
    redactor: &connector_core::redact::Redactor,
    attributes: &mut [opentelemetry::KeyValue],
) {
    let clean = |s: &opentelemetry::StringValue| match redactor.scrub(s.as_str()) {
        std::borrow::Cow::Owned(clean) => Some(opentelemetry::StringValue::from(clean)),
        std::borrow::Cow::Borrowed(_) => None,
    };
    for kv in attributes {
        match &mut kv.value {
            opentelemetry::Value::String(s) => {
                if let Some(c) = clean(s) {
                    *s = c;
                }
            }
            opentelemetry::Value::Array(opentelemetry::Array::String(list)) => {
                for s in list.iter_mut() {
                    if let Some(c) = clean(s) {
                        *s = c;
                    }
                }
            }
            _ => {}
        }
    }
}

/// Masks every credential in one span before it is exported.
fn scrub_span(
    redactor: &connector_core::redact::Redactor,
    span: &mut opentelemetry_sdk::trace::SpanData,
) {
    scrub_text(redactor, &mut span.name);
    scrub_attributes(redactor, &mut span.attributes);
    for event in &mut span.events.events {
        scrub_text(redactor, &mut event.name);
        scrub_attributes(redactor, &mut event.attributes);
    }
    for link in &mut span.links.links {
        scrub_attributes(redactor, &mut link.attributes);
    }
    if let opentelemetry::trace::Status::Error { description } = &mut span.status {
        scrub_text(redactor, description);
    }
}

fn otlp_tracer(
    service: &str,
    redactor: connector_core::redact::Redactor,
) -> Option<(OtelLayer, opentelemetry_sdk::trace::SdkTracerProvider)> {
    use opentelemetry::trace::TracerProvider as _;
    // The exporter's HTTP client is reqwest without a bundled crypto provider, like ours.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but the exporter failed: {e}; traces are not exported"
            );
            return None;
        }
    };
    let exporter = ScrubbedSpans {
        inner: exporter,
        redactor,
    };
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(otel_resource(service))
        .build();
    let tracer = provider.tracer("connectors");
    Some((tracing_opentelemetry::layer().with_tracer(tracer), provider))
}

use tracing_subscriber::Layer as _;

#[cfg(test)]
mod tests {

    #[test]
    fn a_childs_plain_lines_name_it_each() {
        assert_eq!(super::said_by(None, "a\nb"), "a\nb");
        assert_eq!(super::said_by(Some("x"), "a\nb"), "[x] a\n[x] b");
    }

    use super::*;

    #[test]
    fn a_child_names_itself_in_text_and_json_lines() {
        assert_eq!(
            named(Some("x"), "INFO started\n".into()),
            "[x] INFO started\n"
        );
        assert_eq!(
            named(Some("a\"b"), "{\"level\":\"INFO\"}\n".into()),
            "{\"child\":\"a\\\"b\",\"level\":\"INFO\"}\n"
        );
        assert_eq!(named(None, "plain\n".into()), "plain\n");
    }

    #[test]
    fn a_log_line_is_scrubbed_whole_though_written_in_pieces() {
        use std::io::Write as _;
        use tracing_subscriber::fmt::MakeWriter as _;
        let redactor = connector_core::redact::Redactor::new();
        redactor.add("line-s3cret-0010");
        let scrubbed = Scrubbed(redactor, None);
        let mut line = scrubbed.make_writer();
        // The formatter writes a line in several pieces; a secret may straddle two.
        line.write_all(b"WARN poll failed: token line-s3")
            .expect("write");
        line.write_all(b"cret-0010 echoed\n").expect("write");
        let text = line.redactor.scrub_bytes(&line.line);
        assert_eq!(text, "WARN poll failed: token **** echoed\n");
    }

    #[test]
    fn an_exported_span_is_scrubbed_everywhere_a_credential_can_sit() {
        use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
        let redactor = connector_core::redact::Redactor::new();
        redactor.add("otlp-s3cret-0008");
        let secret = |what: &str| format!("{what}: token otlp-s3cret-0008 echoed");
        let mut span = opentelemetry_sdk::trace::SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: secret("name").into(),
            start_time: std::time::SystemTime::UNIX_EPOCH,
            end_time: std::time::SystemTime::UNIX_EPOCH,
            attributes: vec![
                opentelemetry::KeyValue::new("error", secret("attribute")),
                opentelemetry::KeyValue::new(
                    "list",
                    opentelemetry::Value::Array(opentelemetry::Array::String(vec![
                        secret("array item").into(),
                    ])),
                ),
            ],
            dropped_attributes_count: 0,
            events: opentelemetry_sdk::trace::SpanEvents::default(),
            links: opentelemetry_sdk::trace::SpanLinks::default(),
            status: Status::Error {
                description: secret("status").into(),
            },
            instrumentation_scope: opentelemetry::InstrumentationScope::builder("t").build(),
        };
        span.events.events.push(opentelemetry::trace::Event::new(
            secret("event"),
            std::time::SystemTime::UNIX_EPOCH,
            vec![opentelemetry::KeyValue::new(
                "message",
                secret("event attribute"),
            )],
            0,
        ));
        span.links.links.push(opentelemetry::trace::Link::new(
            SpanContext::empty_context(),
            vec![opentelemetry::KeyValue::new(
                "cause",
                secret("link attribute"),
            )],
            0,
        ));
        scrub_span(&redactor, &mut span);
        let shown = format!("{span:?}");
        assert!(!shown.contains("otlp-s3cret"), "{shown}");
        assert_eq!(shown.matches("****").count(), 7, "{shown}");
    }

    #[test]
    fn metrics_render_as_prometheus_text() {
        let m = Metrics::new(None);
        let ok: Result<PollSummary, PollError> = Ok(PollSummary {
            fetched: 3,
            published: 2,
            skipped_unchanged: 1,
            ..PollSummary::default()
        });
        m.poll_finished("w", Some(&ok), Duration::from_millis(20), 1_800_000_000);
        m.lease_changed("w", true);
        m.http_response("w", Some(200));
        m.http_response("w", None);
        m.reloaded(true);
        m.provider_gauges("w", &[("rate_limit_remaining", 4999.0)]);
        let budget = |waits| connector_core::budget::BudgetStats {
            budget: "0a1b2c3d4e5f".into(),
            remaining: Some(41),
            waits,
            holds: 1,
        };
        m.budgets(&[budget(2)]);
        m.budgets(&[budget(3)]);
        let text = m.render();
        for line in [
            "connector_polls_total{connector=\"w\",outcome=\"success\"} 1",
            "connector_items_total{connector=\"w\",stage=\"published\"} 2",
            "connector_items_total{connector=\"w\",stage=\"fetched\"} 3",
            "connector_poll_duration_seconds_count{connector=\"w\"} 1",
            "connector_last_success_timestamp_seconds{connector=\"w\"} 1800000000",
            "connector_lease_held{connector=\"w\"} 1",
            "connector_http_requests_total{connector=\"w\",status=\"200\"} 1",
            "connector_http_requests_total{connector=\"w\",status=\"error\"} 1",
            "connector_config_reloads_total{outcome=\"applied\"} 1",
            "connector_provider_gauge{connector=\"w\",name=\"rate_limit_remaining\"} 4999",
            "connector_rate_budget_remaining{budget=\"0a1b2c3d4e5f\"} 41",
            "connector_rate_budget_waits_total{budget=\"0a1b2c3d4e5f\"} 3",
            "connector_rate_budget_holds_total{budget=\"0a1b2c3d4e5f\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
