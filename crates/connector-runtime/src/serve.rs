//! The serve loop: `run` (the connectors of this process under their leases, reloads,
//! the HTTP API, signals) and `all` (the supervisor of one child per connector).

use super::*;

pub(super) async fn run(
    registry: ConnectorRegistry,
    factories: Factories,
    backends: Backends,
    source: ConfigSource,
    only: Option<String>,
    settings: &Settings,
) -> Result<ExitCode> {
    if let Some(why) = commands::nothing_configured(&registry, &source) {
        bail!(why);
    }
    check_runnable(&registry, &factories, only.as_deref())?;
    let metrics = Metrics::new(settings.otlp_meter.as_ref());
    let observer = metrics.clone();
    let mut backends = backends;
    backends.context = backends
        .context
        .clone()
        .observing(move |connector: &str, status| observer.http_response(connector, status));
    let mut manager = Manager::new(
        factories.clone(),
        backends.clone(),
        instance_id().into(),
        metrics.clone(),
        source,
        only,
        settings.grace,
    );
    let heartbeat_ttl = heartbeat_ttl(&manager, &registry, &factories)?;
    // Handlers first: a SIGTERM during start-up must still stop cleanly.
    let mut signals = Signals::new()?;
    // The listener before any lease: a port that is taken must fail the start while this
    // process holds nothing another replica could be waiting for.
    let api = serve_api(
        settings.http,
        backends.clone(),
        metrics.clone(),
        manager.status(),
    )
    .await?;
    if let Err(e) = manager.apply(registry).await {
        // Whatever was started before the failure gives its leases back.
        manager.shutdown(std::future::pending()).await;
        return Err(e);
    }
    let stop_heartbeat = tokio_util::sync::CancellationToken::new();
    let wakes = tokio::spawn(wake::listen(
        backends.clone(),
        manager.wakers(),
        metrics.clone(),
        stop_heartbeat.clone(),
    ));
    let heartbeat = tokio::spawn(share::heartbeat(
        backends.clone(),
        manager.instance(),
        heartbeat_ttl,
        manager.share(),
        stop_heartbeat.clone(),
    ));

    while let Signal::Reload = signals.next().await {
        tracing::info!("SIGHUP: reloading the configuration");
        manager.reload().await;
    }
    let code = stop(
        &mut manager,
        &mut signals,
        &backends.context,
        settings.grace,
    )
    .await;
    stop_heartbeat.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), heartbeat).await;
    wakes.abort();
    if let Some(api) = api {
        api.abort();
    }
    Ok(code)
}

/// The TTL workers count each other on: the shortest lease TTL of the connectors this
/// process runs, so a dead worker stops counting about when its leases lapse. None to run
/// is an error.
fn heartbeat_ttl(
    manager: &Manager,
    registry: &ConnectorRegistry,
    factories: &Factories,
) -> Result<Duration> {
    let selected = manager.selected(registry);
    if selected.is_empty() {
        bail!(
            "no enabled connector of a type this binary runs ({}); check \"enabled\" and \"type\" in the configuration",
            factories.types().join(", ")
        );
    }
    Ok(selected
        .iter()
        .map(|c| c.lease_ttl())
        .min()
        .unwrap_or(Duration::from_secs(30)))
}

/// Whether `run` can start: the named connector exists, this binary runs its type, and it
/// is enabled; connectors of types another binary runs are said to be skipped.
fn check_runnable(
    registry: &ConnectorRegistry,
    factories: &Factories,
    only: Option<&str>,
) -> Result<()> {
    if let Some(name) = only {
        let config = find(registry, name)?;
        runnable(factories, config)?;
        if !config.enabled {
            bail!("connector \"{name}\" is disabled in the configuration (\"enabled\": false)");
        }
    }
    for c in registry.enabled() {
        if factories.get(&c.connector_type).is_none() {
            tracing::info!(connector = %c.name, r#type = %c.connector_type, "not included in this binary; skipped");
        }
    }
    Ok(())
}

/// Shutdown: no more retries or backoff waits (a poll in flight ends within one request
/// timeout), the polls get `grace` to finish, a second signal cancels them; every lease is
/// released either way. The exit code says which.
async fn stop(
    manager: &mut Manager,
    signals: &mut Signals,
    context: &connector_core::context::Context,
    grace: Duration,
) -> ExitCode {
    context.stop().stop();
    tracing::info!(
        grace_s = grace.as_secs(),
        "shutting down: letting polls in flight finish (their failed requests are not retried)"
    );
    let second_signal = async {
        signals.next().await;
        tracing::warn!("second signal: cancelling the polls in flight");
    };
    match manager.shutdown(second_signal).await {
        manager::Stopped::Finished => {
            tracing::info!("all connectors stopped; leases released");
            ExitCode::SUCCESS
        }
        manager::Stopped::GraceOver => {
            tracing::warn!(
                grace_s = grace.as_secs(),
                "grace period over: polls in flight cancelled, leases released (SHUTDOWN_GRACE_SECONDS sets the period)"
            );
            ExitCode::SUCCESS
        }
        manager::Stopped::Interrupted => {
            tracing::warn!("stopped by a second signal; leases released");
            ExitCode::from(130)
        }
    }
}

pub(super) async fn all(
    cli: &Cli,
    settings: &Settings,
    registry: &ConnectorRegistry,
    factories: &Factories,
    source: &ConfigSource,
) -> Result<ExitCode> {
    if let Some(why) = commands::nothing_configured(registry, source) {
        bail!(why);
    }
    let names = runnable_names(registry, factories);
    if names.is_empty() {
        bail!(
            "no enabled connector of a type this binary runs ({})",
            factories.types().join(", ")
        );
    }
    let mut global_args = Vec::new();
    if let Some(config) = &cli.config {
        global_args.push("--config".into());
        global_args.push(config.clone().into_os_string());
    }
    if let Some(dir) = &cli.state_dir {
        global_args.push("--state-dir".into());
        global_args.push(dir.clone().into_os_string());
    }
    let (source, factories) = (source.clone(), factories.clone());
    let launch = supervisor::Launch {
        global_args,
        api: settings.http,
        reload: Box::new(move || {
            let env = connector_core::config::Environment::from_process();
            ConnectorRegistry::load_for(&source, &env, &factories, None)
                .map(|registry| runnable_names(&registry, &factories))
                .map_err(|errors| errors.to_string())
        }),
    };
    supervisor::supervise(names, launch).await
}

/// The enabled connectors of `registry` whose type this binary runs.
fn runnable_names(
    registry: &ConnectorRegistry,
    factories: &Factories,
) -> Vec<supervisor::Runnable> {
    registry
        .enabled()
        .filter(|c| factories.get(&c.connector_type).is_some())
        .map(|c| (c.name.clone(), Arc::clone(c)))
        .collect()
}

/// Starts the HTTP API on `addr` (`None`: `HTTP_PORT=off`).
async fn serve_api(
    addr: Option<std::net::SocketAddr>,
    backends: Backends,
    metrics: Arc<Metrics>,
    status: Arc<std::sync::RwLock<manager::Status>>,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (set HTTP_PORT to another port, or \"off\")")
    })?;
    tracing::info!(addr = %listener.local_addr()?, "HTTP API listening");
    let app = api::router(backends, metrics, status);
    Ok(Some(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "HTTP API stopped");
        }
    })))
}

pub(crate) enum Signal {
    Reload,
    Stop,
}

/// SIGHUP, SIGTERM and SIGINT as one stream of events.
pub(crate) struct Signals {
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    /// SIGINT is ignored (see [`SUPERVISED_VAR`]).
    supervised: bool,
}

impl Signals {
    pub(crate) fn new() -> Result<Self> {
        let supervised = std::env::var_os(SUPERVISED_VAR).is_some();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                hup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
                term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
                int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
                supervised,
            })
        }
        #[cfg(not(unix))]
        Ok(Self { supervised })
    }

    pub(crate) async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        loop {
            tokio::select! {
                _ = self.hup.recv() => return Signal::Reload,
                _ = self.term.recv() => return Signal::Stop,
                _ = self.int.recv() => {
                    if !self.supervised {
                        return Signal::Stop;
                    }
                    tracing::debug!("SIGINT ignored: the supervisor forwards the stop as SIGTERM");
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}
