//! The README's worked examples, as written there, against mocks serving each API's
//! recorded responses, through the contract harness.

use connector_core::ConnectorConfig;
use connector_core::testing::{Harness, Scenario, run_contract};
use connector_http::HttpJsonProvider;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn fixture(name: &str) -> Value {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// The example `name` of the README, its API origin replaced by the mock's and every
/// `${VAR}` by a test value.
pub fn example(name: &str, origin: &str, server: &MockServer) -> ConnectorConfig {
    example_with(name, origin, server, |_| {})
}

/// [`example`], with `edit` applied to its `providerConfig`.
pub fn example_with(
    name: &str,
    origin: &str,
    server: &MockServer,
    edit: impl FnOnce(&mut Value),
) -> ConnectorConfig {
    let readme = include_str!("../README.md");
    let marker = format!("<!-- example: {name} -->");
    let start = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("no example {name}"));
    let block = &readme[start..];
    let json_start = block.find("```json").expect("a json block") + "```json".len();
    let json_end = block[json_start..].find("```").expect("closed") + json_start;
    let mut text = block[json_start..json_end].replace(origin, &server.uri());
    while let Some(at) = text.find("${") {
        let end = text[at..].find('}').expect("closed") + at;
        text.replace_range(at..=end, "test-SECRET");
    }
    let mut doc: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("example {name}: {e}"));
    edit(&mut doc["providerConfig"]);
    let mut c = ConnectorConfig::new(
        doc["name"].as_str().expect("name"),
        doc["type"].as_str().expect("type"),
    )
    .with_provider_config(doc["providerConfig"].clone());
    c.retry_config.base_delay_ms = 10;
    c.retry_config.max_delay_ms = 50;
    c
}

fn json_response(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// What a scenario serves.
#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Baseline,
    Changed,
    Removed,
}

/// One API's recorded pages, served as that API pages them.
#[derive(Clone, Copy)]
enum Api {
    GitHub,
    Jira,
    Datadog,
    Statuspage,
    PagerDuty,
    Noaa,
}

impl Api {
    /// Mounts the pages; returns how many records they hold (after `skip`).
    async fn mount(self, server: &MockServer, variant: Variant) -> usize {
        server.reset().await;
        let changed = variant != Variant::Baseline;
        match self {
            Api::GitHub => {
                let mut page1 = fixture("github/issues-page1.json");
                if changed {
                    page1[0]["updated_at"] = json!("2022-07-20T00:00:00Z");
                    page1[0]["title"] = json!("Test issue 13, edited");
                }
                let mut last = fixture("github/issues-page5-last.json");
                // A pull request, which the example skips.
                let mut pr = last[0].clone();
                pr["node_id"] = json!("PR_kwDOHrjtpM5");
                pr["pull_request"] = json!({"url": "https://api.github.com/repos/x/y/pulls/2"});
                last.as_array_mut().expect("array").push(pr);
                let next = format!(
                    "<{}/repositories/515435940/issues?per_page=3&page=2>; rel=\"next\"",
                    server.uri()
                );
                Mock::given(path("/repos/octokit-fixture-org/hello-world/issues"))
                    .respond_with(json_response(page1).insert_header("link", next.as_str()))
                    .mount(server)
                    .await;
                Mock::given(path("/repositories/515435940/issues"))
                    .and(query_param("page", "2"))
                    .respond_with(json_response(last))
                    .mount(server)
                    .await;
                4
            }
            Api::Jira => {
                let mut page1 = fixture("jira/search-jql-page1.json");
                if changed {
                    page1["issues"][0]["fields"]["summary"] = json!("Test summary, edited");
                }
                let token = page1["nextPageToken"].as_str().expect("token").to_owned();
                Mock::given(path("/rest/api/3/search/jql"))
                    .and(query_param("nextPageToken", token))
                    .respond_with(json_response(fixture(
                        "jira/search-jql-last-page.spec-example.json",
                    )))
                    .mount(server)
                    .await;
                Mock::given(path("/rest/api/3/search/jql"))
                    .and(|r: &Request| !r.url.query_pairs().any(|(k, _)| k == "nextPageToken"))
                    .respond_with(json_response(page1))
                    .mount(server)
                    .await;
                4
            }
            Api::Datadog => {
                let mut page1 = fixture("datadog/events-v2-list-page1.json");
                let page2 = fixture("datadog/events-v2-list-page2.json");
                if changed {
                    // Events are immutable; a re-sent one with a new time is a new version.
                    page1["data"][0]["attributes"]["timestamp"] = json!("2022-06-20T17:07:40Z");
                }
                let cursor = |p: &Value| {
                    p["meta"]["page"]["after"]
                        .as_str()
                        .expect("cursor")
                        .to_owned()
                };
                Mock::given(path("/api/v2/events"))
                    .and(query_param("page[cursor]", cursor(&page2)))
                    .respond_with(json_response(fixture("datadog/events-v2-list-empty.json")))
                    .mount(server)
                    .await;
                Mock::given(path("/api/v2/events"))
                    .and(query_param("page[cursor]", cursor(&page1)))
                    .respond_with(json_response(page2))
                    .mount(server)
                    .await;
                Mock::given(path("/api/v2/events"))
                    .and(|r: &Request| !r.url.query_pairs().any(|(k, _)| k == "page[cursor]"))
                    .respond_with(json_response(page1))
                    .mount(server)
                    .await;
                3
            }
            Api::Statuspage => {
                let mut page1 = fixture("statuspage/incidents-page1.json");
                if changed {
                    page1[0]["updated_at"] = json!("2018-05-01T00:00:00.000Z");
                    page1[0]["status"] = json!("resolved");
                }
                let pages = [
                    page1,
                    fixture("statuspage/incidents-page2.json"),
                    fixture("statuspage/incidents-empty.json"),
                ];
                for (i, page) in pages.into_iter().enumerate() {
                    Mock::given(path("/v1/pages/kyyfz4489y7m/incidents.json"))
                        .and(query_param("page", (i + 1).to_string()))
                        .and(query_param("limit", "4"))
                        .respond_with(json_response(page))
                        .mount(server)
                        .await;
                }
                8
            }
            Api::PagerDuty => {
                let mut page1 = fixture("pagerduty/incidents-page1.json");
                if changed {
                    page1["incidents"][0]["last_status_change_at"] = json!("2020-09-02T00:00:00Z");
                    page1["incidents"][0]["status"] = json!("resolved");
                }
                let pages = [
                    page1,
                    fixture("pagerduty/incidents-page2.json"),
                    fixture("pagerduty/incidents-empty.json"),
                ];
                for (i, page) in pages.into_iter().enumerate() {
                    Mock::given(path("/incidents"))
                        .and(query_param("offset", (i * 3).to_string()))
                        .and(query_param("limit", "3"))
                        .respond_with(json_response(page))
                        .mount(server)
                        .await;
                }
                6
            }
            Api::Noaa => {
                let mut page = fixture("noaa/alerts-active-severe-trimmed.json");
                let features = page["features"].as_array_mut().expect("features");
                if changed {
                    features[1]["properties"]["sent"] = json!("2026-10-02T10:00:00-05:00");
                }
                if variant == Variant::Removed {
                    features.remove(0);
                }
                Mock::given(path("/alerts/active"))
                    .and(query_param("area", "MD"))
                    .respond_with(json_response(page))
                    .mount(server)
                    .await;
                3
            }
        }
    }
}

impl Scenario for Api {
    async fn serve_baseline(&self, server: &MockServer) -> usize {
        self.mount(server, Variant::Baseline).await
    }
    async fn serve_one_changed(&self, server: &MockServer) {
        self.mount(server, Variant::Changed).await;
    }
    async fn serve_failure(&self, server: &MockServer) {
        server.reset().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(503).set_body_string("<html>unavailable</html>"))
            .mount(server)
            .await;
    }
    async fn serve_one_removed(&self, server: &MockServer) {
        self.mount(server, Variant::Removed).await;
    }
}

/// Sets the page size to what the recorded pages hold.
fn page_size(pointer: &'static str, size: u64) -> impl FnOnce(&mut Value) {
    move |pc| {
        if let Some(v) = pc.pointer_mut(pointer) {
            *v = json!(size);
        }
    }
}

#[tokio::test]
async fn the_github_example_meets_the_contract() {
    let server = MockServer::start().await;
    let c = example("github", "https://api.github.com", &server);
    run_contract::<HttpJsonProvider>(c, &server, &Api::GitHub).await;
}

#[tokio::test]
async fn the_jira_example_meets_the_contract() {
    let server = MockServer::start().await;
    let c = example("jira", "https://your-domain.atlassian.net", &server);
    run_contract::<HttpJsonProvider>(c, &server, &Api::Jira).await;
}

#[tokio::test]
async fn the_datadog_example_meets_the_contract() {
    let server = MockServer::start().await;
    let c = example("datadog", "https://api.datadoghq.com", &server);
    run_contract::<HttpJsonProvider>(c, &server, &Api::Datadog).await;
}

#[tokio::test]
async fn the_statuspage_example_meets_the_contract() {
    let server = MockServer::start().await;
    let c = example_with(
        "statuspage",
        "https://api.statuspage.io",
        &server,
        page_size("/pagination/size", 4),
    );
    run_contract::<HttpJsonProvider>(c, &server, &Api::Statuspage).await;
}

#[tokio::test]
async fn the_pagerduty_example_meets_the_contract() {
    let server = MockServer::start().await;
    let c = example_with(
        "pagerduty",
        "https://api.pagerduty.com",
        &server,
        page_size("/pagination/limit", 3),
    );
    run_contract::<HttpJsonProvider>(c, &server, &Api::PagerDuty).await;
}

#[tokio::test]
async fn the_noaa_example_meets_the_contract() {
    let server = MockServer::start().await;
    let c = example("noaa", "https://api.weather.gov", &server);
    run_contract::<HttpJsonProvider>(c, &server, &Api::Noaa).await;
}

#[tokio::test]
async fn the_examples_send_what_their_apis_expect() {
    // GitHub: the pull request is skipped, the link followed, the token sent as Bearer.
    let server = MockServer::start().await;
    Api::GitHub.mount(&server, Variant::Baseline).await;
    let mut h =
        Harness::new::<HttpJsonProvider>(example("github", "https://api.github.com", &server))
            .await;
    // Page 2 is asked for from page 1's newest `updated_at` (re-anchored on `since`); the
    // recorded page comes back, all at or before that time, so the read follows its link.
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!(
        (s.published, s.pages, s.extras.get("skipped").copied()),
        (4, 3, Some(1)),
        "{s:?}"
    );
    let asked = server.received_requests().await.unwrap_or_default();
    assert_eq!(
        asked[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some("Bearer test-SECRET")
    );
    assert!(
        !asked[0].url.query().unwrap_or_default().contains("since"),
        "no since on a first sync"
    );
    let signal: Value = serde_json::from_str(&h.published()[0].signal).expect("json");
    assert_eq!(
        (signal["source"].as_str(), signal["kind"].as_str()),
        (Some("github"), Some("issue"))
    );
    assert_eq!(signal["title"], "#13 Test issue 13");
    // The second poll asks from the watermark minus the lookback.
    let before = server.received_requests().await.unwrap_or_default().len();
    h.connector.poll(&h.lease).await.expect("second");
    let asked = server.received_requests().await.unwrap_or_default();
    let since = asked[before..]
        .iter()
        .find(|r| r.url.path().starts_with("/repos/"))
        .and_then(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "since")
                .map(|(_, v)| v.into_owned())
        });
    assert_eq!(
        since.as_deref(),
        Some("2022-07-19T04:38:16Z"),
        "04:39:16 minus a minute"
    );

    // Jira: the JQL carries the initial bound in the pattern, the token goes back.
    let server = MockServer::start().await;
    Api::Jira.mount(&server, Variant::Baseline).await;
    let mut h = Harness::new::<HttpJsonProvider>(example(
        "jira",
        "https://your-domain.atlassian.net",
        &server,
    ))
    .await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((s.published, s.pages), (4, 2), "{s:?}");
    let asked = server.received_requests().await.unwrap_or_default();
    let jql = asked[0]
        .url
        .query_pairs()
        .find(|(k, _)| k == "jql")
        .map(|(_, v)| v.into_owned());
    assert_eq!(
        jql.as_deref(),
        Some("project = JAVA AND updated >= \"2020/01/01 00:00\" ORDER BY updated ASC")
    );
    let signal: Value = serde_json::from_str(&h.published()[0].signal).expect("json");
    assert_eq!(signal["title"], "JAVA-93: Test summary2");
    assert_eq!(signal["url"], format!("{}/browse/JAVA-93", server.uri()));

    // Datadog: the keys as headers, epoch milliseconds in filter[from].
    let server = MockServer::start().await;
    Api::Datadog.mount(&server, Variant::Baseline).await;
    let mut h =
        Harness::new::<HttpJsonProvider>(example("datadog", "https://api.datadoghq.com", &server))
            .await;
    assert_eq!(h.connector.poll(&h.lease).await.expect("poll").published, 3);
    let asked = server.received_requests().await.unwrap_or_default();
    assert_eq!(
        asked[0]
            .headers
            .get("dd-api-key")
            .and_then(|v| v.to_str().ok()),
        Some("test-SECRET")
    );
    let from = asked[0]
        .url
        .query_pairs()
        .find(|(k, _)| k == "filter[from]")
        .map(|(_, v)| v.into_owned());
    assert_eq!(from.as_deref(), Some("1655683200000"));

    // PagerDuty: `more: false` on the second page ends the read; the empty page after it
    // is never asked for.
    let server = MockServer::start().await;
    Api::PagerDuty.mount(&server, Variant::Baseline).await;
    let mut h = Harness::new::<HttpJsonProvider>(example_with(
        "pagerduty",
        "https://api.pagerduty.com",
        &server,
        page_size("/pagination/limit", 3),
    ))
    .await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((s.published, s.pages), (6, 2), "{s:?}");
    let asked = server.received_requests().await.unwrap_or_default();
    assert_eq!(asked.len(), 2, "no request after `more: false`");
}
