//! Replicas tested as one system (`just chaos`): three `connectors run` workers share 30
//! connectors that share one token, against a mock API enforcing a published quota that
//! the connectors together want more than; one worker is killed and started again. Every
//! connector keeps polling, the share evens out, the shared budget keeps every window
//! within the quota, and nothing is missing or published twice.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use connector_redis::testing::RedisServer;
use nix::sys::signal::Signal;
use serde_json::json;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const TOKEN: &str = "replicas-shared-token-0123456789";
const CONNECTORS: usize = 30;
const LIMIT: u64 = 120;
const WINDOW_MS: u64 = 10_000;
const INTERVAL_MS: u64 = 2_000;
const LEASE_TTL_S: u64 = 3;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
}

/// What the API saw.
#[derive(Default)]
struct Seen {
    /// Requests served per quota window.
    served: BTreeMap<u64, u64>,
    /// 429s sent.
    refused: u64,
    /// When each connector's requests came (UNIX ms).
    times: BTreeMap<String, Vec<u64>>,
}

/// An API with a published quota: `LIMIT` requests per `WINDOW_MS`, said in
/// `x-ratelimit-*` headers; past it, 429 with `Retry-After`.
#[derive(Clone, Default)]
struct Quota(Arc<Mutex<Seen>>);

impl Respond for Quota {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let authorized = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {TOKEN}"));
        if !authorized {
            return ResponseTemplate::new(401);
        }
        let now = now_ms();
        let window = now / WINDOW_MS;
        let end = (window + 1) * WINDOW_MS;
        let Ok(mut seen) = self.0.lock() else {
            return ResponseTemplate::new(500);
        };
        let count = *seen.served.get(&window).unwrap_or(&0);
        if count >= LIMIT {
            seen.refused += 1;
            let wait = (end - now).div_ceil(1000).to_string();
            return ResponseTemplate::new(429).insert_header("retry-after", wait.as_str());
        }
        seen.served.insert(window, count + 1);
        let connector = request
            .url
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        seen.times.entry(connector.clone()).or_default().push(now);
        ResponseTemplate::new(200)
            .insert_header("x-ratelimit-limit", LIMIT.to_string().as_str())
            .insert_header(
                "x-ratelimit-remaining",
                (LIMIT - count - 1).to_string().as_str(),
            )
            .insert_header("x-ratelimit-reset", (end / 1000).to_string().as_str())
            .set_body_json(json!([
                {"id": format!("{connector}-a"), "v": "1"},
                {"id": format!("{connector}-b"), "v": "1"}
            ]))
    }
}

fn config(server: &MockServer) -> String {
    let list: Vec<_> = (0..CONNECTORS)
        .map(|n| {
            json!({
                "name": format!("c{n}"),
                "type": "HTTP_JSON",
                "pollIntervalMs": INTERVAL_MS,
                "leaseTtlSeconds": LEASE_TTL_S,
                "maxRetries": 0,
                "providerConfig": {
                    "request": {"url": format!("{}/items/c{n}", server.uri())},
                    "auth": {"type": "bearer", "token": "${SHARED_TOKEN}"},
                    "records": {"path": "", "id": "/id", "version": "/v"},
                    "signal": {"kind": "item", "title": "{{/id}}"}
                }
            })
        })
        .collect();
    json!({ "connectors": list }).to_string()
}

fn worker(dir: &std::path::Path, redis: &RedisServer) -> Proc {
    Proc::start(
        dir,
        &["run"],
        &[
            ("REDIS_URL", redis.url()),
            ("SHARED_TOKEN", TOKEN.to_owned()),
            ("HTTP_PORT", "off".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "three worker processes for a minute: `just chaos`"]
async fn three_replicas_share_one_token_within_its_published_quota() {
    let dir = temp_dir("replicas");
    let redis = RedisServer::start(&dir, None).await;
    let server = MockServer::start().await;
    let quota = Quota::default();
    Mock::given(wiremock::matchers::any())
        .respond_with(quota.clone())
        .mount(&server)
        .await;
    std::fs::write(dir.join("connectors.json"), config(&server)).expect("config");
    let mut workers = vec![
        worker(&dir, &redis),
        worker(&dir, &redis),
        worker(&dir, &redis),
    ];
    tokio::time::sleep(Duration::from_secs(15)).await;
    // One dies without a word, and comes back after its leases lapsed.
    workers[1].signal(Signal::SIGKILL);
    let _ = workers[1].wait_exit(Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    workers[1] = worker(&dir, &redis);
    tokio::time::sleep(Duration::from_secs(20)).await;
    let end = now_ms();
    for w in &mut workers {
        w.signal(Signal::SIGTERM);
        let _ = w.wait_exit(Duration::from_secs(15)).await;
    }
    let seen = quota
        .0
        .lock()
        .map(|s| (s.served.clone(), s.refused, s.times.clone()));
    let (served, refused, times) = seen.expect("the mock's record");
    assert_eq!(
        refused, 0,
        "no 429: the budget kept every window within the quota"
    );
    assert!(served.values().all(|n| *n <= LIMIT), "{served:?}");
    // Every connector kept polling: its longest gap, the end included, is bounded by a
    // lease lapsing plus its interval, plus what pacing at 1.25x the quota adds.
    let bound = LEASE_TTL_S * 1000 + INTERVAL_MS * 3 + 5_000;
    assert_eq!(times.len(), CONNECTORS, "{:?}", times.keys());
    for (connector, at) in &times {
        let gaps = at
            .windows(2)
            .map(|w| w[1] - w[0])
            .chain([end - at[at.len() - 1]]);
        let longest = gaps.max().unwrap_or(0);
        assert!(
            longest <= bound,
            "{connector}: a gap of {longest} ms (bound {bound} ms)"
        );
    }
    let counts: Vec<usize> = times.values().map(Vec::len).collect();
    let (least, most) = (
        counts.iter().min().copied().unwrap_or(0),
        counts.iter().max().copied().unwrap_or(0),
    );
    assert!(
        least * 2 >= most,
        "the share evens out: {least} to {most} requests"
    );
    // Nothing missing, nothing twice.
    let client = connector_redis::testing::inspector_at(&redis.url()).await;
    let mut ids: Vec<String> =
        connector_redis::testing::stream_entries(&client, "raw-input-signals")
            .await
            .into_iter()
            .map(|e| e.external_id)
            .collect();
    ids.sort();
    let published = ids.len();
    ids.dedup();
    assert_eq!((ids.len(), published), (CONNECTORS * 2, CONNECTORS * 2));
}
