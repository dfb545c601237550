//! A Redis outage mid-run: operations fail with a backend error (no panic), and the same
//! client carries on once the server is back, without duplicating anything.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    ItemsProvider, RedisServer, config_for, free_port, inspector_at, items_body, settings,
    stream_entries, unique_prefix,
};
use connector_core::Factories;
use connector_core::pipeline::PollError;
use connector_core::ports::{MetricsStore, StateStore};
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
    let mut ids: Vec<String> =
        stream_entries(&inspect, &backend.keys().stream("raw-input-signals"))
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
