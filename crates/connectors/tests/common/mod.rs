//! What the process-level tests share: the real binary with its output collected, a
//! mock provider, Redis, and waiting for things to happen.

#![allow(dead_code)] // Each test file uses a different part.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connector_core::Environment;
use connector_redis::{RedisBackend, RedisSettings};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub const ALERTS: &str =
    include_str!("../../../connector-noaa/tests/fixtures/alerts-active-severe-trimmed.json");

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{tag}-{}-{nanos:x}", std::process::id())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(tag));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A config of NOAA connectors named `names`, all against `server`.
pub fn config(server: &MockServer, names: &[(&str, u64)]) -> String {
    let list: Vec<Value> = names
        .iter()
        .map(|(name, interval)| {
            serde_json::json!({
                "name": name,
                "type": "NOAA_WEATHER",
                "pollIntervalMs": interval,
                "leaseTtlSeconds": 2,
                "maxRetries": 0,
                "providerConfig": { "baseUrl": server.uri(), "area": "OH" }
            })
        })
        .collect();
    serde_json::json!({ "connectors": list }).to_string()
}

pub async fn mock_provider(delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/alerts/active"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(ALERTS)
                .set_delay(delay),
        )
        .mount(&server)
        .await;
    server
}

/// A running binary whose stderr and stdout are collected as they come.
pub struct Proc {
    pub child: Child,
    log: Arc<Mutex<String>>,
    out: Arc<Mutex<String>>,
}

impl Proc {
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        Self::spawn(
            Command::new(env!("CARGO_BIN_EXE_connectors")),
            dir,
            args,
            env,
        )
    }

    /// [`Proc::start`] with another build of the binary (an earlier release's).
    pub fn start_binary(binary: &Path, dir: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        Self::spawn(Command::new(binary), dir, args, env)
    }

    /// [`Proc::start`] as the leader of a process group of its own, as a shell starts a
    /// foreground job: `kill(-pid)` then reaches it and its children, like Ctrl-C does.
    pub fn start_group(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_connectors"));
        cmd.process_group(0);
        Self::spawn(cmd, dir, args, env)
    }

    fn spawn(mut cmd: Command, dir: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        cmd.args(args)
            .current_dir(dir)
            .env_remove("CONNECTOR_NAME")
            .env_remove("ENABLED_CONNECTORS")
            .env_remove("CONNECTORS_CONFIG_PATH")
            .env_remove("REDIS_URL")
            .env_remove("REDIS_KEY_PREFIX")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("LOG_FORMAT")
            .env("RUST_LOG", "info")
            .env("SHUTDOWN_GRACE_SECONDS", "10")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the connectors binary starts");
        let log = Arc::new(Mutex::new(String::new()));
        let out = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(collect(stderr, log.clone()));
        }
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(collect(stdout, out.clone()));
        }
        Self { child, log, out }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(
            self.child
                .id()
                .and_then(|p| i32::try_from(p).ok())
                .expect("running"),
        )
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signal delivered");
    }

    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn out(&self) -> String {
        self.out.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub async fn wait_log(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no {needle:?} in the log within {within:?}:\n{}",
            self.log()
        );
    }

    /// Waits until the log holds `needle` more than `than` times.
    pub async fn wait_count(&self, needle: &str, than: usize, within: Duration) {
        let what = format!("more than {than} {needle:?} in the log");
        eventually(&what, within, || async {
            (self.log().matches(needle).count() > than).then_some(())
        })
        .await;
    }

    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(status)) => status,
            other => panic!(
                "did not exit within {within:?} ({other:?}):\n{}",
                self.log()
            ),
        }
    }
}

pub async fn collect(stream: impl tokio::io::AsyncRead + Unpin, into: Arc<Mutex<String>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(mut s) = into.lock() {
            s.push_str(&line);
            s.push('\n');
        }
    }
}

/// GET over plain HTTP/1.0; returns status and body.
pub async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// POST `body` with `headers` over plain HTTP/1.0; returns status and body.
pub async fn post(
    port: u16,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let mut head = format!(
        "POST {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.ok()?;
    // A server may answer (413) before reading the whole body: a failed write is fine.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.ok()?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

pub async fn get_json(port: u16, path: &str) -> Option<(u16, Value)> {
    let (status, body) = get(port, path).await?;
    Some((status, serde_json::from_str(&body).ok()?))
}

/// Polls `probe` until it returns Some, or panics with `what`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn running(port: u16) -> Option<(Vec<String>, Value)> {
    let (_, ready) = get_json(port, "/health/ready").await?;
    let names = ready["running"]
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    Some((names, ready))
}

pub async fn redis(prefix: &str) -> Arc<RedisBackend> {
    let env = Environment::from_pairs([
        ("REDIS_URL", redis_url()),
        ("REDIS_KEY_PREFIX", prefix.to_owned()),
    ]);
    let settings = RedisSettings::from_env(&env)
        .expect("settings")
        .expect("REDIS_URL is set");
    RedisBackend::connect(settings).await.unwrap_or_else(|e| {
        panic!(
            "these tests need Redis at {} (start one with `redis-server --port 6379 --save \"\" --daemonize yes`): {e}",
            redis_url()
        )
    })
}

/// How many requests `server` has received.
pub async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.map_or(0, |r| r.len())
}

/// Waits until `server` has received at least `n` requests.
pub async fn wait_requests(server: &MockServer, n: usize, what: &str) {
    eventually(what, Duration::from_secs(20), || async {
        (requests(server).await >= n).then_some(())
    })
    .await;
}

/// The environment of a process on the test Redis under `prefix`, without the HTTP API.
pub fn redis_env(prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("HTTP_PORT", "off".to_owned()),
        ("REDIS_URL", redis_url()),
        ("REDIS_KEY_PREFIX", prefix.to_owned()),
    ]
}
