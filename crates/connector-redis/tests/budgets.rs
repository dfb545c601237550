//! Shared rate budgets on Redis: what one process learns holds and paces the others, a
//! budget names its credential by HMAC only, a hold ends by itself, and a Redis that does
//! not answer never stalls a request.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{backend, inspector, settings, unique_prefix};
use connector_core::budget::{Budgets, Learned, SharedBudgets};
use connector_core::context::{Context, ManualClock};
use connector_core::http::{HttpClient, HttpError};
use connector_core::{ConnectorConfig, ConnectorContext};
use connector_redis::RedisBackend;
use fred::interfaces::{ClientLike, KeysInterface};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "budget-test-token-0123456789";

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A process on a manual clock sharing the budgets in `backend`: its budgets, clock,
/// context, and the deployment's budget key.
async fn on_manual_clock(
    backend: &Arc<RedisBackend>,
) -> (Arc<Budgets>, Arc<ManualClock>, Context, Vec<u8>) {
    let secret = backend.budget_secret().await.expect("secret");
    let budgets = Arc::new(Budgets::new(backend.clone(), &secret));
    let clock = Arc::new(ManualClock::at(
        UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    ));
    let context = Context::isolated()
        .with_budgets(budgets.clone())
        .with_clock(clock.clone());
    (budgets, clock, context, secret)
}

/// A process: its own context, sharing the budgets in `backend`.
async fn process(backend: &Arc<RedisBackend>) -> Context {
    let secret = backend.budget_secret().await.expect("secret");
    Context::isolated().with_budgets(Arc::new(Budgets::new(backend.clone(), &secret)))
}

fn client(context: &Context, server: &MockServer, token: &str, name: &str) -> HttpClient {
    let mut config = ConnectorConfig::new(name, "TEST");
    config.max_retries = 0;
    let common = ConnectorContext::new(Arc::new(config), context.clone());
    let base = url::Url::parse(&server.uri()).expect("url");
    HttpClient::builder(base)
        .auth(connector_core::auth::Auth::bearer(
            &connector_core::config::Secret::new(token),
        ))
        .connector_settings(&common)
        .build()
        .expect("client")
}

async fn get(client: &HttpClient, server: &MockServer) -> Result<(), HttpError> {
    let url = url::Url::parse(&format!("{}/items", server.uri())).expect("url");
    let request = connector_core::http::Request::get(url);
    client
        .send(&request, &connector_core::Cursor::default())
        .await
        .map(|_| ())
}

/// A spent quota seen by one process holds every other process sending under the same
/// credential, before any of them asks the API; another credential is not held.
#[tokio::test]
async fn a_spent_quota_seen_by_one_replica_holds_the_others() {
    let prefix = unique_prefix("budget-hold");
    let redis = backend(&prefix).await;
    let server = MockServer::start().await;
    let reset = (now_secs() + 120).to_string();
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.as_str())
                .set_body_json(serde_json::json!([])),
        )
        .mount(&server)
        .await;
    let (a, b) = (process(&redis).await, process(&redis).await);
    get(&client(&a, &server, TOKEN, "one"), &server)
        .await
        .expect("the first request goes");
    let held = get(&client(&b, &server, TOKEN, "two"), &server).await;
    assert!(matches!(held, Err(HttpError::Held { .. })), "{held:?}");
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        1
    );
    get(
        &client(&b, &server, "another-token-0123456789", "three"),
        &server,
    )
    .await
    .expect("another credential has its own budget");
    // The budget is named by an HMAC: no key or value holds the credential.
    let redis_client = inspector().await;
    let keys: Vec<String> = redis_client
        .custom(
            fred::types::CustomCommand::new_static("KEYS", fred::types::ClusterHash::Random, false),
            vec![format!("{prefix}*")],
        )
        .await
        .unwrap_or_default();
    assert!(keys.iter().any(|k| k.contains("budget:{")), "{keys:?}");
    assert!(keys.iter().all(|k| !k.contains(TOKEN)), "{keys:?}");
    let listed = redis.list().await.expect("list");
    assert_eq!(listed.len(), 2, "one budget per credential: {listed:?}");
    for (key, budget) in &listed {
        assert_eq!(budget.remaining, Some(0));
        assert!(redis.clear(key).await.expect("clear"));
    }
    get(&client(&b, &server, TOKEN, "two"), &server)
        .await
        .expect("a cleared budget holds nothing");
}

/// Two replicas pace by one count: the window's requests spread over its time, the burst
/// shared, not one each.
#[tokio::test]
async fn replicas_share_one_pace() {
    let prefix = unique_prefix("budget-pace");
    let redis = backend(&prefix).await;
    let now = 1_800_000_000_000;
    let key = "pace";
    let learned = Learned {
        remaining: Some((10, now + 10_000)),
        ..Learned::default()
    };
    redis.learn(key, &learned, now).await.expect("learn");
    let other = backend(&prefix).await;
    let mut went = 0;
    for i in 0..10 {
        let store: &dyn SharedBudgets = if i % 2 == 0 { &*redis } else { &*other };
        if store.take(key, now, None).await.expect("take") == Some(Duration::ZERO) {
            went += 1;
        }
    }
    assert_eq!(went, 5, "the burst is the budget's, not each replica's");
    let wait = redis.take(key, now, None).await.expect("take");
    assert_eq!(wait, Some(Duration::from_millis(1000)), "then one a second");
    // A late response with more left does not raise the count within the window.
    let late = Learned {
        remaining: Some((9, now + 10_000)),
        ..Learned::default()
    };
    redis.learn(key, &late, now).await.expect("learn");
    let listed = redis.list().await.expect("list");
    assert_eq!(listed[0].1.remaining, Some(5));
}

/// An API that publishes its limit in its documentation only: the configured ceiling
/// opens the shared window, paced the same for every replica.
#[tokio::test]
async fn a_published_limit_paces_an_api_that_sends_no_headers() {
    let prefix = unique_prefix("budget-ceiling");
    let redis = backend(&prefix).await;
    let other = backend(&prefix).await;
    let now = 1_800_000_000_000;
    let ceiling = Some(connector_core::budget::Ceiling {
        requests: 10,
        window_ms: 10_000,
    });
    let mut went = 0;
    for i in 0..10 {
        let store: &dyn SharedBudgets = if i % 2 == 0 { &*redis } else { &*other };
        if store.take("ceiling", now, ceiling).await.expect("take") == Some(Duration::ZERO) {
            went += 1;
        }
    }
    assert_eq!(went, 5, "a burst of five, for both replicas together");
    let wait = redis.take("ceiling", now, ceiling).await.expect("take");
    assert_eq!(wait, Some(Duration::from_millis(1000)));
    // The same rule in the process's own budgets.
    let local = connector_core::budget::LocalBudgets::default();
    let mut went = 0;
    for _ in 0..10 {
        if local.take("ceiling", now, ceiling).await.expect("take") == Some(Duration::ZERO) {
            went += 1;
        }
    }
    assert_eq!(went, 5);
    // What a response says replaces the configured window: 5 left for the next 10 s, not
    // what the configured hour would allow.
    let said = Learned {
        remaining: Some((5, now + 10_000)),
        ..Learned::default()
    };
    let hour = Some(connector_core::budget::Ceiling {
        requests: 100,
        window_ms: 3_600_000,
    });
    for store in [&*redis as &dyn SharedBudgets, &local] {
        store.take("said", now, hour).await.expect("take");
        store.learn("said", &said, now).await.expect("learn");
        let listed = store.list().await.expect("list");
        let (_, budget) = listed
            .iter()
            .find(|(k, _)| k == "said")
            .expect("the budget");
        assert_eq!(
            (budget.remaining, budget.reset_ms),
            (Some(5), Some(now + 10_000))
        );
    }
}

/// A hold carries a TTL: at most an hour, however long the header asked.
#[tokio::test]
async fn a_hold_expires_with_its_end_at_most_an_hour_on() {
    let prefix = unique_prefix("budget-ttl");
    let redis = backend(&prefix).await;
    let now = i64::try_from(now_secs()).unwrap_or(0) * 1000;
    let learned = Learned {
        hold_until_ms: Some(now + 10 * 3_600_000),
        source: "retry-after: 36000".into(),
        ..Learned::default()
    };
    redis.learn("ttl", &learned, now).await.expect("learn");
    let redis_client = inspector().await;
    let ttl: i64 = redis_client
        .pttl(format!("{prefix}budget:{{ttl}}"))
        .await
        .expect("pttl");
    assert!(ttl > 3_500_000 && ttl <= 3_600_000, "{ttl}");
    let listed = redis.list().await.expect("list");
    assert_eq!(listed[0].1.source.as_deref(), Some("retry-after: 36000"));
}

/// A TCP proxy to Redis that can stop answering (a black hole: connections stay open,
/// nothing comes back).
struct Proxy {
    port: u16,
    black_hole: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let black_hole = Arc::new(AtomicBool::new(false));
        let hole = black_hole.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (mut ri, mut wi) = inbound.into_split();
                let (mut ro, mut wo) = outbound.into_split();
                let (h1, h2) = (hole.clone(), hole.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = ri.read(&mut buf).await {
                        if n == 0
                            || (!h1.load(Ordering::SeqCst)
                                && wo.write_all(&buf[..n]).await.is_err())
                        {
                            break;
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = ro.read(&mut buf).await {
                        if n == 0
                            || (!h2.load(Ordering::SeqCst)
                                && wi.write_all(&buf[..n]).await.is_err())
                        {
                            break;
                        }
                    }
                });
            }
        });
        Self { port, black_hole }
    }
}

/// Redis black-holed behind a proxy: a request's budget call gives up within its timeout,
/// the breaker keeps Redis out for 30 s (requests go on, paced by this process's own
/// budgets), and Redis is asked again after.
#[tokio::test]
async fn a_black_holed_redis_never_stalls_a_request() {
    let prefix = unique_prefix("budget-hole");
    let url = url::Url::parse(&common::redis_url()).expect("url");
    let upstream = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(6379)
    );
    let proxy = Proxy::start(upstream).await;
    let proxied = common::redis_url().replace(
        &format!(":{}", url.port().unwrap_or(6379)),
        &format!(":{}", proxy.port),
    );
    let redis = RedisBackend::connect(settings(&proxied, &prefix))
        .await
        .expect("connect through the proxy");
    let (budgets, clock, context, _) = on_manual_clock(&redis).await;
    // An API that says its limit, so every request asks the budget's store.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-ratelimit-limit", "5000")
                .insert_header("x-ratelimit-remaining", "4990")
                .insert_header("x-ratelimit-reset", "1800003600")
                .set_body_json(serde_json::json!([])),
        )
        .mount(&server)
        .await;
    let http = client(&context, &server, TOKEN, "hole");
    get(&http, &server).await.expect("through Redis");
    let asked = budgets.calls();
    proxy.black_hole.store(true, Ordering::SeqCst);
    for _ in 0..5 {
        get(&http, &server)
            .await
            .expect("Redis silent: the request still goes");
    }
    assert_eq!(
        budgets.calls(),
        asked + 1,
        "one call timed out, then the breaker kept Redis out"
    );
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        6
    );
    proxy.black_hole.store(false, Ordering::SeqCst);
    clock.advance(Duration::from_secs(31));
    get(&http, &server).await.expect("after the breaker");
    assert!(
        budgets.calls() > asked + 1,
        "Redis is asked again after 30 s"
    );
}

/// An API that never says its limit, under a credential with no configured one: its
/// budget costs the store one call a second per process, not one per request, and a hold
/// another replica learns still reaches this one within that second.
#[tokio::test]
async fn a_budget_nothing_is_known_of_is_asked_about_once_a_second() {
    let prefix = unique_prefix("budget-open");
    let redis = backend(&prefix).await;
    let (budgets, clock, context, secret) = on_manual_clock(&redis).await;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([])))
        .mount(&server)
        .await;
    let http = client(&context, &server, TOKEN, "open");
    for _ in 0..5 {
        get(&http, &server).await.expect("no limit known");
    }
    assert_eq!(budgets.calls(), 1, "one store call for five requests");
    assert!(
        redis.list().await.expect("list").is_empty(),
        "an open budget is not written"
    );
    // Another replica (a second process's budgets on the same Redis, the same token)
    // meets a 429.
    Mock::given(method("GET"))
        .and(wiremock::matchers::path("/spent"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "60"))
        .with_priority(1)
        .mount(&server)
        .await;
    let elsewhere = Context::isolated()
        .with_budgets(Arc::new(Budgets::new(redis.clone(), &secret)))
        .with_clock(clock.clone());
    let other = client(&elsewhere, &server, TOKEN, "elsewhere");
    let spent = url::Url::parse(&format!("{}/spent", server.uri())).expect("url");
    let refused = other
        .send(
            &connector_core::http::Request::get(spent),
            &connector_core::Cursor::default(),
        )
        .await;
    assert!(refused.is_err());
    assert_eq!(
        redis.list().await.expect("list").len(),
        1,
        "the hold is shared"
    );
    clock.advance(Duration::from_millis(1_001));
    let held = get(&http, &server).await;
    assert!(
        matches!(held, Err(HttpError::Held { .. })),
        "within a second this process waits for the hold: {held:?}"
    );
    assert_eq!(budgets.calls(), 2);
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        6
    );
}

/// An API enforcing a published quota: `limit` requests per `window` of the shared clock,
/// said in `x-ratelimit-*` headers; past it, 429 with `Retry-After`.
struct Quota {
    clock: Arc<ManualClock>,
    limit: u64,
    window_ms: u64,
    /// Requests served per window, and the 429s sent.
    served: std::sync::Mutex<std::collections::BTreeMap<u64, u64>>,
    refused: std::sync::atomic::AtomicU64,
    /// Requests served per client (the path's last segment).
    by_client: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

/// The quota as a mock's responder.
struct Api(Arc<Quota>);

impl wiremock::Respond for Api {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let this = &self.0;
        let now = this.clock.now_ms();
        let window = now / this.window_ms;
        let end_ms = (window + 1) * this.window_ms;
        let mut served = this.served.lock().expect("lock");
        let count = served.entry(window).or_insert(0);
        if *count >= this.limit {
            this.refused.fetch_add(1, Ordering::SeqCst);
            let wait = (end_ms - now).div_ceil(1000);
            return ResponseTemplate::new(429)
                .insert_header("retry-after", wait.to_string().as_str());
        }
        *count += 1;
        let client = request
            .url
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        *this
            .by_client
            .lock()
            .expect("lock")
            .entry(client)
            .or_insert(0) += 1;
        ResponseTemplate::new(200)
            .insert_header("x-ratelimit-limit", this.limit.to_string().as_str())
            .insert_header(
                "x-ratelimit-remaining",
                (this.limit - *count).to_string().as_str(),
            )
            .insert_header("x-ratelimit-reset", (end_ms / 1000).to_string().as_str())
            .set_body_json(serde_json::json!([]))
    }
}

trait Millis {
    fn now_ms(&self) -> u64;
}

impl Millis for ManualClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(connector_core::context::Clock::now_ms(self)).unwrap_or(0)
    }
}

/// Three replicas, ten connectors each, one token, wanting six times what the API's
/// published quota allows: the shared budget keeps every window within the quota (no 429
/// at all: the quota is learned from the first answer's headers), through a replica's
/// restart, and every connector gets its share.
#[tokio::test]
async fn replicas_sharing_one_token_stay_within_the_published_quota() {
    let prefix = unique_prefix("budget-replicas");
    let redis = backend(&prefix).await;
    let secret = redis.budget_secret().await.expect("secret");
    let clock = Arc::new(ManualClock::at(
        UNIX_EPOCH + Duration::from_secs(1_800_000_000),
    ));
    let quota = Arc::new(Quota {
        clock: clock.clone(),
        limit: 50,
        window_ms: 10_000,
        served: Default::default(),
        refused: Default::default(),
        by_client: Default::default(),
    });
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(Api(quota.clone()))
        .mount(&server)
        .await;
    let replica = || {
        Context::isolated()
            .with_budgets(Arc::new(Budgets::new(redis.clone(), &secret)))
            .with_clock(clock.clone())
    };
    let mut replicas: Vec<Vec<HttpClient>> = (0..3)
        .map(|r| {
            let context = replica();
            (0..10)
                .map(|c| client(&context, &server, TOKEN, &format!("c{r}-{c}")))
                .collect()
        })
        .collect();
    let mut held = 0;
    // Each connector wants a request a second for a simulated minute: 30/s against 5/s.
    for second in 0..60 {
        if second == 30 {
            // A replica dies and comes back: a new process, nothing in memory.
            let context = replica();
            replicas[1] = (0..10)
                .map(|c| client(&context, &server, TOKEN, &format!("c1-{c}")))
                .collect();
        }
        let start = clock.now_ms();
        for (r, clients) in replicas.iter().enumerate() {
            for (c, http) in clients.iter().enumerate() {
                let url =
                    url::Url::parse(&format!("{}/items/c{r}-{c}", server.uri())).expect("url");
                match http
                    .send(
                        &connector_core::http::Request::get(url),
                        &connector_core::Cursor::default(),
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(HttpError::Held { .. }) => held += 1,
                    Err(e) => panic!("second {second}: {e}"),
                }
            }
        }
        let spent = clock.now_ms() - start;
        if spent < 1000 {
            clock.advance(Duration::from_millis(1000 - spent));
        }
    }
    assert_eq!(quota.refused.load(Ordering::SeqCst), 0, "no 429");
    let served = quota.served.lock().expect("lock").clone();
    assert!(served.values().all(|n| *n <= 50), "{served:?}");
    let total: u64 = served.values().sum();
    assert!(total >= 200, "the quota is used, not left idle: {served:?}");
    let by_client = quota.by_client.lock().expect("lock").clone();
    assert_eq!(
        by_client.len(),
        30,
        "every connector got requests through: {by_client:?}"
    );
    assert!(
        !clock.slept().is_empty() || held > 0,
        "the rest waited their turn or were told to wait"
    );
}
