//! The generic pipeline end to end: an in-test provider against a wiremock server, on the
//! embedded backend.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use connector_core::Backends;
use connector_core::embedded::EmbeddedBackend;
use connector_core::pipeline::PollError;
use connector_core::ports::{
    BackendError, BoxFuture, CommitChunk, CommitOutcome, Lease, MetricsStore, Publisher, StateStore,
};
use connector_core::testing::items::{ItemsProvider, config_for, items_body};
use connector_core::testing::{Harness, Scenario, run_contract};
use connector_core::{ConnectorConfig, Factories};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const IDS: [&str; 3] = ["a", "b", "c"];

async fn serve(server: &MockServer, body: String) {
    Mock::given(method("GET"))
        .and(path("/items"))
        .respond_with(ResponseTemplate::new(200).set_body_string(body))
        .mount(server)
        .await;
}

struct Items;

impl Scenario for Items {
    async fn serve_baseline(&self, server: &MockServer) -> usize {
        serve(server, items_body(&IDS, &[])).await;
        IDS.len()
    }
    async fn serve_one_changed(&self, server: &MockServer) {
        serve(server, items_body(&IDS, &["b"])).await;
    }
    async fn serve_failure(&self, server: &MockServer) {
        serve(server, "<html>upstream error</html>".into()).await;
    }
    async fn serve_one_removed(&self, server: &MockServer) {
        serve(server, items_body(&["a", "b"], &["b"])).await;
    }
}

#[tokio::test]
async fn the_in_test_provider_meets_the_contract() {
    let server = MockServer::start().await;
    run_contract::<ItemsProvider>(config_for("contract", &server.uri()), &server, &Items).await;
}

#[tokio::test]
async fn large_polls_commit_in_chunks_of_commit_batch_size() {
    let server = MockServer::start().await;
    let ids: Vec<String> = (0..5).map(|i| format!("i{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    serve(&server, items_body(&refs, &[])).await;
    let mut cfg = config_for("chunks", &server.uri());
    cfg.commit_batch_size = 2;
    let mut h = Harness::new::<ItemsProvider>(cfg).await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((s.published, s.commits), (5, 3));
    let state = h.backend.load("chunks").await.expect("state");
    assert_eq!(state.main.versions.len(), 5);
}

#[tokio::test]
async fn a_zombie_instance_is_fenced_and_writes_nothing() {
    let server = MockServer::start().await;
    serve(&server, items_body(&IDS, &[])).await;
    let mut h = Harness::new::<ItemsProvider>(config_for("zombie", &server.uri())).await;
    // Another instance takes over while this one is "paused".
    h.backend
        .steal_lease("zombie", "instance-b", Duration::from_secs(30));
    let result = h.connector.poll(&h.lease).await;
    assert!(
        matches!(result, Err(PollError::Fenced { .. })),
        "{result:?}"
    );
    assert!(h.published().is_empty());
    let state = h.backend.load("zombie").await.expect("state");
    assert!(state.main.versions.is_empty());
}

#[tokio::test]
async fn not_modified_costs_nothing_and_validators_are_sent_back() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/items"))
        .and(header("if-none-match", "\"v1\""))
        .respond_with(ResponseTemplate::new(304))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/items"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "\"v1\"")
                .set_body_string(items_body(&IDS, &[])),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut h = Harness::new::<ItemsProvider>(config_for("etag", &server.uri())).await;
    let first = h.connector.poll(&h.lease).await.expect("first");
    assert_eq!(first.published, 3);
    let state = h.backend.load("etag").await.expect("state");
    assert_eq!(state.main.cursor.etag.as_deref(), Some("\"v1\""));
    let second = h.connector.poll(&h.lease).await.expect("second");
    assert!(second.not_modified);
    assert_eq!(second.published, 0);
    assert_eq!(h.published().len(), 3);
}

/// Commits through the embedded backend but fails the `fail_at`-th call, as a crash or a
/// lost connection between chunks would.
struct FailingPublisher {
    inner: Arc<EmbeddedBackend>,
    calls: AtomicUsize,
    fail_at: usize,
}

impl Publisher for FailingPublisher {
    fn commit<'a>(
        &'a self,
        lease: &'a Lease,
        chunk: &'a CommitChunk,
    ) -> BoxFuture<'a, Result<CommitOutcome, BackendError>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at {
            return Box::pin(async { Err(BackendError::new("commit", "connection reset")) });
        }
        self.inner.commit(lease, chunk)
    }
}

#[tokio::test]
async fn a_commit_interrupted_between_chunks_publishes_only_the_rest_next_time() {
    let server = MockServer::start().await;
    let ids: Vec<String> = (0..6).map(|i| format!("i{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    serve(&server, items_body(&refs, &[])).await;
    let mut cfg: ConnectorConfig = config_for("interrupted", &server.uri());
    cfg.commit_batch_size = 2;
    let backend = Arc::new(EmbeddedBackend::in_memory());
    let mut backends = Backends::from_one(backend.clone());
    backends.publisher = Arc::new(FailingPublisher {
        inner: backend.clone(),
        calls: AtomicUsize::new(0),
        fail_at: 2,
    });
    let mut factories = Factories::new();
    factories.register::<ItemsProvider>();
    let mut connector = factories
        .create(Arc::new(cfg), backends.clone())
        .expect("create");
    let lease = backends
        .leases
        .acquire("interrupted", "me", Duration::from_secs(60))
        .await
        .expect("backend")
        .expect("free");
    let first = connector.poll(&lease).await;
    assert!(matches!(first, Err(PollError::Backend(_))), "{first:?}");
    assert_eq!(
        backend.published().len(),
        2,
        "the first chunk stays committed"
    );
    let second = connector.poll(&lease).await.expect("retry poll");
    assert_eq!(second.published, 4, "only what was not committed");
    assert_eq!(second.skipped_unchanged, 2);
    let mut seen: Vec<String> = backend
        .published()
        .into_iter()
        .map(|(_, e)| e.external_id)
        .collect();
    seen.sort();
    assert_eq!(seen, ids, "each signal exactly once");
}

#[tokio::test]
async fn metrics_follow_each_poll() {
    let server = MockServer::start().await;
    let mut h = Harness::new::<ItemsProvider>(config_for("metrics", &server.uri())).await;
    serve(&server, items_body(&IDS, &[])).await;
    h.connector.poll(&h.lease).await.expect("ok");
    server.reset().await;
    serve(&server, "not json".into()).await;
    assert!(h.connector.poll(&h.lease).await.is_err());
    let m = h.backend.get("metrics").await.expect("get").expect("some");
    assert_eq!(
        (m.total_polls, m.successful_polls, m.failed_polls),
        (2, 1, 1)
    );
    assert_eq!((m.items_fetched, m.items_published), (3, 3));
    assert!(m.last_success_time.is_some() && m.last_poll_time >= m.last_success_time);
}

#[tokio::test]
async fn a_dry_run_shows_signals_and_writes_nothing() {
    let server = MockServer::start().await;
    serve(&server, items_body(&IDS, &[])).await;
    let mut h = Harness::new::<ItemsProvider>(config_for("dry", &server.uri())).await;
    let preview = h.connector.preview().await.expect("preview");
    assert_eq!(preview.entries.len(), 3);
    assert_eq!(preview.summary.published, 3);
    assert!(h.published().is_empty());
    assert!(
        h.backend
            .load("dry")
            .await
            .expect("state")
            .main
            .versions
            .is_empty()
    );
}

#[tokio::test]
async fn state_kept_in_a_folder_survives_a_restart() {
    let server = MockServer::start().await;
    serve(&server, items_body(&IDS, &[])).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = Arc::new(config_for("persist", &server.uri()));
    let mut factories = Factories::new();
    factories.register::<ItemsProvider>();
    for (run, expected) in [(1, 3), (2, 0)] {
        let backend = Arc::new(EmbeddedBackend::in_memory_with_state(Some(
            dir.path().to_owned(),
        )));
        let backends = Backends::from_one(backend);
        let mut c = factories
            .create(cfg.clone(), backends.clone())
            .expect("create");
        let lease = backends
            .leases
            .acquire("persist", "me", Duration::from_secs(60))
            .await
            .expect("backend")
            .expect("free");
        let s = c.poll(&lease).await.expect("poll");
        assert_eq!(s.published, expected, "run {run}");
    }
    assert!(dir.path().join("persist.state.json").is_file());
}

/// Polls once with the server answering `ids` (all at version 1).
async fn poll_with(h: &mut Harness, server: &MockServer, ids: &[&str]) -> (u64, u64) {
    server.reset().await;
    serve(server, items_body(ids, &[])).await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    (s.published, s.removed)
}

#[tokio::test]
async fn a_snapshot_item_that_flaps_is_not_published_again() {
    let server = MockServer::start().await;
    // Without emitRemovals, the default: a missing item's version is kept for a day.
    let mut h = Harness::new::<ItemsProvider>(config_for("flap", &server.uri())).await;
    assert_eq!(poll_with(&mut h, &server, &IDS).await, (3, 0));
    assert_eq!(poll_with(&mut h, &server, &["a", "b"]).await, (0, 0));
    let state = h.backend.load("flap").await.expect("state");
    assert!(
        state.main.versions.contains_key("c") && state.main.absent.contains_key("c"),
        "c's version is kept, marked missing: {state:?}"
    );
    assert_eq!(
        poll_with(&mut h, &server, &IDS).await,
        (0, 0),
        "c came back with its version: nothing to publish"
    );
    let state = h.backend.load("flap").await.expect("state");
    assert!(state.main.absent.is_empty(), "c is no longer missing");
    assert_eq!(h.published().len(), 3);
}

#[tokio::test]
async fn with_no_removal_grace_a_vanished_item_is_forgotten_at_once() {
    let server = MockServer::start().await;
    let mut cfg = config_for("no-grace", &server.uri());
    cfg.removal_grace_ms = 0;
    let mut h = Harness::new::<ItemsProvider>(cfg).await;
    assert_eq!(poll_with(&mut h, &server, &IDS).await, (3, 0));
    assert_eq!(poll_with(&mut h, &server, &["a", "b"]).await, (0, 1));
    let state = h.backend.load("no-grace").await.expect("state");
    assert!(!state.main.versions.contains_key("c") && state.main.absent.is_empty());
    assert_eq!(
        poll_with(&mut h, &server, &IDS).await,
        (1, 0),
        "forgotten, so published again as created"
    );
    let last = h.published().pop().expect("an entry");
    let signal: serde_json::Value = serde_json::from_str(&last.signal).expect("JSON");
    assert_eq!(signal["change"], "created");
}

#[tokio::test]
async fn with_emit_removals_an_item_is_removed_after_the_grace_polls_and_created_on_return() {
    let server = MockServer::start().await;
    let mut cfg = config_for("grace-polls", &server.uri());
    cfg.emit_removals = true;
    cfg.removal_grace_polls = 3;
    let mut h = Harness::new::<ItemsProvider>(cfg).await;
    assert_eq!(poll_with(&mut h, &server, &IDS).await, (3, 0));
    assert_eq!(poll_with(&mut h, &server, &["a", "b"]).await, (0, 0));
    assert_eq!(poll_with(&mut h, &server, &["a", "b"]).await, (0, 0));
    let state = h.backend.load("grace-polls").await.expect("state");
    assert_eq!(state.main.absent["c"].polls, 2);
    // The third complete read in a row without it: removed.
    assert_eq!(poll_with(&mut h, &server, &["a", "b"]).await, (1, 1));
    assert_eq!(poll_with(&mut h, &server, &["a", "b"]).await, (0, 0));
    // Back after its removal: a new item.
    assert_eq!(poll_with(&mut h, &server, &IDS).await, (1, 0));
    let changes: Vec<String> = h
        .published()
        .iter()
        .filter(|e| e.external_id == "c")
        .map(|e| {
            let s: serde_json::Value = serde_json::from_str(&e.signal).expect("JSON");
            s["change"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(changes, ["created", "removed", "created"]);
}

#[tokio::test]
async fn a_missing_item_is_forgotten_once_its_removal_grace_has_passed() {
    let server = MockServer::start().await;
    let mut h = Harness::new::<ItemsProvider>(config_for("expiry", &server.uri())).await;
    assert_eq!(poll_with(&mut h, &server, &IDS).await, (3, 0));
    assert_eq!(poll_with(&mut h, &server, &["a", "b"]).await, (0, 0));
    // Missing since two days ago, as if the day's grace had passed meanwhile.
    let two_days_ago = connector_core::pipeline::now_ms() - 2 * 86_400_000;
    h.backend
        .apply(
            "expiry",
            &connector_core::ports::StateDelta {
                absences: vec![(
                    "c".into(),
                    Some(connector_core::ports::Absence {
                        since_ms: two_days_ago,
                        polls: 1,
                    }),
                )],
                ..Default::default()
            },
        )
        .await
        .expect("state");
    // A new process reads the state as it is now.
    let mut h =
        Harness::on::<ItemsProvider>(config_for("expiry", &server.uri()), h.backend.clone(), None)
            .await;
    assert_eq!(
        poll_with(&mut h, &server, &["a", "b"]).await,
        (0, 1),
        "pruned now"
    );
    let state = h.backend.load("expiry").await.expect("state");
    assert!(!state.main.versions.contains_key("c") && state.main.absent.is_empty());
}

/// Polls once and returns the external ids it published, sorted.
async fn published_by(h: &mut Harness) -> Vec<String> {
    let before = h.published().len();
    h.connector.poll(&h.lease).await.expect("poll");
    let mut ids: Vec<String> = h.published()[before..]
        .iter()
        .map(|e| format!("{}@{}", e.external_id, e.version))
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_state_that_lost_writes_republishes_exactly_what_it_lacks() {
    let server = MockServer::start().await;
    let mut cfg = config_for("lossy", &server.uri());
    cfg.commit_batch_size = 1;
    let mut h = Harness::new::<ItemsProvider>(cfg).await;
    serve(&server, items_body(&IDS, &[])).await;
    assert_eq!(published_by(&mut h).await.len(), 3);
    // What a replica k commits behind holds.
    let older = h.backend.load_state("lossy");
    server.reset().await;
    serve(&server, items_body(&["a", "b", "c", "d", "e"], &["b"])).await;
    assert_eq!(
        published_by(&mut h).await,
        ["b@2", "d@1", "e@1"],
        "three more commits"
    );
    assert!(h.connector.take_state_loss().is_none());
    // The replica is promoted: the three commits are gone, the lease and token survive.
    h.backend.replace_state("lossy", older.clone());
    assert_eq!(
        published_by(&mut h).await,
        ["b@2", "d@1", "e@1"],
        "exactly what the promoted state lacks, nothing else"
    );
    let loss = h.connector.take_state_loss().expect("the loss is reported");
    assert_eq!(loss.stored, older.header.seq);
    assert!(loss.written > loss.stored, "{loss:?}");
    assert_eq!(published_by(&mut h).await, Vec::<String>::new(), "once");
}

/// The items with an ETag; whoever sends that validator back gets a 304 and sees nothing.
async fn conditional_items() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/items"))
        .and(header("if-none-match", "\"v1\""))
        .respond_with(ResponseTemplate::new(304))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/items"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "\"v1\"")
                .set_body_string(items_body(&IDS, &[])),
        )
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn after_a_loss_no_stored_validator_hides_what_was_lost() {
    let server = conditional_items().await;
    let mut h = Harness::new::<ItemsProvider>(config_for("stale", &server.uri())).await;
    assert_eq!(published_by(&mut h).await.len(), 3);
    assert!(published_by(&mut h).await.is_empty(), "a 304");
    // A lagging replica kept the validator but not the version of "c", and its write
    // count is behind.
    let mut lagging = h.backend.load_state("stale");
    lagging.main.versions.remove("c");
    lagging.header.seq -= 1;
    h.backend.replace_state("stale", lagging);
    assert_eq!(published_by(&mut h).await, ["c@1"]);
    assert!(h.connector.take_state_loss().is_some());
}

#[tokio::test]
async fn a_forgotten_state_is_read_again_without_its_validators() {
    let server = conditional_items().await;
    let mut h = Harness::new::<ItemsProvider>(config_for("forget", &server.uri())).await;
    assert_eq!(published_by(&mut h).await.len(), 3);
    // Redis emptied with the fence counter (the runtime saw the token not advance).
    h.backend
        .replace_state("forget", connector_core::ports::ConnectorState::default());
    h.connector.forget_state();
    assert_eq!(published_by(&mut h).await.len(), 3, "everything, once");
    assert!(published_by(&mut h).await.is_empty());
}

#[tokio::test]
async fn a_state_written_by_a_later_release_stops_the_connector() {
    let server = MockServer::start().await;
    serve(&server, items_body(&IDS, &[])).await;
    let mut h = Harness::new::<ItemsProvider>(config_for("future", &server.uri())).await;
    let mut later = connector_core::ports::ConnectorState::default();
    later.header.format = connector_core::ports::STATE_FORMAT + 1;
    h.backend.replace_state("future", later);
    let result = h.connector.poll(&h.lease).await;
    let Err(e @ PollError::StateLayout(_)) = result else {
        panic!("{result:?}");
    };
    assert!(e.to_string().contains("written by a later release"), "{e}");
    assert!(h.published().is_empty(), "nothing published again");
}

#[tokio::test]
async fn a_state_folder_written_before_the_header_existed_is_read_as_it_is() {
    let server = MockServer::start().await;
    serve(&server, items_body(&["a", "b", "c", "d"], &[])).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // A state file as the previous release wrote it (no header).
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/state-layout-1.json"
        ),
        dir.path().join("legacy.state.json"),
    )
    .expect("fixture");
    let backend = Arc::new(EmbeddedBackend::in_memory_with_state(Some(
        dir.path().to_owned(),
    )));
    let mut h =
        Harness::on::<ItemsProvider>(config_for("legacy", &server.uri()), backend.clone(), None)
            .await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((s.published, s.skipped_unchanged), (1, 3), "only d is new");
    let state = backend.load_state("legacy");
    assert_eq!(state.header.format, connector_core::ports::STATE_FORMAT);
    assert_eq!(state.header.seq, 1);
    assert_eq!(state.main.versions.len(), 4);
}

/// Commits through the embedded backend and reports every commit as acknowledged by no
/// replica (`REDIS_WAIT_REPLICAS=1` with the replica gone).
struct Unreplicated(Arc<EmbeddedBackend>);

impl Publisher for Unreplicated {
    fn commit<'a>(
        &'a self,
        lease: &'a Lease,
        chunk: &'a CommitChunk,
    ) -> BoxFuture<'a, Result<CommitOutcome, BackendError>> {
        Box::pin(async move {
            match self.0.commit(lease, chunk).await? {
                CommitOutcome::Committed => Ok(CommitOutcome::UnderReplicated {
                    acked: 0,
                    wanted: 1,
                }),
                other => Ok(other),
            }
        })
    }
}

#[tokio::test]
async fn a_commit_short_of_replicas_is_kept_and_the_poll_stops_there() {
    let server = MockServer::start().await;
    serve(&server, items_body(&IDS, &[])).await;
    let mut cfg = config_for("unreplicated", &server.uri());
    cfg.commit_batch_size = 1;
    let backend = Arc::new(EmbeddedBackend::in_memory());
    let mut backends = Backends::from_one(backend.clone());
    backends.publisher = Arc::new(Unreplicated(backend.clone()));
    let mut factories = Factories::new();
    factories.register::<ItemsProvider>();
    let mut connector = factories
        .create(Arc::new(cfg.clone()), backends.clone())
        .expect("create");
    let lease = backends
        .leases
        .acquire("unreplicated", "me", Duration::from_secs(60))
        .await
        .expect("backend")
        .expect("free");
    let first = connector.poll(&lease).await;
    assert!(
        matches!(
            first,
            Err(PollError::UnderReplicated {
                acked: 0,
                wanted: 1
            })
        ),
        "{first:?}"
    );
    assert_eq!(backend.published().len(), 1, "kept, and nothing after it");
    // With the replicas back, the next poll goes on from there: each item once.
    let mut healthy = factories
        .create(Arc::new(cfg), Backends::from_one(backend.clone()))
        .expect("create");
    let s = healthy.poll(&lease).await.expect("poll");
    assert_eq!((s.published, s.skipped_unchanged), (2, 1));
}

#[tokio::test]
async fn a_loss_met_after_the_cache_was_dropped_is_still_said() {
    let server = MockServer::start().await;
    serve(&server, items_body(&IDS, &[])).await;
    let mut cfg = config_for("dropped", &server.uri());
    cfg.commit_batch_size = 1;
    let mut h = Harness::new::<ItemsProvider>(cfg).await;
    assert_eq!(published_by(&mut h).await.len(), 3);
    let mut older = h.backend.load_state("dropped");
    // The lease was lost (the cache goes), and the state came back older.
    h.connector.forget_state();
    older.main.versions.remove("c");
    older.header.seq -= 1;
    h.backend.replace_state("dropped", older);
    assert_eq!(published_by(&mut h).await, ["c@1"]);
    assert!(
        h.connector.take_state_loss().is_some(),
        "said, though no cached state was there to compare"
    );
}
