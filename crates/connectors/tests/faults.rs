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

/// Answers with `inner` and records when each request came.
struct Timed {
    at: Arc<Mutex<Vec<Instant>>>,
    answers: Vec<ResponseTemplate>,
}

impl Respond for Timed {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut at = self.at.lock().expect("lock");
        at.push(Instant::now());
        let i = (at.len() - 1).min(self.answers.len() - 1);
        self.answers[i].clone()
    }
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
            ("HTTP_PORT", "off".into()),
            ("REDIS_URL", redis_url()),
            ("REDIS_KEY_PREFIX", ns.prefix.clone()),
            ("SHUTDOWN_GRACE_SECONDS", "1".into()),
        ],
    );
    eventually("the request to hang", Duration::from_secs(20), || async {
        let n = server.received_requests().await.map_or(0, |r| r.len());
        (n > 0).then_some(())
    })
    .await;
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
    eventually("both slow requests", Duration::from_secs(20), || async {
        let n = server.received_requests().await.map_or(0, |r| r.len());
        (n >= 2).then_some(())
    })
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarting_empty_is_reported_in_the_log_readiness_and_metrics() {
    let dir = temp_dir("data-loss");
    // No persistence: a restart empties it.
    let mut own = RedisServer::start_with(&dir, None, &[]).await;
    let server = mock_provider(Duration::ZERO).await;
    write_config(&dir, &config(&server, &[("lossy", 300)]));
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
    own.restart().await;
    proc.wait_log("reconnected to Redis", Duration::from_secs(30))
        .await;
    proc.wait_log("Redis lost its data", Duration::from_secs(30))
        .await;
    let (_, ready) = eventually("readiness to show it", Duration::from_secs(10), || async {
        get_json(port, "/health/ready")
            .await
            .filter(|(_, r)| r.get("redisDataLoss").is_some())
    })
    .await;
    assert_eq!(ready["redisDataLoss"]["connector"], "lossy", "{ready}");
    let (_, prometheus) = get(port, "/metrics").await.expect("metrics");
    assert!(
        prometheus.contains("connector_redis_data_loss_total{connector=\"lossy\"} 1"),
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
    kill(redis_pid, Signal::SIGCONT).expect("resume redis");
    let (status, body) = answer.expect("an answer").expect("JSON");
    assert_eq!(status, 503, "{body}");
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
async fn retry_after_holds_across_polls() {
    let server = MockServer::start().await;
    let at = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("GET"))
        .and(path("/alerts/active"))
        .respond_with(Timed {
            at: at.clone(),
            answers: vec![
                ResponseTemplate::new(429).insert_header("Retry-After", "3"),
                ResponseTemplate::new(200).set_body_string(ALERTS),
            ],
        })
        .mount(&server)
        .await;
    let dir = temp_dir("retry-after");
    // Polls every 200 ms, no retries within a poll: only a hold across polls keeps the
    // next request back.
    write_config(&dir, &config(&server, &[("held", 200)]));
    let mut proc = Proc::start(&dir, &["run"], &[("HTTP_PORT", "off".into())]);
    proc.wait_log("poll completed", Duration::from_secs(20))
        .await;
    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(15)).await.success());
    let at = at.lock().expect("lock").clone();
    assert!(at.len() >= 2, "{at:?}");
    let gap = at[1] - at[0];
    assert!(
        gap >= Duration::from_millis(2900),
        "the second request came {gap:?} after the 429 asked for 3 s"
    );
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
    assert_eq!(server.received_requests().await.map_or(0, |r| r.len()), 1);
    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(15)).await.success());
}
