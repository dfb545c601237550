//! Shared rate budgets: one budget per credential and scope, shared by every connector,
//! process and replica that sends under it.
//!
//! A budget learns from responses (`Retry-After`, the remaining / reset headers, the IETF
//! `RateLimit` field) and paces requests: the remaining requests are spread over the time
//! left to the reset (a GCRA with a small burst), so a burst of first syncs does not spend
//! an hour's quota in a minute. Within one reset window `remaining` only decreases
//! (responses arrive out of order), and a hold ends by itself (its stored copy expires
//! with it, at most [`MAX_HOLD`] on).
//!
//! A budget is named by an HMAC-SHA256 of the credential and scope under a per-deployment
//! key, never by the credential or a fast unsalted hash of it. The store is a port: Redis
//! shares it across replicas, [`LocalBudgets`] keeps it in the process (the embedded
//! backend, and the fallback while the shared store does not answer). A budget call has
//! its own short timeout, and after a failure a breaker uses the in-process budget for 30
//! s without asking the store: the budget is never a stall, and never no limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;

use crate::clock::Clock;
use crate::ports::BackendError;
use crate::ratelimit::MAX_HOLD;

/// Requests a budget lets go at once before pacing applies, at least (a tenth of the
/// window's requests when that is more).
pub const BURST: i64 = 5;

/// How long the breaker keeps the shared store out after a failure.
pub const BREAKER: Duration = Duration::from_secs(30);

/// The longest a budget call may take (a tenth of the request timeout when that is
/// shorter).
pub const CALL_TIMEOUT: Duration = Duration::from_millis(100);

/// How long a budget the store knew nothing of goes without asking it again (ms): an API
/// that sends no limit headers, under a credential with no configured `rateLimit`, costs
/// the store one call a second per process instead of one per request; a hold another
/// replica learns reaches this one within that second (what this process learns itself
/// goes to the store at once, and the next request asks).
pub const OPEN_RECHECK_MS: i64 = 1_000;

/// What one response taught a budget.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    /// Requests left in the window ending at this time (UNIX ms).
    pub remaining: Option<(u64, i64)>,
    /// No request before this time (UNIX ms): a `Retry-After`, or no quota left.
    pub hold_until_ms: Option<i64>,
    /// The header that said so (its name and value), for the log and `budget list`.
    pub source: String,
}

impl Learned {
    /// True when the response said nothing about the limit.
    pub fn is_empty(&self) -> bool {
        self.remaining.is_none() && self.hold_until_ms.is_none()
    }
}

/// One budget as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    /// Requests left in the current window.
    pub remaining: Option<u64>,
    /// When the window ends (UNIX ms).
    pub reset_ms: Option<i64>,
    /// No request before this time (UNIX ms).
    pub hold_until_ms: Option<i64>,
    /// The theoretical arrival time of the next request (GCRA, UNIX ms).
    pub tat_ms: i64,
    /// The pace: the time left to the reset over the requests left, as last learned (ms).
    pub interval_ms: i64,
    /// How far ahead of the pace requests may go (ms): a tenth of the window's requests
    /// (at least [`BURST`]) at the window's pace.
    pub burst_ms: i64,
    /// The header that set the hold.
    pub source: Option<String>,
    /// When it may be forgotten (UNIX ms): its reset or hold, at most an hour after what
    /// was last learned.
    pub expires_ms: i64,
    /// The window was opened by a configured `rateLimit`, not by a response: the first
    /// response's own window replaces it.
    #[serde(skip)]
    pub configured: bool,
    /// This process learned something the store may lack (a store call failed or was
    /// skipped by the breaker): the next response is sent to the store whatever it says.
    #[serde(skip)]
    pub unsynced: bool,
}

impl Budget {
    /// How long a request at `now` waits before it may go (zero: it goes, and the budget
    /// counts it). Pacing: the remaining requests spread over the time to the reset, a
    /// burst of [`BURST`] let through at once.
    pub fn take(&mut self, now: i64, ceiling: Option<Ceiling>) -> Duration {
        if let Some(hold) = self.hold_until_ms.filter(|h| *h > now) {
            return millis(hold - now);
        }
        // Nothing learned for the current window: a published limit opens one.
        if let Some(c) = ceiling
            && self.reset_ms.is_none_or(|r| r <= now)
        {
            self.open_window(c.requests, now.saturating_add(c.window_ms), now);
            self.configured = true;
        }
        let (Some(left), Some(reset)) = (self.remaining, self.reset_ms.filter(|r| *r > now)) else {
            return Duration::ZERO;
        };
        if left == 0 {
            return millis(reset - now);
        }
        let interval = match self.interval_ms {
            0 => (reset - now) / i64::try_from(left).unwrap_or(i64::MAX),
            pace => pace,
        };
        let tat = self.tat_ms.max(now);
        let allowed = match self.burst_ms {
            0 => interval.saturating_mul(BURST - 1),
            ahead => ahead,
        };
        if tat - now > allowed {
            return millis(tat - now - allowed);
        }
        self.tat_ms = tat.saturating_add(interval);
        self.remaining = Some(left - 1);
        Duration::ZERO
    }

    /// Takes in what a response said: a later hold replaces an earlier one; a new window
    /// replaces the count, and within one window the count only goes down.
    pub fn learn(&mut self, learned: &Learned, now: i64) {
        self.learn_limit(learned, now);
        self.expires_ms = self.expires_at(now);
    }

    fn learn_limit(&mut self, learned: &Learned, now: i64) {
        if let Some(until) = learned.hold_until_ms
            && self.hold_until_ms.is_none_or(|h| h < until)
        {
            self.hold_until_ms = Some(until.min(now.saturating_add(MAX_HOLD_MS)));
            self.source = Some(learned.source.clone());
        }
        if let Some((left, reset)) = learned.remaining {
            // A window lasts until its reset: a reset given as seconds from now moves with
            // rounding and latency, and must not start the count over.
            let same_window = self.reset_ms.is_some_and(|r| r > now) && !self.configured;
            let reset = reset.min(now.saturating_add(MAX_HOLD_MS));
            let pace = |left: u64, reset: i64| {
                (reset - now).max(0) / i64::try_from(left.max(1)).unwrap_or(i64::MAX)
            };
            match self.remaining {
                // Within the window the count only goes down; fewer left than counted here
                // (other replicas spent them) slows the pace.
                Some(counted) if same_window => {
                    if left < counted {
                        self.remaining = Some(left);
                        self.interval_ms = pace(left, self.reset_ms.unwrap_or(reset));
                    }
                }
                _ => self.open_window(left, reset, now),
            }
        }
    }

    /// Starts a window of `left` requests ending at `reset`: paced evenly, a tenth (at
    /// least [`BURST`]) let through at once.
    fn open_window(&mut self, left: u64, reset: i64, now: i64) {
        self.configured = false;
        self.remaining = Some(left);
        self.reset_ms = Some(reset);
        self.tat_ms = now;
        self.interval_ms = (reset - now).max(0) / i64::try_from(left.max(1)).unwrap_or(i64::MAX);
        let burst = (i64::try_from(left).unwrap_or(i64::MAX) / 10).max(BURST);
        self.burst_ms = self.interval_ms.saturating_mul(burst - 1);
        self.expires_ms = self.expires_at(now);
    }

    /// When the stored budget may be forgotten: at its reset or hold, at most an hour on.
    pub fn expires_at(&self, now: i64) -> i64 {
        let end = self.reset_ms.max(self.hold_until_ms).unwrap_or(now);
        end.clamp(now.saturating_add(1000), now.saturating_add(MAX_HOLD_MS))
    }
}

/// [`MAX_HOLD`] in milliseconds.
pub const MAX_HOLD_MS: i64 = MAX_HOLD.as_millis() as i64;

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// An API's published limit, for when its responses say none: `requests` per `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ceiling {
    /// Requests per window.
    pub requests: u64,
    /// The window (ms).
    pub window_ms: i64,
}

/// Where budgets are kept: Redis across replicas, or [`LocalBudgets`] in the process.
pub trait SharedBudgets: Send + Sync {
    /// Asks to send one request under `key` at `now_ms`: how long to wait first (zero: it
    /// goes, and is counted); `ceiling` opens a window when none is known. None: nothing
    /// is known of this budget (no limit learned, no hold, no ceiling): the request goes.
    fn take<'a>(
        &'a self,
        key: &'a str,
        now_ms: i64,
        ceiling: Option<Ceiling>,
    ) -> BoxFuture<'a, Result<Option<Duration>, BackendError>>;
    /// Takes in what a response said.
    fn learn<'a>(
        &'a self,
        key: &'a str,
        learned: &'a Learned,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), BackendError>>;
    /// Every budget stored, by key.
    fn list(&self) -> BoxFuture<'_, Result<Vec<(String, Budget)>, BackendError>>;
    /// Forgets a budget (an operator's clear); true when there was one.
    fn clear<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>>;
}

/// Budgets kept in this process.
#[derive(Debug, Default)]
pub struct LocalBudgets {
    all: Mutex<Pool>,
}

/// The budgets, and when the expired ones were last dropped.
#[derive(Debug, Default)]
struct Pool {
    budgets: HashMap<String, Budget>,
    pruned_ms: i64,
}

/// How often the expired budgets are dropped: a sweep per request would cost a process
/// with thousands of credentials a pass over all of them each time.
const PRUNE_EVERY_MS: i64 = 10_000;

impl LocalBudgets {
    fn with<T>(&self, key: &str, now: i64, f: impl FnOnce(&mut Budget) -> T) -> T {
        let mut pool = self
            .all
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.saturating_sub(pool.pruned_ms) >= PRUNE_EVERY_MS {
            pool.budgets.retain(|_, b| b.expires_ms > now);
            pool.pruned_ms = now;
        }
        if !pool.budgets.contains_key(key) {
            pool.budgets.insert(key.to_owned(), Budget::default());
        }
        let Some(budget) = pool.budgets.get_mut(key) else {
            return f(&mut Budget::default());
        };
        // An expired budget is a new one, swept or not.
        if budget.expires_ms <= now {
            *budget = Budget::default();
        }
        f(budget)
    }
}

impl SharedBudgets for LocalBudgets {
    fn take<'a>(
        &'a self,
        key: &'a str,
        now_ms: i64,
        ceiling: Option<Ceiling>,
    ) -> BoxFuture<'a, Result<Option<Duration>, BackendError>> {
        let wait = self.with(key, now_ms, |b| b.take(now_ms, ceiling));
        Box::pin(std::future::ready(Ok(Some(wait))))
    }

    fn learn<'a>(
        &'a self,
        key: &'a str,
        learned: &'a Learned,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        self.with(key, now_ms, |b| b.learn(learned, now_ms));
        Box::pin(std::future::ready(Ok(())))
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<(String, Budget)>, BackendError>> {
        let all = self
            .all
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<(String, Budget)> = all
            .budgets
            .iter()
            .filter(|(_, b)| **b != Budget::default())
            .map(|(k, b)| (k.clone(), b.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Box::pin(std::future::ready(Ok(out)))
    }

    fn clear<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        let removed = self
            .all
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .budgets
            .remove(key)
            .is_some();
        Box::pin(std::future::ready(Ok(removed)))
    }
}

/// What this process saw of one budget, for its metrics and `/health/connectors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStats {
    /// The budget's name (its HMAC), first 12 characters.
    pub budget: String,
    /// Requests left, as the last response said.
    pub remaining: Option<u64>,
    /// Times a request waited its turn.
    pub waits: u64,
    /// Times a response asked for a wait (a 429 or `Retry-After`, or a spent quota).
    pub holds: u64,
}

/// A process's way to its budgets: the store, the deployment's key that names a budget
/// without holding the credential, and the breaker that falls back to the in-process
/// budget while the store does not answer.
pub struct Budgets {
    store: Arc<dyn SharedBudgets>,
    local: LocalBudgets,
    key: ring::hmac::Key,
    open_until: Mutex<Option<SystemTime>>,
    /// Budget calls made to the store (for tests and metrics).
    calls: std::sync::atomic::AtomicU64,
    /// What this process saw of each budget.
    stats: Mutex<HashMap<String, BudgetStats>>,
    /// The budgets each connector's requests take from (a worker runs thousands of
    /// connectors: looked up by connector, never scanned).
    users: Mutex<HashMap<String, Vec<String>>>,
    /// Budgets the store knew nothing of (no limit learned, none configured), until when
    /// (UNIX ms): asked again only then, or once this process learns something of them.
    open: Mutex<HashMap<String, i64>>,
}

impl std::fmt::Debug for Budgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budgets").finish_non_exhaustive()
    }
}

impl Budgets {
    /// Budgets in `store`, named under the deployment's `secret`.
    pub fn new(store: Arc<dyn SharedBudgets>, secret: &[u8]) -> Self {
        Self {
            store,
            local: LocalBudgets::default(),
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
            open_until: Mutex::new(None),
            calls: std::sync::atomic::AtomicU64::new(0),
            stats: Mutex::default(),
            users: Mutex::default(),
            open: Mutex::default(),
        }
    }

    /// Budgets of this process alone (no shared store), under a random key.
    pub fn local() -> Self {
        Self::new(Arc::new(LocalBudgets::default()), new_secret().as_bytes())
    }

    /// The budget's name for requests to `scope` (an origin) under `credential`: the first
    /// 16 bytes of HMAC-SHA256 under the deployment's key, in hex.
    pub fn key_for(&self, scope: &str, credential: &[u8]) -> String {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        ctx.update(scope.as_bytes());
        ctx.update(b"\n");
        ctx.update(credential);
        let tag = ctx.sign();
        tag.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Notes what happened to `key` (for `connector`).
    fn note(&self, key: &str, connector: &str, edit: impl FnOnce(&mut BudgetStats)) {
        let mut stats = self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !stats.contains_key(key) {
            stats.insert(
                key.to_owned(),
                BudgetStats {
                    budget: key.chars().take(12).collect(),
                    ..BudgetStats::default()
                },
            );
        }
        if let Some(entry) = stats.get_mut(key) {
            edit(entry);
        }
        drop(stats);
        let mut users = self
            .users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match users.get_mut(connector) {
            Some(keys) if keys.iter().any(|k| k == key) => {}
            Some(keys) => keys.push(key.to_owned()),
            None => {
                users.insert(connector.to_owned(), vec![key.to_owned()]);
            }
        }
    }

    /// What this process saw of each budget.
    pub fn stats(&self) -> Vec<BudgetStats> {
        let stats = self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<BudgetStats> = stats.values().cloned().collect();
        out.sort_by(|a, b| a.budget.cmp(&b.budget));
        out
    }

    /// What this process saw of the budgets `connector`'s requests take from.
    pub fn stats_of(&self, connector: &str) -> Vec<BudgetStats> {
        let keys = self
            .users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(connector)
            .cloned()
            .unwrap_or_default();
        let stats = self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<BudgetStats> = keys.iter().filter_map(|k| stats.get(k).cloned()).collect();
        out.sort_by(|a, b| a.budget.cmp(&b.budget));
        out
    }

    /// Store calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The shared store, unless the breaker is open.
    fn shared(&self, now: SystemTime) -> Option<&dyn SharedBudgets> {
        let open = self
            .open_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *open {
            Some(until) if until > now => None,
            _ => Some(self.store.as_ref()),
        }
    }

    fn lock_open(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// True while the store last said it knew nothing of `key`, less than
    /// [`OPEN_RECHECK_MS`] ago.
    fn known_open(&self, key: &str, now_ms: i64) -> bool {
        let mut open = self.lock_open();
        match open.get(key) {
            Some(until) if *until > now_ms => true,
            Some(_) => {
                open.remove(key);
                false
            }
            None => false,
        }
    }

    /// Opens the breaker after a failed or slow call.
    fn trip(&self, now: SystemTime, why: &str) {
        let mut open = self
            .open_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if open.is_none_or(|u| u <= now) {
            tracing::warn!(
                error = why,
                "rate budget store unavailable: this process paces by its own budgets for 30 s"
            );
        }
        *open = (*open).max(Some(now + BREAKER));
    }

    /// How long a request under `key` waits before it may go, by the shared budget, or by
    /// the in-process one while the store does not answer within `timeout`.
    pub async fn take(
        &self,
        key: &str,
        connector: &str,
        ceiling: Option<Ceiling>,
        clock: &dyn Clock,
        timeout: Duration,
    ) -> Duration {
        let wait = self.ask(key, ceiling, clock, timeout).await;
        self.note(key, connector, |s| s.waits += u64::from(!wait.is_zero()));
        wait
    }

    async fn ask(
        &self,
        key: &str,
        ceiling: Option<Ceiling>,
        clock: &dyn Clock,
        timeout: Duration,
    ) -> Duration {
        let (now, now_ms) = (clock.now(), clock.now_ms());
        let local = || self.local.with(key, now_ms, |b| b.take(now_ms, ceiling));
        // Where the store decides (no wait), the send is counted here all the same, for
        // the time the store may not answer; this process's own wait is not applied (an
        // operator's `budget clear` included).
        let counted = || {
            let _ = local();
            Duration::ZERO
        };
        // A budget with a published limit always asks the store: its window is shared.
        if ceiling.is_none() && self.known_open(key, now_ms) {
            return counted();
        }
        let Some(store) = self.shared(now) else {
            return local();
        };
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match tokio::time::timeout(timeout, store.take(key, now_ms, ceiling)).await {
            Ok(Ok(Some(wait))) if wait.is_zero() => counted(),
            Ok(Ok(Some(wait))) => wait,
            Ok(Ok(None)) => {
                if ceiling.is_none() {
                    self.lock_open()
                        .insert(key.to_owned(), now_ms.saturating_add(OPEN_RECHECK_MS));
                }
                counted()
            }
            Ok(Err(e)) => {
                self.trip(now, &e.to_string());
                local()
            }
            Err(_) => {
                self.trip(now, "a budget call took longer than its timeout");
                local()
            }
        }
    }

    /// Takes in what a response said, here and (unless the breaker is open) in the store.
    pub async fn learn(
        &self,
        key: &str,
        connector: &str,
        learned: &Learned,
        clock: &dyn Clock,
        timeout: Duration,
    ) {
        let (now, now_ms) = (clock.now(), clock.now_ms());
        self.note(key, connector, |s| {
            if let Some((left, _)) = learned.remaining {
                s.remaining = Some(left);
            }
            s.holds += u64::from(learned.hold_until_ms.is_some());
        });
        let news = self.local.with(key, now_ms, |b| {
            let longer = learned
                .hold_until_ms
                .is_some_and(|u| b.hold_until_ms.is_none_or(|h| h < u));
            let window = learned
                .remaining
                .is_some_and(|_| b.reset_ms.is_none_or(|r| r <= now_ms));
            let configured = b.configured;
            let fewer = learned
                .remaining
                .is_some_and(|(left, _)| b.remaining.is_none_or(|c| left < c));
            b.learn(learned, now_ms);
            if longer {
                tracing::warn!(
                    budget = key,
                    source = %learned.source,
                    wait_ms = learned.hold_until_ms.map(|u| u.saturating_sub(now_ms)),
                    "rate budget held: no request under this credential before then, from any replica"
                );
            }
            let news =
                learned.hold_until_ms.is_some() || window || fewer || b.unsynced || configured;
            b.unsynced = true;
            news
        });
        if news {
            // The store hears of it now, so the next request asks the store again.
            self.lock_open().remove(key);
        }
        // A response that says what this process already counted costs no round trip.
        if !news {
            self.local.with(key, now_ms, |b| b.unsynced = false);
            return;
        }
        let Some(store) = self.shared(now) else {
            return;
        };
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match tokio::time::timeout(timeout, store.learn(key, learned, now_ms)).await {
            Ok(Ok(())) => self.local.with(key, now_ms, |b| b.unsynced = false),
            Ok(Err(e)) => self.trip(now, &e.to_string()),
            Err(_) => self.trip(now, "a budget call took longer than its timeout"),
        }
    }

    /// The store, for `budget list` and `budget clear`.
    pub fn store(&self) -> &dyn SharedBudgets {
        self.store.as_ref()
    }
}

/// A fresh deployment key: 32 random bytes, in hex.
pub fn new_secret() -> String {
    let mut secret = [0u8; 32];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret);
    secret.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remaining_requests_are_spread_over_the_time_to_the_reset() {
        let mut b = Budget::default();
        let now = 1_000_000;
        assert_eq!(b.take(now, None), Duration::ZERO, "nothing known: go");
        // 10 left, the window ends in 10 s: one a second, after a burst of 5.
        b.learn(
            &Learned {
                remaining: Some((10, now + 10_000)),
                ..Learned::default()
            },
            now,
        );
        let mut sent = 0;
        let mut at = now;
        let mut times = Vec::new();
        while sent < 10 {
            let wait = b.take(at, None);
            if wait.is_zero() {
                sent += 1;
                times.push(at - now);
            } else {
                at += i64::try_from(wait.as_millis()).unwrap_or(0);
            }
        }
        assert_eq!(&times[..5], [0, 0, 0, 0, 0], "{times:?}");
        assert!(times[9] >= 4000 && times[9] <= 10_000, "{times:?}");
        assert_eq!(
            b.take(at, None),
            millis(now + 10_000 - at),
            "none left: wait for the reset"
        );
    }

    #[test]
    fn within_a_window_remaining_only_goes_down_and_a_hold_is_capped() {
        let now = 5_000_000;
        let mut b = Budget::default();
        let window = |left| Learned {
            remaining: Some((left, now + 60_000)),
            ..Learned::default()
        };
        b.learn(&window(10), now);
        b.learn(&window(50), now);
        assert_eq!(b.remaining, Some(10), "a late response does not raise it");
        b.learn(
            &Learned {
                remaining: Some((100, now + 3_000_000)),
                ..Learned::default()
            },
            now + 1_000,
        );
        assert_eq!(b.remaining, Some(10), "a window lasts until its reset");
        let later = now + 60_001;
        b.learn(
            &Learned {
                remaining: Some((100, later + 3_660_000)),
                ..Learned::default()
            },
            later,
        );
        assert_eq!(b.remaining, Some(100), "after it, a new window starts over");
        assert_eq!(
            b.reset_ms,
            Some(later + MAX_HOLD_MS),
            "a reset is kept within an hour"
        );
        b.learn(
            &Learned {
                hold_until_ms: Some(now + 10 * 3_600_000),
                source: "retry-after: 36000".into(),
                ..Learned::default()
            },
            now,
        );
        assert_eq!(b.hold_until_ms, Some(now + MAX_HOLD_MS));
        assert_eq!(b.expires_at(now), now + MAX_HOLD_MS);
        assert_eq!(b.take(now, None), millis(MAX_HOLD_MS));
    }

    #[test]
    fn a_budget_is_named_by_an_hmac_of_scope_and_credential() {
        let a = Budgets::new(Arc::new(LocalBudgets::default()), b"deployment-1");
        let b = Budgets::new(Arc::new(LocalBudgets::default()), b"deployment-2");
        let key = a.key_for("https://api.github.com", b"ghp_secret");
        assert_eq!(key.len(), 32);
        assert_eq!(key, a.key_for("https://api.github.com", b"ghp_secret"));
        assert_ne!(key, a.key_for("https://api.github.com", b"ghp_other"));
        assert_ne!(key, a.key_for("https://example.com", b"ghp_secret"));
        assert_ne!(key, b.key_for("https://api.github.com", b"ghp_secret"));
        assert!(!key.contains("secret"));
    }
}
