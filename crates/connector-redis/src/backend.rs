//! The Redis backend: one fred client, built once and shared, implementing every port.
//!
//! The client reconnects forever with exponential backoff and logs its connection events.
//! While Redis is unreachable each operation waits at most the command timeout and then
//! fails with a [`BackendError`]; the poll that met it fails and the next tick tries again,
//! on the same client, once Redis is back. Nothing here panics on a Redis failure.
//!
//! A command is written to a connection at most once: fred's default of resending a
//! command whose connection closed before the reply arrived would append a commit's
//! entries twice if the first attempt had run. With one attempt the caller sees an error,
//! and the pipeline reloads state to learn what was committed. On a Cluster, where fred
//! counts each `MOVED`/`ASK` redirect as an attempt and the commit is at least once anyway,
//! a command gets one attempt per redirect it may follow.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use connector_core::Backends;
use connector_core::ports::{
    BackendError, BoxFuture, ConnectorMetrics, ConnectorState, Membership, MetricsStore,
    PollRecord, STATE_FORMAT, StateDelta, StateHeader, StateStore,
};
use fred::clients::Client;
use fred::interfaces::{ClientLike, EventInterface, HashesInterface, SortedSetsInterface};
use fred::types::config::{ReconnectPolicy, UnresponsiveConfig};
use fred::types::{Builder, ClusterHash, CustomCommand};

use crate::keys::Keys;
use crate::metrics::metrics_from_fields;
use crate::scripts::Scripts;
use crate::settings::{RedisSettings, Topology};
use crate::state::state_from_fields;

/// Fields per `HSCAN` page when loading state: large enough that a typical state is one
/// round trip, small enough that a huge one never blocks the server for long.
const SCAN_PAGE: u32 = 1000;

/// Why the backend could not start. The URL is shown without credentials.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to Redis at {url} ({topology}): {reason}")]
pub struct ConnectError {
    /// The URL without user info.
    pub url: String,
    /// Standalone, sentinel or cluster.
    pub topology: &'static str,
    /// What failed.
    pub reason: String,
}

/// Leases, state, the fenced commit and metrics on Redis.
///
/// Cheap to share: hold it in an `Arc` (see [`RedisBackend::backends`]); every clone of
/// the inner client uses the same connection.
pub struct RedisBackend {
    pub(crate) client: Client,
    /// The connection commits go on: the shared client, or with `REDIS_WAIT_REPLICAS` a
    /// connection of their own, since `WAIT` blocks the connection it runs on and lease
    /// renewals must not queue behind it while a replica is away.
    pub(crate) committer: Client,
    pub(crate) keys: Keys,
    /// The webhook wake subscription, connected when the runtime first listens.
    pub(crate) subscriber: fred::clients::SubscriberClient,
    /// Whether the subscription was started.
    pub(crate) listening: std::sync::atomic::AtomicBool,
    pub(crate) scripts: Scripts,
    pub(crate) topology: Topology,
    /// Replicas each commit waits for (`REDIS_WAIT_REPLICAS`), and for how long.
    pub(crate) wait_replicas: u32,
    pub(crate) wait_timeout: Duration,
    url: String,
    /// The liveness watches of the connections ([`watch_liveness`]), and what each saw.
    watches: Vec<tokio::task::AbortHandle>,
    silences: Vec<Silence>,
    command_timeout: Duration,
}

impl Drop for RedisBackend {
    fn drop(&mut self) {
        self.watches
            .iter()
            .for_each(tokio::task::AbortHandle::abort);
    }
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.url)
            .field("topology", &self.topology)
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

/// A connection failure as a person reads it: the operating system's words rather than
/// the `Debug` form fred prints for an I/O error.
fn readable(e: &fred::error::Error) -> String {
    let details = e.details();
    let known = [
        (
            "ConnectionRefused",
            "connection refused: nothing listens there",
        ),
        ("TimedOut", "the connection timed out"),
        ("NotFound", "the host name does not resolve"),
        ("HostUnreachable", "the host is unreachable"),
        ("NetworkUnreachable", "the network is unreachable"),
        ("PermissionDenied", "permission denied"),
    ];
    known
        .iter()
        .find(|(kind, _)| details.contains(kind))
        .map_or_else(|| e.to_string(), |(_, said)| (*said).to_owned())
}

/// Maps a fred error to the port's error for `operation`.
pub(crate) fn fail(operation: &'static str) -> impl Fn(fred::error::Error) -> BackendError {
    move |e| BackendError::new(operation, e)
}

impl RedisBackend {
    /// Connects (failing at once if the first connection cannot be made, so a wrong URL or
    /// password stops start-up with a clear message), loads the scripts, and starts logging
    /// connection events. Later outages are survived: see the module docs.
    pub async fn connect(settings: RedisSettings) -> Result<Arc<Self>, ConnectError> {
        let topology = settings.topology();
        let url = settings.display_url().to_owned();
        let error = |reason: String| ConnectError {
            url: url.clone(),
            topology: topology.as_str(),
            reason,
        };
        let command_timeout = settings.command_timeout();
        let client = build_client(&settings).map_err(|e| error(e.to_string()))?;
        let subscriber = builder(&settings)
            .build_subscriber_client()
            .map_err(|e| error(e.to_string()))?;
        if let Err(e) = client.init().await {
            // A failed first connection has stopped the client already: nothing to quit.
            return Err(error(readable(&e)));
        }
        // After the first connection: fred reports that one as a "reconnect" too.
        log_connection_events(&client, &url);
        let scripts = Scripts::new();
        if let Err(e) = scripts.load(&client).await {
            let _ = client.quit().await;
            return Err(error(format!("loading the Lua scripts failed: {e}")));
        }
        let committer = if settings.wait_replicas() > 0 {
            let own = client.clone_new();
            if let Err(e) = own.init().await {
                let _ = client.quit().await;
                return Err(error(format!("opening the commit connection failed: {e}")));
            }
            own
        } else {
            client.clone()
        };
        tracing::info!(
            url = %url,
            topology = topology.as_str(),
            prefix = settings.keys().prefix(),
            "connected to Redis"
        );
        let watched = if settings.wait_replicas() > 0 {
            vec![client.clone(), committer.clone()]
        } else {
            vec![client.clone()]
        };
        let (watches, silences) =
            watch_all(watched, command_timeout, topology == Topology::Cluster);
        Ok(Arc::new(Self {
            client,
            committer,
            keys: settings.keys().clone(),
            subscriber,
            listening: Default::default(),
            scripts,
            topology,
            wait_replicas: settings.wait_replicas(),
            // Inside the command timeout, so a WAIT that gets no answer is a shortfall,
            // not a failed command.
            wait_timeout: command_timeout / 2,
            url,
            watches,
            silences,
            command_timeout,
        }))
    }

    /// All four ports backed by this one client.
    pub fn backends(self: &Arc<Self>) -> Backends {
        Backends {
            wakes: self.clone(),
            ..Backends::from_one(self.clone())
        }
    }

    /// The namespace every key of this backend starts with (with its trailing `:`, or
    /// empty): the key names themselves follow the layout in the README's key table.
    pub fn key_prefix(&self) -> &str {
        self.keys.prefix()
    }

    /// Standalone, Sentinel or Cluster, which decides the commit guarantee.
    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// The server URL without credentials.
    pub fn display_url(&self) -> &str {
        &self.url
    }

    /// One round trip to the server, for readiness checks.
    pub async fn ping(&self) -> Result<(), BackendError> {
        self.client.ping::<()>(None).await.map_err(fail("ping"))
    }

    /// Whether the server keeps its data across a restart (an append-only file, or RDB
    /// snapshots); `None` when it does not say (managed services often refuse `CONFIG`).
    /// Without persistence a Redis restart empties the state and every current item is
    /// published again.
    pub async fn persistent(&self) -> Option<bool> {
        let setting = |name: &'static str| async move {
            let reply: Vec<String> = self
                .client
                .custom(
                    CustomCommand::new_static("CONFIG", ClusterHash::Random, false),
                    vec!["GET".to_owned(), name.to_owned()],
                )
                .await
                .ok()?;
            reply.get(1).cloned()
        };
        let aof = setting("appendonly").await?;
        let save = setting("save").await?;
        Some(aof.eq_ignore_ascii_case("yes") || !save.trim().is_empty())
    }

    /// Healthy when the connector's last successful poll (recorded by any instance) is
    /// younger than `max_age` by this machine's clock; false when it never succeeded.
    pub async fn is_healthy(
        &self,
        connector: &str,
        max_age: Duration,
    ) -> Result<bool, BackendError> {
        let metrics = self.get(connector).await?;
        let now = connector_core::pipeline::now_ms();
        Ok(metrics.is_some_and(|m| m.is_healthy(now, max_age)))
    }

    /// Closes the connection (after in-flight commands finish) and stops reconnecting.
    pub async fn close(&self) {
        self.watches
            .iter()
            .for_each(tokio::task::AbortHandle::abort);
        if self.wait_replicas > 0 {
            let _ = self.committer.quit().await;
        }
        if self.listening.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = self.subscriber.quit().await;
        }
        if let Err(e) = self.client.quit().await {
            tracing::debug!(error = %e, "closing the Redis connection");
        }
    }
}

/// The fred client `settings` describe (not connected yet): its timeouts, its command
/// attempts per topology, fred's own unresponsiveness check and the reconnection back-off.
fn build_client(settings: &RedisSettings) -> Result<Client, fred::error::Error> {
    builder(settings).build()
}

/// The fred builder every connection of the backend comes from (the webhook subscriber's
/// too, so it reaches the same servers the same way).
pub(crate) fn builder(settings: &RedisSettings) -> Builder {
    let topology = settings.topology();
    let command_timeout = settings.command_timeout();
    let connect_timeout = settings.connect_timeout();
    let (min, max) = settings.reconnect_delays();
    let mut builder = Builder::from_config(settings.config.clone());
    builder
        .with_connection_config(|c| {
            c.connection_timeout = connect_timeout;
            c.internal_command_timeout = command_timeout.max(Duration::from_secs(1));
            // Never resend a command whose reply was lost: see the module docs, and
            // tests/restart.rs for the duplicate a resent commit would append. On a
            // Cluster fred counts the write after each MOVED or ASK as an attempt, so
            // one attempt fails every command a slot migration redirects; there the
            // commit is at least once anyway (entries first, with dedup ids) and a
            // resent state step is refused by its write count, so each redirect gets
            // its attempt.
            c.max_command_attempts = match topology {
                Topology::Cluster => 1 + c.max_redirections,
                _ => 1,
            };
            // fred's own check catches a silent connection nothing is written to; the
            // liveness watch (`watch_liveness`) catches the rest.
            c.unresponsive = UnresponsiveConfig {
                max_timeout: Some(command_timeout.saturating_mul(2)),
                interval: Duration::from_secs(1).min(command_timeout),
            };
            c.tcp.nodelay = Some(true);
        })
        .with_performance_config(|p| p.default_command_timeout = command_timeout)
        .set_policy(ReconnectPolicy::new_exponential(
            0,
            millis_u32(min),
            millis_u32(max),
            2,
        ));
    builder
}

/// A liveness watch per client ([`watch_liveness`]): what aborts each, and what each sees.
fn watch_all(
    clients: Vec<Client>,
    command_timeout: Duration,
    cluster: bool,
) -> (Vec<tokio::task::AbortHandle>, Vec<Silence>) {
    clients
        .into_iter()
        .map(|client| {
            let silence = Silence::default();
            let watch = watch_liveness(client, command_timeout, cluster, silence.clone());
            (watch.abort_handle(), silence)
        })
        .unzip()
}

/// Whether a PING's outcome means the connection answered: any reply counts, an error
/// reply too (an ACL refusing PING, a server still loading its data); a timeout, a dropped
/// connection or a cancelled command does not.
fn answered(outcome: &Result<Result<(), fred::error::Error>, tokio::time::error::Elapsed>) -> bool {
    use fred::error::ErrorKind;
    match outcome {
        Ok(Ok(())) => true,
        Ok(Err(e)) => !matches!(
            e.kind(),
            ErrorKind::Timeout | ErrorKind::IO | ErrorKind::Canceled | ErrorKind::Routing
        ),
        Err(_) => false,
    }
}

/// Replaces a connection that stopped answering, within about twice the command timeout.
///
/// fred's own check (`UnresponsiveConfig`) measures from the last write, and a connection
/// that keeps being written to (lease renewals, heartbeats) never looks idle: a black-holed
/// connection lived on for 35 s and more. This task PINGs each connection of the client
/// (every primary of a Cluster) every second, or every half command timeout if shorter,
/// each PING waiting up to the command timeout (a reply queued behind a `WAIT` is an
/// answer), and forces a reconnection once a connected node has answered none for twice
/// the command timeout. While fred is reconnecting on its own (Redis down) nothing is
/// counted: the silence starts with the next connection.
fn watch_liveness(
    client: Client,
    command_timeout: Duration,
    cluster: bool,
    silence: Silence,
) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_secs(1)
        .min(command_timeout / 2)
        .max(Duration::from_millis(10));
    tokio::spawn(async move {
        let mut last_answer: HashMap<String, tokio::time::Instant> = HashMap::new();
        loop {
            let round = tokio::time::Instant::now();
            let answering = if client.is_connected() {
                ping_round(&client, cluster, command_timeout, &mut last_answer, round).await
            } else {
                // Reconnecting on its own: an outage, not a wedge.
                last_answer.clear();
                true
            };
            if let Ok(mut since) = silence.lock() {
                *since = if answering {
                    None
                } else {
                    Some(since.unwrap_or(round))
                };
            }
            tokio::time::sleep_until(round + every).await;
        }
    })
}

/// PINGs each node of `client` once; false when one went unanswered. A node unanswered
/// for twice the command timeout gets the client reconnected.
async fn ping_round(
    client: &Client,
    cluster: bool,
    command_timeout: Duration,
    last_answer: &mut HashMap<String, tokio::time::Instant>,
    round: tokio::time::Instant,
) -> bool {
    let limit = command_timeout.saturating_mul(2);
    let nodes: Vec<Option<fred::types::config::Server>> = if cluster {
        client.active_connections().into_iter().map(Some).collect()
    } else {
        vec![None]
    };
    let mut all = true;
    for node in nodes {
        let key = node.as_ref().map(ToString::to_string).unwrap_or_default();
        let ping = async {
            match &node {
                Some(server) => client.with_cluster_node(server).ping::<()>(None).await,
                None => client.ping::<()>(None).await,
            }
        };
        let outcome = tokio::time::timeout(command_timeout, ping).await;
        let since = *last_answer.entry(key.clone()).or_insert(round);
        if answered(&outcome) {
            last_answer.insert(key, tokio::time::Instant::now());
            continue;
        }
        all = false;
        if since.elapsed() >= limit {
            tracing::warn!(
                server = %key,
                silent_ms = since.elapsed().as_millis() as u64,
                "Redis connection unanswered for twice the command timeout; reconnecting"
            );
            if let Err(e) = client.force_reconnection().await {
                tracing::debug!(error = %e, "forcing a Redis reconnection");
            }
            last_answer.clear();
            break;
        }
    }
    all
}

/// Since when a connection has gone unanswered, as its liveness watch sees it (`None`
/// while it answers, or while fred reconnects on its own).
type Silence = Arc<std::sync::Mutex<Option<tokio::time::Instant>>>;

fn millis_u32(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// One log line per connection event. The listener tasks are detached: each ends when the
/// client's event channels close with it.
fn log_connection_events(client: &Client, url: &str) {
    let shown = url.to_owned();
    drop(client.on_error(move |(error, server)| {
        let url = shown.clone();
        async move {
            let server = server.map(|s| s.to_string()).unwrap_or(url);
            tracing::warn!(%server, error = %error, "Redis connection error; reconnecting with backoff");
            Ok(())
        }
    }));
    drop(client.on_reconnect(|server| async move {
        tracing::info!(server = %server, "reconnected to Redis");
        Ok(())
    }));
    drop(client.on_unresponsive(|server| async move {
        tracing::warn!(server = %server, "Redis connection unresponsive; reconnecting");
        Ok(())
    }));
    drop(client.on_cluster_change(|changes| async move {
        tracing::info!(changes = changes.len(), "Redis Cluster topology changed");
        Ok(())
    }));
}

impl StateStore for RedisBackend {
    fn load<'a>(
        &'a self,
        connector: &'a str,
    ) -> BoxFuture<'a, Result<ConnectorState, BackendError>> {
        Box::pin(async move {
            let key = self.keys.state(connector);
            let hscan = CustomCommand::new_static("HSCAN", ClusterHash::FirstKey, false);
            let mut fields = Vec::new();
            let mut cursor = String::from("0");
            loop {
                let (next, page): (String, Vec<String>) = self
                    .client
                    .custom(
                        hscan.clone(),
                        vec![
                            key.clone(),
                            cursor,
                            "COUNT".to_owned(),
                            SCAN_PAGE.to_string(),
                        ],
                    )
                    .await
                    .map_err(fail("load state"))?;
                let mut it = page.into_iter();
                while let (Some(field), Some(value)) = (it.next(), it.next()) {
                    fields.push((field, value));
                }
                if next == "0" {
                    break;
                }
                cursor = next;
            }
            Ok(state_from_fields(fields))
        })
    }

    fn header<'a>(
        &'a self,
        connector: &'a str,
    ) -> BoxFuture<'a, Result<StateHeader, BackendError>> {
        Box::pin(async move {
            let (format, seq): (Option<String>, Option<String>) = self
                .client
                .hmget(
                    self.keys.state(connector),
                    vec![crate::state::HEADER_FORMAT, crate::state::HEADER_SEQ],
                )
                .await
                .map_err(fail("read state header"))?;
            Ok(crate::state::header_from(format, seq))
        })
    }

    fn apply<'a>(
        &'a self,
        connector: &'a str,
        delta: &'a StateDelta,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            // Unfenced on purpose: an operator's change; the holder sees the write count
            // move and reads state again.
            let writes = crate::state::writes_for(delta);
            let mut args = vec![
                "change".to_owned(),
                STATE_FORMAT.to_string(),
                writes.deletes.len().to_string(),
            ];
            args.extend(writes.deletes);
            args.extend(writes.sets.into_iter().flat_map(|(f, v)| [f, v]));
            self.change_state(connector, args, "change state").await
        })
    }

    fn reset<'a>(&'a self, connector: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let args = vec!["reset".to_owned(), STATE_FORMAT.to_string(), "0".to_owned()];
            self.change_state(connector, args, "reset state").await
        })
    }
}

impl RedisBackend {
    async fn change_state(
        &self,
        connector: &str,
        args: Vec<String>,
        operation: &'static str,
    ) -> Result<(), BackendError> {
        let _seq: i64 = self
            .scripts
            .state_change
            .evalsha_with_reload(&self.client, self.keys.state(connector), args)
            .await
            .map_err(fail(operation))?;
        Ok(())
    }
}

impl MetricsStore for RedisBackend {
    fn record<'a>(
        &'a self,
        connector: &'a str,
        record: &'a PollRecord,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let latency_ms = record.latency.as_secs_f64() * 1000.0;
            let (ok, fetched, published) = match &record.summary {
                Some(s) => ("1", s.fetched, s.published),
                None => ("0", 0, 0),
            };
            let _total: i64 = self
                .scripts
                .record_metrics
                .evalsha_with_reload(
                    &self.client,
                    self.keys.metrics(connector),
                    vec![
                        record.started_at_ms.to_string(),
                        format!("{latency_ms:.3}"),
                        ok.to_owned(),
                        fetched.to_string(),
                        published.to_string(),
                    ],
                )
                .await
                .map_err(fail("record metrics"))?;
            Ok(())
        })
    }

    fn get<'a>(
        &'a self,
        connector: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConnectorMetrics>, BackendError>> {
        Box::pin(async move {
            let fields: HashMap<String, String> = self
                .client
                .hgetall(self.keys.metrics(connector))
                .await
                .map_err(fail("read metrics"))?;
            Ok(metrics_from_fields(&fields))
        })
    }
}

impl RedisBackend {
    /// How long the longest-silent connection has gone unanswered.
    fn silent_for(&self) -> Option<Duration> {
        self.silences
            .iter()
            .filter_map(|s| s.lock().ok().and_then(|since| *since))
            .map(|since| since.elapsed())
            .max()
    }

    /// Whether a fresh connection to the same server is answered, within `within`.
    async fn fresh_connection_answers(&self, within: Duration) -> bool {
        let probe = self.client.clone_new();
        let answered = tokio::time::timeout(within, async {
            probe.init().await?;
            probe.ping::<()>(None).await
        })
        .await;
        let _ = tokio::time::timeout(within, probe.quit()).await;
        matches!(answered, Ok(Ok(())))
    }
}

impl Membership for RedisBackend {
    fn heartbeat<'a>(
        &'a self,
        group: &'a str,
        instance_id: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<usize, BackendError>> {
        Box::pin(async move {
            let live: i64 = self
                .scripts
                .heartbeat
                .evalsha_with_reload(
                    &self.client,
                    self.keys.workers(group),
                    vec![instance_id.to_owned(), ttl.as_millis().to_string()],
                )
                .await
                .map_err(fail("worker heartbeat"))?;
            Ok(usize::try_from(live).unwrap_or(1).max(1))
        })
    }

    fn leave<'a>(
        &'a self,
        group: &'a str,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let _: i64 = self
                .client
                .zrem(self.keys.workers(group), instance_id)
                .await
                .map_err(fail("leave workers"))?;
            Ok(())
        })
    }

    /// Wedged when a connection went unanswered for twice the command timeout (its watch
    /// reconnecting did not help) while a fresh connection to the same server is answered
    /// within `PROBE_TIMEOUT`.
    fn wedged(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async move {
            let silent = self.silent_for()?;
            if silent < self.command_timeout.saturating_mul(2) {
                return None;
            }
            self.fresh_connection_answers(PROBE_TIMEOUT).await.then(|| {
                format!(
                    "no Redis command answered for {} ms, though a fresh connection to {} is answered",
                    silent.as_millis(),
                    self.url
                )
            })
        })
    }
}

/// How long the liveness check waits for a fresh connection: inside a one-second probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(800);
