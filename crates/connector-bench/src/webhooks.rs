//! The webhook scenario: how long from a webhook's POST to its change in the stream, with
//! the real `connectors` binary (`run`, Redis) running N HTTP_JSON connectors that poll
//! every ten minutes.
//!
//! A small server of its own serves each connector one item whose version the bench
//! moves. For each webhook the bench moves one connector's item, notes the stream's last
//! id, sends the signed POST, and blocks on `XREAD` until the entry arrives: the latency
//! covers verification, the wake through Redis pub/sub, the poll and the fenced commit.
//! Webhooks go one at a time, so a figure is one wake's latency, not a queue's; a
//! connector is woken at most once per 150 ms (its `minIntervalMs` is 100).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::extract::{Path, State};
use axum::routing::get;
use fred::clients::Client;
use fred::interfaces::StreamsInterface;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::redis as probe;

/// The token every bench connector's webhook carries.
const TOKEN: &str = "bench-webhook-token";
/// The output stream, below the run's prefix.
const STREAM: &str = "webhook-bench";

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookLatency {
    /// Connectors in the worker.
    pub connectors: usize,
    /// Webhooks timed.
    pub webhooks: usize,
    /// Median, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile (nearest rank), milliseconds.
    pub p99_ms: f64,
    /// Worst, milliseconds.
    pub max_ms: f64,
    /// From spawn until every connector had published its first version, seconds.
    pub startup_s: f64,
}

/// Runs the scenario with `connectors` connectors and `webhooks` timed webhooks.
pub async fn run(
    binary: &PathBuf,
    redis_url: &str,
    prefix: &str,
    connectors: usize,
    webhooks: usize,
) -> Result<WebhookLatency> {
    let versions: Arc<Vec<AtomicU64>> =
        Arc::new((0..connectors).map(|_| AtomicU64::new(1)).collect());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let items_url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/w/{i}", get(item))
        .with_state(versions.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("connectors.json");
    write_config(&config, &items_url, connectors)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = tokio::process::Command::new(binary)
        .arg("--config")
        .arg(&config)
        .arg("run")
        .env("REDIS_URL", redis_url)
        .env("REDIS_KEY_PREFIX", prefix)
        .env("HTTP_PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .env_remove("CONNECTOR_NAME")
        .env_remove("ENABLED_CONNECTORS")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let client = probe::connect(redis_url).await?;
    let stream = probe::stream_key(prefix, STREAM);
    let result = measure(&client, &stream, port, &versions, webhooks).await;
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    server.abort();
    result
}

async fn item(
    State(versions): State<Arc<Vec<AtomicU64>>>,
    Path(i): Path<usize>,
) -> axum::Json<serde_json::Value> {
    let v = versions.get(i).map_or(0, |v| v.load(Ordering::SeqCst));
    axum::Json(serde_json::json!({ "items": [{ "id": "a", "v": v }] }))
}

fn name(i: usize) -> String {
    format!("wh-{i:05}")
}

fn write_config(path: &std::path::Path, items_url: &str, connectors: usize) -> Result<()> {
    let list: Vec<serde_json::Value> = (0..connectors)
        .map(|i| {
            serde_json::json!({
                "name": name(i),
                "type": "HTTP_JSON",
                "pollIntervalMs": 600_000,
                "outputStream": STREAM,
                "maxRetries": 0,
                "webhook": {"verify": "token", "secret": TOKEN, "minIntervalMs": 100, "settleMs": 0},
                "providerConfig": {
                    "request": {"url": format!("{items_url}/w/{i}")},
                    "records": {"path": "/items", "id": "/id", "version": "/v"},
                    "signal": {"kind": "item", "title": "{{/id}}"},
                    "snapshot": true
                }
            })
        })
        .collect();
    std::fs::write(
        path,
        serde_json::to_vec(&serde_json::json!({ "connectors": list }))?,
    )?;
    Ok(())
}

/// Waits for the first sync, then times `webhooks` webhooks one after another.
async fn measure(
    client: &Client,
    stream: &str,
    port: u16,
    versions: &[AtomicU64],
    webhooks: usize,
) -> Result<WebhookLatency> {
    let started = Instant::now();
    let connectors = versions.len();
    while probe::xlen(client, stream).await? < connectors as u64 {
        if started.elapsed() > Duration::from_secs(300) {
            bail!("the first sync did not finish within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let startup_s = started.elapsed().as_secs_f64();
    let mut last_woken: Vec<Option<Instant>> = vec![None; connectors];
    let mut samples = Vec::with_capacity(webhooks);
    for n in 0..webhooks {
        let k = (n * 7919) % connectors;
        if let Some(at) = last_woken[k] {
            tokio::time::sleep_until((at + Duration::from_millis(150)).into()).await;
        }
        let last_id = last_entry_id(client, stream).await?;
        versions[k].fetch_add(1, Ordering::SeqCst);
        let sent = Instant::now();
        post(port, &format!("/webhooks/{}", name(k))).await?;
        wait_entry(client, stream, &last_id).await?;
        samples.push(sent.elapsed().as_secs_f64() * 1000.0);
        last_woken[k] = Some(Instant::now());
    }
    samples.sort_by(f64::total_cmp);
    let rank =
        |q: f64| samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    Ok(WebhookLatency {
        connectors,
        webhooks,
        p50_ms: rank(0.5),
        p99_ms: rank(0.99),
        max_ms: samples.last().copied().unwrap_or(0.0),
        startup_s,
    })
}

async fn last_entry_id(client: &Client, stream: &str) -> Result<String> {
    let last: Vec<(String, std::collections::HashMap<String, String>)> =
        client.xrevrange(stream, "+", "-", Some(1)).await?;
    Ok(last
        .first()
        .map_or_else(|| "0-0".to_owned(), |e| e.0.clone()))
}

async fn wait_entry(client: &Client, stream: &str, after: &str) -> Result<()> {
    let got: fred::types::Value = client.xread(Some(1), Some(20_000), stream, after).await?;
    if got.is_null() {
        bail!("no entry within 20 s of a webhook");
    }
    Ok(())
}

/// POSTs a token webhook over plain HTTP/1.0 and checks the 202.
async fn post(port: u16, path: &str) -> Result<()> {
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let body = b"{}";
    let head = format!(
        "POST {path} HTTP/1.0\r\nHost: localhost\r\nX-Webhook-Token: {TOKEN}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body).await?;
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await?;
    let answer = String::from_utf8_lossy(&answer);
    if !answer.starts_with("HTTP/1.0 202") && !answer.starts_with("HTTP/1.1 202") {
        bail!(
            "webhook not accepted: {}",
            answer.lines().next().unwrap_or("")
        );
    }
    Ok(())
}
