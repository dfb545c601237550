//! A parent/child `HTTP_JSON` read on the Redis backend: each partition's state lives in
//! the state hash under its escaped key, survives a new process, and a second process
//! publishes nothing again.

use std::sync::Arc;
use std::time::Duration;

use connector_core::ConnectorConfig;
use connector_core::ports::StateStore;
use connector_redis::RedisBackend;
use connector_redis::testing::Namespace;
use fred::prelude::{ClientLike, HashesInterface};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn serve(server: &MockServer) {
    // Parent ids that are no state name as they are: a `|` ends a stream's name in the
    // hash, a `/` separates its parts.
    Mock::given(method("GET"))
        .and(path("/api/pages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": "ops|eu", "slug": "ops eu"},
            {"id": "web/main", "slug": "web"}
        ])))
        .mount(server)
        .await;
    for (slug, ids) in [("ops%20eu", ["o1", "o2"]), ("web", ["w1", "w2"])] {
        let items: Vec<_> = ids
            .iter()
            .map(|id| json!({"id": id, "updated": "2026-11-30T10:00:00Z"}))
            .collect();
        Mock::given(method("GET"))
            .and(path(format!("/api/pages/{slug}/incidents")))
            .respond_with(ResponseTemplate::new(200).set_body_json(items))
            .mount(server)
            .await;
    }
}

fn config(server: &MockServer) -> ConnectorConfig {
    ConnectorConfig::new("pages", "HTTP_JSON").with_provider_config(json!({
        "request": {"url": format!("{}/api/pages/{{{{parent:/slug}}}}/incidents", server.uri()),
                    "query": {"since": "{{cursor}}"}},
        "records": {"path": "", "id": "/id", "version": "/updated"},
        "signal": {"kind": "incident", "title": "{{/id}}"},
        "incremental": {"field": "/updated"},
        "parent": {"request": {"url": format!("{}/api/pages", server.uri())},
                   "records": {"path": "", "id": "/id"}}
    }))
}

async fn poll_once(backend: &Arc<RedisBackend>, server: &MockServer) -> u64 {
    let backends = backend.backends();
    let mut connector = connectors::factories()
        .create(Arc::new(config(server)), backends.clone())
        .expect("create");
    let lease = backends
        .leases
        .acquire("pages", "me", Duration::from_secs(60))
        .await
        .expect("backend")
        .expect("free");
    let published = connector.poll(&lease).await.expect("poll").published;
    backends.leases.release(&lease).await.expect("release");
    published
}

#[tokio::test]
async fn partitions_keep_their_own_state_in_redis_across_processes() {
    let ns = Namespace::new(&redis_url(), "parents");
    let settings = connector_redis::RedisSettings::from_url(&redis_url())
        .and_then(|s| s.with_key_prefix(&ns))
        .expect("settings");
    let backend = RedisBackend::connect(settings).await.expect("Redis");
    let server = MockServer::start().await;
    serve(&server).await;
    assert_eq!(poll_once(&backend, &server).await, 4);
    // A new process: everything it knows comes from Redis.
    assert_eq!(poll_once(&backend, &server).await, 0);
    let state = backend.load("pages").await.expect("state");
    assert_eq!(
        state.streams["p/ops%7Ceu"].cursor.watermark.as_deref(),
        Some("2026-11-30T10:00:00Z")
    );
    assert_eq!(state.streams["p/web%2Fmain"].versions.len(), 2);
    assert_eq!(
        state.streams["parents"].versions["ops|eu"],
        r#"{"/slug":"ops eu"}"#
    );
    let redis = fred::clients::Client::new(
        fred::types::config::Config::from_url(&redis_url()).expect("url"),
        None,
        None,
        None,
    );
    redis.init().await.expect("connect");
    let fields: std::collections::HashMap<String, String> = redis
        .hgetall(format!("{ns}connector:state:{{pages}}"))
        .await
        .expect("hgetall");
    assert!(
        fields.contains_key("s:p/ops%7Ceu|cursor:watermark"),
        "{:?}",
        fields.keys()
    );
    assert!(fields.contains_key("s:parents|cursor:partitions"));
}
