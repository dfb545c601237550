//! The figures of one run: printed as a table and written as JSON (the same numbers),
//! with the targets evaluated and the correctness checks `--ci` exits on.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::paged::PagedResult;
use crate::pipeline::{Breakdown, Kind, ScenarioResult};
use crate::procfs::Machine;
use crate::redis::Rate;
use crate::worker::{IdleResult, ScaleResult};

/// How busy the machine was.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Quiet {
    /// `rustc` processes at the start.
    pub compilers_at_start: usize,
    /// `rustc` processes at the end.
    pub compilers_at_end: usize,
    /// Highest count seen at the start of any step.
    pub compilers_max: usize,
    /// 1-minute load average at the start.
    pub load_at_start: f64,
    /// 1-minute load average at the end.
    pub load_at_end: f64,
}

/// One generated data set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Dataset {
    /// Alerts.
    pub n: usize,
    /// Bytes of the collection as first served.
    pub body_bytes: usize,
    /// Bytes of the collection with one alert in ten updated.
    pub changed_body_bytes: usize,
    /// Mean bytes of one printed alert.
    pub mean_alert_bytes: usize,
}

/// The pipelined `XADD` ceiling measured in this run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ceiling {
    /// Mean bytes of one stream entry (field names + values) as the pipeline writes it.
    pub entry_bytes: f64,
    /// One fred client: pipelines of 512 `XADD`s, 4 in flight, one connection.
    pub fred: Rate,
    /// `redis-benchmark -P 64` (50 connections), when installed.
    pub redis_benchmark: Option<Rate>,
    /// The higher of the two: the ceiling the first polls are compared with.
    pub per_second: f64,
}

/// The real `NoaaProvider` asked for a body above its cap.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Probe {
    /// Alerts served.
    pub n: usize,
    /// Body bytes served.
    pub body_bytes: usize,
    /// What the poll said.
    pub outcome: String,
}

/// One target of the issue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetResult {
    /// What is measured.
    pub name: String,
    /// The target, in words.
    pub target: String,
    /// What was measured.
    pub measured: String,
    /// Whether the target is met.
    pub met: bool,
}

/// One correctness check (counts, never speed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// Expected and actual.
    pub detail: String,
}

/// Everything one run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// `full` or `ci`.
    pub mode: String,
    /// When the run started (RFC 3339 UTC).
    pub started_at: String,
    /// Wall time of the whole run, seconds.
    pub duration_s: f64,
    /// The code measured: `git` commit, plus the crates with uncommitted changes.
    pub code: String,
    /// The machine.
    pub machine: Machine,
    /// How busy it was.
    pub quiet: Quiet,
    /// Redis URL without credentials.
    pub redis_url: String,
    /// `redis_version`.
    pub redis_version: String,
    /// Generated data sets.
    pub datasets: Vec<Dataset>,
    /// Pipeline scenarios (provider `bench`).
    pub scenarios: Vec<ScenarioResult>,
    /// The first poll again with `connector_noaa::NoaaProvider` itself, for parity.
    pub parity: Option<ScenarioResult>,
    /// The real provider on a body above its cap.
    pub cap_probe: Option<Probe>,
    /// First and repeat polls of the providers compared side by side (`--providers`):
    /// the median run of each provider, poll kind and size.
    #[serde(default)]
    pub comparison: Vec<ScenarioResult>,
    /// Providers left out of the comparison at a size, and why.
    #[serde(default)]
    pub comparison_notes: Vec<String>,
    /// Stages of the largest first poll, timed one by one.
    pub breakdown: Option<Breakdown>,
    /// Redis's own pipelined `XADD` rate.
    pub ceiling: Ceiling,
    /// Bytes of all the paged first sync's records.
    #[serde(default)]
    pub paged_bytes: usize,
    /// The paged first sync: in pages, then as one page.
    #[serde(default)]
    pub paged: Vec<PagedResult>,
    /// 1,000 connectors in one worker.
    pub scale: Option<ScaleResult>,
    /// One connector idle.
    pub idle: Option<IdleResult>,
    /// The targets.
    pub targets: Vec<TargetResult>,
    /// Correctness checks.
    pub checks: Vec<Check>,
}

/// `±x%`: half the range of the runs' wall times, relative to the median.
fn spread(walls: &[f64], median: f64) -> String {
    match (walls.first(), walls.last()) {
        (Some(lo), Some(hi)) if walls.len() > 1 && median > 0.0 => {
            format!("±{:.0}%", 50.0 * (hi - lo) / median)
        }
        _ => String::new(),
    }
}

fn usec(cost: &crate::redis::RedisCost, cmd: &str) -> f64 {
    cost.usec.get(cmd).copied().unwrap_or(0) as f64
}

fn per_entry(total: f64, count: u64) -> f64 {
    total / count.max(1) as f64
}

fn mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1e6
}

fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

impl Report {
    /// Records a correctness check.
    pub fn check(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            ok,
            detail: detail.into(),
        });
    }

    /// True when every check held.
    pub fn all_checks_ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    fn scenario(&self, kind: Kind, n: usize) -> Option<&ScenarioResult> {
        self.scenarios.iter().find(|s| s.kind == kind && s.n == n)
    }

    /// Evaluates the targets on the 100,000-item figures (when measured).
    pub fn evaluate_targets(&mut self) {
        let n = 100_000;
        let mut t = Vec::new();
        let mut push = |name: &str, target: &str, measured: String, met: bool| {
            t.push(TargetResult {
                name: name.into(),
                target: target.into(),
                measured,
                met,
            });
        };
        if let Some(first) = self.scenario(Kind::First, n) {
            let fraction = first.items_per_s / self.ceiling.per_second.max(1.0);
            push(
                "first poll, N=100,000",
                ">= 50% of the pipelined XADD ceiling",
                format!(
                    "{} items/s = {:.0}% of {} XADD/s",
                    thousands(first.items_per_s),
                    fraction * 100.0,
                    thousands(self.ceiling.per_second)
                ),
                fraction >= 0.5,
            );
        }
        if let Some(repeat) = self.scenario(Kind::Repeat, n) {
            push(
                "repeat poll, N=100,000",
                ">= 200,000 items/s end to end",
                format!("{} items/s", thousands(repeat.items_per_s)),
                repeat.items_per_s >= 200_000.0,
            );
            push(
                "repeat poll: Redis writes",
                "zero",
                format!(
                    "{} XADD, {} commits; the metrics record's {} hash writes",
                    repeat.redis.xadds, repeat.summary.commits, repeat.redis.hash_writes
                ),
                repeat.redis.xadds == 0 && repeat.summary.commits == 0,
            );
            push(
                "repeat poll: round trips",
                "at most one",
                format!("{} (the metrics record)", repeat.redis.round_trips),
                repeat.redis.round_trips <= 1,
            );
        }
        if let Some(b) = &self.breakdown
            && let Some(stage) = b.stages.iter().find(|s| s.name.starts_with("detect, all"))
        {
            push(
                "change detection alone",
                ">= 2,000,000 items/s",
                format!("{} items/s (N={})", thousands(stage.items_per_s), b.n),
                stage.items_per_s >= 2_000_000.0,
            );
        }
        if let (Some(first), Some(changed)) = (
            self.scenario(Kind::First, n),
            self.scenario(Kind::Changed, n),
        ) {
            let ratio = changed.redis.commands as f64 / first.redis.commands.max(1) as f64;
            let rt = changed.redis.round_trips as f64 / first.redis.round_trips.max(1) as f64;
            push(
                "10% changed: Redis work",
                "proportional to the 10%, not N",
                format!(
                    "{} XADD for {} changes; commands {:.1}% and round trips {:.1}% of the first poll's",
                    changed.redis.xadds,
                    changed.summary.published,
                    ratio * 100.0,
                    rt * 100.0
                ),
                changed.redis.xadds == (n / 10) as u64 && ratio <= 0.15,
            );
        }
        let peak = self
            .scenarios
            .iter()
            .filter(|s| s.n == n)
            .map(|s| s.memory_after.peak_kib)
            .max();
        if let Some(peak) = peak {
            push(
                "peak RSS during a 100,000-item poll",
                "< 300 MB",
                format!("{:.0} MB", mb(peak)),
                mb(peak) < 300.0,
            );
        }
        if let Some(idle) = &self.idle {
            push(
                "one connector idle",
                "< 15 MB",
                format!(
                    "{:.1} MB after start-up, {:.1} MB after {} polls",
                    mb(idle.after_startup.rss_kib),
                    mb(idle.after_polls.rss_kib),
                    idle.polls
                ),
                mb(idle.after_polls.rss_kib) < 15.0,
            );
        }
        if let Some(s) = &self.scale {
            push(
                "1,000 connectors: CPU",
                "< half a core",
                format!("{:.3} cores", s.cores_steady),
                s.cores_steady < 0.5,
            );
            push(
                "1,000 connectors: RSS",
                "< 150 MB",
                format!("{:.0} MB peak", mb(s.memory.peak_kib)),
                mb(s.memory.peak_kib) < 150.0,
            );
            push(
                "1,000 connectors: p99 start lag",
                "< 50 ms",
                format!("{:.1} ms", s.lag.p99_ms),
                s.lag.p99_ms < 50.0,
            );
        }
        self.targets = t;
    }

    /// The table, as printed at the end of a run.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "connector-bench ({}), {} x {} CPU, {} MiB, kernel {}, Redis {}",
            self.mode,
            self.machine.cpus,
            self.machine.cpu,
            self.machine.memory_mib,
            self.machine.kernel,
            self.redis_version
        );
        let _ = writeln!(o, "code: {}", self.code);
        let _ = writeln!(
            o,
            "quiet: rustc processes {} at start, {} at end (max {}), load {:.2} -> {:.2}\n",
            self.quiet.compilers_at_start,
            self.quiet.compilers_at_end,
            self.quiet.compilers_max,
            self.quiet.load_at_start,
            self.quiet.load_at_end
        );
        if !self.scenarios.is_empty() {
            let _ = writeln!(
                o,
                "{:<8} {:>7} {:>9} {:>6} {:>10} {:>6} {:>8} {:>7} {:>8} {:>8} {:>7} {:>7} {:>6} {:>9}",
                "poll",
                "N",
                "wall ms",
                "range",
                "items/s",
                "RTs",
                "cmds",
                "XADD",
                "read MB",
                "peak MB",
                "CPU s",
                "Rd CPU",
                "quiet",
                "%ceiling"
            );
        }
        for s in &self.scenarios {
            let ceiling = if s.kind == Kind::First {
                format!(
                    "{:.0}%",
                    100.0 * s.items_per_s / self.ceiling.per_second.max(1.0)
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                o,
                "{:<8} {:>7} {:>9.1} {:>6} {:>10} {:>6} {:>8} {:>7} {:>8.1} {:>8.1} {:>7.2} {:>7.2} {:>6} {:>9}",
                s.kind.as_str(),
                s.n,
                s.wall_ms,
                spread(&s.runs_wall_ms, s.wall_ms),
                thousands(s.items_per_s),
                s.redis.round_trips,
                s.redis.commands,
                s.redis.xadds,
                s.provider_read.bytes as f64 / 1e6,
                mb(s.memory_after.peak_kib),
                s.cpu_s,
                s.redis.cpu_s,
                if s.redis.quiet { "yes" } else { "NO" },
                ceiling
            );
        }
        let c = &self.ceiling;
        if c.fred.count > 0 {
            let _ = writeln!(
                o,
                "\nceiling, {:.0}-byte entries: fred pipeline {} XADD/s; redis-benchmark -P 64 {}",
                c.entry_bytes,
                thousands(c.fred.per_second),
                c.redis_benchmark
                    .as_ref()
                    .map_or("not run".to_owned(), |r| format!(
                        "{} XADD/s",
                        thousands(r.per_second)
                    ))
            );
        }
        if let Some(p) = &self.parity {
            let _ = writeln!(
                o,
                "parity: connector_noaa::NoaaProvider first poll N={}: published {}, {} items/s",
                p.n,
                p.summary.published,
                thousands(p.items_per_s)
            );
        }
        if let Some(p) = &self.cap_probe {
            let _ = writeln!(
                o,
                "cap: connector_noaa::NoaaProvider at N={} ({:.0} MB body): {}",
                p.n,
                p.body_bytes as f64 / 1e6,
                p.outcome
            );
        }
        if !self.comparison.is_empty() {
            let runs = self
                .comparison
                .iter()
                .map(|s| s.runs_wall_ms.len())
                .max()
                .unwrap_or(1);
            let runs = if runs > 1 {
                format!("median of {runs} runs each; the providers take turns within a run")
            } else {
                "one run each".to_owned()
            };
            let _ = writeln!(o, "\nproviders side by side, same mock data ({runs}):");
            let _ = writeln!(
                o,
                "  {:<10} {:<38} {:<7} {:>7} {:>9} {:>6} {:>10} {:>8} {:>7} {:>8} {:>6}",
                "provider",
                "what",
                "poll",
                "N",
                "wall ms",
                "range",
                "items/s",
                "peak MB",
                "CPU s",
                "read MB",
                "quiet"
            );
            for s in &self.comparison {
                let _ = writeln!(
                    o,
                    "  {:<10} {:<38} {:<7} {:>7} {:>9.1} {:>6} {:>10} {:>8.1} {:>7.2} {:>8.1} {:>6}",
                    s.provider.as_str(),
                    s.provider.describe(),
                    s.kind.as_str(),
                    s.n,
                    s.wall_ms,
                    spread(&s.runs_wall_ms, s.wall_ms),
                    thousands(s.items_per_s),
                    mb(s.memory_after.peak_kib),
                    s.cpu_s,
                    s.provider_read.bytes as f64 / 1e6,
                    if s.redis.quiet { "yes" } else { "NO" },
                );
            }
        }
        for note in &self.comparison_notes {
            let _ = writeln!(o, "  {note}");
        }
        if let Some(b) = &self.breakdown {
            let _ = writeln!(
                o,
                "\nstages of a first poll, N={} ({:.0} MB body, {:.0}-byte entries), each alone:",
                b.n,
                b.body_bytes as f64 / 1e6,
                b.entry_bytes
            );
            for s in &b.stages {
                let _ = writeln!(
                    o,
                    "  {:<64} {:>9.1} ms {:>12} items/s {:>7.0} MB RSS",
                    s.name,
                    s.ms,
                    thousands(s.items_per_s),
                    mb(s.rss_kib)
                );
            }
            let _ = writeln!(
                o,
                "  Redis per entry: real commit {:.1} us CPU (EVALSHA {:.1} us, of which XADD {:.1} us)",
                per_entry(b.commit_redis.cpu_s * 1e6, b.commit.count),
                per_entry(usec(&b.commit_redis, "evalsha"), b.commit.count),
                per_entry(usec(&b.commit_redis, "xadd"), b.commit.count),
            );
        }
        if let Some(first) = self.paged.first() {
            let _ = writeln!(
                o,
                "\npaged first sync (TEST_PAGED through the pipeline), N={} ({:.1} MB of records), {} ms per request:",
                first.n,
                self.paged_bytes as f64 / 1e6,
                first.latency_ms
            );
            let _ = writeln!(
                o,
                "  {:<10} {:>6} {:>8} {:>10} {:>6} {:>10} {:>8} {:>7} {:>8} {:>9} {:>7} {:>6}",
                "pages of",
                "pages",
                "commits",
                "wall ms",
                "range",
                "items/s",
                "peak MB",
                "CPU s",
                "fetch s",
                "commit s",
                "hidden",
                "quiet"
            );
            for p in &self.paged {
                let _ = writeln!(
                    o,
                    "  {:<10} {:>6} {:>8} {:>10.1} {:>6} {:>10} {:>8.1} {:>7.2} {:>8.2} {:>9.2} {:>6.0}% {:>6}",
                    p.page_size,
                    p.summary.pages,
                    p.summary.commits,
                    p.wall_ms,
                    spread(&p.runs_wall_ms, p.wall_ms),
                    thousands(p.items_per_s),
                    mb(p.memory_after.peak_kib),
                    p.cpu_s,
                    p.fetch_s,
                    p.commit_s,
                    100.0 * p.hidden_share,
                    if p.redis.quiet { "yes" } else { "NO" },
                );
            }
            let _ = writeln!(
                o,
                "  fetch s: time a request was in flight at the mock; commit s: time in the backend's commit;\n  hidden: the share of the commit time during which a request was in flight"
            );
        }
        if let Some(s) = &self.scale {
            let _ = writeln!(
                o,
                "\nscale: {} connectors every {} ms in one worker; start-up (all polling) {:.1} s, {:.1} CPU s; then {:.0} s: {:.3} cores ({:.1} CPU s), peak RSS {:.1} MB",
                s.connectors,
                s.interval_ms,
                s.startup_s,
                s.startup_cpu_s,
                s.seconds,
                s.cores_steady,
                s.cpu_s,
                mb(s.memory.peak_kib)
            );
            let _ = writeln!(
                o,
                "  polls {} of {} expected ({} connectors never polled); successful {} failed {}; start lag p50 {:.2} ms p99 {:.2} ms max {:.1} ms ({} samples)",
                s.polls,
                s.polls_expected,
                s.never_polled,
                s.successful_polls,
                s.failed_polls,
                s.lag.p50_ms,
                s.lag.p99_ms,
                s.lag.max_ms,
                s.lag.samples
            );
            let _ = writeln!(
                o,
                "  the worker's own start lag (tick due to poll start, its histogram): p50 <= {} ms, p99 <= {} ms ({} polls)",
                s.worker_lag.p50_le_ms, s.worker_lag.p99_le_ms, s.worker_lag.samples
            );
            let _ = writeln!(
                o,
                "  meanwhile: Redis CPU {:.1} s, mock (bench process) CPU {:.1} s",
                s.redis_cpu_s, s.mock_cpu_s
            );
        }
        if let Some(i) = &self.idle {
            let _ = writeln!(
                o,
                "idle: one connector process: RSS {:.1} MB after start-up, {:.1} MB after {} polls (peak {:.1} MB)",
                mb(i.after_startup.rss_kib),
                mb(i.after_polls.rss_kib),
                i.polls,
                mb(i.after_polls.peak_kib)
            );
        }
        if !self.targets.is_empty() {
            let _ = writeln!(o, "\ntargets:");
            for t in &self.targets {
                let _ = writeln!(
                    o,
                    "  [{}] {:<38} {:<38} {}",
                    if t.met { "met" } else { "NOT" },
                    t.name,
                    t.target,
                    t.measured
                );
            }
        }
        let failed: Vec<&Check> = self.checks.iter().filter(|c| !c.ok).collect();
        let _ = writeln!(
            o,
            "\nchecks: {} of {} passed",
            self.checks.len() - failed.len(),
            self.checks.len()
        );
        for c in failed {
            let _ = writeln!(o, "  FAILED {}: {}", c.name, c.detail);
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(-12_345.0), "-12,345");
    }
}
