//! `all`: one child process per enabled connector, restarted when it dies.
//!
//! For hosts without an orchestrator: each connector runs as `<this binary> run NAME`, so
//! a crash, a leak or a stuck poll in one cannot touch the others. A child that exits is
//! started again after a delay that doubles up to a minute (and resets once a child has
//! run for a minute). SIGHUP makes the supervisor read the configuration once: a refused
//! file changes nothing; otherwise removed or disabled connectors' children stop, added
//! ones start (each child keeps its HTTP port across reloads) and the others reload the
//! file. SIGTERM and SIGINT are forwarded and the supervisor exits once every child has
//! stopped.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::{Signal as NixSignal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::broadcast;
use tokio::time::Instant;

const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(60);
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// How long children get to release their leases after a second signal.
const CHILD_RELEASE_WAIT: Duration = Duration::from_secs(10);

/// What the supervisor tells its children.
#[derive(Debug, Clone, Copy)]
enum Order {
    /// Stop the child and start it again at once (its configuration changed).
    Restart,
    Stop,
}

/// A connector a child runs, with its configuration (compared at a reload).
pub type Runnable = (String, std::sync::Arc<connector_core::ConnectorConfig>);

/// How to start one child.
pub struct ChildSpec {
    /// The connector.
    pub name: String,
    /// Arguments before `run NAME` (global options such as `--config`).
    pub global_args: Vec<std::ffi::OsString>,
    /// The child's `HTTP_PORT` (`off`, or a port of its own).
    pub http_port: String,
    /// The one child that says the process-wide start-up notes (embedded or Redis mode,
    /// Redis without persistence), so they are not repeated by every child.
    pub notes: bool,
}

/// How the supervisor starts its children and reads the configuration again.
pub struct Launch {
    /// Arguments before `run NAME` (global options such as `--config`).
    pub global_args: Vec<std::ffi::OsString>,
    /// The supervisor's own API address (`HTTP_BIND`:`HTTP_PORT`): it serves the fleet's
    /// health there, and each child gets a port above it, kept for its name across
    /// reloads; `None` turns every API off.
    pub api: Option<std::net::SocketAddr>,
    /// The enabled connectors this binary runs, read from the configuration again (for
    /// SIGHUP), or why the file is refused.
    pub reload: Box<dyn Fn() -> Result<Vec<Runnable>, String> + Send>,
}

/// One running child's task, its orders and the configuration it runs.
struct Running {
    orders: broadcast::Sender<Order>,
    task: tokio::task::JoinHandle<()>,
    config: std::sync::Arc<connector_core::ConnectorConfig>,
}

/// The children, by connector name, with the port each keeps across reloads.
struct Children {
    exe: std::path::PathBuf,
    launch: Launch,
    running: std::collections::BTreeMap<String, Running>,
    ports: std::collections::BTreeMap<String, u16>,
    /// Children told to stop by a reload, still finishing.
    stopping: Vec<tokio::task::JoinHandle<()>>,
    /// The running children, as the supervisor's API reaches them.
    fleet: crate::fleet::Members,
}

impl Children {
    /// The port of `name`'s child: the one it had, else the lowest one above the base that
    /// no other child has and nothing on the machine listens on (another program may hold
    /// the port next to the supervisor's; a child that cannot listen would not start).
    fn port_for(&mut self, name: &str, config: &connector_core::ConnectorConfig) -> String {
        let Some(api) = self.launch.api else {
            return "off".to_owned();
        };
        let base = api.port();
        let webhook_cap = config
            .webhook
            .as_ref()
            .filter(|w| !w.unresolved())
            .map(|w| w.max_body_bytes);
        if let Some(port) = self.ports.get(name) {
            self.serving(
                name,
                Some(crate::fleet::Member {
                    port: *port,
                    webhook_cap,
                }),
            );
            return port.to_string();
        }
        let taken: std::collections::BTreeSet<u16> = self.ports.values().copied().collect();
        let free = |p: u16| std::net::TcpListener::bind((api.ip(), p)).is_ok();
        let port = (1..=u16::MAX - base)
            .map(|i| base + i)
            .find(|p| !taken.contains(p) && free(*p))
            .unwrap_or(base);
        self.ports.insert(name.to_owned(), port);
        self.serving(name, Some(crate::fleet::Member { port, webhook_cap }));
        port.to_string()
    }

    /// Records how `name`'s child is reached (`None`: it no longer runs).
    fn serving(&self, name: &str, member: Option<crate::fleet::Member>) {
        let mut fleet = self
            .fleet
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match member {
            Some(member) => fleet.insert(name.to_owned(), member),
            None => fleet.remove(name),
        };
    }

    fn start(&mut self, (name, config): Runnable) {
        let (orders, rx) = broadcast::channel::<Order>(16);
        let spec = ChildSpec {
            name: name.clone(),
            global_args: self.launch.global_args.clone(),
            http_port: self.port_for(&name, &config),
            notes: self.running.is_empty() && self.stopping.is_empty(),
        };
        let task = tokio::spawn(keep_running(self.exe.clone(), spec, rx));
        let child = Running {
            orders,
            task,
            config,
        };
        self.running.insert(name, child);
    }

    /// Reads the configuration again: a refused file changes nothing (said once, here);
    /// otherwise removed or disabled connectors' children stop, new ones start, and those
    /// whose configuration changed are restarted. A child is never sent SIGHUP (one just
    /// started, before its handler is in place, would die of it).
    fn reload(&mut self) {
        let wanted = match (self.launch.reload)() {
            Ok(wanted) => wanted,
            Err(problems) => {
                tracing::error!("reload refused, every child keeps running as it is: {problems}");
                return;
            }
        };
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|n| !wanted.iter().any(|(w, _)| w == *n))
            .cloned()
            .collect();
        for name in &gone {
            if let Some(child) = self.running.remove(name) {
                let _ = child.orders.send(Order::Stop);
                self.stopping.push(child.task);
                self.serving(name, None);
            }
        }
        let (mut added, mut changed) = (Vec::new(), Vec::new());
        for (name, config) in wanted {
            match self.running.get_mut(&name) {
                Some(child) if child.config != config => {
                    let _ = child.orders.send(Order::Restart);
                    child.config = config;
                    changed.push(name);
                }
                Some(_) => {}
                None => {
                    added.push(name.clone());
                    self.start((name, config));
                }
            }
        }
        tracing::info!(?added, removed = ?gone, restarted = ?changed, running = self.running.len(), "configuration reloaded");
    }

    fn send_all(&self, order: Order) {
        for child in self.running.values() {
            let _ = child.orders.send(order);
        }
    }

    /// Every child's task, the stopping ones included.
    fn tasks(&mut self) -> Vec<tokio::task::JoinHandle<()>> {
        let mut all: Vec<_> = std::mem::take(&mut self.stopping);
        all.extend(
            std::mem::take(&mut self.running)
                .into_values()
                .map(|c| c.task),
        );
        all
    }
}

/// Runs a child per connector in `names` until SIGTERM/SIGINT, then waits for all of them.
/// SIGHUP reads the configuration again ([`Launch::reload`]).
pub async fn supervise(wanted: Vec<Runnable>, launch: Launch) -> Result<ExitCode> {
    let exe =
        std::env::current_exe().context("cannot find this program's path to start children")?;
    let mut children = Children {
        exe,
        launch,
        running: Default::default(),
        ports: Default::default(),
        stopping: Vec::new(),
        fleet: Default::default(),
    };
    // Listening first: a taken port stops the supervisor before any child starts.
    let _api = serve_fleet(&children).await?;
    wanted.into_iter().for_each(|w| children.start(w));
    let mut signals = crate::serve::Signals::new()?;
    loop {
        match signals.next().await {
            crate::serve::Signal::Reload => children.reload(),
            crate::serve::Signal::Stop => {
                tracing::info!("stopping: forwarding SIGTERM to every child");
                children.send_all(Order::Stop);
                break;
            }
        }
    }
    let senders: Vec<broadcast::Sender<Order>> = children
        .running
        .values()
        .map(|c| c.orders.clone())
        .collect();
    let tasks = children.tasks();
    let all = async move {
        for t in tasks {
            let _ = t.await;
        }
    };
    tokio::pin!(all);
    tokio::select! {
        () = &mut all => {
            tracing::info!("all children stopped");
            Ok(ExitCode::SUCCESS)
        }
        _ = signals.next() => {
            // A second SIGTERM is each child's own second signal: it cancels its polls,
            // releases its leases and exits 130, so nothing is left held for a TTL.
            tracing::warn!("second signal: telling every child to cancel its polls and release its leases");
            senders.iter().for_each(|s| { let _ = s.send(Order::Stop); });
            if tokio::time::timeout(CHILD_RELEASE_WAIT, &mut all).await.is_err() {
                tracing::warn!("children still running after the release wait are killed");
            }
            Ok(ExitCode::from(130))
        }
    }
}

fn send(child: &Child, signal: NixSignal) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

async fn keep_running(
    exe: std::path::PathBuf,
    spec: ChildSpec,
    mut orders: broadcast::Receiver<Order>,
) {
    let mut delay = FIRST_DELAY;
    loop {
        let started = Instant::now();
        let mut child = match Command::new(&exe)
            .args(&spec.global_args)
            .arg("run")
            .arg(&spec.name)
            .env("HTTP_PORT", &spec.http_port)
            .env_remove("CONNECTOR_NAME")
            .env(
                crate::SUPERVISED_VAR,
                if spec.notes { crate::FIRST_CHILD } else { "1" },
            )
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(connector = %spec.name, error = %e, "cannot start child");
                if wait_or_stop(&mut orders, delay).await {
                    return;
                }
                delay = (delay * 2).min(MAX_DELAY);
                continue;
            }
        };
        tracing::info!(connector = %spec.name, pid = child.id(), http_port = %spec.http_port, "child started");
        let ended = watch_child(&spec, &mut child, &mut orders, delay).await;
        if let Ended::Restart = ended {
            continue;
        }
        if let Ended::Stopping = ended {
            return wait_stopped(&spec.name, &mut child, &mut orders).await;
        }
        if started.elapsed() >= STABLE_AFTER {
            delay = FIRST_DELAY;
        }
        if wait_or_stop(&mut orders, delay).await {
            return;
        }
        delay = (delay * 2).min(MAX_DELAY);
    }
}

/// Runs `child` until it exits or an order ends its run (`delay`: the back-off a restart
/// after an exit would wait, for the log).
async fn watch_child(
    spec: &ChildSpec,
    child: &mut Child,
    orders: &mut broadcast::Receiver<Order>,
    delay: Duration,
) -> Ended {
    tokio::select! {
        status = child.wait() => {
            match status {
                Ok(s) => tracing::warn!(connector = %spec.name, status = %s, restart_in_s = delay.as_secs(), "child exited; restarting"),
                Err(e) => tracing::warn!(connector = %spec.name, error = %e, "lost track of child; restarting"),
            }
            Ended::Exited
        }
        order = orders.recv() => match order {
            Ok(Order::Restart) => {
                send(child, NixSignal::SIGTERM);
                let status = child.wait().await;
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                tracing::info!(connector = %spec.name, %status, "child stopped for its new configuration");
                Ended::Restart
            }
            Ok(Order::Stop) | Err(_) => {
                send(child, NixSignal::SIGTERM);
                Ended::Stopping
            }
        }
    }
}

/// Waits for a child told to stop, forwarding a second stop (the child then cancels its
/// polls and releases its leases).
async fn wait_stopped(name: &str, child: &mut Child, orders: &mut broadcast::Receiver<Order>) {
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            order = orders.recv() => {
                if matches!(order, Ok(Order::Stop)) {
                    send(child, NixSignal::SIGTERM);
                }
                if order.is_err() {
                    break child.wait().await;
                }
            }
        }
    };
    match status {
        Ok(s) => tracing::info!(connector = %name, status = %s, "child stopped"),
        Err(e) => tracing::warn!(connector = %name, error = %e, "child stop not observed"),
    }
}

/// How a child's run ended.
enum Ended {
    /// It exited by itself: started again after the back-off delay.
    Exited,
    /// It was told to stop.
    Stopping,
    /// It was stopped for its new configuration: started again at once.
    Restart,
}

/// Serves the fleet's health on the supervisor's own `HTTP_PORT`, when it has one; the
/// task ends with the returned guard.
async fn serve_fleet(
    children: &Children,
) -> Result<Option<tokio_util::task::AbortOnDropHandle<()>>> {
    let Some(addr) = children.launch.api else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} (set HTTP_PORT to another port, or \"off\")")
    })?;
    tracing::info!(addr = %listener.local_addr()?, "supervisor HTTP API listening");
    let host = crate::fleet::reachable(addr).ip();
    let fleet = crate::fleet::Fleet {
        members: children.fleet.clone(),
        host,
        client: connector_core::context::Context::isolated()
            .client()
            .clone(),
    };
    let app = crate::fleet::router(fleet);
    Ok(Some(tokio_util::task::AbortOnDropHandle::new(
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "supervisor HTTP API stopped");
            }
        }),
    )))
}

/// Sleeps `delay`; true if a stop order came first.
async fn wait_or_stop(orders: &mut broadcast::Receiver<Order>, delay: Duration) -> bool {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return false,
            order = orders.recv() => {
                if matches!(order, Ok(Order::Stop) | Err(broadcast::error::RecvError::Closed)) {
                    return true;
                }
            }
        }
    }
}
