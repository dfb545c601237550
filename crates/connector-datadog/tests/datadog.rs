//! The Datadog connector against a local server replaying recorded responses, and a small
//! events API that answers like Datadog's (recorded events as templates, `filter[from]`,
//! cursors until an empty page).

use std::sync::{Arc, Mutex};

use connector_core::ConnectorConfig;
use connector_core::source::time::{TimeFormat, format_millis, parse_millis};
use connector_core::testing::{
    Harness, IncrementalScenario, Scenario, run_contract, run_incremental_contract,
};
use connector_datadog::{DatadogProvider, Site};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn fixture(name: &str) -> Value {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{p}: {e}"))
}

const MINUTE: i64 = 60_000;

/// Ten minutes ago, to the minute: the first events read looks back an hour from now.
fn t0() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default();
    (now - 10 * MINUTE).div_euclid(MINUTE) * MINUTE
}

fn config(server: &MockServer, extra: Value) -> ConnectorConfig {
    let mut settings = json!({
        "baseUrl": server.uri(),
        "appUrl": "https://app.example.test",
        // Rate-limit waits are kept per key and endpoint in the harness's own context, so
        // every test may use the same key.
        "apiKey": "dd-api-SECRET-1",
        "appKey": "dd-app-SECRET",
        "resources": ["events"],
    });
    if let (Some(s), Some(e)) = (settings.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let mut c = ConnectorConfig::new("datadog-test", "DATADOG").with_provider_config(settings);
    c.retry_config.base_delay_ms = 10;
    c.retry_config.max_delay_ms = 50;
    c
}

/// Events built on the recorded one, served by time and cursor.
#[derive(Clone, Default)]
struct Events {
    inner: Arc<Mutex<EventsState>>,
}

#[derive(Default)]
struct EventsState {
    /// `(id, millis, broken)`.
    events: Vec<(String, i64, bool)>,
    repeat: bool,
    froms: Vec<String>,
}

impl Events {
    fn with<R>(&self, f: impl FnOnce(&mut EventsState) -> R) -> R {
        f(&mut self.inner.lock().expect("lock"))
    }

    fn fill(&self, n: usize) {
        let t0 = t0();
        self.with(|s| {
            s.events = (0..n)
                .map(|i| (format!("AgAAAY{i:04}"), t0 + i as i64 * MINUTE, false))
                .collect();
            s.repeat = false;
        });
    }

    async fn mount(&self, server: &MockServer) {
        Mock::given(path("/api/v2/events"))
            .respond_with(self.clone())
            .mount(server)
            .await;
    }
}

impl Respond for Events {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.inner.lock().expect("lock");
        let q = |name: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let from = q("filter[from]").unwrap_or_default();
        s.froms.push(from.clone());
        let from = parse_millis(&from).unwrap_or(i64::MIN);
        let limit: usize = q("page[limit]").and_then(|l| l.parse().ok()).unwrap_or(10);
        let offset: usize = q("page[cursor]")
            .and_then(|c| c.strip_prefix('c')?.parse().ok())
            .unwrap_or(0);
        let template = fixture("events-v2-list-page1.json")["data"][0].clone();
        let mut matching: Vec<_> = s.events.iter().filter(|e| e.1 >= from).cloned().collect();
        matching.sort_by_key(|e| e.1);
        let data: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(id, at, broken)| {
                let mut e = template.clone();
                e["id"] = json!(id);
                e["attributes"]["timestamp"] = if *broken {
                    json!(["not", "a", "time"])
                } else {
                    json!(format_millis(*at, &TimeFormat::Rfc3339).expect("time"))
                };
                e["attributes"]["attributes"]["timestamp"] = json!(at);
                e
            })
            .collect();
        if data.is_empty() {
            // Datadog's terminal page: no meta, no links.
            return ResponseTemplate::new(200).set_body_json(json!({"data": []}));
        }
        // Like Datadog, the last page with events still names a next cursor.
        let next = if s.repeat && offset > 0 {
            offset
        } else {
            offset + data.len()
        };
        ResponseTemplate::new(200).set_body_json(json!({
            "data": data,
            "meta": {"page": {"after": format!("c{next}")}},
        }))
    }
}

impl IncrementalScenario for Events {
    async fn serve_pages(&self, server: &MockServer) -> usize {
        self.fill(5);
        self.mount(server).await;
        5
    }
    async fn serve_repeated_token(&self, _server: &MockServer) {
        self.with(|s| s.repeat = true);
    }
    async fn break_one(&self, _server: &MockServer) -> String {
        self.with(|s| {
            s.events[2].2 = true;
            s.events[2].0.clone()
        })
    }
    async fn fix_one(&self, _server: &MockServer) {
        self.with(|s| s.events[2].2 = false);
    }
}

#[tokio::test]
async fn datadog_events_meet_the_incremental_contract() {
    let server = MockServer::start().await;
    let cfg = config(&server, json!({"resources": {"events": {"pageSize": 2}}}));
    run_incremental_contract::<DatadogProvider>(cfg, &server, &Events::default()).await;
}

#[tokio::test]
async fn the_recorded_events_cursor_chain_is_read_to_the_empty_page() {
    let server = MockServer::start().await;
    let page1 = fixture("events-v2-list-page1.json");
    let page2 = fixture("events-v2-list-page2.json");
    let cursor = |page: &Value| {
        page["meta"]["page"]["after"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    Mock::given(path("/api/v2/events"))
        .and(query_param("page[cursor]", cursor(&page2)))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("events-v2-list-empty.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v2/events"))
        .and(query_param("page[cursor]", cursor(&page1)))
        .respond_with(ResponseTemplate::new(200).set_body_json(page2))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v2/events"))
        .and(|r: &Request| !r.url.query_pairs().any(|(k, _)| k == "page[cursor]"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page1))
        .expect(1)
        .mount(&server)
        .await;
    let mut h = Harness::new::<DatadogProvider>(config(
        &server,
        json!({"resources": ["events"], "query": "source:synthetics"}),
    ))
    .await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((s.published, s.pages), (3, 3), "{s:?}");
    let asked = server.received_requests().await.unwrap_or_default();
    let first = &asked[0].url;
    let q = |name: &str| {
        first
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(q("filter[query]").as_deref(), Some("source:synthetics"));
    assert_eq!(q("sort").as_deref(), Some("timestamp"));
    let signal: Value = serde_json::from_str(&h.published()[0].signal).expect("json");
    assert_eq!(signal["kind"], "event");
    assert_eq!(signal["title"], "[Synthetics] EVMGT pipeline test");
    assert_eq!(
        signal["url"],
        "https://app.example.test/event/event?id=6567977849972254562"
    );
}

#[tokio::test]
async fn the_second_poll_asks_from_the_watermark_minus_the_overlap() {
    let server = MockServer::start().await;
    let events = Events::default();
    events.fill(3);
    events.mount(&server).await;
    let mut h = Harness::new::<DatadogProvider>(config(&server, json!({}))).await;
    assert_eq!(
        h.connector.poll(&h.lease).await.expect("first").published,
        3
    );
    assert_eq!(
        h.connector.poll(&h.lease).await.expect("second").published,
        0
    );
    let froms = events.with(|s| s.froms.clone());
    let newest = events.with(|s| s.events[2].1);
    assert_eq!(
        froms.last().cloned(),
        Some((newest - 120_000).to_string()),
        "{froms:?}"
    );
}

#[tokio::test]
async fn incidents_are_paged_by_offset_until_a_short_page() {
    let server = MockServer::start().await;
    Mock::given(path("/api/v2/incidents"))
        .and(query_param("page[offset]", "0"))
        .and(query_param("page[size]", "2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("incidents-list-page1.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(path("/api/v2/incidents"))
        .and(query_param("page[offset]", "2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("incidents-list-page2.json")),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut h = Harness::new::<DatadogProvider>(config(
        &server,
        json!({"resources": {"incidents": {"pageSize": 2}}}),
    ))
    .await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((s.published, s.pages), (3, 2), "{s:?}");
    let entry = &h.published()[0];
    let signal: Value = serde_json::from_str(&entry.signal).expect("json");
    assert_eq!(entry.external_id, "ed3ff75e-6ce6-5b00-8ab4-665fcaeda9f8");
    assert_eq!(entry.version, "2021-09-15T12:50:19.743510+00:00");
    assert_eq!(signal["kind"], "incident");
    assert_eq!(signal["url"], "https://app.example.test/incidents/62105");
}

fn monitor(id: u64, state: &str, at: &str) -> Value {
    json!({
        "id": id, "name": format!("CPU high on db-{id}"), "type": "metric alert",
        "overall_state": state, "overall_state_modified": at, "modified": "2026-01-01T00:00:00.000000+00:00",
        "priority": 2, "tags": ["team:ops"], "query": "avg(last_5m):avg:system.cpu.user{*} > 90"
    })
}

async fn serve_monitors(server: &MockServer, monitors: Vec<Value>) {
    server.reset().await;
    Mock::given(path("/api/v1/monitor"))
        .and(query_param("page", "0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(Value::Array(monitors)))
        .mount(server)
        .await;
}

/// The general contract on monitors, a snapshot: three monitors; one changes state; a
/// failure is a 500; a deleted monitor leaves the set.
struct Monitors;

const AT: &str = "2026-01-05T10:00:00.000000+00:00";
const LATER: &str = "2026-01-05T10:07:00.000000+00:00";

impl Scenario for Monitors {
    async fn serve_baseline(&self, server: &MockServer) -> usize {
        let all = vec![
            monitor(1, "OK", AT),
            monitor(2, "Alert", AT),
            monitor(3, "Warn", AT),
        ];
        serve_monitors(server, all).await;
        3
    }
    async fn serve_one_changed(&self, server: &MockServer) {
        let all = vec![
            monitor(1, "OK", AT),
            monitor(2, "OK", LATER),
            monitor(3, "Warn", AT),
        ];
        serve_monitors(server, all).await;
    }
    async fn serve_failure(&self, server: &MockServer) {
        Mock::given(path("/api/v1/monitor"))
            .respond_with(ResponseTemplate::new(500).set_body_string("internal error"))
            .mount(server)
            .await;
    }
    async fn serve_one_removed(&self, server: &MockServer) {
        serve_monitors(server, vec![monitor(1, "OK", AT), monitor(2, "OK", LATER)]).await;
    }
}

#[tokio::test]
async fn datadog_monitors_meet_the_contract() {
    let server = MockServer::start().await;
    let cfg = config(&server, json!({"resources": ["monitors"]}));
    run_contract::<DatadogProvider>(cfg, &server, &Monitors).await;
}

#[tokio::test]
async fn monitors_publish_only_changes_in_and_out_of_the_watched_states() {
    let server = MockServer::start().await;
    let cfg = config(
        &server,
        json!({"resources": {"monitors": {"tags": ["team:ops"], "states": ["Alert", "Warn"]}}}),
    );
    let mut h = Harness::new::<DatadogProvider>(cfg).await;
    let t = |m: u32| format!("2026-01-05T10:{m:02}:00.000000+00:00");
    serve_monitors(
        &server,
        vec![monitor(1, "OK", &t(0)), monitor(2, "Alert", &t(0))],
    )
    .await;
    let first = h.connector.poll(&h.lease).await.expect("first");
    assert_eq!(first.published, 1, "only the alerting one: {first:?}");
    let asked = server.received_requests().await.unwrap_or_default();
    assert!(
        asked[0]
            .url
            .query()
            .unwrap_or_default()
            .contains("monitor_tags=team%3Aops")
    );

    // 1 flaps OK → OK (a new change time), 2 recovers: only the recovery is published.
    serve_monitors(
        &server,
        vec![monitor(1, "OK", &t(5)), monitor(2, "OK", &t(5))],
    )
    .await;
    let second = h.connector.poll(&h.lease).await.expect("second");
    assert_eq!(second.published, 1, "{second:?}");
    let recovered: Value = serde_json::from_str(&h.published()[1].signal).expect("json");
    assert_eq!(
        (
            recovered["externalId"].as_str(),
            recovered["change"].as_str()
        ),
        (Some("2"), Some("updated"))
    );
    assert_eq!(recovered["title"], "[OK] CPU high on db-2");
    assert_eq!(recovered["severity"], "high", "P2");
    assert_eq!(recovered["url"], "https://app.example.test/monitors/2");
    assert_eq!(recovered["occurredAt"], t(5), "when it entered its state");

    // Still OK: nothing again.
    let third = h.connector.poll(&h.lease).await.expect("third");
    assert_eq!(third.published, 0, "{third:?}");
    // 1 starts warning: published.
    serve_monitors(
        &server,
        vec![monitor(1, "Warn", &t(9)), monitor(2, "OK", &t(5))],
    )
    .await;
    assert_eq!(
        h.connector.poll(&h.lease).await.expect("fourth").published,
        1
    );
}

#[tokio::test]
async fn a_deleted_monitor_is_removed_with_emit_removals() {
    let server = MockServer::start().await;
    let mut cfg = config(&server, json!({"resources": ["monitors"]}));
    cfg.emit_removals = true;
    let mut h = Harness::new::<DatadogProvider>(cfg).await;
    let at = "2026-01-05T10:00:00.000000+00:00";
    serve_monitors(&server, vec![monitor(1, "OK", at), monitor(2, "Alert", at)]).await;
    assert_eq!(
        h.connector.poll(&h.lease).await.expect("first").published,
        2
    );
    serve_monitors(&server, vec![monitor(2, "Alert", at)]).await;
    let s = h.connector.poll(&h.lease).await.expect("second");
    assert_eq!((s.published, s.removed), (0, 0), "missing once: {s:?}");
    // Missing from removalGracePolls (2) complete reads in a row: removed.
    let s = h.connector.poll(&h.lease).await.expect("third");
    assert_eq!((s.published, s.removed), (1, 1), "{s:?}");
}

#[tokio::test]
async fn a_spent_quota_holds_that_endpoint_only_and_a_429_waits_for_its_reset() {
    let server = MockServer::start().await;
    let events = Events::default();
    events.fill(2);
    events.mount(&server).await;
    Mock::given(path("/api/v1/monitor"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([monitor(1, "Alert", "2026-01-05T10:00:00+00:00")]))
                .insert_header("x-ratelimit-limit", "100")
                .insert_header("x-ratelimit-period", "3600")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", "3000")
                .insert_header("x-ratelimit-name", "monitors_list"),
        )
        .mount(&server)
        .await;
    let mut h = Harness::new::<DatadogProvider>(config(
        &server,
        json!({"resources": ["events", "monitors"]}),
    ))
    .await;
    assert_eq!(
        h.connector.poll(&h.lease).await.expect("first").published,
        3
    );
    let before = events.with(|s| s.froms.len());
    let err = h
        .connector
        .poll(&h.lease)
        .await
        .expect_err("monitors held")
        .to_string();
    assert!(
        err.contains("rate limited") && err.contains("/api/v1/monitor"),
        "{err}"
    );
    assert!(
        events.with(|s| s.froms.len()) > before,
        "events were still read"
    );

    // A 429 with a reset one second away: waited for within the poll.
    let other = MockServer::start().await;
    Mock::given(path("/api/v2/events"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", "1"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&other)
        .await;
    let events = Events::default();
    events.fill(1);
    events.mount(&other).await;
    let mut h = Harness::new::<DatadogProvider>(config(&other, json!({}))).await;
    let started = std::time::Instant::now();
    assert_eq!(
        h.connector
            .poll(&h.lease)
            .await
            .expect("after the reset")
            .published,
        1
    );
    let statuses: Vec<u16> = other
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| r.url.path().len() as u16)
        .collect();
    assert!(statuses.len() >= 2, "the 429 was answered, then the retry");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "waited for the reset (1 s), not the 10 ms backoff"
    );
}

#[tokio::test]
async fn a_403_fails_fast_naming_the_permission() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403).set_body_json(
            json!({"errors": ["Forbidden", "Failed permission authorization checks: incident_read"]}),
        ))
        .mount(&server)
        .await;
    let mut h =
        Harness::new::<DatadogProvider>(config(&server, json!({"resources": ["incidents"]}))).await;
    let err = h
        .connector
        .poll(&h.lease)
        .await
        .expect_err("403")
        .to_string();
    assert!(
        err.contains("HTTP 403") && err.contains("incident_read"),
        "{err}"
    );
    assert!(!err.contains("SECRET"), "{err}");
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        1,
        "not retried"
    );
}

#[test]
fn each_site_maps_to_its_api_host_and_web_app() {
    let cases = [
        (
            "datadoghq.com",
            "https://api.datadoghq.com",
            "https://app.datadoghq.com",
        ),
        (
            "datadoghq.eu",
            "https://api.datadoghq.eu",
            "https://app.datadoghq.eu",
        ),
        (
            "us3.datadoghq.com",
            "https://api.us3.datadoghq.com",
            "https://us3.datadoghq.com",
        ),
        (
            "us5.datadoghq.com",
            "https://api.us5.datadoghq.com",
            "https://us5.datadoghq.com",
        ),
        (
            "ap1.datadoghq.com",
            "https://api.ap1.datadoghq.com",
            "https://ap1.datadoghq.com",
        ),
        (
            "ap2.datadoghq.com",
            "https://api.ap2.datadoghq.com",
            "https://ap2.datadoghq.com",
        ),
        (
            "ddog-gov.com",
            "https://api.ddog-gov.com",
            "https://app.ddog-gov.com",
        ),
    ];
    for (name, api, app) in cases {
        let site: Site = serde_json::from_value(json!(name)).expect(name);
        assert_eq!(site.urls(), (api.to_owned(), app.to_owned()), "{name}");
    }
}
