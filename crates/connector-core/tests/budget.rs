//! A client paces its requests by what the API's rate-limit headers say: the remaining
//! requests spread over the time to the reset, on the context's clock (so this test
//! waits for nothing), and a wait longer than a request may take ends the read.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use connector_core::context::{Context, ManualClock};
use connector_core::http::{HttpClient, HttpError, Request};
use connector_core::{ConnectorConfig, ConnectorContext, Cursor};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const NOW: u64 = 1_800_000_000;

async fn paced(remaining: &str, reset_in: u64) -> (MockServer, HttpClient, Arc<ManualClock>) {
    let server = MockServer::start().await;
    let reset = (NOW + reset_in).to_string();
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-ratelimit-remaining", remaining)
                .insert_header("x-ratelimit-reset", reset.as_str())
                .set_body_json(serde_json::json!([])),
        )
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::at(UNIX_EPOCH + Duration::from_secs(NOW)));
    let context = Context::isolated().with_clock(clock.clone());
    let mut config = ConnectorConfig::new("paced", "TEST");
    config.max_retries = 0;
    let common = ConnectorContext::new(Arc::new(config), context);
    let base = url::Url::parse(&server.uri()).expect("url");
    let http = HttpClient::builder(base)
        .connector_settings(&common)
        .build()
        .expect("client");
    (server, http, clock)
}

async fn get(http: &HttpClient, server: &MockServer) -> Result<(), HttpError> {
    let url = url::Url::parse(&format!("{}/items", server.uri())).expect("url");
    http.send(&Request::get(url), &Cursor::default())
        .await
        .map(|_| ())
}

#[tokio::test]
async fn requests_are_spread_over_the_time_left_to_the_reset() {
    let (server, http, clock) = paced("10", 10).await;
    for _ in 0..10 {
        get(&http, &server).await.expect("request");
    }
    let slept = clock.slept();
    // The first learns the limit; a burst of five goes at once, the rest one a second.
    assert_eq!(slept.len(), 4, "{slept:?}");
    assert!(
        slept.iter().all(|d| *d == Duration::from_secs(1)),
        "{slept:?}"
    );
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        10
    );
}

#[tokio::test]
async fn a_spent_quota_ends_the_read_instead_of_sleeping_through_it() {
    let (server, http, clock) = paced("0", 3600).await;
    get(&http, &server)
        .await
        .expect("the first request learns the limit");
    let held = get(&http, &server).await;
    assert!(matches!(held, Err(HttpError::Held { .. })), "{held:?}");
    assert!(clock.slept().is_empty(), "{:?}", clock.slept());
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        1
    );
}

/// An API that states its limit only in its documentation: the connector's `rateLimit`
/// paces it the same way.
#[tokio::test]
async fn a_configured_rate_limit_paces_an_api_that_sends_no_headers() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([])))
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::at(UNIX_EPOCH + Duration::from_secs(NOW)));
    let context = Context::isolated().with_clock(clock.clone());
    let mut config = ConnectorConfig::new("documented", "TEST");
    config.rate_limit = Some(connector_core::config::RateCeiling {
        requests: 10,
        per_seconds: 10,
    });
    let common = ConnectorContext::new(Arc::new(config), context);
    let base = url::Url::parse(&server.uri()).expect("url");
    let http = HttpClient::builder(base)
        .connector_settings(&common)
        .build()
        .expect("client");
    for _ in 0..10 {
        get(&http, &server).await.expect("request");
    }
    let slept = clock.slept();
    assert_eq!(
        slept,
        vec![Duration::from_secs(1); 5],
        "a burst of five, then one a second"
    );
}

/// A store that knows nothing of any budget, and counts what it is asked.
#[derive(Default)]
struct Unknowing(std::sync::atomic::AtomicU64);

impl connector_core::budget::SharedBudgets for Unknowing {
    fn take<'a>(
        &'a self,
        _: &'a str,
        _: i64,
        _: Option<connector_core::budget::Ceiling>,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<Option<Duration>, connector_core::ports::BackendError>,
    > {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(std::future::ready(Ok(None)))
    }
    fn learn<'a>(
        &'a self,
        _: &'a str,
        _: &'a connector_core::budget::Learned,
        _: i64,
    ) -> futures_util::future::BoxFuture<'a, Result<(), connector_core::ports::BackendError>> {
        Box::pin(std::future::ready(Ok(())))
    }
    fn list(
        &self,
    ) -> futures_util::future::BoxFuture<
        '_,
        Result<Vec<(String, connector_core::budget::Budget)>, connector_core::ports::BackendError>,
    > {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
    fn clear<'a>(
        &'a self,
        _: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<bool, connector_core::ports::BackendError>>
    {
        Box::pin(std::future::ready(Ok(false)))
    }
}

/// A budget the store knows nothing of is asked about once a second, unless the request
/// carries a published limit: that window is shared, so the store is asked every time.
#[tokio::test]
async fn only_a_budget_without_a_published_limit_skips_the_store_for_a_second() {
    use connector_core::budget::{Budgets, Ceiling, OPEN_RECHECK_MS};
    let store = Arc::new(Unknowing::default());
    let budgets = Budgets::new(store.clone(), b"deployment-key");
    let clock = ManualClock::at(UNIX_EPOCH + Duration::from_secs(NOW));
    let asked = || store.0.load(std::sync::atomic::Ordering::SeqCst);
    let timeout = Duration::from_millis(100);
    for _ in 0..5 {
        let wait = budgets.take("k", "c", None, &clock, timeout).await;
        assert_eq!(wait, Duration::ZERO);
    }
    assert_eq!(asked(), 1);
    let ceiling = Some(Ceiling {
        requests: 100,
        window_ms: 60_000,
    });
    for _ in 0..3 {
        budgets.take("k", "c", ceiling, &clock, timeout).await;
    }
    assert_eq!(asked(), 4, "a published limit asks every time");
    clock.advance(Duration::from_millis(
        u64::try_from(OPEN_RECHECK_MS).unwrap_or(1000),
    ));
    budgets.take("k", "c", None, &clock, timeout).await;
    assert_eq!(asked(), 5, "after a second the store is asked again");
}
