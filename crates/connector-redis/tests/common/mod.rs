//! Test support: a backend on the real Redis (`REDIS_URL`, default
//! `redis://127.0.0.1:6379`) under a fresh key prefix per test, a plain fred client to
//! inspect what the backend wrote, a throw-away `redis-server` for restart tests, and a
//! small snapshot provider served by wiremock.

#![allow(dead_code, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use connector_core::{ConnectorConfig, StreamEntry};
use connector_redis::{RedisBackend, RedisSettings};
use fred::prelude::{ClientLike, KeysInterface, StreamsInterface};
use fred::types::{ClusterHash, CustomCommand};

pub const START_REDIS: &str = "start one with `redis-server --port 6379 --save \"\" --daemonize yes`, or point REDIS_URL at one";

/// The server under test. Reading the variable is fine; tests never set it.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into())
}

/// A namespace no other test (or run) uses, whose keys are deleted when it is dropped.
pub fn unique_prefix(test: &str) -> connector_redis::testing::Namespace {
    connector_redis::testing::Namespace::new(&redis_url(), test)
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

#[allow(unused_imports)] // each test binary uses a different part of this module
pub use connector_core::testing::items::{ItemsProvider, items_body};
#[allow(unused_imports)]
pub use connector_redis::testing::{RedisServer, free_port, inspector_at, stream_entries};

pub fn config_for(name: &str, base_url: &str) -> ConnectorConfig {
    let mut c = connector_core::testing::items::config_for(name, base_url);
    c.max_retries = 0;
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

/// The key names of `backend`, built from the layout the README documents (not from the
/// crate's own key builder, so these tests check the documented contract).
pub fn layout(backend: &RedisBackend) -> Layout {
    Layout(backend.key_prefix().to_owned())
}

/// Key names under one prefix, as the README's key table gives them.
pub struct Layout(String);

impl Layout {
    /// `{prefix}lease:{name}`.
    pub fn lease(&self, connector: &str) -> String {
        format!("{}lease:{{{connector}}}", self.0)
    }
    /// `{prefix}lease:{name}:fence`.
    pub fn fence(&self, connector: &str) -> String {
        format!("{}lease:{{{connector}}}:fence", self.0)
    }
    /// `{prefix}connector:state:{name}`.
    pub fn state(&self, connector: &str) -> String {
        format!("{}connector:state:{{{connector}}}", self.0)
    }
    /// `{prefix}metrics:connector:{name}`.
    pub fn metrics(&self, connector: &str) -> String {
        format!("{}metrics:connector:{{{connector}}}", self.0)
    }
    /// `{prefix}<stream>`.
    pub fn stream(&self, stream: &str) -> String {
        format!("{}{stream}", self.0)
    }
}

/// A TCP proxy that forwards both ways until held; from then on it drops whatever it reads
/// and forwards nothing, leaving the connections open: a replica behind it stops receiving
/// its primary's writes without noticing (as a lagging link looks).
pub struct Gate {
    pub port: u16,
    open: Arc<std::sync::atomic::AtomicBool>,
    /// Connections from this index on pass even while the gate holds.
    pass_from: Arc<std::sync::atomic::AtomicUsize>,
    /// Connections accepted so far, announced as each comes.
    accepted: tokio::sync::watch::Receiver<usize>,
    task: tokio::task::JoinHandle<()>,
}

impl Gate {
    pub async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gate");
        let port = listener.local_addr().expect("addr").port();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let pass_from = Arc::new(std::sync::atomic::AtomicUsize::new(usize::MAX));
        let held = Held {
            open: open.clone(),
            pass_from: pass_from.clone(),
        };
        let (count, accepted) = tokio::sync::watch::channel(0usize);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let index = *count.borrow();
                count.send_modify(|n| *n += 1);
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (client_rx, client_tx) = client.into_split();
                let (server_rx, server_tx) = server.into_split();
                tokio::spawn(Self::pipe(client_rx, server_tx, held.clone(), index));
                tokio::spawn(Self::pipe(server_rx, client_tx, held.clone(), index));
            }
        });
        Self {
            port,
            open,
            pass_from,
            accepted,
            task,
        }
    }

    async fn pipe(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        held: Held,
        index: usize,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if held.holds(index) {
                // Held: drop this and everything after, keeping both ends open.
                continue;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    /// From now on nothing passes.
    pub fn hold(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// The connections opened so far stay held; those opened from now on pass.
    pub fn pass_new(&self) {
        let opened = *self.accepted.borrow();
        self.pass_from
            .store(opened, std::sync::atomic::Ordering::SeqCst);
    }

    /// Everything passes again.
    pub fn open(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Waits until `n` connections were accepted in all.
    pub async fn accepted(&self, n: usize) {
        let mut seen = self.accepted.clone();
        let _ = seen.wait_for(|count| *count >= n).await;
    }
}

/// Whether a gate's connection is held.
#[derive(Clone)]
struct Held {
    open: Arc<std::sync::atomic::AtomicBool>,
    pass_from: Arc<std::sync::atomic::AtomicUsize>,
}

impl Held {
    fn holds(&self, index: usize) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        !self.open.load(SeqCst) && index < self.pass_from.load(SeqCst)
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}
