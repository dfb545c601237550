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
