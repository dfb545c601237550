//! Upgrade safety: the state an earlier release left, polled by this build against the
//! same recorded responses, publishes nothing. `fixtures/upgrade/` holds, per provider,
//! what release a8a53ef (before `[streams]`) wrote after one poll of those responses: the
//! `--state-dir` file and the Redis state hash. A change to an id, a version, a stream
//! name or the state layout republishes items after an upgrade, and fails here.

mod common;

use std::path::{Path, PathBuf};

use common::{redis_url, temp_dir};
use connector_redis::testing::{Namespace, inspector_at};
use fred::prelude::HashesInterface;
use serde_json::Value;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/upgrade");

fn manifest() -> Value {
    let text = std::fs::read_to_string(format!("{FIXTURES}/manifest.json")).expect("manifest");
    serde_json::from_str(&text).expect("manifest is JSON")
}

/// The manifest's routes, the first match winning, as the recording server served them.
async fn mock(manifest: &Value) -> MockServer {
    let server = MockServer::start().await;
    let routes = manifest["routes"].as_array().expect("routes");
    for (i, route) in routes.iter().enumerate() {
        let body = match route["file"].as_str() {
            Some(file) => std::fs::read(format!("{FIXTURES}/responses/{file}")).expect("response"),
            None => route["body"].to_string().into_bytes(),
        };
        let kind = route["type"].as_str().unwrap_or("application/json");
        let mut mock = Mock::given(method("GET")).and(path(route["path"].as_str().expect("path")));
        for (k, v) in route["query"].as_object().into_iter().flatten() {
            mock = mock.and(query_param(k.as_str(), v.as_str().expect("a string")));
        }
        mock.respond_with(ResponseTemplate::new(200).set_body_raw(body, kind))
            .with_priority(u8::try_from(i + 1).expect("few routes"))
            .mount(&server)
            .await;
    }
    server
}

/// The manifest's connectors against `server`, as a config file in `dir`.
fn config(dir: &Path, manifest: &Value, server: &MockServer) -> PathBuf {
    let connectors = manifest["connectors"]
        .to_string()
        .replace("${MOCK}", &server.uri());
    let file = dir.join("connectors.json");
    std::fs::write(&file, format!("{{\"connectors\": {connectors}}}")).expect("write config");
    file
}

/// One `connectors poll NAME` with `env`: its summary (stderr's last line, JSON).
fn poll(config: &Path, name: &str, env: &[(&str, &str)]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_connectors"))
        .args(["poll", name])
        .env_remove("REDIS_URL")
        .env_remove("REDIS_KEY_PREFIX")
        .env_remove("STATE_DIR")
        .env_remove("CONNECTOR_NAME")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env("CONNECTORS_CONFIG_PATH", config)
        .env("HTTP_PORT", "off")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{name}: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{name}: no summary ({e}): {stderr}"))
}

fn names(manifest: &Value) -> Vec<String> {
    manifest["connectors"]
        .as_array()
        .expect("connectors")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect()
}

/// Asserts the poll read something and published nothing.
fn nothing_new(name: &str, summary: &Value) {
    assert!(
        summary["fetched"].as_u64() > Some(0),
        "{name} read nothing: {summary}"
    );
    assert_eq!(summary["published"], 0, "{name} republished: {summary}");
    assert_eq!(summary["failed"], 0, "{name}: {summary}");
}

/// The recorded API and a config for it: the manifest, the mock (kept alive while it is
/// held), a folder of the test's own and the config file in it.
async fn recorded(tag: &str) -> (Value, MockServer, PathBuf, PathBuf) {
    let manifest = manifest();
    let server = mock(&manifest).await;
    let dir = temp_dir(tag);
    let file = config(&dir, &manifest, &server);
    (manifest, server, dir, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_dir_of_the_release_before_publishes_nothing() {
    let (manifest, _server, dir, file) = recorded("upgrade-files").await;
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    for name in names(&manifest) {
        let fixture = format!("{FIXTURES}/state/{name}.state.json");
        std::fs::copy(&fixture, state.join(format!("{name}.state.json"))).expect("fixture");
        let dir = state.to_string_lossy().into_owned();
        let summary = tokio::task::block_in_place(|| poll(&file, &name, &[("STATE_DIR", &dir)]));
        nothing_new(&name, &summary);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_state_of_the_release_before_publishes_nothing() {
    let (manifest, _server, dir, file) = recorded("upgrade-redis").await;
    let url = redis_url();
    let ns = Namespace::new(&url, "upgrade");
    let redis = inspector_at(&url).await;
    for name in names(&manifest) {
        let text =
            std::fs::read_to_string(format!("{FIXTURES}/redis/{name}.json")).expect("fixture");
        let fields: serde_json::Map<String, Value> = serde_json::from_str(&text).expect("JSON");
        let fields: Vec<(String, String)> = fields
            .into_iter()
            .map(|(k, v)| (k, v.as_str().expect("a string").to_owned()))
            .collect();
        let key = format!("{}connector:state:{{{name}}}", ns.prefix);
        let _: () = redis.hset(&key, fields).await.expect("HSET");
        let prefix = ns.prefix.trim_end_matches(':').to_owned();
        let summary = tokio::task::block_in_place(|| {
            poll(
                &file,
                &name,
                &[("REDIS_URL", &url), ("REDIS_KEY_PREFIX", &prefix)],
            )
        });
        nothing_new(&name, &summary);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
