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
