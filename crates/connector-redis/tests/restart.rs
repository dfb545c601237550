//! Redis failures mid-run: operations fail with a backend error (no panic), the same client
//! carries on once the server is back, and nothing is appended twice, not even when a
//! commit ran but its reply was lost.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    ItemsProvider, RedisServer, config_for, free_port, inspector_at, items_body, settings,
    stream_entries, unique_prefix,
};
use common::{ReplyCutter, entry};
use connector_core::Factories;
use connector_core::pipeline::PollError;
use connector_core::ports::{
    CommitChunk, CommitOutcome, LeaseManager, MetricsStore, Publisher, StateDelta, StateStore,
};
use connector_redis::RedisBackend;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn serve(server: &MockServer, ids: &[&str]) {
    server.reset().await;
    Mock::given(method("GET"))
        .and(path("/items"))
        .respond_with(ResponseTemplate::new(200).set_body_string(items_body(ids, &[])))
        .mount(server)
        .await;
}

#[tokio::test]
async fn polls_fail_during_a_redis_restart_and_resume_on_the_same_client_without_duplicates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut redis = RedisServer::start(dir.path(), None).await;
    let port = redis.port;
    let url = redis.url();
    let prefix = unique_prefix("restart");
    let backend = RedisBackend::connect(
        settings(&url, &prefix)
            .with_command_timeout(Duration::from_millis(800))
            .with_reconnect_delays(Duration::from_millis(20), Duration::from_millis(200)),
    )
    .await
    .expect("connect to the test's own server");
    let backends = backend.backends();

    let http = MockServer::start().await;
    let mut factories = Factories::new();
    factories.register::<ItemsProvider>();
    let mut connector = factories
        .create(
            Arc::new(config_for("restart", &http.uri())),
            backends.clone(),
        )
        .expect("create");
    let lease = backends
        .leases
        .acquire("restart", "me", Duration::from_secs(120))
        .await
        .expect("backend")
        .expect("free");

    serve(&http, &["a", "b", "c"]).await;
    assert_eq!(
        connector
            .poll(&lease)
            .await
            .expect("before the outage")
            .published,
        3
    );

    redis.kill().await;
    serve(&http, &["a", "b", "c", "d"]).await;
    let during = connector.poll(&lease).await;
    assert!(matches!(during, Err(PollError::Backend(_))), "{during:?}");
    let load = backend.load("restart").await;
    assert!(load.is_err(), "state is unreachable too: {load:?}");
    assert!(backend.ping().await.is_err());

    // The same port and data directory: the append-only file brings back the stream, the
    // state and the lease (its expiry is stored as an absolute time).
    let _redis = RedisServer::start(dir.path(), Some(port)).await;
    let after = connector.poll(&lease).await.expect("after the restart");
    assert_eq!(
        after.published, 1,
        "only the item the failed poll could not commit"
    );
    assert_eq!(after.skipped_unchanged, 3);

    let inspect = inspector_at(&url).await;
    let mut ids: Vec<String> = stream_entries(
        &inspect,
        &common::layout(&backend).stream("raw-input-signals"),
    )
    .await
    .into_iter()
    .map(|e| e.external_id)
    .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["a", "b", "c", "d"],
        "each signal exactly once across the restart"
    );
    let m = backend
        .get("restart")
        .await
        .expect("metrics")
        .expect("recorded");
    assert_eq!(
        m.successful_polls, 2,
        "the failed poll could not be recorded: {m:?}"
    );
    backend.close().await;
}

#[tokio::test]
async fn connecting_to_nothing_fails_with_a_message_and_no_password() {
    let url = format!("redis://operator:hunter2@127.0.0.1:{}", free_port());
    let err = RedisBackend::connect(settings(&url, "x"))
        .await
        .expect_err("nothing listens there");
    let message = err.to_string();
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(
        !message.contains("hunter2") && !message.contains("operator"),
        "{message}"
    );
}

#[tokio::test]
async fn a_commit_whose_reply_is_lost_is_never_resent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = RedisServer::start(dir.path(), None).await;
    let upstream = format!("127.0.0.1:{}", redis.port).parse().expect("addr");
    let proxy = ReplyCutter::start(upstream).await;
    let prefix = unique_prefix("cut");
    let backend = RedisBackend::connect(
        settings(&proxy.url(), &prefix)
            .with_reconnect_delays(Duration::from_millis(10), Duration::from_millis(100)),
    )
    .await
    .expect("connect through the proxy");
    let lease = backend
        .acquire("cut", "me", Duration::from_secs(60))
        .await
        .expect("backend")
        .expect("free");
    let chunk = |ids: &[&str], seq: u64| CommitChunk {
        stream: "raw-input-signals".into(),
        stream_max_len: None,
        entries: ids.iter().map(|id| entry("cut", id, "1")).collect(),
        delta: StateDelta {
            upserts: ids
                .iter()
                .map(|id| ((*id).to_owned(), "1".to_owned()))
                .collect(),
            ..StateDelta::default()
        },
        seq,
    };

    proxy.arm();
    let lost = backend.commit(&lease, &chunk(&["a", "b"], 0)).await;
    assert!(lost.is_err(), "the reply never came: {lost:?}");
    // Anything fred would resend goes out on reconnection, before this next commit.
    assert_eq!(
        backend
            // The write count after the lost-reply commit, as the pipeline reloads it.
            .commit(&lease, &chunk(&["c"], 1))
            .await
            .expect("next commit"),
        CommitOutcome::Committed
    );

    let inspect = inspector_at(&redis.url()).await;
    let ids: Vec<String> = stream_entries(
        &inspect,
        &common::layout(&backend).stream("raw-input-signals"),
    )
    .await
    .into_iter()
    .map(|e| e.external_id)
    .collect();
    assert_eq!(
        ids,
        ["a", "b", "c"],
        "the lost-reply commit ran once, and only once"
    );
    let state = backend.load("cut").await.expect("load");
    assert_eq!(
        state.main.versions.len(),
        3,
        "its versions are there for the pipeline to reload"
    );
}

/// A Redis of the test's own and a backend reaching it through a gate, with short
/// timeouts: the server's directory, the server, the gate, the backend.
async fn behind_a_gate(
    prefix: &str,
    timeout: Duration,
) -> (
    tempfile::TempDir,
    RedisServer,
    common::Gate,
    Arc<RedisBackend>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let redis = RedisServer::start(dir.path(), None).await;
    let gate = common::Gate::start(([127, 0, 0, 1], redis.port).into()).await;
    let url = format!("redis://127.0.0.1:{}", gate.port);
    let backend = RedisBackend::connect(
        settings(&url, prefix)
            .with_command_timeout(timeout)
            .with_connect_timeout(timeout)
            .with_reconnect_delays(Duration::from_millis(10), Duration::from_millis(100)),
    )
    .await
    .expect("connect through the gate");
    (dir, redis, gate, backend)
}

/// A connection that stops answering while it stays open (a proxy that black-holes it, as
/// a network partition looks) is replaced within about twice the command timeout, though
/// commands keep being written to it.
#[tokio::test]
async fn a_black_holed_connection_is_replaced_within_twice_the_command_timeout() {
    let timeout = Duration::from_millis(400);
    let (_dir, _redis, gate, backend) = behind_a_gate("blackhole", timeout).await;
    backend.ping().await.expect("ping");
    gate.accepted(1).await;
    gate.hold();
    let held = std::time::Instant::now();
    // Commands keep being written to the silent connection, as lease renewals are.
    let writer = {
        let backend = backend.clone();
        tokio::spawn(async move {
            loop {
                let _ = backend.ping().await;
            }
        })
    };
    tokio::time::timeout(Duration::from_secs(30), gate.accepted(2))
        .await
        .expect("a new connection is opened");
    let replaced = held.elapsed();
    writer.abort();
    gate.open();
    eprintln!("black-holed connection replaced after {replaced:?} (command timeout {timeout:?})");
    assert!(
        replaced <= timeout * 2 + Duration::from_secs(3),
        "replaced after {replaced:?}, more than twice the command timeout ({timeout:?}) and 3 s of scheduling slack (it took 35 s and more before the watch)"
    );
    let mut answered = false;
    for _ in 0..50 {
        if backend.ping().await.is_ok() {
            answered = true;
            break;
        }
    }
    assert!(answered, "the replacement connection answers");
    backend.close().await;
}

/// Liveness fails only for a wedged client: its connection unanswered past twice the
/// command timeout while a fresh connection to the same server is answered. A Redis that
/// answers nobody is an outage (readiness), not a wedge.
#[tokio::test]
async fn only_a_wedged_client_fails_liveness_not_an_unreachable_redis() {
    use connector_core::ports::Membership;
    let timeout = Duration::from_millis(300);
    let (_dir, _redis, gate, backend) = behind_a_gate("wedged", timeout).await;
    assert_eq!(backend.wedged().await, None, "answering");
    gate.hold();
    // The watch gives up on the silent connection; its new one is held too.
    gate.accepted(2).await;
    assert_eq!(
        backend.wedged().await,
        None,
        "nobody is answered: an outage, not a wedge"
    );
    // Now a fresh connection is answered while the client's stay silent.
    gate.pass_new();
    let wedged = backend.wedged().await;
    let why = wedged.expect("a client unanswered while a fresh connection is answered is wedged");
    assert!(why.contains("fresh connection"), "{why}");
    assert!(!why.contains("wedged:"), "{why}");
    backend.close().await;
}
