//! The poll pipeline every connector runs: for each stream, pages → detect → transform →
//! commit → record.
//!
//! A provider supplies a [`Provider`]: its streams, how to read a stream as a stream of
//! pages, how to identify and version one item, and what a signal says about it
//! ([`ItemSignal`]). [`UniversalPollingConnector`] does the rest, the same way for every
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
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::config::{ConnectorConfig, FieldError};
use crate::http::HttpError;
use crate::ports::{
    Absence, BackendError, Backends, BoxFuture, CommitChunk, CommitOutcome, ConnectorState, Cursor,
    Lease, PollRecord, PollSummary, STATE_FORMAT, StateDelta, StateHeader, StateLayoutError,
    StateLoss,
};
use crate::signal::{
    Change, Envelope, ItemError, ItemSignal, Severity, StreamEntry, rfc3339_millis,
};

/// An item's identity for change detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemKey<'a> {
    /// The provider's stable id.
    pub id: Cow<'a, str>,
    /// The version: the API's version field, or [`crate::detect::content_version`].
    pub version: Cow<'a, str>,
}

impl<'a> ItemKey<'a> {
    /// A key borrowing its id and version from the item.
    pub fn of(id: &'a str, version: &'a str) -> Self {
        Self {
            id: Cow::Borrowed(id),
            version: Cow::Borrowed(version),
        }
    }
}

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
}

impl StreamSpec {
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
        }
    }

    /// The same stream, read in ascending order of its watermark's field.
    pub fn ascending(mut self) -> Self {
        self.ascending = true;
        self
    }
}

/// One page of a stream's read, as the pipeline receives it.
#[derive(Debug)]
pub struct Page<I> {
    /// The page's items, in the provider's order.
    pub items: Vec<I>,
    /// Records of the page that could not be read at all: counted as failed, and the read
    /// is partial.
    pub failed: u64,
    /// Identities of the records that failed (a hash of their bytes), so one that keeps
    /// failing is skipped after `poisonAfterPolls` polls instead of holding the stream.
    pub failures: Vec<String>,
    /// This page does not carry everything it should (a skipped record, a page limit, a
    /// guard that stopped paging): a partial read of a snapshot prunes nothing.
    pub partial: bool,
    /// Records kept whose watermark time could not be read.
    pub unreadable: Option<crate::ports::UnreadableTimes>,
    /// Why paging stopped early, when it did.
    pub partial_reason: Option<crate::ports::PartialReason>,
    /// Something suspicious about how the read ended that does not make it partial (a
    /// full page without a next link).
    pub suspect: Option<crate::ports::PartialReason>,
    /// The stream's validators once this page is durable. Incremental streams commit them
    /// with the page; a snapshot's are kept only after a complete read.
    pub cursor: Option<Cursor>,
    /// The latest record time on the page (UNIX ms), for the stream's watermark.
    pub watermark: Option<i64>,
    /// Where the read continues after this page, if it does and the stream keeps resume
    /// points (see [`crate::source::Read::resume`]).
    pub resume: Option<String>,
    /// Provider-specific counters for the poll summary.
    pub extras: BTreeMap<String, u64>,
    /// What became of each record and which requests made and follow the page, only
    /// while a read is explained (`poll --explain`); empty otherwise.
    pub notes: crate::source::Notes,
}

impl<I> Page<I> {
    /// A page of items with nothing else to say.
    pub fn of(items: Vec<I>) -> Self {
        Self {
            items,
            failed: 0,
            failures: Vec::new(),
            partial: false,
            partial_reason: None,
            suspect: None,
            unreadable: None,
            cursor: None,
            watermark: None,
            resume: None,
            extras: BTreeMap::new(),
            notes: crate::source::Notes::default(),
        }
    }
}

/// What a stream's read yields: pages, or the server's word that nothing changed.
// One event per page, moved once: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum PageEvent<I> {
    /// A page.
    Page(Page<I>),
    /// 304 Not Modified: the stream is as it was; nothing more follows.
    NotModified,
}

/// A stream's read: pages as they arrive. It ends after the last page.
pub type Pages<'a, I> = BoxStream<'a, Result<PageEvent<I>, FetchError>>;

/// A read of one page (a whole list in one response).
pub fn single_page<'a, I: Send + 'a>(
    fetch: impl Future<Output = Result<PageEvent<I>, FetchError>> + Send + 'a,
) -> Pages<'a, I> {
    Box::pin(futures_util::stream::once(fetch))
}

/// A read of several pages: `step` fetches the page `at` describes and returns it with
/// where the read goes on, or `None` when the read is over.
pub fn paged<'a, S, I, F, Fut>(start: S, step: F) -> Pages<'a, I>
where
    S: Send + 'a,
    I: Send + 'a,
    F: FnMut(S) -> Fut + Send + 'a,
    Fut: Future<Output = Result<Option<(PageEvent<I>, S)>, FetchError>> + Send + 'a,
{
    Box::pin(futures_util::stream::try_unfold(start, step))
}

/// Why a fetch failed. Any of these fails the stream's read; what earlier pages committed
/// stays, and the next poll tries again.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The HTTP layer gave up (after its retries, or at once for a non-retryable status).
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The server handed out a page it handed out before in the same read.
    #[error("{message} ({url})")]
    Loop {
        /// The URL without its query.
        url: String,
        /// What repeated.
        message: String,
    },
    /// The API refused the read for a reason the provider knows how to explain (bad
    /// credentials, a removed endpoint), said in its words.
    #[error("{message} ({url})")]
    Refused {
        /// The URL without its query.
        url: String,
        /// What went wrong and what to do about it; never a credential.
        message: String,
    },
    /// The server answered 2xx with something that is not what the API documents.
    #[error("unexpected response from {url}: {message}")]
    Malformed {
        /// The URL without its query.
        url: String,
        /// What was wrong.
        message: String,
    },
}

impl FetchError {
    /// A refusal explained: `message` says why and what to change.
    pub fn refused(url: &url::Url, message: impl std::fmt::Display) -> Self {
        FetchError::Refused {
            url: crate::http::display_url(url),
            message: message.to_string(),
        }
    }

    /// The HTTP status the server answered with, when it answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            FetchError::Http(HttpError::Status { status, .. }) => Some(*status),
            _ => None,
        }
    }

    /// A body that did not parse as the API's documented shape.
    pub fn malformed(url: &url::Url, message: impl std::fmt::Display) -> Self {
        FetchError::Malformed {
            url: crate::http::display_url(url),
            message: message.to_string(),
        }
    }
}

/// Why building a connector failed (after validation passed, so rare: a bad URL join…).
#[derive(Debug, thiserror::Error)]
#[error("cannot create connector: {0}")]
pub struct CreateError(pub String);

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
    /// One raw item as the API returned it.
    type Item: Send + Sync;

    /// Checks beyond types (known codes, URL shapes); paths are relative to
    /// `providerConfig`.
    fn check(config: &Self::Config) -> Vec<FieldError> {
        let _ = config;
        Vec::new()
    }

    /// Builds the provider (and its HTTP client) from valid settings.
    fn new(config: Self::Config, common: &ConnectorConfig) -> Result<Self, CreateError>;

    /// The signal's `source`, e.g. `noaa`: data, so a connector configured by JSON alone
    /// can set it.
    fn source(&self) -> &str;

    /// The streams, read in this order at every poll.
    fn streams(&self) -> &[StreamSpec];

    /// Reads one stream, from its stored cursor, as pages.
    fn pages<'a>(&'a self, stream: &'a StreamSpec, cursor: &'a Cursor) -> Pages<'a, Self::Item>;

    /// The item's id and version.
    fn key<'a>(&self, item: &'a Self::Item) -> ItemKey<'a>;

    /// What the signal for a new or changed item says. An error skips the item for this
    /// poll (it is counted as failed and seen again next time).
    fn signal<'a>(
        &'a self,
        stream: &StreamSpec,
        item: &'a Self::Item,
    ) -> Result<ItemSignal<'a>, ItemError>;

    /// The provider's own name for the per-poll cap, when it has one (NOAA's
    /// `maxAlertsPerPoll`); the universal `maxItemsPerPoll` otherwise.
    fn max_items_per_poll(&self) -> Option<usize> {
        None
    }

    /// Whether a new or changed item is published, given the version recorded before it
    /// (`None` for a new item). One not published still has its version recorded, so it
    /// is not looked at again until it changes (Datadog's monitor `states`: a monitor is
    /// published when it enters, changes within or leaves those states).
    fn publishes(&self, stream: &StreamSpec, item: &Self::Item, previous: Option<&str>) -> bool {
        let _ = (stream, item, previous);
        true
    }

    /// The provider's own gauges (GitHub's remaining quota), read after each poll and
    /// shown in `/metrics` as `connector_provider_gauge{connector, name}`.
    fn gauges(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
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
    /// Problems that need a change of config.
    pub problems: Vec<String>,
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
    /// How a config is built for `HTTP_JSON`: `poll NAME --explain`.
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

/// Milliseconds since the UNIX epoch, the one wall-clock read of a poll.
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
        let started_at_ms = now_ms();
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

/// Where a poll's chunks go.
enum Commit<'a> {
    To {
        lease: &'a Lease,
        backends: &'a Backends,
    },
    /// Nowhere: the entries are kept for the caller to show.
    DryRun(Vec<StreamEntry>),
}

/// What building a signal needs, apart from the poll's mutable parts.
struct Encoder<'a, P: Provider> {
    provider: &'a P,
    config: &'a ConnectorConfig,
    observed_at: String,
}

/// One poll in progress: its figures, its cap and where it commits.
struct Poll<'a, P: Provider> {
    enc: Encoder<'a, P>,
    commit: Commit<'a>,
    summary: PollSummary,
    /// New or changed items this poll may still publish.
    remaining: Option<usize>,
    streams_not_modified: usize,
    /// Records whose id was already read in this poll (said once, at the end).
    repeated_ids: u64,
    /// When the poll began (UNIX ms): no watermark moves past it, since records written
    /// while the read ran may not have been seen.
    started_ms: i64,
}

/// How one stream's read ended.
struct StreamRead {
    /// Every page arrived and every item was published: a snapshot may be pruned.
    complete: bool,
    /// The per-poll cap stopped the read: no later stream is read either.
    capped: bool,
}

impl<'a, P: Provider> Poll<'a, P> {
    fn new(provider: &'a P, config: &'a ConnectorConfig, now: u64, commit: Commit<'a>) -> Self {
        let remaining = provider
            .max_items_per_poll()
            .or(config.max_items_per_poll.map(|m| m as usize));
        Self {
            enc: Encoder {
                provider,
                config,
                observed_at: rfc3339_millis(now),
            },
            commit,
            summary: PollSummary::default(),
            remaining,
            streams_not_modified: 0,
            repeated_ids: 0,
            started_ms: i64::try_from(now).unwrap_or(i64::MAX),
        }
    }

    /// Reads every stream in order. A stream's fetch error is kept until the others have
    /// been read; a fence or a backend error ends the poll at once.
    async fn read_all(&mut self, state: &mut ConnectorState) -> Result<(), PollError> {
        let streams = self.enc.provider.streams();
        let mut first_error: Option<FetchError> = None;
        for stream in streams {
            match self.read_stream(stream, state).await {
                Ok(read) if read.capped => break,
                Ok(_) => {}
                Err(PollError::Fetch(e)) => {
                    tracing::warn!(
                        connector = %self.enc.config.name,
                        stream = %stream.name,
                        error = %e,
                        "stream read failed; its committed pages stay, the next poll resumes it"
                    );
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        self.summary.not_modified =
            !streams.is_empty() && self.streams_not_modified == streams.len();
        if self.repeated_ids > 0 {
            tracing::info!(
                connector = %self.enc.config.name,
                records = self.repeated_ids,
                "records repeated an id already read in this poll (a page overlap, or the API listing one item twice); each id counts once"
            );
        }
        match first_error {
            Some(e) => Err(PollError::Fetch(e)),
            None => Ok(()),
        }
    }

    async fn read_stream(
        &mut self,
        stream: &'a StreamSpec,
        state: &mut ConnectorState,
    ) -> Result<StreamRead, PollError> {
        let cursor = state
            .stream(&stream.name)
            .map(|s| s.cursor.clone())
            .unwrap_or_default();
        let parse = |t: &Option<String>| t.as_deref().and_then(crate::source::time::parse_millis);
        let stored_watermark = parse(&cursor.watermark);
        // What an unfinished read of another order committed before it stopped.
        let pending = parse(&cursor.pending);
        let mut pages = self.enc.provider.pages(stream, &cursor);
        let mut seen: HashSet<String> = HashSet::new();
        let mut read = StreamRead {
            complete: true,
            capped: false,
        };
        // A snapshot's validators describe the whole read: kept only once it completed.
        let mut snapshot_cursor: Option<Cursor> = None;
        // Once an item failed, later pages' cursors would move past it: they are not saved.
        let mut hold_cursor = false;
        // The stream's cursor as committed so far in this read.
        let mut committed = cursor.clone();
        let mut read_max: Option<i64> = None;
        let mut seen_failures: HashSet<String> = HashSet::new();
        let mut recorded_seen = 0usize;
        let mut next = pages.next().await;
        loop {
            let page = match next.take() {
                None => break,
                Some(Err(e)) => {
                    // A loop would come back at the same resume point: start over next time.
                    if matches!(e, FetchError::Loop { .. }) && committed.resume.is_some() {
                        let mut fresh = committed.clone();
                        fresh.resume = None;
                        self.commit_work(stream, state, &[], Tail::default(), Some(fresh))
                            .await?;
                    }
                    return Err(PollError::Fetch(e));
                }
                Some(Ok(PageEvent::NotModified)) => {
                    self.streams_not_modified += 1;
                    return Ok(StreamRead {
                        complete: false,
                        capped: false,
                    });
                }
                Some(Ok(PageEvent::Page(page))) => page,
            };
            let mut page = page;
            self.drop_bad_ids(stream, &mut page);
            self.summary.pages += 1;
            for (k, v) in &page.extras {
                *self.summary.extras.entry(k.clone()).or_insert(0) += v;
            }
            // A record that failed in too many polls in a row is poisoned: skipped with an
            // error, so it no longer holds the watermark; the others are counted and held.
            let limit = self.enc.config.poison_after_polls;
            let counts = state.stream(&stream.name).map(|s| &s.failures);
            let mut failures = Vec::new();
            let mut poisoned = 0u64;
            for id in &page.failures {
                seen_failures.insert(id.clone());
                let polls = counts.and_then(|c| c.get(id)).copied().unwrap_or(0) + 1;
                if polls >= limit {
                    poisoned += 1;
                    tracing::error!(
                        connector = %self.enc.config.name,
                        stream = %stream.name,
                        record = %id,
                        polls,
                        "record skipped for good: it failed to parse in each of the last polls"
                    );
                }
                failures.push((id.clone(), polls));
            }
            // Failures without an identity are held like those not yet poisoned.
            let holding = page.failed.saturating_sub(poisoned);
            if let Some(reason) = page.partial_reason.or(page.suspect) {
                *self.summary.partial_reads.entry(reason).or_default() += 1;
            }
            if let Some(u) = &page.unreadable {
                let total = self.summary.unreadable_times.get_or_insert_with(|| {
                    crate::ports::UnreadableTimes {
                        count: 0,
                        ..u.clone()
                    }
                });
                total.count += u.count;
            }
            if page.partial || holding > 0 {
                read.complete = false;
            }
            if holding > 0 {
                hold_cursor = true;
            }
            self.summary.failed += holding;
            self.summary.poisoned += poisoned;
            if !failures.is_empty() {
                let delta_only = StateDelta {
                    stream: stream.name.clone(),
                    failures: std::mem::take(&mut failures),
                    ..StateDelta::default()
                };
                self.commit_delta(state, delta_only).await?;
            }
            let page_max = page.watermark.map(|w| w.min(self.started_ms));
            read_max = read_max.max(page_max);
            // The cursor to commit with this page, for an incremental stream.
            let mut after = page.cursor.clone().unwrap_or_else(|| committed.clone());
            // An ascending read resumes from its watermark, which moves with each page; a
            // resume point would belong to a first request that no longer exists.
            after.resume = page.resume.clone().filter(|_| !stream.ascending);
            if stream.ascending {
                after.watermark = stored_watermark.max(read_max).map(format_watermark);
            } else {
                after.watermark = committed.watermark.clone();
                after.pending = pending.max(read_max).map(format_watermark);
            }
            let page_cursor = (!stream.snapshot && !hold_cursor).then_some(after);
            // The next page is fetched while this one is committed, unless this page may
            // reach the per-poll cap (the read would stop here, and the fetch be wasted).
            let may_cap = self.remaining.is_some_and(|left| page.items.len() >= left);
            let (outcome, following) = if may_cap {
                let outcome = self
                    .commit_page(stream, state, &mut seen, &page, page_cursor)
                    .await;
                let capped = outcome.as_ref().is_ok_and(|o| o.capped);
                let following = if capped { None } else { pages.next().await };
                (outcome, following)
            } else {
                tokio::join!(
                    self.commit_page(stream, state, &mut seen, &page, page_cursor),
                    pages.next()
                )
            };
            let outcome = outcome?;
            recorded_seen += outcome.recorded_seen;
            if outcome.failed {
                hold_cursor = true;
                read.complete = false;
            }
            if let Some(c) = outcome.committed {
                // A moved watermark or resume point is progress, even with nothing new.
                if (&c.watermark, &c.resume, &c.pending)
                    != (&committed.watermark, &committed.resume, &committed.pending)
                {
                    self.summary.progressed = true;
                }
                committed = c;
            }
            if stream.snapshot
                && !hold_cursor
                && let Some(c) = &page.cursor
            {
                snapshot_cursor = Some(c.clone());
            }
            if outcome.capped {
                tracing::warn!(
                    connector = %self.enc.config.name,
                    stream = %stream.name,
                    reason = crate::ports::PartialReason::ItemCap.label(),
                    "partial read: the per-poll cap of new or changed items was reached; the next poll goes on from here"
                );
                *self
                    .summary
                    .partial_reads
                    .entry(crate::ports::PartialReason::ItemCap)
                    .or_default() += 1;
                read.complete = false;
                read.capped = true;
                return Ok(read);
            }
            next = following;
        }
        if read.complete && !hold_cursor {
            // Records that failed before and were not met failing now: forget them.
            let stale: Vec<(String, u32)> = state
                .stream(&stream.name)
                .map(|s| {
                    s.failures
                        .keys()
                        .filter(|k| !seen_failures.contains(*k))
                        .map(|k| (k.clone(), 0))
                        .collect()
                })
                .unwrap_or_default();
            if !stale.is_empty() {
                let delta = StateDelta {
                    stream: stream.name.clone(),
                    failures: stale,
                    ..StateDelta::default()
                };
                self.commit_delta(state, delta).await?;
            }
        }
        if stream.snapshot {
            self.finish_snapshot(
                stream,
                state,
                &seen,
                recorded_seen,
                read.complete,
                snapshot_cursor,
            )
            .await?;
        } else if read.complete && !hold_cursor {
            // The read is over: no resume point, and (for any order) the watermark of
            // everything read.
            let mut last = committed.clone();
            last.resume = None;
            last.pending = None;
            last.watermark = stored_watermark
                .max(read_max)
                .max(pending.filter(|_| cursor.resume.is_some()))
                .map(format_watermark);
            if last != committed {
                self.commit_work(stream, state, &[], Tail::default(), Some(last))
                    .await?;
            }
        }
        Ok(read)
    }

    /// Fails the items whose id cannot be an external id (empty, over 1,024 bytes, or
    /// holding control characters): each is counted as failed, under an identity of its
    /// own so it is poisoned like a record that does not parse, and the read is partial.
    /// Kept, an empty id would be published, and the real item pruned as vanished.
    fn drop_bad_ids(&self, stream: &StreamSpec, page: &mut Page<P::Item>) {
        let provider = self.enc.provider;
        let mut bad = Vec::new();
        page.items.retain(|item| {
            let key = provider.key(item);
            match id_problem(&key.id) {
                None => true,
                Some(why) => {
                    let shown: String = key.id.chars().take(64).collect();
                    tracing::warn!(
                        connector = %self.enc.config.name,
                        stream = %stream.name,
                        id = ?shown,
                        "record skipped: its id {why}"
                    );
                    bad.push(format!(
                        "id-{:016x}",
                        xxhash_rust::xxh3::xxh3_64(key.id.as_bytes())
                    ));
                    false
                }
            }
        });
        page.failed += bad.len() as u64;
        page.failures.extend(bad);
    }

    /// Detects, transforms and commits one page.
    async fn commit_page(
        &mut self,
        stream: &StreamSpec,
        state: &mut ConnectorState,
        seen: &mut HashSet<String>,
        page: &Page<P::Item>,
        cursor: Option<Cursor>,
    ) -> Result<PageOutcome, PollError> {
        let provider = self.enc.provider;
        let keys: Vec<ItemKey<'_>> = page.items.iter().map(|i| provider.key(i)).collect();
        // Sized up front: rehashing a 100,000-entry set while filling it is most of its cost.
        seen.reserve(keys.len());
        let recorded = state.stream(&stream.name);
        let mut work: Vec<(usize, Change)> = Vec::new();
        let mut recorded_seen = 0usize;
        for (i, key) in keys.iter().enumerate() {
            let version = recorded.and_then(|r| r.versions.get(key.id.as_ref()));
            if !seen.insert(key.id.to_string()) {
                self.repeated_ids += 1;
                // Met again in this read: a page overlap (nothing new) or, when its version
                // moved on since, an item updated while the read was under way.
                if let Some(v) = version
                    && *v != key.version
                {
                    work.push((i, Change::Updated));
                }
                continue;
            }
            self.summary.fetched += 1;
            match version {
                Some(v) if *v == key.version => {
                    self.summary.skipped_unchanged += 1;
                    recorded_seen += 1;
                }
                Some(_) => {
                    work.push((i, Change::Updated));
                    recorded_seen += 1;
                }
                None => work.push((i, Change::Created)),
            }
        }
        let mut capped = false;
        if let Some(left) = self.remaining.as_mut() {
            if work.len() > *left {
                let held = (work.len() - *left) as u64;
                *self
                    .summary
                    .extras
                    .entry("heldBack".to_owned())
                    .or_insert(0) += held;
                work.truncate(*left);
                capped = true;
            }
            *left -= work.len();
        }
        // A capped page is not fully published: its cursor would skip the rest.
        let cursor = cursor
            .filter(|_| !capped)
            .filter(|c| Some(c) != recorded.map(|r| &r.cursor));
        let committing = cursor.clone();
        let items: Vec<Work<'_, P::Item>> = work
            .iter()
            .map(|&(i, change)| {
                let previous = recorded
                    .and_then(|r| r.versions.get(keys[i].id.as_ref()))
                    .map(String::as_str);
                if provider.publishes(stream, &page.items[i], previous) {
                    Work::Item {
                        item: &page.items[i],
                        key: &keys[i],
                        change,
                    }
                } else {
                    Work::Quiet { key: &keys[i] }
                }
            })
            .collect();
        let quiet = items
            .iter()
            .filter(|w| matches!(w, Work::Quiet { .. }))
            .count() as u64;
        if quiet > 0 {
            *self
                .summary
                .extras
                .entry("notPublished".to_owned())
                .or_insert(0) += quiet;
        }
        let failed = self
            .commit_work(stream, state, &items, Tail::default(), cursor)
            .await?;
        Ok(PageOutcome {
            failed: failed > 0,
            capped,
            committed: committing.filter(|_| failed == 0),
            recorded_seen,
        })
    }

    /// After a snapshot's read: forgets what was missing long enough (only after a
    /// complete read), and keeps the read's validators.
    ///
    /// A missing item's version is kept as an absence first, since public APIs drop items
    /// from single responses: with `emitRemovals` it is published as `removed` once
    /// `removalGracePolls` complete reads in a row missed it, otherwise pruned silently
    /// once `removalGraceMs` passed. An item back within its grace is unchanged (or
    /// updated), not created again.
    async fn finish_snapshot(
        &mut self,
        stream: &StreamSpec,
        state: &mut ConnectorState,
        seen: &HashSet<String>,
        recorded_seen: usize,
        complete: bool,
        cursor: Option<Cursor>,
    ) -> Result<(), PollError> {
        let config = &self.enc.config;
        let recorded = state.stream(&stream.name);
        let absent = recorded.map(|r| &r.absent);
        // Seen again, in any read: no longer missing, so "in a row" starts again.
        let mut tail = Tail {
            absences: absent
                .into_iter()
                .flat_map(|a| a.keys())
                .filter(|id| seen.contains(id.as_str()))
                .map(|id| (id.clone(), None))
                .collect(),
            ..Tail::default()
        };
        if !complete {
            // Nothing is pruned or counted missing after a partial read.
            self.commit_work(stream, state, &[], tail, None).await?;
            return Ok(());
        }
        // Counting while reading keeps the common case (nothing vanished, nothing missing
        // before) free of a pass over state.
        let mut vanished: Vec<(String, String)> = recorded
            .filter(|r| recorded_seen < r.versions.len())
            .map(|r| {
                r.versions
                    .iter()
                    .filter(|(id, _)| !seen.contains(id.as_str()))
                    .map(|(id, v)| (id.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        vanished.sort();
        let now = now_ms();
        let mut gone = Vec::new();
        for (id, version) in vanished {
            let before = absent.and_then(|a| a.get(&id)).copied();
            let missing = Absence {
                since_ms: before.map_or(now, |b| b.since_ms),
                polls: before.map_or(1, |b| b.polls.saturating_add(1)),
            };
            let due = if config.emit_removals {
                missing.polls >= config.removal_grace_polls
            } else {
                now.saturating_sub(missing.since_ms) >= config.removal_grace_ms
            };
            if due {
                gone.push((id, version));
            } else if config.emit_removals || before.is_none() {
                // Without emitRemovals only the start counts: nothing to write each poll.
                tail.absences.push((id, Some(missing)));
            }
        }
        if !tail.absences.is_empty() {
            tracing::debug!(
                connector = %config.name,
                stream = %stream.name,
                changes = tail.absences.len(),
                "snapshot items missing or back within their removal grace"
            );
        }
        let cursor = cursor
            .or_else(|| Some(Cursor::default()))
            .filter(|c| Some(c) != recorded.map(|r| &r.cursor));
        let work: Vec<Work<'_, P::Item>> = if config.emit_removals {
            gone.iter()
                .map(|(id, v)| Work::Removal { id, version: v })
                .collect()
        } else {
            self.summary.removed += gone.len() as u64;
            tail.prunes = gone.iter().map(|(id, _)| id.clone()).collect();
            Vec::new()
        };
        self.commit_work(stream, state, &work, tail, cursor).await?;
        Ok(())
    }

    /// Commits a state change that carries no signal.
    async fn commit_delta(
        &mut self,
        state: &mut ConnectorState,
        delta: StateDelta,
    ) -> Result<(), PollError> {
        let chunk = CommitChunk {
            stream: self.enc.config.output_stream.clone(),
            stream_max_len: self.enc.config.stream_max_len,
            entries: Vec::new(),
            delta,
            seq: state.header.seq,
        };
        match &mut self.commit {
            Commit::To { lease, backends } => {
                let outcome = backends.publisher.commit(lease, &chunk).await?;
                self.enc.committed(outcome, state, &chunk.delta)?;
                self.summary.commits += 1;
                Ok(())
            }
            Commit::DryRun(_) => {
                chunk.delta.apply_to(state);
                Ok(())
            }
        }
    }

    /// Encodes `work` in chunks of `commitBatchSize` and commits them in order; `tail` and
    /// the cursor go with the last chunk. Returns how many items failed.
    async fn commit_work(
        &mut self,
        stream: &StreamSpec,
        state: &mut ConnectorState,
        work: &[Work<'_, P::Item>],
        mut tail: Tail,
        mut cursor: Option<Cursor>,
    ) -> Result<u64, PollError> {
        if work.is_empty() && tail.is_empty() && cursor.is_none() {
            return Ok(0);
        }
        let batch = self.enc.config.commit_batch_size.max(1) as usize;
        let mut chunks = work.chunks(batch);
        let mut left = work.len().div_ceil(batch).max(1);
        let mut failed = 0u64;
        let enc = &self.enc;
        let mut build = |failed: &mut u64,
                         left: &mut usize,
                         tail: &mut Tail,
                         cursor: &mut Option<Cursor>|
         -> Result<Option<(CommitChunk, u64)>, PollError> {
            let Some(rest) = left.checked_sub(1) else {
                return Ok(None);
            };
            *left = rest;
            let slice = chunks.next().unwrap_or(&[]);
            let (chunk, removed) = enc.build_chunk(stream, slice, failed)?;
            let mut chunk = chunk;
            if *left == 0 {
                chunk.delta.removals.append(&mut tail.prunes);
                chunk.delta.absences.append(&mut tail.absences);
                // An item that failed must be seen again: the old cursor stays.
                if *failed == 0 {
                    chunk.delta.cursor = cursor.take();
                }
            }
            Ok(Some((chunk, removed)))
        };
        let mut next = build(&mut failed, &mut left, &mut tail, &mut cursor)?;
        while let Some((chunk, removed)) = next.take() {
            if chunk.entries.is_empty() && chunk.delta.is_empty() {
                next = build(&mut failed, &mut left, &mut tail, &mut cursor)?;
                continue;
            }
            let published = chunk.entries.len() as u64;
            match &mut self.commit {
                Commit::To { lease, backends } => {
                    // The commit runs on its own task while this one encodes the next
                    // chunk, so Redis and the encoder work at the same time. Dropping the
                    // poll aborts the commit as dropping its future would.
                    let publisher = Arc::clone(&backends.publisher);
                    let held = (*lease).clone();
                    let mut chunk = chunk;
                    chunk.seq = state.header.seq;
                    let in_flight = AbortOnDropHandle::new(tokio::spawn(
                        async move {
                            let outcome = publisher.commit(&held, &chunk).await;
                            (outcome, chunk)
                        }
                        // The backend's log lines stay inside the poll's span.
                        .in_current_span(),
                    ));
                    let built_next = build(&mut failed, &mut left, &mut tail, &mut cursor);
                    let (outcome, chunk) = in_flight.await.map_err(|e| {
                        PollError::Backend(BackendError::new(
                            "commit",
                            format!("the commit task ended abnormally: {e}"),
                        ))
                    })?;
                    self.enc.committed(outcome?, state, &chunk.delta)?;
                    self.summary.commits += 1;
                    self.summary.published += published;
                    self.summary.removed += removed;
                    next = built_next?;
                }
                Commit::DryRun(entries) => {
                    chunk.delta.apply_to(state);
                    self.summary.published += published;
                    self.summary.removed += removed;
                    entries.extend(chunk.entries);
                    next = build(&mut failed, &mut left, &mut tail, &mut cursor)?;
                }
            }
        }
        self.summary.failed += failed;
        Ok(failed)
    }
}

impl<P: Provider> Encoder<'_, P> {
    /// Applies a commit's outcome to the in-memory state: the delta and the next write
    /// count when it was committed, an error when it was refused.
    fn committed(
        &self,
        outcome: CommitOutcome,
        state: &mut ConnectorState,
        delta: &StateDelta,
    ) -> Result<(), PollError> {
        match outcome {
            CommitOutcome::Committed => {
                delta.apply_to(state);
                state.header = StateHeader {
                    format: STATE_FORMAT,
                    seq: state.header.seq + 1,
                };
                Ok(())
            }
            CommitOutcome::UnderReplicated { acked, wanted } => {
                self.committed(CommitOutcome::Committed, state, delta)?;
                Err(PollError::UnderReplicated { acked, wanted })
            }
            CommitOutcome::Fenced => Err(PollError::Fenced {
                connector: self.config.name.clone(),
            }),
            CommitOutcome::RolledBack { stored } => Err(PollError::RolledBack {
                connector: self.config.name.clone(),
                stored,
                expected: state.header.seq,
            }),
        }
    }

    /// One chunk's entries and version updates; counts what failed to transform.
    fn build_chunk(
        &self,
        stream: &StreamSpec,
        work: &[Work<'_, P::Item>],
        failed: &mut u64,
    ) -> Result<(CommitChunk, u64), PollError> {
        let mut entries = Vec::with_capacity(work.len());
        let mut delta = StateDelta {
            stream: stream.name.clone(),
            ..StateDelta::default()
        };
        let mut removed = 0;
        let envelope = |external_id, version, change| Envelope {
            source: self.provider.source(),
            connector: &self.config.name,
            connector_type: &self.config.connector_type,
            observed_at: &self.observed_at,
            external_id,
            version,
            change,
        };
        for w in work {
            match *w {
                Work::Item { item, key, change } => match self.provider.signal(stream, item) {
                    Ok(mut parts) => {
                        parts.occurred_at = parts.occurred_at.and_then(crate::signal::rfc3339_time);
                        let env = envelope(&key.id, &key.version, change);
                        entries.push(StreamEntry::from_signal(&env.signal(&parts))?);
                        delta
                            .upserts
                            .push((key.id.to_string(), key.version.to_string()));
                    }
                    Err(reason) => {
                        *failed += 1;
                        tracing::warn!(
                            connector = %self.config.name,
                            stream = %stream.name,
                            external_id = %key.id,
                            %reason,
                            "item skipped: cannot build its signal"
                        );
                    }
                },
                Work::Quiet { key } => {
                    delta
                        .upserts
                        .push((key.id.to_string(), key.version.to_string()));
                }
                Work::Removal { id, version } => {
                    let payload = serde_json::json!({ "externalId": id, "lastVersion": version });
                    let payload = RawValue::from_string(payload.to_string())?;
                    let title = format!("{} {id} is no longer active", stream.kind);
                    let parts = ItemSignal {
                        kind: Cow::Borrowed(&stream.kind),
                        title: Cow::Owned(title),
                        severity: Severity::Info,
                        occurred_at: Some(Cow::Borrowed(&self.observed_at)),
                        url: None,
                        payload: Cow::Owned(payload),
                    };
                    let env = envelope(id, version, Change::Removed);
                    entries.push(StreamEntry::from_signal(&env.signal(&parts))?);
                    delta.removals.push(id.to_owned());
                    removed += 1;
                }
            }
        }
        Ok((
            CommitChunk {
                stream: self.config.output_stream.clone(),
                stream_max_len: self.config.stream_max_len,
                entries,
                delta,
                // Set when the chunk is sent, after the chunks before it committed.
                seq: 0,
            },
            removed,
        ))
    }
}

/// State changes that go with the last chunk of a commit and carry no signal.
#[derive(Default)]
struct Tail {
    /// Versions forgotten without a signal (left a snapshot, `emitRemovals` off).
    prunes: Vec<String>,
    /// Snapshot items missing, or back.
    absences: Vec<(String, Option<Absence>)>,
}

impl Tail {
    fn is_empty(&self) -> bool {
        self.prunes.is_empty() && self.absences.is_empty()
    }
}

/// How one page's commit went.
struct PageOutcome {
    failed: bool,
    capped: bool,
    /// The stream cursor the page committed, if it committed one.
    committed: Option<Cursor>,
    /// Items of the page whose id state had recorded (first sightings in this read).
    recorded_seen: usize,
}

/// A watermark as state keeps it: RFC 3339, readable in `state show`.
fn format_watermark(millis: i64) -> String {
    crate::source::time::format_millis(millis, &crate::source::time::TimeFormat::Rfc3339)
        .unwrap_or_else(|_| millis.to_string())
}

/// One signal to build.
enum Work<'a, I> {
    Item {
        item: &'a I,
        key: &'a ItemKey<'a>,
        change: Change,
    },
    Removal {
        id: &'a str,
        version: &'a str,
    },
    /// A new version recorded without a signal (the provider does not publish it).
    Quiet {
        key: &'a ItemKey<'a>,
    },
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
        Box::pin(async move {
            use std::fmt::Write as _;
            let mut problems = Vec::new();
            let state = self.backends.state.load(&self.config.name).await?;
            let mut out = String::new();
            for stream in self.provider.streams() {
                let stored = state.stream(&stream.name);
                let cursor = stored.map(|s| s.cursor.clone()).unwrap_or_default();
                let shown = if stream.name.is_empty() {
                    "(main)"
                } else {
                    &stream.name
                };
                let _ = writeln!(
                    out,
                    "stream {shown}: kind {}, {}",
                    stream.kind,
                    if stream.snapshot {
                        "snapshot"
                    } else {
                        "incremental"
                    }
                );
                if let Some(w) = &cursor.watermark {
                    let _ = writeln!(out, "  watermark {w}");
                }
                let mut pages = self.provider.pages(stream, &cursor);
                let page = match crate::source::explaining(pages.next()).await {
                    None => {
                        let _ = writeln!(out, "  no pages");
                        continue;
                    }
                    Some(Err(e)) => {
                        let _ = writeln!(out, "  the first page failed: {e}");
                        continue;
                    }
                    Some(Ok(PageEvent::NotModified)) => {
                        let _ = writeln!(
                            out,
                            "  304 Not Modified: nothing changed since the last read"
                        );
                        continue;
                    }
                    Some(Ok(PageEvent::Page(page))) => page,
                };
                if let Some(request) = &page.notes.request {
                    let _ = writeln!(out, "  request: {request}");
                }
                let _ = writeln!(
                    out,
                    "  {} records on the first page",
                    page.notes.records.len()
                );
                let watermarked = page.unreadable.is_some()
                    || page.notes.records.iter().any(|n| n.time.is_some());
                let mut readable = 0usize;
                for (i, note) in page.notes.records.iter().enumerate() {
                    let parsed = note
                        .time
                        .as_deref()
                        .and_then(crate::source::time::parse_millis);
                    readable += usize::from(parsed.is_some());
                    let time = match (&note.time, parsed) {
                        (Some(t), Some(_)) => format!(", time {t}"),
                        (Some(t), None) => {
                            format!(", time {t} (unreadable: the watermark cannot move on it)")
                        }
                        (None, _)
                            if watermarked
                                && matches!(note.outcome, crate::source::Outcome::Item(_)) =>
                        {
                            ", time absent (unreadable: the watermark cannot move on it)".to_owned()
                        }
                        (None, _) => String::new(),
                    };
                    let what = match &note.outcome {
                        crate::source::Outcome::Item(k) => match page.items.get(*k) {
                            Some(item) => {
                                let key = self.provider.key(item);
                                let change =
                                    match stored.and_then(|s| s.versions.get(key.id.as_ref())) {
                                        None => "new",
                                        Some(v) if *v == key.version => "unchanged",
                                        Some(_) => "changed",
                                    };
                                format!("id {}, version {}{time}: {change}", key.id, key.version)
                            }
                            None => "kept".to_owned(),
                        },
                        crate::source::Outcome::Dropped(why) => format!("left out ({why}){time}"),
                        crate::source::Outcome::Failed(why) => format!("fails: {why}"),
                    };
                    let _ = writeln!(out, "  record {}: {what}", i + 1);
                }
                if let Some(u) = page
                    .unreadable
                    .as_ref()
                    .filter(|_| readable == 0 && !page.items.is_empty())
                {
                    let problem = format!(
                        "no record on the first page has a readable time at {}: the watermark could never move",
                        u.pointer
                    );
                    let _ = writeln!(out, "  {problem}");
                    problems.push(problem);
                }
                match &page.notes.next {
                    Some(next) => {
                        let _ = writeln!(out, "  next request: {next}");
                    }
                    None => {
                        let why = match (page.partial_reason, page.suspect) {
                            (Some(r), _) => format!(
                                " (paging stopped early: the read is partial, reason {})",
                                r.label()
                            ),
                            (None, Some(s)) => format!(
                                " (a page as full as the page size without a next link: {})",
                                s.label()
                            ),
                            (None, None) if page.partial => {
                                " (paging stopped early: the read is partial)".to_owned()
                            }
                            (None, None) => String::new(),
                        };
                        let _ = writeln!(out, "  no next page{why}");
                    }
                }
            }
            Ok(Explanation {
                text: out,
                problems,
            })
        })
    }

    fn preview(&mut self) -> BoxFuture<'_, Result<Preview, PollError>> {
        Box::pin(async move {
            let mut state = self.backends.state.load(&self.config.name).await?;
            let mut poll = Poll::new(
                &self.provider,
                &self.config,
                now_ms(),
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
