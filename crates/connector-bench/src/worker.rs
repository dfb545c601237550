//! The scale and idle scenarios: the real worker binary (`connector-noaa run`) as a child
//! process, with a generated config pointing at the mock, measured from outside through
//! `/proc/<pid>`.
//!
//! Start lag is measured at the mock, from each connector's request arrival times. The
//! worker ticks with tokio's `interval` and `MissedTickBehavior::Delay`: a tick at most
//! 5 ms late keeps the schedule (the next one is due a period after the *scheduled* time),
//! a later one moves it (the next is due a period after the *actual* time). The bench
//! replays that rule on the arrivals of each connector from its second poll on (the first
//! one also acquires the lease and loads state, and its scheduled time is a random spread
//! the bench cannot see): the second poll defines the schedule, and every later arrival's
//! lag is its distance from where the rule says it was due. The request leaves the worker
//! a few microseconds after the tick, the same for every poll, so the offset cancels out.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use connector_core::ports::MetricsStore;
use connector_redis::{RedisBackend, RedisSettings};
use fred::clients::Client;
use serde::{Deserialize, Serialize};

use crate::mock::{Mock, SCALE_CHANGE_EVERY, SCALE_ITEMS};
use crate::pipeline::STREAM;
use crate::procfs::{self, Memory};
use crate::redis as probe;

/// A tick later than this keeps tokio's schedule (`tokio::time::Interval::poll_tick`).
const TOKIO_MISSED_TICK_US: u64 = 5_000;

/// How to run the worker binary.
#[derive(Debug, Clone)]
pub struct WorkerSetup {
    /// `connector-noaa` (or `connectors`).
    pub binary: PathBuf,
    /// Redis URL.
    pub redis_url: String,
    /// Base URL of the mock.
    pub mock: String,
    /// `RUST_LOG` of the worker.
    pub log_level: String,
}

/// Start lags over every connector's polls, milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Lags {
    /// Lags counted.
    pub samples: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Worst.
    pub max_ms: f64,
}

/// Percentiles of the worker's start-lag histogram: the upper bound of the bucket each
/// falls in, milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BucketLags {
    /// Polls the histogram counted in the window.
    pub samples: u64,
    /// The median's bucket bound.
    pub p50_le_ms: f64,
    /// The 99th percentile's bucket bound.
    pub p99_le_ms: f64,
}

/// What the scale scenario measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScaleResult {
    /// Connectors configured.
    pub connectors: usize,
    /// Poll interval, milliseconds.
    pub interval_ms: u64,
    /// The measured window: from every connector's first poll to SIGTERM, seconds.
    pub seconds: f64,
    /// From spawn until every connector had polled once, seconds.
    pub startup_s: f64,
    /// Worker CPU during start-up, seconds.
    pub startup_cpu_s: f64,
    /// Worker CPU during the window, seconds.
    pub cpu_s: f64,
    /// Worker CPU per second of the window: cores used.
    pub cores_steady: f64,
    /// Worker memory at the end (`peak_kib` is its high-water mark).
    pub memory: Memory,
    /// Polls that reached the mock in the window.
    pub polls: u64,
    /// Polls the schedule called for in the window (one per interval from each
    /// connector's first poll in it).
    pub polls_expected: u64,
    /// Connectors that never polled.
    pub never_polled: usize,
    /// `successfulPolls` summed over the metrics hashes, after shutdown.
    pub successful_polls: u64,
    /// `failedPolls` summed.
    pub failed_polls: u64,
    /// Requests the mock answered in all, including polls in flight at SIGTERM.
    pub requests: u64,
    /// Stream entries written.
    pub stream_entries: u64,
    /// Stream entries the served bodies call for (10 per connector, plus one per change).
    pub stream_expected: u64,
    /// Start lags of the polls in the window.
    pub lag: Lags,
    /// The worker's own figure for the window: how late polls started after their tick
    /// was due (its `connector_poll_start_lag_seconds` histogram).
    #[serde(default)]
    pub worker_lag: BucketLags,
    /// The worker's exit code after SIGTERM.
    pub exit_code: Option<i32>,
    /// Redis CPU during the window, seconds.
    pub redis_cpu_s: f64,
    /// The bench process's own CPU during the window (the mock), seconds.
    pub mock_cpu_s: f64,
    /// Worker RSS, KiB, sampled once a second from spawn.
    pub rss_timeline_kib: Vec<u64>,
}

/// What the idle scenario measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdleResult {
    /// Polls waited for.
    pub polls: u64,
    /// Memory when the first poll's request arrived (start-up done: connected, lease
    /// taken, state loaded).
    pub after_startup: Memory,
    /// Memory a moment after the last poll.
    pub after_polls: Memory,
    /// The worker's exit code after SIGTERM.
    pub exit_code: Option<i32>,
}

fn config_file(dir: &Path, mock: &str, names: &[String], interval_ms: u64) -> Result<PathBuf> {
    let path = dir.join("connectors.json");
    write_config(&path, mock, names, interval_ms)?;
    Ok(path)
}

/// Writes a `connectors.json` with one `NOAA_WEATHER` connector per name, the `i`-th
/// reading the mock's `/alerts/active/scale/{i}`.
pub fn write_config(path: &Path, mock: &str, names: &[String], interval_ms: u64) -> Result<()> {
    let connectors: Vec<serde_json::Value> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            serde_json::json!({
                "name": name,
                "type": "NOAA_WEATHER",
                "pollIntervalMs": interval_ms,
                "providerConfig": {
                    "baseUrl": mock,
                    "alertsPath": format!("/alerts/active/scale/{i}"),
                },
            })
        })
        .collect();
    std::fs::write(
        path,
        serde_json::to_vec_pretty(&serde_json::json!({ "connectors": connectors }))?,
    )?;
    Ok(())
}

fn spawn(
    setup: &WorkerSetup,
    prefix: &str,
    config: &Path,
    dir: &Path,
    only: Option<&str>,
    http_port: Option<u16>,
) -> Result<tokio::process::Child> {
    let log = std::fs::File::create(dir.join("worker.log"))?;
    let mut cmd = tokio::process::Command::new(&setup.binary);
    cmd.arg("--config").arg(config).arg("run");
    if let Some(name) = only {
        cmd.arg(name);
    }
    for var in [
        "CONNECTOR_NAME",
        "ENABLED_CONNECTORS",
        "CONNECTORS_CONFIG_PATH",
        "STATE_DIR",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "REDIS_COMMAND_TIMEOUT_MS",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("REDIS_URL", &setup.redis_url)
        .env("REDIS_KEY_PREFIX", prefix)
        .env(
            "HTTP_PORT",
            http_port.map_or_else(|| "off".to_owned(), |p| p.to_string()),
        )
        .env("HTTP_BIND", "127.0.0.1")
        .env("RUST_LOG", &setup.log_level)
        .env("LOG_FORMAT", "json")
        .env("SHUTDOWN_GRACE_SECONDS", "20")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    cmd.spawn().with_context(|| {
        format!(
            "cannot start the worker {} (build it with `cargo build --release -p connector-noaa`)",
            setup.binary.display()
        )
    })
}

/// SIGTERM, then the exit code (killed after `grace`).
async fn stop(child: &mut tokio::process::Child, grace: Duration) -> Result<Option<i32>> {
    if let Some(pid) = child.id() {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid)?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => Ok(status?.code()),
        Err(_) => {
            child.kill().await?;
            Ok(None)
        }
    }
}

/// A loopback port free a moment ago, for the worker's HTTP API.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The worker's start-lag histogram: (upper bound in seconds, cumulative count) per
/// bucket, `+Inf` last.
async fn start_lag_buckets(port: u16) -> Result<Vec<(f64, u64)>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // HTTP/1.0 on loopback: the answer ends when the worker closes the connection.
    let scrape = async {
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        socket
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut text = String::new();
        socket.read_to_string(&mut text).await?;
        anyhow::Ok(text)
    };
    let text = tokio::time::timeout(Duration::from_secs(10), scrape).await??;
    if !text.starts_with("HTTP/1.0 200") && !text.starts_with("HTTP/1.1 200") {
        bail!("the worker's /metrics answered {:?}", text.lines().next());
    }
    Ok(parse_buckets(
        &text,
        "connector_poll_start_lag_seconds_bucket",
    ))
}

/// The buckets of histogram `name` in an OpenMetrics text.
fn parse_buckets(text: &str, name: &str) -> Vec<(f64, u64)> {
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix("{le=\""))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, count.trim().parse().ok()?))
        })
        .collect()
}

/// Percentiles of what was counted between two scrapes of one histogram.
pub fn bucket_lags(before: &[(f64, u64)], after: &[(f64, u64)]) -> BucketLags {
    let counts: Vec<(f64, u64)> = after
        .iter()
        .map(|&(le, n)| {
            let was = before.iter().find(|(b, _)| *b == le).map_or(0, |(_, n)| *n);
            (le, n.saturating_sub(was))
        })
        .collect();
    let samples = counts.last().map_or(0, |(_, n)| *n);
    let at = |q: f64| {
        let rank = (q * samples as f64).ceil() as u64;
        counts
            .iter()
            .find(|(_, n)| *n >= rank.max(1))
            .map_or(f64::NAN, |(le, _)| le * 1000.0)
    };
    BucketLags {
        samples,
        p50_le_ms: at(0.50),
        p99_le_ms: at(0.99),
    }
}

/// Lags of one connector's arrivals (microseconds), by tokio's `Delay` rule; see the
/// module docs.
pub fn start_lags_us(arrivals: &[u64], period_us: u64) -> Vec<i64> {
    let mut lags = Vec::new();
    let Some(&anchor) = arrivals.get(1) else {
        return lags;
    };
    let mut due = anchor;
    for pair in arrivals[1..].windows(2) {
        let (previous, actual) = (pair[0], pair[1]);
        due = if previous > due + TOKIO_MISSED_TICK_US {
            previous + period_us
        } else {
            due + period_us
        };
        lags.push(actual as i64 - due as i64);
    }
    lags
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Stream entries a scale connector's `requests` polls publish: its ten alerts once, then
/// one update each time the served set flips.
pub fn scale_entries_expected(requests: u64) -> u64 {
    if requests == 0 {
        0
    } else {
        SCALE_ITEMS as u64 + (requests - 1) / SCALE_CHANGE_EVERY
    }
}

/// `successfulPolls` and `failedPolls` summed over `names`, read through the backend's
/// `MetricsStore` port (what `/metrics/connectors` and `connector-noaa metrics` read), so
/// the check goes through the product's reading of the metrics hash, not the bench's.
async fn metrics_totals(metrics: &dyn MetricsStore, names: &[String]) -> Result<(u64, u64)> {
    let mut ok = 0;
    let mut failed = 0;
    for name in names {
        if let Some(m) = metrics.get(name).await? {
            ok += m.successful_polls;
            failed += m.failed_polls;
        }
    }
    Ok((ok, failed))
}

/// Samples the worker's RSS into `timeline` (about once a second), checking every `step`
/// until `done`; the worker's exit status if it exits first.
async fn sample(
    child: &mut tokio::process::Child,
    pid: u32,
    timeline: &mut Vec<u64>,
    step: Duration,
    done: impl Fn() -> bool,
) -> std::result::Result<(), std::process::ExitStatus> {
    let mut next_sample = Instant::now();
    while !done() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(status);
        }
        if Instant::now() >= next_sample {
            timeline.push(procfs::memory(Some(pid)).map_or(0, |m| m.rss_kib));
            next_sample += Duration::from_secs(1);
        }
        tokio::time::sleep(step).await;
    }
    Ok(())
}

/// What the mock's arrivals say of the window: polls made and due, connectors never
/// polled, requests, the stream entries the served bodies call for, and start lags.
struct Tally {
    polls: u64,
    expected: u64,
    never: usize,
    requests: u64,
    stream_expected: u64,
    lag: Lags,
}

impl Tally {
    fn of(arrivals: &[Vec<u64>], window_start_us: u64, stop_at_us: u64, period_us: u64) -> Self {
        let mut t = Tally {
            polls: 0,
            expected: 0,
            never: 0,
            requests: 0,
            stream_expected: 0,
            lag: Lags::default(),
        };
        let mut lags = Vec::new();
        for arrivals in arrivals {
            t.requests += arrivals.len() as u64;
            t.stream_expected += scale_entries_expected(arrivals.len() as u64);
            t.never += usize::from(arrivals.is_empty());
            let before_stop: Vec<u64> = arrivals
                .iter()
                .copied()
                .filter(|&at| at < stop_at_us)
                .collect();
            let in_window = before_stop.iter().filter(|&&at| at >= window_start_us);
            if let Some(&first) = in_window.clone().next() {
                t.polls += in_window.count() as u64;
                t.expected += 1 + (stop_at_us - first) / period_us;
            }
            // Lags of the polls in the window; the schedule is replayed from the second poll.
            let lagged = before_stop.iter().skip(2);
            lags.extend(
                start_lags_us(&before_stop, period_us)
                    .into_iter()
                    .zip(lagged)
                    .filter(|(_, at)| **at >= window_start_us)
                    .map(|(lag, _)| lag),
            );
        }
        lags.sort_unstable();
        let ms = |us: i64| us as f64 / 1000.0;
        t.lag = Lags {
            samples: lags.len(),
            p50_ms: ms(percentile(&lags, 0.50)),
            p99_ms: ms(percentile(&lags, 0.99)),
            max_ms: ms(lags.last().copied().unwrap_or(0)),
        };
        t
    }
}

/// The worker's successful and failed polls (its metrics hashes) and its stream's length.
async fn worker_totals(
    setup: &WorkerSetup,
    client: &Client,
    prefix: &str,
    names: &[String],
) -> Result<(u64, u64, u64)> {
    // The worker's keys live under `prefix` (its REDIS_KEY_PREFIX): a backend under the
    // same prefix reads its metrics.
    let settings = RedisSettings::from_url(&setup.redis_url)?.with_key_prefix(prefix)?;
    let backend = RedisBackend::connect(settings).await?;
    let totals = metrics_totals(backend.backends().metrics.as_ref(), names).await;
    backend.close().await;
    let (successful, failed) = totals?;
    let entries = probe::xlen(client, &probe::stream_key(prefix, STREAM)).await?;
    Ok((successful, failed, entries))
}

/// `connectors` connectors polled every `interval_ms` by one worker process for `seconds`.
pub async fn run_scale(
    setup: &WorkerSetup,
    mock: &Mock,
    client: &Client,
    prefix: &str,
    connectors: usize,
    interval_ms: u64,
    seconds: f64,
) -> Result<ScaleResult> {
    let dir = tempfile::tempdir()?;
    let names: Vec<String> = (0..connectors).map(|i| format!("scale-{i:04}")).collect();
    let config = config_file(dir.path(), &setup.mock, &names, interval_ms)?;
    mock.install_scale(prefix, connectors);
    let started = Instant::now();
    let port = free_port()?;
    let mut child = spawn(setup, prefix, &config, dir.path(), None, Some(port))?;
    let pid = child.id().context("worker exited at once")?;
    let early_exit = |status: std::process::ExitStatus| {
        let log = std::fs::read_to_string(dir.path().join("worker.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        anyhow::anyhow!("the worker exited early ({status}): {}", tail.join(" | "))
    };
    // Start-up: until every connector has polled once (or three minutes passed). The
    // measured window starts then, so start-up cost is reported apart from running cost.
    let mut timeline = Vec::new();
    let until = started + Duration::from_secs(180);
    let all_polled = || mock.scale_started() >= connectors || Instant::now() >= until;
    sample(
        &mut child,
        pid,
        &mut timeline,
        Duration::from_millis(10),
        all_polled,
    )
    .await
    .map_err(&early_exit)?;
    let startup_s = started.elapsed().as_secs_f64();
    let startup_cpu = procfs::cpu_time(Some(pid)).unwrap_or_default();
    let window_start_us = mock.scale_clock_us();
    let window = Instant::now();
    let lag_before = start_lag_buckets(port).await;
    let redis_before = probe::info(client).await?;
    let mock_cpu_before = procfs::cpu_time(None).unwrap_or_default();
    let window_over = || window.elapsed().as_secs_f64() >= seconds;
    sample(
        &mut child,
        pid,
        &mut timeline,
        Duration::from_secs(1),
        window_over,
    )
    .await
    .map_err(&early_exit)?;
    let memory = procfs::memory(Some(pid)).unwrap_or_default();
    let cpu = procfs::cpu_time(Some(pid)).unwrap_or_default();
    let ran = window.elapsed().as_secs_f64();
    let stop_at_us = mock.scale_clock_us();
    // A scrape that fails leaves the worker's figure empty (0 samples), not the run.
    let worker_lag = match (lag_before, start_lag_buckets(port).await) {
        (Ok(before), Ok(after)) => bucket_lags(&before, &after),
        _ => BucketLags::default(),
    };
    let mock_cpu = procfs::cpu_time(None)
        .unwrap_or_default()
        .saturating_sub(mock_cpu_before);
    let redis_after = probe::info(client).await?;
    let exit_code = stop(&mut child, Duration::from_secs(40)).await?;
    let log = mock.take_scale();

    let tally = Tally::of(
        &log.arrivals,
        window_start_us,
        stop_at_us,
        interval_ms * 1000,
    );
    let (successful_polls, failed_polls, stream_entries) =
        worker_totals(setup, client, prefix, &names).await?;
    Ok(ScaleResult {
        connectors,
        interval_ms,
        seconds: ran,
        startup_s,
        startup_cpu_s: startup_cpu.as_secs_f64(),
        cpu_s: cpu.saturating_sub(startup_cpu).as_secs_f64(),
        cores_steady: cpu.saturating_sub(startup_cpu).as_secs_f64() / ran.max(1e-3),
        memory,
        polls: tally.polls,
        polls_expected: tally.expected,
        never_polled: tally.never,
        successful_polls,
        failed_polls,
        requests: tally.requests,
        stream_entries,
        stream_expected: tally.stream_expected,
        lag: tally.lag,
        worker_lag,
        exit_code,
        redis_cpu_s: (redis_after.cpu_s() - redis_before.cpu_s()).max(0.0),
        mock_cpu_s: mock_cpu.as_secs_f64(),
        rss_timeline_kib: timeline,
    })
}

/// One connector in its own process: memory after start-up and after `polls` polls.
pub async fn run_idle(
    setup: &WorkerSetup,
    mock: &Mock,
    prefix: &str,
    polls: u64,
) -> Result<IdleResult> {
    let dir = tempfile::tempdir()?;
    let names = vec!["idle-0000".to_owned()];
    let config = config_file(dir.path(), &setup.mock, &names, 1000)?;
    mock.install_scale(prefix, 1);
    let mut child = spawn(setup, prefix, &config, dir.path(), Some("idle-0000"), None)?;
    let pid = child.id().context("worker exited at once")?;
    let deadline = Instant::now() + Duration::from_secs(30 + polls * 2);
    let mut after_startup = None;
    loop {
        if Instant::now() > deadline {
            stop(&mut child, Duration::from_secs(10)).await?;
            bail!("the idle connector did not complete {polls} polls in time");
        }
        if let Some(status) = child.try_wait()? {
            bail!("the idle worker exited early ({status})");
        }
        let seen = mock.scale_requests(0);
        if seen >= 1 && after_startup.is_none() {
            after_startup = procfs::memory(Some(pid));
        }
        if seen >= polls {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Let the last poll commit and record its metrics.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_polls = procfs::memory(Some(pid)).unwrap_or_default();
    let exit_code = stop(&mut child, Duration::from_secs(30)).await?;
    let _ = mock.take_scale();
    Ok(IdleResult {
        polls,
        after_startup: after_startup.unwrap_or_default(),
        after_polls,
        exit_code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_time_polls_have_no_lag_and_a_late_one_moves_the_schedule() {
        let p = 1_000_000;
        let on_time = [50, 1_000_100, 2_000_100, 3_000_100];
        assert_eq!(start_lags_us(&on_time, p), vec![0, 0]);
        // The third poll is 30 ms late: the fourth is due a period after it, not before.
        let late = [50, 1_000_100, 2_030_100, 3_030_100, 4_030_200];
        assert_eq!(start_lags_us(&late, p), vec![30_000, 0, 100]);
        // Within tokio's 5 ms the schedule stays where it was.
        let slight = [50, 1_000_100, 2_004_100, 3_000_100];
        assert_eq!(start_lags_us(&slight, p), vec![4_000, 0]);
    }

    #[test]
    fn histogram_percentiles_come_from_the_window_between_two_scrapes() {
        let name = "connector_poll_start_lag_seconds_bucket";
        let scrape = |a: u64, b: u64, c: u64| {
            format!(
                "# TYPE x histogram\n{name}{{le=\"0.001\"}} {a}\n{name}{{le=\"0.002\"}} {b}\n{name}{{le=\"+Inf\"}} {c}\nconnector_poll_start_lag_seconds_count {c}\n"
            )
        };
        let before = parse_buckets(&scrape(5, 5, 5), name);
        assert_eq!(before, vec![(0.001, 5), (0.002, 5), (f64::INFINITY, 5)]);
        // In the window: 90 under 1 ms, 9 under 2 ms, 1 later.
        let after = parse_buckets(&scrape(95, 104, 105), name);
        let lags = bucket_lags(&before, &after);
        assert_eq!(lags.samples, 100);
        assert!((lags.p50_le_ms - 1.0).abs() < 1e-9);
        assert!((lags.p99_le_ms - 2.0).abs() < 1e-9);
        assert_eq!(bucket_lags(&after, &after).samples, 0);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn a_scale_connector_publishes_its_set_then_one_per_flip() {
        assert_eq!(scale_entries_expected(0), 0);
        assert_eq!(scale_entries_expected(1), 10);
        assert_eq!(scale_entries_expected(10), 10);
        assert_eq!(scale_entries_expected(11), 11);
        assert_eq!(scale_entries_expected(21), 12);
    }
}
