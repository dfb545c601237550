//! The set of running connectors, and how it follows the configuration.
//!
//! On SIGHUP the config is loaded again. An invalid config is refused (its errors logged,
//! the running set untouched). Otherwise the running set is made to match: a removed or
//! disabled connector finishes its poll in flight, releases its lease and stops; a new one
//! starts; a changed one is stopped the same way and started again with its new settings.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use connector_core::Backends;
use connector_core::config::ConfigSource;
use connector_core::pipeline::now_ms;
use connector_core::{ConnectorConfig, ConnectorRegistry, Environment, Factories};
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::share::Share;
use crate::telemetry::Metrics;
use crate::wake::Wakers;
use crate::worker;

/// What the HTTP API shows about the configuration and reloads.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Every configured connector (redacted form is produced on demand).
    #[serde(skip)]
    pub registry: ConnectorRegistry,
    /// Names of the connectors this process runs.
    pub running: Vec<String>,
    /// Reloads applied or refused since start.
    pub reloads: u64,
    /// The last reload, if any.
    pub last_reload: Option<ReloadStatus>,
}

/// The outcome of one reload.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReloadStatus {
    /// When (RFC 3339).
    pub at: String,
    /// Applied or refused.
    pub ok: bool,
    /// The config errors that refused it.
    pub errors: Vec<String>,
}

struct Running {
    config: Arc<ConnectorConfig>,
    stop: CancellationToken,
    abort: CancellationToken,
    task: JoinHandle<()>,
}

/// How long cancelled connectors get to give their leases back: one Redis command each,
/// bounded by the command timeout (5 s by default).
const RELEASE_WAIT: Duration = Duration::from_secs(6);

/// How a shutdown ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every poll in flight finished within the grace period.
    Finished,
    /// The grace period ran out: the polls still in flight were cancelled.
    GraceOver,
    /// A second signal came first: the polls in flight were cancelled.
    Interrupted,
}

/// Starts, stops and restarts connector tasks.
pub struct Manager {
    factories: Factories,
    backends: Backends,
    instance: Arc<str>,
    metrics: Arc<Metrics>,
    source: ConfigSource,
    only: Option<String>,
    running: BTreeMap<String, Running>,
    status: Arc<RwLock<Status>>,
    share: Arc<Share>,
    /// Where webhook wakes find the connector tasks.
    wakers: Arc<Wakers>,
    /// How long polls get to finish when their connector stops (SHUTDOWN_GRACE_SECONDS),
    /// at a reload as at shutdown.
    grace: Duration,
}

impl Manager {
    /// A manager with nothing running yet.
    pub fn new(
        factories: Factories,
        backends: Backends,
        instance: Arc<str>,
        metrics: Arc<Metrics>,
        source: ConfigSource,
        only: Option<String>,
        grace: Duration,
    ) -> Self {
        Self {
            factories,
            backends,
            instance,
            metrics,
            source,
            only,
            running: BTreeMap::new(),
            status: Arc::default(),
            share: Share::new(0),
            wakers: Arc::default(),
            grace,
        }
    }

    /// This process's worker id.
    pub fn instance(&self) -> Arc<str> {
        self.instance.clone()
    }

    /// The fair-share counters the connector tasks use.
    pub fn share(&self) -> Arc<Share> {
        self.share.clone()
    }

    /// The connector tasks webhook wakes go to.
    pub fn wakers(&self) -> Arc<Wakers> {
        self.wakers.clone()
    }

    /// Shared view for the HTTP API.
    pub fn status(&self) -> Arc<RwLock<Status>> {
        self.status.clone()
    }

    /// The connectors of `registry` this process should run.
    pub fn selected(&self, registry: &ConnectorRegistry) -> Vec<Arc<ConnectorConfig>> {
        registry
            .enabled()
            .filter(|c| self.factories.get(&c.connector_type).is_some())
            .filter(|c| self.only.as_ref().is_none_or(|n| *n == c.name))
            .cloned()
            .collect()
    }

    /// Builds connector `name` and starts its worker task.
    fn start(
        &mut self,
        name: &str,
        config: Arc<ConnectorConfig>,
    ) -> Result<(), connector_core::pipeline::CreateError> {
        let connector = self
            .factories
            .create(config.clone(), self.backends.clone())?;
        tracing::info!(connector = %name, r#type = %config.connector_type, interval_ms = config.poll_interval_ms, "starting");
        let stop = CancellationToken::new();
        let abort = CancellationToken::new();
        let shared = worker::Shared {
            backends: self.backends.clone(),
            instance_id: self.instance.clone(),
            metrics: self.metrics.clone(),
            share: self.share.clone(),
        };
        let task = tokio::spawn(worker::run_connector(
            connector,
            shared,
            self.wakers.cell(name),
            stop.clone(),
            abort.clone(),
        ));
        self.running.insert(
            name.to_owned(),
            Running {
                config,
                stop,
                abort,
                task,
            },
        );
        Ok(())
    }

    /// Makes the running set match `registry`.
    pub async fn apply(&mut self, registry: ConnectorRegistry) -> anyhow::Result<()> {
        // The process's redactor (the log writer's) learns the credentials of every
        // configuration applied, reloads included.
        crate::learn_secrets(self.backends.context.redactor(), &registry);
        let wanted: BTreeMap<String, Arc<ConnectorConfig>> = self
            .selected(&registry)
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect();
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(name, r)| wanted.get(*name).is_none_or(|w| **w != *r.config))
            .map(|(name, _)| name.clone())
            .collect();
        // Stop first, then start: a changed connector must give its lease up before its
        // new incarnation asks for it.
        let (names, mut stopping): (Vec<String>, Vec<Running>) = stale
            .into_iter()
            .filter_map(|n| self.running.remove(&n).map(|r| (n, r)))
            .unzip();
        // Bounded like a shutdown: a hung poll must not keep a reload (and the SIGTERM
        // behind it) waiting.
        if stop_tasks(&mut stopping, self.grace, std::future::pending()).await != Stopped::Finished
        {
            tracing::warn!(
                grace_s = self.grace.as_secs(),
                "a stopped connector's poll outlasted the grace period: cancelled, lease released"
            );
        }
        for name in names {
            let why = if wanted.contains_key(&name) {
                "changed"
            } else {
                "removed or disabled"
            };
            tracing::info!(connector = %name, "{why}: stopped");
        }
        let names: Vec<&str> = wanted.keys().map(String::as_str).collect();
        self.share.set_connectors(&names);
        let mut errors = Vec::new();
        for (name, config) in wanted {
            if self.running.contains_key(&name) {
                continue;
            }
            if let Err(e) = self.start(&name, config) {
                errors.push(format!("connector \"{name}\": {e}"));
            }
        }
        let mut status = self
            .status
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        status.registry = registry;
        status.running = self.running.keys().cloned().collect();
        drop(status);
        if errors.is_empty() {
            Ok(())
        } else {
            anyhow::bail!(errors.join("; "))
        }
    }

    /// SIGHUP: load the config again and apply it, or keep the running one.
    pub async fn reload(&mut self) {
        let env = Environment::from_process();
        let result =
            ConnectorRegistry::load_for(&self.source, &env, &self.factories, self.only.as_deref());
        let ok = result.is_ok();
        let errors = match result {
            Ok(registry) => match self.apply(registry).await {
                Ok(()) => Vec::new(),
                Err(e) => vec![e.to_string()],
            },
            Err(errors) => {
                tracing::error!("reload refused, the running configuration stays: {errors}");
                errors.messages()
            }
        };
        if ok {
            tracing::info!(running = self.running.len(), "configuration reloaded");
        }
        self.metrics.reloaded(ok);
        let mut status = self
            .status
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        status.reloads += 1;
        status.last_reload = Some(ReloadStatus {
            at: connector_core::signal::rfc3339_millis(now_ms()),
            ok,
            errors,
        });
    }

    /// Stops every connector: polls in flight get the grace period to finish; when it runs
    /// out, or `interrupt` completes first (a second signal), they are cancelled. Either
    /// way every lease is released before this returns, so no exit path leaves one held
    /// for a TTL.
    pub async fn shutdown(&mut self, interrupt: impl std::future::Future<Output = ()>) -> Stopped {
        let mut all: Vec<Running> = std::mem::take(&mut self.running).into_values().collect();
        stop_tasks(&mut all, self.grace, interrupt).await
    }
}

/// Stops `tasks`: their polls get `grace` to finish, or until `interrupt`; then they are
/// cancelled, and their leases released either way.
async fn stop_tasks(
    tasks: &mut [Running],
    grace: Duration,
    interrupt: impl std::future::Future<Output = ()>,
) -> Stopped {
    for r in tasks.iter() {
        r.stop.cancel();
    }
    let how = tokio::select! {
        () = wait_for(tasks) => return Stopped::Finished,
        () = tokio::time::sleep(grace) => Stopped::GraceOver,
        () = interrupt => Stopped::Interrupted,
    };
    for r in tasks.iter() {
        r.abort.cancel();
    }
    if tokio::time::timeout(RELEASE_WAIT, wait_for(tasks))
        .await
        .is_err()
    {
        tracing::warn!("a lease could not be released in time; it lapses after its TTL");
    }
    how
}

/// Waits for every task; a task already finished is not polled again.
async fn wait_for(all: &mut [Running]) {
    for r in all.iter_mut() {
        if !r.task.is_finished() {
            let _ = (&mut r.task).await;
        }
    }
}
