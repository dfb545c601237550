//! Faults against the real `connectors` binary: start-up failures, shutdown running out of
//! time, Ctrl-C under the supervisor, Redis stalling and losing its data, and providers
//! that misbehave. Each test owns its mock provider, HTTP port, Redis key prefix (deleted
//! at the end) and, where it breaks Redis, a `redis-server` of its own. RELIABILITY.md
//! lists what each one proves.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use connector_redis::testing::{Namespace, RedisServer};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// `config(server, names)` with `change` applied to each connector.
fn config_with(server: &MockServer, names: &[(&str, u64)], change: impl Fn(&mut Value)) -> String {
    let mut all: Value = serde_json::from_str(&config(server, names)).expect("config is JSON");
    if let Some(list) = all["connectors"].as_array_mut() {
        list.iter_mut().for_each(&change);
    }
    all.to_string()
}

fn write_config(dir: &std::path::Path, text: &str) {
    std::fs::write(dir.join("connectors.json"), text).expect("write the config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_fails_on_a_taken_port_holds_no_lease() {
    let server = mock_provider(Duration::ZERO).await;
    let dir = temp_dir("port-taken");
    // A lease TTL far longer than the test: only a lease never taken passes.
    write_config(
        &dir,
        &config_with(&server, &[("p", 500)], |c| {
            c["leaseTtlSeconds"] = json!(300)
        }),
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let ns = Namespace::new(&redis_url(), "port-taken");
    let mut proc = Proc::start(
        &dir,
        &["run"],
        &[
            ("HTTP_PORT", port.to_string()),
            ("REDIS_URL", redis_url()),
            ("REDIS_KEY_PREFIX", ns.prefix.clone()),
        ],
    );
    let status = proc.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(1), "{}", proc.log());
    assert!(proc.log().contains("cannot listen on"), "{}", proc.log());
    let redis = redis(&ns.prefix).await;
    assert_eq!(
        redis.backends().leases.holder("p").await.expect("redis"),
        None
    );
    assert!(
        server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "nothing polled"
    );
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_running_out_cancels_the_poll_and_releases_the_lease() {
    // The provider never answers within the test; the request timeout is the default.
    let server = mock_provider(Duration::from_secs(120)).await;
    let dir = temp_dir("grace-over");
    write_config(
        &dir,
        &config_with(&server, &[("hung", 60_000)], |c| {
            c["leaseTtlSeconds"] = json!(300);
            c.as_object_mut().map(|o| o.remove("maxRetries"));
        }),
    );
    let ns = Namespace::new(&redis_url(), "grace-over");
    let mut proc = Proc::start(
        &dir,
        &["run"],
        &[
            redis_env(&ns.prefix),
            vec![("SHUTDOWN_GRACE_SECONDS", "1".into())],
        ]
        .concat(),
    );
    wait_requests(&server, 1, "the request to hang").await;
    let redis = redis(&ns.prefix).await;
    assert!(
        redis
            .backends()
            .leases
            .holder("hung")
            .await
            .expect("redis")
            .is_some()
    );
    let signalled = Instant::now();
    proc.signal(Signal::SIGTERM);
    let status = proc.wait_exit(Duration::from_secs(15)).await;
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}\n{}", proc.log());
    assert!(took < Duration::from_secs(10), "stopped after {took:?}");
    assert!(
        proc.log().contains("grace period over: poll cancelled"),
        "{}",
        proc.log()
    );
    assert_eq!(
        redis.backends().leases.holder("hung").await.expect("redis"),
        None,
        "released, not left to its 300 s TTL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_on_all_gives_each_child_its_grace_period() {
    let server = mock_provider(Duration::from_millis(1500)).await;
    let dir = temp_dir("all-ctrl-c");
    write_config(&dir, &config(&server, &[("a", 60_000), ("b", 60_000)]));
    let mut sup = Proc::start_group(&dir, &["all"], &[("HTTP_PORT", "off".into())]);
    wait_requests(&server, 2, "both slow requests").await;
    // What the terminal does on Ctrl-C: SIGINT to the whole foreground process group.
    let group = Pid::from_raw(-sup.pid().as_raw());
    kill(group, Signal::SIGINT).expect("SIGINT to the group");
    let status = sup.wait_exit(Duration::from_secs(20)).await;
    let log = sup.log();
    assert!(status.success(), "{status:?}\n{log}");
    assert!(!log.contains("second signal"), "{log}");
    assert_eq!(
        log.matches("all connectors stopped; leases released")
            .count(),
        2,
        "{log}"
    );
    assert_eq!(
        log.matches("poll completed").count(),
        2,
        "the polls in flight finished:\n{log}"
    );
}

/// NOAA's active alerts, with a `Last-Modified`, answering a conditional request with a 304:
/// a connector that kept its validators through a Redis loss would never see the alerts
/// again.
async fn conditional_provider() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/alerts/active"))
        .and(wiremock::matchers::header_exists("if-modified-since"))
        .respond_with(ResponseTemplate::new(304))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/alerts/active"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("last-modified", "Sun, 06 Dec 2026 10:00:00 GMT")
                .set_body_string(ALERTS),
        )
        .mount(&server)
        .await;
    server
}

/// Entries in `stream` by (external id, version), with how often each was published.
async fn published_counts(
    url: &str,
    stream: &str,
) -> std::collections::BTreeMap<(String, String), usize> {
    let client = connector_redis::testing::inspector_at(url).await;
    let mut counts = std::collections::BTreeMap::new();
    for e in connector_redis::testing::stream_entries(&client, stream).await {
        *counts.entry((e.external_id, e.version)).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarting_empty_is_reported_and_every_current_item_is_published_again_once() {
    let dir = temp_dir("data-loss");
    // No persistence: a restart empties it.
    let mut own = RedisServer::start_with(&dir, None, &[]).await;
    let server = conditional_provider().await;
    write_config(&dir, &config(&server, &[("lossy", 300)]));
    let alerts = serde_json::from_str::<Value>(ALERTS).expect("fixture")["features"]
        .as_array()
        .map_or(0, Vec::len);
    let port = free_port();
    let mut proc = Proc::start(
        &dir,
        &["run"],
        &[("HTTP_PORT", port.to_string()), ("REDIS_URL", own.url())],
    );
    proc.wait_log("poll completed", Duration::from_secs(20))
        .await;
    assert!(
        proc.log().contains("Redis keeps no data across a restart"),
        "warned at start-up:\n{}",
        proc.log()
    );
    assert!(
        !proc.log().contains("reconnected to Redis"),
        "the first connection is not a reconnect:\n{}",
        proc.log()
    );
    let before = published_counts(&own.url(), "raw-input-signals").await;
    assert_eq!(before.len(), alerts, "{before:?}");
    own.restart().await;
    proc.wait_log("reconnected to Redis", Duration::from_secs(30))
        .await;
    let (_, ready) = eventually("readiness to show it", Duration::from_secs(30), || async {
        get_json(port, "/health/ready")
            .await
            .filter(|(_, r)| r.get("redisDataLoss").is_some())
    })
    .await;
    assert_eq!(ready["redisDataLoss"]["connector"], "lossy", "{ready}");
    assert!(proc.log().contains("Redis lost"), "{}", proc.log());
    // Every current alert is in the emptied Redis again, once, despite the stored
    // Last-Modified (the 304 it would get).
    let url = own.url();
    let after = eventually(
        "every alert published again",
        Duration::from_secs(30),
        || {
            let url = url.clone();
            async move {
                let counts = published_counts(&url, "raw-input-signals").await;
                (counts.len() == alerts).then_some(counts)
            }
        },
    )
    .await;
    proc.wait_count(
        "poll completed",
        proc.log().matches("poll completed").count() + 2,
        Duration::from_secs(20),
    )
    .await;
    let settled = published_counts(&own.url(), "raw-input-signals").await;
    assert_eq!(settled, after, "nothing more after that");
    assert!(settled.values().all(|n| *n == 1), "once each: {settled:?}");
    let (_, prometheus) = get(port, "/metrics").await.expect("metrics");
    assert!(
        prometheus.contains("connector_redis_data_loss_total{connector=\"lossy\"}"),
        "{prometheus}"
    );
    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(15)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_answers_within_a_second_while_redis_is_stalled() {
    let dir = temp_dir("stall");
    let own = RedisServer::start_with(&dir, None, &[]).await;
    let server = mock_provider(Duration::ZERO).await;
    write_config(&dir, &config(&server, &[("s", 500)]));
    let port = free_port();
    let mut proc = Proc::start(
        &dir,
        &["run"],
        &[("HTTP_PORT", port.to_string()), ("REDIS_URL", own.url())],
    );
    eventually("ready", Duration::from_secs(20), || async {
        get_json(port, "/health/ready")
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;
    let redis_pid = Pid::from_raw(i32::try_from(own.pid().expect("running")).expect("pid"));
    kill(redis_pid, Signal::SIGSTOP).expect("stop redis");
    let asked = Instant::now();
    let answer =
        tokio::time::timeout(Duration::from_secs(3), get_json(port, "/health/ready")).await;
    let took = asked.elapsed();
    // /health/connectors answers too, saying the stored figures could not be read.
    let connectors =
        tokio::time::timeout(Duration::from_secs(3), get_json(port, "/health/connectors")).await;
    kill(redis_pid, Signal::SIGCONT).expect("resume redis");
    let (status, body) = answer.expect("an answer").expect("JSON");
    assert_eq!(status, 503, "{body}");
    let (status, health) = connectors
        .expect("/health/connectors answers while Redis stalls")
        .expect("JSON");
    assert_eq!(status, 503, "{health}");
    assert!(
        health["connectors"]["s"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("did not answer within 800 ms")),
        "{health}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "answered after {took:?}"
    );
    eventually("ready again", Duration::from_secs(20), || async {
        get_json(port, "/health/ready")
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;
    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(15)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_retry_after_sends_nothing_more_and_shows_in_health() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/alerts/active"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "100000"))
        .mount(&server)
        .await;
    let dir = temp_dir("retry-after-long");
    write_config(&dir, &config(&server, &[("held", 200)]));
    let port = free_port();
    let mut proc = Proc::start(&dir, &["run"], &[("HTTP_PORT", port.to_string())]);
    let (_, health) = eventually("the hold in health", Duration::from_secs(20), || async {
        get_json(port, "/health/connectors")
            .await
            .filter(|(_, h)| h["connectors"]["held"].get("rateLimitedUntil").is_some())
    })
    .await;
    assert_eq!(health["connectors"]["held"]["healthy"], false, "{health}");
    // Fifteen intervals later, still the one request.
    proc.wait_log("poll failed", Duration::from_secs(10)).await;
    let log_len = proc.log().matches("poll failed").count();
    eventually("more polls to fail", Duration::from_secs(10), || async {
        (proc.log().matches("poll failed").count() >= log_len + 10).then_some(())
    })
    .await;
    assert_eq!(requests(&server).await, 1);
    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(15)).await.success());
}

/// The NOAA fixture with `change` applied to its features.
fn alerts_with(change: impl FnOnce(&mut Vec<Value>)) -> String {
    let mut body: Value = serde_json::from_str(ALERTS).expect("fixture is JSON");
    if let Some(features) = body["features"].as_array_mut() {
        change(features);
    }
    body.to_string()
}

/// One `connectors poll NAME` against the test's Redis namespace: exit code and stderr.
async fn poll_once(dir: &std::path::Path, ns: &Namespace, name: &str) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_connectors"))
        .args(["poll", name])
        .current_dir(dir)
        .env_remove("CONNECTORS_CONFIG_PATH")
        .env_remove("CONNECTOR_NAME")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env("REDIS_URL", redis_url())
        .env("REDIS_KEY_PREFIX", &ns.prefix)
        .env("RUST_LOG", "info")
        .env("HTTP_PORT", "off")
        .output()
        .await
        .expect("the binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A server that answers every connection with `head` then `body` (in `drip`-sized pieces
/// a `pause` apart, when given), then closes: answers wiremock cannot give.
async fn raw_server(head: String, body: Vec<u8>, drip: Option<(usize, Duration)>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (head, body) = (head.clone(), body.clone());
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(head.as_bytes()).await;
                match drip {
                    None => {
                        let _ = socket.write_all(&body).await;
                    }
                    Some((size, pause)) => {
                        for piece in body.chunks(size) {
                            if socket.write_all(piece).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(pause).await;
                        }
                    }
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

/// How a provider misbehaves for one poll, and what the poll must say.
struct Fault {
    name: &'static str,
    /// The base URL the connector polls during the fault.
    base_url: String,
    /// Extra connector settings.
    settings: Value,
    /// The poll's exit code.
    code: i32,
    /// A phrase its output must hold.
    says: &'static str,
    /// Signals the poll publishes (faults that fail one record publish the rest).
    publishes: usize,
}

async fn serve_body(status: u16, body: impl Into<Vec<u8>>, content_type: &str) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/alerts/active"))
        .respond_with(ResponseTemplate::new(status).set_body_raw(body.into(), content_type))
        .mount(&server)
        .await;
    server
}

/// Every provider fault once: each poll fails (or fails one record) with a message that
/// says what happened, leaves state as it was, and a good poll afterwards publishes exactly
/// what was not published yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_provider_fault_fails_its_poll_or_record_and_loses_nothing() {
    let mut servers = Vec::new();
    let mut faults = Vec::new();
    let mut add = |name, server: MockServer, settings: Value, code, says, publishes| {
        faults.push(Fault {
            name,
            base_url: server.uri(),
            settings,
            code,
            says,
            publishes,
        });
        servers.push(server);
    };
    add(
        "500",
        serve_body(500, "oops", "text/plain").await,
        json!({}),
        1,
        "HTTP 500",
        0,
    );
    for (status, says) in [(503, "HTTP 503"), (429, "HTTP 429")] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(status).insert_header("Retry-After", "1"))
            .mount(&server)
            .await;
        add("with Retry-After", server, json!({}), 1, says, 0);
    }
    add(
        "html",
        serve_body(200, "<html><body>maintenance</body></html>", "text/html").await,
        json!({}),
        1,
        "unexpected response",
        0,
    );
    add(
        "wrong shape",
        serve_body(
            200,
            r#"{"type":"FeatureCollection","features":{"a":1}}"#,
            "application/geo+json",
        )
        .await,
        json!({}),
        1,
        "unexpected response",
        0,
    );
    add(
        "not json",
        serve_body(200, "{\"features\": [", "application/geo+json").await,
        json!({}),
        1,
        "unexpected response",
        0,
    );
    let hang = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(ALERTS)
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&hang)
        .await;
    add(
        "hanging",
        hang,
        json!({"requestTimeoutMs": 500}),
        1,
        "timed out after",
        0,
    );
    let over = ALERTS.len() as u64 - 1;
    add(
        "over the cap",
        serve_body(200, ALERTS, "application/geo+json").await,
        json!({"providerConfig": {"maxBodyBytes": over}}),
        1,
        "larger than the",
        0,
    );
    // Invalid UTF-8 inside one record: that record fails, the others are published.
    let marked = alerts_with(|f| f[1]["properties"]["headline"] = json!("MARK"));
    let broken = marked.replace("MARK", "\u{1}").into_bytes();
    let broken: Vec<u8> = broken
        .into_iter()
        .map(|b| if b == 1 { 0xff } else { b })
        .collect();
    add(
        "invalid UTF-8 in a record",
        serve_body(200, broken, "application/geo+json").await,
        json!({}),
        0,
        "\"failed\":1",
        2,
    );
    let empty_id = alerts_with(|f| f[0]["properties"]["id"] = json!(""));
    add(
        "empty id",
        serve_body(200, empty_id, "application/geo+json").await,
        json!({}),
        0,
        "\"failed\":1",
        2,
    );
    let null_id = alerts_with(|f| f[0]["properties"]["id"] = Value::Null);
    add(
        "null id",
        serve_body(200, null_id, "application/geo+json").await,
        json!({}),
        0,
        "\"failed\":1",
        2,
    );
    let duplicate = alerts_with(|f| {
        let copy = f[2].clone();
        f.push(copy);
    });
    add(
        "duplicate id",
        serve_body(200, duplicate, "application/geo+json").await,
        json!({}),
        0,
        "repeated an id already read",
        3,
    );

    let mut raw = Vec::new();
    // A body that breaks off: Content-Length promises more than arrives.
    raw.push(("truncated", raw_server(format!("HTTP/1.1 200 OK\r\nContent-Type: application/geo+json\r\nContent-Length: {}\r\n\r\n", ALERTS.len()), ALERTS.as_bytes()[..200].to_vec(), None).await, json!({}), 1, "broke off after 200 bytes", 0));
    // A body dripping a few bytes at a time, slower than the request timeout.
    raw.push(("slow drip", raw_server(format!("HTTP/1.1 200 OK\r\nContent-Type: application/geo+json\r\nContent-Length: {}\r\n\r\n", ALERTS.len()), ALERTS.as_bytes().to_vec(), Some((16, Duration::from_millis(100)))).await, json!({"requestTimeoutMs": 1000}), 1, "timed out after", 0));
    // A gzip bomb: 64 MiB of zeros in about 64 KiB, against a 1 MiB cap.
    let bomb = {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            gz.write_all(&zeros).expect("gzip");
        }
        gz.finish().expect("gzip")
    };
    raw.push(("gzip bomb", raw_server(format!("HTTP/1.1 200 OK\r\nContent-Type: application/geo+json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", bomb.len()), bomb, None).await, json!({"providerConfig": {"maxBodyBytes": 1_048_576}}), 1, "larger than the 1048576-byte cap", 0));
    for (name, base_url, settings, code, says, publishes) in raw {
        faults.push(Fault {
            name,
            base_url,
            settings,
            code,
            says,
            publishes,
        });
    }

    let good = mock_provider(Duration::ZERO).await;
    for fault in faults {
        let dir = temp_dir("fault");
        let ns = Namespace::new(&redis_url(), "fault");
        let configure = |base: &str, faulty: bool| {
            let mut c = json!({
                "name": "f",
                "type": "NOAA_WEATHER",
                "maxRetries": 0,
                "providerConfig": { "baseUrl": base, "area": "OH" }
            });
            if let (Some(c), Some(extra), true) =
                (c.as_object_mut(), fault.settings.as_object(), faulty)
            {
                for (k, v) in extra {
                    match (k.as_str(), c.get_mut(k)) {
                        ("providerConfig", Some(pc)) => {
                            if let (Some(pc), Some(v)) = (pc.as_object_mut(), v.as_object()) {
                                pc.extend(v.clone());
                            }
                        }
                        _ => {
                            c.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            json!({ "connectors": [c] }).to_string()
        };
        let redis = redis(&ns.prefix).await;
        let stream = format!("{}raw-input-signals", ns.prefix);
        let inspector = connector_redis::testing::inspector_at(&redis_url()).await;

        // The fault on a first poll: nothing published but what it says, state as it was.
        write_config(&dir, &configure(&fault.base_url, true));
        let (code, err) = poll_once(&dir, &ns, "f").await;
        let what = fault.name;
        let said: Vec<&str> = err
            .lines()
            .filter(|l| {
                l.contains("WARN")
                    || l.contains("ERROR")
                    || l.contains("INFO connector_core::pipeline")
            })
            .map(|l| l.split_once(": ").map_or(l, |(_, m)| m))
            .collect();
        println!("fault {what}: exit {code:?}; {said:?}");
        assert_eq!(code, Some(fault.code), "{what}: {err}");
        assert!(
            err.contains(fault.says),
            "{what}: expected {:?} in:\n{err}",
            fault.says
        );
        let entries = connector_redis::testing::stream_entries(&inspector, &stream).await;
        assert_eq!(entries.len(), fault.publishes, "{what}: {entries:?}");
        let state = redis.backends().state.load("f").await.expect("state");
        assert_eq!(
            state.main.versions.len(),
            fault.publishes,
            "{what}: {state:?}"
        );
        // Said once, not "X: X".
        for line in err.lines().filter(|l| l.contains("fetch failed")) {
            let message = line.split("fetch failed: ").nth(1).unwrap_or_default();
            let half = &message[..message.len() / 2];
            assert!(
                half.len() < 20 || message.matches(half).count() == 1,
                "{what}: said twice: {line}"
            );
        }

        // The provider recovers: what was not published is, once; nothing twice.
        write_config(&dir, &configure(&good.uri(), false));
        let (code, err) = poll_once(&dir, &ns, "f").await;
        assert_eq!(code, Some(0), "{what}, recovered: {err}");
        let entries = connector_redis::testing::stream_entries(&inspector, &stream).await;
        let mut keys: Vec<(String, String)> = entries
            .iter()
            .map(|e| (e.external_id.clone(), e.version.clone()))
            .collect();
        keys.sort();
        let before = keys.len();
        keys.dedup();
        assert_eq!(before, keys.len(), "{what}: duplicated: {entries:?}");
        assert_eq!(keys.len(), 3, "{what}: every alert once: {keys:?}");
    }
    drop(servers);
}

/// An HTTP_JSON connector with a bearer token, against `url`, paged by `/next`.
fn credentialed(url: &str) -> String {
    json!({"connectors": [{
        "name": "creds",
        "type": "HTTP_JSON",
        "maxRetries": 0,
        "providerConfig": {
            "request": {"url": url},
            "auth": {"type": "bearer", "token": "s3cret-token-value"},
            "records": {"path": "/items", "id": "/id", "version": "/v"},
            "signal": {"kind": "item", "title": "{{/id}}"},
            "pagination": {"type": "nextUrl", "path": "/next"},
            "snapshot": true
        }
    }]})
    .to_string()
}

/// A redirect and a next link to another host: nothing reaches that host with the token,
/// the poll says where it was sent and why it did not go, and the token is in no output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_or_next_link_to_another_host_gets_no_credentials() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": []})))
        .mount(&elsewhere)
        .await;
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/moved"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("Location", format!("{}/items", elsewhere.uri())),
        )
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/items"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "items": [{"id": "a", "v": "1"}],
            "next": format!("{}/items?page=2", elsewhere.uri()),
        })))
        .mount(&api)
        .await;
    for (route, says) in [
        ("/moved", "redirected to another host"),
        ("/items", "a next link to another host"),
    ] {
        let dir = temp_dir("creds");
        let ns = Namespace::new(&redis_url(), "creds");
        write_config(&dir, &credentialed(&format!("{}{route}", api.uri())));
        let (code, err) = poll_once(&dir, &ns, "creds").await;
        assert!(err.contains(says), "{route}: {err}");
        assert!(!err.contains("s3cret-token-value"), "{route}: {err}");
        if route == "/moved" {
            assert_eq!(code, Some(1), "{err}");
        }
        let leaked: Vec<_> = elsewhere
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.headers.contains_key("authorization"))
            .collect();
        assert!(
            leaked.is_empty(),
            "{route}: credentials sent elsewhere: {leaked:?}"
        );
    }
    let to_api = api.received_requests().await.unwrap_or_default();
    assert!(
        to_api
            .iter()
            .all(|r| r.headers.contains_key("authorization")),
        "the configured host does get them"
    );
}

/// A snapshot item missing from one response and back in the next, against the binary:
/// published once in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_alert_is_published_once() {
    let dir = temp_dir("flap");
    let ns = Namespace::new(&redis_url(), "flap");
    let inspector = connector_redis::testing::inspector_at(&redis_url()).await;
    let stream = format!("{}raw-input-signals", ns.prefix);
    for (round, body) in [
        ALERTS.to_owned(),
        alerts_with(|f| {
            f.remove(1);
        }),
        ALERTS.to_owned(),
    ]
    .into_iter()
    .enumerate()
    {
        let server = serve_body(200, body, "application/geo+json").await;
        write_config(&dir, &config(&server, &[("flap", 60_000)]));
        let (code, err) = poll_once(&dir, &ns, "flap").await;
        assert_eq!(code, Some(0), "round {round}: {err}");
    }
    let entries = connector_redis::testing::stream_entries(&inspector, &stream).await;
    assert_eq!(entries.len(), 3, "{entries:?}");
}

/// A snapshot API whose item set the test changes between runs, serving each response
/// slowly enough that kills land inside polls.
#[derive(Clone)]
struct Truth {
    items: Arc<Mutex<std::collections::BTreeMap<String, u32>>>,
    delay: Duration,
}

impl Truth {
    fn new(n: usize, delay: Duration) -> Self {
        let items = (0..n).map(|i| (format!("item-{i:03}"), 1)).collect();
        Self {
            items: Arc::new(Mutex::new(items)),
            delay,
        }
    }

    /// The (id, version) pairs served now.
    fn current(&self) -> Vec<(String, String)> {
        let items = self.items.lock().expect("lock");
        items
            .iter()
            .map(|(id, v)| (id.clone(), v.to_string()))
            .collect()
    }

    /// Changes twelve versions (three commits' worth), adds one item and removes one.
    fn mutate(&self, round: usize) {
        let mut items = self.items.lock().expect("lock");
        let ids: Vec<String> = items.keys().cloned().collect();
        for id in ids.iter().skip(round % 3).step_by(3).take(12) {
            if let Some(v) = items.get_mut(id) {
                *v += 1;
            }
        }
        if let Some(first) = ids.first() {
            items.remove(first);
        }
        items.insert(format!("item-new-{round:03}"), 1);
    }
}

impl Respond for Truth {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let items: Vec<Value> = self
            .current()
            .into_iter()
            .map(|(id, v)| json!({"id": id, "v": v}))
            .collect();
        ResponseTemplate::new(200)
            .set_body_json(json!({ "items": items }))
            .set_delay(self.delay)
    }
}

/// An HTTP_JSON snapshot connector on `truth`, committing in small chunks so that a kill
/// can land between two commits of one poll.
async fn chaos_config(
    truth: &Truth,
    name: &str,
    interval_ms: u64,
    ttl_s: u64,
) -> (MockServer, String) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/items"))
        .respond_with(truth.clone())
        .mount(&server)
        .await;
    let config = json!({"connectors": [{
        "name": name,
        "type": "HTTP_JSON",
        "pollIntervalMs": interval_ms,
        "leaseTtlSeconds": ttl_s,
        "commitBatchSize": 4,
        "maxRetries": 0,
        "providerConfig": {
            "request": {"url": format!("{}/items", server.uri())},
            "records": {"path": "/items", "id": "/id", "version": "/v"},
            "signal": {"kind": "item", "title": "{{/id}}"},
            "snapshot": true
        }
    }]})
    .to_string();
    (server, config)
}

/// [`chaos_config`] written to a folder of its own, a Redis namespace, and the environment
/// that points a process at both.
async fn chaos_setup(
    truth: &Truth,
    name: &str,
    interval_ms: u64,
    ttl_s: u64,
) -> (
    MockServer,
    std::path::PathBuf,
    Namespace,
    Vec<(&'static str, String)>,
) {
    let (server, config) = chaos_config(truth, name, interval_ms, ttl_s).await;
    let dir = temp_dir(name);
    write_config(&dir, &config);
    let ns = Namespace::new(&redis_url(), name);
    let env = redis_env(&ns.prefix);
    (server, dir, ns, env)
}

/// Signals the stream lacks (of `required`), and (id, version) pairs it holds more than once.
async fn missing_and_duplicated(
    url: &str,
    stream: &str,
    required: &std::collections::BTreeSet<(String, String)>,
) -> (Vec<(String, String)>, Vec<(String, String)>, usize) {
    let inspector = connector_redis::testing::inspector_at(url).await;
    let entries = connector_redis::testing::stream_entries(&inspector, stream).await;
    let mut counts = std::collections::BTreeMap::new();
    for e in &entries {
        // Removals carry the version they removed; they are a different signal.
        let change = serde_json::from_str::<Value>(&e.signal)
            .ok()
            .and_then(|s| s["change"].as_str().map(str::to_owned))
            .unwrap_or_default();
        if change != "removed" {
            *counts
                .entry((e.external_id.clone(), e.version.clone()))
                .or_insert(0usize) += 1;
        }
    }
    let missing = required
        .iter()
        .filter(|k| !counts.contains_key(*k))
        .cloned()
        .collect();
    let duplicated = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k.clone())
        .collect();
    (missing, duplicated, entries.len())
}

/// SIGKILL at random points of polls, `kills` times, the items changing after each kill;
/// then a clean run. Every version a completed poll saw is in the stream, none twice.
async fn kill_loop(kills: usize) {
    // Responses slower than the interval keep a poll running nearly all the time.
    let truth = Truth::new(40, Duration::from_millis(250));
    let (server, dir, ns, env) = chaos_setup(&truth, "kills", 200, 1).await;
    let mut required = std::collections::BTreeSet::new();
    let (mut completed_runs, mut mid_poll) = (0, 0);
    for round in 0..kills {
        let served = truth.current();
        let asked_before = requests(&server).await;
        let mut proc = Proc::start(&dir, &["run"], &env);
        proc.wait_log("lease acquired", Duration::from_secs(20))
            .await;
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..800))).await;
        proc.signal(Signal::SIGKILL);
        let _ = proc.wait_exit(Duration::from_secs(10)).await;
        let polls = proc.log().matches("poll completed").count();
        if polls > 0 {
            completed_runs += 1;
            required.extend(served);
        }
        // A request without its completed poll: the kill came inside that poll.
        if requests(&server).await - asked_before > polls {
            mid_poll += 1;
        }
        truth.mutate(round);
    }
    // A clean run sees the final set through.
    let served = truth.current();
    let mut proc = Proc::start(&dir, &["run"], &env);
    proc.wait_log("poll completed", Duration::from_secs(30))
        .await;
    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(15)).await.success());
    required.extend(served);
    let stream = format!("{}raw-input-signals", ns.prefix);
    let (missing, duplicated, total) =
        missing_and_duplicated(&redis_url(), &stream, &required).await;
    println!(
        "kill loop: {kills} SIGKILLs, {mid_poll} inside a poll, {completed_runs} after a completed poll; {total} signals; {} required; missing {}; duplicated {}",
        required.len(),
        missing.len(),
        duplicated.len()
    );
    assert!(missing.is_empty(), "missing: {missing:?}");
    assert!(duplicated.is_empty(), "duplicated: {duplicated:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_polls_loses_and_repeats_nothing() {
    kill_loop(5).await;
}

/// The long run: `just chaos`, or `cargo test -p connectors --test faults -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: about three minutes; run by `just chaos`"]
async fn sigkill_during_polls_fifty_times_in_a_row_loses_and_repeats_nothing() {
    kill_loop(50).await;
}

/// An instance paused inside a poll while another takes its lease over: once resumed, its
/// commit is fenced (nothing written), it stops polling and says so, and nothing is
/// published twice. The lease is taken over by `lease release` semantics (a forced
/// release) so the TTL can be long enough that the resumed instance's renewal cannot come
/// before its commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_instance_resumed_after_a_takeover_is_fenced() {
    let truth = Truth::new(12, Duration::from_millis(1500));
    let (server, dir, ns, env) = chaos_setup(&truth, "zombie", 300, 30).await;
    let mut first = Proc::start(&dir, &["run"], &env);
    first
        .wait_log("lease acquired", Duration::from_secs(20))
        .await;
    wait_requests(&server, 1, "the first request in flight").await;
    // Paused with its request in flight; its lease is taken from it meanwhile.
    first.signal(Signal::SIGSTOP);
    let redis = redis(&ns.prefix).await;
    assert!(
        redis
            .backends()
            .leases
            .force_release("zombie")
            .await
            .expect("redis")
    );
    let mut second = Proc::start(&dir, &["run"], &env);
    second
        .wait_log("poll completed", Duration::from_secs(30))
        .await;
    truth.mutate(0);
    let polls = second.log().matches("poll completed").count();
    // Resumed: its answer is waiting, so it commits before its next renewal is due.
    first.signal(Signal::SIGCONT);
    first
        .wait_log(
            "this one stops polling and waits for it",
            Duration::from_secs(20),
        )
        .await;
    second
        .wait_count("poll completed", polls, Duration::from_secs(30))
        .await;
    let log = first.log();
    assert!(
        log.contains("commit refused"),
        "the resumed commit was fenced:\n{log}"
    );
    assert!(
        !log.contains("poll completed"),
        "the resumed instance completed no poll:\n{log}"
    );
    for p in [&mut first, &mut second] {
        p.signal(Signal::SIGTERM);
        assert!(p.wait_exit(Duration::from_secs(15)).await.success());
    }
    let stream = format!("{}raw-input-signals", ns.prefix);
    let required = truth.current().into_iter().collect();
    let (missing, duplicated, total) =
        missing_and_duplicated(&redis_url(), &stream, &required).await;
    println!(
        "zombie: the resumed instance's commit was fenced and it stopped polling; {total} signals; missing {}; duplicated {}",
        missing.len(),
        duplicated.len()
    );
    assert!(
        missing.is_empty() && duplicated.is_empty(),
        "{missing:?} {duplicated:?}"
    );
}

/// Redis (with persistence) restarted in the middle of polls and unreachable for `outage`:
/// the process stays up, readiness goes false then true, and nothing is missing or twice.
async fn redis_outage(outage: Duration) {
    let dir = temp_dir("outage");
    let mut own = RedisServer::start(&dir, None).await;
    let truth = Truth::new(30, Duration::from_millis(100));
    let (_server, config) = chaos_config(&truth, "outage", 200, 2).await;
    write_config(&dir, &config);
    let port = free_port();
    let mut proc = Proc::start(
        &dir,
        &["run"],
        &[("HTTP_PORT", port.to_string()), ("REDIS_URL", own.url())],
    );
    proc.wait_log("poll completed", Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_millis(fastrand::u64(0..200))).await;
    own.kill().await;
    truth.mutate(0);
    eventually("readiness to go false", Duration::from_secs(10), || async {
        get_json(port, "/health/ready")
            .await
            .filter(|(s, _)| *s == 503)
    })
    .await;
    tokio::time::sleep(outage).await;
    assert!(
        proc.child.try_wait().expect("status").is_none(),
        "still running"
    );
    own.restart().await;
    eventually(
        "readiness to come back",
        Duration::from_secs(30),
        || async {
            get_json(port, "/health/ready")
                .await
                .filter(|(s, _)| *s == 200)
        },
    )
    .await;
    let completed = proc.log().matches("poll completed").count();
    proc.wait_count("poll completed", completed, Duration::from_secs(30))
        .await;
    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(15)).await.success());
    let required = truth.current().into_iter().collect();
    let (missing, duplicated, total) =
        missing_and_duplicated(&own.url(), "raw-input-signals", &required).await;
    println!(
        "Redis outage of {outage:?}: {total} signals; missing {}; duplicated {}",
        missing.len(),
        duplicated.len()
    );
    assert!(
        missing.is_empty() && duplicated.is_empty(),
        "{missing:?} {duplicated:?}"
    );
    assert!(
        !proc.log().contains("Redis lost its data"),
        "persistence kept it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_mid_poll_loses_and_repeats_nothing() {
    redis_outage(Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: a 30 s outage; run by `just chaos`"]
async fn redis_unreachable_for_thirty_seconds_loses_and_repeats_nothing() {
    redis_outage(Duration::from_secs(30)).await;
}

/// Offline on a first run: the failure says when the next poll is and points to the demo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_at_start_says_when_the_next_poll_is_and_points_to_the_demo() {
    let dir = temp_dir("offline");
    let closed = free_port();
    write_config(
        &dir,
        &json!({"connectors": [{
            "name": "offline",
            "type": "NOAA_WEATHER",
            "pollIntervalMs": 300_000,
            "maxRetries": 0,
            "providerConfig": {"baseUrl": format!("http://127.0.0.1:{closed}")}
        }]})
        .to_string(),
    );
    let mut proc = Proc::start(&dir, &["run"], &[("HTTP_PORT", "off".into())]);
    proc.wait_log(
        "cargo run -p connector-noaa --example demo",
        Duration::from_secs(20),
    )
    .await;
    assert!(
        proc.log().contains("the next poll is in 300 s"),
        "{}",
        proc.log()
    );
    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(15)).await.success());
}

/// Jira, GitHub and Datadog meet the same faults through the core's HTTP layer and reader:
/// against a server answering every request with the fault, each poll fails, says what it
/// met, writes nothing, and never shows its credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_fails_a_faulty_poll_cleanly_without_showing_its_credentials() {
    let faults: [(&str, ResponseTemplate); 3] = [
        (
            "HTTP 500",
            ResponseTemplate::new(500).set_body_string("oops"),
        ),
        (
            "HTML",
            ResponseTemplate::new(200)
                .set_body_raw("<html><body>Access Denied</body></html>", "text/html"),
        ),
        (
            "wrong shape",
            ResponseTemplate::new(200).set_body_json(json!({"unexpected": true})),
        ),
    ];
    for (fault, answer) in faults {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(answer.clone())
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(answer)
            .mount(&server)
            .await;
        let uri = server.uri();
        let configs = [
            json!({"name": "jira", "type": "JIRA", "providerConfig": {
                "baseUrl": uri, "email": "ops@example.com", "apiToken": "s3cret-jira-token", "jql": "project = OPS"}}),
            json!({"name": "github", "type": "GITHUB", "providerConfig": {
                "baseUrl": uri, "token": "s3cret-github-token", "repositories": ["octo/repo"]}}),
            json!({"name": "datadog", "type": "DATADOG", "providerConfig": {
                "baseUrl": uri, "appUrl": uri, "apiKey": "s3cret-dd-api", "appKey": "s3cret-dd-app"}}),
        ];
        for mut config in configs {
            config["maxRetries"] = json!(0);
            let name = config["name"].as_str().unwrap_or_default().to_owned();
            let dir = temp_dir("providers");
            let ns = Namespace::new(&redis_url(), "providers");
            write_config(&dir, &json!({ "connectors": [config] }).to_string());
            let (code, err) = poll_once(&dir, &ns, &name).await;
            let what = format!("{name}, {fault}");
            assert_eq!(code, Some(1), "{what}: {err}");
            assert!(err.contains("fetch failed"), "{what}: {err}");
            assert!(
                !err.contains("s3cret"),
                "{what}: a credential in the output:\n{err}"
            );
            let state = redis(&ns.prefix)
                .await
                .backends()
                .state
                .load(&name)
                .await
                .expect("state");
            assert!(
                state.all_streams().all(|(_, s)| s.versions.is_empty()),
                "{what}: {state:?}"
            );
            let inspector = connector_redis::testing::inspector_at(&redis_url()).await;
            let stream = format!("{}raw-input-signals", ns.prefix);
            let entries = connector_redis::testing::stream_entries(&inspector, &stream).await;
            assert!(entries.is_empty(), "{what}: {entries:?}");
            let said = err
                .lines()
                .find(|l| l.contains("fetch failed"))
                .unwrap_or_default()
                .split_once("fetch failed: ")
                .map_or("", |(_, m)| m)
                .to_owned();
            println!("{what}: {said}");
        }
    }
}

/// A provider failing with retryable errors and long backoffs: at SIGTERM the retries stop,
/// so the poll ends at once and the process stops well inside its grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_ends_the_retries_so_a_failing_provider_fits_the_grace_period() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let dir = temp_dir("stop-retries");
    write_config(
        &dir,
        &config_with(&server, &[("retrying", 60_000)], |c| {
            c["maxRetries"] = json!(3);
            c["retryConfig"] = json!({"baseDelayMs": 8000, "jitterRatio": 0});
        }),
    );
    let mut proc = Proc::start(
        &dir,
        &["run"],
        &[
            ("HTTP_PORT", "off".into()),
            ("SHUTDOWN_GRACE_SECONDS", "25".into()),
        ],
    );
    // In the first backoff wait (the connector's name is "retrying" too: wait for the wait).
    proc.wait_log("delay_ms=8000", Duration::from_secs(20))
        .await;
    let signalled = Instant::now();
    proc.signal(Signal::SIGTERM);
    let status = proc.wait_exit(Duration::from_secs(20)).await;
    let took = signalled.elapsed();
    let log = proc.log();
    assert!(status.success(), "{status:?}\n{log}");
    // Before: 8 + 16 + 24 s of backoff, past the grace period.
    assert!(
        took < Duration::from_secs(5),
        "stopped after {took:?}:\n{log}"
    );
    assert!(
        log.contains("all connectors stopped; leases released"),
        "{log}"
    );
    // No "next poll" is promised by a process that is stopping.
    assert!(
        log.contains("poll failed while stopping; no further poll"),
        "{log}"
    );
    assert!(!log.contains("the next poll is in"), "{log}");
    let requests = requests(&server).await;
    assert!(
        requests <= 2,
        "{requests} requests: the one cut short is the last"
    );
}

/// A second Ctrl-C under `connectors all`: every child cancels its poll and releases its
/// lease before the supervisor exits 130.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_on_all_still_releases_every_lease() {
    let server = mock_provider(Duration::from_secs(120)).await;
    let dir = temp_dir("all-twice");
    write_config(
        &dir,
        &config_with(&server, &[("a", 60_000), ("b", 60_000)], |c| {
            c["leaseTtlSeconds"] = json!(300);
        }),
    );
    let ns = Namespace::new(&redis_url(), "all-twice");
    let mut sup = Proc::start_group(&dir, &["all"], &redis_env(&ns.prefix));
    wait_requests(&server, 2, "both hung requests").await;
    let group = Pid::from_raw(-sup.pid().as_raw());
    kill(group, Signal::SIGINT).expect("first Ctrl-C");
    eventually(
        "both children shutting down",
        Duration::from_secs(10),
        || async { (sup.log().matches("shutting down").count() >= 2).then_some(()) },
    )
    .await;
    kill(group, Signal::SIGINT).expect("second Ctrl-C");
    let status = sup.wait_exit(Duration::from_secs(20)).await;
    let log = sup.log();
    assert_eq!(status.code(), Some(130), "{log}");
    assert_eq!(
        log.matches("stopped by a second signal; leases released")
            .count(),
        2,
        "{log}"
    );
    let redis = redis(&ns.prefix).await;
    for name in ["a", "b"] {
        assert_eq!(
            redis.backends().leases.holder(name).await.expect("redis"),
            None,
            "{name}'s lease released, not left to its 300 s TTL"
        );
    }
}

/// Answers 401 quoting everything the request carried: its headers, its query and its
/// body, raw and in the forms servers use (percent-encoded query, JSON-escaped).
struct Echo;

impl Respond for Echo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if request.url.path() == "/token" {
            return ResponseTemplate::new(200).set_body_json(json!({
                "access_token": "fetched-access-token-0042",
                "expires_in": 3600
            }));
        }
        let headers: Vec<String> = request
            .headers
            .iter()
            .map(|(k, v)| format!("{k}={}", v.to_str().unwrap_or_default()))
            .collect();
        let body = json!({
            "message": format!(
                "bad credentials: {} query={} body={}",
                headers.join(" "),
                request.url.query().unwrap_or_default(),
                String::from_utf8_lossy(&request.body)
            ),
            "echo": headers,
        });
        ResponseTemplate::new(401).set_body_json(body)
    }
}

/// Every credential an HTTP_JSON connector can send, each echoed back in a 401: no form of
/// any of them reaches any output, at any log level, in text or JSON logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_an_api_echoes_back_reach_no_output() {
    let api = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Echo)
        .mount(&api)
        .await;
    let token_url = format!("{}/token", api.uri());
    let kinds = [
        (
            "bearer",
            json!({"type": "bearer", "token": "bearer-s3cret-0001"}),
        ),
        (
            "basic",
            json!({"type": "basic", "username": "me@example.com", "password": "basic-s3cret-0002"}),
        ),
        (
            "headers",
            json!({"type": "headers", "headers": {"X-Api-Key": "header-s3cret-0003"}}),
        ),
        (
            "query",
            json!({"type": "query", "name": "api_key", "value": "query s3cret/0004+"}),
        ),
        (
            "oauth",
            json!({"type": "oauth2ClientCredentials", "tokenUrl": token_url, "clientId": "me", "clientSecret": "client-s3cret-0005"}),
        ),
        // A key in the URL's path (as bot APIs take it): the error names the URL, so only
        // the log writer's own masking keeps it out.
        ("path", json!({"type": "none"})),
    ];
    let secrets = [
        "bearer-s3cret-0001",
        "basic-s3cret-0002",
        // The Basic header's pair, as sent.
        "bWVAZXhhbXBsZS5jb206YmFzaWMtczNjcmV0LTAwMDI",
        "header-s3cret-0003",
        "query s3cret/0004+",
        "query+s3cret%2F0004%2B",
        "query%20s3cret%2F0004%2B",
        "client-s3cret-0005",
        "fetched-access-token-0042",
        "s3cret",
    ];
    let connectors: Vec<Value> = kinds
        .iter()
        .map(|(name, auth)| {
            json!({
                "name": name,
                "type": "HTTP_JSON",
                "maxRetries": 0,
                "providerConfig": {
                    // A ${VAR} value in the query is a credential too.
                    "request": {
                        "url": if *name == "path" {
                            format!("{}/bot${{ECHO_PATH}}/items", api.uri())
                        } else {
                            format!("{}/items", api.uri())
                        },
                        "query": {"sig": "${ECHO_SIG}"}
                    },
                    "auth": auth,
                    "records": {"path": "/items", "id": "/id", "version": "/v"},
                    "signal": {"kind": "item", "title": "{{/id}}"},
                    "snapshot": true
                }
            })
        })
        .collect();
    let dir = temp_dir("echo");
    write_config(&dir, &json!({ "connectors": connectors }).to_string());
    for (level, format) in [("trace", "text"), ("debug", "json"), ("info", "text")] {
        for (name, _) in &kinds {
            for extra in [&[][..], &["--dry-run"][..], &["--explain"][..]] {
                let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_connectors"))
                    .arg("poll")
                    .arg(name)
                    .args(extra)
                    .current_dir(&dir)
                    .env_remove("CONNECTORS_CONFIG_PATH")
                    .env_remove("REDIS_URL")
                    .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .env("ECHO_SIG", "sig-s3cret-0006")
                    .env("ECHO_PATH", "path-s3cret-0009")
                    .env("RUST_LOG", level)
                    .env("LOG_FORMAT", format)
                    .env("HTTP_PORT", "off")
                    .output()
                    .await
                    .expect("the binary runs");
                let all = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(
                    all.contains("401"),
                    "{name} {extra:?} at {level}: the echo was met:\n{all}"
                );
                for secret in secrets
                    .iter()
                    .chain(&["sig-s3cret-0006", "path-s3cret-0009"])
                {
                    assert!(
                        !all.contains(secret),
                        "{name} {extra:?} at {level}/{format}: {secret} shown:\n{all}"
                    );
                }
            }
        }
    }
}

/// The spans exported over OTLP carry the poll's failure (its message quotes the echo):
/// the exporter masks every credential too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_span_carries_no_echoed_credential() {
    let api = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Echo)
        .mount(&api)
        .await;
    let collector = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&collector)
        .await;
    let dir = temp_dir("echo-otlp");
    write_config(
        &dir,
        &json!({"connectors": [{
            "name": "spans",
            "type": "HTTP_JSON",
            "maxRetries": 0,
            "pollIntervalMs": 60000,
            "providerConfig": {
                "request": {"url": format!("{}/items", api.uri())},
                "auth": {"type": "bearer", "token": "span-s3cret-0007"},
                "records": {"path": "/items", "id": "/id", "version": "/v"},
                "signal": {"kind": "item", "title": "{{/id}}"},
                "snapshot": true
            }
        }]})
        .to_string(),
    );
    let mut proc = Proc::start(
        &dir,
        &["run"],
        &[
            ("HTTP_PORT", "off".into()),
            ("RUST_LOG", "debug".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.uri()),
        ],
    );
    proc.wait_log("poll failed", Duration::from_secs(20)).await;
    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(15)).await.success());
    let traces: Vec<u8> = collector
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/v1/traces")
        .flat_map(|r| r.body.clone())
        .collect();
    let has = |needle: &str| traces.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(has("401"), "the failure is in the exported span");
    assert!(
        !has("span-s3cret-0007"),
        "no credential in any exported span"
    );
    assert!(!proc.log().contains("span-s3cret-0007"), "{}", proc.log());
}
