//! The paged first sync: an incremental source read from its first record, page after
//! page, through the real pipeline (`Factories::create` with the core's `TEST_PAGED`
//! provider, `UniversalPollingConnector`, the real Redis backend), against the mock's
//! `/records` with a fixed latency per request standing for the network.
//!
//! The pipeline commits page k while it fetches page k+1, so with pages of 100 the
//! commits can hide behind the fetches (how much they do is what this measures); the
//! same records read as one page cannot hide anything (every commit comes after the only
//! fetch) but pays the latency once. Each run is a child process, so its peak RSS is its
//! own.
//!
//! What the commits hid is measured from both sides on one clock (UNIX microseconds): the
//! child wraps the backend's `Publisher` in [`TimedPublisher`], which logs each commit's
//! `[start, end]`, and the mock logs each request's `[arrival, answered]`; the share of
//! commit time that falls inside some request's interval is the share the fetches hid.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use connector_core::Backends;
use connector_core::ports::{
    BackendError, BoxFuture, CommitChunk, CommitOutcome, Lease, Publisher,
};
use connector_core::source::time::{TimeFormat, format_millis};
use connector_core::testing::paged::PagedProvider;
use connector_core::{ConnectorConfig, Factories, PollSummary};
use serde::{Deserialize, Serialize};

use crate::mock::{Served, unix_micros};
use crate::pipeline::{Control, STREAM, Target, backend};
use crate::procfs::{self, Memory};
use crate::redis::{self as probe, RedisCost};

/// The most records `TEST_PAGED` asks for per page: its `limit` setting is declared
/// `1..=1000`. A larger page is the mock's doing (see [`limit_and_page`]).
pub const MAX_LIMIT: usize = 1000;

/// 2024-01-01T00:00:00Z: the first record's `updated`; each next one is a second later,
/// so every record is older than the poll (the watermark never passes the poll's start).
const FIRST_UPDATED_MS: i64 = 1_704_067_200_000;

/// The `n` records of the paged set, ascending by `updated`: each record's JSON in the
/// shape `TEST_PAGED` reads (`{"id","updated","title"}`) and its `updated` in UNIX
/// milliseconds.
pub fn records(n: usize) -> Result<Vec<(String, i64)>> {
    (0..n)
        .map(|i| {
            let ms = FIRST_UPDATED_MS + i as i64 * 1000;
            let updated = format_millis(ms, &TimeFormat::Rfc3339).map_err(anyhow::Error::msg)?;
            let json = serde_json::json!({
                "id": format!("r{i:06}"),
                "updated": updated,
                "title": format!("Record {i} of the paged first sync"),
            });
            Ok((json.to_string(), ms))
        })
        .collect()
}

/// The `limit` the provider is configured with and the page size the mock is told to
/// answer with (0: the request's `limit`), for pages of `page_size` records. Up to
/// [`MAX_LIMIT`] the provider asks for the page size itself; above it (the whole set as
/// one page) it asks for the most it may and the mock answers more, as a server with a
/// larger page size than requested would.
pub fn limit_and_page(page_size: usize) -> (usize, usize) {
    if page_size <= MAX_LIMIT {
        (page_size, 0)
    } else {
        (MAX_LIMIT, page_size)
    }
}

/// Arguments of a paged child.
#[derive(Debug, Clone, clap::Args)]
pub struct PagedArgs {
    /// Redis, mock and the number of records served.
    #[command(flatten)]
    pub target: Target,
    /// Records per page.
    #[arg(long)]
    pub page_size: usize,
    /// Latency of each request, milliseconds.
    #[arg(long)]
    pub latency_ms: u64,
}

/// What one paged first sync measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PagedResult {
    /// Records served.
    pub n: usize,
    /// Records per page served.
    pub page_size: usize,
    /// The provider's `limit` setting.
    pub limit: usize,
    /// Latency of each request, milliseconds.
    pub latency_ms: u64,
    /// Wall time of the poll, milliseconds.
    pub wall_ms: f64,
    /// Items fetched per second of wall time.
    pub items_per_s: f64,
    /// CPU time of the child during the poll (all threads), seconds.
    pub cpu_s: f64,
    /// The pipeline's own summary (pages, commits, counts).
    pub summary: PollSummary,
    /// What the poll cost Redis.
    pub redis: RedisCost,
    /// Requests and bytes read from the mock during the poll.
    pub provider_read: Served,
    /// Memory before the poll.
    pub memory_before: Memory,
    /// Memory after it; `peak_kib` is the child's high-water mark over its whole life.
    pub memory_after: Memory,
    /// Time some request was in flight at the mock (the union of their intervals), seconds.
    pub fetch_s: f64,
    /// Time spent in the backend's commit, summed over commits, seconds.
    pub commit_s: f64,
    /// The part of `commit_s` during which a request was in flight, seconds.
    pub hidden_s: f64,
    /// `hidden_s / commit_s`: the share of commit time the fetches hid.
    pub hidden_share: f64,
    /// Commits the timing decorator saw (equals `summary.commits`).
    pub commits_timed: u64,
    /// Entries in the output stream after the poll.
    pub stream_entries: u64,
    /// Wall times of every run of this variant, sorted (this result is the median run).
    #[serde(default)]
    pub runs_wall_ms: Vec<f64>,
}

/// A [`Publisher`] that logs the `[start, end]` of each commit (UNIX microseconds) and
/// otherwise is the backend's: the pipeline under test calls it exactly where it would
/// call the backend, so the intervals are the real commits' and nothing is re-implemented.
pub struct TimedPublisher {
    inner: Arc<dyn Publisher>,
    log: Arc<Mutex<Vec<[u64; 2]>>>,
}

impl TimedPublisher {
    /// Wraps `inner`; the intervals go to `log`.
    pub fn new(inner: Arc<dyn Publisher>, log: Arc<Mutex<Vec<[u64; 2]>>>) -> Self {
        Self { inner, log }
    }
}

impl Publisher for TimedPublisher {
    fn commit<'a>(
        &'a self,
        lease: &'a Lease,
        chunk: &'a CommitChunk,
    ) -> BoxFuture<'a, Result<CommitOutcome, BackendError>> {
        Box::pin(async move {
            let start = unix_micros();
            let outcome = self.inner.commit(lease, chunk).await;
            let end = unix_micros();
            self.log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push([start, end]);
            outcome
        })
    }
}

/// Sorted, non-overlapping intervals covering the same time as `intervals`.
fn merged(intervals: &[[u64; 2]]) -> Vec<[u64; 2]> {
    let mut sorted: Vec<[u64; 2]> = intervals.iter().copied().filter(|[s, e]| e > s).collect();
    sorted.sort_unstable();
    let mut out: Vec<[u64; 2]> = Vec::with_capacity(sorted.len());
    for [s, e] in sorted {
        match out.last_mut() {
            Some(last) if s <= last[1] => last[1] = last[1].max(e),
            _ => out.push([s, e]),
        }
    }
    out
}

/// Total length of the union of `intervals`, microseconds.
pub fn covered_us(intervals: &[[u64; 2]]) -> u64 {
    merged(intervals).iter().map(|[s, e]| e - s).sum()
}

/// How much of the `commits`' time (summed over commits) lies inside the union of
/// `fetches`, microseconds.
pub fn hidden_us(commits: &[[u64; 2]], fetches: &[[u64; 2]]) -> u64 {
    let cover = merged(fetches);
    let mut hidden = 0;
    for &[s, e] in commits {
        // The first fetch interval that ends after the commit starts; those before it
        // cannot overlap.
        let first = cover.partition_point(|f| f[1] <= s);
        for f in cover[first..].iter().take_while(|f| f[0] < e) {
            hidden += e.min(f[1]).saturating_sub(s.max(f[0]));
        }
    }
    hidden
}

/// The connector config of a paged run: `TEST_PAGED` reading the mock.
fn connector_config(mock: &str, limit: usize) -> ConnectorConfig {
    let mut config = ConnectorConfig::new("paged", "TEST_PAGED");
    config.lease_ttl_seconds = 900;
    config.request_timeout_ms = 600_000;
    config.max_retries = 0;
    config.with_provider_config(serde_json::json!({
        "baseUrl": mock,
        "limit": limit,
    }))
}

/// Runs one paged first sync (in the child).
pub async fn run_paged(args: &PagedArgs) -> Result<PagedResult> {
    let target = &args.target;
    let (_redis, backends) = backend(target).await?;
    let commits = Arc::new(Mutex::new(Vec::new()));
    let timed = Backends {
        publisher: Arc::new(TimedPublisher::new(
            backends.publisher.clone(),
            commits.clone(),
        )),
        ..backends.clone()
    };
    let client = probe::connect(&target.redis_url).await?;
    let control = Control::new(&target.mock)?;
    let (limit, page) = limit_and_page(args.page_size);
    let config = Arc::new(connector_config(&target.mock, limit));
    let mut factories = Factories::new();
    factories.register::<PagedProvider>();
    let mut connector = factories.create(config.clone(), timed)?;
    let instance = format!("connector-bench-{}", std::process::id());
    let lease = backends
        .leases
        .acquire(&config.name, &instance, config.lease_ttl())
        .await?
        .context("the paged connector's lease is held by another process")?;
    control.paged_setup(page, args.latency_ms).await?;

    let memory_before = procfs::memory(None).unwrap_or_default();
    let (overhead, _) = probe::info_overhead(&client).await?;
    let served_before = control.stats().await?.served;
    let before = probe::info(&client).await?;
    let cpu_before = procfs::cpu_time(None).unwrap_or_default();
    let started = Instant::now();
    let outcome = connector.poll(&lease).await;
    let wall = started.elapsed();
    let cpu = procfs::cpu_time(None)
        .unwrap_or_default()
        .saturating_sub(cpu_before);
    let after = probe::info(&client).await?;
    let stats = control.stats().await?;
    let memory_after = procfs::memory(None).unwrap_or_default();
    backends.leases.release(&lease).await?;
    let summary = outcome?;
    let stream_entries = probe::xlen(&client, &probe::stream_key(&target.prefix, STREAM)).await?;

    let commits = commits
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let commit_us: u64 = commits.iter().map(|[s, e]| e.saturating_sub(*s)).sum();
    let hidden = hidden_us(&commits, &stats.paged_fetches);
    if stats.paged_fetches.len() as u64 != summary.pages {
        bail!(
            "the mock logged {} requests for {} pages",
            stats.paged_fetches.len(),
            summary.pages
        );
    }
    let mut redis = probe::cost(&before, &after, &overhead);
    let evalsha = redis.calls.get("evalsha").copied().unwrap_or(0);
    let hscan = redis.calls.get("hscan").copied().unwrap_or(0);
    redis.quiet &= evalsha == summary.commits + 1 && hscan == 1;
    let seconds = wall.as_secs_f64();
    Ok(PagedResult {
        n: target.n,
        page_size: args.page_size,
        limit,
        latency_ms: args.latency_ms,
        wall_ms: seconds * 1000.0,
        items_per_s: summary.fetched as f64 / seconds,
        cpu_s: cpu.as_secs_f64(),
        redis,
        provider_read: Served {
            requests: stats.served.requests - served_before.requests,
            bytes: stats.served.bytes - served_before.bytes,
        },
        memory_before,
        memory_after,
        fetch_s: covered_us(&stats.paged_fetches) as f64 / 1e6,
        commit_s: commit_us as f64 / 1e6,
        hidden_s: hidden as f64 / 1e6,
        hidden_share: if commit_us == 0 {
            0.0
        } else {
            hidden as f64 / commit_us as f64
        },
        commits_timed: commits.len() as u64,
        stream_entries,
        summary,
        runs_wall_ms: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_time_inside_fetches_is_counted_once() {
        let fetches = [[10, 20], [15, 30], [40, 50]];
        assert_eq!(covered_us(&fetches), 30);
        // Inside, straddling a gap, before and after everything.
        assert_eq!(hidden_us(&[[12, 18]], &fetches), 6);
        assert_eq!(hidden_us(&[[25, 45]], &fetches), 5 + 5);
        assert_eq!(hidden_us(&[[0, 5], [60, 70]], &fetches), 0);
        assert_eq!(hidden_us(&[[0, 100]], &fetches), 30);
        assert_eq!(hidden_us(&[], &fetches), 0);
        assert_eq!(hidden_us(&[[1, 2]], &[]), 0);
    }

    #[test]
    fn pages_above_the_providers_limit_come_from_the_mock() {
        assert_eq!(limit_and_page(100), (100, 0));
        assert_eq!(limit_and_page(1000), (1000, 0));
        assert_eq!(limit_and_page(100_000), (1000, 100_000));
    }

    #[test]
    fn records_ascend_and_have_the_documented_shape() {
        let r = records(3).expect("records");
        assert!(r.windows(2).all(|w| w[0].1 < w[1].1));
        let first: serde_json::Value = serde_json::from_str(&r[0].0).expect("JSON");
        assert_eq!(first["id"], "r000000");
        assert_eq!(first["updated"], "2024-01-01T00:00:00Z");
        assert!(first["title"].is_string());
    }
}
