//! The provider contract harness: the behaviour every connector must show, checked the
//! same way for all of them (feature `testing`).
//!
//! A provider's test starts a `wiremock` server, points a config at it, and describes in a
//! [`Scenario`] how the server serves a baseline, one changed item, a failure and (for
//! snapshot sources) one vanished item. [`run_contract`] then checks, against the embedded
//! backend:
//!
//! 1. the first poll publishes every item once, as `created`;
//! 2. a repeat poll publishes nothing;
//! 3. one changed item is published once, as `updated`;
//! 4. a failed fetch publishes nothing and leaves state untouched;
//! 5. for snapshot sources with `emitRemovals`, an item missing from one read and back in
//!    the next publishes nothing (a flap); one missing from `removalGracePolls` (2) reads
//!    in a row is published once as `removed`, and not again.

pub mod items;
pub mod paged;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use wiremock::MockServer;

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::ConnectorConfig;
use crate::context::Backends;
use crate::embedded::EmbeddedBackend;
use crate::pipeline::{PollingConnector, Provider};
use crate::ports::{
    BackendError, BoxFuture, CommitChunk, CommitOutcome, Cursor, Lease, Publisher, StateDelta,
    StateStore,
};
use crate::registry::Factories;
use crate::signal::StreamEntry;

/// How a provider's mock server serves each situation the contract needs. Each method is
/// called after the server was reset, and mounts what the next poll should see.
pub trait Scenario {
    /// Serves the baseline set; returns how many distinct items it holds (at least 2).
    fn serve_baseline(&self, server: &MockServer) -> impl Future<Output = usize>;
    /// Serves the baseline with exactly one item changed in a way its version reflects.
    fn serve_one_changed(&self, server: &MockServer) -> impl Future<Output = ()>;
    /// Serves a failure: an error status or a body that is not the API's shape.
    fn serve_failure(&self, server: &MockServer) -> impl Future<Output = ()>;
    /// Serves the changed set minus one item (only called for snapshot providers).
    fn serve_one_removed(&self, server: &MockServer) -> impl Future<Output = ()>;
}

/// A connector on the embedded in-memory backend, holding its lease.
pub struct Harness {
    /// The backend, to inspect published entries and state.
    pub backend: Arc<EmbeddedBackend>,
    /// The connector under test.
    pub connector: Box<dyn PollingConnector>,
    /// The lease it polls under.
    pub lease: Lease,
    /// The context it runs in (its own: pool, holds, stop signal, clock).
    pub context: crate::context::Context,
}

impl Harness {
    /// Builds `config` with the provider `P` on a fresh in-memory backend and takes its lease.
    pub async fn new<P: Provider>(config: ConnectorConfig) -> Self {
        let backend = Arc::new(EmbeddedBackend::in_memory());
        Self::on::<P>(config, backend, None).await
    }

    /// The same in `context` (a manual clock, a shared pool).
    pub async fn in_context<P: Provider>(
        config: ConnectorConfig,
        context: crate::context::Context,
    ) -> Self {
        let backend = Arc::new(EmbeddedBackend::in_memory());
        Self::build::<P>(config, backend, None, context).await
    }

    /// The same on `backend` (to pick up the state an earlier harness left), with a
    /// publisher that fails after `crash_after` commits when given (a process stopped
    /// mid-poll).
    pub async fn on<P: Provider>(
        config: ConnectorConfig,
        backend: Arc<EmbeddedBackend>,
        crash_after: Option<usize>,
    ) -> Self {
        Self::build::<P>(
            config,
            backend,
            crash_after,
            crate::context::Context::isolated(),
        )
        .await
    }

    async fn build<P: Provider>(
        config: ConnectorConfig,
        backend: Arc<EmbeddedBackend>,
        crash_after: Option<usize>,
        context: crate::context::Context,
    ) -> Self {
        let mut backends = Backends::from_one(backend.clone());
        backends.context = context.clone();
        if let Some(left) = crash_after {
            backends.publisher = Arc::new(Crashing {
                inner: backend.clone(),
                left: AtomicUsize::new(left),
            });
        }
        let mut factories = Factories::new();
        factories.register::<P>();
        let connector = match factories.create(Arc::new(config.clone()), backends.clone()) {
            Ok(c) => c,
            Err(e) => panic!("the connector under test could not be built: {e}"),
        };
        // A lease an earlier harness left is taken over, as after its holder died.
        let lease = match backends
            .leases
            .acquire(&config.name, "contract-test", Duration::from_secs(300))
            .await
        {
            Ok(Some(lease)) => lease,
            _ => backend.steal_lease(&config.name, "contract-test", Duration::from_secs(300)),
        };
        Self {
            backend,
            connector,
            lease,
            context,
        }
    }

    /// Entries published so far.
    pub fn published(&self) -> Vec<StreamEntry> {
        self.backend
            .published()
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }
}

/// A publisher that commits `left` chunks and then fails, like a process that died.
struct Crashing {
    inner: Arc<EmbeddedBackend>,
    left: AtomicUsize,
}

impl Publisher for Crashing {
    fn commit<'a>(
        &'a self,
        lease: &'a Lease,
        chunk: &'a CommitChunk,
    ) -> BoxFuture<'a, Result<CommitOutcome, BackendError>> {
        let go = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        Box::pin(async move {
            if go {
                self.inner.commit(lease, chunk).await
            } else {
                Err(BackendError::new("commit", "the process stopped"))
            }
        })
    }
}

/// How an incremental provider's mock serves what the incremental contract needs.
pub trait IncrementalScenario {
    /// Serves a first sync of at least three pages; returns how many items it holds.
    fn serve_pages(&self, server: &MockServer) -> impl Future<Output = usize>;
    /// From now on, the server hands out a page token it handed out before.
    fn serve_repeated_token(&self, server: &MockServer) -> impl Future<Output = ()>;
    /// Breaks one record so it no longer parses; returns its id.
    fn break_one(&self, server: &MockServer) -> impl Future<Output = String>;
    /// Mends the record `break_one` broke.
    fn fix_one(&self, server: &MockServer) -> impl Future<Output = ()>;
}

/// The contract of incremental, paged providers, each case on a fresh backend:
///
/// 1. with a far-future watermark, a poll publishes nothing;
/// 2. a process stopped between two pages of a multi-page first sync loses nothing and
///    republishes nothing when the next process goes on;
/// 3. a repeated page token ends the poll with an error and commits no page after it;
/// 4. a record that fails to parse is counted as failed, and published by a later poll
///    once it parses.
///
/// Run it for an ascending and for a descending read where the provider has both.
pub async fn run_incremental_contract<P: Provider>(
    mut config: ConnectorConfig,
    server: &MockServer,
    scenario: &impl IncrementalScenario,
) {
    config.max_retries = 0;
    let provider = provider_under_test::<P>(&config);
    let streams: Vec<String> = provider.streams().iter().map(|s| s.name.clone()).collect();
    // 1. A far-future watermark: nothing is newer.
    incremental_far_future::<P>(&config, server, scenario, &streams).await;
    // 2. Stopped between two pages, then resumed by the next process.
    incremental_stop_between_pages::<P>(&config, server, scenario).await;
    // 3. A repeated page token: the poll fails, no page after it is committed.
    incremental_repeated_token::<P>(&config, server, scenario).await;
    // 4. A record that does not parse: counted, skipped, published once it parses.
    incremental_broken_record::<P>(&config, server, scenario).await;
}

/// Incremental step 1: with a far-future watermark a poll publishes nothing.
async fn incremental_far_future<P: Provider>(
    config: &ConnectorConfig,
    server: &MockServer,
    scenario: &impl IncrementalScenario,
    streams: &[String],
) {
    server.reset().await;
    let n = scenario.serve_pages(server).await;
    assert!(n >= 3, "a multi-page sync needs at least three items");
    let backend = Arc::new(EmbeddedBackend::in_memory());
    for stream in streams {
        let delta = StateDelta {
            stream: stream.clone(),
            cursor: Some(Cursor {
                watermark: Some("3000-01-01T00:00:00Z".into()),
                ..Cursor::default()
            }),
            ..StateDelta::default()
        };
        let written = crate::ports::StateStore::apply(backend.as_ref(), &config.name, &delta).await;
        assert!(written.is_ok(), "setup: {written:?}");
    }
    let mut h = Harness::on::<P>(config.clone(), backend, None).await;
    let far = poll_once(&mut h)
        .await
        .unwrap_or_else(|e| panic!("far-future poll failed: {e}"));
    assert_eq!(
        far.published, 0,
        "a far-future watermark yields nothing: {far:?}"
    );
}

/// Incremental step 2: a process stopped between two pages loses nothing and republishes
/// nothing when the next process goes on.
async fn incremental_stop_between_pages<P: Provider>(
    config: &ConnectorConfig,
    server: &MockServer,
    scenario: &impl IncrementalScenario,
) {
    server.reset().await;
    let n = scenario.serve_pages(server).await;
    let backend = Arc::new(EmbeddedBackend::in_memory());
    let mut crashing = Harness::on::<P>(config.clone(), backend.clone(), Some(1)).await;
    let stopped = poll_once(&mut crashing).await;
    assert!(stopped.is_err(), "the stopped poll fails: {stopped:?}");
    let before = crashing.published().len();
    assert!(
        before > 0 && before < n,
        "the first page was committed, not all: {before} of {n}"
    );
    drop(crashing);
    let mut next = Harness::on::<P>(config.clone(), backend, None).await;
    let resumed = poll_once(&mut next)
        .await
        .unwrap_or_else(|e| panic!("resumed poll failed: {e}"));
    let all = next.published();
    let mut ids: Vec<&str> = all.iter().map(|e| e.external_id.as_str()).collect();
    ids.sort_unstable();
    let len = ids.len();
    ids.dedup();
    assert_eq!(
        len,
        ids.len(),
        "nothing republished after the stop: {resumed:?}"
    );
    assert_eq!(ids.len(), n, "nothing lost after the stop");
}

/// Incremental step 3: a repeated page token fails the poll; no page after it commits.
async fn incremental_repeated_token<P: Provider>(
    config: &ConnectorConfig,
    server: &MockServer,
    scenario: &impl IncrementalScenario,
) {
    server.reset().await;
    let n = scenario.serve_pages(server).await;
    scenario.serve_repeated_token(server).await;
    let mut h = Harness::new::<P>(config.clone()).await;
    let looped = poll_once(&mut h).await;
    assert!(
        looped.is_err(),
        "a repeated token fails the poll: {looped:?}"
    );
    let committed = h.published().len();
    assert!(
        committed < n,
        "no page after the repeated token is committed ({committed} of {n})"
    );
}

/// Incremental step 4: a record that fails to parse is counted, and published once it
/// parses.
async fn incremental_broken_record<P: Provider>(
    config: &ConnectorConfig,
    server: &MockServer,
    scenario: &impl IncrementalScenario,
) {
    server.reset().await;
    scenario.serve_pages(server).await;
    let broken = scenario.break_one(server).await;
    let mut h = Harness::new::<P>(config.clone()).await;
    let first = poll_once(&mut h)
        .await
        .unwrap_or_else(|e| panic!("poll failed: {e}"));
    assert!(
        first.failed >= 1,
        "the broken record is counted as failed: {first:?}"
    );
    assert!(
        h.published().iter().all(|e| e.external_id != broken),
        "the broken record is not published"
    );
    scenario.fix_one(server).await;
    poll_once(&mut h)
        .await
        .unwrap_or_else(|e| panic!("poll after the fix failed: {e}"));
    let fixed = h
        .published()
        .iter()
        .filter(|e| e.external_id == broken)
        .count();
    assert_eq!(fixed, 1, "the mended record is published once");
}

/// The provider itself, to ask it its streams and source.
fn provider_under_test<P: Provider>(config: &ConnectorConfig) -> P {
    crate::registry::typed_config::<P>(config)
        .and_then(|typed| P::new(typed, &crate::ConnectorContext::isolated(config.clone())))
        .unwrap_or_else(|e| panic!("the provider under test could not be built: {e}"))
}

async fn poll_once(
    h: &mut Harness,
) -> Result<crate::ports::PollSummary, crate::pipeline::PollError> {
    h.connector.poll(&h.lease).await
}

fn signal_json(entry: &StreamEntry) -> serde_json::Value {
    serde_json::from_str(&entry.signal)
        .unwrap_or_else(|e| panic!("signal of {} is not JSON: {e}", entry.external_id))
}

/// Runs the whole contract for provider `P`; panics with a description on the first breach.
///
/// `config` must point at `server`. The harness sets `maxRetries` to 0 (the failure case
/// must not wait) and turns `emitRemovals` on for snapshot providers.
pub async fn run_contract<P: Provider>(
    mut config: ConnectorConfig,
    server: &MockServer,
    scenario: &impl Scenario,
) {
    config.max_retries = 0;
    let provider = provider_under_test::<P>(&config);
    let snapshot = provider.streams().iter().any(|s| s.snapshot);
    config.emit_removals = snapshot;
    let responses = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&responses);
    let context = crate::context::Context::isolated().observing(move |_, _| {
        counted.fetch_add(1, Ordering::Relaxed);
    });
    let mut h = Harness::in_context::<P>(config.clone(), context).await;
    // 1. First poll: everything, once, as created.
    let (n, entries) = contract_first::<P>(&mut h, &config, server, scenario, &provider).await;
    assert!(
        responses.load(Ordering::Relaxed) > 0,
        "the provider's requests go through the connector's context (build its HttpClient with .connector_settings(common)): its stop signal, holds, clock and metrics"
    );
    // 2. Repeat poll: nothing new.
    contract_repeat(&mut h, server, scenario, n, snapshot).await;
    // 3. One changed item: published once, as updated.
    contract_change(&mut h, server, scenario, &entries).await;
    // 4. A failed fetch: nothing published, state untouched.
    contract_failure(&mut h, &config, server, scenario).await;
    // 5. Snapshot sources: a flap publishes nothing; a vanished item is published once as
    // removed, after the grace.
    if snapshot {
        contract_removal(&mut h, &config, server, scenario, n).await;
    }
}

/// Contract step 1: the first poll publishes every item once, as created, with the
/// envelope the contract promises. Returns how many items and their entries.
async fn contract_first<P: Provider>(
    h: &mut Harness,
    config: &ConnectorConfig,
    server: &MockServer,
    scenario: &impl Scenario,
    provider: &P,
) -> (usize, Vec<StreamEntry>) {
    let kinds: Vec<&str> = provider.streams().iter().map(|s| s.kind.as_str()).collect();
    server.reset().await;
    let n = scenario.serve_baseline(server).await;
    assert!(n >= 2, "the baseline must hold at least two items");
    let first = h
        .connector
        .poll(&h.lease)
        .await
        .unwrap_or_else(|e| panic!("first poll failed: {e}"));
    let entries = h.published();
    assert_eq!(
        first.published as usize, n,
        "first poll publishes every item: {first:?}"
    );
    assert_eq!(entries.len(), n, "one stream entry per item");
    let mut ids: Vec<&str> = entries.iter().map(|e| e.external_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "no item is published twice");
    for e in &entries {
        let s = signal_json(e);
        assert_eq!(s["change"], "created", "first sighting is `created`");
        assert_eq!(s["schemaVersion"], 1);
        assert_eq!(s["source"], provider.source());
        assert_eq!(s["connectorType"], P::TYPE);
        assert!(
            s["kind"].as_str().is_some_and(|k| kinds.contains(&k)),
            "the kind is one of the streams' kinds {kinds:?}: {}",
            s["kind"]
        );
        assert_eq!(s["connector"], config.name.as_str());
        assert_eq!(s["externalId"], e.external_id.as_str());
        assert_eq!(s["version"], e.version.as_str());
        assert!(
            s["title"].as_str().is_some_and(|t| !t.is_empty()),
            "a title"
        );
        assert!(!s["payload"].is_null(), "the payload is the item");
        assert_eq!(e.connector_type, P::TYPE);
    }
    (n, entries)
}

/// Contract step 2: a repeat poll publishes nothing.
async fn contract_repeat(
    h: &mut Harness,
    server: &MockServer,
    scenario: &impl Scenario,
    n: usize,
    snapshot: bool,
) {
    server.reset().await;
    scenario.serve_baseline(server).await;
    let repeat = h
        .connector
        .poll(&h.lease)
        .await
        .unwrap_or_else(|e| panic!("repeat poll failed: {e}"));
    assert_eq!(
        repeat.published, 0,
        "an unchanged set publishes nothing: {repeat:?}"
    );
    // A snapshot reads the whole set again; an incremental read only what its lookback
    // covers.
    if snapshot {
        assert_eq!(repeat.skipped_unchanged as usize, n);
    } else {
        assert!(repeat.fetched > 0, "the lookback reads again: {repeat:?}");
        assert_eq!(
            repeat.skipped_unchanged, repeat.fetched,
            "every record read again is unchanged: {repeat:?}"
        );
    }
    assert_eq!(h.published().len(), n);
}

/// Contract step 3: one changed item is published once, as updated, with a new version
/// and dedup id.
async fn contract_change(
    h: &mut Harness,
    server: &MockServer,
    scenario: &impl Scenario,
    entries: &[StreamEntry],
) {
    server.reset().await;
    scenario.serve_one_changed(server).await;
    let changed = h
        .connector
        .poll(&h.lease)
        .await
        .unwrap_or_else(|e| panic!("poll after a change failed: {e}"));
    assert_eq!(
        changed.published, 1,
        "exactly the changed item: {changed:?}"
    );
    let all = h.published();
    let updated = all.last().unwrap_or_else(|| panic!("an entry"));
    assert_eq!(signal_json(updated)["change"], "updated");
    let earlier = entries
        .iter()
        .find(|e| e.external_id == updated.external_id)
        .unwrap_or_else(|| {
            panic!(
                "the updated item {} was in the baseline",
                updated.external_id
            )
        });
    assert_ne!(
        earlier.version, updated.version,
        "an update carries a new version"
    );
    assert_ne!(earlier.dedup_id, updated.dedup_id, "and a new dedup_id");
    let again = h
        .connector
        .poll(&h.lease)
        .await
        .unwrap_or_else(|e| panic!("repeat poll after a change failed: {e}"));
    assert_eq!(again.published, 0, "a change is published once");
}

/// Contract step 4: a failed fetch fails the poll, publishes nothing and leaves state
/// untouched.
async fn contract_failure(
    h: &mut Harness,
    config: &ConnectorConfig,
    server: &MockServer,
    scenario: &impl Scenario,
) {
    let before = h
        .backend
        .load(&config.name)
        .await
        .unwrap_or_else(|e| panic!("state: {e}"));
    let count_before = h.published().len();
    server.reset().await;
    scenario.serve_failure(server).await;
    let failed = h.connector.poll(&h.lease).await;
    assert!(failed.is_err(), "a failed fetch fails the poll: {failed:?}");
    let after = h
        .backend
        .load(&config.name)
        .await
        .unwrap_or_else(|e| panic!("state: {e}"));
    assert_eq!(before, after, "a failed poll leaves state untouched");
    assert_eq!(
        h.published().len(),
        count_before,
        "a failed poll publishes nothing"
    );
}

/// One poll against the changed set, or against it with one item removed.
async fn poll_serving(
    h: &mut Harness,
    server: &MockServer,
    scenario: &impl Scenario,
    serve_removed: bool,
    what: &str,
) -> crate::ports::PollSummary {
    server.reset().await;
    if serve_removed {
        scenario.serve_one_removed(server).await;
    } else {
        scenario.serve_one_changed(server).await;
    }
    h.connector
        .poll(&h.lease)
        .await
        .unwrap_or_else(|e| panic!("poll {what} failed: {e}"))
}

/// Contract step 5 (snapshots): a flap publishes nothing; a vanished item is published
/// once as removed, after the grace, and its version pruned.
async fn contract_removal(
    h: &mut Harness,
    config: &ConnectorConfig,
    server: &MockServer,
    scenario: &impl Scenario,
    n: usize,
) {
    assert_eq!(
        config.removal_grace_polls, 2,
        "the contract runs with the default removalGracePolls"
    );
    let missing = poll_serving(h, server, scenario, true, "with one item missing").await;
    assert_eq!(
        missing.published, 0,
        "missing once is not removed: {missing:?}"
    );
    let back = poll_serving(h, server, scenario, false, "with the item back").await;
    assert_eq!(
        back.published, 0,
        "an item back with its version is not published again: {back:?}"
    );
    let missing = poll_serving(h, server, scenario, true, "with one item missing again").await;
    assert_eq!(missing.published, 0, "the count started again: {missing:?}");
    let removed = poll_serving(h, server, scenario, true, "after a removal").await;
    assert_eq!(removed.published, 1, "one removal signal: {removed:?}");
    let all = h.published();
    let gone = all.last().unwrap_or_else(|| panic!("an entry"));
    assert_eq!(signal_json(gone)["change"], "removed");
    assert!(
        all[..all.len() - 1]
            .iter()
            .filter(|e| e.external_id == gone.external_id)
            .all(|e| e.dedup_id != gone.dedup_id),
        "a removal's dedup_id differs from the item's earlier signals"
    );
    let state = h
        .backend
        .load(&config.name)
        .await
        .unwrap_or_else(|e| panic!("state: {e}"));
    let versions: Vec<&String> = state
        .all_streams()
        .flat_map(|(_, s)| s.versions.keys())
        .collect();
    assert_eq!(
        versions.len(),
        n - 1,
        "the removed item's version is pruned"
    );
    assert!(
        !versions.contains(&&gone.external_id),
        "the removed item's version is gone"
    );
    let quiet = poll_serving(h, server, scenario, true, "after a removal").await;
    assert_eq!(quiet.published, 0, "a removal is published once");
}

/// Whether a request a mock received carries the AWS Signature V4 `signer` computes for
/// what arrived, checked as AWS checks it: over the headers the signature names (the
/// signer's own aside), at the request's `x-amz-date`. Mocks of AWS APIs match on it.
pub fn aws_signature_verifies(
    request: &wiremock::Request,
    signer: &crate::http::auth::SigV4,
) -> bool {
    let header = |k: &str| {
        request
            .headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let got = header("authorization");
    let signed: Vec<&str> = got
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .map(|s| s.split(';').collect())
        .unwrap_or_default();
    let date = format!("{}+0000", header("x-amz-date").trim_end_matches('Z'));
    let Ok(at) = jiff::Timestamp::strptime("%Y%m%dT%H%M%S%z", date) else {
        return false;
    };
    let Ok(secs) = u64::try_from(at.as_second()) else {
        return false;
    };
    let pairs: Vec<(&str, &str)> = request
        .headers
        .iter()
        .filter(|(k, _)| {
            signed.contains(&k.as_str())
                && !matches!(k.as_str(), "x-amz-date" | "x-amz-security-token" | "host")
        })
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
        .collect();
    // The URL as sent: wiremock's own names no port.
    let query = request
        .url
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let sent = format!("http://{}{}{query}", header("host"), request.url.path());
    let time = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    let want = signer
        .headers(request.method.as_str(), &sent, &pairs, &request.body, time)
        .ok()
        .and_then(|h| h.into_iter().find(|(k, _)| k == "authorization"))
        .and_then(|(_, v)| v.to_str().ok().map(str::to_owned));
    signed.contains(&"host") && want.is_some_and(|w| w == got)
}
