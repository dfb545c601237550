//! The Jira connector against a local server that answers like Jira: recorded issues as
//! templates, JQL read in the searching user's time zone, page tokens, `/myself`.

use std::sync::{Arc, Mutex};

use connector_core::source::time::{TimeFormat, format_millis, parse_millis, zone};
use connector_core::testing::{
    Harness, IncrementalScenario, Scenario, run_contract, run_incremental_contract,
};
use connector_core::{ConnectorConfig, Severity};
use connector_jira::JiraProvider;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn fixture(name: &str) -> Value {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// 2026-01-05T10:00:00Z, and one minute.
const T0: i64 = 1_767_607_200_000;
const MINUTE: i64 = 60_000;

/// The API's state: issues (built on the recorded one), the user's zone, what was asked.
#[derive(Clone)]
struct Jira {
    inner: Arc<Mutex<State>>,
}

struct State {
    /// `(id, key, updated millis, priority, raw override)`.
    issues: Vec<(String, String, i64, String, Option<String>)>,
    zone: String,
    /// `/myself` answers 401 (a bad token), while search still answers 200.
    bad_token: bool,
    /// Search answers 200 with no issues whatever the JQL (how a bad token looks there).
    search_blind: bool,
    repeat_token: bool,
    jqls: Vec<String>,
    myself_calls: usize,
}

impl Jira {
    fn new(n: usize, zone_name: &str) -> Self {
        let issues = (0..n)
            .map(|i| {
                let id = (10300 + i).to_string();
                (
                    id,
                    format!("OPS-{}", i + 1),
                    T0 + i as i64 * MINUTE,
                    "High".to_owned(),
                    None,
                )
            })
            .collect();
        Self {
            inner: Arc::new(Mutex::new(State {
                issues,
                zone: zone_name.to_owned(),
                bad_token: false,
                search_blind: false,
                repeat_token: false,
                jqls: Vec::new(),
                myself_calls: 0,
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.inner.lock().expect("lock"))
    }

    fn touch(&self, i: usize, updated: i64) {
        self.with(|s| s.issues[i].2 = updated);
    }

    fn jqls(&self) -> Vec<String> {
        self.with(|s| s.jqls.clone())
    }

    async fn mount(&self, server: &MockServer) {
        Mock::given(path("/rest/api/3/myself"))
            .respond_with(self.clone())
            .mount(server)
            .await;
        Mock::given(path("/rest/api/3/search/jql"))
            .respond_with(self.clone())
            .mount(server)
            .await;
    }
}

/// Jira's own time format: milliseconds and an offset without a colon, in `zone`.
fn jira_time(ms: i64, zone_name: &str) -> String {
    let format = TimeFormat::Pattern {
        pattern: "%Y-%m-%dT%H:%M:%S%.3f%z".into(),
        zone: zone_name.into(),
    };
    format_millis(ms, &format).expect("time")
}

/// The `updated >= "yyyy/MM/dd HH:mm"` bound of a JQL, read in `zone` as Jira reads it.
fn bound(jql: &str, zone_name: &str) -> Option<i64> {
    let start = jql.find("updated >= \"")? + "updated >= \"".len();
    let text = &jql[start..start + 16];
    let civil: jiff::civil::DateTime = text.replace('/', "-").replace(' ', "T").parse().ok()?;
    let tz = zone(zone_name).ok()?;
    tz.to_timestamp(civil).ok().map(|t| t.as_millisecond())
}

impl Respond for Jira {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.inner.lock().expect("lock");
        if request.url.path().ends_with("/myself") {
            s.myself_calls += 1;
            if s.bad_token {
                return ResponseTemplate::new(401)
                    .set_body_string("Client must be authenticated to access this resource.");
            }
            return ResponseTemplate::new(200)
                .set_body_json(json!({"accountId": "5b10", "timeZone": s.zone}));
        }
        let q = |name: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let jql = q("jql").unwrap_or_default();
        s.jqls.push(jql.clone());
        if s.search_blind {
            return ResponseTemplate::new(200).set_body_json(json!({"issues": [], "isLast": true}));
        }
        let from = bound(&jql, &s.zone).unwrap_or(i64::MIN);
        let limit: usize = q("maxResults").and_then(|m| m.parse().ok()).unwrap_or(50);
        let offset: usize = q("nextPageToken")
            .and_then(|t| t.strip_prefix('t').and_then(|o| o.parse().ok()))
            .unwrap_or(0);
        let mut matching: Vec<_> = s.issues.iter().filter(|i| i.2 >= from).collect();
        matching.sort_by_key(|i| i.2);
        let template = &fixture("search-jql-page1.json")["issues"][0];
        let page: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(id, key, updated, priority, raw)| {
                if let Some(raw) = raw {
                    return serde_json::from_str(raw).unwrap_or(Value::Null);
                }
                let mut issue = template.clone();
                issue["id"] = json!(id);
                issue["key"] = json!(key);
                issue["fields"]["summary"] = json!(format!("Summary of {key}"));
                issue["fields"]["updated"] = json!(jira_time(*updated, &s.zone));
                issue["fields"]["priority"] = json!({"name": priority, "id": "2"});
                issue
            })
            .collect();
        let mut body = json!({"issues": page, "isLast": true});
        if offset + limit < matching.len() {
            let next = if s.repeat_token && offset > 0 {
                offset
            } else {
                offset + limit
            };
            body = json!({"issues": body["issues"], "nextPageToken": format!("t{next}"), "isLast": false});
        }
        ResponseTemplate::new(200).set_body_json(body)
    }
}

fn config(server: &MockServer, extra: Value) -> ConnectorConfig {
    let mut settings = json!({
        "baseUrl": server.uri(),
        "email": "ops@example.com",
        "apiToken": "tok-SECRET-123",
        "jql": "project = OPS",
        "maxResults": 2,
    });
    if let (Some(s), Some(e)) = (settings.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let mut c = ConnectorConfig::new("jira-test", "JIRA").with_provider_config(settings);
    c.retry_config.base_delay_ms = 10;
    c.retry_config.max_delay_ms = 50;
    c
}

impl IncrementalScenario for Jira {
    async fn serve_pages(&self, server: &MockServer) -> usize {
        let fresh = Jira::new(5, "UTC");
        let n = fresh.with(|f| f.issues.len());
        let issues = fresh.with(|f| std::mem::take(&mut f.issues));
        self.with(|s| {
            s.issues = issues;
            s.repeat_token = false;
            s.jqls.clear();
        });
        self.mount(server).await;
        n
    }
    async fn serve_repeated_token(&self, _server: &MockServer) {
        self.with(|s| s.repeat_token = true);
    }
    async fn break_one(&self, _server: &MockServer) -> String {
        self.with(|s| {
            let issue = &mut s.issues[2];
            issue.4 =
                Some(json!({"id": issue.0, "key": issue.1, "fields": {"updated": 7}}).to_string());
            issue.0.clone()
        })
    }
    async fn fix_one(&self, _server: &MockServer) {
        self.with(|s| s.issues[2].4 = None);
    }
}

/// The general contract on an incremental source: the baseline is three issues, a change
/// moves one issue's `updated` past the others, a failure is a 503.
struct Baseline(Jira);

impl Scenario for Baseline {
    async fn serve_baseline(&self, server: &MockServer) -> usize {
        self.0.mount(server).await;
        self.0.with(|s| s.issues.len())
    }
    async fn serve_one_changed(&self, server: &MockServer) {
        self.0.touch(1, T0 + 30 * MINUTE);
        self.0.mount(server).await;
    }
    async fn serve_failure(&self, server: &MockServer) {
        Mock::given(path_regex_any())
            .respond_with(ResponseTemplate::new(503).set_body_string("maintenance"))
            .mount(server)
            .await;
    }
    async fn serve_one_removed(&self, _server: &MockServer) {
        unreachable!("Jira's search is incremental, not a snapshot")
    }
}

#[tokio::test]
async fn jira_meets_the_contract() {
    let server = MockServer::start().await;
    let baseline = Baseline(Jira::new(3, "UTC"));
    run_contract::<JiraProvider>(config(&server, json!({})), &server, &baseline).await;
}

#[tokio::test]
async fn jira_meets_the_incremental_contract() {
    let server = MockServer::start().await;
    let jira = Jira::new(5, "UTC");
    run_incremental_contract::<JiraProvider>(config(&server, json!({})), &server, &jira).await;
}

#[tokio::test]
async fn a_multi_page_first_sync_then_an_incremental_poll_with_the_users_clause_wrapped() {
    let server = MockServer::start().await;
    let jira = Jira::new(5, "UTC");
    jira.mount(&server).await;
    let cfg = config(
        &server,
        json!({"jql": "project = OPS OR labels = \"order by\" ORDER BY priority DESC"}),
    );
    let mut h = Harness::new::<JiraProvider>(cfg).await;
    let first = h.connector.poll(&h.lease).await.expect("first sync");
    assert_eq!((first.published, first.pages), (5, 3), "{first:?}");
    let jqls = jira.jqls();
    assert_eq!(
        jqls[0], "(project = OPS OR labels = \"order by\") ORDER BY updated ASC",
        "the user's order is replaced"
    );
    let entries = h.published();
    let signal: Value = serde_json::from_str(&entries[0].signal).expect("json");
    assert_eq!(entries[0].external_id, "10300");
    assert_eq!(signal["kind"], "issue");
    assert_eq!(signal["title"], "OPS-1: Summary of OPS-1");
    assert_eq!(signal["severity"], json!(Severity::High));
    assert_eq!(signal["url"], format!("{}/browse/OPS-1", server.uri()));
    assert_eq!(
        signal["occurredAt"], "2026-01-05T10:00:00Z",
        "RFC 3339, not Jira's +0000"
    );

    // Nothing new: the overlap reads the last issues again, and publishes none of them.
    let second = h.connector.poll(&h.lease).await.expect("second");
    assert_eq!(second.published, 0, "{second:?}");
    assert!(
        second.fetched >= 1,
        "the overlap re-read something: {second:?}"
    );
    let last = jira.jqls().last().cloned().unwrap_or_default();
    // Watermark 10:04, minus the default three minutes of overlap.
    assert_eq!(
        last,
        "(project = OPS OR labels = \"order by\") AND updated >= \"2026/01/05 10:01\" ORDER BY updated ASC"
    );

    // One issue updated since: published once, as an update.
    jira.touch(1, T0 + 30 * MINUTE);
    let third = h.connector.poll(&h.lease).await.expect("third");
    assert_eq!(third.published, 1, "{third:?}");
    let updated: Value =
        serde_json::from_str(&h.published().last().expect("entry").signal).expect("json");
    assert_eq!(updated["change"], "updated");
    assert_eq!(updated["externalId"], "10301");
}

#[tokio::test]
async fn a_user_behind_utc_gets_the_bound_in_their_zone_and_misses_nothing() {
    let server = MockServer::start().await;
    let jira = Jira::new(3, "America/Los_Angeles");
    jira.mount(&server).await;
    let mut h = Harness::new::<JiraProvider>(config(&server, json!({}))).await;
    assert_eq!(
        h.connector.poll(&h.lease).await.expect("first").published,
        3
    );
    // Updated one minute after the watermark (10:02Z is 02:02 in Los Angeles).
    jira.touch(0, T0 + 3 * MINUTE);
    let second = h.connector.poll(&h.lease).await.expect("second");
    assert_eq!(second.published, 1, "{second:?}");
    let last = jira.jqls().last().cloned().unwrap_or_default();
    assert!(
        last.contains("updated >= \"2026/01/05 01:59\""),
        "10:02Z minus three minutes, in Los Angeles: {last}"
    );
}

#[tokio::test]
async fn bad_credentials_fail_the_poll_with_advice_and_never_the_token() {
    let server = MockServer::start().await;
    let jira = Jira::new(3, "UTC");
    jira.with(|s| s.bad_token = true);
    jira.mount(&server).await;
    let mut h = Harness::new::<JiraProvider>(config(&server, json!({}))).await;
    let err = h
        .connector
        .poll(&h.lease)
        .await
        .expect_err("401")
        .to_string();
    assert!(
        err.contains("HTTP 401") && err.contains("apiToken"),
        "{err}"
    );
    assert!(!err.contains("tok-SECRET-123"), "{err}");
    assert!(
        jira.jqls().is_empty(),
        "no search before the credentials are known good"
    );
    assert!(h.published().is_empty());
}

#[tokio::test]
async fn an_empty_search_rechecks_the_credentials() {
    let server = MockServer::start().await;
    let jira = Jira::new(3, "UTC");
    jira.mount(&server).await;
    let mut h = Harness::new::<JiraProvider>(config(&server, json!({}))).await;
    assert_eq!(
        h.connector.poll(&h.lease).await.expect("first").published,
        3
    );
    // The token is revoked: search now answers 200 with nothing, /myself 401.
    jira.with(|s| {
        s.search_blind = true;
        s.bad_token = true;
    });
    let err = h
        .connector
        .poll(&h.lease)
        .await
        .expect_err("revoked")
        .to_string();
    assert!(err.contains("refused the credentials"), "{err}");
    assert_eq!(
        jira.with(|s| s.myself_calls),
        2,
        "once before the first poll, once now"
    );
}

#[tokio::test]
async fn jira_down_at_start_up_only_fails_polls_until_it_is_back() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).set_body_string("<html>down</html>"))
        .mount(&server)
        .await;
    let mut cfg = config(&server, json!({}));
    cfg.max_retries = 0;
    let mut h = Harness::new::<JiraProvider>(cfg).await;
    assert!(h.connector.poll(&h.lease).await.is_err(), "the poll fails");
    server.reset().await;
    let jira = Jira::new(2, "UTC");
    jira.mount(&server).await;
    assert_eq!(h.connector.poll(&h.lease).await.expect("back").published, 2);
}

#[tokio::test]
async fn a_429_waits_for_retry_after_and_the_poll_succeeds() {
    let server = MockServer::start().await;
    let jira = Jira::new(2, "UTC");
    Mock::given(path("/rest/api/3/search/jql"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .insert_header("x-ratelimit-reset", "2026-01-05T10:00Z"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    jira.mount(&server).await;
    let clock = std::sync::Arc::new(connector_core::context::ManualClock::at(
        std::time::SystemTime::now(),
    ));
    let context = connector_core::context::Context::isolated().with_clock(clock.clone());
    let mut h = Harness::in_context::<JiraProvider>(config(&server, json!({})), context).await;
    let s = h.connector.poll(&h.lease).await.expect("after the wait");
    assert_eq!(s.published, 2);
    assert_eq!(clock.slept(), [std::time::Duration::from_secs(1)], "waited");
}

#[tokio::test]
async fn a_malformed_page_fails_the_poll_and_leaves_state_untouched() {
    let server = MockServer::start().await;
    let jira = Jira::new(2, "UTC");
    Mock::given(path("/rest/api/3/search/jql"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"))
        .with_priority(1)
        .mount(&server)
        .await;
    jira.mount(&server).await;
    let mut h = Harness::new::<JiraProvider>(config(&server, json!({}))).await;
    let err = h
        .connector
        .poll(&h.lease)
        .await
        .expect_err("garbage")
        .to_string();
    assert!(err.contains("unexpected response"), "{err}");
    assert!(h.backend.load_state("jira-test").main.cursor.is_empty());
}

#[tokio::test]
async fn the_removed_search_endpoint_says_so() {
    let server = MockServer::start().await;
    Mock::given(path("/rest/api/2/myself"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"timeZone": "UTC"})))
        .mount(&server)
        .await;
    Mock::given(path("/rest/api/2/search"))
        .respond_with(
            ResponseTemplate::new(410)
                .set_body_json(fixture("error-410-legacy-search-removed.json")),
        )
        .mount(&server)
        .await;
    let mut cfg = config(&server, json!({"deployment": "dataCenter"}));
    cfg.max_retries = 0;
    let mut h = Harness::new::<JiraProvider>(cfg).await;
    let err = h
        .connector
        .poll(&h.lease)
        .await
        .expect_err("410")
        .to_string();
    assert!(
        err.contains("removed") && err.contains("deployment to cloud"),
        "{err}"
    );
}

#[tokio::test]
async fn data_center_pages_by_start_at_until_the_total() {
    let server = MockServer::start().await;
    Mock::given(path("/rest/api/2/myself"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"timeZone": "Asia/Kolkata"})))
        .mount(&server)
        .await;
    let mut page = fixture("search-legacy-v2-page1-trimmed.json");
    let n = page["issues"].as_array().map_or(0, Vec::len);
    page["total"] = json!(n);
    Mock::given(path("/rest/api/2/search"))
        .and(wiremock::matchers::query_param("startAt", "0"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page))
        .expect(1)
        .mount(&server)
        .await;
    let cfg = config(
        &server,
        json!({"deployment": "dataCenter", "personalAccessToken": "pat-SECRET", "email": null, "apiToken": null, "maxResults": 50}),
    );
    let mut h = Harness::new::<JiraProvider>(cfg).await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((s.published as usize, s.pages), (n, 1), "{s:?}");
    let asked = server.received_requests().await.unwrap_or_default();
    let search = asked
        .iter()
        .find(|r| r.url.path() == "/rest/api/2/search")
        .expect("search");
    let auth = search
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    assert_eq!(auth, Some("Bearer pat-SECRET"));
    // Jira's `+0530` offsets are read as such: the watermark is the newest update in UTC.
    let state = h.backend.load_state("jira-test");
    let watermark = state
        .main
        .cursor
        .watermark
        .as_deref()
        .and_then(parse_millis);
    assert_eq!(watermark, parse_millis("2022-03-20T06:21:50.295+0530"));
}

#[tokio::test]
async fn a_long_jql_is_searched_by_post_with_the_token_in_the_body() {
    let server = MockServer::start().await;
    Mock::given(path("/rest/api/3/myself"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"timeZone": "UTC"})))
        .mount(&server)
        .await;
    let issue = |id: &str, key: &str| {
        let mut i = fixture("search-jql-page1.json")["issues"][0].clone();
        i["id"] = json!(id);
        i["key"] = json!(key);
        i["fields"]["updated"] = json!("2026-01-05T10:00:00.000+0000");
        i
    };
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .and(wiremock::matchers::body_partial_json(
            json!({"nextPageToken": "p2"}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"issues": [issue("2", "OPS-2")], "isLast": true})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"issues": [issue("1", "OPS-1")], "nextPageToken": "p2", "isLast": false}),
        ))
        .expect(1)
        .mount(&server)
        .await;
    let keys: Vec<String> = (0..600).map(|i| format!("OPS-{i}")).collect();
    let jql = format!("key in ({})", keys.join(", "));
    let mut h = Harness::new::<JiraProvider>(config(&server, json!({ "jql": jql }))).await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((s.published, s.pages), (2, 2), "{s:?}");
    let asked = server.received_requests().await.unwrap_or_default();
    let first: Value = asked
        .iter()
        .find(|r| r.method.as_str() == "POST")
        .and_then(|r| serde_json::from_slice(&r.body).ok())
        .expect("a POST");
    assert!(
        first["jql"]
            .as_str()
            .is_some_and(|j| j.ends_with(") ORDER BY updated ASC"))
    );
    assert!(
        first["fields"]
            .as_array()
            .is_some_and(|f| f.contains(&json!("updated")))
    );
    assert!(
        first.get("nextPageToken").is_none(),
        "no token on the first page"
    );
}

/// Jira Data Center's `/rest/api/2/search`: `startAt` offsets over the JQL's matches,
/// with `total`; after the first page, issue 1 is updated (it moves to the end).
#[derive(Clone)]
struct DataCenter {
    jira: Jira,
    changed: Arc<Mutex<bool>>,
}

impl Respond for DataCenter {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if request.url.path().ends_with("/myself") {
            return ResponseTemplate::new(200).set_body_json(json!({"timeZone": "UTC"}));
        }
        let q = |name: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let jql = q("jql").unwrap_or_default();
        let from = bound(&jql, "UTC").unwrap_or(i64::MIN);
        let start: usize = q("startAt").and_then(|s| s.parse().ok()).unwrap_or(0);
        let limit: usize = q("maxResults").and_then(|s| s.parse().ok()).unwrap_or(50);
        let body = self.jira.with(|s| {
            s.jqls.push(jql.clone());
            let mut matching: Vec<_> = s.issues.iter().filter(|i| i.2 >= from).cloned().collect();
            matching.sort_by_key(|i| i.2);
            let issues: Vec<Value> = matching
                .iter()
                .skip(start)
                .take(limit)
                .map(|(id, key, updated, _, _)| {
                    json!({"id": id, "key": key, "fields": {
                        "summary": format!("Summary of {key}"),
                        "updated": jira_time(*updated, "UTC"),
                    }})
                })
                .collect();
            json!({"startAt": start, "maxResults": limit, "total": matching.len(), "issues": issues})
        });
        let mut changed = self.changed.lock().expect("lock");
        if !*changed {
            *changed = true;
            self.jira.touch(0, T0 + 30 * MINUTE);
        }
        ResponseTemplate::new(200).set_body_json(body)
    }
}

#[tokio::test]
async fn a_data_center_read_re_anchors_on_updated_so_an_issue_updated_mid_read_skips_none() {
    let server = MockServer::start().await;
    let dc = DataCenter {
        jira: Jira::new(5, "UTC"),
        changed: Arc::new(Mutex::new(false)),
    };
    Mock::given(path_regex_any())
        .respond_with(dc.clone())
        .mount(&server)
        .await;
    let cfg = config(
        &server,
        json!({"deployment": "dataCenter", "personalAccessToken": "pat", "email": null, "apiToken": null}),
    );
    let mut h = Harness::new::<JiraProvider>(cfg).await;
    h.connector.poll(&h.lease).await.expect("poll");
    let mut ids: Vec<String> = h.published().into_iter().map(|e| e.external_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids,
        ["10300", "10301", "10302", "10303", "10304"],
        "{:?}",
        dc.jira.jqls()
    );
    assert!(
        dc.jira.jqls()[1].contains("updated >= \"2026/01/05 10:01\""),
        "page 2 is asked for from page 1's newest update: {:?}",
        dc.jira.jqls()
    );
}

fn path_regex_any() -> wiremock::matchers::PathRegexMatcher {
    wiremock::matchers::path_regex("^/rest/api/2/(search|myself)$")
}
