//! The GitHub connector against a local server that answers like GitHub: recorded issues
//! as templates, `since` and page numbers, `Link` headers in the `/repositories/<id>`
//! form, an `ETag` per page, rate-limit headers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use connector_core::ConnectorConfig;
use connector_core::source::time::{TimeFormat, format_millis, parse_millis};
use connector_core::testing::{
    Harness, IncrementalScenario, Scenario, run_contract, run_incremental_contract,
};
use connector_github::GithubProvider;
use serde_json::{Value, json};
use wiremock::matchers::{path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn fixture(name: &str) -> Value {
    let p = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// 2026-01-05T10:00:00Z, and one minute.
const T0: i64 = 1_767_607_200_000;
const MINUTE: i64 = 60_000;
const TOKEN: &str = "ghp_SECRET0000000000000000000000000000";

#[derive(Clone)]
struct GitHub {
    inner: Arc<Mutex<State>>,
}

struct State {
    origin: String,
    /// Per repository: `(number, updated millis, pull request)`.
    repos: HashMap<String, Vec<(u64, i64, bool)>>,
    /// Repositories answering 404.
    missing: Vec<String>,
    /// Page 1's next link points at this origin instead.
    foreign_next: Option<String>,
    /// After this many requests, set an issue's time: `(requests, repo, number, millis)`.
    change_after: Option<(usize, String, u64, i64)>,
    /// The next 200 says the quota is spent, resetting at this epoch second.
    exhaust: Option<u64>,
    remaining: u64,
    /// Every next link points at page 2 (a loop).
    repeat_link: bool,
    /// This issue's `updated_at` is served as a number (it does not parse).
    broken: Option<u64>,
    requests: Vec<String>,
    not_modified: usize,
}

impl GitHub {
    fn new(server: &MockServer) -> Self {
        Self {
            inner: Arc::new(Mutex::new(State {
                origin: server.uri(),
                repos: HashMap::new(),
                missing: Vec::new(),
                foreign_next: None,
                change_after: None,
                exhaust: None,
                remaining: 5000,
                repeat_link: false,
                broken: None,
                requests: Vec::new(),
                not_modified: 0,
            })),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.inner.lock().expect("lock"))
    }

    /// `n` issues `#1..` updated a minute apart from T0.
    fn repo(self, name: &str, n: u64) -> Self {
        self.with(|s| {
            let issues = (1..=n)
                .map(|i| (i, T0 + (i as i64 - 1) * MINUTE, false))
                .collect();
            s.repos.insert(name.to_owned(), issues);
        });
        self
    }

    fn set(&self, repo: &str, number: u64, updated: i64) {
        self.with(|s| {
            if let Some(i) = s
                .repos
                .get_mut(repo)
                .and_then(|r| r.iter_mut().find(|i| i.0 == number))
            {
                i.1 = updated;
            }
        });
    }

    fn requests(&self) -> Vec<String> {
        self.with(|s| s.requests.clone())
    }

    async fn mount(&self, server: &MockServer) {
        Mock::given(path_regex(
            r"^/(repos/[^/]+/[^/]+|repositories/\d+)/issues$",
        ))
        .respond_with(self.clone())
        .mount(server)
        .await;
    }
}

fn repo_id(name: &str) -> u64 {
    515_435_940 + name.bytes().map(u64::from).sum::<u64>()
}

impl Respond for GitHub {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let response = self.answer(request);
        let change = self.with(|s| {
            let due = s
                .change_after
                .as_ref()
                .is_some_and(|c| s.requests.len() >= c.0);
            if due { s.change_after.take() } else { None }
        });
        if let Some((_, repo, number, at)) = change {
            self.set(&repo, number, at);
        }
        response
    }
}

impl GitHub {
    fn answer(&self, request: &Request) -> ResponseTemplate {
        let mut s = self.inner.lock().expect("lock");
        let auth = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        s.requests.push(format!(
            "{}?{}",
            request.url.path(),
            request.url.query().unwrap_or_default()
        ));
        if !auth.is_some_and(|a| a.starts_with(&format!("Bearer {TOKEN}"))) {
            return ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"}));
        }
        let segments: Vec<&str> = request.url.path().split('/').collect();
        let repo = match segments.as_slice() {
            ["", "repos", owner, name, "issues"] => format!("{owner}/{name}"),
            ["", "repositories", id, "issues"] => s
                .repos
                .keys()
                .find(|r| repo_id(r).to_string() == *id)
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        };
        if s.missing.contains(&repo) || !s.repos.contains_key(&repo) {
            return ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"}));
        }
        let q: HashMap<String, String> = request.url.query_pairs().into_owned().collect();
        let since = q
            .get("since")
            .and_then(|t| parse_millis(t))
            .unwrap_or(i64::MIN);
        let per_page: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(30);
        let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
        let mut matching: Vec<(u64, i64, bool)> = s.repos[&repo]
            .iter()
            .filter(|i| i.1 >= since)
            .copied()
            .collect();
        matching.sort_by_key(|i| (i.1, i.0));
        let template = fixture("issues-page1.json")[0].clone();
        let items: Vec<Value> = matching
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|(number, updated, pr)| {
                let mut issue = template.clone();
                issue["id"] = json!(1_308_969_000 + number);
                issue["node_id"] = json!(format!("I_{repo}_{number}"));
                issue["number"] = json!(number);
                issue["title"] = json!(format!("Issue {number}"));
                issue["html_url"] = json!(format!("https://github.com/{repo}/issues/{number}"));
                issue["updated_at"] =
                    json!(format_millis(*updated, &TimeFormat::Rfc3339).expect("time"));
                if s.broken == Some(*number) {
                    issue["updated_at"] = json!(7);
                }
                if *pr {
                    issue["pull_request"] = json!({"url": "https://api.github.com/pulls/1"});
                }
                issue
            })
            .collect();
        let body = Value::Array(items).to_string();
        let etag = format!(
            "\"{:x}\"",
            body.len() as u64 * 31 + body.bytes().map(u64::from).sum::<u64>() + page as u64
        );
        let reset = s.exhaust.unwrap_or(1_767_610_800);
        let limit_headers = |r: ResponseTemplate, left: u64| {
            r.insert_header("x-ratelimit-limit", "5000")
                .insert_header("x-ratelimit-remaining", left.to_string().as_str())
                .insert_header("x-ratelimit-reset", reset.to_string().as_str())
                .insert_header("x-ratelimit-resource", "core")
        };
        if request
            .headers
            .get("if-none-match")
            .and_then(|v| v.to_str().ok())
            == Some(etag.as_str())
        {
            s.not_modified += 1;
            let left = s.remaining;
            return limit_headers(
                ResponseTemplate::new(304).insert_header("etag", etag.as_str()),
                left,
            );
        }
        s.remaining = if s.exhaust.is_some() {
            0
        } else {
            s.remaining.saturating_sub(1)
        };
        let mut response = limit_headers(ResponseTemplate::new(200), s.remaining)
            .insert_header("etag", etag.as_str())
            .insert_header("content-type", "application/json; charset=utf-8");
        if page * per_page < matching.len() {
            let origin = match (&s.foreign_next, page) {
                (Some(foreign), 1) => foreign.clone(),
                _ => s.origin.clone(),
            };
            let mut next =
                url::Url::parse(&format!("{origin}/repositories/{}/issues", repo_id(&repo)))
                    .expect("url");
            for (k, v) in request.url.query_pairs().filter(|(k, _)| k != "page") {
                next.query_pairs_mut().append_pair(&k, &v);
            }
            let to = if s.repeat_link { 2 } else { page + 1 };
            next.query_pairs_mut().append_pair("page", &to.to_string());
            response = response.insert_header("link", format!("<{next}>; rel=\"next\"").as_str());
        }
        response.set_body_raw(body, "application/json")
    }
}

fn config(server: &MockServer, extra: Value) -> ConnectorConfig {
    let mut settings = json!({
        "baseUrl": server.uri(),
        // Rate-limit waits are kept per token in the harness's own context: every test may
        // use the same token.
        "token": TOKEN,
        "repositories": ["octo/app"],
        "perPage": 2,
    });
    if let (Some(s), Some(e)) = (settings.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let mut c = ConnectorConfig::new("github-test", "GITHUB").with_provider_config(settings);
    c.retry_config.base_delay_ms = 10;
    c.retry_config.max_delay_ms = 50;
    c
}

struct Contract {
    api: Mutex<Option<GitHub>>,
}

impl Contract {
    fn api(&self) -> GitHub {
        self.api.lock().expect("lock").clone().expect("served")
    }
}

impl IncrementalScenario for Contract {
    async fn serve_pages(&self, server: &MockServer) -> usize {
        let api = GitHub::new(server).repo("octo/app", 5);
        api.mount(server).await;
        *self.api.lock().expect("lock") = Some(api);
        5
    }
    async fn serve_repeated_token(&self, _server: &MockServer) {
        // Every issue at one time, so the read follows links (re-anchoring cannot get past
        // a page that shares one time), and every link back to page 2.
        self.api().with(|s| {
            for i in s.repos.values_mut().flatten() {
                i.1 = T0;
            }
            s.repeat_link = true;
        });
    }
    async fn break_one(&self, _server: &MockServer) -> String {
        self.api().with(|s| s.broken = Some(3));
        "I_octo/app_3".into()
    }
    async fn fix_one(&self, _server: &MockServer) {
        self.api().with(|s| s.broken = None);
    }
}

/// The general contract on an incremental source: three issues, one of them updated
/// after the others, a failure is a 502.
struct Baseline(GitHub);

impl Scenario for Baseline {
    async fn serve_baseline(&self, server: &MockServer) -> usize {
        self.0.mount(server).await;
        3
    }
    async fn serve_one_changed(&self, server: &MockServer) {
        self.0.set("octo/app", 2, T0 + 30 * MINUTE);
        self.0.mount(server).await;
    }
    async fn serve_failure(&self, server: &MockServer) {
        Mock::given(wiremock::matchers::any())
            .respond_with(ResponseTemplate::new(502).set_body_string("bad gateway"))
            .mount(server)
            .await;
    }
    async fn serve_one_removed(&self, _server: &MockServer) {
        unreachable!("issues are read incrementally, not as a snapshot")
    }
}

#[tokio::test]
async fn github_meets_the_contract() {
    let server = MockServer::start().await;
    let baseline = Baseline(GitHub::new(&server).repo("octo/app", 3));
    run_contract::<GithubProvider>(config(&server, json!({})), &server, &baseline).await;
}

#[tokio::test]
async fn github_meets_the_incremental_contract() {
    let server = MockServer::start().await;
    let contract = Contract {
        api: Mutex::new(None),
    };
    run_incremental_contract::<GithubProvider>(config(&server, json!({})), &server, &contract)
        .await;
}

async fn harness(server: &MockServer, extra: Value) -> Harness {
    Harness::new::<GithubProvider>(config(server, extra)).await
}

#[tokio::test]
async fn link_pages_are_followed_while_a_page_shares_one_time() {
    let server = MockServer::start().await;
    let api = GitHub::new(&server).repo("octo/app", 6);
    // Issues 1 to 4 updated in the same second: only page numbers get past them.
    for n in 1..=4 {
        api.set("octo/app", n, T0);
    }
    api.mount(&server).await;
    let mut h = harness(&server, json!({})).await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!(s.published, 6, "{s:?}");
    let asked = api.requests();
    assert!(
        asked
            .iter()
            .any(|r| r.starts_with("/repositories/") && r.contains("page=2"))
            && asked.iter().any(|r| r.contains("page=3")),
        "the recorded /repositories/<id> links were followed verbatim: {asked:?}"
    );
    let entry = &h.published()[0];
    let signal: Value = serde_json::from_str(&entry.signal).expect("json");
    assert_eq!(entry.external_id, "I_octo/app_1");
    assert_eq!(signal["kind"], "issue");
    assert_eq!(signal["title"], "octo/app#1: Issue 1");
    assert_eq!(signal["url"], "https://github.com/octo/app/issues/1");
    assert_eq!(signal["source"], "github");
}

#[tokio::test]
async fn unchanged_pages_cost_304s_and_a_change_on_the_last_page_is_found_through_the_stored_links()
{
    let server = MockServer::start().await;
    let api = GitHub::new(&server).repo("octo/app", 5);
    api.mount(&server).await;
    // A day of overlap: each poll asks the same pages again.
    let mut h = harness(&server, json!({"overlapSeconds": 86400})).await;
    assert_eq!(
        h.connector.poll(&h.lease).await.expect("first").published,
        5
    );
    assert_eq!(
        h.connector.poll(&h.lease).await.expect("second").published,
        0
    );
    let (asked, revalidated, quota) = (
        api.requests().len(),
        api.with(|s| s.not_modified),
        api.with(|s| s.remaining),
    );
    let third = h.connector.poll(&h.lease).await.expect("third");
    assert_eq!(third.published, 0, "{third:?}");
    let pages = api.requests().len() - asked;
    assert_eq!(api.with(|s| s.not_modified) - revalidated, pages, "all 304");
    assert!(pages >= 3, "the chain of pages was walked: {pages}");
    assert_eq!(api.with(|s| s.remaining), quota, "304s use no quota");
    let gauges = h.connector.gauges();
    assert_eq!(gauges, vec![("rate_limit_remaining", quota as f64)]);

    // The newest issue changes: it stays on the last page; page 1 is still a 304.
    api.set("octo/app", 5, T0 + 4 * MINUTE + 30_000);
    let (asked, revalidated) = (api.requests().len(), api.with(|s| s.not_modified));
    let fourth = h.connector.poll(&h.lease).await.expect("fourth");
    assert_eq!(fourth.published, 1, "{fourth:?}");
    let full = (api.requests().len() - asked) - (api.with(|s| s.not_modified) - revalidated);
    assert_eq!(full, 1, "only the changed last page was read in full");
}

#[tokio::test]
async fn an_issue_updated_mid_read_does_not_make_the_read_skip_another() {
    let server = MockServer::start().await;
    let api = GitHub::new(&server).repo("octo/app", 6);
    // After page 1, issue 1 is updated: it moves to the end, the rest one place back.
    api.with(|s| s.change_after = Some((1, "octo/app".into(), 1, T0 + 30 * MINUTE)));
    api.mount(&server).await;
    let mut h = harness(&server, json!({})).await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    let mut ids: Vec<String> = h.published().into_iter().map(|e| e.external_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "every issue read: {ids:?} {s:?}");
}

/// One repository of two issues whose last request spends the token's quota, the reset
/// half an hour away.
async fn spent_quota(server: &MockServer) -> GitHub {
    let api = GitHub::new(server).repo("octo/app", 2);
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 1800;
    api.with(|s| s.exhaust = Some(reset));
    api.mount(server).await;
    api
}

#[tokio::test]
async fn a_spent_quota_holds_the_next_polls_until_the_reset() {
    let server = MockServer::start().await;
    let api = spent_quota(&server).await;
    let mut h = harness(&server, json!({})).await;
    let first = h
        .connector
        .poll(&h.lease)
        .await
        .expect("the last request of the window");
    assert_eq!(first.published, 2);
    assert_eq!(h.connector.gauges(), vec![("rate_limit_remaining", 0.0)]);
    let asked = api.requests().len();
    let err = h
        .connector
        .poll(&h.lease)
        .await
        .expect_err("held")
        .to_string();
    assert!(err.contains("rate limited"), "{err}");
    assert_eq!(api.requests().len(), asked, "nothing sent before the reset");
}

/// GitHub counts per token: in one process, a spent quota holds every connector with
/// that token (nothing is sent for them before the reset) and no connector with another.
#[tokio::test]
async fn a_spent_quota_holds_every_connector_of_its_token_and_no_other() {
    let server = MockServer::start().await;
    let api = spent_quota(&server).await;
    let context = connector_core::context::Context::isolated();
    let named = |name: &str, token: &str| {
        let mut c = config(&server, json!({ "token": token }));
        c.name = name.into();
        c
    };
    let mut spent =
        Harness::in_context::<GithubProvider>(named("spent", TOKEN), context.clone()).await;
    spent
        .connector
        .poll(&spent.lease)
        .await
        .expect("the last request of the window");
    let asked = api.requests().len();
    let mut same =
        Harness::in_context::<GithubProvider>(named("same", TOKEN), context.clone()).await;
    let err = same
        .connector
        .poll(&same.lease)
        .await
        .expect_err("held")
        .to_string();
    assert!(err.contains("rate limited"), "{err}");
    assert_eq!(
        api.requests().len(),
        asked,
        "nothing sent with the spent token"
    );
    let other_token = "ghp_another000000000000000000000000000000";
    let mut other =
        Harness::in_context::<GithubProvider>(named("other", other_token), context).await;
    let _ = other.connector.poll(&other.lease).await;
    assert!(
        api.requests().len() > asked,
        "another token's connector is not held"
    );
}

#[tokio::test]
async fn a_secondary_limit_is_honoured_and_a_permission_403_is_not_one() {
    let server = MockServer::start().await;
    Mock::given(path("/repos/octo/app/issues"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(fixture("error-403-secondary-rate-limit.json")),
        )
        .mount(&server)
        .await;
    let mut cfg = config(&server, json!({}));
    cfg.max_retries = 0;
    let mut h = Harness::new::<GithubProvider>(cfg).await;
    assert!(h.connector.poll(&h.lease).await.is_err());
    let asked = server.received_requests().await.unwrap_or_default().len();
    let err = h
        .connector
        .poll(&h.lease)
        .await
        .expect_err("held")
        .to_string();
    assert!(
        err.contains("rate limited"),
        "a minute's wait, although no Retry-After: {err}"
    );
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        asked
    );

    let other = MockServer::start().await;
    Mock::given(path("/repos/octo/app/issues"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"message": "Resource not accessible by integration"})),
        )
        .mount(&other)
        .await;
    let mut h = harness(&other, json!({})).await;
    let err = h
        .connector
        .poll(&h.lease)
        .await
        .expect_err("403")
        .to_string();
    assert!(
        err.contains("403") && !err.contains("rate limited"),
        "{err}"
    );
    assert_eq!(
        other.received_requests().await.unwrap_or_default().len(),
        1,
        "not retried"
    );
}

#[tokio::test]
async fn a_next_link_to_another_host_is_not_followed_and_the_token_stays_home() {
    let server = MockServer::start().await;
    let evil = MockServer::start().await;
    let api = GitHub::new(&server).repo("octo/app", 5);
    // Every issue at one time, so the read would follow the link.
    for n in 1..=5 {
        api.set("octo/app", n, T0);
    }
    api.with(|s| s.foreign_next = Some(evil.uri()));
    api.mount(&server).await;
    let mut h = harness(&server, json!({})).await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert!(s.published >= 2, "{s:?}");
    assert!(
        evil.received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "nothing, least of all the token, went to the other host"
    );
}

#[tokio::test]
async fn two_repositories_are_two_streams_and_one_failing_keeps_the_others_progress() {
    let server = MockServer::start().await;
    let api = GitHub::new(&server)
        .repo("octo/app", 3)
        .repo("octo/gone", 1);
    api.with(|s| s.missing.push("octo/gone".into()));
    api.mount(&server).await;
    let mut h = harness(&server, json!({"repositories": ["octo/gone", "octo/app"]})).await;
    let err = h
        .connector
        .poll(&h.lease)
        .await
        .expect_err("one stream failed")
        .to_string();
    assert!(err.contains("404"), "{err}");
    assert_eq!(h.published().len(), 3, "the other repository was read");
    let state = h.backend.load_state("github-test");
    let app = state.stream("octo/app/issues").expect("its own stream");
    assert_eq!(app.versions.len(), 3);
    assert!(app.cursor.watermark.is_some());
    assert!(
        state
            .stream("octo/gone/issues")
            .is_none_or(|s| s.versions.is_empty())
    );
}

#[tokio::test]
async fn pull_requests_are_skipped_unless_asked_for() {
    let server = MockServer::start().await;
    let api = GitHub::new(&server).repo("octo/app", 3);
    api.with(|s| s.repos.get_mut("octo/app").map(|r| r[1].2 = true));
    api.mount(&server).await;
    let mut h = harness(&server, json!({})).await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!(s.published, 2, "{s:?}");
    assert!(
        s.extras.get("pullRequestsSkipped").is_some_and(|n| *n >= 1),
        "{s:?}"
    );

    let mut h = harness(
        &server,
        json!({"resources": {"issues": {"includePullRequests": true}}}),
    )
    .await;
    h.connector.poll(&h.lease).await.expect("poll");
    let kinds: Vec<String> = h
        .published()
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.signal).expect("json")["kind"].to_string())
        .collect();
    assert!(kinds.contains(&"\"pull_request\"".to_owned()), "{kinds:?}");
}

#[tokio::test]
async fn advisories_and_dependabot_alerts_are_streams_of_their_own() {
    let server = MockServer::start().await;
    Mock::given(path("/repos/octo/app/security-advisories"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("advisories-global-ecosystem-pub.json")),
        )
        .mount(&server)
        .await;
    let alert = json!([{
        "number": 7,
        "state": "open",
        "dependency": {"package": {"ecosystem": "npm", "name": "lodash"}, "scope": "runtime"},
        "security_advisory": {"ghsa_id": "GHSA-35jh-r3h4-6jhm", "severity": "high", "summary": "Command injection in lodash"},
        "security_vulnerability": {"severity": "high"},
        "url": "https://api.github.com/repos/octo/app/dependabot/alerts/7",
        "html_url": "https://github.com/octo/app/security/dependabot/7",
        "created_at": "2026-01-05T09:00:00Z",
        "updated_at": "2026-01-05T09:30:00Z"
    }]);
    Mock::given(path("/orgs/octo/dependabot/alerts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(alert))
        .mount(&server)
        .await;
    let mut h = harness(
        &server,
        json!({"resources": ["securityAdvisories"], "organization": "octo"}),
    )
    .await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!(s.published, 6, "five advisories and one alert: {s:?}");
    let signals: Vec<Value> = h
        .published()
        .iter()
        .map(|e| serde_json::from_str(&e.signal).expect("json"))
        .collect();
    let advisory = signals
        .iter()
        .find(|s| s["externalId"] == "GHSA-9324-jv53-9cc8")
        .expect("advisory");
    assert_eq!(advisory["kind"], "security_advisory");
    assert_eq!(advisory["severity"], "high");
    let alert = signals
        .iter()
        .find(|s| s["kind"] == "dependabot_alert")
        .expect("alert");
    assert_eq!(
        alert["title"],
        "org:octo#7: Command injection in lodash (lodash)"
    );
    assert_eq!(alert["version"], "2026-01-05T09:30:00Z|open");
    let state = h.backend.load_state("github-test");
    assert!(state.stream("org:octo/dependabot-alerts").is_some());
}
