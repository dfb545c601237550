//! The NOAA connector against a local server replaying recorded api.weather.gov responses.

use std::time::Duration;

use connector_core::config::{ConfigSource, Environment};
use connector_core::http::DEFAULT_USER_AGENT;
use connector_core::ports::StateStore;
use connector_core::testing::{
    Harness, IncrementalScenario, Scenario, run_contract, run_incremental_contract,
};
use connector_core::{ConnectorConfig, ConnectorRegistry};
use connector_noaa::NoaaProvider;
use serde_json::Value;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fixture(name: &str) -> String {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// The severe-alerts recording with `edit` applied to its features.
fn severe_with(edit: impl FnOnce(&mut Vec<Value>)) -> String {
    let mut doc: Value =
        serde_json::from_str(&fixture("alerts-active-severe-trimmed.json")).expect("json");
    if let Some(Value::Array(features)) = doc.get_mut("features") {
        edit(features);
    }
    doc.to_string()
}

fn geo_json(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/geo+json")
        .set_body_string(body)
}

async fn serve_active(server: &MockServer, body: String) {
    Mock::given(method("GET"))
        .and(path("/alerts/active"))
        .respond_with(geo_json(body))
        .mount(server)
        .await;
}

fn config(server: &MockServer, provider: Value) -> ConnectorConfig {
    let mut c = ConnectorConfig::new("weather-test", "NOAA_WEATHER");
    let mut p = serde_json::json!({ "baseUrl": server.uri() });
    if let (Some(p), Some(extra)) = (p.as_object_mut(), provider.as_object()) {
        p.extend(extra.clone());
    }
    c = c.with_provider_config(p);
    c.retry_config.base_delay_ms = 10;
    c.retry_config.max_delay_ms = 50;
    c
}

struct Alerts;

impl Scenario for Alerts {
    async fn serve_baseline(&self, server: &MockServer) -> usize {
        serve_active(server, fixture("alerts-active-severe-trimmed.json")).await;
        3
    }
    async fn serve_one_changed(&self, server: &MockServer) {
        serve_active(
            server,
            severe_with(|f| f[1]["properties"]["description"] = "River crest revised.".into()),
        )
        .await;
    }
    async fn serve_failure(&self, server: &MockServer) {
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(503).set_body_string("<html>Service Unavailable</html>"),
            )
            .mount(server)
            .await;
    }
    async fn serve_one_removed(&self, server: &MockServer) {
        serve_active(
            server,
            severe_with(|f| {
                f[1]["properties"]["description"] = "River crest revised.".into();
                f.remove(0);
            }),
        )
        .await;
    }
}

/// The `/alerts` history as the API serves it: the recorded features, newest first by
/// `sent`, two to a page behind `pagination.next` cursors, filtered by `start`.
#[derive(Clone, Default)]
struct History {
    inner: std::sync::Arc<std::sync::Mutex<HistoryState>>,
}

#[derive(Default)]
struct HistoryState {
    /// `(sent millis, feature)`, newest first.
    features: Vec<(i64, Value)>,
    repeat: bool,
    /// The id of the feature made unreadable, to mend it.
    broken: Option<String>,
}

impl History {
    fn recorded() -> Self {
        let mut features = Vec::new();
        for page in ["alerts-history-page1.json", "alerts-history-page2.json"] {
            let doc: Value = serde_json::from_str(&fixture(page)).expect("json");
            for f in doc["features"].as_array().cloned().unwrap_or_default() {
                let sent = f["properties"]["sent"].as_str().unwrap_or_default();
                let ms = connector_core::source::time::parse_millis(sent).expect("sent");
                features.push((ms, f));
            }
        }
        features.sort_by_key(|(ms, _)| std::cmp::Reverse(*ms));
        let h = Self::default();
        if let Ok(mut s) = h.inner.lock() {
            s.features = features;
        }
        h
    }

    fn edit(&self, i: usize, edit: impl FnOnce(&mut Value)) -> String {
        let mut s = self.inner.lock().expect("lock");
        edit(&mut s.features[i].1);
        s.features[i].1["properties"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl wiremock::Respond for History {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let Ok(s) = self.inner.lock() else {
            return ResponseTemplate::new(500);
        };
        let q = |name: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let start = q("start")
            .and_then(|t| connector_core::source::time::parse_millis(&t))
            .unwrap_or(i64::MIN);
        let offset: usize = q("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
        let matching: Vec<&Value> = s
            .features
            .iter()
            .filter(|(ms, _)| *ms >= start)
            .map(|(_, f)| f)
            .collect();
        let page: Vec<&Value> = matching.iter().skip(offset).take(2).copied().collect();
        let next = if s.repeat && offset > 0 {
            offset
        } else {
            offset + 2
        };
        // Like the real API, every page links to a next one; an empty page ends the read.
        let body = serde_json::json!({
            "type": "FeatureCollection",
            "features": page,
            "pagination": {"next": format!("/alerts?status=actual&cursor={next}")},
        });
        geo_json(body.to_string())
    }
}

impl IncrementalScenario for History {
    async fn serve_pages(&self, server: &MockServer) -> usize {
        let fresh = Self::recorded();
        let n = fresh.inner.lock().map(|s| s.features.len()).unwrap_or(0);
        if let (Ok(mut mine), Ok(mut new)) = (self.inner.lock(), fresh.inner.lock()) {
            *mine = std::mem::take(&mut *new);
        }
        Mock::given(method("GET"))
            .and(path("/alerts"))
            .respond_with(self.clone())
            .mount(server)
            .await;
        n
    }
    async fn serve_repeated_token(&self, _server: &MockServer) {
        if let Ok(mut s) = self.inner.lock() {
            s.repeat = true;
        }
    }
    async fn break_one(&self, _server: &MockServer) -> String {
        let id = self.edit(2, |_| {});
        self.edit(2, |f| f["properties"]["id"] = Value::Bool(false));
        if let Ok(mut s) = self.inner.lock() {
            s.broken = Some(id.clone());
        }
        id
    }
    async fn fix_one(&self, _server: &MockServer) {
        let id = self.inner.lock().ok().and_then(|mut s| s.broken.take());
        self.edit(2, |f| {
            f["properties"]["id"] = Value::String(id.unwrap_or_default())
        });
    }
}

#[tokio::test]
async fn the_alert_history_meets_the_incremental_contract() {
    let server = MockServer::start().await;
    let cfg = config(&server, serde_json::json!({"alertsPath": "/alerts"}));
    run_incremental_contract::<NoaaProvider>(cfg, &server, &History::default()).await;
}

#[tokio::test]
async fn a_history_read_starts_from_its_watermark_minus_a_lookback() {
    let server = MockServer::start().await;
    let history = History::default();
    let n = history.serve_pages(&server).await;
    let mut h = Harness::new::<NoaaProvider>(config(
        &server,
        serde_json::json!({"alertsPath": "/alerts"}),
    ))
    .await;
    let first = h.connector.poll(&h.lease).await.expect("first");
    assert_eq!(first.published as usize, n, "{first:?}");
    let state = h.backend.load_state("weather-test");
    let newest = history.inner.lock().map(|s| s.features[0].0).unwrap_or(0);
    let watermark = state
        .main
        .cursor
        .watermark
        .as_deref()
        .and_then(connector_core::source::time::parse_millis);
    assert_eq!(watermark, Some(newest), "the newest `sent` read");
    let second = h.connector.poll(&h.lease).await.expect("second");
    assert_eq!(second.published, 0, "{second:?}");
    let asked = server.received_requests().await.unwrap_or_default();
    let last_first_page = asked
        .iter()
        .rev()
        .find(|r| !r.url.query_pairs().any(|(k, _)| k == "cursor"))
        .map(|r| r.url.to_string())
        .unwrap_or_default();
    let start = connector_core::source::time::format_millis(
        newest.div_euclid(1000) * 1000 - 600_000,
        &connector_core::source::time::TimeFormat::Rfc3339,
    )
    .expect("time");
    assert!(
        last_first_page.contains(&format!("start={}", start.replace(':', "%3A"))),
        "{last_first_page} starts ten minutes before {start}"
    );
}

#[tokio::test]
async fn noaa_meets_the_connector_contract() {
    let server = MockServer::start().await;
    run_contract::<NoaaProvider>(config(&server, serde_json::json!({})), &server, &Alerts).await;
}

#[tokio::test]
async fn a_full_poll_sends_the_filters_and_publishes_every_alert() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/alerts/active"))
        .and(query_param("status", "actual"))
        .and(query_param("area", "OH,WV"))
        .and(query_param("severity", "Extreme,Severe"))
        .and(header("accept", "application/geo+json"))
        .and(header("user-agent", DEFAULT_USER_AGENT))
        .respond_with(geo_json(fixture("alerts-active-severe-trimmed.json")))
        .expect(2)
        .mount(&server)
        .await;
    let cfg = config(
        &server,
        serde_json::json!({"area": "oh, WV", "severity": "extreme,Severe"}),
    );
    let mut h = Harness::new::<NoaaProvider>(cfg).await;
    let first = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((first.fetched, first.published), (3, 3));
    let signal: Value = serde_json::from_str(&h.published()[0].signal).expect("json");
    assert_eq!(signal["kind"], "weather_alert");
    assert_eq!(signal["severity"], "high");
    assert_eq!(signal["source"], "noaa");
    assert_eq!(signal["occurredAt"], "2026-09-21T09:00:00-04:00");
    assert_eq!(signal["payload"]["properties"]["event"], "Flood Warning");

    let second = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!(
        (second.published, second.skipped_unchanged),
        (0, 3),
        "an unchanged poll publishes nothing"
    );
}

#[tokio::test]
async fn an_updated_alert_is_published_once() {
    let server = MockServer::start().await;
    serve_active(&server, fixture("alerts-active-severe-trimmed.json")).await;
    let mut h = Harness::new::<NoaaProvider>(config(&server, serde_json::json!({}))).await;
    h.connector.poll(&h.lease).await.expect("first");
    server.reset().await;
    serve_active(
        &server,
        severe_with(|f| f[2]["properties"]["instruction"] = "Move to higher ground.".into()),
    )
    .await;
    let s = h.connector.poll(&h.lease).await.expect("second");
    assert_eq!(s.published, 1);
    let last: Value = serde_json::from_str(&h.published()[3].signal).expect("json");
    assert_eq!(last["change"], "updated");
    let again = h.connector.poll(&h.lease).await.expect("third");
    assert_eq!(again.published, 0);
}

#[tokio::test]
async fn an_expired_alert_is_kept_for_the_removal_grace_then_pruned_without_a_signal() {
    for (grace_ms, removed, kept, missing) in [(None, 0, 3, 1), (Some(0), 1, 2, 0)] {
        let server = MockServer::start().await;
        serve_active(&server, fixture("alerts-active-severe-trimmed.json")).await;
        let mut cfg = config(&server, serde_json::json!({}));
        if let Some(ms) = grace_ms {
            cfg.removal_grace_ms = ms;
        }
        let mut h = Harness::new::<NoaaProvider>(cfg).await;
        h.connector.poll(&h.lease).await.expect("first");
        server.reset().await;
        serve_active(
            &server,
            severe_with(|f| {
                f.remove(0);
            }),
        )
        .await;
        let s = h.connector.poll(&h.lease).await.expect("second");
        assert_eq!((s.published, s.removed), (0, removed), "grace {grace_ms:?}");
        let state = h.backend.load("weather-test").await.expect("state");
        assert_eq!(state.main.versions.len(), kept, "grace {grace_ms:?}");
        // By default the feed dropping an alert once is not a removal: kept, marked missing.
        assert_eq!(state.main.absent.len(), missing, "grace {grace_ms:?}");
    }
}

#[tokio::test]
async fn a_cap_holds_alerts_back_for_the_next_polls_without_losing_any() {
    let server = MockServer::start().await;
    // With an ETag, so a cursor saved too early would turn the next poll into a 304.
    Mock::given(method("GET"))
        .and(header("if-none-match", "W/\"feed\""))
        .respond_with(ResponseTemplate::new(304))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            geo_json(fixture("alerts-active-severe-trimmed.json"))
                .insert_header("etag", "W/\"feed\""),
        )
        .mount(&server)
        .await;
    let cfg = config(&server, serde_json::json!({"maxAlertsPerPoll": 2}));
    let mut h = Harness::new::<NoaaProvider>(cfg).await;
    let first = h.connector.poll(&h.lease).await.expect("first");
    assert_eq!((first.fetched, first.published), (3, 2));
    assert_eq!(first.extras.get("heldBack"), Some(&1));
    let state = h.backend.load("weather-test").await.expect("state");
    assert_eq!(
        state.main.cursor.etag, None,
        "no validators while alerts are held back"
    );
    let second = h.connector.poll(&h.lease).await.expect("second");
    assert_eq!(second.published, 1, "the held-back alert follows");
    let third = h.connector.poll(&h.lease).await.expect("third");
    assert!(
        third.not_modified,
        "once the feed is fully read, the ETag is used"
    );
    let mut ids: Vec<String> = h.published().into_iter().map(|e| e.external_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "every alert published exactly once");
    assert_eq!(h.published().len(), 3);
}

#[tokio::test]
async fn a_malformed_alert_is_skipped_and_prunes_nothing() {
    let server = MockServer::start().await;
    serve_active(&server, fixture("alerts-active-severe-trimmed.json")).await;
    let mut h = Harness::new::<NoaaProvider>(config(&server, serde_json::json!({}))).await;
    h.connector.poll(&h.lease).await.expect("first");
    server.reset().await;
    serve_active(
        &server,
        severe_with(|f| {
            f[0]["properties"] = serde_json::json!({"no": "id"});
            f.remove(1);
        }),
    )
    .await;
    let s = h.connector.poll(&h.lease).await.expect("second");
    assert_eq!(
        s.failed, 1,
        "a feature that is no alert is counted as failed"
    );
    assert_eq!(s.removed, 0, "a partial read is not the whole snapshot");
    let state = h.backend.load("weather-test").await.expect("state");
    assert_eq!(state.main.versions.len(), 3);
}

#[tokio::test]
async fn not_modified_publishes_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(header("if-none-match", "W/\"alerts-1\""))
        .respond_with(ResponseTemplate::new(304))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            geo_json(fixture("alerts-active-severe-trimmed.json"))
                .insert_header("etag", "W/\"alerts-1\""),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut h = Harness::new::<NoaaProvider>(config(&server, serde_json::json!({}))).await;
    h.connector.poll(&h.lease).await.expect("first");
    let s = h.connector.poll(&h.lease).await.expect("second");
    assert!(s.not_modified);
    assert_eq!(s.published, 0);
}

#[tokio::test]
async fn a_503_is_retried_and_the_poll_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    serve_active(&server, fixture("alerts-active-severe-trimmed.json")).await;
    let mut h = Harness::new::<NoaaProvider>(config(&server, serde_json::json!({}))).await;
    let s = h.connector.poll(&h.lease).await.expect("recovers");
    assert_eq!(s.published, 3);
}

/// A manual clock standing at now, and a context that reads it.
fn manual_clock() -> (
    std::sync::Arc<connector_core::context::ManualClock>,
    connector_core::context::Context,
) {
    let clock = std::sync::Arc::new(connector_core::context::ManualClock::at(
        std::time::SystemTime::now(),
    ));
    let context = connector_core::context::Context::isolated().with_clock(clock.clone());
    (clock, context)
}

/// The first request answered 429 with `Retry-After: retry_after`, the next ones with
/// three alerts.
async fn limited_once(server: &MockServer, retry_after: &str) {
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", retry_after))
        .up_to_n_times(1)
        .expect(1)
        .mount(server)
        .await;
    serve_active(server, fixture("alerts-active-severe-trimmed.json")).await;
}

#[tokio::test]
async fn a_429_waits_for_retry_after() {
    let server = MockServer::start().await;
    limited_once(&server, "1").await;
    let (clock, context) = manual_clock();
    let mut h =
        Harness::in_context::<NoaaProvider>(config(&server, serde_json::json!({})), context).await;
    let s = h.connector.poll(&h.lease).await.expect("recovers");
    assert_eq!(clock.slept(), [Duration::from_secs(1)], "waited as asked");
    assert_eq!(s.published, 3);
}

/// A `Retry-After` without retries left holds the next polls (nothing is sent) until it
/// ends, then the next poll goes: on a manual clock, so nothing waits the 3 s.
#[tokio::test]
async fn a_retry_after_holds_across_polls_until_it_ends() {
    let server = MockServer::start().await;
    limited_once(&server, "3").await;
    let (clock, context) = manual_clock();
    let mut cfg = config(&server, serde_json::json!({}));
    cfg.max_retries = 0;
    let mut h = Harness::in_context::<NoaaProvider>(cfg, context).await;
    assert!(
        h.connector.poll(&h.lease).await.is_err(),
        "the 429 fails the poll"
    );
    clock.advance(Duration::from_millis(2900));
    let held = h.connector.poll(&h.lease).await;
    let said = held
        .map(|_| String::new())
        .unwrap_or_else(|e| e.to_string());
    assert!(said.contains("nothing is sent before then"), "{said}");
    assert_eq!(server.received_requests().await.map_or(0, |r| r.len()), 1);
    clock.advance(Duration::from_millis(100));
    let s = h
        .connector
        .poll(&h.lease)
        .await
        .expect("the hold has ended");
    assert_eq!(s.published, 3);
    assert_eq!(server.received_requests().await.map_or(0, |r| r.len()), 2);
    assert!(
        clock.slept().is_empty(),
        "a hold is not slept through: {:?}",
        clock.slept()
    );
}

#[tokio::test]
async fn garbage_fails_the_poll_and_leaves_state_untouched() {
    for (status, body) in [
        (
            200,
            "{\"type\": \"FeatureCollection\", \"features\": [".to_owned(),
        ),
        (200, "<html><body>Access Denied</body></html>".to_owned()),
        (403, "<html><body>Access Denied</body></html>".to_owned()),
    ] {
        let server = MockServer::start().await;
        serve_active(&server, fixture("alerts-active-severe-trimmed.json")).await;
        let mut h = Harness::new::<NoaaProvider>(config(&server, serde_json::json!({}))).await;
        h.connector.poll(&h.lease).await.expect("first");
        let before = h.backend.load("weather-test").await.expect("state");
        server.reset().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(status).set_body_string(body))
            .mount(&server)
            .await;
        let r = h.connector.poll(&h.lease).await;
        assert!(r.is_err(), "status {status}: {r:?}");
        assert_eq!(h.published().len(), 3, "nothing more published");
        assert_eq!(h.backend.load("weather-test").await.expect("state"), before);
    }
}

#[tokio::test]
async fn a_configured_contact_goes_into_the_user_agent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(header(
            "user-agent",
            format!(
                "{} ops@example.com)",
                DEFAULT_USER_AGENT.trim_end_matches(')')
            )
            .as_str(),
        ))
        .respond_with(geo_json(fixture("alerts-active-empty.json")))
        .expect(1)
        .mount(&server)
        .await;
    let mut h = Harness::new::<NoaaProvider>(config(
        &server,
        serde_json::json!({"contact": "ops@example.com"}),
    ))
    .await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!(s.fetched, 0);
}

#[tokio::test]
async fn test_messages_are_dropped_unless_asked_for() {
    let server = MockServer::start().await;
    serve_active(&server, fixture("alerts-active-area-MD.json")).await;
    let mut h =
        Harness::new::<NoaaProvider>(config(&server, serde_json::json!({"area": "MD"}))).await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((s.fetched, s.published), (0, 0));
    assert_eq!(s.extras.get("nonActualDropped"), Some(&1));
}

#[tokio::test]
async fn history_pages_are_followed_until_an_empty_page() {
    let server = MockServer::start().await;
    let local = |name: &str| fixture(name).replace("https://api.weather.gov", &server.uri());
    // The recorded `next` links carry `cursor=`; route on it.
    const PAGE2_CURSOR: &str = "eyJ0IjoxNzkwNjYwODIwLCJpIjoidXJuOm9pZDoyLjQ5LjAuMS44NDAuMC4wZjVkM2EwZTNlMzY4Zjk1YzA1M2ViZjFhODVjYjc3ZGY4ZmZlNGUzLjAwMS4xIn0=";
    Mock::given(method("GET"))
        .and(path("/alerts"))
        .and(query_param("cursor", PAGE2_CURSOR))
        // The recorded link spells the filter `status[0]=actual`.
        .and(query_param("status[0]", "actual"))
        .respond_with(geo_json(local("alerts-history-page2.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/alerts"))
        .and(move |r: &wiremock::Request| {
            r.url
                .query_pairs()
                .any(|(k, v)| k == "cursor" && v != PAGE2_CURSOR)
        })
        .respond_with(geo_json(local("alerts-active-empty.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/alerts"))
        .and(|r: &wiremock::Request| !r.url.query_pairs().any(|(k, _)| k == "cursor"))
        .respond_with(geo_json(local("alerts-history-page1.json")))
        .expect(1)
        .mount(&server)
        .await;
    let mut h = Harness::new::<NoaaProvider>(config(
        &server,
        serde_json::json!({"alertsPath": "/alerts"}),
    ))
    .await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((s.pages, s.fetched, s.published), (3, 6, 6));
}

#[tokio::test]
async fn provider_settings_are_validated_with_clear_errors() {
    let json = r#"{"connectors": [{"name": "w", "type": "NOAA_WEATHER", "providerConfig": {
        "area": "CA,XX", "severity": "Severe,Awful", "point": "91,0", "alertsPath": "alerts", "maxAlertsPerPoll": 0}}]}"#;
    let source = ConfigSource::Text {
        name: "connectors.json".into(),
        text: json.into(),
    };
    let err = ConnectorRegistry::load(
        &source,
        &Environment::default(),
        &connector_noaa::factories(),
    )
    .expect_err("invalid");
    let msgs: Vec<String> = err
        .0
        .iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect();
    assert_eq!(
        msgs,
        vec![
            "connectors[0].providerConfig: area, zone and point exclude one another (the API rejects the combination); set only one",
            "connectors[0].providerConfig.area: unknown area code \"XX\"; expected two-letter state, territory or marine area codes such as CA, TX, PZ, separated by commas",
            "connectors[0].providerConfig.severity: unknown severity \"Awful\"; expected a comma list of Extreme, Severe, Moderate, Minor, Unknown",
            "connectors[0].providerConfig.point: expected \"latitude,longitude\" in degrees, e.g. \"39.7456,-97.0892\"",
            "connectors[0].providerConfig.alertsPath: expected a path starting with '/', e.g. /alerts/active",
            "connectors[0].providerConfig.maxAlertsPerPoll: expected a whole number from 1 to 10000",
        ]
    );
}

#[tokio::test]
async fn an_empty_long_or_control_character_id_fails_its_record_and_prunes_nothing() {
    let server = MockServer::start().await;
    serve_active(&server, fixture("alerts-active-severe-trimmed.json")).await;
    let mut h = Harness::new::<NoaaProvider>(config(&server, serde_json::json!({}))).await;
    assert_eq!(
        h.connector
            .poll(&h.lease)
            .await
            .expect("baseline")
            .published,
        3
    );
    for bad in [
        String::new(),
        "x".repeat(1025),
        "urn:oid:2.49\u{7}".to_owned(),
    ] {
        server.reset().await;
        serve_active(
            &server,
            severe_with(|f| f[0]["properties"]["id"] = bad.clone().into()),
        )
        .await;
        let s = h.connector.poll(&h.lease).await.expect("poll");
        assert_eq!(
            (s.failed, s.published, s.removed),
            (1, 0, 0),
            "{:?}: {s:?}",
            &bad[..bad.len().min(12)]
        );
        assert!(
            h.published()
                .iter()
                .all(|e| !e.external_id.is_empty() && e.external_id.len() <= 1024),
            "never published"
        );
        let state = h.backend.load_state("weather-test");
        assert_eq!(state.main.versions.len(), 3, "the real alert is not pruned");
    }
}
