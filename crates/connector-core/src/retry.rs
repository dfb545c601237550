//! Retrying one request: exponential backoff with jitter, and the server's own word.
//!
//! Built on `backon`. The backoff comes from the connector's `retryConfig` and
//! `maxRetries`; an error may override the computed delay with a `Retry-After` (or a
//! rate-limit reset), which is honoured up to [`RetryPolicy::max_retry_after`]. A server
//! asking for longer than that fails the request, and the poll is tried again at the next
//! tick instead of holding a worker for minutes.
//!
//! Once the process is stopping (its context's [`Stop`](crate::clock::Stop)), a failed request is not retried
//! and a backoff wait ends at once: a poll in flight then ends within one request timeout,
//! well inside the shutdown grace period, instead of running through its whole retry
//! schedule. Waits go through the context's [`crate::clock::Clock`], so a test on a
//! manual clock checks a schedule without waiting for it.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable as _};

use crate::config::ConnectorConfig;
use crate::context::Context;

/// The waits between attempts: on the context's clock, cut short by its stop signal.
struct Waits {
    stop: std::sync::Arc<crate::clock::Stop>,
    clock: std::sync::Arc<dyn crate::clock::Clock>,
}

impl backon::Sleeper for Waits {
    type Sleep = crate::ports::BoxFuture<'static, ()>;

    fn sleep(&self, delay: Duration) -> Self::Sleep {
        let (stop, sleep) = (self.stop.clone(), self.clock.sleep(delay));
        Box::pin(async move { stop.wait(sleep).await })
    }
}

/// How an error wants to be retried.
pub trait Retryable {
    /// Whether a retry can help (timeouts, 429, 5xx) or not (400, 401, 404, bad JSON).
    fn is_retryable(&self) -> bool;
    /// A delay the server asked for, if any.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// Backoff settings of one connector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First delay; doubled per retry.
    pub base_delay: Duration,
    /// Ceiling of one computed delay.
    pub max_delay: Duration,
    /// Spread of each delay, as a fraction (0..=1).
    pub jitter_ratio: f64,
    /// Longest server-requested wait honoured inside one poll.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    /// The policy a connector's config describes.
    pub fn from_config(config: &ConnectorConfig) -> Self {
        Self {
            max_retries: config.max_retries,
            base_delay: Duration::from_millis(config.retry_config.base_delay_ms),
            max_delay: Duration::from_millis(config.retry_config.max_delay_ms),
            jitter_ratio: config.retry_config.jitter_ratio,
            max_retry_after: Duration::from_secs(120),
        }
    }

    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            jitter_ratio: 0.0,
            max_retry_after: Duration::ZERO,
        }
    }

    /// Runs `op` until it succeeds, fails with a non-retryable error, or retries run out.
    pub async fn run<T, E, F, Fut>(&self, context: &Context, what: &str, op: F) -> Result<T, E>
    where
        E: Retryable + std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let max_retry_after = self.max_retry_after;
        let (stop, clock) = context.shared_stop_and_clock();
        let stopping = stop.clone();
        op.retry(*self)
            .sleep(Waits { stop, clock })
            .when(move |e: &E| e.is_retryable() && !stopping.stopping())
            .adjust(move |e: &E, planned: Option<Duration>| {
                // `planned` is None once retries are used up: stop regardless.
                let planned = planned?;
                match e.retry_after() {
                    Some(asked) if asked <= max_retry_after => Some(asked),
                    Some(_) => None,
                    None => Some(planned),
                }
            })
            .notify(|e: &E, delay: Duration| {
                tracing::warn!(request = what, error = %e, delay_ms = delay.as_millis() as u64, "retrying");
            })
            .await
    }
}

impl BackoffBuilder for RetryPolicy {
    type Backoff = Jittered;

    fn build(self) -> Jittered {
        let inner = ExponentialBuilder::default()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .with_max_times(self.max_retries as usize)
            .build();
        Jittered {
            inner,
            ratio: self.jitter_ratio,
            max: self.max_delay,
        }
    }
}

/// backon's exponential backoff with a symmetric ±ratio spread (backon's own jitter only
/// adds, up to a whole delay, which `jitterRatio` cannot express).
pub struct Jittered {
    inner: backon::ExponentialBackoff,
    ratio: f64,
    max: Duration,
}

impl Iterator for Jittered {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let d = self.inner.next()?;
        Some(jitter(d, self.ratio, fastrand::f64()).min(self.max.max(d)))
    }
}

/// `delay` spread by `ratio` using `unit` in [0, 1): 0 gives the shortest, 1 the longest.
pub fn jitter(delay: Duration, ratio: f64, unit: f64) -> Duration {
    let factor = 1.0 + ratio * (2.0 * unit - 1.0);
    delay.mul_f64(factor.max(0.0))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::time::parse_retry_after;

    #[derive(Debug)]
    struct TestError {
        retryable: bool,
        after: Option<Duration>,
    }

    impl std::fmt::Display for TestError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "test error")
        }
    }

    impl Retryable for TestError {
        fn is_retryable(&self) -> bool {
            self.retryable
        }
        fn retry_after(&self) -> Option<Duration> {
            self.after
        }
    }

    fn policy(max_retries: u32, jitter_ratio: f64) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
            jitter_ratio,
            max_retry_after: Duration::from_secs(60),
        }
    }

    /// Fails `failures` times with `error`, then succeeds, on a manual clock; returns
    /// (result, attempts, the waits asked for).
    async fn run_failing(
        p: RetryPolicy,
        failures: u32,
        error: fn() -> TestError,
    ) -> (Result<u32, TestError>, u32, Vec<Duration>) {
        let clock = std::sync::Arc::new(crate::clock::ManualClock::at(
            std::time::SystemTime::UNIX_EPOCH,
        ));
        let context = Context::isolated().with_clock(clock.clone());
        let calls = AtomicU32::new(0);
        let result = p
            .run(&context, "test", || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < failures { Err(error()) } else { Ok(n) }
            })
            .await;
        (result, calls.load(Ordering::SeqCst), clock.slept())
    }

    fn transient() -> TestError {
        TestError {
            retryable: true,
            after: None,
        }
    }

    #[tokio::test]
    async fn backoff_doubles_up_to_the_ceiling() {
        let (result, calls, waits) = run_failing(policy(3, 0.0), 3, transient).await;
        assert!(result.is_ok());
        assert_eq!(calls, 4);
        // backon computes in floating point: 200.000003 ms is 200 ms.
        let waits: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(waits, [100, 200, 300], "doubled, then capped");
    }

    #[tokio::test]
    async fn retries_stop_after_max_retries() {
        let (result, calls, _) = run_failing(policy(2, 0.0), 10, transient).await;
        assert!(result.is_err());
        assert_eq!(calls, 3, "one attempt plus two retries");
    }

    #[tokio::test]
    async fn non_retryable_errors_fail_fast() {
        let (result, calls, waits) = run_failing(policy(5, 0.0), 1, || TestError {
            retryable: false,
            after: None,
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1);
        assert!(waits.is_empty());
    }

    #[tokio::test]
    async fn retry_after_overrides_the_backoff() {
        let (result, calls, waits) = run_failing(policy(3, 0.0), 1, || TestError {
            retryable: true,
            after: Some(Duration::from_secs(7)),
        })
        .await;
        assert!(result.is_ok());
        assert_eq!(calls, 2);
        assert_eq!(waits, vec![Duration::from_secs(7)]);
    }

    #[tokio::test]
    async fn retry_after_beyond_the_cap_gives_up_without_waiting() {
        let (result, calls, waits) = run_failing(policy(3, 0.0), 1, || TestError {
            retryable: true,
            after: Some(Duration::from_secs(3600)),
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1);
        assert!(waits.is_empty());
    }

    #[tokio::test]
    async fn a_stop_ends_retrying_and_cuts_no_wait_short_twice() {
        let clock = std::sync::Arc::new(crate::clock::ManualClock::at(
            std::time::SystemTime::UNIX_EPOCH,
        ));
        let context = Context::isolated().with_clock(clock.clone());
        let calls = AtomicU32::new(0);
        let result: Result<u32, TestError> = policy(5, 0.0)
            .run(&context, "test", || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 1 {
                    context.stop().stop();
                }
                Err(transient())
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2, "no retry after the stop");
        assert_eq!(clock.slept(), [Duration::from_millis(100)]);
    }

    #[test]
    fn jittered_delays_spread_over_the_whole_ratio() {
        let p = RetryPolicy {
            max_retries: 1,
            base_delay: Duration::from_millis(1000),
            max_delay: Duration::from_millis(10_000),
            jitter_ratio: 0.5,
            max_retry_after: Duration::ZERO,
        };
        let delays: Vec<Duration> = (0..200).filter_map(|_| p.build().next()).collect();
        let (min, max) = (
            delays.iter().min().copied().unwrap_or_default(),
            delays.iter().max().copied().unwrap_or_default(),
        );
        assert!(min >= Duration::from_millis(500) && max <= Duration::from_millis(1500));
        // 200 draws: both tails are reached, so the spread is really applied.
        assert!(min < Duration::from_millis(700), "{min:?}");
        assert!(max > Duration::from_millis(1300), "{max:?}");
    }

    #[test]
    fn jitter_spans_the_ratio_symmetrically() {
        let d = Duration::from_millis(1000);
        assert_eq!(jitter(d, 0.2, 0.0), Duration::from_millis(800));
        assert_eq!(jitter(d, 0.2, 0.5), Duration::from_millis(1000));
        assert_eq!(jitter(d, 0.2, 1.0), Duration::from_millis(1200));
        assert_eq!(jitter(d, 0.0, 0.9), d);
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Tue, 24 Nov 2026 21:00:00 GMT").expect("date");
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Tue, 24 Nov 2026 21:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Tue, 24 Nov 2026 20:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("99999999999999999999", now),
            Some(Duration::MAX),
            "beyond u64: the longest wait, never none"
        );
    }
}
