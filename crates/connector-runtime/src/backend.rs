//! Which backend the process uses: Redis at `REDIS_URL` (leases, state, metrics and the
//! output stream there, rate budgets shared across replicas), else the embedded one
//! (signals to stdout, state in memory or in `STATE_DIR`); and the lease holder id.

use std::sync::Arc;

use anyhow::{Result, bail};
use connector_core::Backends;
use connector_core::embedded::EmbeddedBackend;
use connector_redis::{RedisBackend, RedisSettings};

use crate::settings::Settings;
use crate::{Command, StateAction};

/// Chooses the backend: Redis when `REDIS_URL` is set, else in-process. A Redis that
/// cannot be reached at start-up is an error (a misconfigured deployment must not quietly
/// run embedded); later outages are survived.
pub(crate) async fn connect(settings: &Settings, serving: bool) -> Result<Backends> {
    let notes = settings.startup_notes;
    if let Some(redis) = settings.redis.clone() {
        let settings: RedisSettings = redis;
        let shown = settings.display_url().to_string();
        let backend = RedisBackend::connect(settings).await.map_err(|e| {
            anyhow::anyhow!(
                "{e}. Start one with `just infra-up`, or `redis-server --port 6379 --save \"\" --daemonize yes` \
                 (Debian's redis-server), or unset REDIS_URL to run embedded"
            )
        })?;
        let mut backends = backend.backends();
        match backend.budget_secret().await {
            Ok(secret) => {
                let budgets = connector_core::budget::Budgets::new(backend.clone(), &secret);
                backends.context = backends.context.with_budgets(Arc::new(budgets));
            }
            // A Redis that refuses the write (read-only, ACLs): each process paces alone.
            Err(e) => tracing::warn!(
                error = %e,
                "rate budgets are not shared: the deployment's budget key could not be read or made; this process paces by its own"
            ),
        }
        if !notes {
            return Ok(backends);
        }
        tracing::info!(redis = %shown, topology = ?backend.topology(), "Redis backend: leases, state, metrics and the output stream live in Redis");
        if serving && backend.persistent().await == Some(false) {
            tracing::warn!(
                redis = %shown,
                "Redis keeps no data across a restart (appendonly no, save \"\"): a restart empties the connectors' state and every current item is published again; set appendonly yes"
            );
        }
        return Ok(backends);
    }
    match &settings.state_dir {
        _ if !settings.startup_notes => {}
        Some(dir) => tracing::info!(
            state_dir = %dir.display(),
            "no REDIS_URL: embedded mode; signals are printed to stdout as JSON lines, state is kept in the folder"
        ),
        None => tracing::info!(
            "no REDIS_URL: embedded mode; signals are printed to stdout as JSON lines, state is kept in memory (set STATE_DIR to keep it across restarts)"
        ),
    }
    Ok(Backends::from_one(Arc::new(EmbeddedBackend::stdout(
        settings.state_dir.clone(),
    ))))
}

/// Refuses the inspection commands that embedded mode cannot answer: without Redis, a
/// running process keeps its leases and metrics in its own memory, and its state in memory
/// or in `STATE_DIR`, so a second process would read an empty store and report nothing.
pub(crate) fn embedded_reach(command: &Command, settings: &Settings) -> Result<()> {
    let running = "a running connector process answers on its HTTP API instead \
                   (/metrics/connectors, /health/connectors)";
    match command {
        Command::Lease { .. } => bail!(
            "`lease` needs REDIS_URL: in embedded mode leases live in the running process's memory; {running}"
        ),
        Command::Metrics { .. } => bail!(
            "`metrics` needs REDIS_URL: in embedded mode metrics live in the running process's memory; {running}"
        ),
        Command::Budget { .. } => bail!(
            "`budget` needs REDIS_URL: in embedded mode each process keeps its own rate budgets in memory"
        ),
        Command::State { .. } if settings.state_dir.is_none() => bail!(
            "`state` needs REDIS_URL or STATE_DIR (--state-dir): without either, state lives in the running process's memory"
        ),
        Command::State {
            action: StateAction::Reset { .. },
        } => {
            tracing::warn!(
                "embedded mode: stop the process that runs this connector first; it keeps its state in memory and would write it back over the reset"
            );
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A process-unique holder id for leases: host, pid and a random part, so two processes
/// on one host (or a restarted pid) never share an id.
pub(crate) fn instance_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}
