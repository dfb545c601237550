#![doc = include_str!("../README.md")]

mod alerts;
mod mock;
mod paged;
mod pipeline;
mod procfs;
mod redis;
mod report;
mod webhooks;
mod worker;

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use connector_core::http::DEFAULT_MAX_BODY_BYTES;
use serde::de::DeserializeOwned;

use crate::alerts::PrintedSet;
use crate::mock::Mock;
use crate::pipeline::{Kind, ProviderKind, ScenarioArgs, ScenarioResult, Target};
use crate::report::{Ceiling, Dataset, Probe, Quiet, Report};
use crate::worker::WorkerSetup;

/// Benchmarks the connector pipeline against Redis and a local NOAA-shaped mock.
///
/// Drives the real pipeline, Redis backend and HTTP client (first poll, repeat poll, 10%
/// changed, for each size), measures Redis's own pipelined XADD rate as the ceiling, runs
/// a paged first sync (pages of 100 with 20 ms latency each, against the same records as
/// one page), runs the real worker binary with 1,000 connectors and with one idle
/// connector, prints a table and writes the same figures as JSON. Every key lives under a
/// prefix of its own, deleted afterwards.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The small run for CI: N=1,000, a 5 s scale run, 3 idle polls. Asserts only that
    /// every scenario completed with the expected counts (never a speed); exits 1 otherwise.
    #[arg(long)]
    ci: bool,
    /// Items per poll, comma-separated (default 1000,10000,100000; 1000 with --ci).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
    /// Connectors in the scale scenario.
    #[arg(long, default_value_t = 1000)]
    connectors: usize,
    /// Poll interval of the scale scenario's connectors, milliseconds (`[scale]`'s target
    /// is 10,000 connectors at 10000).
    #[arg(long, default_value_t = 1000)]
    scale_interval_ms: u64,
    /// Runs of each size's three polls; the median is reported (default 3; 1 with --ci).
    #[arg(long)]
    runs: Option<usize>,
    /// Seconds the scale scenario runs (default 60; 5 with --ci).
    #[arg(long)]
    scale_seconds: Option<f64>,
    /// Polls of the idle scenario (default 10; 3 with --ci).
    #[arg(long)]
    idle_polls: Option<u64>,
    /// Skip the scale and idle scenarios (they need the worker binary).
    #[arg(long)]
    no_workers: bool,
    /// Records of the paged first sync (default 100000; 1000 with --ci; 0 skips it).
    #[arg(long)]
    paged_n: Option<usize>,
    /// Records per page of the paged first sync (the other run reads them as one page).
    #[arg(long, default_value_t = 100)]
    paged_page_size: usize,
    /// Latency of each request of the paged first sync, milliseconds.
    #[arg(long, default_value_t = 20)]
    paged_latency_ms: u64,
    /// Only the paged first sync: no NOAA polls, ceiling, scale or idle scenario.
    #[arg(long)]
    paged_only: bool,
    /// Providers compared side by side on first and repeat polls of each size,
    /// comma-separated: `bench` (NoaaProvider, maxBodyBytes 1 GiB), `real` (NoaaProvider,
    /// default cap; skipped above it), `http` (HTTP_JSON, content-hash versions),
    /// `http-sent` (HTTP_JSON, version /properties/sent). Each runs --runs times, the
    /// providers taking turns (default none; real,http with --ci).
    #[arg(long, value_delimiter = ',', value_enum)]
    providers: Vec<ProviderKind>,
    /// The worker binary (default: connector-noaa next to this binary; build it with
    /// `cargo build --release -p connector-noaa`).
    #[arg(long, env = "CONNECTOR_BENCH_WORKER", value_name = "FILE")]
    worker: Option<PathBuf>,
    /// RUST_LOG of the worker in the scale and idle scenarios.
    #[arg(long, default_value = "info")]
    worker_log: String,
    /// Where to write the JSON figures (default: target/connector-bench.json, or
    /// target/connector-bench-ci.json with --ci).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Redis to run against.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    redis_url: String,
    /// Internal: the bench runs each measured poll in a child process of itself.
    #[command(subcommand)]
    child: Option<Child>,
}

#[derive(Debug, Subcommand)]
enum Child {
    /// One pipeline scenario; prints its figures as one JSON line.
    #[command(hide = true)]
    Scenario(ScenarioArgs),
    /// The stages of a first poll timed one by one; prints one JSON line.
    #[command(hide = true)]
    Breakdown(Target),
    /// One paged first sync; prints its figures as one JSON line.
    #[command(hide = true)]
    Paged(paged::PagedArgs),
    /// Webhook-to-published latency of the real `connectors` binary with N connectors
    /// polling every ten minutes: prints p50/p99/max per connector count as JSON lines.
    Webhooks {
        /// Connector counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 1000])]
        connectors: Vec<usize>,
        /// Webhooks timed per count, one after another.
        #[arg(long, default_value_t = 200)]
        webhooks: usize,
        /// The `connectors` binary (default: next to this binary; build it with
        /// `cargo build --release -p connectors`).
        #[arg(long, value_name = "FILE")]
        binary: Option<PathBuf>,
    },
    /// For profiling by hand: serve the mock (pipeline sets and the scale scenario's
    /// connectors) and write a worker config for it, until interrupted (see
    /// BENCHMARKS.md, "Profiling").
    Mock {
        /// Pipeline sets to serve at /alerts/active/pipe/{n}, comma-separated.
        #[arg(long, value_delimiter = ',')]
        sizes: Vec<usize>,
        /// Scale connectors to serve (10 alerts each).
        #[arg(long, default_value_t = 1000)]
        connectors: usize,
        /// Where to write the `connectors.json` pointing at the mock.
        #[arg(long, value_name = "FILE")]
        config_out: PathBuf,
    },
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("connector-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("connector-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(mut cli: Cli) -> Result<ExitCode> {
    match cli.child.take() {
        Some(Child::Scenario(args)) => {
            let result = pipeline::run_scenario(&args).await?;
            println!("{}", serde_json::to_string(&result)?);
            Ok(ExitCode::SUCCESS)
        }
        Some(Child::Breakdown(target)) => {
            let result = pipeline::run_breakdown(&target).await?;
            println!("{}", serde_json::to_string(&result)?);
            Ok(ExitCode::SUCCESS)
        }
        Some(Child::Paged(args)) => {
            let result = paged::run_paged(&args).await?;
            println!("{}", serde_json::to_string(&result)?);
            Ok(ExitCode::SUCCESS)
        }
        Some(Child::Mock {
            sizes,
            connectors,
            config_out,
        }) => {
            let mock = Mock::start().await?;
            for n in sizes {
                mock.install_pipeline(n, &PrintedSet::new("pipe", n, 10));
            }
            mock.install_scale("manual", connectors);
            let names: Vec<String> = (0..connectors).map(|i| format!("scale-{i:04}")).collect();
            worker::write_config(&config_out, &mock.base_url(), &names, 1000)?;
            eprintln!(
                "mock at {} serving {connectors} connectors; config in {}; Ctrl-C to stop",
                mock.base_url(),
                config_out.display()
            );
            tokio::signal::ctrl_c().await?;
            let log = mock.take_scale();
            let polls: usize = log.arrivals.iter().map(Vec::len).sum();
            eprintln!("served {polls} polls");
            Ok(ExitCode::SUCCESS)
        }
        Some(Child::Webhooks {
            connectors,
            webhooks,
            binary,
        }) => {
            let binary = binary
                .or_else(|| Some(std::env::current_exe().ok()?.parent()?.join("connectors")))
                .context("cannot locate the connectors binary; pass --binary")?;
            let client = redis::connect(&cli.redis_url).await?;
            for n in connectors {
                let prefix = format!("connector-bench-webhooks-{}-{n}", std::process::id());
                eprintln!("webhooks: {n} connectors, {webhooks} webhooks");
                let result =
                    webhooks::run(&binary, &cli.redis_url, &format!("{prefix}:"), n, webhooks)
                        .await;
                cleanup(&client, &prefix).await?;
                println!("{}", serde_json::to_string(&result?)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        None => bench(cli).await,
    }
}

/// Runs this binary as a child with `args` and parses the JSON line it prints. The Redis
/// URL travels in the child's environment, not on a command line `ps` shows.
async fn child<T: DeserializeOwned>(redis_url: &str, args: &[String]) -> Result<T> {
    let exe = std::env::current_exe()?;
    let out = tokio::process::Command::new(exe)
        .args(args)
        .env("REDIS_URL", redis_url)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .await?;
    if !out.status.success() {
        bail!("child `{}` failed ({})", args.join(" "), out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .context("the child printed nothing")?;
    Ok(serde_json::from_str(line)?)
}

fn target_args(sub: &str, prefix: &str, mock: &str, n: usize) -> Vec<String> {
    vec![
        sub.into(),
        "--prefix".into(),
        prefix.into(),
        "--mock".into(),
        mock.into(),
        "--n".into(),
        n.to_string(),
    ]
}

async fn scenario(
    redis_url: &str,
    prefix: &str,
    mock: &str,
    n: usize,
    kind: Kind,
    provider: ProviderKind,
) -> Result<ScenarioResult> {
    let mut args = target_args("scenario", prefix, mock, n);
    args.extend([
        "--kind".into(),
        kind.as_str().into(),
        "--provider".into(),
        provider.as_str().into(),
    ]);
    eprintln!(
        "  {} poll, N={n}, provider {}",
        kind.as_str(),
        provider.as_str()
    );
    child(redis_url, &args).await
}

fn shown_url(url: &str) -> String {
    url::Url::parse(url).map_or_else(
        |_| "(unparseable)".to_owned(),
        |u| connector_redis::settings::display_url(&u),
    )
}

fn default_worker() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join("connector-noaa"))
}

async fn cleanup(client: &fred::clients::Client, prefix: &str) -> Result<()> {
    redis::delete_prefix(client, &format!("{prefix}:")).await?;
    Ok(())
}

/// `git` commit of the working tree and the crates with uncommitted changes, so figures
/// can be tied to the code they measured.
fn code_version() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let Some(commit) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown (not a git checkout)".into();
    };
    let mut dirty: Vec<String> = git(&["status", "--porcelain", "--", "crates", "Cargo.toml"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.get(3..))
        .map(|path| {
            let parts: Vec<&str> = path.split('/').collect();
            match parts.as_slice() {
                ["crates", name, ..] => (*name).to_owned(),
                _ => path.to_owned(),
            }
        })
        .collect();
    dirty.sort();
    dirty.dedup();
    if dirty.is_empty() {
        commit.trim().to_owned()
    } else {
        format!(
            "{} + uncommitted changes in {}",
            commit.trim(),
            dirty.join(", ")
        )
    }
}

fn note_compilers(report: &mut Report) {
    let n = procfs::compilers_running();
    report.quiet.compilers_max = report.quiet.compilers_max.max(n);
}

async fn bench(cli: Cli) -> Result<ExitCode> {
    let started = Instant::now();
    let ci = cli.ci;
    let sizes = if cli.paged_only {
        Vec::new()
    } else if !cli.sizes.is_empty() {
        cli.sizes.clone()
    } else if ci {
        vec![1_000]
    } else {
        vec![1_000, 10_000, 100_000]
    };
    if sizes.iter().any(|&n| n < 10) {
        bail!("each size must be at least 10 (one alert in ten changes)");
    }
    let scale_seconds = cli.scale_seconds.unwrap_or(if ci { 5.0 } else { 60.0 });
    let idle_polls = cli.idle_polls.unwrap_or(if ci { 3 } else { 10 });
    let runs = cli.runs.unwrap_or(if ci { 1 } else { 3 }).max(1);
    let providers = if !cli.providers.is_empty() {
        let mut p = cli.providers.clone();
        p.dedup();
        p
    } else if ci {
        vec![ProviderKind::Real, ProviderKind::Http]
    } else {
        Vec::new()
    };
    let url = cli.redis_url.clone();
    let mut report = Report {
        mode: if ci { "ci".into() } else { "full".into() },
        started_at: connector_core::signal::rfc3339_millis(connector_core::pipeline::now_ms()),
        code: code_version(),
        machine: procfs::machine(),
        quiet: Quiet {
            compilers_at_start: procfs::compilers_running(),
            load_at_start: procfs::load_average(),
            ..Quiet::default()
        },
        redis_url: shown_url(&url),
        ..Report::default()
    };
    note_compilers(&mut report);
    let client = redis::connect(&url).await?;
    report.redis_version = redis::info(&client).await?.version;
    let mock = Mock::start().await?;
    let mock_url = mock.base_url();
    let base = format!(
        "bench-{}-{:06x}",
        std::process::id(),
        alerts::mix(connector_core::pipeline::now_ms()) & 0xff_ffff
    );
    eprintln!(
        "connector-bench: Redis {} (prefix {base}), mock {mock_url}",
        report.redis_url
    );
    let largest = sizes.iter().copied().max().unwrap_or(1_000);
    let mut samples: Vec<Vec<(String, String)>> = Vec::new();

    for &n in &sizes {
        eprintln!("N={n}: generating alerts");
        let set = PrintedSet::new("pipe", n, 10);
        let mean_alert_bytes = set.base.iter().map(String::len).sum::<usize>() / n;
        let (body_bytes, changed_body_bytes) = mock.install_pipeline(n, &set);
        drop(set);
        report.datasets.push(Dataset {
            n,
            body_bytes,
            changed_body_bytes,
            mean_alert_bytes,
        });
        let prefix = format!("{base}-n{n}");
        let stream = redis::stream_key(&prefix, pipeline::STREAM);
        // Each run is the three polls in order on a fresh namespace; a run during which other
        // clients used Redis is repeated (up to twice). Of the kept runs, the one with the
        // median wall time stands for each kind; all wall times go to the JSON.
        let mut kept: Vec<Vec<ScenarioResult>> = Vec::new();
        let mut retries = 0;
        while kept.len() < runs {
            note_compilers(&mut report);
            let run = async {
                let mut results = Vec::new();
                for kind in [Kind::First, Kind::Repeat, Kind::Changed] {
                    results.push(
                        scenario(&url, &prefix, &mock_url, n, kind, ProviderKind::Bench).await?,
                    );
                }
                if samples.is_empty() {
                    samples = redis::sample_entries(&client, &stream, 64).await?;
                }
                let entries = redis::xlen(&client, &stream).await?;
                anyhow::Ok((results, entries))
            }
            .await;
            // The keys go whatever happened, also when a child failed.
            cleanup(&client, &prefix).await?;
            let (results, entries) = run?;
            let quiet = results.iter().all(|r| r.redis.quiet);
            if !quiet && retries < 2 {
                retries += 1;
                eprintln!("N={n}: other clients used Redis during the run; measuring again");
                continue;
            }
            check_pipeline(&mut report, n, &results, entries);
            kept.push(results);
        }
        for (k, _) in [Kind::First, Kind::Repeat, Kind::Changed]
            .iter()
            .enumerate()
        {
            let mut of_kind: Vec<ScenarioResult> = kept.iter().map(|r| r[k].clone()).collect();
            of_kind.sort_by(|a, b| a.wall_ms.total_cmp(&b.wall_ms));
            let walls: Vec<f64> = of_kind.iter().map(|r| r.wall_ms).collect();
            let mut median = of_kind.swap_remove(of_kind.len() / 2);
            median.runs_wall_ms = walls;
            report.scenarios.push(median);
        }
        if n == sizes[0] && body_bytes <= DEFAULT_MAX_BODY_BYTES {
            let prefix = format!("{base}-parity");
            let p = scenario(&url, &prefix, &mock_url, n, Kind::First, ProviderKind::Real).await;
            cleanup(&client, &prefix).await?;
            let p = p?;
            report.check(
                format!("NoaaProvider first poll N={n} publishes every alert"),
                p.summary.published == n as u64,
                format!("published {} of {n}", p.summary.published),
            );
            report.parity = Some(p);
        }
        if body_bytes > DEFAULT_MAX_BODY_BYTES {
            let prefix = format!("{base}-probe");
            let outcome = probe_real_provider(&url, &prefix, &mock_url, n).await;
            cleanup(&client, &prefix).await?;
            report.cap_probe = Some(Probe {
                n,
                body_bytes,
                outcome: outcome.unwrap_or_else(|e| format!("{e:#}")),
            });
        }
        if !providers.is_empty() {
            let compared = compare_providers(
                &mut report,
                &client,
                &url,
                &format!("{base}-cmp-n{n}"),
                &mock_url,
                (n, body_bytes),
                &providers,
                runs,
            )
            .await?;
            report.comparison.extend(compared);
        }
        if n == largest && !ci {
            eprintln!("N={n}: stages one by one");
            let prefix = format!("{base}-stages");
            let b = child::<pipeline::Breakdown>(
                &url,
                &target_args("breakdown", &prefix, &mock_url, n),
            )
            .await;
            cleanup(&client, &prefix).await?;
            report.breakdown = Some(b?);
        }
        mock.remove_pipeline(n);
    }

    if !sizes.is_empty() {
        note_compilers(&mut report);
        eprintln!("ceiling: pipelined XADD of the same entries, {largest} times");
        report.ceiling =
            ceiling(&client, &url, &base, &samples, largest, &mut report.checks).await?;
    }

    let paged_n = cli.paged_n.unwrap_or(if ci { 1_000 } else { 100_000 });
    if paged_n > 0 {
        let records = paged::records(paged_n)?;
        report.paged_bytes = mock.install_paged(records);
        // Pages of `paged_page_size`, then the same records as one page, each `runs` times
        // on a fresh namespace; the median run by wall time stands for each.
        for page_size in [cli.paged_page_size.max(1), paged_n] {
            let mut kept = Vec::new();
            for run in 0..runs {
                note_compilers(&mut report);
                eprintln!(
                    "paged first sync: {paged_n} records in pages of {page_size}, {} ms each (run {} of {runs})",
                    cli.paged_latency_ms,
                    run + 1
                );
                let prefix = format!("{base}-paged");
                let mut args = target_args("paged", &prefix, &mock_url, paged_n);
                args.extend([
                    "--page-size".into(),
                    page_size.to_string(),
                    "--latency-ms".into(),
                    cli.paged_latency_ms.to_string(),
                ]);
                let result = child::<paged::PagedResult>(&url, &args).await;
                cleanup(&client, &prefix).await?;
                let result = result?;
                check_paged(&mut report, &result);
                kept.push(result);
            }
            kept.sort_by(|a, b| a.wall_ms.total_cmp(&b.wall_ms));
            let walls: Vec<f64> = kept.iter().map(|r| r.wall_ms).collect();
            let mut median = kept.swap_remove(kept.len() / 2);
            median.runs_wall_ms = walls;
            report.paged.push(median);
        }
        mock.remove_paged();
    }

    if !cli.no_workers && !cli.paged_only {
        let binary = cli
            .worker
            .clone()
            .or_else(default_worker)
            .context("cannot locate the worker binary; pass --worker")?;
        if !binary.exists() {
            bail!(
                "the worker binary {} does not exist: build it with `cargo build --release -p connector-noaa`, pass --worker, or run with --no-workers",
                binary.display()
            );
        }
        let setup = WorkerSetup {
            binary,
            redis_url: url.clone(),
            mock: mock_url.clone(),
            log_level: cli.worker_log.clone(),
        };
        note_compilers(&mut report);
        eprintln!(
            "scale: {} connectors, {} ms interval, {scale_seconds} s",
            cli.connectors, cli.scale_interval_ms
        );
        let prefix = format!("{base}-scale");
        let scale = worker::run_scale(
            &setup,
            &mock,
            &client,
            &prefix,
            cli.connectors,
            cli.scale_interval_ms,
            scale_seconds,
        )
        .await;
        cleanup(&client, &prefix).await?;
        let scale = scale?;
        check_scale(&mut report, &scale);
        report.scale = Some(scale);

        note_compilers(&mut report);
        eprintln!("idle: one connector, {idle_polls} polls");
        let prefix = format!("{base}-idle");
        let idle = worker::run_idle(&setup, &mock, &prefix, idle_polls).await;
        cleanup(&client, &prefix).await?;
        let idle = idle?;
        report.check(
            "idle connector completed its polls and exited 0",
            idle.exit_code == Some(0),
            format!("{} polls, exit code {:?}", idle.polls, idle.exit_code),
        );
        report.idle = Some(idle);
    }

    report.quiet.compilers_at_end = procfs::compilers_running();
    report.quiet.load_at_end = procfs::load_average();
    note_compilers(&mut report);
    report.duration_s = started.elapsed().as_secs_f64();
    if !ci {
        report.evaluate_targets();
    }
    print!("{}", report.table());
    let json = cli.json.clone().unwrap_or_else(|| {
        PathBuf::from(if ci {
            "target/connector-bench-ci.json"
        } else {
            "target/connector-bench.json"
        })
    });
    if let Some(dir) = json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&json, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    eprintln!("figures written to {}", json.display());
    Ok(if report.all_checks_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn check_pipeline(report: &mut Report, n: usize, results: &[ScenarioResult], entries: u64) {
    let n64 = n as u64;
    let changes = n.div_ceil(10) as u64;
    for r in results {
        let s = &r.summary;
        let (ok, expected) = match r.kind {
            Kind::First => (
                s.fetched == n64 && s.published == n64 && s.failed == 0 && r.redis.xadds == n64,
                format!("fetched {n}, published {n}, {n} XADD"),
            ),
            Kind::Repeat => (
                s.fetched == n64
                    && s.published == 0
                    && s.skipped_unchanged == n64
                    && s.commits == 0
                    && r.redis.xadds == 0,
                format!("fetched {n}, published 0, skipped {n}, no commit, no XADD"),
            ),
            Kind::Changed => (
                s.fetched == n64
                    && s.published == changes
                    && s.skipped_unchanged == n64 - changes
                    && r.redis.xadds == changes,
                format!(
                    "fetched {n}, published {changes}, skipped {}",
                    n64 - changes
                ),
            ),
        };
        report.check(
            format!("{} poll N={n}", r.kind.as_str()),
            ok,
            format!(
                "expected {expected}; got fetched {}, published {}, skipped {}, failed {}, commits {}, XADD {}",
                s.fetched, s.published, s.skipped_unchanged, s.failed, s.commits, r.redis.xadds
            ),
        );
    }
    report.check(
        format!("stream after the three polls N={n}"),
        entries == n64 + changes,
        format!("{entries} entries, expected {}", n64 + changes),
    );
}

/// First and repeat polls of `n` alerts (a body of `body_bytes`) with each of
/// `providers`, `runs` times on a fresh namespace each, the providers taking turns within
/// a run so that a drift of the machine touches all of them alike; a run during which
/// other clients used Redis is repeated (up to twice per size). Returns the median run of
/// each provider and poll kind.
#[allow(clippy::too_many_arguments)]
async fn compare_providers(
    report: &mut Report,
    client: &fred::clients::Client,
    url: &str,
    base: &str,
    mock_url: &str,
    (n, body_bytes): (usize, usize),
    providers: &[ProviderKind],
    runs: usize,
) -> Result<Vec<ScenarioResult>> {
    let usable: Vec<ProviderKind> = providers
        .iter()
        .copied()
        .filter(|p| p.raises_cap() || body_bytes <= DEFAULT_MAX_BODY_BYTES)
        .collect();
    for p in providers.iter().filter(|p| !usable.contains(p)) {
        report.comparison_notes.push(format!(
            "{} ({}) left out at N={n}: the {:.0} MB body is over the default {} MiB cap",
            p.as_str(),
            p.describe(),
            body_bytes as f64 / 1e6,
            DEFAULT_MAX_BODY_BYTES >> 20
        ));
    }
    let mut kept: Vec<Vec<[ScenarioResult; 2]>> = vec![Vec::new(); usable.len()];
    let mut retries = 0;
    for run in 0..runs {
        for (i, &provider) in usable.iter().enumerate() {
            eprintln!(
                "N={n}: provider {} ({}), run {} of {runs}",
                provider.as_str(),
                provider.describe(),
                run + 1
            );
            loop {
                note_compilers(report);
                let prefix = format!("{base}-{}", provider.as_str());
                let stream = redis::stream_key(&prefix, pipeline::STREAM);
                let polls = async {
                    let first = scenario(url, &prefix, mock_url, n, Kind::First, provider).await?;
                    let repeat =
                        scenario(url, &prefix, mock_url, n, Kind::Repeat, provider).await?;
                    let entries = redis::xlen(client, &stream).await?;
                    anyhow::Ok(([first, repeat], entries))
                }
                .await;
                cleanup(client, &prefix).await?;
                let (polls, entries) = polls?;
                if !polls.iter().all(|r| r.redis.quiet) && retries < 2 {
                    retries += 1;
                    eprintln!("N={n}: other clients used Redis during the run; measuring again");
                    continue;
                }
                check_comparison(report, n, &polls, entries);
                kept[i].push(polls);
                break;
            }
        }
    }
    let mut out = Vec::new();
    for of_provider in kept {
        for k in 0..2 {
            let mut of_kind: Vec<ScenarioResult> =
                of_provider.iter().map(|r| r[k].clone()).collect();
            if of_kind.is_empty() {
                continue;
            }
            of_kind.sort_by(|a, b| a.wall_ms.total_cmp(&b.wall_ms));
            let walls: Vec<f64> = of_kind.iter().map(|r| r.wall_ms).collect();
            let mut median = of_kind.swap_remove(of_kind.len() / 2);
            median.runs_wall_ms = walls;
            out.push(median);
        }
    }
    Ok(out)
}

/// Counts of one provider's first and repeat polls: every alert published once, then
/// none, and the stream holding each alert once.
fn check_comparison(report: &mut Report, n: usize, polls: &[ScenarioResult; 2], entries: u64) {
    let n64 = n as u64;
    let [first, repeat] = polls;
    let provider = first.provider.as_str();
    let (f, r) = (&first.summary, &repeat.summary);
    report.check(
        format!("{provider}: first poll N={n}"),
        f.fetched == n64 && f.published == n64 && f.failed == 0 && first.redis.xadds == n64,
        format!(
            "expected fetched {n}, published {n}, {n} XADD; got fetched {}, published {}, failed {}, XADD {}",
            f.fetched, f.published, f.failed, first.redis.xadds
        ),
    );
    report.check(
        format!("{provider}: repeat poll N={n}"),
        r.fetched == n64
            && r.published == 0
            && r.skipped_unchanged == n64
            && r.failed == 0
            && r.commits == 0
            && repeat.redis.xadds == 0,
        format!(
            "expected fetched {n}, published 0, skipped {n}, no commit, no XADD; got fetched {}, published {}, skipped {}, failed {}, commits {}, XADD {}",
            r.fetched, r.published, r.skipped_unchanged, r.failed, r.commits, repeat.redis.xadds
        ),
    );
    report.check(
        format!("{provider}: stream after first and repeat N={n}"),
        entries == n64,
        format!("{entries} entries, expected {n}"),
    );
}

/// Counts of a paged first sync: every record fetched and published once, one request
/// per page, the stream holding each record once, every commit seen by the timing
/// decorator.
fn check_paged(report: &mut Report, r: &paged::PagedResult) {
    let n = r.n as u64;
    let pages = r.n.div_ceil(r.page_size.max(1)) as u64;
    let s = &r.summary;
    report.check(
        format!(
            "paged first sync N={} in pages of {}",
            r.n, r.page_size
        ),
        s.fetched == n
            && s.published == n
            && s.failed == 0
            && s.pages == pages
            && r.provider_read.requests == pages
            && r.stream_entries == n
            && r.commits_timed == s.commits,
        format!(
            "expected fetched {n}, published {n}, {pages} pages and requests, {n} stream entries, every commit timed; \
             got fetched {}, published {}, failed {}, {} pages, {} requests, {} entries, {} of {} commits timed",
            s.fetched,
            s.published,
            s.failed,
            s.pages,
            r.provider_read.requests,
            r.stream_entries,
            r.commits_timed,
            s.commits
        ),
    );
}

fn check_scale(report: &mut Report, s: &worker::ScaleResult) {
    report.check(
        "scale: every connector polled",
        s.never_polled == 0,
        format!("{} of {} never polled", s.never_polled, s.connectors),
    );
    report.check(
        "scale: every poll succeeded and was recorded",
        s.failed_polls == 0 && s.successful_polls == s.requests,
        format!(
            "{} requests served, {} successful and {} failed polls recorded",
            s.requests, s.successful_polls, s.failed_polls
        ),
    );
    report.check(
        "scale: stream holds each alert once plus each change once",
        s.stream_entries == s.stream_expected,
        format!(
            "{} entries, expected {}",
            s.stream_entries, s.stream_expected
        ),
    );
    report.check(
        "scale: worker stopped cleanly on SIGTERM",
        s.exit_code == Some(0),
        format!("exit code {:?}", s.exit_code),
    );
}

/// `connector_noaa::NoaaProvider` itself on a body above its cap: what does a poll say?
async fn probe_real_provider(url: &str, prefix: &str, mock: &str, n: usize) -> Result<String> {
    let settings = connector_redis::RedisSettings::from_url(url)?.with_key_prefix(prefix)?;
    let redis = connector_redis::RedisBackend::connect(settings).await?;
    let config = Arc::new(pipeline::connector_config("probe", mock, n, false));
    let mut connector = connector_noaa::factories().create(config, redis.backends())?;
    Ok(match connector.preview().await {
        Ok(p) => format!("read {} alerts", p.summary.fetched),
        Err(e) => format!("poll failed: {e}"),
    })
}

async fn ceiling(
    client: &fred::clients::Client,
    url: &str,
    base: &str,
    samples: &[Vec<(String, String)>],
    count: usize,
    checks: &mut Vec<report::Check>,
) -> Result<Ceiling> {
    let prefix = format!("{base}-ceiling");
    let entry_bytes = samples
        .iter()
        .map(|e| e.iter().map(|(f, v)| f.len() + v.len()).sum::<usize>())
        .sum::<usize>() as f64
        / samples.len().max(1) as f64;
    let stream = format!("{prefix}:fred");
    let fred = redis::xadd_ceiling_fred(client, &stream, samples, count, 512, 4).await;
    let written = redis::xlen(client, &stream).await.unwrap_or(0);
    cleanup(client, &prefix).await?;
    let fred = fred?;
    checks.push(report::Check {
        name: "ceiling: fred pipeline wrote every entry".into(),
        ok: written == count as u64,
        detail: format!("{written} of {count}"),
    });
    // The median-sized sample stands for all of them on redis-benchmark's command line.
    let mut by_size: Vec<&Vec<(String, String)>> = samples.iter().collect();
    by_size.sort_by_key(|e| e.iter().map(|(f, v)| f.len() + v.len()).sum::<usize>());
    let rb = match by_size.get(by_size.len() / 2) {
        Some(entry) => {
            let r = redis::xadd_ceiling_redis_benchmark(url, &format!("{prefix}:rb"), entry, count)
                .await;
            cleanup(client, &prefix).await?;
            r?
        }
        None => None,
    };
    let per_second = rb
        .as_ref()
        .map_or(fred.per_second, |r| r.per_second.max(fred.per_second));
    Ok(Ceiling {
        entry_bytes,
        fred,
        redis_benchmark: rb,
        per_second,
    })
}
