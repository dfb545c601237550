//! In-process backends: a first run with no infrastructure, and the reference behaviour
//! the Redis backend is tested against.
//!
//! Leases, fencing and metrics live in memory. Signals go to standard output as one JSON
//! line per stream entry (or to memory, for tests). State lives in memory and, when a
//! folder is given, in one JSON file per connector there, so a restart does not republish
//! everything.
//!
//! Guarantee: a commit writes its lines, then its state; a crash between the two can
//! repeat those lines after a restart (at-least-once). The Redis backend gives
//! exactly-once on a single node; this one is for development and demos.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use serde::Serialize;

use crate::ports::Membership;
use crate::ports::{
    BackendError, BoxFuture, CommitChunk, CommitOutcome, ConnectorMetrics, ConnectorState, Lease,
    LeaseInfo, LeaseManager, MetricsStore, PollRecord, Publisher, Renewal, STATE_FORMAT,
    StateDelta, StateHeader, StateStore,
};
use crate::signal::StreamEntry;

/// Where published entries go.
enum Output {
    Stdout,
    Memory(Mutex<Vec<(String, StreamEntry)>>),
}

struct Held {
    instance_id: String,
    token: u64,
    expires: Instant,
}

#[derive(Default)]
struct Inner {
    states: HashMap<String, ConnectorState>,
    leases: HashMap<String, Held>,
    fences: HashMap<String, u64>,
    metrics: HashMap<String, ConnectorMetrics>,
    members: HashMap<(String, String), Instant>,
}

/// All four ports in one process.
pub struct EmbeddedBackend {
    inner: Mutex<Inner>,
    output: Output,
    state_dir: Option<PathBuf>,
}

/// The stdout line for one entry: the stream name plus the entry's fields, with the signal
/// as a JSON object rather than an escaped string, so `jq` reads it directly.
#[derive(Serialize)]
struct Line<'a> {
    stream: &'a str,
    connector: &'a str,
    #[serde(rename = "type")]
    connector_type: &'a str,
    external_id: &'a str,
    version: &'a str,
    dedup_id: &'a str,
    signal: &'a serde_json::value::RawValue,
}

impl EmbeddedBackend {
    /// Prints entries to standard output; state in memory, or in `state_dir` when given.
    pub fn stdout(state_dir: Option<PathBuf>) -> Self {
        Self {
            inner: Mutex::default(),
            output: Output::Stdout,
            state_dir,
        }
    }

    /// Keeps entries in memory for inspection (tests, the contract harness).
    pub fn in_memory() -> Self {
        Self::in_memory_with_state(None)
    }

    /// Keeps entries in memory, and state in `state_dir` when given (tests of the state
    /// files, which must not print their signals among the test output).
    pub fn in_memory_with_state(state_dir: Option<PathBuf>) -> Self {
        Self {
            inner: Mutex::default(),
            output: Output::Memory(Mutex::default()),
            state_dir,
        }
    }

    /// Entries published so far with their stream (memory output only; empty otherwise).
    pub fn published(&self) -> Vec<(String, StreamEntry)> {
        match &self.output {
            Output::Memory(m) => lock(m).clone(),
            Output::Stdout => Vec::new(),
        }
    }

    /// A connector's state as committed (in memory), for tests.
    pub fn load_state(&self, connector: &str) -> ConnectorState {
        lock(&self.inner)
            .states
            .get(connector)
            .cloned()
            .unwrap_or_default()
    }

    /// Puts `state` in place as it is, header included, as a Redis failing over to a
    /// lagging replica (or restarting empty) would: for data-loss tests.
    pub fn replace_state(&self, connector: &str, state: ConnectorState) {
        lock(&self.inner).states.insert(connector.to_owned(), state);
    }

    /// Takes another instance's view: forces the lease to a new holder, as if this one had
    /// stalled past its TTL (for fencing tests).
    pub fn steal_lease(&self, connector: &str, instance_id: &str, ttl: Duration) -> Lease {
        let mut inner = lock(&self.inner);
        let token = next_token(&mut inner, connector);
        inner.leases.insert(
            connector.to_owned(),
            Held {
                instance_id: instance_id.to_owned(),
                token,
                expires: Instant::now() + ttl,
            },
        );
        Lease {
            connector: connector.to_owned(),
            instance_id: instance_id.to_owned(),
            token,
        }
    }

    fn state_file(&self, connector: &str) -> Option<PathBuf> {
        self.state_dir
            .as_ref()
            .map(|d| d.join(format!("{connector}.state.json")))
    }

    fn read_state_file(&self, connector: &str) -> Result<ConnectorState, BackendError> {
        let Some(path) = self.state_file(connector) else {
            return Ok(ConnectorState::default());
        };
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                BackendError::new(
                    "load state",
                    format!(
                        "{} is not a valid state file ({e}); delete it to start over",
                        path.display()
                    ),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConnectorState::default()),
            Err(e) => Err(BackendError::new(
                "load state",
                format!("{}: {e}", path.display()),
            )),
        }
    }

    fn write_state_file(
        &self,
        connector: &str,
        state: &ConnectorState,
    ) -> Result<(), BackendError> {
        let Some(path) = self.state_file(connector) else {
            return Ok(());
        };
        let fail = |e: &dyn std::fmt::Display| {
            BackendError::new("save state", format!("{}: {e}", path.display()))
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        }
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(state).map_err(|e| fail(&e))?;
        std::fs::write(&tmp, bytes).map_err(|e| fail(&e))?;
        // Rename is atomic: a crash leaves the old file or the new one, never half of one.
        std::fs::rename(&tmp, &path).map_err(|e| fail(&e))
    }

    fn emit(&self, stream: &str, entries: &[StreamEntry]) -> Result<(), BackendError> {
        match &self.output {
            Output::Memory(m) => {
                lock(m).extend(entries.iter().map(|e| (stream.to_owned(), e.clone())));
                Ok(())
            }
            Output::Stdout => {
                let buf = json_lines(stream, entries)?;
                let mut out = std::io::stdout().lock();
                out.write_all(&buf)
                    .and_then(|()| out.flush())
                    .map_err(|e| BackendError::new("publish", e))
            }
        }
    }
}

/// Entries as embedded mode prints them: one JSON object per line with the stream entry's
/// fields and the signal inline. `poll --dry-run` prints the same, so one `jq` filter reads
/// both.
pub fn json_lines(stream: &str, entries: &[StreamEntry]) -> Result<Vec<u8>, BackendError> {
    let mut buf = Vec::with_capacity(entries.iter().map(|e| e.signal.len() + 256).sum());
    for e in entries {
        let signal: &serde_json::value::RawValue =
            serde_json::from_str(&e.signal).map_err(|err| BackendError::new("publish", err))?;
        let line = Line {
            stream,
            connector: &e.connector,
            connector_type: &e.connector_type,
            external_id: &e.external_id,
            version: &e.version,
            dedup_id: &e.dedup_id,
            signal,
        };
        serde_json::to_writer(&mut buf, &line).map_err(|err| BackendError::new("publish", err))?;
        buf.push(b'\n');
    }
    Ok(buf)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not wedge every connector: the data is still consistent
    // because every critical section here is a few map operations.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn next_token(inner: &mut Inner, connector: &str) -> u64 {
    let fence = inner.fences.entry(connector.to_owned()).or_insert(0);
    *fence += 1;
    *fence
}

fn ready<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, T> {
    Box::pin(std::future::ready(value))
}

impl LeaseManager for EmbeddedBackend {
    fn acquire<'a>(
        &'a self,
        connector: &'a str,
        instance_id: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, BackendError>> {
        let mut inner = lock(&self.inner);
        let now = Instant::now();
        if inner.leases.get(connector).is_some_and(|h| h.expires > now) {
            return ready(Ok(None));
        }
        let token = next_token(&mut inner, connector);
        inner.leases.insert(
            connector.to_owned(),
            Held {
                instance_id: instance_id.to_owned(),
                token,
                expires: now + ttl,
            },
        );
        ready(Ok(Some(Lease {
            connector: connector.to_owned(),
            instance_id: instance_id.to_owned(),
            token,
        })))
    }

    fn renew<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Renewal, BackendError>> {
        let mut inner = lock(&self.inner);
        let now = Instant::now();
        let renewal = match inner.leases.get_mut(&lease.connector) {
            Some(h) if h.expires <= now => Renewal::Vanished,
            Some(h) if h.token == lease.token => {
                h.expires = now + ttl;
                Renewal::Renewed
            }
            Some(_) => Renewal::Taken,
            None => Renewal::Vanished,
        };
        ready(Ok(renewal))
    }

    fn release<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<(), BackendError>> {
        let mut inner = lock(&self.inner);
        if inner
            .leases
            .get(&lease.connector)
            .is_some_and(|h| h.token == lease.token)
        {
            inner.leases.remove(&lease.connector);
        }
        ready(Ok(()))
    }

    fn holder<'a>(
        &'a self,
        connector: &'a str,
    ) -> BoxFuture<'a, Result<Option<LeaseInfo>, BackendError>> {
        let inner = lock(&self.inner);
        let now = Instant::now();
        let info = inner
            .leases
            .get(connector)
            .filter(|h| h.expires > now)
            .map(|h| LeaseInfo {
                instance_id: h.instance_id.clone(),
                token: h.token,
                ttl_ms: Some(h.expires.saturating_duration_since(now).as_millis() as u64),
            });
        ready(Ok(info))
    }

    fn force_release<'a>(
        &'a self,
        connector: &'a str,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        let removed = lock(&self.inner).leases.remove(connector).is_some();
        ready(Ok(removed))
    }
}

impl EmbeddedBackend {
    /// A connector's state from memory, else from its file (then kept in memory).
    fn current_state(&self, connector: &str) -> Result<ConnectorState, BackendError> {
        if let Some(state) = lock(&self.inner).states.get(connector).cloned() {
            return Ok(state);
        }
        let state = self.read_state_file(connector)?;
        lock(&self.inner)
            .states
            .insert(connector.to_owned(), state.clone());
        Ok(state)
    }

    /// Replaces a connector's state in memory and in its file.
    fn store_state(&self, connector: &str, state: ConnectorState) -> Result<(), BackendError> {
        lock(&self.inner)
            .states
            .insert(connector.to_owned(), state.clone());
        self.write_state_file(connector, &state)
    }
}

impl StateStore for EmbeddedBackend {
    fn load<'a>(
        &'a self,
        connector: &'a str,
    ) -> BoxFuture<'a, Result<ConnectorState, BackendError>> {
        ready(self.current_state(connector))
    }

    fn header<'a>(
        &'a self,
        connector: &'a str,
    ) -> BoxFuture<'a, Result<StateHeader, BackendError>> {
        ready(self.current_state(connector).map(|s| s.header))
    }

    fn apply<'a>(
        &'a self,
        connector: &'a str,
        delta: &'a StateDelta,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        let result = self.current_state(connector).and_then(|mut state| {
            delta.apply_to(&mut state);
            state.header = StateHeader {
                format: STATE_FORMAT,
                seq: state.header.seq + 1,
            };
            self.store_state(connector, state)
        });
        ready(result)
    }

    fn reset<'a>(&'a self, connector: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        // Everything goes but the write count, which advances, so a holder's next poll sees
        // the change and reads state again.
        let result = self.current_state(connector).and_then(|state| {
            let header = StateHeader {
                format: STATE_FORMAT,
                seq: state.header.seq + 1,
            };
            self.store_state(
                connector,
                ConnectorState {
                    header,
                    ..ConnectorState::default()
                },
            )
        });
        ready(result)
    }
}

impl Publisher for EmbeddedBackend {
    fn commit<'a>(
        &'a self,
        lease: &'a Lease,
        chunk: &'a CommitChunk,
    ) -> BoxFuture<'a, Result<CommitOutcome, BackendError>> {
        // The lock is held across the fence check, the output and the state update, which
        // is what makes them one step for every other task of this process.
        let mut inner = lock(&self.inner);
        // The same test as the Redis script: our token, and not lapsed.
        let now = Instant::now();
        let held = inner.leases.get(&lease.connector).is_some_and(|h| {
            h.token == lease.token && h.instance_id == lease.instance_id && h.expires > now
        });
        if !held {
            return ready(Ok(CommitOutcome::Fenced));
        }
        let stored = inner
            .states
            .get(&lease.connector)
            .map_or(0, |s| s.header.seq);
        if stored != chunk.seq {
            return ready(Ok(CommitOutcome::RolledBack { stored }));
        }
        if let Err(e) = self.emit(&chunk.stream, &chunk.entries) {
            return ready(Err(e));
        }
        let state = inner.states.entry(lease.connector.clone()).or_default();
        chunk.delta.apply_to(state);
        state.header = StateHeader {
            format: STATE_FORMAT,
            seq: stored + 1,
        };
        let snapshot = self.state_dir.is_some().then(|| state.clone());
        drop(inner);
        if let Some(state) = snapshot
            && let Err(e) = self.write_state_file(&lease.connector, &state)
        {
            return ready(Err(e));
        }
        ready(Ok(CommitOutcome::Committed))
    }
}

impl MetricsStore for EmbeddedBackend {
    fn record<'a>(
        &'a self,
        connector: &'a str,
        record: &'a PollRecord,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        lock(&self.inner)
            .metrics
            .entry(connector.to_owned())
            .or_default()
            .record(record);
        ready(Ok(()))
    }

    fn get<'a>(
        &'a self,
        connector: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConnectorMetrics>, BackendError>> {
        ready(Ok(lock(&self.inner).metrics.get(connector).cloned()))
    }
}

impl Membership for EmbeddedBackend {
    fn heartbeat<'a>(
        &'a self,
        group: &'a str,
        instance_id: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<usize, BackendError>> {
        let mut inner = lock(&self.inner);
        let now = Instant::now();
        inner.members.retain(|_, expires| *expires > now);
        inner
            .members
            .insert((group.to_owned(), instance_id.to_owned()), now + ttl);
        let live = inner.members.keys().filter(|(g, _)| g == group).count();
        ready(Ok(live))
    }

    fn leave<'a>(
        &'a self,
        group: &'a str,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        lock(&self.inner)
            .members
            .remove(&(group.to_owned(), instance_id.to_owned()));
        ready(Ok(()))
    }
}
