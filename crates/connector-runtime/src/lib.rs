#![doc = include_str!("../README.md")]

mod api;
mod backend;
mod catalog;
mod cli;
mod commands;
mod exposition;
mod fleet;
mod manager;
mod product;
mod serve;
pub mod settings;
mod share;
mod supervisor;
pub mod telemetry;
mod wake;
mod webhooks;
mod worker;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use connector_core::Backends;
use connector_core::config::ConfigSource;
use connector_core::{ConnectorConfig, ConnectorRegistry, Environment, Factories};

use crate::commands::{explain_poll, lease, list, metrics, poll, state, validate};
use crate::manager::Manager;
use crate::serve::{all, run};
use crate::settings::Settings;
use crate::telemetry::Metrics;

pub(crate) use backend::{connect, embedded_reach, instance_id};
pub use cli::{BudgetAction, CatalogAction, Cli, Command, LeaseAction, StateAction};
pub use product::{PRODUCT, with_product};
pub(crate) use product::{runnable, started_as};

/// The whole program of a connector binary: parse the command line, run the command.
///
/// A provider's `main` is `connector_runtime::main(factories)`, where `factories` lists
/// the connector types the binary includes.
pub fn main(factories: Factories) -> ExitCode {
    main_named(&started_as(), factories)
}

/// [`main`] for a binary that names itself (`env!("CARGO_BIN_NAME")`), so `--version`,
/// logs and messages say `connector-noaa` even when the file is started under another
/// name (a container image's fixed entry point).
pub fn main_named(name: &str, factories: Factories) -> ExitCode {
    let factories = with_product(factories);
    // Each binary names itself in --help and --version, not the library it is built on.
    // What sets this binary apart from its siblings: the types it runs.
    let types = factories.types().join(", ");
    let about = format!(
        "Polls external APIs of type {types} and appends every new or changed item to a Redis Stream."
    );
    let command = <Cli as clap::CommandFactory>::command()
        .name(&*Box::leak(name.to_owned().into_boxed_str()))
        .about(about.clone())
        .long_about(format!(
            "{about}\n\nWith REDIS_URL set, state, leases and metrics live in Redis and signals go to the \
             connector's output stream. Without it, everything stays in this process and signals are \
             printed to standard output as JSON lines (logs go to standard error)."
        ))
        .version(env!("CARGO_PKG_VERSION"));
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let env = Environment::from_process();
    // Settings first: a bad LOG_FORMAT or port is refused before anything starts.
    let Some(mut settings) = settings_or_report(&env, &cli) else {
        return ExitCode::FAILURE;
    };
    if let (Some(supervised), Some(Command::Run { name: Some(name) })) =
        (env.get(SUPERVISED_VAR), &cli.command)
    {
        settings.child = Some(name.clone());
        settings.startup_notes = supervised == FIRST_CHILD;
    }
    // A one-shot command's answer is its output: its progress lines only when asked for.
    let serving = matches!(cli.command, None | Some(Command::Run { .. } | Command::All));
    if !serving && env.get("RUST_LOG").is_none_or(|v| v.trim().is_empty()) {
        settings.log_filter = "warn".into();
    }
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
    let telemetry = runtime.block_on(async { telemetry::init(name, &settings) });
    settings.otlp_meter = telemetry.meter();
    let code = match runtime.block_on(execute_with(cli, factories, env, settings)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

/// Logs to standard error with `RUST_LOG` and `LOG_FORMAT` (see [`telemetry::init`]), for
/// examples that call [`execute`] themselves.
pub fn init_tracing() {
    if let Ok(settings) = Settings::from_env(&Environment::from_process(), None) {
        // Without OTLP export configured there is nothing to flush, so the handle can go.
        let _ = telemetry::init("connectors", &settings);
    }
}

/// Runs one parsed command line; `main` is this plus tracing, OTLP export and a tokio
/// runtime. Public so examples and tests can drive a binary's behaviour in-process.
pub async fn execute(cli: Cli, factories: Factories) -> Result<ExitCode> {
    let factories = with_product(factories);
    let env = Environment::from_process();
    let Some(settings) = settings_or_report(&env, &cli) else {
        return Ok(ExitCode::FAILURE);
    };
    execute_with(cli, factories, env, settings).await
}

/// The runtime settings, or `None` after printing every bad one.
fn settings_or_report(env: &Environment, cli: &Cli) -> Option<Settings> {
    Settings::from_env(env, cli.state_dir.clone())
        .inspect_err(|errors| eprintln!("{errors}"))
        .ok()
}

async fn execute_with(
    mut cli: Cli,
    factories: Factories,
    env: Environment,
    settings: Settings,
) -> Result<ExitCode> {
    // One connection pool (proxies, extra CA certificates) for every connector, built
    // whatever the command: settings that make no client are a mistake `validate` reports
    // too. Tokens the connectors obtain at run time join the log writer's redactor.
    let context = connector_core::context::Context::new(&settings.client)
        .map_err(|e| anyhow::anyhow!("cannot set up the HTTP client: {e}"))?
        .with_redactor(settings.redactor.clone())
        .with_concurrent_polls(settings.concurrent_polls);
    let source = match &cli.config {
        Some(path) => ConfigSource::File(path.clone()),
        None => ConfigSource::from_env(&env),
    };
    let command = command_or_run(&mut cli, &env);
    if let Some(done) = without_config(&command, &factories, &settings).await {
        return done;
    }
    // A process that runs or polls one connector needs only that one's variables.
    let only = match &command {
        Command::Run { name: Some(n) } | Command::Poll { name: n, .. } => Some(n.clone()),
        _ => None,
    };
    let registry = match ConnectorRegistry::load_for(&source, &env, &factories, only.as_deref()) {
        Ok(r) => r,
        Err(errors) => {
            let said = errors.to_string();
            eprintln!("{}", telemetry::said_by(settings.child.as_deref(), &said));
            return Ok(ExitCode::FAILURE);
        }
    };
    learn_secrets(&settings.redactor, &registry);
    if let Command::Validate { print } = command {
        return validate(&registry, &factories, &source, &settings.redactor, print);
    }
    if let Command::List = command {
        return list(&registry, &factories);
    }
    if let Command::All = command {
        return all(&cli, &settings, &registry, &factories, &source).await;
    }
    if settings.redis.is_none() {
        embedded_reach(&command, &settings)?;
    }
    let mut backends = connect(&settings, matches!(command, Command::Run { .. })).await?;
    // The connection's rate budgets (Redis's, shared across replicas) go with the process's
    // context.
    backends.context = context.with_budgets(backends.context.shared_budgets());
    with_backends(command, registry, factories, backends, source, &settings).await
}

/// The commands that read no connector config (`health`, `catalog`, `schema`), run; `None`
/// for any other.
async fn without_config(
    command: &Command,
    factories: &Factories,
    settings: &Settings,
) -> Option<Result<ExitCode>> {
    match command {
        Command::Health => Some(commands::health(settings).await),
        Command::Catalog { action, markdown } => {
            Some(catalog::run(factories, action.as_ref(), *markdown))
        }
        Command::Schema => Some(
            serde_json::to_string_pretty(&factories.json_schema())
                .map(|schema| {
                    println!("{schema}");
                    ExitCode::SUCCESS
                })
                .map_err(Into::into),
        ),
        _ => None,
    }
}

/// The commands that act through the backends, run.
async fn with_backends(
    command: Command,
    registry: ConnectorRegistry,
    factories: Factories,
    backends: Backends,
    source: ConfigSource,
    settings: &Settings,
) -> Result<ExitCode> {
    match command {
        Command::Run { name } => run(registry, factories, backends, source, name, settings).await,
        Command::Poll {
            name,
            dry_run,
            explain,
            ..
        } => {
            if explain {
                return explain_poll(&registry, &factories, backends, &name, &settings.redactor)
                    .await;
            }
            poll(&registry, &factories, backends, &name, dry_run).await
        }
        Command::State { action } => state(&registry, backends, action).await,
        Command::Lease { action } => lease(&registry, backends, action).await,
        Command::Budget { action } => commands::budget(backends, action).await,
        Command::Metrics { name } => metrics(&registry, backends, name).await,
        // Answered before the backends connect (`without_config`, `execute_with`).
        Command::Schema
        | Command::Catalog { .. }
        | Command::Validate { .. }
        | Command::List
        | Command::All
        | Command::Health => bail!("this command is not one run with the backends"),
    }
}

/// The command to run: none means `run`, and `run` honours CONNECTOR_NAME either way (clap
/// only reads the variable when the sub-command is spelled out).
fn command_or_run(cli: &mut Cli, env: &Environment) -> Command {
    cli.command.take().unwrap_or_else(|| Command::Run {
        name: env
            .get("CONNECTOR_NAME")
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
    })
}

/// Registers every credential of `registry` with the log writer's redactor, warning about
/// one so short that masking it would mask ordinary text too.
pub(crate) fn learn_secrets(
    redactor: &connector_core::redact::Redactor,
    registry: &ConnectorRegistry,
) {
    for config in registry.all() {
        // Said once, when the credentials are first learnt (start-up and reloads both
        // register them).
        if !redactor.add_all(config.secret_values()) {
            continue;
        }
        let short = config
            .secret_values()
            .filter(|s| s.len() < connector_core::redact::MIN_SECRET_LEN)
            .count();
        if short > 0 {
            tracing::warn!(
                connector = %config.name,
                "{short} credential(s) shorter than {} characters: check they are the real \
                 value; they are masked wherever they appear in logs, which may hide other text",
                connector_core::redact::MIN_SECRET_LEN
            );
        }
    }
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

/// Now in UNIX milliseconds by `context`'s clock: what the runtime's logic reads (lease
/// expiry shown, webhook latency, health ages), so a test on a manual clock sees the same.
pub(crate) fn now_ms(context: &connector_core::context::Context) -> u64 {
    u64::try_from(context.clock().now_ms()).unwrap_or(0)
}

/// A child of `all` ignores SIGINT: Ctrl-C in a terminal reaches the whole process group
/// and the supervisor forwards it as SIGTERM; taking both would count as a second signal
/// and skip the grace period.
pub(crate) use connector_core::config::SUPERVISED_VAR;

/// The value of [`SUPERVISED_VAR`] for the child that says the start-up notes.
pub(crate) const FIRST_CHILD: &str = "first";

/// A connector's metrics as the CLI and the HTTP API show them: the metrics hash's fields
/// (camelCase), with its two times in RFC 3339 instead of the hash's UNIX milliseconds.
pub(crate) fn metrics_json(m: &connector_core::ports::ConnectorMetrics) -> serde_json::Value {
    let mut shown = serde_json::to_value(m).unwrap_or_default();
    for (field, at) in [
        ("lastPollTime", m.last_poll_time),
        ("lastSuccessTime", m.last_success_time),
    ] {
        shown[field] = at.map_or(serde_json::Value::Null, |ms| {
            connector_core::signal::rfc3339_millis(ms).into()
        });
    }
    shown
}
