//! Test support: a backend on the real Redis (`REDIS_URL`, default
//! `redis://127.0.0.1:6379`) under a fresh key prefix per test, a plain fred client to
//! inspect what the backend wrote, a throw-away `redis-server` for restart tests, and a
//! small snapshot provider served by wiremock.

#![allow(dead_code, missing_docs)]

use std::borrow::Cow;
use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use connector_core::http::{Conditional, HttpClient};
use connector_core::pipeline::{CreateError, FetchError, FetchOutcome, Fetched, ItemKey};
use connector_core::signal::SCHEMA_VERSION;
use connector_core::{
    Change, ConnectorConfig, Cursor, Provider, RawSignal, Severity, SignalContext, StreamEntry,
};
use connector_redis::{RedisBackend, RedisSettings};
use fred::prelude::{ClientLike, KeysInterface, StreamsInterface};
use fred::types::config::Config;
use fred::types::{Builder, ClusterHash, CustomCommand};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use url::Url;

pub const START_REDIS: &str = "start one with `redis-server --port 6379 --save \"\" --daemonize yes`, or point REDIS_URL at one";

/// The server under test. Reading the variable is fine; tests never set it.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into())
}

/// A namespace no other test (or run) uses.
pub fn unique_prefix(test: &str) -> String {
    format!("test-{test}-{:016x}:", fastrand::u64(..))
}

/// Settings for `url` under `prefix`, with short timeouts so failures show quickly.
pub fn settings(url: &str, prefix: &str) -> RedisSettings {
    RedisSettings::from_url(url)
        .unwrap_or_else(|e| panic!("REDIS_URL is not usable: {e}"))
        .with_key_prefix(prefix)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_command_timeout(Duration::from_secs(2))
        .with_connect_timeout(Duration::from_secs(2))
}

/// A backend on the shared test server under `prefix`.
pub async fn backend(prefix: &str) -> Arc<RedisBackend> {
    let url = redis_url();
    RedisBackend::connect(settings(&url, prefix))
        .await
        .unwrap_or_else(|e| panic!("Redis is not reachable ({e}); {START_REDIS}"))
}

/// A plain client on the same server, to check what the backend wrote.
pub async fn inspector() -> fred::clients::Client {
    inspector_at(&redis_url()).await
}

pub async fn inspector_at(url: &str) -> fred::clients::Client {
    let config = Config::from_url(url).unwrap_or_else(|e| panic!("bad REDIS_URL: {e}"));
    let client = Builder::from_config(config)
        .build()
        .unwrap_or_else(|e| panic!("cannot build a client: {e}"));
    client
        .init()
        .await
        .unwrap_or_else(|e| panic!("Redis is not reachable ({e}); {START_REDIS}"));
    client
}

/// Every entry of a stream, in order.
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

pub async fn stream_len(client: &fred::clients::Client, stream: &str) -> u64 {
    client
        .xlen(stream)
        .await
        .unwrap_or_else(|e| panic!("XLEN {stream}: {e}"))
}

/// Every key under `prefix`, sorted.
pub async fn keys_under(client: &fred::clients::Client, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = client
        .custom(
            CustomCommand::new_static("KEYS", ClusterHash::Random, false),
            vec![format!("{prefix}*")],
        )
        .await
        .unwrap_or_else(|e| panic!("KEYS: {e}"));
    keys.sort();
    keys
}

pub async fn key_type(client: &fred::clients::Client, key: &str) -> String {
    client
        .r#type(key)
        .await
        .unwrap_or_else(|e| panic!("TYPE {key}: {e}"))
}

/// A `redis-server` of this test's own, on a free port, killed when dropped (even when the
/// test fails half-way).
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
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

    /// Starts a server with `args` added to the basics (port, bind, no RDB snapshots).
    pub async fn start_with(dir: &Path, port: Option<u16>, args: &[&str]) -> Self {
        let port = port.unwrap_or_else(free_port);
        let mut all: Vec<OsString> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]
        .iter()
        .chain(args)
        .map(OsString::from)
        .collect();
        all.extend([OsString::from("--dir"), dir.as_os_str().to_owned()]);
        Self::spawn(all, port, "Ready to accept connections").await
    }

    /// Starts a Sentinel watching the primary at `primary_port` as `service`.
    pub async fn start_sentinel(dir: &Path, primary_port: u16, service: &str) -> Self {
        let port = free_port();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!("sentinel monitor {service} 127.0.0.1 {primary_port} 1\n"),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
        let args = [
            conf.into_os_string(),
            "--sentinel".into(),
            "--port".into(),
            port.to_string().into(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            dir.as_os_str().to_owned(),
        ];
        Self::spawn(args.to_vec(), port, "+monitor master").await
    }

    /// Runs `redis-server args` and waits for `ready` in its log.
    async fn spawn(args: Vec<OsString>, port: u16, ready: &str) -> Self {
        let mut child = Command::new("redis-server")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-server ({e}); install Redis to run this test")
            });
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let mut lines = BufReader::new(stdout).lines();
        let started = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains(ready) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(
            started.ok(),
            Some(true),
            "redis-server on port {port} did not start"
        );
        // Keep draining its log so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child: Some(child),
            port,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash would; waits until the process is gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

// ---------------------------------------------------------------------------------------
// An in-test provider: a JSON array of `{id, rev, title}` items at one URL, as a snapshot.

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ItemsConfig {
    /// Where the API lives.
    pub base_url: Url,
}

pub struct ItemsProvider {
    http: HttpClient,
    url: Url,
}

#[derive(Deserialize)]
struct Fields {
    id: String,
    rev: u64,
    title: String,
}

pub struct Item {
    raw: Box<RawValue>,
    id: String,
    rev: String,
    title: String,
}

impl Provider for ItemsProvider {
    const TYPE: &'static str = "TEST_ITEMS";
    const SOURCE: &'static str = "items";
    const KIND: &'static str = "item";
    const SNAPSHOT: bool = true;
    type Config = ItemsConfig;
    type Item = Item;

    fn new(config: ItemsConfig, common: &ConnectorConfig) -> Result<Self, CreateError> {
        let http = HttpClient::builder(config.base_url)
            .connector_settings(common)
            .build()
            .map_err(|e| CreateError(e.to_string()))?;
        let url = http.url("/items").map_err(|e| CreateError(e.to_string()))?;
        Ok(Self { http, url })
    }

    async fn fetch(&self, cursor: &Cursor) -> Result<FetchOutcome<Item>, FetchError> {
        let resp = match self.http.get_conditional(&self.url, cursor).await? {
            Conditional::NotModified => return Ok(FetchOutcome::NotModified),
            Conditional::Modified(r) => r,
        };
        let raws: Vec<Box<RawValue>> =
            serde_json::from_slice(&resp.body).map_err(|e| FetchError::malformed(&self.url, e))?;
        let mut items = Vec::with_capacity(raws.len());
        for raw in raws {
            let f: Fields =
                serde_json::from_str(raw.get()).map_err(|e| FetchError::malformed(&self.url, e))?;
            items.push(Item {
                raw,
                id: f.id,
                rev: f.rev.to_string(),
                title: f.title,
            });
        }
        let next = Cursor {
            position: None,
            etag: resp.etag(),
            last_modified: resp.last_modified(),
        };
        Ok(FetchOutcome::Fetched(Fetched::complete(items, next)))
    }

    fn key<'a>(&self, item: &'a Item) -> ItemKey<'a> {
        ItemKey {
            id: Cow::Borrowed(&item.id),
            version: Cow::Borrowed(&item.rev),
        }
    }

    fn transform(
        &self,
        item: &Item,
        key: &ItemKey<'_>,
        change: Change,
        ctx: &SignalContext<'_>,
    ) -> Result<RawSignal, String> {
        Ok(RawSignal {
            schema_version: SCHEMA_VERSION,
            source: Self::SOURCE,
            connector: ctx.connector.to_owned(),
            connector_type: Self::TYPE,
            external_id: key.id.to_string(),
            version: key.version.to_string(),
            kind: Self::KIND,
            change,
            title: item.title.clone(),
            severity: Severity::Info,
            occurred_at: None,
            observed_at: ctx.observed_at.to_owned(),
            url: None,
            payload: item.raw.clone(),
        })
    }
}

/// A body of items with revision 1, or 2 for those listed in `bumped`.
pub fn items_body(ids: &[&str], bumped: &[&str]) -> String {
    let items: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            let rev = if bumped.contains(id) { 2 } else { 1 };
            serde_json::json!({ "id": id, "rev": rev, "title": format!("Item {id}") })
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

/// A connector config for the items provider at `base_url`, with quick retries.
pub fn config_for(name: &str, base_url: &str) -> ConnectorConfig {
    let mut c = ConnectorConfig::new(name, ItemsProvider::TYPE);
    c.provider_config
        .insert("baseUrl".into(), serde_json::Value::String(base_url.into()));
    c.max_retries = 0;
    c.retry_config.base_delay_ms = 10;
    c.retry_config.max_delay_ms = 50;
    c
}

/// A stream entry for direct commits.
pub fn entry(connector: &str, id: &str, version: &str) -> StreamEntry {
    StreamEntry {
        connector: connector.into(),
        connector_type: "TEST_ITEMS".into(),
        external_id: id.into(),
        version: version.into(),
        dedup_id: connector_core::signal::dedup_id(connector, id, version),
        signal: format!(r#"{{"externalId":"{id}","version":"{version}"}}"#),
    }
}

/// A TCP proxy in front of Redis that, when armed, swallows the next reply and cuts the
/// connection: a command that ran whose answer never arrived, as a network failure at the
/// worst moment would leave it.
pub struct ReplyCutter {
    pub port: u16,
    armed: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl ReplyCutter {
    pub async fn start(upstream: std::net::SocketAddr) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let armed = Arc::new(AtomicBool::new(false));
        let flag = armed.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (mut client_rx, mut client_tx) = client.into_split();
                let (mut server_rx, mut server_tx) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_rx, &mut server_tx).await;
                });
                let flag = flag.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match server_rx.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if flag.swap(false, Ordering::SeqCst) {
                            // Dropping both halves closes the client's connection.
                            return;
                        }
                        if client_tx.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self { port, armed, task }
    }

    /// The next reply from Redis is swallowed and that connection closed.
    pub fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for ReplyCutter {
    fn drop(&mut self) {
        self.task.abort();
    }
}
