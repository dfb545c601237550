//! README's "Writing a connector" shows `examples/my_provider.rs` whole: this test keeps
//! the two the same, and runs that provider against a mock of its API, so the guide is a
//! provider that compiles and works.

#[allow(dead_code)]
#[path = "../examples/my_provider.rs"]
mod my_provider;

use connector_core::ConnectorConfig;
use connector_core::testing::Harness;
use my_provider::MyProvider;
use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[test]
fn the_readme_shows_the_example_provider_as_it_is() {
    let readme = include_str!("../../../README.md");
    let example = include_str!("../examples/my_provider.rs");
    let block = readme
        .split("<!-- crates/connector-core/examples/my_provider.rs -->\n```rust\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```\n").next())
        .expect("README has the example block after its marker");
    assert_eq!(
        block.trim_end(),
        example.trim_end(),
        "README's example differs from crates/connector-core/examples/my_provider.rs: copy the file into the README"
    );
}

#[tokio::test]
async fn the_example_provider_reads_two_pages_then_only_what_changed() {
    let server = MockServer::start().await;
    let ticket =
        |id: &str, at: &str| json!({"id": id, "updated_at": at, "title": format!("Ticket {id}")});
    Mock::given(method("GET"))
        .and(path("/v1/tickets"))
        .and(query_param("cursor", "p2"))
        .and(header("authorization", "Bearer tok-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"tickets": [ticket("t2", "2026-12-01T10:00:00Z")], "next": null}),
        ))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/tickets"))
        .and(header("authorization", "Bearer tok-1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"tickets": [ticket("t1", "2026-12-01T09:00:00Z")], "next": "p2"}),
        ))
        .mount(&server)
        .await;
    let config = ConnectorConfig::new("my-api", "MY_API")
        .with_provider_config(json!({"baseUrl": server.uri(), "token": "tok-1"}));
    let mut h = Harness::new::<MyProvider>(config).await;
    let first = h.connector.poll(&h.lease).await.expect("first poll");
    assert_eq!((first.pages, first.published), (2, 2), "{first:?}");
    let again = h.connector.poll(&h.lease).await.expect("repeat poll");
    assert_eq!(again.published, 0, "{again:?}");
    let asked = server.received_requests().await.unwrap_or_default();
    let last = asked.last().map(|r| r.url.to_string()).unwrap_or_default();
    assert!(
        last.contains("updated_since=2026-12-01T09%3A59"),
        "a minute before the watermark: {last}"
    );
    let signal = &h.published()[0].signal;
    assert!(
        signal.contains(r#""title":"Ticket t1""#) && signal.contains(r#""kind":"ticket""#),
        "{signal}"
    );
}
