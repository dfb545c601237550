//! Webhook wakes inside one process: which connector tasks listen, and when a woken poll
//! is due.
//!
//! A verified webhook reaches every process through the backend's wake channel (Redis
//! pub/sub, or in-process when embedded); [`listen`] hands each to the task of its
//! connector here, if this process runs it. The task polls only while it holds the lease,
//! so a process without it never polls because of a wake. Wakes coalesce (a `Notify`
//! keeps one permit), are spaced by the connector's `minIntervalMs`, wait out a rate-limit
//! hold, and a woken poll that publishes nothing is followed by one settle poll.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use connector_core::Backends;
use connector_core::ports::Wake;
use connector_core::webhook::WebhookConfig;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::telemetry::Metrics;

/// One connector's wake-up: whether a webhook asked for a poll, when the oldest webhook
/// it carries arrived, and the signal to its task. Only a task holding the lease takes
/// wakes (`holding`): a standby's must not poll at once, on a stale wake, when it later
/// takes the lease.
#[derive(Default)]
pub(crate) struct WakeCell {
    notify: Notify,
    woken: std::sync::atomic::AtomicBool,
    holding: std::sync::atomic::AtomicBool,
    /// UNIX ms of the first webhook not yet covered by a poll (0: none).
    received_ms: AtomicU64,
}

/// The connector tasks of this process that listen for wakes, by name.
#[derive(Default)]
pub(crate) struct Wakers {
    cells: RwLock<HashMap<String, Arc<WakeCell>>>,
}

impl Wakers {
    /// The cell connector `name`'s task waits on (the same one across restarts of it).
    pub(crate) fn cell(&self, name: &str) -> Arc<WakeCell> {
        let mut cells = self
            .cells
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cells.entry(name.to_owned()).or_default().clone()
    }

    /// Wakes `wake.connector`'s task, if this process runs it.
    fn wake(&self, wake: &Wake) {
        let cells = self
            .cells
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(cell) = cells
            .get(&wake.connector)
            .filter(|c| c.holding.load(Ordering::SeqCst))
        {
            let _ = cell.received_ms.compare_exchange(
                0,
                wake.received_ms.max(1),
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
            cell.woken.store(true, Ordering::SeqCst);
            cell.notify.notify_one();
        }
    }
}

/// Hands every wake the backend delivers to its connector's task, until `stop`. A
/// subscription that cannot start (Redis away) is tried again; meanwhile webhooks cost
/// latency only.
pub(crate) async fn listen(
    backends: Backends,
    wakers: Arc<Wakers>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut delay = Duration::from_millis(500);
    loop {
        let receiver = tokio::select! {
            () = stop.cancelled() => return,
            r = backends.wakes.listen() => r,
        };
        let mut receiver = match receiver {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for webhook wakes; trying again");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        loop {
            let wake = tokio::select! {
                () = stop.cancelled() => return,
                w = receiver.recv() => w,
            };
            let Some(wake) = wake else { break };
            metrics.webhooks.seen(&wake.connector, wake.received_ms);
            wakers.wake(&wake);
        }
    }
}

/// Why a woken poll runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Woken {
    /// A webhook asked for it.
    Wake,
    /// The woken poll before it published nothing: the API may have lagged its webhook.
    Settle,
}

/// When a connector's next woken poll is due: one per lease held (wakes reach the cell
/// while it lives).
pub(crate) struct WakeSchedule {
    cell: Arc<WakeCell>,
    min_interval: Duration,
    settle: Option<Duration>,
    pending: Option<Instant>,
    settle_at: Option<Instant>,
    last_woken: Option<Instant>,
    /// A failed woken poll was tried again once already.
    retried: bool,
    /// The webhook time the poll in flight covers.
    covering: Option<u64>,
}

impl Drop for WakeSchedule {
    fn drop(&mut self) {
        self.cell.holding.store(false, Ordering::SeqCst);
    }
}

impl WakeSchedule {
    /// The schedule of a connector with `webhook` (never due without one), from now on:
    /// wakes from before the lease was taken are forgotten.
    pub(crate) fn new(cell: Arc<WakeCell>, webhook: Option<&WebhookConfig>) -> Option<Self> {
        let webhook = webhook?;
        cell.woken.store(false, Ordering::SeqCst);
        cell.received_ms.store(0, Ordering::SeqCst);
        cell.holding.store(true, Ordering::SeqCst);
        Some(Self {
            cell,
            min_interval: webhook.min_interval(),
            settle: webhook.settle(),
            pending: None,
            settle_at: None,
            last_woken: None,
            retried: false,
            covering: None,
        })
    }

    /// Waits until a woken poll is due. `hold` says how long a rate-limit hold on the
    /// connector's requests has left: a woken poll due during one waits for its end.
    /// Cancel-safe: what it learnt stays in `self`.
    pub(crate) async fn due(&mut self, hold: impl Fn() -> Option<Duration>) -> Woken {
        loop {
            if self.cell.woken.swap(false, Ordering::SeqCst) {
                let now = Instant::now();
                let spaced = self
                    .last_woken
                    .map_or(now, |l| (l + self.min_interval).max(now));
                self.pending = Some(self.pending.map_or(spaced, |p| p.min(spaced)));
            }
            let (pending, settle_at) = (self.pending, self.settle_at);
            let why = tokio::select! {
                () = self.cell.notify.notified() => continue,
                () = sleep_until(pending) => Woken::Wake,
                () = sleep_until(settle_at) => Woken::Settle,
            };
            if let Some(wait) = hold() {
                let later = Some(Instant::now() + wait);
                match why {
                    Woken::Wake => self.pending = later,
                    Woken::Settle => self.settle_at = later,
                }
                continue;
            }
            self.pending = None;
            self.settle_at = None;
            return why;
        }
    }

    /// A poll starts (woken or scheduled): it covers every webhook received so far, so
    /// nothing else is due until a new one (or its settle poll).
    pub(crate) fn starting(&mut self, why: Option<Woken>) {
        if why.is_some() || self.pending.is_some() {
            self.last_woken = Some(Instant::now());
        }
        self.pending = None;
        self.settle_at = None;
        let received = self.cell.received_ms.swap(0, Ordering::SeqCst);
        if received != 0 {
            self.covering = Some(self.covering.map_or(received, |c| c.min(received)));
        }
    }

    /// The poll ended with `published` signals (None: it failed). Returns the webhook
    /// time its signals answer, for the latency metric. A woken poll that published
    /// nothing asks for one settle poll; one that failed is tried once more after the
    /// minimum interval (a hold then defers it to the hold's end).
    pub(crate) fn finished(&mut self, why: Option<Woken>, published: Option<u64>) -> Option<u64> {
        match (published, why) {
            (Some(n), _) if n > 0 => {
                self.retried = false;
                self.covering.take()
            }
            (Some(_), Some(Woken::Wake)) => {
                self.retried = false;
                self.settle_at = self.settle.map(|s| Instant::now() + s);
                None
            }
            (None, Some(_)) if !self.retried => {
                self.retried = true;
                self.pending = Some(Instant::now() + self.min_interval);
                None
            }
            _ => {
                self.retried = false;
                self.covering = None;
                None
            }
        }
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(min_interval_ms: u64, settle_ms: u64) -> (Arc<WakeCell>, WakeSchedule) {
        let webhook: WebhookConfig = serde_json::from_value(serde_json::json!({
            "verify": "token", "secret": "0123456789abcdef",
            "minIntervalMs": min_interval_ms, "settleMs": settle_ms
        }))
        .expect("config");
        let cell = Arc::new(WakeCell::default());
        let schedule = WakeSchedule::new(cell.clone(), Some(&webhook)).expect("webhook");
        (cell, schedule)
    }

    fn wake(wakers: &Wakers, name: &str, at: u64) {
        wakers.wake(&Wake {
            connector: name.into(),
            received_ms: at,
        });
    }

    #[tokio::test(start_paused = true)]
    async fn wakes_coalesce_and_are_spaced_by_the_minimum_interval() {
        let wakers = Wakers::default();
        let (cell, mut s) = schedule(10_000, 0);
        wakers.cells.write().expect("lock").insert("c".into(), cell);
        let start = Instant::now();
        for i in 0..1000 {
            wake(&wakers, "c", 1000 + i);
        }
        assert_eq!(s.due(|| None).await, Woken::Wake);
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "the first wake polls at once"
        );
        s.starting(Some(Woken::Wake));
        assert_eq!(s.finished(Some(Woken::Wake), Some(2)), Some(1000));
        // The 999 others were folded into that one; a later webhook waits for the interval.
        wake(&wakers, "c", 5000);
        assert_eq!(s.due(|| None).await, Woken::Wake);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_wake_during_a_rate_limit_hold_waits_for_its_end() {
        let wakers = Wakers::default();
        let (cell, mut s) = schedule(100, 0);
        wakers.cells.write().expect("lock").insert("c".into(), cell);
        let start = Instant::now();
        let end = start + Duration::from_secs(42);
        let hold = || Some(end.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero());
        wake(&wakers, "c", 1);
        assert_eq!(s.due(hold).await, Woken::Wake);
        assert_eq!(start.elapsed(), Duration::from_secs(42));
        // A hold that starts after the wake was taken defers it too; so does one over the
        // settle poll, and a failed woken poll is tried once more.
        s.starting(Some(Woken::Wake));
        assert_eq!(s.finished(Some(Woken::Wake), None), None);
        let end = Instant::now() + Duration::from_secs(7);
        let hold = || Some(end.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero());
        let retried = Instant::now();
        assert_eq!(s.due(hold).await, Woken::Wake);
        assert_eq!(retried.elapsed(), Duration::from_secs(7));
        s.starting(Some(Woken::Wake));
        assert_eq!(s.finished(Some(Woken::Wake), None), None);
        let idle = tokio::time::timeout(Duration::from_secs(3600), s.due(|| None)).await;
        assert!(idle.is_err(), "tried once more only");
    }

    #[tokio::test(start_paused = true)]
    async fn a_standby_forgets_wakes_and_a_poll_covers_both_timers() {
        let wakers = Wakers::default();
        let cell = wakers.cell("c");
        // Not holding the lease: the wake is not kept for later.
        wake(&wakers, "c", 5);
        let webhook: WebhookConfig = serde_json::from_value(serde_json::json!({
            "verify": "token", "secret": "0123456789abcdef", "minIntervalMs": 10_000, "settleMs": 10_000
        }))
        .expect("config");
        let mut s = WakeSchedule::new(cell.clone(), Some(&webhook)).expect("webhook");
        let idle = tokio::time::timeout(Duration::from_secs(60), s.due(|| None)).await;
        assert!(idle.is_err(), "no stale wake after taking the lease");
        // A woken poll that found nothing, and a new webhook during the settle wait: the
        // settle poll and the spaced wake fall due together, and one poll covers both.
        wake(&wakers, "c", 6);
        assert_eq!(s.due(|| None).await, Woken::Wake);
        s.starting(Some(Woken::Wake));
        assert_eq!(s.finished(Some(Woken::Wake), Some(0)), None);
        wake(&wakers, "c", 7);
        let first = s.due(|| None).await;
        s.starting(Some(first));
        assert_eq!(s.finished(Some(first), Some(1)), Some(6));
        let idle = tokio::time::timeout(Duration::from_secs(3600), s.due(|| None)).await;
        assert!(idle.is_err(), "one poll for both");
        drop(s);
        assert!(!cell.holding.load(Ordering::SeqCst));
    }

    #[tokio::test(start_paused = true)]
    async fn a_woken_poll_that_publishes_nothing_is_followed_by_one_settle_poll() {
        let wakers = Wakers::default();
        let (cell, mut s) = schedule(100, 3000);
        wakers.cells.write().expect("lock").insert("c".into(), cell);
        let start = Instant::now();
        wake(&wakers, "c", 7);
        assert_eq!(s.due(|| None).await, Woken::Wake);
        s.starting(Some(Woken::Wake));
        assert_eq!(s.finished(Some(Woken::Wake), Some(0)), None);
        assert_eq!(s.due(|| None).await, Woken::Settle);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        s.starting(Some(Woken::Settle));
        assert_eq!(s.finished(Some(Woken::Settle), Some(1)), Some(7));
        // No settle after a settle poll: nothing is due until the next webhook.
        let idle = tokio::time::timeout(Duration::from_secs(3600), s.due(|| None)).await;
        assert!(idle.is_err());
    }

    #[test]
    fn no_schedule_without_a_webhook_block() {
        assert!(WakeSchedule::new(Arc::default(), None).is_none());
    }
}

/// The webhook metrics (registered with the process's others) and the last webhook per
/// connector, for `/health/connectors`.
pub(crate) struct WebhookMetrics {
    webhooks: Family<OutcomeLabels, Counter>,
    wakes: Family<ConnectorLabel, Counter>,
    latency: Family<ConnectorLabel, Histogram, fn() -> Histogram>,
    last: std::sync::Mutex<HashMap<String, u64>>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct OutcomeLabels {
    connector: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ConnectorLabel {
    connector: String,
}

fn latency_histogram() -> Histogram {
    // 10 ms to ~80 s.
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

impl WebhookMetrics {
    /// Registers the webhook metrics in `registry`.
    pub(crate) fn register(registry: &mut prometheus_client::registry::Registry) -> Self {
        let webhooks = Family::default();
        registry.register(
            "connector_webhooks",
            "Webhooks received for a connector with a webhook block, by outcome (accepted, replayed, unsigned, forged, stale, too_large)",
            webhooks.clone(),
        );
        let wakes = Family::default();
        registry.register(
            "connector_wakes",
            "Polls a webhook started (settle polls included) in this process",
            wakes.clone(),
        );
        let latency = Family::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "connector_webhook_to_published_seconds",
            "From a webhook's arrival to the commit of the first signals after it",
            latency.clone(),
        );
        Self {
            webhooks,
            wakes,
            latency,
            last: std::sync::Mutex::default(),
        }
    }

    /// A webhook for `connector` was answered with `outcome`.
    pub(crate) fn received(&self, connector: &str, outcome: &'static str) {
        self.webhooks
            .get_or_create(&OutcomeLabels {
                connector: connector.to_owned(),
                outcome,
            })
            .inc();
    }

    /// A verified webhook for `connector` (received by any process) arrived at `at_ms`.
    pub(crate) fn seen(&self, connector: &str, at_ms: u64) {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = last.entry(connector.to_owned()).or_default();
        *entry = (*entry).max(at_ms);
    }

    /// When the last verified webhook for `connector` arrived (UNIX ms).
    pub(crate) fn last(&self, connector: &str) -> Option<u64> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(connector)
            .copied()
    }

    /// A woken poll of `connector` starts.
    pub(crate) fn woke(&self, connector: &str) {
        self.wakes
            .get_or_create(&ConnectorLabel {
                connector: connector.to_owned(),
            })
            .inc();
    }

    /// Signals answering a webhook of `received_ms` were committed at `now_ms`.
    pub(crate) fn published(&self, connector: &str, received_ms: u64, now_ms: u64) {
        let seconds = now_ms.saturating_sub(received_ms) as f64 / 1000.0;
        self.latency
            .get_or_create(&ConnectorLabel {
                connector: connector.to_owned(),
            })
            .observe(seconds);
    }
}
