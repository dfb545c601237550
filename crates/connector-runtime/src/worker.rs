//! Scheduling: each connector polled on its interval, only while this process holds its
//! lease.
//!
//! One task per connector. The task takes the lease (or waits for it), keeps it renewed,
//! and polls on a ticker; a poll that overruns its interval delays the next tick rather
//! than overlapping it. A lost lease cancels the poll in flight at once (its commit would
//! be fenced anyway) and the task goes back to waiting for the lease; so does a fenced
//! commit, which is how a process paused past its TTL learns it first. Shutdown stops
//! scheduling but lets a poll in flight finish; the lease is then released. When the
//! grace period runs out, `abort` cancels the poll in flight the same way a lost lease
//! does (its commits are atomic, so nothing half-written stays) and the lease is still
//! released, so another instance takes over at once instead of after a TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use connector_core::Backends;
use connector_core::PollSummary;
use connector_core::PollingConnector;
use connector_core::lease::LeaseKeeper;
use connector_core::pipeline::PollError;
use connector_core::ports::Lease;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::share::Share;
use crate::telemetry::Metrics;
use crate::wake::{WakeCell, WakeSchedule, Woken};

/// A connector's first lease (and so its first poll) is asked for after a random part of
/// this fraction of the interval (at most [`MAX_START_SPREAD`]), so a hundred connectors
/// started together do not fire together.
const START_SPREAD: f64 = 0.1;
const MAX_START_SPREAD: Duration = Duration::from_secs(5);
/// The share of a second each connector of the process adds to the start spread: ticks
/// keep the phase the first poll set, so 10,000 connectors spread over one second would
/// poll in a burst of 10,000 every interval, each waiting for the ones before it. With
/// this slot they spread over 10 s (never more than one interval), a steady 1,000 polls a
/// second.
const SPREAD_SLOT: Duration = Duration::from_millis(1);

/// What every connector task of the process shares.
#[derive(Clone)]
pub struct Shared {
    pub backends: Backends,
    pub instance_id: Arc<str>,
    pub metrics: Arc<Metrics>,
    pub share: Arc<Share>,
}

/// Runs one connector until `shutdown` is cancelled (`abort`: its poll in flight too).
pub async fn run_connector(
    connector: Box<dyn PollingConnector>,
    shared: Shared,
    wake: Arc<WakeCell>,
    shutdown: CancellationToken,
    abort: CancellationToken,
) {
    let worker = Worker {
        config: connector.config().clone(),
        connector,
        wake,
        published: None,
        backends: shared.backends,
        instance_id: shared.instance_id,
        metrics: shared.metrics,
        share: shared.share,
        shutdown,
        abort,
        reached: false,
        due: None,
        held_before: false,
    };
    worker.run().await;
}

/// One connector's task: what it needs, and whether a poll ever got an answer (so the
/// offline hint is given only at the start). Its async methods take `&mut self`: the
/// connector is `Send` but not `Sync`, so a shared borrow could not be held across an await
/// in a spawned task.
struct Worker {
    connector: Box<dyn PollingConnector>,
    /// Where webhook wakes for this connector arrive.
    wake: Arc<WakeCell>,
    /// What the last poll published (None: it failed or was cancelled).
    published: Option<u64>,
    config: connector_core::ConnectorConfig,
    backends: Backends,
    instance_id: Arc<str>,
    metrics: Arc<Metrics>,
    share: Arc<Share>,
    shutdown: CancellationToken,
    abort: CancellationToken,
    reached: bool,
    /// When the tick that starts the next poll was due (None: a webhook woke it).
    due: Option<tokio::time::Instant>,
    /// Whether this task held the lease before (a later hold spreads its first poll).
    held_before: bool,
}

/// How holding a lease ended.
enum Held {
    /// Shutdown, the grace period over, or a state this release cannot read: the task
    /// ends (the lease was released).
    Stop,
    /// The lease is gone (lost, lapsed, or a fenced commit showed another holder).
    Lost,
    /// More leases than this worker's fair share: this one is handed on.
    Shed,
}

/// What one tick's poll asks of the loop.
enum Step {
    /// Poll again at the next tick.
    Go,
    /// Stop holding the lease, for this reason.
    End(Held),
}

impl Worker {
    async fn run(mut self) {
        // The first lease is asked for after the start spread: thousands of connectors
        // started together then neither take their leases nor renew them (every third
        // of the TTL from the taking) in one burst.
        tokio::select! {
            () = self.shutdown.cancelled() => return,
            () = tokio::time::sleep(self.spread_delay()) => {}
        }
        loop {
            let Some(lease) = self.acquire().await else {
                return;
            };
            let keeper = self.took(lease);
            match self.hold(&keeper).await {
                Held::Stop => return,
                Held::Shed => {
                    // Leave it to another worker for a TTL before competing again.
                    tracing::info!(connector = %self.config.name, "handing the connector to another worker (fair share)");
                    self.metrics.lease_changed(&self.config.name, false);
                    keeper.release().await;
                    tokio::select! {
                        () = self.shutdown.cancelled() => return,
                        () = tokio::time::sleep(self.config.lease_ttl()) => {}
                    }
                }
                Held::Lost => {
                    self.share.released();
                    tracing::warn!(connector = %self.config.name, "lease lost; waiting to re-acquire it");
                    self.metrics.lease_changed(&self.config.name, false);
                    keeper.release().await;
                    // Whoever wrote meanwhile (or whatever Redis lost) is read afresh
                    // under the next lease, validators included.
                    self.connector.forget_state();
                }
            }
        }
    }

    /// Waits for the lease (or shutdown: `None`). A wait for a lease another instance
    /// holds is said once: by this connector when the process runs only it, else in the
    /// worker's summary line.
    async fn acquire(&mut self) -> Option<Lease> {
        let mut said = false;
        loop {
            let attempt = if self.share.may_acquire() {
                self.backends
                    .leases
                    .acquire(
                        &self.config.name,
                        &self.instance_id,
                        self.config.lease_ttl(),
                    )
                    .await
            } else {
                Ok(None)
            };
            match attempt {
                Ok(Some(lease)) => {
                    self.share.waiting(&self.config.name, None);
                    return Some(lease);
                }
                Ok(None) if !said && self.share.may_acquire() => {
                    said = true;
                    self.say_waiting().await;
                }
                Ok(None) => {
                    tracing::debug!(connector = %self.config.name, "lease held by another instance")
                }
                Err(e) => {
                    tracing::warn!(connector = %self.config.name, error = %e, "cannot acquire lease")
                }
            }
            tokio::select! {
                () = self.shutdown.cancelled() => {
                    self.share.waiting(&self.config.name, None);
                    return None;
                }
                () = tokio::time::sleep(self.config.lease_ttl() / 3) => {}
            }
        }
    }

    /// Says who holds the lease this connector waits for, and until when.
    async fn say_waiting(&mut self) {
        let name = &self.config.name;
        let Ok(Some(holder)) = self.backends.leases.holder(name).await else {
            return;
        };
        let ttl_ms = holder.ttl_ms.unwrap_or(0);
        if self.share.connectors() <= 1 {
            tracing::info!(
                connector = %name,
                holder = %holder.instance_id,
                "waiting for the lease: another instance holds it; it lapses in {} s unless renewed",
                ttl_ms.div_ceil(1000)
            );
        } else {
            self.share
                .waiting(name, Some((holder.instance_id, self.now_ms() + ttl_ms)));
        }
    }

    /// A lease was taken: a fence token that did not advance means Redis lost its data.
    fn took(&mut self, lease: Lease) -> LeaseKeeper {
        let name = &self.config.name;
        tracing::info!(connector = %name, token = lease.token, "lease acquired; polling");
        if let Some(previous) = self.metrics.fence_observed(name, lease.token) {
            tracing::error!(
                connector = %name,
                token = lease.token,
                previous,
                "Redis lost its data: this connector's fence counter did not advance past {previous} (now {}) \
                 (Redis restarted without persistence, was flushed, or failed over to a replica without it). \
                 State is read again and what Redis lacks is published again; enable Redis persistence \
                 (appendonly yes) to prevent this",
                lease.token
            );
            self.connector.forget_state();
        }
        self.share.acquired();
        self.metrics.lease_changed(name, true);
        LeaseKeeper::start(self.backends.leases.clone(), lease, self.config.lease_ttl())
    }

    /// Now in UNIX milliseconds by the context's clock.
    fn now_ms(&self) -> u64 {
        crate::now_ms(&self.backends.context)
    }

    /// A random part of the start spread: where in it this connector starts.
    fn spread_delay(&self) -> Duration {
        start_spread(self.config.poll_interval(), self.share.connectors()).mul_f64(fastrand::f64())
    }

    /// Polls on the ticker, and when a webhook wakes the connector, while the lease holds.
    async fn hold(&mut self, keeper: &LeaseKeeper) -> Held {
        // The first hold polls at once (the start spread came before its lease); a later
        // one, after a lost or handed-on lease, is spread again: after a Redis flush every
        // connector of the worker takes its lease back within a third of the TTL.
        let interval = self.config.poll_interval();
        let delay = match self.held_before {
            false => Duration::ZERO,
            true => self.spread_delay(),
        };
        self.held_before = true;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + delay, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut woken = WakeSchedule::new(self.wake.clone(), self.config.webhook.as_ref());
        let hold = {
            let (context, name) = (self.backends.context.clone(), self.config.name.clone());
            move || held_for(&context, &name)
        };
        loop {
            let why = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => {
                    self.stop(keeper, "stopped; lease released").await;
                    return Held::Stop;
                }
                () = keeper.lost().cancelled() => return Held::Lost,
                due = ticker.tick() => {
                    self.due = Some(due);
                    None
                }
                why = wake_due(woken.as_mut(), &hold) => Some(why),
            };
            if let Some(schedule) = woken.as_mut() {
                schedule.starting(why);
            }
            if why.is_some() {
                tracing::debug!(connector = %self.config.name, reason = ?why, "polling now: a webhook asked");
                self.metrics.webhooks.woke(&self.config.name);
            }
            let step = self.tick(keeper).await;
            if let Some(received) = woken.as_mut().and_then(|s| s.finished(why, self.published)) {
                self.metrics
                    .webhooks
                    .published(&self.config.name, received, self.now_ms());
            }
            if let Step::End(held) = step {
                return held;
            }
            // A lease lost during the poll goes the lost way (its cache is forgotten), never
            // the fair-share way.
            if keeper.lost().is_cancelled() {
                return Held::Lost;
            }
            if self.share.try_shed() {
                return Held::Shed;
            }
        }
    }

    /// Releases the lease at the end of this task.
    async fn stop(&mut self, keeper: &LeaseKeeper, said: &str) {
        keeper.release_now().await;
        self.share.released();
        self.metrics.lease_changed(&self.config.name, false);
        tracing::info!(connector = %self.config.name, "{said}");
    }

    /// One poll under the lease, cancelled when the lease goes or the grace runs out.
    async fn tick(&mut self, keeper: &LeaseKeeper) -> Step {
        let span = tracing::info_span!(
            "poll",
            connector = %self.config.name,
            r#type = %self.config.connector_type,
            outcome = tracing::field::Empty,
            fetched = tracing::field::Empty,
            published = tracing::field::Empty,
            skipped_unchanged = tracing::field::Empty,
            removed = tracing::field::Empty,
            failed = tracing::field::Empty,
        );
        // A turn among the process's polls in flight (MAX_CONCURRENT_POLLS), waited for
        // a tenth of the interval (1 to 5 s): a poll that gets none by then goes anyway,
        // so polls sitting in an unreachable API's retries delay the others, never stop
        // them. Given up when the lease goes or the grace runs out (the select below then
        // says so); at a stop no new poll starts.
        let context = self.backends.context.clone();
        let patience = self
            .config
            .poll_interval()
            .mul_f64(0.1)
            .clamp(Duration::from_secs(1), Duration::from_secs(5));
        let _turn = tokio::select! {
            turn = tokio::time::timeout(patience, context.poll_turn()) => turn.ok().flatten(),
            () = keeper.lost().cancelled() => None,
            () = self.abort.cancelled() => None,
            () = self.shutdown.cancelled() => return Step::Go,
        };
        let started = Instant::now();
        if let Some(due) = self.due.take() {
            self.metrics
                .poll_started_late(tokio::time::Instant::now().saturating_duration_since(due));
        }
        let lease = keeper.lease().clone();
        let outcome = tokio::select! {
            r = self.connector.poll(&lease).instrument(span.clone()) => Some(r),
            () = keeper.lost().cancelled() => None,
            () = self.abort.cancelled() => None,
        };
        // A poll that finished as the abort came is reported as what it was; the loop's
        // next turn sees the shutdown and releases the lease.
        if outcome.is_none() && self.abort.is_cancelled() {
            keeper.release_now().await;
            self.share.released();
            self.metrics.lease_changed(&self.config.name, false);
            tracing::warn!(
                connector = %self.config.name,
                "grace period over: poll cancelled (what it committed stays; the rest is read again by the next holder); lease released"
            );
            return Step::End(Held::Stop);
        }
        let _enter = span.enter();
        if let Some(loss) = self.connector.take_state_loss() {
            self.metrics.state_loss_observed(&self.config.name, loss);
        }
        if let Some(Err(e @ PollError::StateLayout(_))) = &outcome {
            tracing::error!(connector = %self.config.name, error = %e, "connector stopped: its state cannot be read");
            self.stop(keeper, "lease released").await;
            return Step::End(Held::Stop);
        }
        self.report(&span, outcome.as_ref(), started.elapsed());
        // A fenced commit is the surest sign the lease is gone (a pause past its TTL):
        // stop polling now rather than at the next renewal.
        if matches!(outcome, Some(Err(PollError::Fenced { .. }))) {
            tracing::warn!(
                connector = %self.config.name,
                "another instance holds the lease now: this one stops polling and waits for it"
            );
            return Step::End(Held::Lost);
        }
        Step::Go
    }

    /// One poll's outcome, written from this one place to its log line, its span, the
    /// metrics (Prometheus, OTLP, health) and the replica signal (a data loss is taken
    /// before, so a poll that stops the connector still counts it).
    fn report(
        &mut self,
        span: &tracing::Span,
        outcome: Option<&Result<PollSummary, PollError>>,
        took: Duration,
    ) {
        let name = &self.config.name;
        self.published = match outcome {
            Some(Ok(s)) => Some(s.published),
            _ => None,
        };
        if let Some(Err(PollError::UnderReplicated { .. })) = outcome {
            self.metrics.wait_shortfall(name);
        }
        self.metrics
            .poll_finished(name, outcome, took, (self.now_ms() / 1000) as i64);
        self.metrics.provider_gauges(name, &self.connector.gauges());
        let ms = took.as_millis() as u64;
        match outcome {
            Some(Ok(s)) => {
                // The summary goes on the span too, so a trace backend shows it per poll.
                span.record("outcome", "success");
                span.record("fetched", s.fetched);
                span.record("published", s.published);
                span.record("skipped_unchanged", s.skipped_unchanged);
                span.record("removed", s.removed);
                span.record("failed", s.failed);
                self.reached = true;
                tracing::info!(
                    fetched = s.fetched,
                    published = s.published,
                    skipped_unchanged = s.skipped_unchanged,
                    removed = s.removed,
                    failed = s.failed,
                    not_modified = s.not_modified,
                    duration_ms = ms,
                    "poll completed"
                );
            }
            Some(Err(e)) => {
                span.record("outcome", "failure");
                self.failed(e, ms);
            }
            None => {
                span.record("outcome", "cancelled");
                tracing::warn!("lease lost during a poll; poll cancelled");
            }
        }
    }

    /// A failed poll's log line, and the offline hint the first time a provider cannot
    /// be reached at all.
    fn failed(&mut self, e: &PollError, ms: u64) {
        if self.shutdown.is_cancelled() {
            // Stopping: there is no next poll to announce (its retries were cut short).
            tracing::warn!(error = %e, duration_ms = ms, "poll failed while stopping; no further poll");
            return;
        }
        let next_s = self.config.poll_interval().as_secs_f64().max(0.1);
        tracing::warn!(
            error = %e,
            duration_ms = ms,
            next_poll_in_s = next_s,
            "poll failed; the next poll is in {next_s} s"
        );
        if !e.is_unreachable() {
            self.reached = true;
        } else if !self.reached {
            // Said once: later failures are an outage, not a first run offline.
            self.reached = true;
            tracing::warn!("{OFFLINE_HINT}");
        }
    }
}

/// How far a connector's first poll may be put off: a tenth of the interval (at most
/// [`MAX_START_SPREAD`]), or a [`SPREAD_SLOT`] for each of the process's `connectors`
/// when that is more (at most the interval).
fn start_spread(interval: Duration, connectors: usize) -> Duration {
    let base = interval.mul_f64(START_SPREAD).min(MAX_START_SPREAD);
    let slots = SPREAD_SLOT.saturating_mul(u32::try_from(connectors).unwrap_or(u32::MAX));
    base.max(slots.min(interval))
}

/// What to do when a provider cannot be reached at all (said by `run` once, and by `poll`).
pub(crate) const OFFLINE_HINT: &str = "the provider cannot be reached: check the network, \
    HTTPS_PROXY and the base URL. Without internet, the offline demo runs the whole pipeline \
    against recorded alerts: cargo run -p connector-noaa --example demo";

/// When the next woken poll is due; never for a connector without a webhook block.
async fn wake_due(
    schedule: Option<&mut WakeSchedule>,
    hold: impl Fn() -> Option<Duration>,
) -> Woken {
    match schedule {
        Some(schedule) => schedule.due(hold).await,
        None => std::future::pending().await,
    }
}

/// How long the rate-limit hold on `connector`'s requests has left, if any.
fn held_for(context: &connector_core::context::Context, connector: &str) -> Option<Duration> {
    let now = context.clock().now();
    let until = context.holds().held_for(connector, now)?;
    until.duration_since(now).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_connectors_start_within_a_tenth_of_the_interval_many_over_all_of_it() {
        let s = Duration::from_secs;
        assert_eq!(start_spread(s(10), 1), Duration::from_secs(1));
        assert_eq!(start_spread(s(300), 50), s(5));
        assert_eq!(start_spread(s(10), 1_000), s(1));
        assert_eq!(start_spread(s(10), 5_000), s(5));
        assert_eq!(start_spread(s(10), 10_000), s(10));
        assert_eq!(start_spread(s(10), 20_000), s(10));
        assert_eq!(start_spread(s(60), 20_000), s(20));
        assert_eq!(start_spread(Duration::ZERO, usize::MAX), Duration::ZERO);
    }
}
