//! Reads as real APIs page them: mocks of the documented behaviour of Okta's system log
//! (`self` and `next` as two `Link` fields) and Sentry's issue list (a `results="false"`
//! flag on the next link, and a past-the-end page that links to itself).

use connector_core::ConnectorConfig;
use connector_core::testing::Harness;
use connector_http::HttpJsonProvider;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn link_paged(name: &str, server: &MockServer) -> ConnectorConfig {
    let provider = json!({
        "request": {"url": format!("{}/api/v1/logs", server.uri())},
        "records": {"path": "", "id": "/uuid", "version": "/published"},
        "signal": {"kind": "event", "title": "{{/uuid}}"},
        "pagination": {"type": "linkHeader"},
        "snapshot": true
    });
    ConnectorConfig::new(name, "HTTP_JSON").with_provider_config(provider)
}

fn events(ids: &[&str]) -> Value {
    Value::Array(
        ids.iter()
            .map(|id| json!({"uuid": id, "published": "2026-12-01T00:00:00Z"}))
            .collect(),
    )
}

#[tokio::test]
async fn every_link_field_is_read_so_a_next_link_in_the_second_field_is_followed() {
    let server = MockServer::start().await;
    let base = format!("{}/api/v1/logs", server.uri());
    Mock::given(method("GET"))
        .and(path("/api/v1/logs"))
        .and(query_param("after", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .append_header("link", format!("<{base}?after=2>; rel=\"self\"").as_str())
                .set_body_json(events(&["c"])),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/logs"))
        .respond_with(
            ResponseTemplate::new(200)
                // Two fields, as Okta sends them: only the second holds the next link.
                .append_header("link", format!("<{base}>; rel=\"self\"").as_str())
                .append_header("link", format!("<{base}?after=2>; rel=\"next\"").as_str())
                .set_body_json(events(&["a", "b"])),
        )
        .mount(&server)
        .await;
    let mut h = Harness::new::<HttpJsonProvider>(link_paged("okta", &server)).await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((s.pages, s.published), (2, 3), "{s:?}");
}

#[tokio::test]
async fn a_next_link_saying_results_false_or_an_empty_page_ends_the_read() {
    let server = MockServer::start().await;
    let base = format!("{}/api/v1/logs", server.uri());
    // Page 2 holds records but its next link says there are no more.
    Mock::given(method("GET"))
        .and(path("/api/v1/logs"))
        .and(query_param("cursor", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header(
                    "link",
                    format!(
                        "<{base}?cursor=1>; rel=\"previous\"; results=\"true\"; cursor=\"1\", \
                         <{base}?cursor=3>; rel=\"next\"; results=\"false\"; cursor=\"3\""
                    )
                    .as_str(),
                )
                .set_body_json(events(&["c"])),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    // Past the end: no records, and a next link to itself.
    Mock::given(method("GET"))
        .and(path("/api/v1/logs"))
        .and(query_param("cursor", "3"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", format!("<{base}?cursor=3>; rel=\"next\"").as_str())
                .set_body_json(events(&[])),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/logs"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header(
                    "link",
                    format!("<{base}?cursor=2>; rel=\"next\"; results=\"true\"").as_str(),
                )
                .set_body_json(events(&["a", "b"])),
        )
        .mount(&server)
        .await;
    let mut h = Harness::new::<HttpJsonProvider>(link_paged("sentry", &server)).await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((s.pages, s.published), (2, 3), "{s:?}");
    let asked: Vec<String> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| r.url.query().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(asked, ["", "cursor=2"], "no request past results=\"false\"");

    // Started past the end (a link without the flag): the empty page ends the read
    // instead of tripping the loop guard.
    let mut past = link_paged("sentry-past", &server);
    past = past.with_provider_config(json!({
        "request": {"url": format!("{base}?cursor=3")},
        "records": {"path": "", "id": "/uuid", "version": "/published"},
        "signal": {"kind": "event", "title": "{{/uuid}}"},
        "pagination": {"type": "linkHeader"},
        "snapshot": true
    }));
    let mut h = Harness::new::<HttpJsonProvider>(past).await;
    let s = h
        .connector
        .poll(&h.lease)
        .await
        .expect("an empty page is a complete read");
    assert_eq!((s.pages, s.published), (1, 0), "{s:?}");
}

fn config(name: &str, provider: Value) -> ConnectorConfig {
    ConnectorConfig::new(name, "HTTP_JSON").with_provider_config(provider)
}

async fn serve_at(server: &MockServer, route: &str, query: Option<(&str, &str)>, body: Value) {
    let mut mock = Mock::given(method("GET")).and(path(route));
    if let Some((k, v)) = query {
        mock = mock.and(query_param(k, v));
    }
    mock.respond_with(ResponseTemplate::new(200).set_body_json(body))
        .with_priority(if query.is_some() { 1 } else { 5 })
        .mount(server)
        .await;
}

fn requested(requests: &[wiremock::Request]) -> Vec<String> {
    requests
        .iter()
        .map(|r| match r.url.query() {
            Some(q) => format!("{}?{q}", r.url.path()),
            None => r.url.path().to_owned(),
        })
        .collect()
}

#[tokio::test]
async fn a_link_base_keeps_the_apis_path_prefix() {
    // Snyk: links.next is "/orgs/{org}/issues?starting_after=…" under https://api.snyk.io/rest.
    let server = MockServer::start().await;
    serve_at(
        &server,
        "/rest/orgs/o1/issues",
        None,
        json!({"data": [{"id": "i1", "updated_at": "2026-12-01T00:00:00Z"}],
               "links": {"next": "/orgs/o1/issues?version=2024-10-15&starting_after=i1"}}),
    )
    .await;
    serve_at(
        &server,
        "/rest/orgs/o1/issues",
        Some(("starting_after", "i1")),
        json!({"data": [{"id": "i2", "updated_at": "2026-12-01T00:00:00Z"}], "links": {}}),
    )
    .await;
    let provider = |link_base: Option<String>| {
        let mut pagination = json!({"type": "nextUrl", "path": "/links/next"});
        if let Some(b) = link_base {
            pagination["linkBase"] = json!(b);
        }
        json!({
            "request": {"url": format!("{}/rest/orgs/o1/issues", server.uri()), "query": {"version": "2024-10-15"}},
            "records": {"path": "/data", "id": "/id", "version": "/updated_at"},
            "signal": {"kind": "issue", "title": "{{/id}}"},
            "pagination": pagination,
            "snapshot": true
        })
    };
    let mut h = Harness::new::<HttpJsonProvider>(config(
        "snyk",
        provider(Some(format!("{}/rest", server.uri()))),
    ))
    .await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((s.pages, s.published), (2, 2), "{s:?}");
    let asked = requested(&server.received_requests().await.unwrap_or_default());
    assert_eq!(
        asked[1], "/rest/orgs/o1/issues?version=2024-10-15&starting_after=i1",
        "{asked:?}"
    );
    // Without it the link resolves against the host root: a 404, loudly, not a silent end.
    server.reset().await;
    serve_at(
        &server,
        "/rest/orgs/o1/issues",
        None,
        json!({"data": [{"id": "i1", "updated_at": "2026-12-01T00:00:00Z"}],
               "links": {"next": "/orgs/o1/issues?starting_after=i1"}}),
    )
    .await;
    let mut h = Harness::new::<HttpJsonProvider>(config("snyk-nobase", provider(None))).await;
    let failed = h.connector.poll(&h.lease).await;
    assert!(failed.is_err(), "{failed:?}");
}

#[tokio::test]
async fn every_early_end_of_a_read_is_counted_with_its_reason() {
    use connector_core::ports::PartialReason;
    let server = MockServer::start().await;
    let other = MockServer::start().await;
    serve_at(
        &server,
        "/capped",
        None,
        json!({"items": [{"id": "a", "v": "1"}], "next": format!("{}/capped?p=2", server.uri())}),
    )
    .await;
    serve_at(
        &server,
        "/foreign",
        None,
        json!({"items": [{"id": "a", "v": "1"}], "next": format!("{}/x", other.uri())}),
    )
    .await;
    serve_at(
        &server,
        "/full",
        None,
        json!({"items": [{"id": "a", "v": "1"}, {"id": "b", "v": "1"}]}),
    )
    .await;
    let provider = |route: &str, extra: Value| {
        let mut pagination = json!({"type": "nextUrl", "path": "/next"});
        if let (Some(p), Some(e)) = (pagination.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        json!({
            "request": {"url": format!("{}{route}", server.uri())},
            "records": {"path": "/items", "id": "/id", "version": "/v"},
            "signal": {"kind": "item", "title": "{{/id}}"},
            "pagination": pagination,
            "limits": {"maxPages": 1},
            "snapshot": true
        })
    };
    for (route, extra, reason) in [
        ("/capped", json!({}), PartialReason::PageCap),
        ("/foreign", json!({}), PartialReason::ForeignLink),
        (
            "/full",
            json!({"pageSize": 2}),
            PartialReason::FullPageNoNext,
        ),
    ] {
        let mut h = Harness::new::<HttpJsonProvider>(config("early", provider(route, extra))).await;
        let s = h.connector.poll(&h.lease).await.expect("poll");
        assert_eq!(s.partial_reads.get(&reason), Some(&1), "{route}: {s:?}");
    }
    assert!(
        other
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn stop_and_more_flags_end_a_read_on_every_paging_kind() {
    // Zendesk's incremental export: a next link on the last page too, with end_of_stream.
    let zendesk = MockServer::start().await;
    serve_at(
        &zendesk,
        "/zendesk",
        None,
        json!({
            "tickets": [{"id": 1, "updated_at": "2026-12-01T00:00:00Z"}],
            "after_url": format!("{}/zendesk?cursor=2", zendesk.uri()),
            "end_of_stream": true
        }),
    )
    .await;
    // Linear's GraphQL connection: an end cursor, with hasNextPage false.
    let linear = MockServer::start().await;
    serve_at(
        &linear,
        "/linear",
        None,
        json!({"data": {"issues": {
        "nodes": [{"id": "L1", "updatedAt": "2026-12-01T00:00:00Z"}],
        "pageInfo": {"endCursor": "c1", "hasNextPage": false}}}}),
    )
    .await;
    for (server, provider) in [
        (
            &zendesk,
            json!({
                "request": {"url": format!("{}/zendesk", zendesk.uri())},
                "records": {"path": "/tickets", "id": "/id", "version": "/updated_at"},
                "signal": {"kind": "ticket", "title": "{{/id}}"},
                "pagination": {"type": "nextUrl", "path": "/after_url", "stopPath": "/end_of_stream"},
                "snapshot": true
            }),
        ),
        (
            &linear,
            json!({
                "request": {"url": format!("{}/linear", linear.uri())},
                "records": {"path": "/data/issues/nodes", "id": "/id", "version": "/updatedAt"},
                "signal": {"kind": "issue", "title": "{{/id}}"},
                "pagination": {"type": "cursor", "path": "/data/issues/pageInfo/endCursor", "param": "after",
                               "morePath": "/data/issues/pageInfo/hasNextPage"},
                "snapshot": true
            }),
        ),
    ] {
        let mut h = Harness::new::<HttpJsonProvider>(config("flags", provider)).await;
        let s = h.connector.poll(&h.lease).await.expect("poll");
        assert_eq!((s.pages, s.published), (1, 1), "{s:?}");
        assert!(s.partial_reads.is_empty(), "a documented end: {s:?}");
        assert_eq!(
            server.received_requests().await.unwrap_or_default().len(),
            1,
            "no wasted request"
        );
    }
}

#[tokio::test]
async fn decimal_epoch_times_move_the_watermark_and_unreadable_ones_are_said() {
    // Slack's conversations.history: ts is decimal epoch seconds.
    let server = MockServer::start().await;
    serve_at(
        &server,
        "/slack",
        None,
        json!({"ok": true, "messages": [
            {"ts": "1512085950.000216", "text": "a"},
            {"ts": "1512085960.000100", "text": "b"}
        ]}),
    )
    .await;
    serve_at(
        &server,
        "/odd",
        None,
        json!({"items": [
            {"id": "a", "changed": "last tuesday"},
            {"id": "b"}
        ]}),
    )
    .await;
    let slack = json!({
        "request": {"url": format!("{}/slack", server.uri()), "query": {"oldest": "{{cursor}}"}},
        "records": {"path": "/messages", "id": "/ts", "version": "/ts"},
        "signal": {"kind": "message", "title": "{{/text}}"},
        "incremental": {"field": "/ts", "format": "epochSeconds"}
    });
    let mut h = Harness::new::<HttpJsonProvider>(config("slack", slack)).await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!(s.published, 2);
    assert!(s.unreadable_times.is_none(), "{s:?}");
    let state = h.backend.load_state("slack");
    assert_eq!(
        state.main.cursor.watermark.as_deref(),
        Some("2017-11-30T23:52:40Z"),
        "{state:?}"
    );
    let odd = json!({
        "request": {"url": format!("{}/odd", server.uri()), "query": {"since": "{{cursor}}"}},
        "records": {"path": "/items", "id": "/id"},
        "signal": {"kind": "item", "title": "{{/id}}"},
        "incremental": {"field": "/changed", "initial": "2026-01-01T00:00:00Z"}
    });
    let mut h = Harness::new::<HttpJsonProvider>(config("odd", odd)).await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!(s.published, 2, "published all the same");
    let u = s.unreadable_times.expect("said");
    assert_eq!(
        (u.pointer.as_str(), u.first.as_deref(), u.count),
        ("/changed", Some("last tuesday"), 2)
    );
}

#[tokio::test]
async fn an_absent_list_is_none_when_configured_and_otherwise_says_what_the_body_holds() {
    // Google Workspace's reports API leaves `items` out when nothing matched.
    let server = MockServer::start().await;
    serve_at(
        &server,
        "/activity",
        None,
        json!({
            "kind": "admin#reports#activities",
            "etag": "\"abc\""
        }),
    )
    .await;
    let provider = |absent: Option<&str>| {
        let mut records =
            json!({"path": "/items", "id": "/id/uniqueQualifier", "version": "/id/time"});
        if let Some(a) = absent {
            records["absentMeans"] = json!(a);
        }
        json!({
            "request": {"url": format!("{}/activity", server.uri())},
            "records": records,
            "signal": {"kind": "activity", "title": "{{/id/uniqueQualifier}}"},
            "snapshot": true
        })
    };
    let mut h = Harness::new::<HttpJsonProvider>(config("google", provider(Some("empty")))).await;
    let s = h
        .connector
        .poll(&h.lease)
        .await
        .expect("no records is fine");
    assert_eq!((s.pages, s.fetched, s.published), (1, 0, 0));
    let mut h = Harness::new::<HttpJsonProvider>(config("google-strict", provider(None))).await;
    let e = h
        .connector
        .poll(&h.lease)
        .await
        .expect_err("undocumented shape");
    let message = e.to_string();
    assert!(
        message.contains("no list of records at /items; the body's top-level keys are etag, kind"),
        "{message}"
    );
}

#[tokio::test]
async fn an_http_error_shows_the_reason_where_the_api_puts_it() {
    let server = MockServer::start().await;
    // NVD: 403 with the reason in a `message` header and an empty body.
    Mock::given(method("GET"))
        .and(path("/nvd"))
        .respond_with(ResponseTemplate::new(403).insert_header("message", "Invalid apiKey"))
        .mount(&server)
        .await;
    // A JSON body whose reason sits after 300 bytes of other fields.
    let padding = "x".repeat(400);
    Mock::given(method("GET"))
        .and(path("/json"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "padding": padding,
            "errors": [{"message": "filter[from] must be a timestamp"}]
        })))
        .mount(&server)
        .await;
    // An OAuth2 token endpoint refusing the grant (RFC 6749 §5.2).
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_scope",
            "error_description": "scope read:alerts is not granted to this client"
        })))
        .mount(&server)
        .await;
    let provider = |route: &str, auth: Value| {
        json!({
            "request": {"url": format!("{}{route}", server.uri())},
            "records": {"path": "/items", "id": "/id"},
            "signal": {"kind": "item", "title": "{{/id}}"},
            "auth": auth,
            "snapshot": true
        })
    };
    let none = json!({"type": "none"});
    let oauth = json!({"type": "oauth2ClientCredentials", "tokenUrl": format!("{}/token", server.uri()),
                       "clientId": "me", "clientSecret": "client-secret-123"});
    for (name, route, auth, says, not) in [
        (
            "nvd",
            "/nvd",
            none.clone(),
            "HTTP 403 from",
            "Invalid apiKey",
        ),
        (
            "json",
            "/json",
            none,
            "filter[from] must be a timestamp",
            "xxxxxxxx",
        ),
        (
            "oauth",
            "/items",
            oauth,
            "invalid_scope: scope read:alerts is not granted to this client",
            "check clientId",
        ),
    ] {
        let mut h = Harness::new::<HttpJsonProvider>(config(name, provider(route, auth))).await;
        let message = h
            .connector
            .poll(&h.lease)
            .await
            .expect_err("refused")
            .to_string();
        assert!(message.contains(says), "{name}: {message}");
        if name == "nvd" {
            assert!(message.contains(not), "{name}: {message}");
        } else {
            assert!(!message.contains(not), "{name}: {message}");
        }
    }
}

#[tokio::test]
async fn a_whole_value_placeholder_in_a_body_is_a_number_for_epoch_formats() {
    // AWS Health's DescribeEvents takes times as JSON numbers of epoch seconds.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/health"))
        .and(wiremock::matchers::body_partial_json(json!({
            "filter": {"lastUpdatedTimes": [{"from": 1790000000}]},
            "asText": "1790000000"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"events": [
            {"arn": "e1", "lastUpdatedTime": 1790000100.5}
        ]})))
        .mount(&server)
        .await;
    let provider = json!({
        "request": {
            "url": format!("{}/health", server.uri()),
            "method": "POST",
            "body": {
                "filter": {"lastUpdatedTimes": [{"from": "{{cursor}}"}]},
                "asText": "{{cursor|string}}"
            }
        },
        "records": {"path": "/events", "id": "/arn", "version": "/lastUpdatedTime"},
        "signal": {"kind": "event", "title": "{{/arn}}"},
        "incremental": {"field": "/lastUpdatedTime", "format": "epochSeconds", "initial": "2026-09-21T14:13:20Z"}
    });
    let mut h = Harness::new::<HttpJsonProvider>(config("aws", provider)).await;
    let result = h.connector.poll(&h.lease).await;
    let bodies: Vec<String> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    let s = result.unwrap_or_else(|e| panic!("{e}: sent {bodies:?}"));
    assert_eq!(s.published, 1);
}

/// NVD-like: answers with the records whose time lies in `[startDate, endDate]`, and
/// refuses a span longer than `max_days` (as NVD refuses more than 120 days).
struct Ranged {
    records: Vec<(String, i64)>,
    max_ms: i64,
}

impl wiremock::Respond for Ranged {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let param = |name: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| connector_core::source::time::parse_millis(&v))
        };
        let (Some(start), Some(end)) = (param("startDate"), param("endDate")) else {
            return ResponseTemplate::new(400).insert_header("message", "both dates are required");
        };
        if end - start > self.max_ms {
            return ResponseTemplate::new(404)
                .insert_header("message", "The date range must not exceed the maximum");
        }
        let hits: Vec<Value> = self
            .records
            .iter()
            .filter(|(_, t)| *t >= start && *t <= end)
            .map(|(id, t)| {
                json!({"cve": {"id": id, "lastModified": connector_core::signal::rfc3339_millis(u64::try_from(*t).unwrap_or(0))}})
            })
            .collect();
        // NVD pages with startIndex and resultsPerPage, and says totalResults.
        let number = |name: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.parse::<usize>().ok())
        };
        let total = hits.len();
        let from = number("startIndex").unwrap_or(0).min(total);
        let size = number("resultsPerPage").unwrap_or(total.max(1));
        let page: Vec<Value> = hits.into_iter().skip(from).take(size).collect();
        ResponseTemplate::new(200)
            .set_body_json(json!({"vulnerabilities": page, "totalResults": total}))
    }
}

const HOUR: i64 = 3_600_000;

/// An NVD-like server holding `records` at these hours before `now`.
async fn nvd_server(now: i64, records: &[(&str, i64)]) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/cves"))
        .respond_with(Ranged {
            records: records
                .iter()
                .map(|(id, hours)| ((*id).to_owned(), now - hours * HOUR))
                .collect(),
            max_ms: 24 * HOUR,
        })
        .mount(&server)
        .await;
    server
}

/// An NVD-like connector: three days back, a day a window, with `extra` settings.
fn nvd_config(name: &str, server: &MockServer, extra: Value) -> ConnectorConfig {
    let mut provider = json!({
        "request": {"url": format!("{}/cves", server.uri()),
                    "query": {"startDate": "{{cursor}}", "endDate": "{{now}}"}},
        "records": {"path": "/vulnerabilities", "id": "/cve/id", "version": "/cve/lastModified"},
        "signal": {"kind": "cve", "title": "{{/cve/id}}"},
        "incremental": {"field": "/cve/lastModified", "initial": "-3d", "maxWindow": "1d"}
    });
    if let (Some(p), Some(e)) = (provider.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            match (p.get_mut(k), v) {
                (Some(Value::Object(have)), Value::Object(more)) => have.extend(more.clone()),
                _ => {
                    p.insert(k.clone(), v.clone());
                }
            }
        }
    }
    config(name, provider)
}

/// The span (end minus start) of every request the server got.
async fn spans(server: &MockServer) -> Vec<i64> {
    let at = |r: &wiremock::Request, n: &str| {
        r.url
            .query_pairs()
            .find(|(k, _)| k == n)
            .and_then(|(_, v)| connector_core::source::time::parse_millis(&v))
            .unwrap_or(0)
    };
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| at(r, "endDate") - at(r, "startDate"))
        .collect()
}

fn now() -> i64 {
    i64::try_from(connector_core::pipeline::now_ms()).unwrap_or(0)
}

#[tokio::test]
async fn a_gap_longer_than_the_max_window_is_read_window_by_window() {
    let now = now();
    // A record in the first day, none in the second, two in the third.
    let server = nvd_server(now, &[("CVE-1", 70), ("CVE-3", 20), ("CVE-4", 2)]).await;
    let mut h = Harness::new::<HttpJsonProvider>(nvd_config("nvd", &server, json!({}))).await;
    // The outage is three windows long: one poll walks them all, empty one included.
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!(s.published, 3, "{s:?}");
    let spans = spans(&server).await;
    assert_eq!(spans.len(), 3, "{spans:?}");
    assert!(spans.iter().all(|s| *s <= 24 * HOUR), "{spans:?}");
    let watermark = h
        .backend
        .load_state("nvd")
        .main
        .cursor
        .watermark
        .as_deref()
        .and_then(connector_core::source::time::parse_millis)
        .expect("a watermark");
    assert!(
        watermark >= now,
        "the empty window moved it too: {watermark} < {now}"
    );
}

#[tokio::test]
async fn with_one_window_a_poll_each_poll_moves_one_window_on() {
    let server = nvd_server(now(), &[("CVE-1", 70), ("CVE-4", 2)]).await;
    let budget = json!({"incremental": {"maxWindowsPerPoll": 1}});
    let mut h = Harness::new::<HttpJsonProvider>(nvd_config("nvd-slow", &server, budget)).await;
    let mut published = Vec::new();
    for _ in 0..4 {
        published.push(h.connector.poll(&h.lease).await.expect("poll").published);
    }
    assert_eq!(
        published,
        [1, 0, 1, 0],
        "one window a poll, the empty one included: an outage never stalls"
    );
}

/// A paged API for the provider contract, in one of the new paging shapes.
#[derive(Clone, Copy)]
enum Paged {
    /// Snyk: `links.next` relative to the `/rest` base (`linkBase`), and a last page that
    /// still links on but says so in a flag (`stopPath`).
    LinkBase,
    /// Linear: a GraphQL connection's end cursor with `hasNextPage` (`morePath`).
    More,
    /// Okta: `self` and `next` in two `Link` fields, `results="false"` on the last.
    TwoLinks,
}

impl Paged {
    async fn mount(self, server: &MockServer, changed: bool, removed: bool) -> usize {
        server.reset().await;
        let version = |id: &str| if changed && id == "b" { "2" } else { "1" };
        let item = |id: &str| json!({"id": id, "v": version(id)});
        let mut pages: Vec<Vec<Value>> = vec![vec![item("a"), item("b")], vec![item("c")]];
        if removed {
            // "c" left the set; the last page is empty now.
            pages[1].clear();
        }
        let count = pages.iter().map(Vec::len).sum();
        let base = format!("{}/rest/items", server.uri());
        for (i, records) in pages.into_iter().enumerate() {
            let last = i == 1;
            let (body, link) = match self {
                Paged::LinkBase => (
                    json!({"data": records, "links": {"next": format!("/items?after={}", i + 1)},
                           "meta": {"last": last}}),
                    None,
                ),
                Paged::More => (
                    json!({"data": records, "pageInfo": {"endCursor": format!("c{}", i + 1),
                                                         "hasNextPage": !last}}),
                    None,
                ),
                Paged::TwoLinks => {
                    let next = if last {
                        format!("<{base}?after=2>; rel=\"next\"; results=\"false\"")
                    } else {
                        format!("<{base}?after={}>; rel=\"next\"", i + 1)
                    };
                    (json!({"data": records}), Some(next))
                }
            };
            let mut mock = Mock::given(method("GET")).and(path("/rest/items"));
            if i > 0 {
                // The cursor kind sends the token back; the link kinds follow `?after=i`.
                let token = match self {
                    Paged::More => format!("c{i}"),
                    _ => i.to_string(),
                };
                mock = mock.and(query_param("after", token));
            }
            let mut answer = ResponseTemplate::new(200).set_body_json(body);
            if let Some(next) = link {
                answer = answer
                    .append_header("link", format!("<{base}>; rel=\"self\"").as_str())
                    .append_header("link", next.as_str());
            }
            mock.respond_with(answer)
                .with_priority(if i == 0 { 5 } else { 1 })
                .mount(server)
                .await;
        }
        count
    }

    fn config(self, server: &MockServer) -> ConnectorConfig {
        let pagination = match self {
            Paged::LinkBase => json!({"type": "nextUrl", "path": "/links/next",
                                      "linkBase": format!("{}/rest", server.uri()),
                                      "stopPath": "/meta/last"}),
            Paged::More => {
                json!({"type": "cursor", "path": "/pageInfo/endCursor", "param": "after",
                                  "morePath": "/pageInfo/hasNextPage"})
            }
            Paged::TwoLinks => json!({"type": "linkHeader"}),
        };
        config(
            "paged",
            json!({
                "request": {"url": format!("{}/rest/items", server.uri())},
                "records": {"path": "/data", "id": "/id", "version": "/v"},
                "signal": {"kind": "item", "title": "{{/id}}"},
                "pagination": pagination,
                "snapshot": true
            }),
        )
    }
}

impl connector_core::testing::Scenario for Paged {
    async fn serve_baseline(&self, server: &MockServer) -> usize {
        self.mount(server, false, false).await
    }
    async fn serve_one_changed(&self, server: &MockServer) {
        self.mount(server, true, false).await;
    }
    async fn serve_failure(&self, server: &MockServer) {
        server.reset().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(503).set_body_string("<html>unavailable</html>"))
            .mount(server)
            .await;
    }
    async fn serve_one_removed(&self, server: &MockServer) {
        self.mount(server, true, true).await;
    }
}

#[tokio::test]
async fn each_new_paging_option_meets_the_provider_contract() {
    for paged in [Paged::LinkBase, Paged::More, Paged::TwoLinks] {
        let server = MockServer::start().await;
        connector_core::testing::run_contract::<HttpJsonProvider>(
            paged.config(&server),
            &server,
            &paged,
        )
        .await;
    }
}

#[tokio::test]
async fn a_capped_window_moves_by_its_records_and_the_walk_never_stalls() {
    // A full first day (two pages of two), an empty second, one in the third.
    let server = nvd_server(
        now(),
        &[
            ("CVE-1", 70),
            ("CVE-2", 66),
            ("CVE-3", 62),
            ("CVE-4", 58),
            ("CVE-5", 2),
        ],
    )
    .await;
    let paged = json!({
        "pagination": {"type": "offset", "param": "startIndex", "limit": 2,
                       "limitParam": "resultsPerPage", "totalPath": "/totalResults"},
        "limits": {"maxPages": 1}
    });
    let mut h = Harness::new::<HttpJsonProvider>(nvd_config("nvd-capped", &server, paged)).await;
    let mut published = Vec::new();
    for _ in 0..6 {
        published.push(h.connector.poll(&h.lease).await.expect("poll").published);
    }
    assert_eq!(
        published.iter().sum::<u64>(),
        5,
        "every record once: {published:?}"
    );
    assert_eq!(
        published[0], 2,
        "the capped first window publishes its first page"
    );
    assert!(
        published[..3].iter().sum::<u64>() == 5,
        "and the walk goes on from the records' times: {published:?}"
    );
}

/// `keepQuery` adds back the filters a next link drops (NOAA's `pagination.next` keeps only
/// its cursor), and `stopOnEmpty: false` follows a link from a page with no records (an
/// API that filters after paging can answer an empty page mid-read).
#[tokio::test]
async fn keep_query_and_stop_on_empty_are_the_configs_to_choose() {
    let server = MockServer::start().await;
    serve_at(
        &server,
        "/alerts",
        None,
        json!({"features": [], "pagination": {"next": "/alerts?cursor=p2"}}),
    )
    .await;
    serve_at(
        &server,
        "/alerts",
        Some(("cursor", "p2")),
        json!({"features": [{"id": "w1", "sent": "2026-12-01T00:00:00Z"}], "pagination": {}}),
    )
    .await;
    let provider = |pagination: Value| {
        json!({
            "request": {"url": format!("{}/alerts", server.uri()), "query": {"area": "CA"}},
            "records": {"path": "/features", "id": "/id", "version": "/sent"},
            "signal": {"kind": "weather_alert", "title": "{{/id}}"},
            "pagination": pagination,
            "snapshot": true
        })
    };
    let kept = json!({"type": "nextUrl", "path": "/pagination/next", "keepQuery": true, "stopOnEmpty": false});
    let mut h = Harness::new::<HttpJsonProvider>(config("kept", provider(kept))).await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((s.pages, s.published), (2, 1), "{s:?}");
    let asked = requested(&server.received_requests().await.unwrap_or_default());
    assert_eq!(asked[1], "/alerts?cursor=p2&area=CA", "{asked:?}");
    // By default an empty page ends the read there.
    let plain = json!({"type": "nextUrl", "path": "/pagination/next"});
    let mut h = Harness::new::<HttpJsonProvider>(config("plain", provider(plain))).await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((s.pages, s.published), (1, 0), "{s:?}");
}

/// The poll reads time from its context's clock: `{{now}}` is the manual clock's time, and
/// a window walk ends there, so a test pins every time a request carries.
#[tokio::test]
async fn now_is_the_contexts_clock() {
    use connector_core::context::{Context, ManualClock};
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/events"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"items": []})))
        .mount(&server)
        .await;
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    let clock = std::sync::Arc::new(ManualClock::at(at));
    let provider = json!({
        "request": {"url": format!("{}/events", server.uri()),
                    "query": {"from": "{{cursor}}", "to": "{{now}}"}},
        "records": {"path": "/items", "id": "/id"},
        "signal": {"kind": "event", "title": "{{/id}}"},
        "incremental": {"field": "/at", "format": "epochSeconds", "initial": "-1d"}
    });
    let context = Context::isolated().with_clock(clock);
    let mut h = Harness::in_context::<HttpJsonProvider>(config("clocked", provider), context).await;
    h.connector.poll(&h.lease).await.expect("poll");
    let asked = requested(&server.received_requests().await.unwrap_or_default());
    assert_eq!(
        asked,
        ["/events?from=1799913600&to=1800000000"],
        "{asked:?}"
    );
}
