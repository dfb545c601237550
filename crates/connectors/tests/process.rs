//! The real `connectors` binary as an operator runs it: reload, shutdown, several workers,
//! the supervisor, and the HTTP API. Each test has its own mock provider, HTTP port and
//! Redis key prefix.

mod common;

use std::time::Duration;

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_removes_and_changes_connectors_and_refuses_a_broken_file() {
    let server = mock_provider(Duration::ZERO).await;
    let dir = temp_dir("reload");
    let file = dir.join("connectors.json");
    std::fs::write(&file, config(&server, &[("a", 500), ("b", 500)])).expect("write");
    let port = free_port();
    let proc = Proc::start(&dir, &["run"], &[("HTTP_PORT", port.to_string())]);
    eventually("a and b running", Duration::from_secs(20), || async {
        running(port).await.filter(|(r, _)| r == &["a", "b"])
    })
    .await;

    std::fs::write(&file, config(&server, &[("b", 700), ("c", 500)])).expect("write");
    proc.signal(Signal::SIGHUP);
    let (_, ready) = eventually("b and c running", Duration::from_secs(10), || async {
        running(port).await.filter(|(r, _)| r == &["b", "c"])
    })
    .await;
    assert_eq!(ready["reloads"], 1);
    assert_eq!(ready["lastReload"]["ok"], true);
    let log = proc.log();
    assert!(
        log.contains("removed or disabled: stopped connector=a"),
        "{log}"
    );
    assert!(log.contains("changed: stopped connector=b"), "{log}");
    proc.wait_log("starting connector=c", Duration::from_secs(5))
        .await;

    std::fs::write(&file, "{\"connectors\": [ {\"name\": ").expect("write");
    proc.signal(Signal::SIGHUP);
    let (names, ready) = eventually("a refused reload", Duration::from_secs(10), || async {
        running(port).await.filter(|(_, r)| r["reloads"] == 2)
    })
    .await;
    assert_eq!(names, ["b", "c"], "the running configuration stays");
    assert_eq!(ready["lastReload"]["ok"], false);
    assert!(
        ready["lastReload"]["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("invalid JSON")),
        "{ready}"
    );
    let (_, prom) = get(port, "/metrics").await.expect("metrics");
    assert!(
        prom.contains("connector_config_reloads_total{outcome=\"applied\"} 1"),
        "{prom}"
    );
    assert!(
        prom.contains("connector_config_reloads_total{outcome=\"refused\"} 1"),
        "{prom}"
    );

    let mut proc = proc;
    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(15)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_poll_finish_and_releases_the_lease() {
    let server = mock_provider(Duration::from_millis(1500)).await;
    let dir = temp_dir("term");
    std::fs::write(
        dir.join("connectors.json"),
        config(&server, &[("slow", 60_000)]),
    )
    .expect("write");
    let prefix = connector_redis::testing::Namespace::new(&redis_url(), "term");
    let mut proc = Proc::start(&dir, &["run", "slow"], &redis_env(&prefix));
    wait_requests(&server, 1, "the slow request to arrive").await;
    proc.signal(Signal::SIGTERM);
    let status = proc.wait_exit(Duration::from_secs(15)).await;
    assert!(
        status.success(),
        "exit 0 after a graceful stop: {status:?}\n{}",
        proc.log()
    );
    let log = proc.log();
    let stop = log.find("shutting down").expect("shutdown logged");
    let done = log
        .find("poll completed")
        .expect("the poll in flight completed");
    assert!(done > stop, "the poll finished after the signal:\n{log}");

    let redis = redis(&prefix).await;
    let backends = redis.backends();
    assert_eq!(
        backends.leases.holder("slow").await.expect("redis"),
        None,
        "lease released"
    );
    let m = backends
        .metrics
        .get("slow")
        .await
        .expect("redis")
        .expect("metrics");
    assert_eq!(m.items_published, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_five_connectors_and_the_survivor_takes_over() {
    let server = mock_provider(Duration::ZERO).await;
    let dir = temp_dir("share");
    let names = ["c1", "c2", "c3", "c4", "c5"];
    let list: Vec<(&str, u64)> = names.iter().map(|n| (*n, 300)).collect();
    std::fs::write(dir.join("connectors.json"), config(&server, &list)).expect("write");
    let prefix = connector_redis::testing::Namespace::new(&redis_url(), "share");
    let env = |port: u16| {
        vec![
            ("HTTP_PORT", port.to_string()),
            ("REDIS_URL", redis_url()),
            ("REDIS_KEY_PREFIX", prefix.to_string()),
        ]
    };
    let (p1, p2) = (free_port(), free_port());
    let w1 = Proc::start(&dir, &["run"], &env(p1));
    let w2 = Proc::start(&dir, &["run"], &env(p2));
    let redis = redis(&prefix).await;
    let backends = redis.backends();
    let holders = || async {
        let mut by: std::collections::BTreeMap<String, usize> = Default::default();
        for n in names {
            let h = backends.leases.holder(n).await.ok()??;
            *by.entry(h.instance_id).or_default() += 1;
        }
        Some(by)
    };
    let split = eventually(
        "both workers holding a fair share",
        Duration::from_secs(30),
        || async {
            holders().await.filter(|by| {
                let mut counts: Vec<usize> = by.values().copied().collect();
                counts.sort_unstable();
                counts == [2, 3]
            })
        },
    )
    .await;
    assert_eq!(split.len(), 2);
    // The worker short of its share says once, in one line, what it waits for.
    eventually(
        "a summary of the leases waited for",
        Duration::from_secs(20),
        || async {
            let said = "connector(s) wait for leases 1 other instance(s) hold";
            (w1.log().contains(said) || w2.log().contains(said)).then_some(())
        },
    )
    .await;

    // Every connector's three alerts were published exactly once, whoever polled it.
    let (_, all) = eventually(
        "metrics for every connector",
        Duration::from_secs(10),
        || async {
            get_json(p1, "/metrics/connectors")
                .await
                .filter(|(_, m)| names.iter().all(|n| m[n]["itemsPublished"] == 3))
        },
    )
    .await;
    assert_eq!(all.as_object().map(|m| m.len()), Some(5));

    // The first worker dies without releasing anything; the other takes everything over
    // once the leases (2 s) and the dead worker's heartbeat lapse.
    w1.signal(Signal::SIGKILL);
    let survivor = eventually(
        "the survivor holding all five",
        Duration::from_secs(20),
        || async {
            holders()
                .await
                .filter(|by| by.len() == 1 && by.values().all(|c| *c == 5))
        },
    )
    .await;
    assert_eq!(survivor.len(), 1);
    let (_, after) = get_json(p2, "/metrics/connectors").await.expect("metrics");
    for n in names {
        assert_eq!(
            after[n]["itemsPublished"], 3,
            "no duplicates after the takeover: {after}"
        );
    }
    drop(w1);
    let mut w2 = w2;
    w2.signal(Signal::SIGTERM);
    assert!(w2.wait_exit(Duration::from_secs(15)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_restarts_a_killed_child_and_stops_them_all() {
    let server = mock_provider(Duration::ZERO).await;
    let dir = temp_dir("all");
    std::fs::write(
        dir.join("connectors.json"),
        config(&server, &[("x", 500), ("y", 500)]),
    )
    .expect("write");
    let mut sup = Proc::start(&dir, &["all"], &[("HTTP_PORT", "off".into())]);
    let pid_of = |log: &str, name: &str| -> Option<i32> {
        log.lines()
            .rev()
            .filter(|l| l.contains("child started") && l.contains(&format!("connector={name}")))
            .filter_map(|l| {
                l.split("pid=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .next()
    };
    let first = eventually("child x started", Duration::from_secs(20), || async {
        pid_of(&sup.log(), "x")
    })
    .await;
    eventually("child y started", Duration::from_secs(20), || async {
        pid_of(&sup.log(), "y")
    })
    .await;
    kill(Pid::from_raw(first), Signal::SIGKILL).expect("kill child");
    sup.wait_log(
        "child exited; restarting connector=x",
        Duration::from_secs(10),
    )
    .await;
    assert!(
        sup.log().contains("signal: 9"),
        "the log says why: {}",
        sup.log()
    );
    let second = eventually("child x restarted", Duration::from_secs(10), || async {
        pid_of(&sup.log(), "x").filter(|p| *p != first)
    })
    .await;
    assert_ne!(first, second);
    sup.signal(Signal::SIGTERM);
    assert!(
        sup.wait_exit(Duration::from_secs(20)).await.success(),
        "{}",
        sup.log()
    );
    let log = sup.log();
    assert_eq!(log.matches("child stopped").count(), 2, "{log}");
    // Signals from both children reached the supervisor's stdout.
    assert!(sup.out().contains("\"connector\":\"y\""));
}

/// SIGHUP to `connectors all`: the supervisor reads the file itself; an added connector
/// gets a child, a removed one's child stops, a changed one's child is restarted, the
/// others stay up; a broken file is refused once, by the supervisor, and no child restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_applies_a_reload_and_refuses_a_broken_file_once() {
    let server = mock_provider(Duration::ZERO).await;
    let dir = temp_dir("all-reload");
    let file = dir.join("connectors.json");
    std::fs::write(&file, config(&server, &[("x", 500), ("y", 500)])).expect("write");
    let mut sup = Proc::start(&dir, &["all"], &[("HTTP_PORT", "off".into())]);
    let started = |log: &str, name: &str| {
        log.lines()
            .filter(|l| l.contains("child started") && l.contains(&format!("connector={name} ")))
            .count()
    };
    // Waits until `name`'s child was started `times` times.
    let starts = |name: &'static str, times: usize| {
        let sup = &sup;
        async move {
            let what = format!("child {name} started {times} times");
            eventually(&what, Duration::from_secs(20), || async {
                (started(&sup.log(), name) >= times).then_some(())
            })
            .await
        }
    };
    starts("x", 1).await;
    starts("y", 1).await;
    std::fs::write(&file, config(&server, &[("x", 500), ("z", 500)])).expect("write");
    sup.signal(Signal::SIGHUP);
    starts("z", 1).await;
    sup.wait_log("child stopped connector=y ", Duration::from_secs(20))
        .await;
    // x's own settings change: its child (and only it) is restarted.
    std::fs::write(&file, config(&server, &[("x", 700), ("z", 500)])).expect("write");
    sup.signal(Signal::SIGHUP);
    starts("x", 2).await;
    // Disabled: its child stops like a removed one's.
    let mut disabled: Value =
        serde_json::from_str(&config(&server, &[("x", 700), ("z", 500)])).expect("config");
    disabled["connectors"][1]["enabled"] = Value::Bool(false);
    std::fs::write(&file, disabled.to_string()).expect("write");
    sup.signal(Signal::SIGHUP);
    sup.wait_log("child stopped connector=z ", Duration::from_secs(20))
        .await;
    std::fs::write(&file, "{ \"connectors\": [ broken").expect("write");
    sup.signal(Signal::SIGHUP);
    sup.wait_log("reload refused", Duration::from_secs(10))
        .await;
    sup.signal(Signal::SIGTERM);
    assert!(
        sup.wait_exit(Duration::from_secs(20)).await.success(),
        "{}",
        sup.log()
    );
    let log = sup.log();
    assert_eq!(
        log.matches("reload refused").count(),
        1,
        "refused once: {log}"
    );
    assert_eq!(
        started(&log, "x"),
        2,
        "x restarted once, for its own change: {log}"
    );
    assert_eq!(started(&log, "y"), 1, "{log}");
    assert_eq!(started(&log, "z"), 1, "z untouched by x's change: {log}");
    assert!(!log.contains("child exited"), "no child died: {log}");
}

/// Under `connectors all` the supervisor serves `HTTP_PORT` itself: live, ready once every
/// child is, and every child's connectors merged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_answers_health_for_every_child_on_its_own_port() {
    let server = mock_provider(Duration::ZERO).await;
    let dir = temp_dir("all-api");
    std::fs::write(
        dir.join("connectors.json"),
        config(&server, &[("x", 500), ("y", 500)]),
    )
    .expect("write");
    // Another program listens next to the supervisor's port: the children take free ones.
    let (port, _held) = loop {
        let port = free_port();
        if let Ok(held) = std::net::TcpListener::bind(("127.0.0.1", port + 1)) {
            break (port, held);
        }
    };
    let mut sup = Proc::start(&dir, &["all"], &[("HTTP_PORT", port.to_string())]);
    let (status, live) = eventually("supervisor live", Duration::from_secs(20), || async {
        get_json(port, "/health/live").await
    })
    .await;
    assert_eq!((status, live["status"].as_str()), (200, Some("ok")));
    let ready = eventually("every child ready", Duration::from_secs(30), || async {
        get_json(port, "/health/ready")
            .await
            .filter(|(status, _)| *status == 200)
    })
    .await
    .1;
    // `connectors health`, the container healthcheck, says the same with its exit code.
    let health = |port: u16| {
        std::process::Command::new(env!("CARGO_BIN_EXE_connectors"))
            .arg("health")
            .env("HTTP_PORT", port.to_string())
            .env_remove("HTTP_BIND")
            .output()
            .expect("run connectors health")
    };
    let ok = health(port);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let nobody = health(free_port());
    assert_eq!(nobody.status.code(), Some(1), "nobody listens there");
    let children: Vec<&String> = ready["children"]
        .as_object()
        .expect("children")
        .keys()
        .collect();
    assert_eq!(children, ["x", "y"], "{ready}");
    let merged = eventually("connectors healthy", Duration::from_secs(30), || async {
        get_json(port, "/health/connectors")
            .await
            .filter(|(status, _)| *status == 200)
    })
    .await
    .1;
    let names: Vec<&String> = merged["connectors"]
        .as_object()
        .expect("connectors")
        .keys()
        .collect();
    assert_eq!(names, ["x", "y"], "{merged}");
    assert_eq!(merged["connectors"]["x"]["healthy"], true, "{merged}");
    // Every child's log line names it (they share the supervisor's standard error).
    let log = sup.log();
    assert!(log.contains("[x] ") && log.contains("[y] "), "{log}");
    // The process-wide notes once, by one child, not by every child.
    assert_eq!(
        log.matches("no REDIS_URL: embedded mode").count(),
        1,
        "{log}"
    );
    // One OpenMetrics exposition for every child: each family once, both children's series.
    let (status, text) = get(port, "/metrics").await.expect("supervisor metrics");
    assert_eq!(status, 200, "{text}");
    for child in ["x", "y"] {
        let polled = format!("connector_polls_total{{connector=\"{child}\",outcome=\"success\"}} ");
        assert!(text.lines().any(|l| l.starts_with(&polled)), "{text}");
        let up = format!("connectors_child_up{{connector=\"{child}\"}} 1");
        assert!(text.lines().any(|l| l == up), "{text}");
    }
    let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    let mut unique = types.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(types.len(), unique.len(), "each family once: {text}");
    assert!(
        text.ends_with("# EOF\n") && text.matches("# EOF").count() == 1,
        "{text}"
    );
    sup.signal(Signal::SIGTERM);
    assert!(
        sup.wait_exit(Duration::from_secs(20)).await.success(),
        "{}",
        sup.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_answers_health_metrics_and_prometheus() {
    let server = mock_provider(Duration::ZERO).await;
    let dir = temp_dir("api");
    std::fs::write(dir.join("connectors.json"), config(&server, &[("w", 500)])).expect("write");
    let port = free_port();
    let prefix = connector_redis::testing::Namespace::new(&redis_url(), "api");
    let mut proc = Proc::start(
        &dir,
        &["run"],
        &[
            ("HTTP_PORT", port.to_string()),
            ("REDIS_URL", redis_url()),
            ("REDIS_KEY_PREFIX", prefix.to_string()),
        ],
    );
    let (status, live) = eventually("live", Duration::from_secs(20), || {
        get_json(port, "/health/live")
    })
    .await;
    assert_eq!((status, live["status"].as_str()), (200, Some("ok")));
    let (_, health) = eventually("a healthy connector", Duration::from_secs(10), || async {
        get_json(port, "/health/connectors")
            .await
            .filter(|(s, _)| *s == 200)
    })
    .await;
    assert_eq!(health["connectors"]["w"]["healthy"], true);
    let (status, ready) = get_json(port, "/health/ready").await.expect("ready");
    assert_eq!((status, &ready["backend"]), (200, &Value::from("ok")));
    let (status, one) = get_json(port, "/metrics/connectors/w").await.expect("one");
    assert_eq!(status, 200);
    for field in [
        "lastPollTime",
        "lastSuccessTime",
        "totalPolls",
        "successfulPolls",
        "failedPolls",
        "itemsFetched",
        "itemsPublished",
        "averageLatencyMs",
    ] {
        assert!(!one[field].is_null(), "{field} in {one}");
    }
    // Times as people read them; the Redis hash keeps its UNIX milliseconds.
    for field in ["lastPollTime", "lastSuccessTime"] {
        let at = one[field].as_str().unwrap_or_default();
        assert!(at.ends_with('Z') && at.contains('T'), "{field}: {one}");
    }
    let last = health["connectors"]["w"]["lastSuccessTime"]
        .as_str()
        .unwrap_or_default();
    assert!(last.ends_with('Z'), "{health}");
    let (status, _) = get_json(port, "/metrics/connectors/nope")
        .await
        .expect("404");
    assert_eq!(status, 404);
    let (_, text) = get(port, "/metrics").await.expect("prometheus");
    let samples: Vec<(&str, f64)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name, value.parse().ok()?))
        })
        .collect();
    let value = |name: &str| samples.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    assert!(
        value("connector_polls_total{connector=\"w\",outcome=\"success\"}")
            .is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert_eq!(
        value("connector_items_total{connector=\"w\",stage=\"published\"}"),
        Some(3.0)
    );
    assert_eq!(value("connector_lease_held{connector=\"w\"}"), Some(1.0));
    assert!(
        value("connector_http_requests_total{connector=\"w\",status=\"200\"}")
            .is_some_and(|v| v >= 1.0)
    );
    assert!(
        value("connector_poll_duration_seconds_count{connector=\"w\"}").is_some_and(|v| v >= 1.0)
    );
    assert!(text.ends_with("# EOF\n"), "OpenMetrics text");
    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(15)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_spans_and_metrics_are_exported_over_otlp_when_configured() {
    let server = mock_provider(Duration::ZERO).await;
    let collector = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&collector)
        .await;
    let dir = temp_dir("otel");
    std::fs::write(
        dir.join("connectors.json"),
        config(&server, &[("t", 60_000)]),
    )
    .expect("write");
    let mut proc = Proc::start(
        &dir,
        &["run"],
        &[
            ("HTTP_PORT", "off".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.uri()),
            ("OTEL_SERVICE_NAME", "otel-test-service".into()),
        ],
    );
    proc.wait_log("poll completed", Duration::from_secs(20))
        .await;
    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(15)).await.success());
    // Shutdown flushes the exporters: spans and metrics are at the collector by now.
    let requests = collector.received_requests().await.unwrap_or_default();
    let sent_to = |p: &str| -> Vec<u8> {
        requests
            .iter()
            .filter(|r| r.url.path() == p)
            .flat_map(|r| r.body.clone())
            .collect()
    };
    let has =
        |body: &[u8], needle: &str| body.windows(needle.len()).any(|w| w == needle.as_bytes());
    let traces = sent_to("/v1/traces");
    assert!(
        has(&traces, "otel-test-service"),
        "OTEL_SERVICE_NAME honoured"
    );
    assert!(
        has(&traces, "poll") && has(&traces, "published"),
        "the poll span with its summary"
    );
    let metrics = sent_to("/v1/metrics");
    assert!(
        has(&metrics, "connector.polls") && has(&metrics, "connector.items"),
        "poll metrics exported"
    );
}

/// `/health/connectors` says why a connector is unhealthy: its last poll's error and time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_the_last_error_of_a_failing_connector() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream exploded"))
        .mount(&server)
        .await;
    let dir = temp_dir("last-error");
    std::fs::write(
        dir.join("connectors.json"),
        config(&server, &[("failing", 300)]),
    )
    .expect("write");
    let port = free_port();
    let mut proc = Proc::start(&dir, &["run"], &[("HTTP_PORT", port.to_string())]);
    let (status, health) = eventually("the failure in health", Duration::from_secs(20), || async {
        get_json(port, "/health/connectors")
            .await
            .filter(|(_, h)| h["connectors"]["failing"]["lastError"].is_object())
    })
    .await;
    assert_eq!(status, 503, "{health}");
    let last = &health["connectors"]["failing"]["lastError"];
    assert!(
        last["message"]
            .as_str()
            .is_some_and(|m| m.contains("HTTP 500")),
        "{health}"
    );
    assert!(
        last["at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{health}"
    );
    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(20)).await.success());
}
