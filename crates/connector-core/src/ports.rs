//! The ports a backend implements: leases, state, the fenced commit, and metrics.
//!
//! They are shaped around one guarantee: a poll's signals and the state that records them
//! are written together, and only while the writer still holds the connector's lease. So
//! there is no "publish" separate from "save state": [`Publisher::commit`] takes a chunk of
//! stream entries *and* the state changes that go with it, plus the lease whose fencing
//! token the backend must check in the same atomic step (a Lua script on Redis, a mutex in
//! the embedded backend).
//!
//! The methods return boxed futures rather than using `async fn` so that the runtime can
//! pick a backend at start-up (`REDIS_URL` or not) and hold it as `Arc<dyn …>`; a box per
//! call is noise next to a network round trip.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::signal::StreamEntry;

/// A boxed, sendable future, as the ports return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A failure of the backend itself (Redis unreachable, a script error, a full disk).
/// The poll that met it fails and is retried on the next tick; nothing is half-applied
/// beyond what a commit already made durable.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct BackendError {
    /// What was being done, e.g. `commit`, `acquire lease`.
    pub operation: &'static str,
    /// The backend's description, never containing a credential.
    pub message: String,
}

impl BackendError {
    /// Wraps a backend-specific error.
    pub fn new(operation: &'static str, message: impl std::fmt::Display) -> Self {
        Self {
            operation,
            message: message.to_string(),
        }
    }
}

/// Proof that this instance may write a connector's output, for as long as the backend
/// still stores the same token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The connector the lease is for.
    pub connector: String,
    /// The holder, unique per process (host, pid and a random part).
    pub instance_id: String,
    /// Strictly increasing per connector; a commit carrying an older token is refused.
    pub token: u64,
}

/// Who holds a connector's lease right now, for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseInfo {
    /// The holder.
    pub instance_id: String,
    /// Its fencing token.
    pub token: u64,
    /// Time left before it lapses unless renewed, in milliseconds.
    pub ttl_ms: Option<u64>,
}

/// Leases with fencing tokens: at most one writer per connector at a time.
pub trait LeaseManager: Send + Sync {
    /// Takes the lease if nobody holds it; `None` if somebody else does.
    fn acquire<'a>(
        &'a self,
        connector: &'a str,
        instance_id: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, BackendError>>;
    /// Extends the lease if it is still ours; anything but [`Renewal::Renewed`] means it
    /// was lost and polling must stop at once.
    fn renew<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Renewal, BackendError>>;
    /// Gives the lease up if it is still ours, so another instance can take over at once.
    fn release<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<(), BackendError>>;
    /// The current holder, if any.
    fn holder<'a>(
        &'a self,
        connector: &'a str,
    ) -> BoxFuture<'a, Result<Option<LeaseInfo>, BackendError>>;
    /// Deletes the lease whoever holds it (operator action for a stuck lease).
    fn force_release<'a>(&'a self, connector: &'a str)
    -> BoxFuture<'a, Result<bool, BackendError>>;
}

/// Where an incremental source resumes and what validators its last response carried.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// `ETag` of the last full response, sent back as `If-None-Match`.
    pub etag: Option<String>,
    /// `Last-Modified` of the last full response, sent back as `If-Modified-Since`.
    pub last_modified: Option<String>,
    /// Where the next read starts: the highest record time committed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    /// Where an unfinished read continues; absent once a read completed.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "json_text")]
    pub resume: Option<ResumePoint>,
    /// The latest record time an unfinished read in an order other than ascending has
    /// committed so far (RFC 3339); it becomes the watermark when the read completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    /// The validators and next link of each page position of the last complete paged
    /// read, so an unchanged page costs a 304 and the read follows the link it had.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "json_text")]
    pub pages: Option<Vec<PageMark>>,
    /// A parent/child stream's bookkeeping (kept on its parents' state): where the
    /// rotation through the partitions is, and when the parents were last read in full.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "json_text")]
    pub partitions: Option<PartitionMark>,
}

/// Where a parent/child stream's reads are, across polls.
///
/// The partition set itself is the parents' recorded versions (key → what the child
/// request needs); this says which partition the next poll's child reads start at, and
/// what a shared watermark may be.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionMark {
    /// The key the next poll's child reads start at (the rotation of
    /// `maxPartitionsPerPoll`); absent: the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// When the poll that began the current round through the partitions started (UNIX
    /// ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round_ms: Option<i64>,
    /// Every child read of the current round so far was complete.
    #[serde(default)]
    pub round_ok: bool,
    /// When the last round in which every partition was read to completion started: the
    /// one watermark children fall back to past the cap on tracked partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_ms: Option<i64>,
    /// When the last complete full read of the parents started (UNIX ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_ms: Option<i64>,
    /// Polls since then.
    #[serde(default)]
    pub polls: u32,
}

/// Where an unfinished read continues: the request that continues it, which read it
/// belongs to (the fingerprint of its first request) and when it was saved (a stale one
/// is not followed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// The fingerprint of the read's first request.
    pub fingerprint: String,
    /// When it was saved (UNIX milliseconds).
    pub at_ms: i64,
    /// The request that continues the read.
    #[serde(flatten)]
    pub next: StoredRequest,
}

/// One page position of a complete read: what it asked, its validators, where it led.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageMark {
    /// The fingerprint of the page's request.
    pub fingerprint: String,
    /// The page's `ETag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The page's `Last-Modified`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// The request of the page after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<StoredRequest>,
}

/// A request as state keeps it (its headers are the read's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRequest {
    /// The URL, query included.
    pub url: String,
    /// A POST's body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

/// A typed part of the cursor as state has always stored it: JSON text inside a string
/// field, so the stored layout of every release is the same. Text this release cannot
/// read (a later release's) reads as absent: a read then starts over, as it would have.
pub mod json_text {
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// The value as its JSON text.
    pub fn encode<T: Serialize>(value: &T) -> Option<String> {
        serde_json::to_string(value).ok()
    }

    /// The value of JSON text, when this release reads it.
    pub fn decode<T: DeserializeOwned>(text: &str) -> Option<T> {
        serde_json::from_str(text).ok()
    }

    /// Serde's `with` side for writing.
    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        value.as_ref().and_then(encode).serialize(serializer)
    }

    /// Serde's `with` side for reading.
    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<T>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.and_then(|t| decode(&t)))
    }
}

impl Cursor {
    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.etag.is_none()
            && self.last_modified.is_none()
            && self.watermark.is_none()
            && self.resume.is_none()
            && self.pending.is_none()
            && self.pages.is_none()
            && self.partitions.is_none()
    }
}

/// What one stream remembers between polls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    /// Resume point and HTTP validators.
    #[serde(default)]
    pub cursor: Cursor,
    /// External id → last published version.
    #[serde(default)]
    pub versions: HashMap<String, String>,
    /// Records that failed to parse (by identity) → in how many polls in a row.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub failures: HashMap<String, u32>,
    /// Snapshot items missing from the latest complete reads, whose versions are kept a
    /// while (`removalGraceMs`, `removalGracePolls`): public APIs drop items from single
    /// responses, and an item that comes back with its version must not be published
    /// again.
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub absent: HashMap<String, Absence>,
}

/// Since when, and for how many complete reads in a row, a snapshot item has been missing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Absence {
    /// The first complete read that missed it (UNIX ms).
    pub since_ms: u64,
    /// Complete reads in a row that missed it.
    pub polls: u32,
}

impl Absence {
    /// The state hash's form, `since_ms:polls`.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.since_ms, self.polls)
    }

    /// Reads [`Absence::encode`]'s form; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let (since, polls) = text.split_once(':')?;
        Some(Self {
            since_ms: since.parse().ok()?,
            polls: polls.parse().ok()?,
        })
    }
}

/// The state layout this release writes. Layout 1 is the one before the header existed
/// (read as is); a state of a later layout stops the connector instead of being misread.
pub const STATE_FORMAT: u32 = 2;

/// A state's header: which layout wrote it, and how many writes it has seen.
///
/// Every write to a connector's state (each commit chunk, an operator's change, a reset)
/// advances `seq`, and a commit is applied only when the stored `seq` is the one the
/// writer last saw. A Redis that lost writes (restarted without persistence, flushed, or
/// failed over to a lagging replica) has a lower `seq` than its writer remembers, which is
/// how the loss is noticed even when the lease and its token survived it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateHeader {
    /// The layout of the stored state (0: no header: nothing stored yet, or written
    /// before headers existed, which is layout 1 and read as it is).
    pub format: u32,
    /// Writes applied to the state so far.
    pub seq: u64,
}

impl StateHeader {
    /// An error when the state was written by a later release, whose layout this one
    /// could misread.
    pub fn check_format(&self) -> Result<(), StateLayoutError> {
        if self.format > STATE_FORMAT {
            return Err(StateLayoutError { found: self.format });
        }
        Ok(())
    }
}

/// A state written by a later release: the connector stops rather than misread it (and
/// publish everything again).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the stored state has layout {found}, written by a later release; this release reads \
     layouts up to {STATE_FORMAT}. Run the later release, or `state reset` to start over \
     (every current item is then published again)"
)]
pub struct StateLayoutError {
    /// The layout found.
    pub found: u32,
}

/// Writes the backend lost: its state holds fewer writes than this process made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateLoss {
    /// The write count found.
    pub stored: u64,
    /// The write count this process had made.
    pub written: u64,
}

/// Everything a connector remembers between polls: one [`StreamState`] per stream.
///
/// The main stream (named `""`, the only one of a single-stream connector such as NOAA) is
/// kept at the top level, in the field names state had before connectors had several
/// streams, so state written then is read unchanged; named streams sit beside it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectorState {
    /// Layout and write count (absent in states written before the header existed).
    #[serde(default)]
    pub header: StateHeader,
    /// The main stream's state.
    #[serde(flatten)]
    pub main: StreamState,
    /// Every other stream's state, by stream name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub streams: std::collections::BTreeMap<String, StreamState>,
}

impl ConnectorState {
    /// One stream's state (empty when it has none yet).
    pub fn stream(&self, name: &str) -> Option<&StreamState> {
        if name.is_empty() {
            Some(&self.main)
        } else {
            self.streams.get(name)
        }
    }

    /// One stream's state, created empty when missing.
    pub fn stream_mut(&mut self, name: &str) -> &mut StreamState {
        if name.is_empty() {
            &mut self.main
        } else {
            self.streams.entry(name.to_owned()).or_default()
        }
    }

    /// Forgets every stream's HTTP validators (ETag, Last-Modified, per-page marks), so
    /// the next read fetches every page in full: after a loss, a `304 Not Modified` would
    /// hide exactly the items the backend lacks.
    pub fn forget_validators(&mut self) {
        for stream in std::iter::once(&mut self.main).chain(self.streams.values_mut()) {
            stream.cursor.etag = None;
            stream.cursor.last_modified = None;
            stream.cursor.pages = None;
        }
    }

    /// Every stream with its name, the main one (`""`) first.
    pub fn all_streams(&self) -> impl Iterator<Item = (&str, &StreamState)> {
        std::iter::once(("", &self.main)).chain(self.streams.iter().map(|(k, v)| (k.as_str(), v)))
    }
}

/// The state changes that go with one chunk of signals, all for one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateDelta {
    /// The stream the changes are for (`""`: the main one).
    pub stream: String,
    /// Versions to record (external id, version).
    pub upserts: Vec<(String, String)>,
    /// External ids to forget (left a snapshot, or published as removed).
    pub removals: Vec<String>,
    /// The stream's new cursor; set only with the last chunk of a page, so a crash between
    /// chunks resumes from the old cursor and re-detects (but does not republish) what was
    /// committed.
    pub cursor: Option<Cursor>,
    /// Failure counts to record (identity, polls); 0 forgets the record's failures.
    pub failures: Vec<(String, u32)>,
    /// Absences to record (external id, absence), or to forget (`None`: the item is back).
    pub absences: Vec<(String, Option<Absence>)>,
}

impl StateDelta {
    /// True when the chunk changes nothing.
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty()
            && self.removals.is_empty()
            && self.cursor.is_none()
            && self.failures.is_empty()
            && self.absences.is_empty()
    }

    /// Applies the delta to an in-memory state, as the backend applied it durably.
    pub fn apply_to(&self, state: &mut ConnectorState) {
        let stream = state.stream_mut(&self.stream);
        for id in &self.removals {
            stream.versions.remove(id);
            stream.absent.remove(id);
        }
        for (id, version) in &self.upserts {
            stream.versions.insert(id.clone(), version.clone());
        }
        if let Some(cursor) = &self.cursor {
            stream.cursor = cursor.clone();
        }
        for (id, polls) in &self.failures {
            if *polls == 0 {
                stream.failures.remove(id);
            } else {
                stream.failures.insert(id.clone(), *polls);
            }
        }
        for (id, absence) in &self.absences {
            match absence {
                Some(a) => stream.absent.insert(id.clone(), *a),
                None => stream.absent.remove(id),
            };
        }
    }
}

/// One atomic unit of output: signals and the state that records them.
#[derive(Debug, Clone)]
pub struct CommitChunk {
    /// The stream to append to.
    pub stream: String,
    /// `MAXLEN ~` for the append, if configured.
    pub stream_max_len: Option<u64>,
    /// Entries to append, in order.
    pub entries: Vec<StreamEntry>,
    /// State changes to apply with them.
    pub delta: StateDelta,
    /// The state's write count the writer expects stored ([`StateHeader::seq`]); the
    /// commit advances it by one, or is refused as [`CommitOutcome::RolledBack`].
    pub seq: u64,
}

/// Result of a commit that reached the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Entries appended and state written, together.
    Committed,
    /// The lease no longer carries this token: nothing was written.
    Fenced,
    /// Committed, but fewer replicas acknowledged it than `REDIS_WAIT_REPLICAS` asks: a
    /// failover now could lose it. The poll stops before its next page.
    UnderReplicated {
        /// Replicas that acknowledged the commit.
        acked: u32,
        /// Replicas asked for.
        wanted: u32,
    },
    /// The stored state's write count is not the one expected: the backend lost writes
    /// (or someone else wrote). Nothing was written; the writer reloads state.
    RolledBack {
        /// The write count found.
        stored: u64,
    },
}

/// Whether a renewal kept the lease, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Still ours, for another TTL.
    Renewed,
    /// Another instance holds it now.
    Taken,
    /// Nobody holds it: it lapsed (a pause past the TTL) or the backend lost it.
    Vanished,
}

/// The fenced, atomic write of signals plus state.
pub trait Publisher: Send + Sync {
    /// Appends `chunk.entries` and applies `chunk.delta` for `lease.connector`, atomically,
    /// only if the lease still holds `lease.token`.
    fn commit<'a>(
        &'a self,
        lease: &'a Lease,
        chunk: &'a CommitChunk,
    ) -> BoxFuture<'a, Result<CommitOutcome, BackendError>>;
}

/// Durable connector state.
pub trait StateStore: Send + Sync {
    /// Reads the whole state, once per lease acquisition (the holder is the only writer).
    fn load<'a>(
        &'a self,
        connector: &'a str,
    ) -> BoxFuture<'a, Result<ConnectorState, BackendError>>;
    /// The stored state's header alone: one cheap round trip per poll, so a holder learns
    /// that the state changed under it (lost writes, an operator's reset) before it
    /// trusts its cached copy.
    fn header<'a>(&'a self, connector: &'a str)
    -> BoxFuture<'a, Result<StateHeader, BackendError>>;
    /// Forgets everything but the write count, which advances: the next poll publishes
    /// every current item again.
    fn reset<'a>(&'a self, connector: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;
    /// Applies `delta` without a lease, advancing the write count: an operator's change
    /// (`state reset --stream`), which the holder notices at its next poll.
    fn apply<'a>(
        &'a self,
        connector: &'a str,
        delta: &'a StateDelta,
    ) -> BoxFuture<'a, Result<(), BackendError>>;
}

/// Why a read ended before its documented end: each is a partial read, said in the log,
/// counted in `connector_partial_reads_total{reason}` and shown in `/health/connectors`,
/// and a partial snapshot read prunes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartialReason {
    /// `maxPages` was reached; the next poll goes on from there.
    PageCap,
    /// `maxItemsPerPoll` was reached; the next poll goes on from there.
    ItemCap,
    /// A next link to another origin was not followed (credentials stay home).
    ForeignLink,
    /// A next link could not be resolved to a URL.
    LinkUnresolvable,
    /// Not a partial read but a suspicion: a page as full as the configured page size
    /// came without a next link.
    FullPageNoNext,
}

impl PartialReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::PageCap => "page_cap",
            Self::ItemCap => "item_cap",
            Self::ForeignLink => "foreign_link",
            Self::LinkUnresolvable => "link_unresolvable",
            Self::FullPageNoNext => "full_page_no_next",
        }
    }
}

/// Per-poll figures, as the pipeline reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollSummary {
    /// Items the provider returned (after de-duplication within the poll).
    pub fetched: u64,
    /// Signals committed to the stream.
    pub published: u64,
    /// Items whose version was already recorded.
    pub skipped_unchanged: u64,
    /// Signals published as `removed` (or versions pruned without a signal).
    pub removed: u64,
    /// Items that could not be turned into a signal; retried on the next poll.
    pub failed: u64,
    /// Records that failed in `poisonAfterPolls` polls and are skipped from now on.
    #[serde(default)]
    pub poisoned: u64,
    /// HTTP pages read.
    pub pages: u64,
    /// The provider answered 304 Not Modified.
    pub not_modified: bool,
    /// Commit round trips made.
    pub commits: u64,
    /// Reads of this poll that ended early, by reason (and full pages without a next
    /// link, which are only suspicious).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub partial_reads: std::collections::BTreeMap<PartialReason, u64>,
    /// A stream's watermark or resume point moved: the poll got somewhere even when it
    /// published nothing (a partial read that does not stall).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub progressed: bool,
    /// Records whose time could not be read: the first pointer and value met, and how
    /// many (the records are published; the watermark cannot move on them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable_times: Option<UnreadableTimes>,
    /// Provider-specific counters (e.g. `keepaliveDropped`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extras: std::collections::BTreeMap<String, u64>,
}

/// Records of a poll whose time (the watermark field) could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnreadableTimes {
    /// The pointer looked up.
    pub pointer: String,
    /// The first value that could not be read (`null` when the field was absent).
    pub first: Option<String>,
    /// How many records.
    pub count: u64,
}

/// The outcome of one poll as metrics see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollRecord {
    /// When the poll started, UNIX milliseconds.
    pub started_at_ms: u64,
    /// How long it took.
    pub latency: Duration,
    /// The figures, on success.
    pub summary: Option<PollSummary>,
}

/// The guide's metrics hash, one per connector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorMetrics {
    /// Last poll start, UNIX ms.
    pub last_poll_time: Option<u64>,
    /// Last successful poll start, UNIX ms.
    pub last_success_time: Option<u64>,
    /// Polls attempted.
    pub total_polls: u64,
    /// Polls that succeeded.
    pub successful_polls: u64,
    /// Polls that failed.
    pub failed_polls: u64,
    /// Items fetched over all polls.
    pub items_fetched: u64,
    /// Signals published over all polls.
    pub items_published: u64,
    /// Mean poll latency in milliseconds.
    pub average_latency_ms: f64,
}

impl ConnectorMetrics {
    /// Folds one poll into the totals (the embedded backend's and tests' reference).
    pub fn record(&mut self, record: &PollRecord) {
        let latency_ms = record.latency.as_secs_f64() * 1000.0;
        self.average_latency_ms = (self.average_latency_ms * self.total_polls as f64 + latency_ms)
            / (self.total_polls + 1) as f64;
        self.total_polls += 1;
        self.last_poll_time = Some(record.started_at_ms);
        match &record.summary {
            Some(s) => {
                self.successful_polls += 1;
                self.last_success_time = Some(record.started_at_ms);
                self.items_fetched += s.fetched;
                self.items_published += s.published;
            }
            None => self.failed_polls += 1,
        }
    }

    /// Healthy when the last success is younger than `max_age` at `now_ms`.
    pub fn is_healthy(&self, now_ms: u64, max_age: Duration) -> bool {
        self.last_success_time
            .is_some_and(|t| now_ms.saturating_sub(t) <= max_age.as_millis() as u64)
    }
}

/// Per-connector metrics storage, shared by every instance.
pub trait MetricsStore: Send + Sync {
    /// Folds one poll into the connector's metrics.
    fn record<'a>(
        &'a self,
        connector: &'a str,
        record: &'a PollRecord,
    ) -> BoxFuture<'a, Result<(), BackendError>>;
    /// Reads one connector's metrics.
    fn get<'a>(
        &'a self,
        connector: &'a str,
    ) -> BoxFuture<'a, Result<Option<ConnectorMetrics>, BackendError>>;
}

/// Which worker instances are alive, so that each takes a fair share of the connectors
/// instead of the first one started taking them all.
///
/// Workers are counted per `group`: the workers that run the same set of connectors. A
/// single-connector container must not shrink the share of a worker running twenty.
pub trait Membership: Send + Sync {
    /// Marks `instance_id` alive in `group` for `ttl` and returns how many instances of
    /// the group are alive, this one included.
    fn heartbeat<'a>(
        &'a self,
        group: &'a str,
        instance_id: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<usize, BackendError>>;
    /// Leaves `group` (at shutdown, or when a reload changed the group), so the others
    /// rebalance without waiting for the TTL.
    fn leave<'a>(
        &'a self,
        group: &'a str,
        instance_id: &'a str,
    ) -> BoxFuture<'a, Result<(), BackendError>>;
    /// Why this process's connection to the backend is wedged, when it is: its commands
    /// have gone unanswered for a while though a fresh connection to the same server is
    /// answered, so only a restart helps (`/health/live` fails). An unreachable backend is
    /// not wedged, only not ready. Never wedged by default (a backend in the process).
    fn wedged(&self) -> BoxFuture<'_, Option<String>> {
        Box::pin(async { None })
    }
}

/// A request that a connector poll now, from a verified webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Wake {
    /// The connector to poll.
    pub connector: String,
    /// When the webhook was received (UNIX milliseconds), for the webhook-to-published
    /// latency.
    pub received_ms: u64,
}

/// Wakes between the process that receives a webhook and the one that holds the
/// connector's lease (any replica may receive it), and the replay check of deliveries.
/// A wake is a hint: one lost costs latency only (the scheduled poll still comes).
pub trait Wakes: Send + Sync {
    /// Whether `delivery` of `connector` is new, recorded for `window`: false for a
    /// replay.
    fn first_delivery<'a>(
        &'a self,
        connector: &'a str,
        delivery: &'a str,
        window: Duration,
    ) -> BoxFuture<'a, Result<bool, BackendError>>;
    /// Forgets `delivery` of `connector` (its wake could not be sent: the sender's retry,
    /// with the same id, must not be taken for a replay).
    fn forget_delivery<'a>(
        &'a self,
        connector: &'a str,
        delivery: &'a str,
    ) -> BoxFuture<'a, Result<(), BackendError>>;
    /// Sends `wake` to every process (this one included).
    fn wake<'a>(&'a self, wake: &'a Wake) -> BoxFuture<'a, Result<(), BackendError>>;
    /// The wakes every process sends, from now on: one subscription per process.
    fn listen(&self) -> BoxFuture<'_, Result<tokio::sync::mpsc::Receiver<Wake>, BackendError>>;
}

/// Wakes inside one process (the embedded backend, tests): a channel, and the deliveries
/// seen with when they expire.
#[derive(Default)]
pub struct LocalWakes {
    listeners: std::sync::Mutex<Vec<tokio::sync::mpsc::Sender<Wake>>>,
    seen: std::sync::Mutex<HashMap<(String, String), std::time::Instant>>,
}

/// Wakes a listener may have waiting before more are dropped (a dropped wake is folded
/// into the ones waiting: they all ask for a poll now).
pub const WAKE_QUEUE: usize = 1024;

impl Wakes for LocalWakes {
    fn first_delivery<'a>(
        &'a self,
        connector: &'a str,
        delivery: &'a str,
        window: Duration,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let now = std::time::Instant::now();
            let mut seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            seen.retain(|_, until| *until > now);
            let key = (connector.to_owned(), delivery.to_owned());
            Ok(seen.insert(key, now + window).is_none())
        })
    }

    fn forget_delivery<'a>(
        &'a self,
        connector: &'a str,
        delivery: &'a str,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            self.seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&(connector.to_owned(), delivery.to_owned()));
            Ok(())
        })
    }

    fn wake<'a>(&'a self, wake: &'a Wake) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let mut listeners = self
                .listeners
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            listeners.retain(|l| !l.is_closed());
            for l in listeners.iter() {
                let _ = l.try_send(wake.clone());
            }
            Ok(())
        })
    }

    fn listen(&self) -> BoxFuture<'_, Result<tokio::sync::mpsc::Receiver<Wake>, BackendError>> {
        Box::pin(async move {
            let (tx, rx) = tokio::sync::mpsc::channel(WAKE_QUEUE);
            self.listeners
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(tx);
            Ok(rx)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout every release stored: a resume point and page marks are JSON text in
    /// string fields, written byte for byte as before they were typed.
    #[test]
    fn typed_cursor_parts_keep_their_stored_text() {
        let stored = r#"{"etag":null,"last_modified":null,"resume":"{\"fingerprint\":\"00ab\",\"at_ms\":5,\"url\":\"https://h/p?page=2\"}","pages":"[{\"fingerprint\":\"01\",\"etag\":\"\\\"e\\\"\",\"next\":{\"url\":\"https://h/s\",\"body\":{\"a\":1}}}]"}"#;
        let cursor: Cursor = serde_json::from_str(stored).expect("cursor");
        let resume = cursor.resume.as_ref().expect("resume");
        assert_eq!(
            (resume.at_ms, resume.next.url.as_str()),
            (5, "https://h/p?page=2")
        );
        let marks = cursor.pages.as_ref().expect("pages");
        assert_eq!(marks[0].etag.as_deref(), Some("\"e\""));
        assert_eq!(
            marks[0].next.as_ref().and_then(|n| n.body.clone()),
            Some(serde_json::json!({"a": 1}))
        );
        assert_eq!(serde_json::to_string(&cursor).expect("json"), stored);
        // An earlier release also wrote `position`, which none set: it is ignored.
        let unreadable: Cursor =
            serde_json::from_str(r#"{"position":null,"etag":null,"last_modified":null,"resume":"{not json","pages":"7"}"#)
                .expect("still a cursor");
        assert_eq!((unreadable.resume, unreadable.pages), (None, None));
    }
}
