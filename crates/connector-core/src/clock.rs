//! Time and stopping as the connectors see them: the [`Clock`] every time the logic reads
//! goes through (the wall clock, or in tests a [`ManualClock`] they move), and the
//! process's [`Stop`] signal, which ends retries and backoff waits.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crate::ports::BoxFuture;

/// Time as the connectors see it: the wall clock, or in tests a clock they move.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> SystemTime;
    /// Waits `delay` (a retry's backoff or a server's `Retry-After`).
    fn sleep(&self, delay: Duration) -> BoxFuture<'static, ()>;

    /// Now, in UNIX milliseconds (0 before 1970).
    fn now_ms(&self) -> i64 {
        self.now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// The wall clock and tokio's timer.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, delay: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(delay))
    }
}

/// A clock for tests: it stands still until moved, and a sleep moves it by the delay at
/// once and is recorded, so a retry schedule or a `Retry-After` is checked without
/// waiting for it.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<SystemTime>,
    slept: Mutex<Vec<Duration>>,
}

impl ManualClock {
    /// A clock standing at `now`.
    pub fn at(now: SystemTime) -> Self {
        Self {
            now: Mutex::new(now),
            slept: Mutex::new(Vec::new()),
        }
    }

    /// Moves the clock on by `by`.
    pub fn advance(&self, by: Duration) {
        if let Ok(mut now) = self.now.lock() {
            *now += by;
        }
    }

    /// Every sleep asked of it, in order.
    pub fn slept(&self) -> Vec<Duration> {
        self.slept.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.now.lock().map_or(SystemTime::UNIX_EPOCH, |now| *now)
    }

    fn sleep(&self, delay: Duration) -> BoxFuture<'static, ()> {
        if let Ok(mut slept) = self.slept.lock() {
            slept.push(delay);
        }
        self.advance(delay);
        Box::pin(std::future::ready(()))
    }
}

/// The process is stopping: no request is retried any more, and a backoff wait in
/// progress ends at once (the attempt after a cut wait is the last).
#[derive(Debug, Default)]
pub struct Stop {
    stopping: AtomicBool,
    stopped: tokio::sync::Notify,
}

impl Stop {
    /// Says stop to every connector of the context.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.stopped.notify_waiters();
    }

    /// Whether stop was said.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Waits for `sleep` unless or until stop is said.
    pub async fn wait(&self, sleep: BoxFuture<'static, ()>) {
        let stopped = self.stopped.notified();
        if self.stopping() {
            return;
        }
        tokio::select! {
            () = sleep => {}
            () = stopped => {}
        }
    }
}
