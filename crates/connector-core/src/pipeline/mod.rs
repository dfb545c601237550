//! The poll pipeline every connector runs: for each stream, pages → detect → transform →
//! commit → record.
//!
//! A provider supplies a [`Provider`]: its streams, how to read a stream as pages of
//! [`Record`]s (each with its id and version), and what a signal says about a record
//! ([`Description`]). [`UniversalPollingConnector`] does the rest, the same way for every
//! provider:
//!
//! 1. **state** is loaded once per lease (this instance is then the only writer) and kept
//!    in memory, updated only with what a commit made durable;
//! 2. **pages** arrive one at a time; while one page is detected, transformed and
//!    committed, the next is being fetched (one page ahead, no more), so memory follows
//!    the page size, not the source's size;
//! 3. **detect** compares ids and versions with the stream's state; unchanged items cost
//!    nothing;
//! 4. **transform** runs only for changed items, and the pipeline builds the envelope
//!    (source, connector, type, id, version, change, times, dedup id) around what the
//!    provider says of the item;
//! 5. **commit** writes each page's signals with its version updates and the stream's new
//!    cursor, in chunks of `commitBatchSize`, atomically and fenced. A crash between pages
//!    resumes after the last committed page; a fenced chunk ends the poll;
//! 6. after a **complete** read of a snapshot stream, recorded items that were not seen are
//!    pruned (and published as `removed` with `emitRemovals`);
//! 7. **record** folds the outcome into the connector's metrics.
//!
//! A stream whose read fails keeps what its committed pages wrote, and the streams after it
//! are still read; the poll then fails with the first stream's error, so metrics and health
//! show the failure while no stream loses progress.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

mod commit;
mod explain;
mod partition;
mod poll;

use poll::{Commit, Poll};

use crate::config::{ConnectorConfig, FieldError};
use crate::context::Backends;
pub use crate::context::ConnectorContext;
use crate::http::{HttpClient, HttpError};
pub use crate::page::{FetchError, Page, PageEvent, Pages, paged, single_page};
use crate::ports::{
    Absence, BackendError, BoxFuture, CommitChunk, CommitOutcome, ConnectorState, Cursor, Lease,
    PollRecord, PollSummary, STATE_FORMAT, StateDelta, StateHeader, StateLayoutError, StateLoss,
};
pub use crate::record::{ItemKey, Record};
use crate::signal::{
    Change, Description, Envelope, ItemError, Severity, StreamEntry, rfc3339_millis,
};
use crate::source::Read;

/// One stream of a connector: what is read, in what order, with its own state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// `""` for a connector's only (main) stream; else a name unique within the connector,
    /// e.g. `octo/repo/issues`, without `|`.
    pub name: String,
    /// The kind of its items, e.g. `weather_alert` (also the kind of a `removed` signal).
    pub kind: String,
    /// Every complete read returns the whole current set (NOAA's active alerts), so an
    /// item's absence means it is gone. A snapshot is always read from its first page.
    pub snapshot: bool,
    /// The read is ordered ascending on the watermark's field, so the watermark may be
    /// committed with each page; in any other order it is committed at the end of a
    /// complete read.
    pub ascending: bool,
    /// Each read asks only for what changed since its watermark (for reports: the read
    /// itself is the provider's).
    pub incremental: bool,
    /// A parent/child stream: read once per parent record (a partition), each partition
    /// with its own state ([`Provider::parents`] lists them).
    pub partitions: Option<Partitioning>,
    /// The partition a child read is for (set by the pipeline on a copy of the
    /// parent/child stream).
    pub partition: Option<Partition>,
}

/// How a parent/child stream fans out over its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitioning {
    /// The parents are read from their watermark (so a poll does not list every parent
    /// again); a partition is removed only after a complete full read.
    pub incremental_parents: bool,
    /// A full read of the parents at least every this many polls…
    pub full_read_every_polls: u32,
    /// …and at least this often (ms).
    pub full_read_every_ms: Option<u64>,
    /// Partitions with state of their own; past it, children share one watermark.
    pub max_partitions: usize,
    /// Child reads per poll (the rotation resumes at the next poll); `None`: all.
    pub max_per_poll: Option<usize>,
}

/// One partition of a parent/child stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// The parent record's id.
    pub key: String,
    /// What the child request needs of the parent record, as the parent read recorded it
    /// (the provider's own form; `HTTP_JSON`: a JSON object by pointer).
    pub values: String,
    /// Past the cap on tracked partitions, the watermark every child reads from (the
    /// start of the last round in which every partition was read to completion), which no
    /// child read moves; `None` for a partition with its own state.
    pub shared: Option<SharedFrom>,
}

/// The shared watermark of untracked partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedFrom {
    /// RFC 3339; `None` before any round completed (a first sync).
    pub watermark: Option<String>,
}

/// How a stream is named to people: its name, or `(main)` for a connector's only stream
/// (whose name is empty).
pub fn stream_label(name: &str) -> &str {
    if name.is_empty() { "(main)" } else { name }
}

impl StreamSpec {
    /// The stream's name as shown in logs and reports (`(main)` for the only stream).
    pub fn label(&self) -> &str {
        stream_label(&self.name)
    }

    /// The only stream of a single-stream connector.
    pub fn main(kind: impl Into<String>, snapshot: bool) -> Self {
        Self::named("", kind, snapshot)
    }

    /// A named stream of a connector with several.
    pub fn named(name: impl Into<String>, kind: impl Into<String>, snapshot: bool) -> Self {
        Self {
            name: name.into(),
            kind: kind.into(),
            snapshot,
            ascending: false,
            incremental: false,
            partitions: None,
            partition: None,
        }
    }

    /// The same stream, read in ascending order of its watermark's field (so from it:
    /// incremental).
    pub fn ascending(mut self) -> Self {
        self.ascending = true;
        self.incremental = true;
        self
    }

    /// The same stream, read from its watermark.
    pub fn incremental(mut self) -> Self {
        self.incremental = true;
        self
    }
}

/// A provider's streams, each with what it reads (the provider's own target type), in
/// reading order: the table a multi-stream provider keeps instead of two parallel lists.
#[derive(Debug)]
pub struct Streams<T> {
    specs: Vec<StreamSpec>,
    targets: Vec<T>,
}

impl<T> Default for Streams<T> {
    fn default() -> Self {
        Self {
            specs: Vec::new(),
            targets: Vec::new(),
        }
    }
}

impl<T> Streams<T> {
    /// Adds a stream, read after those added before it.
    pub fn push(&mut self, spec: StreamSpec, target: T) {
        self.specs.push(spec);
        self.targets.push(target);
    }

    /// The streams, for [`Provider::streams`].
    pub fn specs(&self) -> &[StreamSpec] {
        &self.specs
    }

    /// What `stream` reads; the error (an [`ItemError`] or a [`FetchError`] through `?`)
    /// names a stream this provider does not have.
    pub fn target(&self, stream: &StreamSpec) -> Result<&T, UnknownStream> {
        self.specs
            .iter()
            .position(|s| s.name == stream.name)
            .and_then(|i| self.targets.get(i))
            .ok_or_else(|| UnknownStream(stream.name.clone()))
    }
}

/// A stream a provider was asked about but does not have.
#[derive(Debug)]
pub struct UnknownStream(pub String);

impl From<UnknownStream> for ItemError {
    fn from(e: UnknownStream) -> Self {
        ItemError::new(format!("no stream {}", e.0))
    }
}

impl From<UnknownStream> for FetchError {
    fn from(e: UnknownStream) -> Self {
        FetchError::UnknownStream(e.0)
    }
}

/// Why building a connector failed (after validation passed, so rare: a bad URL join…).
#[derive(Debug, thiserror::Error)]
#[error("cannot create connector: {0}")]
pub struct CreateError(pub String);

/// A client that cannot be built (a header value that is not one) fails the connector's
/// creation with the client's words.
impl From<crate::http::HttpError> for CreateError {
    fn from(e: crate::http::HttpError) -> Self {
        CreateError(e.to_string())
    }
}

/// One provider: everything that differs between NOAA, Jira, GitHub, Datadog…
///
/// The associated types make the pipeline generic over the provider's config and raw
/// item; the provider value itself is the client.
pub trait Provider: Send + Sync + Sized + 'static {
    /// Type name in config, e.g. `NOAA_WEATHER`.
    const TYPE: &'static str;

    /// `providerConfig`, typed. Its JSON Schema is what `schema` prints and what the
    /// loader checks field names against. Secrets in it are [`crate::config::Secret`]s,
    /// so its serialised form (what `validate` prints) hides them by type.
    type Config: DeserializeOwned
        + serde::Serialize
        + schemars::JsonSchema
        + Clone
        + Send
        + Sync
        + 'static;
    /// Checks beyond types (known codes, URL shapes); paths are relative to
    /// `providerConfig`.
    fn check(config: &Self::Config) -> Vec<FieldError> {
        let _ = config;
        Vec::new()
    }

    /// Expands a shorthand `providerConfig` before it is parsed (`HTTP_JSON`'s catalog
    /// entries: `{"use": …, "with": …}`), saying where secret values landed; `None`
    /// parses the settings as written.
    fn expand(
        settings: &serde_json::Map<String, serde_json::Value>,
        references: &crate::config::References,
    ) -> Option<Result<crate::config::Expanded, Vec<FieldError>>> {
        let _ = (settings, references);
        None
    }

    /// Builds the provider (and its HTTP client) from valid settings, in the connector's
    /// context (`HttpClient::builder(..).connector_settings(common)` takes it).
    fn new(config: Self::Config, common: &ConnectorContext) -> Result<Self, CreateError>;

    /// The signal's `source`, e.g. `noaa`: data, so a connector configured by JSON alone
    /// can set it.
    fn source(&self) -> &str;

    /// The streams, read in this order at every poll.
    fn streams(&self) -> &[StreamSpec];

    /// The read of one stream, for a provider whose streams are reads of the source
    /// toolkit: the client it goes through and what it asks. The default
    /// [`Provider::pages`] reads it; a provider with reads of its own overrides `pages`.
    fn read<'a>(
        &'a self,
        stream: &'a StreamSpec,
        cursor: &'a Cursor,
    ) -> Result<(&'a HttpClient, Read<'a, Record>), FetchError> {
        let _ = cursor;
        Err(UnknownStream(stream.name.clone()).into())
    }

    /// Reads one stream, from its stored cursor, as pages of records, each with its id
    /// and version: [`Provider::read`]'s read by default.
    fn pages<'a>(&'a self, stream: &'a StreamSpec, cursor: &'a Cursor) -> Pages<'a, Record> {
        match self.read(stream, cursor) {
            Ok((http, read)) => crate::source::read(http, read, cursor),
            Err(e) => single_page(async move { Err(e) }),
        }
    }

    /// The parents of a parent/child stream (one with [`StreamSpec::partitions`]), from
    /// `cursor` (empty for a full read): each record is a partition, its id the partition's
    /// key and its version what the child request needs, which [`Provider::pages`] then
    /// finds in [`StreamSpec::partition`]. None by default.
    fn parents<'a>(&'a self, stream: &'a StreamSpec, cursor: &'a Cursor) -> Pages<'a, Record> {
        let _ = (stream, cursor);
        futures_util::stream::empty().boxed()
    }

    /// What the signal for a new or changed record says; the pipeline adds the envelope
    /// and the record itself as the payload. An error skips the record for this poll (it
    /// is counted as failed and seen again next time).
    fn describe<'a>(
        &'a self,
        stream: &StreamSpec,
        record: &'a Record,
    ) -> Result<Description<'a>, ItemError>;

    /// The provider's own name for the per-poll cap, when it has one (NOAA's
    /// `maxAlertsPerPoll`); the universal `maxItemsPerPoll` otherwise.
    fn max_items_per_poll(&self) -> Option<usize> {
        None
    }

    /// Whether a new or changed item is published, given the version recorded before it
    /// (`None` for a new item). One not published still has its version recorded, so it
    /// is not looked at again until it changes (Datadog's monitor `states`: a monitor is
    /// published when it enters, changes within or leaves those states).
    fn publishes(&self, stream: &StreamSpec, record: &Record, previous: Option<&str>) -> bool {
        let _ = (stream, record, previous);
        true
    }

    /// The operator's message for an HTTP refusal (`status`, with what the API said in
    /// `detail`), when the provider knows what it means (Jira's 401: check the e-mail and
    /// API token); `None` keeps the HTTP error. Never a credential.
    fn refusal(&self, status: u16, detail: &str) -> Option<String> {
        let _ = (status, detail);
        None
    }

    /// The provider's own gauges (GitHub's remaining quota), read after each poll and
    /// shown in `/metrics` as `connector_provider_gauge{connector, name}`.
    fn gauges(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
}

/// The pages of `stream`, with each HTTP refusal the provider can explain said in its
/// words ([`Provider::refusal`]).
pub(crate) fn provider_pages<'a, P: Provider>(
    provider: &'a P,
    stream: &'a StreamSpec,
    cursor: &'a Cursor,
) -> Pages<'a, Record> {
    use futures_util::TryStreamExt;
    provider
        .pages(stream, cursor)
        .map_err(move |e| match &e {
            FetchError::Http(HttpError::Status {
                status,
                url,
                detail,
                ..
            }) => match provider.refusal(*status, detail) {
                Some(message) => FetchError::Refused {
                    url: url.clone(),
                    message,
                },
                None => e,
            },
            _ => e,
        })
        .boxed()
}

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// Fetching failed; nothing was written. (Not a `source`: the message already holds
    /// it, and a chain printer would say it twice.)
    #[error("fetch failed: {0}")]
    Fetch(FetchError),
    /// The lease moved to another instance; chunks committed before it stay committed.
    #[error("commit refused: the lease on {connector} is no longer held by this instance")]
    Fenced {
        /// The connector.
        connector: String,
    },
    /// The stored state's write count was not the one this writer expected: Redis lost
    /// writes (or an operator changed state). Nothing was written; state is read again.
    #[error(
        "commit refused: the state of {connector} has {stored} writes where this instance made \
         {expected}; it is read again and what it lacks is published again"
    )]
    RolledBack {
        /// The connector.
        connector: String,
        /// The write count found.
        stored: u64,
        /// The write count expected.
        expected: u64,
    },
    /// A commit was acknowledged by fewer replicas than asked (`REDIS_WAIT_REPLICAS`): it
    /// stays committed, and the poll stops before its next page.
    #[error(
        "commit acknowledged by {acked} of the {wanted} replicas asked for (REDIS_WAIT_REPLICAS): \
         it is kept, but a failover now could lose it; the poll stops here and the next one goes on"
    )]
    UnderReplicated {
        /// Replicas that acknowledged.
        acked: u32,
        /// Replicas asked for.
        wanted: u32,
    },
    /// The stored state was written by a later release: the connector stops.
    #[error(transparent)]
    StateLayout(#[from] StateLayoutError),
    /// The backend failed (Redis down…).
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A signal could not be encoded (a bug, not bad input).
    #[error("cannot encode signal: {0}")]
    Encode(serde_json::Error),
}

impl PollError {
    /// The provider could not be reached at all (DNS, refused connection, TLS, proxy): a
    /// network or address problem rather than an answer.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            PollError::Fetch(FetchError::Http(HttpError::Transport { .. }))
        )
    }
}

impl From<FetchError> for PollError {
    fn from(e: FetchError) -> Self {
        Self::Fetch(e)
    }
}

impl From<serde_json::Error> for PollError {
    fn from(e: serde_json::Error) -> Self {
        Self::Encode(e)
    }
}

/// What `poll NAME --explain` found: the report, and what makes the config unusable as it
/// is (the command then exits 1).
#[derive(Debug, Default)]
pub struct Explanation {
    /// The report, line by line.
    pub text: String,
    /// Problems that need a change of config (the command fails).
    pub problems: Vec<String>,
    /// What looks wrong but does not stop a poll (said, the command still succeeds).
    pub warnings: Vec<String>,
}

/// What a dry run would have published.
#[derive(Debug)]
pub struct Preview {
    /// Figures as a real poll would report them (with `published` = would publish).
    pub summary: PollSummary,
    /// The entries, in order.
    pub entries: Vec<StreamEntry>,
}

/// A connector the runtime can schedule without knowing its provider.
pub trait PollingConnector: Send {
    /// Its validated config.
    fn config(&self) -> &ConnectorConfig;
    /// One poll under `lease`, with metrics recorded.
    fn poll<'a>(&'a mut self, lease: &'a Lease) -> BoxFuture<'a, Result<PollSummary, PollError>>;
    /// Fetch, detect and transform against stored state, writing nothing.
    fn preview(&mut self) -> BoxFuture<'_, Result<Preview, PollError>>;
    /// The provider's gauges after the last poll (see [`Provider::gauges`]).
    fn gauges(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
    /// Drops the cached state and every HTTP validator, so the next poll reads state again
    /// and fetches every page in full: the runtime calls it when Redis may have lost
    /// writes (a fence token that did not advance, a lease that vanished).
    fn forget_state(&mut self) {}
    /// A loss of writes the last polls noticed (the stored write count behind the one
    /// written), once: the runtime counts and shows it.
    fn take_state_loss(&mut self) -> Option<StateLoss> {
        None
    }
    /// Reads the first page of each stream against stored state, writing nothing, and
    /// says what became of each record: its id, version and time, new, changed or
    /// unchanged, or why it was skipped or failed; and the request that would come next.
    /// How a config is built for `HTTP_JSON`: `poll NAME --explain`. Records are noted
    /// when the connector was built in an explaining context ([`crate::context::Context::explaining`]).
    fn explain(&mut self) -> BoxFuture<'_, Result<Explanation, PollError>>;
}

/// The generic pipeline over one provider.
pub struct UniversalPollingConnector<P: Provider> {
    provider: P,
    config: Arc<ConnectorConfig>,
    backends: Backends,
    /// State as committed, with the lease token it was loaded under.
    state: Option<(u64, ConnectorState)>,
    /// The next load forgets the HTTP validators (after a loss of writes).
    forget_validators: bool,
    /// A loss noticed and not yet taken by the runtime.
    loss: Option<StateLoss>,
    /// The write count of a cache dropped without a loss being seen (a lease lost or
    /// lapsed, a failed round trip): the state read next must not hold fewer writes.
    last_seq: Option<u64>,
}

/// Milliseconds since the UNIX epoch by the wall clock, for what lies outside the logic
/// (event timestamps in telemetry, benchmarks, test fixtures): a poll, a retry, a hold and
/// the runtime's health figures read their context's [`crate::clock::Clock`] instead.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl<P: Provider> UniversalPollingConnector<P> {
    /// Wraps a provider with the pipeline.
    pub fn new(provider: P, config: Arc<ConnectorConfig>, backends: Backends) -> Self {
        Self {
            provider,
            config,
            backends,
            state: None,
            forget_validators: false,
            loss: None,
            last_seq: None,
        }
    }

    /// Drops the cached state, remembering its write count.
    fn drop_cache(&mut self) {
        if let Some((_, state)) = self.state.take() {
            self.last_seq = Some(state.header.seq);
        }
    }

    /// The provider, for provider-specific inspection in tests.
    pub fn provider(&self) -> &P {
        &self.provider
    }

    /// One poll: every stream's pages, detected, transformed and committed in fenced
    /// chunks; metrics recorded.
    pub async fn poll_once(&mut self, lease: &Lease) -> Result<PollSummary, PollError> {
        let started = Instant::now();
        let started_at_ms = u64::try_from(self.backends.context.clock().now_ms()).unwrap_or(0);
        let mut result = self.run(lease, started_at_ms).await;
        if let Err(PollError::RolledBack {
            stored, expected, ..
        }) = result
        {
            // State changed under this writer: read it again and detect again at once, so
            // what a lossy Redis lacks is published in this poll.
            self.lost_writes(stored, expected);
            result = self.run(lease, started_at_ms).await;
        }
        if matches!(
            result,
            Err(PollError::Backend(_) | PollError::RolledBack { .. })
        ) {
            // A failed round trip may or may not have been applied: reload next time.
            self.drop_cache();
        }
        let record = PollRecord {
            started_at_ms,
            latency: started.elapsed(),
            summary: result.as_ref().ok().cloned(),
        };
        if let Err(e) = self
            .backends
            .metrics
            .record(&self.config.name, &record)
            .await
        {
            tracing::warn!(connector = %self.config.name, error = %e, "could not record metrics");
        }
        result
    }

    /// The state changed under this writer (`stored` writes found, `expected` made): the
    /// cache and the validators go; fewer writes than made is a loss, said loudly.
    fn lost_writes(&mut self, stored: u64, expected: u64) {
        self.state = None;
        self.last_seq = None;
        self.forget_validators = true;
        if stored < expected {
            tracing::error!(
                connector = %self.config.name,
                stored,
                written = expected,
                "Redis lost writes: the connector's state holds {stored} writes where this instance \
                 made {expected} (a restart without persistence, a FLUSHALL, or a failover to a \
                 lagging replica). State is read again and every current item the state lacks is \
                 published again, once"
            );
            self.loss = Some(StateLoss {
                stored,
                written: expected,
            });
        }
    }

    /// The cached state, when the stored header says it is still current; else state read
    /// again.
    async fn current_state(&mut self, lease: &Lease) -> Result<(), PollError> {
        let header = self.backends.state.header(&self.config.name).await?;
        header.check_format()?;
        match &self.state {
            Some((token, cached)) if *token == lease.token && cached.header.seq == header.seq => {
                return Ok(());
            }
            Some((_, cached)) if header.seq != cached.header.seq => {
                self.lost_writes(header.seq, cached.header.seq);
            }
            _ => {}
        }
        let mut loaded = self.backends.state.load(&self.config.name).await?;
        loaded.header.check_format()?;
        if let Some(written) = self.last_seq.take()
            && loaded.header.seq < written
        {
            self.lost_writes(loaded.header.seq, written);
        }
        if std::mem::take(&mut self.forget_validators) {
            loaded.forget_validators();
        }
        self.state = Some((lease.token, loaded));
        Ok(())
    }

    async fn run(&mut self, lease: &Lease, now: u64) -> Result<PollSummary, PollError> {
        self.current_state(lease).await?;
        let Self {
            provider,
            config,
            backends,
            state: slot,
            ..
        } = self;
        let Some((_, state)) = slot.as_mut() else {
            return Err(PollError::Backend(BackendError::new(
                "load state",
                "state missing",
            )));
        };
        let mut poll = Poll::new(provider, config, now, Commit::To { lease, backends });
        poll.read_all(state).await?;
        if let Some(u) = &poll.summary.unreadable_times {
            // Once per poll: the records are published, but an incremental read cannot
            // move past them, so every poll reads them again.
            tracing::warn!(
                connector = %config.name,
                pointer = %u.pointer,
                first = u.first.as_deref().unwrap_or("(absent)"),
                records = u.count,
                "watermark unreadable: {} record(s) have no time this connector can read at {}; \
                 they are published, but the watermark cannot move on them (use a field such as \
                 updated_at in RFC 3339 or epoch seconds)",
                u.count,
                u.pointer
            );
        }
        Ok(poll.summary)
    }
}

impl<P: Provider> PollingConnector for UniversalPollingConnector<P> {
    fn config(&self) -> &ConnectorConfig {
        &self.config
    }

    fn poll<'a>(&'a mut self, lease: &'a Lease) -> BoxFuture<'a, Result<PollSummary, PollError>> {
        Box::pin(self.poll_once(lease))
    }

    fn gauges(&self) -> Vec<(&'static str, f64)> {
        self.provider.gauges()
    }

    fn forget_state(&mut self) {
        self.drop_cache();
        self.forget_validators = true;
    }

    fn take_state_loss(&mut self) -> Option<StateLoss> {
        self.loss.take()
    }

    fn explain(&mut self) -> BoxFuture<'_, Result<Explanation, PollError>> {
        Box::pin(explain::explain(
            &self.provider,
            &self.config,
            &self.backends,
        ))
    }

    fn preview(&mut self) -> BoxFuture<'_, Result<Preview, PollError>> {
        Box::pin(async move {
            let mut state = self.backends.state.load(&self.config.name).await?;
            let mut poll = Poll::new(
                &self.provider,
                &self.config,
                u64::try_from(self.backends.context.clock().now_ms()).unwrap_or(0),
                Commit::DryRun(Vec::new()),
            );
            poll.read_all(&mut state).await?;
            let entries = match poll.commit {
                Commit::DryRun(entries) => entries,
                Commit::To { .. } => Vec::new(),
            };
            Ok(Preview {
                summary: poll.summary,
                entries,
            })
        })
    }
}

/// Why `id` cannot be an external id, if it cannot: consumers key on it, dedup ids are
/// made from it, and state stores it as a field name.
pub fn id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("is empty")
    } else if id.len() > 1024 {
        Some("is longer than 1,024 bytes")
    } else if id.chars().any(char::is_control) {
        Some("holds control characters")
    } else {
        None
    }
}

/// How long a connector may go without a successful poll before it counts as unhealthy:
/// three intervals, and never less than a minute.
pub fn health_max_age(config: &ConnectorConfig) -> Duration {
    (config.poll_interval() * 3).max(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_the_provider_never_listed_is_named_in_the_error() {
        let mut streams = Streams::default();
        streams.push(StreamSpec::named("issues", "issue", false), 7);
        let known = StreamSpec::named("issues", "issue", false);
        assert_eq!(streams.target(&known).ok(), Some(&7));
        let other = StreamSpec::named("alerts", "alert", false);
        let fetch = FetchError::from(streams.target(&other).expect_err("unknown"));
        assert_eq!(fetch.to_string(), "this connector has no stream \"alerts\"");
        assert_eq!(fetch.status(), None);
        let item = ItemError::from(streams.target(&other).expect_err("unknown"));
        assert!(item.to_string().contains("no stream alerts"), "{item}");
    }
}
