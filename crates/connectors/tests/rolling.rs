//! A rolling upgrade, tested as one system (`scripts/rolling-upgrade`): the previous
//! release's `connectors` (its path in `PREVIOUS_CONNECTORS`, built by the script from the
//! last landed commit) and this build run as replicas against one Redis, swapped one at a
//! time as a Deployment's rollout does, then rolled back one: snapshot, incremental and
//! NOAA connectors, whose data changes all along, publish every version an API served
//! exactly once, whichever release held the connector when it was served.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use connector_redis::testing::RedisServer;
use nix::sys::signal::Signal;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SNAPSHOTS: usize = 4;
const INCREMENTAL: usize = 4;
const NOAA: usize = 2;
const INTERVAL_MS: u64 = 1_000;
/// A snapshot item's version changes this often.
const EPOCH_MS: u64 = 4_000;
/// An incremental stream gains an item this often; each is updated once, this much later.
const NEW_ITEM_MS: u64 = 1_500;
const UPDATE_AFTER_MS: u64 = 5_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
}

/// Every (external id, version) the API served in a 200.
#[derive(Clone, Default)]
struct Served(Arc<Mutex<BTreeMap<String, BTreeSet<String>>>>);

impl Served {
    fn record(&self, items: &[Value]) {
        if let Ok(mut served) = self.0.lock() {
            for item in items {
                let (Some(id), Some(v)) = (item["id"].as_str(), item["v"].as_str()) else {
                    continue;
                };
                served
                    .entry(id.to_owned())
                    .or_default()
                    .insert(v.to_owned());
            }
        }
    }
}

/// `/snap/{name}`: two items, one whose version moves every `EPOCH_MS`.
/// `/inc/{name}?since=MS`: the items updated at or after `since` (epoch ms), oldest first;
/// item k appears `NEW_ITEM_MS` after item k-1 and is updated once, `UPDATE_AFTER_MS` on.
struct Api {
    served: Served,
    start: u64,
}

impl Api {
    fn incremental(&self, name: &str, since: u64, now: u64) -> Vec<Value> {
        let mut items: Vec<(u64, Value)> = (0..)
            .map(|k| (k, self.start + k * NEW_ITEM_MS))
            .take_while(|(_, created)| *created <= now)
            .map(|(k, created)| {
                let updated = if now >= created + UPDATE_AFTER_MS {
                    created + UPDATE_AFTER_MS
                } else {
                    created
                };
                let v = updated.to_string();
                (
                    updated,
                    json!({"id": format!("{name}-{k}"), "v": v, "updated": updated}),
                )
            })
            .filter(|(updated, _)| *updated >= since)
            .collect();
        items.sort_by_key(|(updated, _)| *updated);
        items.into_iter().map(|(_, item)| item).collect()
    }
}

impl Respond for Api {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let now = now_ms();
        let mut segments = request.url.path().trim_start_matches('/').split('/');
        let (kind, name) = (segments.next(), segments.next().unwrap_or_default());
        let items = match kind {
            Some("snap") => vec![
                json!({"id": format!("{name}-moving"), "v": (now / EPOCH_MS).to_string()}),
                json!({"id": format!("{name}-still"), "v": "1"}),
            ],
            Some("inc") => {
                let since = request
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "since")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                self.incremental(name, since, now)
            }
            _ => return ResponseTemplate::new(404),
        };
        self.served.record(&items);
        ResponseTemplate::new(200).set_body_json(items)
    }
}

fn config(api: &MockServer, noaa: &MockServer) -> String {
    let common = |name: String, provider: Value, kind: &str| {
        json!({
            "name": name, "type": kind, "pollIntervalMs": INTERVAL_MS,
            "leaseTtlSeconds": 3, "maxRetries": 0, "providerConfig": provider
        })
    };
    let snapshots = (0..SNAPSHOTS).map(|n| {
        let provider = json!({
            "request": {"url": format!("{}/snap/s{n}", api.uri())},
            "records": {"path": "", "id": "/id", "version": "/v"},
            "signal": {"kind": "item", "title": "{{/id}}"}
        });
        common(format!("s{n}"), provider, "HTTP_JSON")
    });
    let incremental = (0..INCREMENTAL).map(|n| {
        let provider = json!({
            "request": {"url": format!("{}/inc/i{n}", api.uri()), "query": {"since": "{{cursor}}"}},
            "records": {"path": "", "id": "/id", "version": "/v"},
            "signal": {"kind": "item", "title": "{{/id}}"},
            "incremental": {"field": "/updated", "format": "epochMillis", "lookbackMs": 2000}
        });
        common(format!("i{n}"), provider, "HTTP_JSON")
    });
    let noaa = (0..NOAA).map(|n| {
        let provider = json!({"baseUrl": noaa.uri(), "area": "OH"});
        common(format!("w{n}"), provider, "NOAA_WEATHER")
    });
    let list: Vec<Value> = snapshots.chain(incremental).chain(noaa).collect();
    json!({ "connectors": list }).to_string()
}

/// A replica of `binary` (None: this build) on `redis`.
fn replica(binary: Option<&PathBuf>, dir: &std::path::Path, redis: &RedisServer) -> Proc {
    let env = [
        ("REDIS_URL", redis.url()),
        ("HTTP_PORT", "off".to_owned()),
        ("RUST_LOG", "info".to_owned()),
    ];
    match binary {
        Some(b) => Proc::start_binary(b, dir, &["run"], &env),
        None => Proc::start(dir, &["run"], &env),
    }
}

/// Stops `replica` as a rollout does (SIGTERM: its polls finish, its leases are released).
async fn retire(replica: &mut Proc) -> String {
    replica.signal(Signal::SIGTERM);
    let status = replica.wait_exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}:\n{}", replica.log());
    replica.log()
}

/// Two replicas of `previous`; each replaced by this build in turn (a Deployment's rolling
/// update); then one rolled back. The replicas' logs, in the order they stopped:
/// previous, previous, this build, rolled back, this build.
async fn roll(previous: &PathBuf, dir: &std::path::Path, redis: &RedisServer) -> Vec<String> {
    let pause = |s| tokio::time::sleep(Duration::from_secs(s));
    let mut old_a = replica(Some(previous), dir, redis);
    let mut old_b = replica(Some(previous), dir, redis);
    pause(8).await;
    let mut logs = vec![retire(&mut old_a).await];
    let mut new_a = replica(None, dir, redis);
    pause(8).await;
    logs.push(retire(&mut old_b).await);
    let mut new_b = replica(None, dir, redis);
    pause(8).await;
    logs.push(retire(&mut new_a).await);
    let mut back_a = replica(Some(previous), dir, redis);
    pause(10).await;
    logs.push(retire(&mut back_a).await);
    logs.push(retire(&mut new_b).await);
    logs
}

/// The stream's versions per "connector|external id".
async fn published(redis: &RedisServer) -> BTreeMap<String, Vec<String>> {
    let client = connector_redis::testing::inspector_at(&redis.url()).await;
    let entries = connector_redis::testing::stream_entries(&client, "raw-input-signals").await;
    let mut published: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in entries {
        published
            .entry(format!("{}|{}", e.connector, e.external_id))
            .or_default()
            .push(e.version);
    }
    published
}

/// Nothing twice, nothing missing: each id's versions in the stream are exactly the ones
/// the API served (NOAA's, which never change here, once per connector).
fn check(published: &BTreeMap<String, Vec<String>>, served: &BTreeMap<String, BTreeSet<String>>) {
    for (key, versions) in published {
        let distinct: BTreeSet<String> = versions.iter().cloned().collect();
        assert_eq!(
            distinct.len(),
            versions.len(),
            "{key} published twice: {versions:?}"
        );
        if key.starts_with('w') {
            continue;
        }
        let id = key.split_once('|').map_or(key.as_str(), |(_, id)| id);
        assert_eq!(
            served.get(id),
            Some(&distinct),
            "{key}: published, then served"
        );
    }
    for id in served.keys() {
        assert!(
            published.keys().any(|k| k.ends_with(&format!("|{id}"))),
            "{id}: served {:?}, never published",
            served.get(id)
        );
    }
    let noaa: BTreeSet<usize> = (0..NOAA)
        .map(|n| {
            published
                .keys()
                .filter(|k| k.starts_with(&format!("w{n}|")))
                .count()
        })
        .collect();
    assert_eq!(noaa.len(), 1, "{noaa:?}");
    assert!(noaa.iter().all(|n| *n > 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the previous release's binary: scripts/rolling-upgrade"]
async fn a_rollout_and_a_rollback_across_two_releases_lose_and_repeat_nothing() {
    let previous = PathBuf::from(std::env::var("PREVIOUS_CONNECTORS").expect(
        "PREVIOUS_CONNECTORS names the previous release's connectors binary (scripts/rolling-upgrade builds it)",
    ));
    assert!(previous.is_file(), "{} is not a file", previous.display());
    let dir = temp_dir("rolling");
    let redis = RedisServer::start(&dir, None).await;
    let served = Served::default();
    let api = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Api {
            served: served.clone(),
            start: now_ms(),
        })
        .mount(&api)
        .await;
    let noaa = mock_provider(Duration::ZERO).await;
    std::fs::write(dir.join("connectors.json"), config(&api, &noaa)).expect("config");

    let logs = roll(&previous, &dir, &redis).await;
    for log in &logs {
        assert!(
            !log.contains("layout"),
            "a replica refused the state:\n{log}"
        );
    }
    // Every replica held connectors: the first two what nobody had written, each later
    // one what a replica of the other release had written.
    for (i, log) in logs.iter().enumerate() {
        assert!(
            log.contains("lease acquired"),
            "replica {i} held no connector:\n{log}"
        );
    }
    let published = published(&redis).await;
    let served = served
        .0
        .lock()
        .map(|s| s.clone())
        .expect("the mock's record");
    check(&published, &served);
    // The run saw the data change all along: the moving snapshot items took a version
    // every EPOCH_MS and each incremental stream gained an item every NEW_ITEM_MS, with
    // each release holding connectors in turn.
    let versions = |prefix: char| {
        served
            .iter()
            .filter(|(id, _)| id.starts_with(prefix))
            .map(|(_, v)| v.len())
            .sum::<usize>()
    };
    eprintln!(
        "rolling: {} ids published; served {} snapshot and {} incremental versions",
        published.len(),
        versions('s'),
        versions('i')
    );
    assert!(versions('s') >= SNAPSHOTS * 8, "{}", versions('s'));
    assert!(versions('i') >= INCREMENTAL * 30, "{}", versions('i'));
}
