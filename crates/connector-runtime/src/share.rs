//! A fair share of the connectors for each live worker.
//!
//! Every worker runs the same connector list and counts the live workers through the
//! backend's heartbeat. A worker takes leases only while it holds fewer than
//! `ceil(connectors / workers)`, and gives one up after a poll when it holds more (a worker
//! that started first took everything; when a second one appears, the first sheds the
//! excess and the second picks it up). A dead worker's leases lapse after their TTL and
//! its heartbeat after the same time, so the survivors' share grows to cover them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use connector_core::Backends;
use tokio_util::sync::CancellationToken;

/// The counters one worker's connector tasks share.
#[derive(Debug, Default)]
pub struct Share {
    held: AtomicUsize,
    live: AtomicUsize,
    total: AtomicUsize,
    /// Workers running the same connector set count each other; the group names the set.
    group: Mutex<String>,
    /// Connectors waiting for a lease another instance holds: its holder and when it
    /// lapses (UNIX ms), for one summary line instead of one per connector.
    waiting: Mutex<std::collections::BTreeMap<String, (String, u64)>>,
    /// The summary last said, so it is said again only when it changes.
    said: Mutex<String>,
}

impl Share {
    /// A share for `total` connectors, alone until the first heartbeat says otherwise.
    pub fn new(total: usize) -> Arc<Self> {
        Arc::new(Self {
            held: AtomicUsize::new(0),
            live: AtomicUsize::new(1),
            total: AtomicUsize::new(total),
            group: Mutex::default(),
            waiting: Mutex::default(),
            said: Mutex::default(),
        })
    }

    /// How many connectors this worker runs.
    pub fn connectors(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// `connector` waits for a lease `holder` holds until about `lapses_ms` (None: it
    /// no longer waits).
    pub fn waiting(&self, connector: &str, holder: Option<(String, u64)>) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        match holder {
            Some(h) => waiting.insert(connector.to_owned(), h),
            None => waiting.remove(connector),
        };
    }

    /// One line for every connector waiting for a lease held elsewhere, when it changed
    /// since it was last said: N connectors, M other instances, the earliest lapse.
    pub fn waiting_summary(&self, now_ms: u64) -> Option<String> {
        let waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        let holders: std::collections::BTreeSet<&str> =
            waiting.values().map(|(h, _)| h.as_str()).collect();
        let line = match waiting.values().map(|(_, at)| *at).min() {
            None => String::new(),
            Some(earliest) => format!(
                "{} connector(s) wait for leases {} other instance(s) hold; the earliest lapses in {} s unless renewed",
                waiting.len(),
                holders.len(),
                earliest.saturating_sub(now_ms).div_ceil(1000)
            ),
        };
        let mut said = self.said.lock().unwrap_or_else(PoisonError::into_inner);
        // Counts, not seconds, decide whether it changed.
        let key = format!("{}/{}", waiting.len(), holders.len());
        if *said == key {
            return None;
        }
        *said = key;
        (!line.is_empty()).then_some(line)
    }

    /// Leases this worker should hold at most.
    pub fn fair(&self) -> usize {
        let live = self.live.load(Ordering::Relaxed).max(1);
        self.total.load(Ordering::Relaxed).div_ceil(live).max(1)
    }

    /// Whether taking one more lease stays within the share.
    pub fn may_acquire(&self) -> bool {
        self.held.load(Ordering::Relaxed) < self.fair()
    }

    /// A lease was taken.
    pub fn acquired(&self) {
        self.held.fetch_add(1, Ordering::Relaxed);
    }

    /// A lease was given up or lost.
    pub fn released(&self) {
        let _ = self
            .held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| h.checked_sub(1));
    }

    /// True for exactly as many callers as this worker holds leases beyond its share; the
    /// caller must then give its lease up (the count is already decremented).
    pub fn try_shed(&self) -> bool {
        let fair = self.fair();
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                (h > fair).then(|| h - 1)
            })
            .is_ok()
    }

    /// The connectors the worker runs (at start and after a reload).
    pub fn set_connectors(&self, names: &[&str]) {
        self.total.store(names.len(), Ordering::Relaxed);
        let mut sorted = names.to_vec();
        sorted.sort_unstable();
        *self.group.lock().unwrap_or_else(PoisonError::into_inner) =
            connector_core::detect::content_version(&sorted);
    }

    fn group(&self) -> String {
        self.group
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Heartbeats every `ttl / 3` until `stop`, keeping `share`'s live count current and
/// saying who waits for a lease (its expiry by the context's clock); leaves
/// the group at the end so the others rebalance at once.
pub async fn heartbeat(
    backends: Backends,
    instance: Arc<str>,
    ttl: Duration,
    share: Arc<Share>,
    stop: CancellationToken,
) {
    let membership = &backends.membership;
    let mut joined = String::new();
    loop {
        let group = share.group();
        if !joined.is_empty()
            && joined != group
            && let Err(e) = membership.leave(&joined, &instance).await
        {
            tracing::warn!(error = %e, "could not leave the previous worker group");
        }
        joined.clone_from(&group);
        match membership.heartbeat(&group, &instance, ttl).await {
            Ok(live) => {
                let before = share.live.swap(live, Ordering::Relaxed);
                if before != live {
                    tracing::info!(
                        workers = live,
                        fair_share = share.fair(),
                        "live workers changed"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "worker heartbeat failed"),
        }
        if let Some(line) = share.waiting_summary(crate::now_ms(&backends.context)) {
            tracing::info!("{line}");
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(ttl / 3) => {}
        }
    }
    if let Err(e) = membership.leave(&joined, &instance).await {
        tracing::warn!(error = %e, "could not leave the worker group; it lapses after its TTL");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_is_the_ceiling_of_connectors_over_workers() {
        let s = Share::new(5);
        assert_eq!(s.fair(), 5);
        s.live.store(2, Ordering::Relaxed);
        assert_eq!(s.fair(), 3);
        s.live.store(10, Ordering::Relaxed);
        assert_eq!(s.fair(), 1, "never zero");
    }

    #[test]
    fn only_the_excess_is_shed() {
        let s = Share::new(5);
        for _ in 0..5 {
            s.acquired();
        }
        s.live.store(2, Ordering::Relaxed);
        let shed = (0..5).filter(|_| s.try_shed()).count();
        assert_eq!(shed, 2);
        assert!(!s.may_acquire(), "3 held, 3 allowed");
        s.released();
        assert!(s.may_acquire());
    }
}
