//! Webhooks against the real binary: a verified delivery makes a connector that polls every
//! ten minutes poll now, and nothing else does. Each test owns its mock provider, HTTP
//! port and Redis key prefix (deleted at the end).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use connector_redis::testing::{Namespace, inspector_at, stream_entries};
use nix::sys::signal::Signal;
use ring::hmac;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// One item whose version the test moves: what the provider "changes", at once or, like
/// an API whose list lags its webhooks, only some time later.
#[derive(Clone, Default)]
struct Item(
    Arc<AtomicU64>,
    Arc<std::sync::Mutex<Option<(std::time::Instant, u64)>>>,
);

impl Item {
    fn bump(&self) -> u64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The next version, shown from `after` now on.
    fn bump_after(&self, after: Duration) {
        let next = self.0.load(Ordering::SeqCst) + 1;
        *self.1.lock().expect("lock") = Some((std::time::Instant::now() + after, next));
    }
}

impl Respond for Item {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        if let Some((at, next)) = *self.1.lock().expect("lock")
            && std::time::Instant::now() >= at
        {
            self.0.store(next, Ordering::SeqCst);
        }
        let v = self.0.load(Ordering::SeqCst);
        ResponseTemplate::new(200).set_body_json(json!({ "items": [{ "id": "a", "v": v }] }))
    }
}

/// A mock with one item per connector name, at `/items/<name>`.
async fn provider(names: &[&str]) -> (MockServer, Vec<Item>) {
    let server = MockServer::start().await;
    let mut items = Vec::new();
    for name in names {
        let item = Item::default();
        Mock::given(method("GET"))
            .and(path(format!("/items/{name}")))
            .respond_with(item.clone())
            .mount(&server)
            .await;
        items.push(item);
    }
    (server, items)
}

/// An HTTP_JSON connector polled every ten minutes, with `webhook` (or none).
fn connector(server: &MockServer, name: &str, webhook: Option<Value>) -> Value {
    let mut c = json!({
        "name": name,
        "type": "HTTP_JSON",
        "pollIntervalMs": 600_000,
        "leaseTtlSeconds": 3,
        "maxRetries": 0,
        "outputStream": "signals",
        "providerConfig": {
            "request": {"url": format!("{}/items/{name}", server.uri())},
            "records": {"path": "/items", "id": "/id", "version": "/v"},
            "signal": {"kind": "item", "title": "{{/id}}"},
            "snapshot": true
        }
    });
    if let Some(webhook) = webhook {
        c["webhook"] = webhook;
    }
    c
}

fn hex_hmac(secret: &str, payload: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::sign(&key, payload)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The versions of item `a` that connector `name` published, in order.
async fn versions(redis: &fred::clients::Client, ns: &Namespace, name: &str) -> Vec<String> {
    stream_entries(redis, &format!("{ns}signals"))
        .await
        .into_iter()
        .filter(|e| e.connector == name)
        .map(|e| e.version)
        .collect()
}

/// Waits until connector `name` has published `n` versions.
async fn published(redis: &fred::clients::Client, ns: &Namespace, name: &str, n: usize) {
    eventually(
        &format!("{name} publishes {n} versions"),
        Duration::from_secs(20),
        || async { (versions(redis, ns, name).await.len() >= n).then_some(()) },
    )
    .await;
}

/// A sample of the process's Prometheus metrics (0 when absent; a failed scrape fails the
/// test, so it cannot pass for "no such sample").
async fn metric(port: u16, sample: &str) -> f64 {
    let (status, text) = get(port, "/metrics").await.expect("a scrape");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(name, _)| *name == sample)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0.0)
}

/// A delivery: connector, headers, body, and the status it must get.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a [u8], u16);

struct Setup {
    ns: Namespace,
    dir: std::path::PathBuf,
    server: MockServer,
    items: Vec<Item>,
}

async fn setup(tag: &str, names: &[&str], webhooks: &[Option<Value>]) -> Setup {
    let ns = Namespace::new(&redis_url(), tag);
    let (server, items) = provider(names).await;
    let list: Vec<Value> = names
        .iter()
        .zip(webhooks)
        .map(|(n, w)| connector(&server, n, w.clone()))
        .collect();
    let dir = temp_dir(tag);
    std::fs::write(
        dir.join("connectors.json"),
        json!({ "connectors": list }).to_string(),
    )
    .expect("write config");
    Setup {
        ns,
        dir,
        server,
        items,
    }
}

fn env(ns: &Namespace, port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("HTTP_PORT", port.to_string()),
        ("REDIS_URL", redis_url()),
        ("REDIS_KEY_PREFIX", ns.prefix.clone()),
        ("GH_SECRET", "gh-webhook-secret-1".into()),
    ]
}

/// GitHub, Jira, Slack-style HMAC and a shared token each make a ten-minute connector poll
/// at once; forged, unsigned, oversized, stale and replayed deliveries change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_signed_webhook_makes_a_ten_minute_connector_poll_now() {
    let names = ["gh", "jira", "slack", "dd", "plain"];
    let quick = |w: Value| {
        let mut w = w;
        w["minIntervalMs"] = json!(100);
        w["settleMs"] = json!(0);
        Some(w)
    };
    let s = setup(
        "webhook-kinds",
        &names,
        &[
            quick(json!({"verify": "github", "secret": "${GH_SECRET}", "maxBodyBytes": 2048})),
            quick(json!({"verify": "jira", "secret": "jira-webhook-secret"})),
            quick(json!({
                "verify": "hmac", "secret": "slack-signing-secret", "header": "X-Slack-Signature",
                "prefix": "v0=", "signedPayload": "v0:{header:X-Slack-Request-Timestamp}:{body}",
                "timestamp": "{header:X-Slack-Request-Timestamp}"
            })),
            quick(
                json!({"verify": "token", "secret": "dd-shared-token-1", "header": "X-DD-Token"}),
            ),
            None,
        ],
    )
    .await;
    let port = free_port();
    let mut proc = Proc::start(&s.dir, &["run"], &env(&s.ns, port));
    let redis = inspector_at(&redis_url()).await;
    for name in names {
        published(&redis, &s.ns, name, 1).await;
    }
    let body = br#"{"action":"edited"}"#;
    let gh_sig = format!("sha256={}", hex_hmac("gh-webhook-secret-1", body));
    let gh = |delivery: &str| {
        vec![
            ("X-Hub-Signature-256", gh_sig.clone()),
            ("X-GitHub-Delivery", delivery.to_owned()),
        ]
    };
    let jira_sig = format!("sha256={}", hex_hmac("jira-webhook-secret", body));
    let ts = unix_now().to_string();
    let slack_sig = format!(
        "v0={}",
        hex_hmac(
            "slack-signing-secret",
            format!("v0:{ts}:{}", String::from_utf8_lossy(body)).as_bytes()
        )
    );
    let deliveries: [(&str, Vec<(&str, String)>); 4] = [
        ("gh", gh("d-1")),
        ("jira", vec![("X-Hub-Signature", jira_sig)]),
        (
            "slack",
            vec![
                ("X-Slack-Request-Timestamp", ts.clone()),
                ("X-Slack-Signature", slack_sig.clone()),
            ],
        ),
        ("dd", vec![("X-DD-Token", "dd-shared-token-1".into())]),
    ];
    for (i, (name, headers)) in deliveries.iter().enumerate() {
        s.items[i].bump();
        let (status, answer) = post(port, &format!("/webhooks/{name}"), headers, body)
            .await
            .expect("an answer");
        assert_eq!(status, 202, "{name}: {answer}");
        published(&redis, &s.ns, name, 2).await;
    }

    // What must change nothing: each is answered, counted, and wakes no poll.
    let before = requests(&s.server).await;
    s.items[0].bump();
    let forged = vec![("X-Hub-Signature-256", format!("sha256={}", "0".repeat(64)))];
    let stale_ts = (unix_now() - 3600).to_string();
    let stale = vec![
        ("X-Slack-Request-Timestamp", stale_ts.clone()),
        (
            "X-Slack-Signature",
            format!(
                "v0={}",
                hex_hmac(
                    "slack-signing-secret",
                    format!("v0:{stale_ts}:{}", String::from_utf8_lossy(body)).as_bytes()
                )
            ),
        ),
    ];
    let big = vec![b'x'; 4096];
    let big_sig = vec![(
        "X-Hub-Signature-256",
        format!("sha256={}", hex_hmac("gh-webhook-secret-1", &big)),
    )];
    let cases: [Case; 7] = [
        ("gh", forged, body, 401),
        ("gh", vec![], body, 401),
        ("slack", stale, body, 401),
        ("gh", big_sig, &big, 413),
        ("gh", gh("d-1"), body, 200),
        ("plain", vec![], body, 404),
        ("nobody", vec![], body, 404),
    ];
    for (name, headers, payload, want) in cases {
        let (status, answer) = post(port, &format!("/webhooks/{name}"), &headers, payload)
            .await
            .expect("an answer");
        assert_eq!(status, want, "{name} {headers:?}: {answer}");
        if want == 401 {
            assert!(answer.is_empty(), "a refusal says nothing: {answer}");
        }
    }
    for (outcome, n) in [
        ("forged", 1.0),
        ("unsigned", 1.0),
        ("too_large", 1.0),
        ("replayed", 1.0),
    ] {
        let sample = format!("connector_webhooks_total{{connector=\"gh\",outcome=\"{outcome}\"}}");
        assert_eq!(metric(port, &sample).await, n, "{sample}");
    }
    let stale = "connector_webhooks_total{connector=\"slack\",outcome=\"stale\"}";
    assert_eq!(metric(port, stale).await, 1.0);
    // A fence: a valid wake sent after them all goes through the same channel, in order.
    s.items[3].bump();
    let dd = [("X-DD-Token", "dd-shared-token-1".to_owned())];
    let (status, _) = post(port, "/webhooks/dd", &dd, body).await.expect("answer");
    assert_eq!(status, 202);
    published(&redis, &s.ns, "dd", 3).await;
    assert_eq!(
        versions(&redis, &s.ns, "gh").await.len(),
        2,
        "gh was not polled again"
    );
    assert_eq!(
        requests(&s.server).await,
        before + 1,
        "only dd's woken poll"
    );
    assert_eq!(
        metric(port, "connector_wakes_total{connector=\"gh\"}").await,
        1.0
    );
    let (_, health) = get_json(port, "/health/connectors").await.expect("health");
    assert!(
        health["connectors"]["gh"]["lastWebhookTime"].is_string(),
        "{health}"
    );
    assert!(health["connectors"]["plain"]["lastWebhookTime"].is_null());
    let log = proc.log();
    for secret in [
        "gh-webhook-secret-1",
        "jira-webhook-secret",
        "dd-shared-token-1",
        &slack_sig,
        &gh_sig,
    ] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
    proc.signal(Signal::SIGTERM);
    assert!(
        proc.wait_exit(Duration::from_secs(20)).await.success(),
        "{log}"
    );
}

/// A thousand valid webhooks within a second cause at most a couple of polls: one at
/// once, the rest folded into one after `minIntervalMs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_webhooks_in_a_second_cause_at_most_a_couple_of_polls() {
    let webhook = json!({"verify": "token", "secret": "dd-shared-token-1", "header": "X-DD-Token",
        "minIntervalMs": 30_000, "settleMs": 0});
    let s = setup("webhook-burst", &["burst"], &[Some(webhook)]).await;
    let port = free_port();
    let mut proc = Proc::start(&s.dir, &["run"], &env(&s.ns, port));
    let redis = inspector_at(&redis_url()).await;
    published(&redis, &s.ns, "burst", 1).await;
    let before = requests(&s.server).await;
    s.items[0].bump();
    let headers = [("X-DD-Token", "dd-shared-token-1".to_owned())];
    let mut sent = tokio::task::JoinSet::new();
    // Spread over a second, as senders do (a thousand connects at one instant would only
    // test the listen backlog).
    let mut pace = tokio::time::interval(Duration::from_millis(1));
    for _ in 0..1000 {
        pace.tick().await;
        let headers = headers.clone();
        sent.spawn(async move { post(port, "/webhooks/burst", &headers, b"{}").await });
    }
    let answers = sent.join_all().await;
    let accepted = answers
        .iter()
        .filter(|a| a.as_ref().is_some_and(|(s, _)| *s == 202))
        .count();
    let mut other: Vec<_> = answers
        .iter()
        .filter(|a| a.as_ref().is_none_or(|(s, _)| *s != 202))
        .collect();
    other.truncate(5);
    assert_eq!(accepted, 1000, "{other:?}");
    published(&redis, &s.ns, "burst", 2).await;
    // Absence cannot be waited for: watch three seconds for a second poll (the folded
    // one is due 30 s after the first, far outside the time the sending took).
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let polls = requests(&s.server).await - before;
    assert_eq!(polls, 1, "{polls} polls for 1000 webhooks");
    let accepted = "connector_webhooks_total{connector=\"burst\",outcome=\"accepted\"}";
    assert_eq!(metric(port, accepted).await, 1000.0);
    assert!(metric(port, "connector_wakes_total{connector=\"burst\"}").await <= 2.0);
    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(20)).await.success());
}

/// APIs lag their webhooks: a woken poll that finds nothing new is followed by one more
/// after `settleMs`, which finds the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_woken_poll_that_finds_nothing_polls_once_more_after_settle() {
    let webhook = json!({"verify": "token", "secret": "dd-shared-token-1", "header": "X-DD-Token",
        "minIntervalMs": 100, "settleMs": 4000});
    let s = setup("webhook-settle", &["lag"], &[Some(webhook)]).await;
    let port = free_port();
    let mut proc = Proc::start(&s.dir, &["run"], &env(&s.ns, port));
    let redis = inspector_at(&redis_url()).await;
    published(&redis, &s.ns, "lag", 1).await;
    let before = requests(&s.server).await;
    let headers = [("X-DD-Token", "dd-shared-token-1".to_owned())];
    // The API lists the change 3 s after it sends its webhook.
    s.items[0].bump_after(Duration::from_secs(3));
    let (status, _) = post(port, "/webhooks/lag", &headers, b"{}")
        .await
        .expect("answer");
    assert_eq!(status, 202);
    wait_requests(&s.server, before + 1, "the woken poll").await;
    published(&redis, &s.ns, "lag", 2).await;
    assert_eq!(requests(&s.server).await, before + 2, "one settle poll");
    assert!(
        metric(
            port,
            "connector_webhook_to_published_seconds_count{connector=\"lag\"}"
        )
        .await
            >= 1.0
    );
    proc.signal(Signal::SIGTERM);
    assert!(proc.wait_exit(Duration::from_secs(20)).await.success());
}

/// The replica that receives a webhook may not hold the lease: the wake goes through
/// Redis to the holder, which polls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_to_the_replica_without_the_lease_makes_the_holder_poll() {
    let webhook = json!({"verify": "token", "secret": "dd-shared-token-1", "header": "X-DD-Token",
        "minIntervalMs": 100, "settleMs": 0});
    let s = setup("webhook-replica", &["shared"], &[Some(webhook)]).await;
    let (port_a, port_b) = (free_port(), free_port());
    let mut a = Proc::start(&s.dir, &["run"], &env(&s.ns, port_a));
    let mut b = Proc::start(&s.dir, &["run"], &env(&s.ns, port_b));
    let redis = inspector_at(&redis_url()).await;
    published(&redis, &s.ns, "shared", 1).await;
    let held = "connector_lease_held{connector=\"shared\"}";
    let (holder, other) = eventually(
        "one replica holds the lease",
        Duration::from_secs(20),
        || async {
            match (metric(port_a, held).await, metric(port_b, held).await) {
                (1.0, 0.0) => Some((port_a, port_b)),
                (0.0, 1.0) => Some((port_b, port_a)),
                _ => None,
            }
        },
    )
    .await;
    s.items[0].bump();
    let headers = [("X-DD-Token", "dd-shared-token-1".to_owned())];
    let (status, _) = post(other, "/webhooks/shared", &headers, b"{}")
        .await
        .expect("answer");
    assert_eq!(status, 202);
    published(&redis, &s.ns, "shared", 2).await;
    // The standby says, once, who holds the lease and when it lapses.
    let standby = if other == port_a { &a } else { &b };
    standby
        .wait_log(
            "waiting for the lease: another instance holds it",
            Duration::from_secs(20),
        )
        .await;
    let wakes = "connector_wakes_total{connector=\"shared\"}";
    assert_eq!(metric(holder, wakes).await, 1.0, "the holder polled");
    assert_eq!(metric(other, wakes).await, 0.0, "the receiver did not");
    for p in [&mut a, &mut b] {
        p.signal(Signal::SIGTERM);
        assert!(p.wait_exit(Duration::from_secs(20)).await.success());
    }
}

/// Under `connectors all` the supervisor owns `HTTP_PORT`: a webhook sent there reaches
/// the child of its connector. Embedded (no Redis): the wake stays in the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_passes_a_webhook_to_the_child_of_its_connector() {
    let webhook = json!({"verify": "token", "secret": "dd-shared-token-1", "header": "X-DD-Token",
        "minIntervalMs": 100, "settleMs": 0});
    let s = setup(
        "webhook-all",
        &["one", "two"],
        &[Some(webhook.clone()), Some(webhook)],
    )
    .await;
    let port = free_port();
    let mut sup = Proc::start(&s.dir, &["all"], &[("HTTP_PORT", port.to_string())]);
    let lines = |out: &str, name: &str| {
        out.lines()
            .filter(|l| l.contains(&format!("\"connector\":\"{name}\"")))
            .count()
    };
    eventually("both children publish", Duration::from_secs(30), || async {
        (lines(&sup.out(), "one") >= 1 && lines(&sup.out(), "two") >= 1).then_some(())
    })
    .await;
    s.items[1].bump();
    let headers = [("X-DD-Token", "dd-shared-token-1".to_owned())];
    let (status, answer) = eventually("the child answers", Duration::from_secs(20), || async {
        post(port, "/webhooks/two", &headers, b"{}")
            .await
            .filter(|(s, _)| *s != 503)
    })
    .await;
    assert_eq!(status, 202, "{answer}");
    eventually(
        "two publishes its change",
        Duration::from_secs(20),
        || async { (lines(&sup.out(), "two") >= 2).then_some(()) },
    )
    .await;
    assert_eq!(lines(&sup.out(), "one"), 1, "one was not woken");
    let (status, _) = post(port, "/webhooks/nobody", &headers, b"{}")
        .await
        .expect("answer");
    assert_eq!(status, 404);
    sup.signal(Signal::SIGTERM);
    assert!(
        sup.wait_exit(Duration::from_secs(20)).await.success(),
        "{}",
        sup.log()
    );
    drop(s.ns);
}
