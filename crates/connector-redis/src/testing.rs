//! Test support for process- and restart-level tests: a `redis-server` of the test's own,
//! which the test may kill, stall or restart empty without touching anyone else's data.
//!
//! The server's log is kept, so a server that does not start says why (a taken port, a
//! bad argument) instead of only that it did not; a port taken between choosing it and
//! binding it (parallel tests) is retried on another one.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connector_core::StreamEntry;
use fred::prelude::{ClientLike, StreamsInterface};
use fred::types::Builder;
use fred::types::config::Config;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How many free ports are tried before a start is given up.
const PORT_ATTEMPTS: usize = 5;

/// A `redis-server` child, killed when dropped (even when the test fails half-way).
pub struct RedisServer {
    child: Option<Child>,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    args: Vec<OsString>,
    ready: &'static str,
    log: Arc<Mutex<String>>,
}

impl RedisServer {
    /// Starts a server persisting to `dir` with an fsync per write, so a kill loses nothing
    /// it acknowledged; returns once it accepts connections.
    pub async fn start(dir: &Path, port: Option<u16>) -> Self {
        Self::start_with(
            dir,
            port,
            &["--appendonly", "yes", "--appendfsync", "always"],
        )
        .await
    }

    /// Starts a server with `args` added to the basics (bind, no RDB snapshots, `dir`).
    pub async fn start_with(dir: &Path, port: Option<u16>, args: &[&str]) -> Self {
        let mut all: Vec<OsString> = ["--bind", "127.0.0.1", "--save", ""]
            .iter()
            .chain(args)
            .map(OsString::from)
            .collect();
        all.extend([OsString::from("--dir"), dir.as_os_str().to_owned()]);
        Self::spawn(all, port, "Ready to accept connections").await
    }

    /// Starts a Sentinel watching the primary at `primary_port` as `service`.
    pub async fn start_sentinel(dir: &Path, primary_port: u16, service: &str) -> Self {
        let conf: PathBuf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!("sentinel monitor {service} 127.0.0.1 {primary_port} 1\n"),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
        let args = vec![
            conf.into_os_string(),
            "--sentinel".into(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            dir.as_os_str().to_owned(),
        ];
        Self::spawn(args, None, "+monitor master").await
    }

    /// Runs `redis-server args --port P` and waits for `ready` in its log; with no fixed
    /// port, a port another test took first is replaced by a new one.
    async fn spawn(args: Vec<OsString>, port: Option<u16>, ready: &'static str) -> Self {
        let attempts = if port.is_some() { 1 } else { PORT_ATTEMPTS };
        let mut last_log = String::new();
        for _ in 0..attempts {
            let mut server = Self {
                child: None,
                port: port.unwrap_or_else(free_port),
                args: args.clone(),
                ready,
                log: Arc::default(),
            };
            if server.launch().await {
                return server;
            }
            last_log = server.log();
            if !last_log.contains("Address already in use") {
                break;
            }
        }
        panic!(
            "redis-server did not start ({}); its log:\n{last_log}",
            if last_log.contains("Address already in use") {
                "every port tried was taken"
            } else {
                "see the log"
            }
        )
    }

    /// Starts the process on `self.port`; true once its log says `ready`.
    async fn launch(&mut self) -> bool {
        let mut child = Command::new("redis-server")
            // A config file must come first, so the port goes last.
            .args(&self.args)
            .arg("--port")
            .arg(self.port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-server ({e}); install Redis to run this test")
            });
        let (seen, rx) = tokio::sync::oneshot::channel();
        let mut seen = Some(seen);
        let log = self.log.clone();
        let ready = self.ready;
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    append(&log, &line);
                }
            });
        }
        if let Some(stdout) = child.stdout.take() {
            // Keeps draining the log, so the server never blocks on a full pipe.
            tokio::spawn(async move {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    append(&log, &line);
                    if line.contains(ready) {
                        if let Some(seen) = seen.take() {
                            let _ = seen.send(());
                        }
                    }
                }
            });
        }
        self.child = Some(child);
        let started = tokio::time::timeout(Duration::from_secs(10), rx).await;
        matches!(started, Ok(Ok(())))
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id, for SIGSTOP and SIGCONT.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// SIGKILL, as a crash would; waits until the process is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Kills the server and starts it again on the same port with the same arguments:
    /// with persistence it comes back with its data, without it empty.
    pub async fn restart(&mut self) {
        self.kill().await;
        append(&self.log, "--- restarted by the test ---");
        assert!(
            self.launch().await,
            "redis-server did not start again on port {}; its log:\n{}",
            self.port,
            self.log()
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

fn append(log: &Mutex<String>, line: &str) {
    if let Ok(mut log) = log.lock() {
        log.push_str(line);
        log.push('\n');
    }
}

/// A port that was free a moment ago (another process may take it before it is bound;
/// [`RedisServer`] retries then).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// A key prefix of a test's own on the server at `url`: every key under it is deleted when
/// the guard is dropped, after a failed assertion too, so tests leave nothing behind in a
/// developer's Redis.
pub struct Namespace {
    url: String,
    /// The prefix, ending in `:`.
    pub prefix: String,
}

impl Namespace {
    /// A fresh prefix starting with `tag`, on the server at `url`.
    pub fn new(url: &str, tag: &str) -> Self {
        Self {
            url: url.to_owned(),
            prefix: format!("test-{tag}-{:016x}:", fastrand::u64(..)),
        }
    }
}

impl std::ops::Deref for Namespace {
    type Target = str;

    fn deref(&self) -> &str {
        &self.prefix
    }
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.prefix)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let url = self.url.clone();
        let pattern = format!("{}*", self.prefix);
        // Drop cannot await, and may run inside a runtime: a thread of its own with a
        // small runtime of its own does the deleting.
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(delete_matching(&url, &pattern));
        });
        let _ = done.join();
    }
}

/// Deletes every key matching `pattern` (best effort: a server that is gone has nothing
/// left to clean).
async fn delete_matching(url: &str, pattern: &str) {
    use fred::prelude::{ClientLike, KeysInterface};
    let Ok(config) = fred::types::config::Config::from_url(url) else {
        return;
    };
    let Ok(client) = fred::types::Builder::from_config(config)
        .with_connection_config(|c| c.connection_timeout = Duration::from_secs(2))
        .build()
    else {
        return;
    };
    if client.init().await.is_err() {
        return;
    }
    let scan =
        fred::types::CustomCommand::new_static("SCAN", fred::types::ClusterHash::Random, false);
    let mut cursor = "0".to_owned();
    loop {
        let reply: Result<(String, Vec<String>), _> = client
            .custom(
                scan.clone(),
                vec![
                    cursor,
                    "MATCH".into(),
                    pattern.into(),
                    "COUNT".into(),
                    "1000".into(),
                ],
            )
            .await;
        let Ok((next, keys)) = reply else { break };
        if !keys.is_empty() {
            let _: Result<u64, _> = client.del(keys).await;
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    let _ = client.quit().await;
}

/// A plain client on the server at `url`, to check what a backend wrote.
pub async fn inspector_at(url: &str) -> fred::clients::Client {
    let config = Config::from_url(url).unwrap_or_else(|e| panic!("bad REDIS_URL: {e}"));
    let client = Builder::from_config(config)
        .build()
        .unwrap_or_else(|e| panic!("cannot build a client: {e}"));
    client
        .init()
        .await
        .unwrap_or_else(|e| {
            panic!("Redis at {url} is not reachable ({e}); start one with `redis-server --port 6379 --save \"\" --daemonize yes`, or point REDIS_URL at one")
        });
    client
}

/// Every entry of a stream, in order, as the backend wrote them.
pub async fn stream_entries(client: &fred::clients::Client, stream: &str) -> Vec<StreamEntry> {
    let raw: Vec<(String, Vec<(String, String)>)> = client
        .xrange(stream, "-", "+", None)
        .await
        .unwrap_or_else(|e| panic!("XRANGE {stream}: {e}"));
    raw.into_iter()
        .map(|(_, fields)| {
            let get = |name: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_else(|| panic!("entry without {name}: {fields:?}"))
            };
            StreamEntry {
                connector: get("connector"),
                connector_type: get("type"),
                external_id: get("external_id"),
                version: get("version"),
                dedup_id: get("dedup_id"),
                signal: get("signal"),
            }
        })
        .collect()
}
