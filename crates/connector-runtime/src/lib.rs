#![doc = include_str!("../README.md")]

mod cli;
mod worker;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use connector_core::config::ConfigSource;
use connector_core::embedded::EmbeddedBackend;
use connector_core::ports::Backends;
use connector_core::registry::BUILTIN_TYPES;
use connector_core::{ConnectorConfig, ConnectorRegistry, Environment, Factories};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use cli::{Cli, Command, LeaseAction, StateAction};

/// Time in-flight polls get to finish after SIGTERM/SIGINT; fits Kubernetes' default 30 s
/// termination grace period with room to release leases.
const DEFAULT_GRACE: Duration = Duration::from_secs(25);

/// The whole program of a connector binary: parse the command line, run the command.
///
/// A provider's `main` is `connector_runtime::main(factories)`, where `factories` lists
/// the connector types the binary includes.
pub fn main(factories: Factories) -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli, factories)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to standard error, so standard output carries only signals and command output.
/// `LOG_FORMAT=json` for machine-readable lines; `RUST_LOG` sets levels (default `info`).
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json")) {
        builder.json().flatten_event(true).init();
    } else {
        builder.with_ansi(false).init();
    }
}

/// Runs one parsed command line; `main` is this plus tracing and a tokio runtime. Public so
/// examples and tests can drive a binary's behaviour in-process.
pub async fn execute(mut cli: Cli, factories: Factories) -> Result<ExitCode> {
    let env = Environment::from_process();
    let source = match &cli.config {
        Some(path) => ConfigSource::File(path.clone()),
        None => ConfigSource::from_env(&env),
    };
    let command = cli.command.take().unwrap_or(Command::Run { name: None });
    if let Command::Schema = command {
        println!(
            "{}",
            serde_json::to_string_pretty(&factories.json_schema())?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let registry = match ConnectorRegistry::load(&source, &env, &factories) {
        Ok(r) => r,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Command::Validate = command {
        return validate(&registry, &factories, &source);
    }
    if let Command::List = command {
        return list(&registry, &factories);
    }
    let backends = connect(&cli, &env);
    match command {
        Command::Run { name } => run(registry, factories, backends, name).await,
        Command::Poll { name, dry_run, .. } => {
            poll(&registry, &factories, backends, &name, dry_run).await
        }
        Command::State { action } => state(&registry, backends, action).await,
        Command::Lease { action } => lease(&registry, backends, action).await,
        Command::Metrics { name } => metrics(&registry, backends, name).await,
        Command::Schema | Command::Validate | Command::List => Ok(ExitCode::SUCCESS),
    }
}

/// Chooses the backend: Redis when `REDIS_URL` is set, else in-process.
fn connect(cli: &Cli, env: &Environment) -> Backends {
    if env.get("REDIS_URL").is_some_and(|u| !u.is_empty()) {
        tracing::warn!(
            "REDIS_URL is set but this build has no Redis backend yet; running embedded"
        );
    }
    match &cli.state_dir {
        Some(dir) => tracing::info!(
            state_dir = %dir.display(),
            "no REDIS_URL: embedded mode; signals are printed to stdout as JSON lines, state is kept in the folder"
        ),
        None => tracing::info!(
            "no REDIS_URL: embedded mode; signals are printed to stdout as JSON lines, state is kept in memory (set STATE_DIR to keep it across restarts)"
        ),
    }
    Backends::from_one(Arc::new(EmbeddedBackend::stdout(cli.state_dir.clone())))
}

/// A process-unique holder id for leases: host, pid and a random part, so two processes
/// on one host (or a restarted pid) never share an id.
fn instance_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

fn find<'a>(registry: &'a ConnectorRegistry, name: &str) -> Result<&'a Arc<ConnectorConfig>> {
    registry.get(name).with_context(|| {
        let names: Vec<&str> = registry.all().iter().map(|c| c.name.as_str()).collect();
        format!(
            "no connector named \"{name}\"; configured: {}",
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        )
    })
}

fn runnable(factories: &Factories, config: &ConnectorConfig) -> Result<()> {
    if factories.get(&config.connector_type).is_some() {
        return Ok(());
    }
    let binary = if BUILTIN_TYPES.contains(&config.connector_type.as_str()) {
        format!(
            "; run it with connector-{} or the universal `connectors` binary",
            config
                .connector_type
                .to_ascii_lowercase()
                .replace("_weather", "")
        )
    } else {
        String::new()
    };
    bail!(
        "connector \"{}\" has type {}, which this binary does not include (it runs {}){binary}",
        config.name,
        config.connector_type,
        factories.types().join(", ")
    )
}

async fn run(
    registry: ConnectorRegistry,
    factories: Factories,
    backends: Backends,
    only: Option<String>,
) -> Result<ExitCode> {
    let selected: Vec<Arc<ConnectorConfig>> = match &only {
        Some(name) => {
            let config = find(&registry, name)?;
            runnable(&factories, config)?;
            if !config.enabled {
                bail!("connector \"{name}\" is disabled in the configuration (\"enabled\": false)");
            }
            vec![config.clone()]
        }
        None => {
            for c in registry.enabled() {
                if factories.get(&c.connector_type).is_none() {
                    tracing::info!(connector = %c.name, r#type = %c.connector_type, "not included in this binary; skipped");
                }
            }
            registry
                .enabled()
                .filter(|c| factories.get(&c.connector_type).is_some())
                .cloned()
                .collect()
        }
    };
    if selected.is_empty() {
        bail!(
            "no enabled connector of a type this binary runs ({}); check \"enabled\" and \"type\" in the configuration",
            factories.types().join(", ")
        );
    }
    let instance: Arc<str> = instance_id().into();
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    for config in selected {
        let connector = factories
            .create(config.clone(), backends.clone())
            .with_context(|| format!("connector \"{}\"", config.name))?;
        tracing::info!(connector = %config.name, r#type = %config.connector_type, interval_ms = config.poll_interval_ms, "starting");
        tracker.spawn(worker::run_connector(
            connector,
            backends.clone(),
            instance.clone(),
            shutdown.clone(),
        ));
    }
    tracker.close();
    wait_for_signal().await;
    tracing::info!(
        grace_s = DEFAULT_GRACE.as_secs(),
        "shutting down: letting polls in flight finish"
    );
    shutdown.cancel();
    tokio::select! {
        () = tracker.wait() => {
            tracing::info!("all connectors stopped");
            Ok(ExitCode::SUCCESS)
        }
        () = tokio::time::sleep(DEFAULT_GRACE) => {
            tracing::warn!("grace period over; exiting with polls still in flight");
            Ok(ExitCode::FAILURE)
        }
        () = wait_for_signal() => {
            tracing::warn!("second signal: exiting at once");
            Ok(ExitCode::from(130))
        }
    }
}

/// SIGTERM or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn validate(
    registry: &ConnectorRegistry,
    factories: &Factories,
    source: &ConfigSource,
) -> Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(&registry.redacted())?);
    let here = registry
        .all()
        .iter()
        .filter(|c| factories.get(&c.connector_type).is_some())
        .count();
    eprintln!(
        "{} is valid: {} connector(s), {} enabled, {here} of a type this binary runs ({})",
        source.describe(),
        registry.all().len(),
        registry.enabled().count(),
        factories.types().join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

fn list(registry: &ConnectorRegistry, factories: &Factories) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<24} {:<14} {:<8} {:>12}  RUNS HERE",
        "NAME", "TYPE", "ENABLED", "INTERVAL_MS"
    )?;
    for c in registry.all() {
        writeln!(
            out,
            "{:<24} {:<14} {:<8} {:>12}  {}",
            c.name,
            c.connector_type,
            c.enabled,
            c.poll_interval_ms,
            if factories.get(&c.connector_type).is_some() {
                "yes"
            } else {
                "no"
            }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn poll(
    registry: &ConnectorRegistry,
    factories: &Factories,
    backends: Backends,
    name: &str,
    dry_run: bool,
) -> Result<ExitCode> {
    let config = find(registry, name)?.clone();
    runnable(factories, &config)?;
    let mut connector = factories.create(config.clone(), backends.clone())?;
    if dry_run {
        let preview = connector.preview().await?;
        let mut out = std::io::stdout().lock();
        for e in &preview.entries {
            writeln!(out, "{}", e.signal)?;
        }
        eprintln!(
            "dry run, nothing committed: {}",
            serde_json::to_string(&preview.summary)?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let instance = instance_id();
    let Some(lease) = backends
        .leases
        .acquire(name, &instance, config.lease_ttl())
        .await?
    else {
        bail!(
            "connector \"{name}\" is leased by another instance (see `lease show {name}`); not polling"
        );
    };
    let result = connector.poll(&lease).await;
    backends.leases.release(&lease).await?;
    let summary = result?;
    eprintln!("{}", serde_json::to_string(&summary)?);
    Ok(ExitCode::SUCCESS)
}

async fn state(
    registry: &ConnectorRegistry,
    backends: Backends,
    action: StateAction,
) -> Result<ExitCode> {
    match action {
        StateAction::Show { name, versions } => {
            find(registry, &name)?;
            let state = backends.state.load(&name).await?;
            let mut shown = serde_json::json!({
                "connector": name,
                "cursor": state.cursor,
                "versionCount": state.versions.len(),
            });
            if versions {
                let mut list: Vec<_> = state.versions.iter().collect();
                list.sort();
                shown["versions"] = serde_json::json!(list);
            }
            println!("{}", serde_json::to_string_pretty(&shown)?);
        }
        StateAction::Reset { name } => {
            find(registry, &name)?;
            backends.state.reset(&name).await?;
            eprintln!("state of {name} reset: its next poll publishes every current item");
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn lease(
    registry: &ConnectorRegistry,
    backends: Backends,
    action: LeaseAction,
) -> Result<ExitCode> {
    match action {
        LeaseAction::Show { name } => {
            find(registry, &name)?;
            let holder = backends.leases.holder(&name).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({ "connector": name, "holder": holder })
                )?
            );
        }
        LeaseAction::Release { name } => {
            find(registry, &name)?;
            let removed = backends.leases.force_release(&name).await?;
            eprintln!(
                "{}",
                if removed {
                    format!(
                        "lease of {name} released; its former holder's next commit will be fenced"
                    )
                } else {
                    format!("{name} had no lease")
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn metrics(
    registry: &ConnectorRegistry,
    backends: Backends,
    name: Option<String>,
) -> Result<ExitCode> {
    let names: Vec<String> = match name {
        Some(n) => {
            find(registry, &n)?;
            vec![n]
        }
        None => registry.all().iter().map(|c| c.name.clone()).collect(),
    };
    let mut all = serde_json::Map::new();
    for n in names {
        let m = backends.metrics.get(&n).await?;
        all.insert(n, serde_json::to_value(m)?);
    }
    println!("{}", serde_json::to_string_pretty(&all)?);
    Ok(ExitCode::SUCCESS)
}
