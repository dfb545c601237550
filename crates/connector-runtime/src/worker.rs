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

use connector_core::PollingConnector;
use connector_core::lease::LeaseKeeper;
use connector_core::pipeline::PollError;
use connector_core::pipeline::now_ms;
use connector_core::ports::Backends;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::share::Share;
use crate::telemetry::Metrics;

/// A first poll is delayed by a random part of this fraction of the interval (at most
/// [`MAX_START_SPREAD`]), so a hundred connectors started together do not fire together.
const START_SPREAD: f64 = 0.1;
const MAX_START_SPREAD: Duration = Duration::from_secs(5);

/// Runs one connector until `shutdown` is cancelled.
pub async fn run_connector(
    mut connector: Box<dyn PollingConnector>,
    backends: Backends,
    instance_id: Arc<str>,
    metrics: Arc<Metrics>,
    share: Arc<Share>,
    shutdown: CancellationToken,
    abort: CancellationToken,
) {
    let config = connector.config().clone();
    let name = config.name.clone();
    let ttl = config.lease_ttl();
    // Whether a poll ever got an answer, so the offline hint is given only at the start.
    let mut reached = false;
    loop {
        let lease = loop {
            let attempt = if share.may_acquire() {
                backends.leases.acquire(&name, &instance_id, ttl).await
            } else {
                Ok(None)
            };
            match attempt {
                Ok(Some(lease)) => break lease,
                Ok(None) => tracing::debug!(connector = %name, "lease held by another instance"),
                Err(e) => tracing::warn!(connector = %name, error = %e, "cannot acquire lease"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(ttl / 3) => {}
            }
        };
        tracing::info!(connector = %name, token = lease.token, "lease acquired; polling");
        if let Some(previous) = metrics.fence_observed(&name, lease.token) {
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
            connector.forget_state();
        }
        share.acquired();
        metrics.lease_changed(&name, true);
        let keeper = LeaseKeeper::start(backends.leases.clone(), lease, ttl);

        let spread = config
            .poll_interval()
            .mul_f64(START_SPREAD)
            .min(MAX_START_SPREAD);
        let first = tokio::time::Instant::now() + spread.mul_f64(fastrand::f64());
        let mut ticker = tokio::time::interval_at(first, config.poll_interval());
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut fenced = false;
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    keeper.release().await;
                    share.released();
                    metrics.lease_changed(&name, false);
                    tracing::info!(connector = %name, "stopped; lease released");
                    return;
                }
                () = keeper.lost().cancelled() => break,
                _ = ticker.tick() => {}
            }
            let span = tracing::info_span!(
                "poll",
                connector = %name,
                r#type = %config.connector_type,
                outcome = tracing::field::Empty,
                fetched = tracing::field::Empty,
                published = tracing::field::Empty,
                skipped_unchanged = tracing::field::Empty,
                removed = tracing::field::Empty,
                failed = tracing::field::Empty,
            );
            let started = Instant::now();
            let lease = keeper.lease().clone();
            let outcome = tokio::select! {
                r = connector.poll(&lease).instrument(span.clone()) => Some(r),
                () = keeper.lost().cancelled() => None,
                () = abort.cancelled() => None,
            };
            // A poll that finished as the abort came is reported as what it was; the
            // loop's next turn sees the shutdown and releases the lease.
            if outcome.is_none() && abort.is_cancelled() {
                keeper.release().await;
                share.released();
                metrics.lease_changed(&name, false);
                tracing::warn!(
                    connector = %name,
                    "grace period over: poll cancelled (what it committed stays; the rest is read again by the next holder); lease released"
                );
                return;
            }
            let _enter = span.enter();
            if let Some(loss) = connector.take_state_loss() {
                metrics.state_loss_observed(&name, loss);
            }
            if let Some(Err(PollError::UnderReplicated { .. })) = &outcome {
                metrics.wait_shortfall(&name);
            }
            if let Some(Err(e @ PollError::StateLayout(_))) = &outcome {
                tracing::error!(connector = %name, error = %e, "connector stopped: its state cannot be read");
                keeper.release().await;
                share.released();
                metrics.lease_changed(&name, false);
                return;
            }
            let took = started.elapsed();
            metrics.poll_finished(&name, outcome.as_ref(), took, (now_ms() / 1000) as i64);
            let answered = match &outcome {
                Some(Ok(_)) => true,
                Some(Err(e)) => !e.is_unreachable(),
                None => false,
            };
            metrics.provider_gauges(&name, &connector.gauges());
            let ms = took.as_millis() as u64;
            // The summary goes on the span too, so a trace backend shows it per poll.
            match &outcome {
                Some(Ok(s)) => {
                    span.record("outcome", "success");
                    span.record("fetched", s.fetched);
                    span.record("published", s.published);
                    span.record("skipped_unchanged", s.skipped_unchanged);
                    span.record("removed", s.removed);
                    span.record("failed", s.failed);
                }
                Some(Err(_)) => {
                    span.record("outcome", "failure");
                }
                None => {
                    span.record("outcome", "cancelled");
                }
            }
            reached |= answered;
            // A fenced commit is the surest sign the lease is gone (a pause past its TTL):
            // stop polling now rather than at the next renewal.
            fenced = matches!(outcome, Some(Err(PollError::Fenced { .. })));
            match outcome {
                Some(Ok(s)) => tracing::info!(
                    fetched = s.fetched,
                    published = s.published,
                    skipped_unchanged = s.skipped_unchanged,
                    removed = s.removed,
                    failed = s.failed,
                    not_modified = s.not_modified,
                    duration_ms = ms,
                    "poll completed"
                ),
                Some(Err(e)) => {
                    let next_s = config.poll_interval().as_secs_f64().max(0.1);
                    tracing::warn!(
                        error = %e,
                        duration_ms = ms,
                        next_poll_in_s = next_s,
                        "poll failed; the next poll is in {next_s} s"
                    );
                    if e.is_unreachable() && !reached {
                        // Said once: later failures are an outage, not a first run offline.
                        reached = true;
                        tracing::warn!(
                            "the provider cannot be reached: check the network, HTTPS_PROXY and the base URL. \
                             Without internet, the offline demo runs the whole pipeline against recorded alerts: \
                             cargo run -p connector-noaa --example demo"
                        );
                    }
                }
                None => tracing::warn!("lease lost during a poll; poll cancelled"),
            }
            if fenced {
                tracing::warn!(
                    connector = %name,
                    "another instance holds the lease now: this one stops polling and waits for it"
                );
                break;
            }
            if share.try_shed() {
                break;
            }
        }
        if !keeper.lost().is_cancelled() && !fenced {
            // Shed: more leases than this worker's fair share. Give this one up and leave
            // it to another worker for a TTL before competing for leases again.
            tracing::info!(connector = %name, "handing the connector to another worker (fair share)");
            metrics.lease_changed(&name, false);
            keeper.release().await;
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(ttl) => {}
            }
            continue;
        }
        share.released();
        tracing::warn!(connector = %name, "lease lost; waiting to re-acquire it");
        metrics.lease_changed(&name, false);
        keeper.release().await;
        // Whoever wrote meanwhile (or whatever Redis lost) is read afresh under the next
        // lease, validators included.
        connector.forget_state();
    }
}
