//! The shared HTTP rules against a real local server.

use std::time::Duration;

use connector_core::context::{Context, ManualClock};
use connector_core::http::{Auth, Conditional, DEFAULT_USER_AGENT, HttpClient, HttpError};
use connector_core::ports::Cursor;
use connector_core::retry::RetryPolicy;
use reqwest::header::HeaderName;
use secrecy::SecretString;
use url::Url;
use wiremock::matchers::{header, header_exists, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn url(server: &MockServer, p: &str) -> Url {
    Url::parse(&format!("{}{p}", server.uri())).expect("url")
}

fn quick_retries(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        jitter_ratio: 0.0,
        max_retry_after: Duration::from_secs(5),
    }
}

fn client(server: &MockServer) -> HttpClient {
    HttpClient::builder(Url::parse(&server.uri()).expect("base"))
        .retry(quick_retries(3))
        .build()
        .expect("client")
}

#[tokio::test]
async fn every_request_names_the_product_and_accepts_gzip() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(header("user-agent", DEFAULT_USER_AGENT))
        .and(header("accept", "application/json"))
        .and(header_exists("accept-encoding"))
        .respond_with(ResponseTemplate::new(200).set_body_string("[]"))
        .expect(1)
        .mount(&server)
        .await;
    let r = client(&server).get(&url(&server, "/x")).await.expect("ok");
    assert_eq!(r.body, b"[]");
}

#[tokio::test]
async fn credentials_go_only_to_the_configured_origin() {
    let api = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(header("authorization", "Bearer tok-123"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .expect(1)
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&elsewhere)
        .await;
    let c = HttpClient::builder(Url::parse(&api.uri()).expect("base"))
        .auth(Auth::Bearer(SecretString::from("tok-123")))
        .build()
        .expect("client");
    c.get(&url(&api, "/ok")).await.expect("own origin");
    let err = c
        .get(&url(&elsewhere, "/next?page=2"))
        .await
        .expect_err("a foreign pagination link is refused");
    assert!(matches!(err, HttpError::ForeignOrigin { .. }), "{err}");
    assert!(!err.to_string().contains("tok-123"));
    assert!(
        !err.to_string().contains("page=2"),
        "no query in messages: {err}"
    );
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed() {
    let api = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/steal", elsewhere.uri())),
        )
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&elsewhere)
        .await;
    let c = HttpClient::builder(Url::parse(&api.uri()).expect("base"))
        .auth(Auth::Headers(vec![(
            HeaderName::from_static("dd-api-key"),
            SecretString::from("k"),
        )]))
        .build()
        .expect("client");
    let err = c.get(&url(&api, "/a")).await.expect_err("302 is an error");
    assert!(matches!(err, HttpError::Redirected { .. }), "{err}");
    assert!(
        err.to_string().contains("redirected to another host"),
        "says where it went and why it stopped: {err}"
    );
}

#[tokio::test]
async fn a_503_is_retried_until_it_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .expect(1)
        .mount(&server)
        .await;
    let r = client(&server)
        .get(&url(&server, "/x"))
        .await
        .expect("recovered");
    assert_eq!(r.body, b"ok");
}

#[tokio::test]
async fn a_429_waits_as_long_as_retry_after_says() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    let clock = std::sync::Arc::new(ManualClock::at(std::time::SystemTime::now()));
    let client = HttpClient::builder(Url::parse(&server.uri()).expect("base"))
        .retry(quick_retries(3))
        .context(&Context::isolated().with_clock(clock.clone()))
        .build()
        .expect("client");
    client.get(&url(&server, "/x")).await.expect("ok");
    // The computed backoff would be 5 ms; the server asked for a second.
    assert_eq!(clock.slept(), [Duration::from_secs(1)]);
}

#[tokio::test]
async fn client_errors_fail_fast() {
    for status in [400u16, 401, 403, 404] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(status).set_body_string("{\"detail\":\"bad area\"}"),
            )
            .expect(1)
            .mount(&server)
            .await;
        let err = client(&server)
            .get(&url(&server, "/x"))
            .await
            .expect_err("fails");
        assert!(
            matches!(err, HttpError::Status { status: s, .. } if s == status),
            "{err}"
        );
        assert!(
            err.to_string().contains("bad area"),
            "the body's detail is shown: {err}"
        );
    }
}

#[tokio::test]
async fn a_403_with_rate_limit_headers_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", "0"),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    client(&server)
        .get(&url(&server, "/x"))
        .await
        .expect("retried");
}

#[tokio::test]
async fn a_slow_server_times_out_on_every_attempt() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(5)))
        .expect(2)
        .mount(&server)
        .await;
    let c = HttpClient::builder(Url::parse(&server.uri()).expect("base"))
        .timeout(Duration::from_millis(100))
        .retry(quick_retries(1))
        .build()
        .expect("client");
    let err = c.get(&url(&server, "/x")).await.expect_err("timeout");
    assert!(matches!(err, HttpError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn an_oversized_body_is_refused() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(2048)))
        .expect(1)
        .mount(&server)
        .await;
    let c = HttpClient::builder(Url::parse(&server.uri()).expect("base"))
        .max_body_bytes(1024)
        .retry(quick_retries(3))
        .build()
        .expect("client");
    let err = c.get(&url(&server, "/x")).await.expect_err("too large");
    assert!(
        matches!(err, HttpError::TooLarge { limit: 1024, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn stored_validators_make_a_conditional_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(header("if-none-match", "W/\"abc\""))
        // wiremock's `header` matcher splits values at commas, which HTTP dates contain.
        .and(|req: &wiremock::Request| {
            req.headers
                .get("if-modified-since")
                .is_some_and(|v| v == "Mon, 11 Jan 2021 11:53:44 GMT")
        })
        .respond_with(ResponseTemplate::new(304))
        .expect(1)
        .mount(&server)
        .await;
    let validators = Cursor {
        etag: Some("W/\"abc\"".into()),
        last_modified: Some("Mon, 11 Jan 2021 11:53:44 GMT".into()),
        ..Cursor::default()
    };
    let r = client(&server)
        .get_conditional(&url(&server, "/x"), &validators)
        .await
        .expect("ok");
    assert!(matches!(r, Conditional::NotModified));
}

#[tokio::test]
async fn paths_join_below_a_base_with_a_prefix() {
    let c = HttpClient::builder(Url::parse("https://example.com/jira/").expect("base"))
        .build()
        .expect("client");
    assert_eq!(
        c.url("/rest/api/3/search?x=1").expect("url").as_str(),
        "https://example.com/jira/rest/api/3/search?x=1"
    );
}

#[tokio::test]
async fn a_rate_limit_wait_holds_for_the_next_polls_and_is_not_hammered() {
    use connector_core::testing::Harness;
    use connector_core::testing::items::{ItemsProvider, config_for};
    let server = MockServer::start().await;
    // GitHub's shape: 403, no quota left, the reset an hour away (epoch seconds).
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path("/items"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.to_string().as_str()),
        )
        .expect(1)
        .mount(&server)
        .await;
    let mut cfg = config_for("held", &server.uri());
    cfg.max_retries = 0;
    let mut h = Harness::new::<ItemsProvider>(cfg).await;
    let first = h.connector.poll(&h.lease).await;
    assert!(first.is_err(), "the limited poll fails: {first:?}");
    let second = h.connector.poll(&h.lease).await;
    let message = second
        .map(|_| String::new())
        .unwrap_or_else(|e| e.to_string());
    assert!(
        message.contains("rate limited") && message.contains("nothing is sent before then"),
        "{message}"
    );
    assert!(
        h.context
            .holds()
            .held_for("held", std::time::SystemTime::now())
            .is_some()
    );
    // `expect(1)`: the second poll sent nothing.
}

/// An OAuth2 token source is a credential like any other: the client fetches the token
/// on its first request, sends it only to the API's origin, keeps it across requests,
/// fetches another after a 401, and masks it in what the API echoes.
#[tokio::test]
async fn a_token_from_a_token_endpoint_is_sent_kept_and_renewed_after_a_401() {
    use connector_core::auth::AuthSpec;
    use connector_core::redact::Redactor;
    use wiremock::matchers::path;
    let api = MockServer::start().await;
    let issuer = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"access_token": "at-77", "expires_in": 600})),
        )
        .expect(2)
        .mount(&issuer)
        .await;
    Mock::given(path("/ok"))
        .and(header("authorization", "Bearer at-77"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .expect(2)
        .mount(&api)
        .await;
    Mock::given(path("/echo"))
        .respond_with(ResponseTemplate::new(401).set_body_string("bad token at-77"))
        .mount(&api)
        .await;
    let spec: AuthSpec = serde_json::from_value(serde_json::json!({
        "type": "oauth2ClientCredentials", "tokenUrl": format!("{}/token", issuer.uri()),
        "clientId": "me", "clientSecret": "cs-secret-1"
    }))
    .expect("spec");
    let common = connector_core::ConnectorContext::isolated(connector_core::ConnectorConfig::new(
        "tokens",
        "HTTP_JSON",
    ));
    let auth = spec.auth(&common).expect("auth").expect("some");
    assert!(!format!("{auth:?}").contains("cs-secret-1"));
    // The API client shares no redactor with the token endpoint's: a token joins its
    // own and the process's (the log writer's, from its context) when it is issued.
    let process = Redactor::new();
    let c = HttpClient::builder(Url::parse(&api.uri()).expect("base"))
        .context(&Context::isolated().with_redactor(process.clone()))
        .auth(auth)
        .build()
        .expect("client");
    c.get(&url(&api, "/ok"))
        .await
        .expect("first, with a new token");
    assert_eq!(
        process.scrub("echo: at-77"),
        "echo: ****",
        "the log writer masks it"
    );
    let err = c.get(&url(&api, "/echo")).await.expect_err("401");
    assert!(!err.to_string().contains("at-77"), "{err}");
    c.get(&url(&api, "/ok"))
        .await
        .expect("a token fetched again");
    let err = c
        .get(&url(&issuer, "/elsewhere"))
        .await
        .expect_err("the token stays with the API's origin");
    assert!(matches!(err, HttpError::ForeignOrigin { .. }), "{err}");
}

/// A `Retry-After` too large for a number is the longest wait, not none: the request is
/// not retried, and the next one is held (capped at an hour) instead of sent at once.
#[tokio::test]
async fn an_absurd_retry_after_holds_for_the_longest_hold() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(429).insert_header("retry-after", "99999999999999999999"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let clock = std::sync::Arc::new(ManualClock::at(std::time::SystemTime::now()));
    let context = Context::isolated().with_clock(clock.clone());
    let client = HttpClient::builder(Url::parse(&server.uri()).expect("base"))
        .retry(quick_retries(3))
        .context(&context)
        .build()
        .expect("client");
    client.get(&url(&server, "/x")).await.expect_err("429");
    let held = client.get(&url(&server, "/x")).await.expect_err("held");
    assert!(matches!(held, HttpError::Held { .. }), "{held}");
    assert!(clock.slept().is_empty(), "no wait inside the request");
    let now = std::time::SystemTime::now();
    let until = context.holds().held_for("unnamed", now).expect("a hold");
    assert!(until <= now + connector_core::ratelimit::MAX_HOLD + Duration::from_secs(5));
    assert!(until > now + Duration::from_secs(3000), "about an hour");
}
