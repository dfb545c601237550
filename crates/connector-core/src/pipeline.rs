//! The poll pipeline every connector runs: fetch → detect → transform → commit → record.
//!
//! A provider supplies a [`Provider`]: how to fetch its items, how to identify and version
//! one, and how to turn one into a [`RawSignal`]. [`UniversalPollingConnector`] does the
//! rest, the same way for every provider:
//!
//! 1. **state** is loaded once per lease (this instance is then the only writer) and kept
//!    in memory, updated only with what a commit made durable;
//! 2. **fetch** may answer "not modified" (304), or items plus the new cursor;
//! 3. **detect** compares ids and versions with state; unchanged items cost nothing;
//! 4. **transform** runs only for changed items, one commit chunk at a time, so memory
//!    holds at most `commitBatchSize` encoded signals;
//! 5. **commit** writes each chunk's signals with its version updates atomically and
//!    fenced; the cursor goes with the last chunk. A fenced chunk ends the poll: another
//!    instance owns the connector now;
//! 6. **record** folds the outcome into the connector's metrics.
//!
//! A failed fetch returns before anything is written, so state stays as it was and the next
//! poll tries again.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::config::{ConnectorConfig, FieldError};
use crate::detect;
use crate::http::HttpError;
use crate::ports::{
    BackendError, Backends, BoxFuture, CommitChunk, CommitOutcome, ConnectorState, Cursor, Lease,
    PollRecord, PollSummary, StateDelta,
};
use crate::signal::{Change, RawSignal, SCHEMA_VERSION, Severity, StreamEntry, rfc3339_millis};

/// An item's identity for change detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemKey<'a> {
    /// The provider's stable id.
    pub id: std::borrow::Cow<'a, str>,
    /// The version: the API's version field, or [`detect::content_version`].
    pub version: std::borrow::Cow<'a, str>,
}

/// What one fetch returned.
#[derive(Debug)]
pub struct Fetched<I> {
    /// The items, in the provider's order.
    pub items: Vec<I>,
    /// Where to resume next time (saved with the poll's last commit).
    pub cursor: Cursor,
    /// For snapshot sources: the items are the provider's whole current set, so a recorded
    /// id that is absent has left it. False after a capped or partial read.
    pub complete: bool,
    /// HTTP pages read.
    pub pages: u64,
    /// Provider-specific counters for the poll summary.
    pub extras: BTreeMap<String, u64>,
    /// Most new or changed items to publish from this poll (the provider's per-poll cap).
    /// The rest are published by the next polls, since their versions are not recorded;
    /// the cursor does not advance while anything is held back.
    pub change_limit: Option<usize>,
}

impl<I> Fetched<I> {
    /// A complete, single-page result.
    pub fn complete(items: Vec<I>, cursor: Cursor) -> Self {
        Self {
            items,
            cursor,
            complete: true,
            pages: 1,
            extras: BTreeMap::new(),
            change_limit: None,
        }
    }
}

/// The result of a fetch.
#[derive(Debug)]
pub enum FetchOutcome<I> {
    /// The server said nothing changed (304).
    NotModified,
    /// Items.
    Fetched(Fetched<I>),
}

/// Why a fetch failed. Any of these fails the poll, leaves state untouched, and the next
/// tick tries again.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The HTTP layer gave up (after its retries, or at once for a non-retryable status).
    #[error(transparent)]
    Http(#[from] HttpError),
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

/// What a transform needs besides the item.
#[derive(Debug, Clone, Copy)]
pub struct SignalContext<'a> {
    /// Connector instance name.
    pub connector: &'a str,
    /// When this poll observed the item (RFC 3339 UTC).
    pub observed_at: &'a str,
}

/// One provider: everything that differs between NOAA, Jira, GitHub, Datadog…
///
/// The associated types make the pipeline generic over the provider's config, its raw
/// item and (through `transform`) its signal; the provider value itself is the client.
pub trait Provider: Send + Sync + Sized + 'static {
    /// Type name in config, e.g. `NOAA_WEATHER`.
    const TYPE: &'static str;
    /// Provider name in signals, crate names and metrics, e.g. `noaa`.
    const SOURCE: &'static str;
    /// Signal kind, e.g. `weather_alert`.
    const KIND: &'static str;
    /// True when every fetch returns the whole current set (NOAA's active alerts), so an
    /// item's absence means it is gone.
    const SNAPSHOT: bool;

    /// `providerConfig`, typed. Its JSON Schema is what `schema` prints and what the
    /// loader checks field names against.
    /// Secrets in it are [`crate::config::Secret`]s, so its serialised form (what
    /// `validate` prints) hides them by type.
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

    /// Fetches the current items, resuming from `cursor`.
    fn fetch(
        &self,
        cursor: &Cursor,
    ) -> impl Future<Output = Result<FetchOutcome<Self::Item>, FetchError>> + Send;

    /// The item's id and version.
    fn key<'a>(&self, item: &'a Self::Item) -> ItemKey<'a>;

    /// The signal for a new or changed item. An error skips the item for this poll (it is
    /// counted as failed and seen again next time).
    fn transform(
        &self,
        item: &Self::Item,
        key: &ItemKey<'_>,
        change: Change,
        ctx: &SignalContext<'_>,
    ) -> Result<RawSignal, String>;

    /// The signal for an item that left a snapshot (with `emitRemovals`).
    fn removed(&self, external_id: &str, last_version: &str, ctx: &SignalContext<'_>) -> RawSignal {
        let payload = serde_json::json!({ "externalId": external_id, "lastVersion": last_version });
        RawSignal {
            schema_version: SCHEMA_VERSION,
            source: Self::SOURCE,
            connector: ctx.connector.to_owned(),
            connector_type: Self::TYPE,
            external_id: external_id.to_owned(),
            version: last_version.to_owned(),
            kind: Self::KIND,
            change: Change::Removed,
            title: format!("{} {external_id} is no longer active", Self::KIND),
            severity: Severity::Info,
            occurred_at: Some(ctx.observed_at.to_owned()),
            observed_at: ctx.observed_at.to_owned(),
            url: None,
            payload: RawValue::from_string(payload.to_string())
                .unwrap_or_else(|_| RawValue::NULL.to_owned()),
        }
    }
}

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// Fetching failed; nothing was written.
    #[error("fetch failed: {0}")]
    Fetch(#[from] FetchError),
    /// The lease moved to another instance; chunks committed before it stay committed.
    #[error("commit refused: the lease on {connector} is no longer held by this instance")]
    Fenced {
        /// The connector.
        connector: String,
    },
    /// The backend failed (Redis down…).
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A signal could not be encoded (a bug, not bad input).
    #[error("cannot encode signal: {0}")]
    Encode(#[from] serde_json::Error),
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
}

/// The generic pipeline over one provider.
pub struct UniversalPollingConnector<P: Provider> {
    provider: P,
    config: Arc<ConnectorConfig>,
    backends: Backends,
    /// State as committed, with the lease token it was loaded under.
    state: Option<(u64, ConnectorState)>,
}

/// Milliseconds since the UNIX epoch, the one wall-clock read of a poll.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

enum Work<'a> {
    Item(usize, Change),
    Removal(&'a str, &'a str),
}

impl<P: Provider> UniversalPollingConnector<P> {
    /// Wraps a provider with the pipeline.
    pub fn new(provider: P, config: Arc<ConnectorConfig>, backends: Backends) -> Self {
        Self {
            provider,
            config,
            backends,
            state: None,
        }
    }

    /// The provider, for provider-specific inspection in tests.
    pub fn provider(&self) -> &P {
        &self.provider
    }

    /// One poll: fetch, detect, transform, commit in fenced chunks, record metrics.
    pub async fn poll_once(&mut self, lease: &Lease) -> Result<PollSummary, PollError> {
        let started = Instant::now();
        let started_at_ms = now_ms();
        let result = self.run(lease, started_at_ms).await;
        if matches!(result, Err(PollError::Backend(_))) {
            // A failed round trip may or may not have been applied: reload next time.
            self.state = None;
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

    async fn run(&mut self, lease: &Lease, now: u64) -> Result<PollSummary, PollError> {
        let Self {
            provider,
            config,
            backends,
            state: slot,
        } = self;
        if slot.as_ref().map(|(t, _)| *t) != Some(lease.token) {
            let loaded = backends.state.load(&config.name).await?;
            *slot = Some((lease.token, loaded));
        }
        let Some((_, state)) = slot.as_mut() else {
            return Err(PollError::Backend(BackendError::new(
                "load state",
                "state missing",
            )));
        };
        let fetched = match provider.fetch(&state.cursor).await? {
            FetchOutcome::NotModified => {
                return Ok(PollSummary {
                    not_modified: true,
                    ..PollSummary::default()
                });
            }
            FetchOutcome::Fetched(f) => f,
        };
        let observed_at = rfc3339_millis(now);
        let ctx = SignalContext {
            connector: &config.name,
            observed_at: &observed_at,
        };
        let planned = plan_and_commit(
            provider,
            config,
            state,
            &fetched,
            &ctx,
            Commit::To { lease, backends },
        )
        .await?;
        Ok(planned.summary)
    }
}

enum Commit<'a> {
    To {
        lease: &'a Lease,
        backends: &'a Backends,
    },
    DryRun,
}

/// One chunk's encoded signals and state changes, ready to commit.
struct BuiltChunk {
    entries: Vec<StreamEntry>,
    delta: StateDelta,
    failed: u64,
    removed: u64,
}

/// Encodes the planned work chunk after chunk, in order: whether the poll's resume point
/// may be saved depends on every item before the last chunk having been encoded.
struct ChunkBuilder<'a, P: Provider> {
    chunks: std::slice::Chunks<'a, Work<'a>>,
    /// Chunks still to build; an empty plan still has one, which carries the prunes and
    /// the cursor.
    left: usize,
    provider: &'a P,
    fetched: &'a Fetched<P::Item>,
    keys: &'a [ItemKey<'a>],
    ctx: &'a SignalContext<'a>,
    any_failed: bool,
    silent_prunes: Vec<String>,
    /// The cursor to save with the last chunk: `None` when it did not change or when items
    /// were held back by the per-poll cap.
    final_cursor: Option<Cursor>,
}

impl<P: Provider> ChunkBuilder<'_, P> {
    /// The next chunk, `None` after the last.
    fn next_chunk(&mut self) -> Result<Option<BuiltChunk>, PollError> {
        let Some(left) = self.left.checked_sub(1) else {
            return Ok(None);
        };
        self.left = left;
        let slice = self.chunks.next().unwrap_or(&[]);
        let mut built = BuiltChunk {
            entries: Vec::with_capacity(slice.len()),
            delta: StateDelta::default(),
            failed: 0,
            removed: 0,
        };
        for w in slice {
            match *w {
                Work::Item(i, change) => {
                    let key = &self.keys[i];
                    match self
                        .provider
                        .transform(&self.fetched.items[i], key, change, self.ctx)
                    {
                        Ok(signal) => {
                            built.entries.push(StreamEntry::from_signal(&signal)?);
                            built
                                .delta
                                .upserts
                                .push((key.id.to_string(), key.version.to_string()));
                        }
                        Err(reason) => {
                            self.any_failed = true;
                            built.failed += 1;
                            tracing::warn!(
                                connector = self.ctx.connector,
                                external_id = %key.id,
                                %reason,
                                "item skipped: cannot build its signal"
                            );
                        }
                    }
                }
                Work::Removal(id, version) => {
                    let signal = self.provider.removed(id, version, self.ctx);
                    built.entries.push(StreamEntry::from_signal(&signal)?);
                    built.delta.removals.push(id.to_owned());
                    built.removed += 1;
                }
            }
        }
        if self.left == 0 {
            built.delta.removals.append(&mut self.silent_prunes);
            // An item that failed to transform, or was held back by the cap, must be seen
            // again: keep the old resume point (versions keep the others from being
            // republished).
            if !self.any_failed {
                built.delta.cursor = self.final_cursor.take();
            }
        }
        Ok(Some(built))
    }
}

struct Planned {
    summary: PollSummary,
    entries: Vec<StreamEntry>,
}

async fn plan_and_commit<P: Provider>(
    provider: &P,
    config: &ConnectorConfig,
    state: &mut ConnectorState,
    fetched: &Fetched<P::Item>,
    ctx: &SignalContext<'_>,
    commit: Commit<'_>,
) -> Result<Planned, PollError> {
    let mut summary = PollSummary {
        pages: fetched.pages,
        extras: fetched.extras.clone(),
        ..PollSummary::default()
    };
    let keys: Vec<ItemKey<'_>> = fetched.items.iter().map(|i| provider.key(i)).collect();
    let plan = detect::plan(
        &state.versions,
        keys.iter().map(|k| (k.id.as_ref(), k.version.as_ref())),
        P::SNAPSHOT && fetched.complete,
    );
    summary.fetched = fetched.items.len() as u64 - plan.duplicates;
    summary.skipped_unchanged = plan.unchanged;

    let mut work: Vec<Work<'_>> = plan
        .changes
        .iter()
        .map(|(i, c)| Work::Item(*i, *c))
        .collect();
    let mut held_back = false;
    if let Some(limit) = fetched.change_limit
        && work.len() > limit
    {
        summary
            .extras
            .insert("heldBack".to_owned(), (work.len() - limit) as u64);
        work.truncate(limit);
        held_back = true;
    }
    let mut silent_prunes: Vec<String> = Vec::new();
    if config.emit_removals {
        work.extend(
            plan.vanished
                .iter()
                .map(|(id, v)| Work::Removal(id.as_str(), v.as_str())),
        );
    } else {
        silent_prunes = plan.vanished.iter().map(|(id, _)| id.clone()).collect();
        summary.removed += silent_prunes.len() as u64;
    }
    let cursor_changed = fetched.cursor != state.cursor;
    if work.is_empty() && silent_prunes.is_empty() && !cursor_changed {
        return Ok(Planned {
            summary,
            entries: Vec::new(),
        });
    }

    let batch = config.commit_batch_size.max(1) as usize;
    let mut all_entries = Vec::new();
    let mut builder = ChunkBuilder {
        chunks: work.chunks(batch),
        left: work.len().div_ceil(batch).max(1),
        provider,
        fetched,
        keys: &keys,
        ctx,
        any_failed: false,
        silent_prunes,
        final_cursor: (cursor_changed && !held_back).then(|| fetched.cursor.clone()),
    };
    let mut next = builder.next_chunk()?;
    while let Some(built) = next.take() {
        summary.failed += built.failed;
        summary.removed += built.removed;
        if built.entries.is_empty() && built.delta.is_empty() {
            next = builder.next_chunk()?;
            continue;
        }
        let published = built.entries.len() as u64;
        match &commit {
            Commit::To { lease, backends } => {
                let chunk = CommitChunk {
                    stream: config.output_stream.clone(),
                    stream_max_len: config.stream_max_len,
                    entries: built.entries,
                    delta: built.delta,
                };
                // The commit runs on its own task while this one encodes the next chunk,
                // so Redis and the encoder work at the same time. Dropping the poll aborts
                // the commit as dropping its future would.
                let publisher = Arc::clone(&backends.publisher);
                let held = (*lease).clone();
                let in_flight = AbortOnDropHandle::new(tokio::spawn(
                    async move {
                        let outcome = publisher.commit(&held, &chunk).await;
                        (outcome, chunk)
                    }
                    // The backend's log lines stay inside the poll's span.
                    .in_current_span(),
                ));
                let built_next = builder.next_chunk();
                let (outcome, chunk) = in_flight.await.map_err(|e| {
                    PollError::Backend(BackendError::new(
                        "commit",
                        format!("the commit task ended abnormally: {e}"),
                    ))
                })?;
                match outcome? {
                    CommitOutcome::Committed => {
                        chunk.delta.apply_to(state);
                        summary.commits += 1;
                        summary.published += published;
                    }
                    CommitOutcome::Fenced => {
                        return Err(PollError::Fenced {
                            connector: config.name.clone(),
                        });
                    }
                }
                next = built_next?;
            }
            Commit::DryRun => {
                summary.published += published;
                all_entries.extend(built.entries);
                next = builder.next_chunk()?;
            }
        }
    }
    Ok(Planned {
        summary,
        entries: all_entries,
    })
}

impl<P: Provider> PollingConnector for UniversalPollingConnector<P> {
    fn config(&self) -> &ConnectorConfig {
        &self.config
    }

    fn poll<'a>(&'a mut self, lease: &'a Lease) -> BoxFuture<'a, Result<PollSummary, PollError>> {
        Box::pin(self.poll_once(lease))
    }

    fn preview(&mut self) -> BoxFuture<'_, Result<Preview, PollError>> {
        Box::pin(async move {
            let mut state = self.backends.state.load(&self.config.name).await?;
            let fetched = match self.provider.fetch(&state.cursor).await? {
                FetchOutcome::NotModified => {
                    return Ok(Preview {
                        summary: PollSummary {
                            not_modified: true,
                            ..PollSummary::default()
                        },
                        entries: Vec::new(),
                    });
                }
                FetchOutcome::Fetched(f) => f,
            };
            let observed_at = rfc3339_millis(now_ms());
            let ctx = SignalContext {
                connector: &self.config.name,
                observed_at: &observed_at,
            };
            let planned = plan_and_commit(
                &self.provider,
                &self.config,
                &mut state,
                &fetched,
                &ctx,
                Commit::DryRun,
            )
            .await?;
            Ok(Preview {
                summary: planned.summary,
                entries: planned.entries,
            })
        })
    }
}

/// How long a connector may go without a successful poll before it counts as unhealthy:
/// three intervals, and never less than a minute.
pub fn health_max_age(config: &ConnectorConfig) -> Duration {
    (config.poll_interval() * 3).max(Duration::from_secs(60))
}
