//! The real pipeline (`UniversalPollingConnector` through `Factories`) on the Redis
//! backend: interrupted commits, metrics and health.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    ItemsProvider, backend, config_for, inspector, items_body, stream_entries, unique_prefix,
};
use connector_core::pipeline::{PollError, now_ms};
use connector_core::ports::{
    BackendError, BoxFuture, CommitChunk, CommitOutcome, ConnectorMetrics, Lease, MetricsStore,
    PollRecord, Publisher, StateStore,
};
use connector_core::{Factories, PollSummary};
use connector_redis::RedisBackend;
use fred::prelude::HashesInterface;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn serve(server: &MockServer, body: String) {
    server.reset().await;
    Mock::given(method("GET"))
        .and(path("/items"))
        .respond_with(ResponseTemplate::new(200).set_body_string(body))
        .mount(server)
        .await;
}

/// When the `fail_at`-th commit fails, relative to Redis.
#[derive(Clone, Copy, Debug)]
enum Failure {
    /// The connection dropped before the commit reached Redis: nothing of it applied.
    Before,
    /// The commit ran but its reply was lost: applied, yet reported as an error.
    After,
}

/// Commits through Redis but fails the `fail_at`-th call, as a lost connection would.
struct FailingPublisher {
    inner: Arc<RedisBackend>,
    calls: AtomicUsize,
    fail_at: usize,
    failure: Failure,
}

impl Publisher for FailingPublisher {
    fn commit<'a>(
        &'a self,
        lease: &'a Lease,
        chunk: &'a CommitChunk,
    ) -> BoxFuture<'a, Result<CommitOutcome, BackendError>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            if n != self.fail_at {
                return self.inner.commit(lease, chunk).await;
            }
            if let Failure::After = self.failure {
                self.inner.commit(lease, chunk).await?;
            }
            Err(BackendError::new("commit", "connection reset"))
        })
    }
}

async fn interrupted_commit_publishes_each_signal_once(failure: Failure, fail_at: usize) {
    let prefix = unique_prefix("interrupted");
    let name = "interrupted";
    let server = MockServer::start().await;
    let ids: Vec<String> = (0..7).map(|i| format!("i{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    serve(&server, items_body(&refs, &[])).await;
    let mut cfg = config_for(name, &server.uri());
    cfg.commit_batch_size = 2;

    let redis_backend = backend(&prefix).await;
    let mut backends = redis_backend.backends();
    backends.publisher = Arc::new(FailingPublisher {
        inner: redis_backend.clone(),
        calls: AtomicUsize::new(0),
        fail_at,
        failure,
    });
    let mut factories = Factories::new();
    factories.register::<ItemsProvider>();
    let mut connector = factories
        .create(Arc::new(cfg), backends.clone())
        .expect("create");
    let lease = backends
        .leases
        .acquire(name, "me", Duration::from_secs(60))
        .await
        .expect("backend")
        .expect("free");

    let first = connector.poll(&lease).await;
    assert!(matches!(first, Err(PollError::Backend(_))), "{first:?}");
    let redis = inspector().await;
    let stream = common::layout(&redis_backend).stream("raw-input-signals");
    let committed_chunks = match failure {
        Failure::Before => fail_at - 1,
        Failure::After => fail_at,
    };
    assert_eq!(
        stream_entries(&redis, &stream).await.len(),
        committed_chunks * 2,
        "chunks committed before the failure stay committed"
    );

    let second = connector.poll(&lease).await.expect("retry poll");
    assert_eq!(
        second.published as usize,
        ids.len() - committed_chunks * 2,
        "only the rest"
    );
    assert_eq!(second.skipped_unchanged as usize, committed_chunks * 2);

    let mut seen: Vec<String> = stream_entries(&redis, &stream)
        .await
        .into_iter()
        .map(|e| e.external_id)
        .collect();
    seen.sort();
    assert_eq!(seen, ids, "each signal exactly once");
    let state = redis_backend.load(name).await.expect("state");
    assert_eq!(
        state.main.versions.len(),
        ids.len(),
        "every version recorded"
    );
    assert!(state.main.versions.values().all(|v| v == "1"));

    let third = connector.poll(&lease).await.expect("repeat poll");
    assert_eq!(third.published, 0, "nothing new: {third:?}");
}

#[tokio::test]
async fn a_commit_lost_before_reaching_redis_publishes_only_the_rest_next_time() {
    for fail_at in [1, 2, 4] {
        interrupted_commit_publishes_each_signal_once(Failure::Before, fail_at).await;
    }
}

#[tokio::test]
async fn a_commit_whose_reply_was_lost_is_not_published_again() {
    for fail_at in [1, 3] {
        interrupted_commit_publishes_each_signal_once(Failure::After, fail_at).await;
    }
}

#[tokio::test]
async fn polls_publish_changes_once_through_the_redis_backend() {
    let prefix = unique_prefix("changes");
    let server = MockServer::start().await;
    let redis_backend = backend(&prefix).await;
    let backends = redis_backend.backends();
    let mut cfg = config_for("changes", &server.uri());
    cfg.emit_removals = true;
    let mut factories = Factories::new();
    factories.register::<ItemsProvider>();
    let mut connector = factories
        .create(Arc::new(cfg), backends.clone())
        .expect("create");
    let lease = backends
        .leases
        .acquire("changes", "me", Duration::from_secs(60))
        .await
        .expect("backend")
        .expect("free");

    serve(&server, items_body(&["a", "b", "c"], &[])).await;
    assert_eq!(connector.poll(&lease).await.expect("first").published, 3);
    assert_eq!(connector.poll(&lease).await.expect("repeat").published, 0);
    serve(&server, items_body(&["a", "b"], &["b"])).await;
    let changed = connector.poll(&lease).await.expect("changed");
    assert_eq!(
        (changed.published, changed.removed),
        (1, 0),
        "c missing once, kept: {changed:?}"
    );
    let state = redis_backend.load("changes").await.expect("state");
    assert_eq!(state.main.absent["c"].polls, 1, "the absence is in Redis");
    let gone = connector.poll(&lease).await.expect("gone");
    assert_eq!(
        (gone.published, gone.removed),
        (1, 1),
        "missing from two reads in a row: {gone:?}"
    );

    let redis = inspector().await;
    let entries = stream_entries(
        &redis,
        &common::layout(&redis_backend).stream("raw-input-signals"),
    )
    .await;
    let changes: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            let s: serde_json::Value = serde_json::from_str(&e.signal).expect("json");
            (
                e.external_id.clone(),
                s["change"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expect = |id: &str, change: &str| (id.to_owned(), change.to_owned());
    assert_eq!(
        changes,
        [
            expect("a", "created"),
            expect("b", "created"),
            expect("c", "created"),
            expect("b", "updated"),
            expect("c", "removed"),
        ]
    );
    let state = redis_backend.load("changes").await.expect("state");
    let mut ids: Vec<&String> = state.main.versions.keys().collect();
    ids.sort();
    assert_eq!(ids, ["a", "b"]);
    assert!(
        state.main.absent.is_empty(),
        "the absence went with the version"
    );
}

#[tokio::test]
async fn metrics_follow_known_polls_as_the_embedded_reference_does() {
    let prefix = unique_prefix("metrics");
    let a = backend(&prefix).await;
    assert_eq!(a.get("m").await.expect("get"), None, "no polls, no metrics");
    assert!(
        !a.is_healthy("m", Duration::from_secs(60))
            .await
            .expect("health")
    );

    let now = now_ms();
    let records = [
        PollRecord {
            started_at_ms: now - 3_000,
            latency: Duration::from_millis(10),
            summary: Some(PollSummary {
                fetched: 5,
                published: 5,
                ..PollSummary::default()
            }),
        },
        PollRecord {
            started_at_ms: now - 2_000,
            latency: Duration::from_millis(40),
            summary: None,
        },
        PollRecord {
            started_at_ms: now - 1_000,
            latency: Duration::from_micros(25_500),
            summary: Some(PollSummary {
                fetched: 5,
                published: 1,
                skipped_unchanged: 4,
                ..PollSummary::default()
            }),
        },
    ];
    let mut reference = ConnectorMetrics::default();
    for r in &records {
        a.record("m", r).await.expect("record");
        reference.record(r);
    }
    let m = a.get("m").await.expect("get").expect("recorded");
    assert!(
        (m.average_latency_ms - reference.average_latency_ms).abs() < 0.01,
        "{m:?} vs {reference:?}"
    );
    assert_eq!(
        ConnectorMetrics {
            average_latency_ms: reference.average_latency_ms,
            ..m.clone()
        },
        reference
    );
    assert_eq!(
        (m.total_polls, m.successful_polls, m.failed_polls),
        (3, 2, 1)
    );
    assert_eq!((m.items_fetched, m.items_published), (10, 6));
    assert_eq!(m.last_poll_time, Some(now - 1_000));
    assert_eq!(m.last_success_time, Some(now - 1_000));
    assert!((m.average_latency_ms - 25.167).abs() < 0.01, "{m:?}");

    assert!(
        a.is_healthy("m", Duration::from_secs(60))
            .await
            .expect("health")
    );
    assert!(
        !a.is_healthy("m", Duration::from_millis(500))
            .await
            .expect("health"),
        "too old"
    );

    let redis = inspector().await;
    let fields: std::collections::HashMap<String, String> = redis
        .hgetall(common::layout(&a).metrics("m"))
        .await
        .expect("HGETALL");
    let mut names: Vec<&str> = fields.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut guide = connector_redis::metrics::FIELDS.to_vec();
    guide.sort_unstable();
    assert_eq!(names, guide, "exactly the guide's fields");
}

#[tokio::test]
async fn a_failing_connector_is_unhealthy_and_counted() {
    let prefix = unique_prefix("unhealthy");
    let server = MockServer::start().await;
    serve(&server, "not json".into()).await;
    let redis_backend = backend(&prefix).await;
    let backends = redis_backend.backends();
    let mut factories = Factories::new();
    factories.register::<ItemsProvider>();
    let mut connector = factories
        .create(
            Arc::new(config_for("sick", &server.uri())),
            backends.clone(),
        )
        .expect("create");
    let lease = backends
        .leases
        .acquire("sick", "me", Duration::from_secs(60))
        .await
        .expect("backend")
        .expect("free");
    assert!(connector.poll(&lease).await.is_err());
    assert!(connector.poll(&lease).await.is_err());
    let m = redis_backend
        .get("sick")
        .await
        .expect("get")
        .expect("recorded");
    assert_eq!(
        (m.total_polls, m.failed_polls, m.successful_polls),
        (2, 2, 0)
    );
    assert_eq!(m.last_success_time, None);
    assert!(m.last_poll_time.is_some());
    assert!(
        !redis_backend
            .is_healthy("sick", Duration::from_secs(3600))
            .await
            .expect("health")
    );

    serve(&server, items_body(&["a"], &[])).await;
    connector.poll(&lease).await.expect("recovered");
    assert!(
        redis_backend
            .is_healthy("sick", Duration::from_secs(3600))
            .await
            .expect("health")
    );
}

/// The ids (`id@version`) a poll published, sorted.
async fn poll_ids(
    connector: &mut Box<dyn connector_core::PollingConnector>,
    lease: &Lease,
    redis: &fred::clients::Client,
    stream: &str,
) -> Vec<String> {
    let before = stream_entries(redis, stream).await.len();
    connector.poll(lease).await.expect("poll");
    let mut ids: Vec<String> = stream_entries(redis, stream).await[before..]
        .iter()
        .map(|e| format!("{}@{}", e.external_id, e.version))
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_redis_that_lost_commits_gets_exactly_those_again() {
    use fred::prelude::{KeysInterface, StreamsInterface};
    let prefix = unique_prefix("lost-commits");
    let name = "lost-commits";
    let server = MockServer::start().await;
    let redis_backend = backend(&prefix).await;
    let backends = redis_backend.backends();
    let mut cfg = config_for(name, &server.uri());
    cfg.commit_batch_size = 1;
    let mut factories = Factories::new();
    factories.register::<ItemsProvider>();
    let mut connector = factories
        .create(Arc::new(cfg), backends.clone())
        .expect("create");
    let acquire = || async {
        backends
            .leases
            .acquire(name, "me", Duration::from_secs(60))
            .await
            .expect("backend")
            .expect("free")
    };
    let lease = acquire().await;
    let redis = inspector().await;
    let layout = common::layout(&redis_backend);
    let (state_key, stream) = (layout.state(name), layout.stream("raw-input-signals"));

    serve(&server, items_body(&["a", "b", "c"], &[])).await;
    assert_eq!(
        poll_ids(&mut connector, &lease, &redis, &stream)
            .await
            .len(),
        3
    );
    // What a replica that stopped here holds.
    let older: fred::types::Value = redis.dump(&state_key).await.expect("DUMP");
    let older_len = stream_entries(&redis, &stream).await.len();

    serve(&server, items_body(&["a", "b", "c", "d"], &["b"])).await;
    assert_eq!(
        poll_ids(&mut connector, &lease, &redis, &stream).await,
        ["b@2", "d@1"]
    );
    // The replica is promoted: its state and stream lack those two commits; the lease,
    // held through the failover, keeps its token.
    let () = redis
        .restore(&state_key, 0, older, true, false, None, None)
        .await
        .expect("RESTORE");
    let newer: Vec<String> = stream_entries_ids(&redis, &stream).await[older_len..].to_vec();
    let _: i64 = redis.xdel(&stream, newer).await.expect("XDEL");
    assert_eq!(
        poll_ids(&mut connector, &lease, &redis, &stream).await,
        ["b@2", "d@1"],
        "exactly what the promoted node lacks"
    );
    assert!(connector.take_state_loss().is_some(), "and said so");
    assert!(
        poll_ids(&mut connector, &lease, &redis, &stream)
            .await
            .is_empty()
    );

    // Redis restarted empty (every key of this namespace gone, the fence counter too):
    // the next lease has the same token, and every current item is published once.
    let keys: Vec<String> = common::keys_under(&redis, &prefix).await;
    let _: i64 = redis.del(keys).await.expect("DEL");
    let again = acquire().await;
    assert_eq!(again.token, lease.token, "the same token, handed out again");
    let republished = poll_ids(&mut connector, &again, &redis, &stream).await;
    assert_eq!(republished, ["a@1", "b@2", "c@1", "d@1"]);
    assert!(
        poll_ids(&mut connector, &again, &redis, &stream)
            .await
            .is_empty()
    );
}

async fn stream_entries_ids(redis: &fred::clients::Client, stream: &str) -> Vec<String> {
    use fred::prelude::StreamsInterface;
    let entries: Vec<(String, std::collections::HashMap<String, String>)> =
        redis.xrange(stream, "-", "+", None).await.expect("XRANGE");
    entries.into_iter().map(|(id, _)| id).collect()
}

#[tokio::test]
async fn a_state_written_before_the_header_existed_is_read_as_it_is() {
    let prefix = unique_prefix("layout1");
    let name = "layout1";
    let server = MockServer::start().await;
    let redis_backend = backend(&prefix).await;
    let backends = redis_backend.backends();
    // The state hash as the previous release wrote it: versions, no h:* fields.
    let redis = inspector().await;
    let state_key = common::layout(&redis_backend).state(name);
    let _: i64 = redis
        .hset(&state_key, vec![("v:a", "1"), ("v:b", "1"), ("v:c", "1")])
        .await
        .expect("HSET");
    let mut factories = Factories::new();
    factories.register::<ItemsProvider>();
    let mut connector = factories
        .create(Arc::new(config_for(name, &server.uri())), backends.clone())
        .expect("create");
    let lease = backends
        .leases
        .acquire(name, "me", Duration::from_secs(60))
        .await
        .expect("backend")
        .expect("free");
    serve(&server, items_body(&["a", "b", "c", "d"], &[])).await;
    let s = connector.poll(&lease).await.expect("poll");
    assert_eq!((s.published, s.skipped_unchanged), (1, 3), "only d is new");
    let state = redis_backend.load(name).await.expect("load");
    assert_eq!(
        state.header.seq, 1,
        "the header starts with the first commit"
    );
    assert_eq!(state.main.versions.len(), 4);
}
