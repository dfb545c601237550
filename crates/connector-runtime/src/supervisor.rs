//! `all`: one child process per enabled connector, restarted when it dies.
//!
//! For hosts without an orchestrator: each connector runs as `<this binary> run NAME`, so
//! a crash, a leak or a stuck poll in one cannot touch the others. A child that exits is
//! started again after a delay that doubles up to a minute (and resets once a child has
//! run for a minute). SIGHUP is forwarded (each child reloads its own config); SIGTERM and
//! SIGINT are forwarded and the supervisor exits once every child has stopped.

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
    Reload,
    Stop,
}

/// How to start one child.
pub struct ChildSpec {
    /// The connector.
    pub name: String,
    /// Arguments before `run NAME` (global options such as `--config`).
    pub global_args: Vec<std::ffi::OsString>,
    /// The child's `HTTP_PORT` (`off`, or a port of its own).
    pub http_port: String,
}

/// Runs the children until SIGTERM/SIGINT, then waits for all of them.
pub async fn supervise(children: Vec<ChildSpec>) -> Result<ExitCode> {
    let exe =
        std::env::current_exe().context("cannot find this program's path to start children")?;
    let (orders, _) = broadcast::channel::<Order>(16);
    let mut tasks = Vec::new();
    for spec in children {
        let rx = orders.subscribe();
        tasks.push(tokio::spawn(keep_running(exe.clone(), spec, rx)));
    }
    let mut signals = crate::serve::Signals::new()?;
    loop {
        match signals.next().await {
            crate::serve::Signal::Reload => {
                tracing::info!("SIGHUP: forwarding to every child");
                let _ = orders.send(Order::Reload);
            }
            crate::serve::Signal::Stop => {
                tracing::info!("stopping: forwarding SIGTERM to every child");
                let _ = orders.send(Order::Stop);
                break;
            }
        }
    }
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
            let _ = orders.send(Order::Stop);
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
            .env(crate::SUPERVISED_VAR, "1")
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
        let stopping = loop {
            tokio::select! {
                status = child.wait() => {
                    match status {
                        Ok(s) => tracing::warn!(connector = %spec.name, status = %s, restart_in_s = delay.as_secs(), "child exited; restarting"),
                        Err(e) => tracing::warn!(connector = %spec.name, error = %e, "lost track of child; restarting"),
                    }
                    break false;
                }
                order = orders.recv() => match order {
                    Ok(Order::Reload) => send(&child, NixSignal::SIGHUP),
                    Ok(Order::Stop) | Err(_) => {
                        send(&child, NixSignal::SIGTERM);
                        break true;
                    }
                }
            }
        };
        if stopping {
            let status = loop {
                tokio::select! {
                    status = child.wait() => break status,
                    order = orders.recv() => {
                        // Stop again (a second signal): forwarded, so the child cancels.
                        if matches!(order, Ok(Order::Stop)) {
                            send(&child, NixSignal::SIGTERM);
                        }
                        if order.is_err() {
                            break child.wait().await;
                        }
                    }
                }
            };
            match status {
                Ok(s) => tracing::info!(connector = %spec.name, status = %s, "child stopped"),
                Err(e) => {
                    tracing::warn!(connector = %spec.name, error = %e, "child stop not observed")
                }
            }
            return;
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
