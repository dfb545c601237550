//! Sentinel and Cluster deployments, each started by its test: the Sentinel URL finds the
//! primary and commits as on one server; on a three-node Redis Cluster entries are
//! appended first (the shared stream lives in another slot), then state is committed,
//! fenced.

mod common;

use std::time::{Duration, Instant};

use common::{RedisServer, entry, inspector_at, settings, stream_entries, unique_prefix};
use connector_core::Cursor;
use connector_core::ports::{
    CommitChunk, CommitOutcome, ConnectorState, LeaseManager, MetricsStore, PollRecord, Publisher,
    STATE_FORMAT, StateDelta, StateHeader, StateStore,
};
use connector_redis::{RedisBackend, Topology};
use fred::prelude::LuaInterface;
use tokio::process::Command;

/// Three primaries, no replicas; every node is killed when the value is dropped.
struct Cluster {
    nodes: Vec<RedisServer>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nodes = Vec::new();
        for i in 0..3 {
            let sub = dir.path().join(format!("node-{i}"));
            std::fs::create_dir_all(&sub).expect("node dir");
            let args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--appendonly",
                "no",
            ];
            nodes.push(RedisServer::start_with(&sub, None, &args).await);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .await
            .unwrap_or_else(|e| {
                panic!("cannot run redis-cli ({e}); install Redis to run this test")
            });
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self { nodes, _dir: dir };
        cluster.wait_until_ok().await;
        cluster
    }

    /// Slot assignments spread by gossip; a node serves once it reports `cluster_state:ok`.
    /// This polls an external process's readiness (with a deadline), it orders nothing.
    async fn wait_until_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &self.nodes {
            loop {
                let out = Command::new("redis-cli")
                    .args(["-p", &node.port.to_string(), "cluster", "info"])
                    .output()
                    .await
                    .expect("redis-cli");
                if String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the test cluster never became ready"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// The id of the node at `port`.
    async fn node_id(port: u16) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "cluster", "myid"])
            .output()
            .await
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The port of the node serving `slot`.
    async fn owner(&self, slot: u16) -> u16 {
        for node in &self.nodes {
            let nodes = cli(node.port, &["cluster", "nodes"]).await;
            let mine = nodes
                .lines()
                .find(|l| l.contains("myself"))
                .unwrap_or_default();
            let serves = mine.split_whitespace().skip(8).any(|range| {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if (a..=b).contains(&slot))
            });
            if serves {
                return node.port;
            }
        }
        panic!("no node serves slot {slot}")
    }

    /// Moves `slot` to the node at `to` the way `redis-cli --cluster reshard` does: the
    /// slot is marked migrating and importing, its keys are `MIGRATE`d, and `during` runs
    /// then (commands on those keys are answered with ASK); the slot is then given to `to`
    /// on every node (a client with the old map is answered with MOVED).
    async fn migrate<F: std::future::Future<Output = ()>>(&self, slot: u16, to: u16, during: F) {
        let from = self.owner(slot).await;
        let (from_id, to_id) = (Self::node_id(from).await, Self::node_id(to).await);
        let slot_arg = slot.to_string();
        cli(
            to,
            &["cluster", "setslot", &slot_arg, "importing", &from_id],
        )
        .await;
        cli(
            from,
            &["cluster", "setslot", &slot_arg, "migrating", &to_id],
        )
        .await;
        loop {
            let keys = cli(from, &["cluster", "getkeysinslot", &slot_arg, "100"]).await;
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let port = to.to_string();
            let mut args = vec!["migrate", "127.0.0.1", &port, "", "0", "5000", "keys"];
            args.extend(keys);
            let said = cli(from, &args).await;
            assert!(said.contains("OK"), "MIGRATE: {said}");
        }
        during.await;
        for port in std::iter::once(to).chain(self.nodes.iter().map(|n| n.port)) {
            cli(port, &["cluster", "setslot", &slot_arg, "node", &to_id]).await;
        }
    }

    fn url(&self) -> String {
        let first = self.nodes[0].port;
        let others: Vec<String> = self.nodes[1..]
            .iter()
            .map(|n| format!("node=127.0.0.1:{}", n.port))
            .collect();
        format!("redis-cluster://127.0.0.1:{first}?{}", others.join("&"))
    }
}

/// `redis-cli -p PORT ARGS...`, its output.
async fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .await
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A slot migration under a connector's keys and the shared stream (ASK while the slot
/// moves, MOVED once it has): once each slot has moved, the backend follows the MOVED
/// redirect and commits, lease renewals and loads go on at once, without a wedge or a
/// loss (with one command attempt, every redirected command failed).
#[tokio::test]
async fn a_cluster_slot_migration_is_followed_without_a_wedge() {
    let cluster = Cluster::start().await;
    let url = cluster.url();
    let prefix = unique_prefix("reshard");
    let a = RedisBackend::connect(settings(&url, &prefix))
        .await
        .expect("connect");
    let redis = inspector_at(&url).await;
    let layout = common::layout(&a);
    let stream = layout.stream("raw-input-signals");
    let name = "moved";
    let slot = |key: String| fred::util::redis_keyslot(key.as_bytes());
    let lease = a
        .acquire(name, "a", Duration::from_secs(60))
        .await
        .expect("acquire")
        .expect("free");
    let chunk = |ids: &[&str], seq: u64| CommitChunk {
        stream: "raw-input-signals".into(),
        stream_max_len: Some(10_000),
        entries: ids.iter().map(|id| entry(name, id, "1")).collect(),
        delta: StateDelta {
            upserts: ids
                .iter()
                .map(|id| ((*id).to_owned(), "1".to_owned()))
                .collect(),
            ..StateDelta::default()
        },
        seq,
    };
    assert_eq!(
        a.commit(&lease, &chunk(&["x1"], 0)).await.expect("commit"),
        CommitOutcome::Committed
    );
    for key in [layout.state(name), stream.clone()] {
        let slot = slot(key);
        let owner = cluster.owner(slot).await;
        let to = cluster
            .nodes
            .iter()
            .map(|n| n.port)
            .find(|p| *p != owner)
            .expect("other node");
        cluster
            .migrate(slot, to, async {
                // The keys are on the importing node: ASK. fred 10.1 sends the redirected
                // command to the slot's old owner again, so it may fail with "Too many
                // redirections" until the slot has moved; it answers, and wedges nothing.
                if let Ok(state) = a.load(name).await {
                    assert_eq!(state.header.seq, 1);
                }
                let _ = a.renew(&lease, Duration::from_secs(60)).await;
            })
            .await;
    }
    // Both slots moved: MOVED, then the new map.
    assert_eq!(
        a.commit(&lease, &chunk(&["x2"], 1))
            .await
            .expect("commit after the move"),
        CommitOutcome::Committed
    );
    assert!(matches!(
        a.renew(&lease, Duration::from_secs(60)).await,
        Ok(connector_core::ports::Renewal::Renewed)
    ));
    let state = a.load(name).await.expect("load after the move");
    assert_eq!((state.header.seq, state.main.versions.len()), (2, 2));
    let ids: Vec<String> = stream_entries(&redis, &stream)
        .await
        .into_iter()
        .map(|e| e.external_id)
        .collect();
    assert_eq!(ids, ["x1", "x2"], "each entry once");
}

#[tokio::test]
async fn on_redis_cluster_entries_are_appended_then_state_is_committed_fenced() {
    let cluster = Cluster::start().await;
    let url = cluster.url();
    let prefix = unique_prefix("cluster");
    let a = RedisBackend::connect(settings(&url, &prefix))
        .await
        .expect("connect");
    let b = RedisBackend::connect(settings(&url, &prefix))
        .await
        .expect("connect");
    assert_eq!(a.topology(), Topology::Cluster);
    let redis = inspector_at(&url).await;
    let stream = common::layout(&a).stream("raw-input-signals");
    // A connector whose keys live in another slot than the stream, so the cross-slot path
    // is what runs (with a random prefix, "jira" alone would collide once in 16384 runs).
    let slot = |key: String| fred::util::redis_keyslot(key.as_bytes());
    let name = ["jira", "jira-2"]
        .into_iter()
        .find(|n| slot(common::layout(&a).state(n)) != slot(stream.clone()))
        .expect("two names cannot both share the stream's slot");

    let lease = a
        .acquire(name, "a", Duration::from_secs(60))
        .await
        .expect("acquire")
        .expect("free");
    let first = CommitChunk {
        stream: "raw-input-signals".into(),
        stream_max_len: Some(10_000),
        entries: ["x1", "x2", "x3"]
            .iter()
            .map(|id| entry(name, id, "1"))
            .collect(),
        delta: StateDelta {
            failures: Vec::new(),
            absences: Vec::new(),
            stream: String::new(),
            upserts: ["x1", "x2", "x3"]
                .iter()
                .map(|id| ((*id).to_owned(), "1".to_owned()))
                .collect(),
            removals: Vec::new(),
            cursor: Some(Cursor {
                watermark: Some("2026-01-01T00:00:00Z".into()),
                ..Cursor::default()
            }),
        },
        seq: 0,
    };
    assert_eq!(
        a.commit(&lease, &first).await.expect("commit"),
        CommitOutcome::Committed
    );
    let mut expected = ConnectorState::default();
    first.delta.apply_to(&mut expected);
    expected.header = StateHeader {
        format: STATE_FORMAT,
        seq: 1,
    };
    assert_eq!(a.load(name).await.expect("load"), expected);
    assert_eq!(stream_entries(&redis, &stream).await, first.entries);

    // Scripts are reloaded on whichever node lost them.
    redis
        .script_flush_cluster(false)
        .await
        .expect("SCRIPT FLUSH");
    let second = CommitChunk {
        entries: vec![entry(name, "x4", "1")],
        delta: StateDelta {
            upserts: vec![("x4".into(), "1".into())],
            ..StateDelta::default()
        },
        seq: 1,
        ..first.clone()
    };
    assert_eq!(
        a.commit(&lease, &second).await.expect("commit"),
        CommitOutcome::Committed
    );
    second.delta.apply_to(&mut expected);
    expected.header.seq = 2;
    // A writer whose state lost writes appends nothing, on the cluster path too.
    let stale = CommitChunk {
        seq: 1,
        ..second.clone()
    };
    assert_eq!(
        a.commit(&lease, &stale).await.expect("commit"),
        CommitOutcome::RolledBack { stored: 2 }
    );
    assert_eq!(stream_entries(&redis, &stream).await.len(), 4);

    // Another instance takes over: the old holder appends nothing and writes no state.
    assert!(b.force_release(name).await.expect("force"));
    let lease_b = b
        .acquire(name, "b", Duration::from_secs(60))
        .await
        .expect("acquire")
        .expect("free");
    assert_eq!(lease_b.token, lease.token + 1);
    let late = CommitChunk {
        entries: vec![entry(name, "x5", "1")],
        delta: StateDelta {
            upserts: vec![("x5".into(), "1".into())],
            ..StateDelta::default()
        },
        seq: 2,
        ..first.clone()
    };
    assert_eq!(
        a.commit(&lease, &late).await.expect("commit"),
        CommitOutcome::Fenced
    );
    assert_eq!(stream_entries(&redis, &stream).await.len(), 4);
    assert_eq!(a.load(name).await.expect("load"), expected);
    assert_eq!(
        b.commit(&lease_b, &late).await.expect("commit"),
        CommitOutcome::Committed
    );
    assert_eq!(stream_entries(&redis, &stream).await.len(), 5);

    let record = PollRecord {
        started_at_ms: 7,
        latency: Duration::from_millis(3),
        summary: None,
    };
    b.record(name, &record).await.expect("record");
    let m = b.get(name).await.expect("get").expect("recorded");
    assert_eq!((m.total_polls, m.failed_polls), (1, 1));
    let holder = a.holder(name).await.expect("holder").expect("held");
    assert_eq!(holder.instance_id, "b");
    a.reset(name).await.expect("reset");
    let reset = a.load(name).await.expect("load");
    assert_eq!(reset.header.seq, 4, "a reset is a write");
    assert_eq!(
        reset,
        ConnectorState {
            header: reset.header,
            ..ConnectorState::default()
        }
    );
    wakes_reach_the_other_client(&a, &b, name).await;
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn through_sentinel_the_backend_finds_the_primary_and_commits_atomically() {
    let dir = tempfile::tempdir().expect("tempdir");
    let primary = RedisServer::start_with(dir.path(), None, &["--appendonly", "no"]).await;
    let sentinel = RedisServer::start_sentinel(dir.path(), primary.port, "main").await;
    let url = format!(
        "redis-sentinel://127.0.0.1:{}/0?sentinelServiceName=main",
        sentinel.port
    );
    let prefix = unique_prefix("sentinel");
    let a = RedisBackend::connect(settings(&url, &prefix))
        .await
        .expect("connect");
    assert_eq!(a.topology(), Topology::Sentinel);
    let lease = a
        .acquire("noaa", "a", Duration::from_secs(60))
        .await
        .expect("acquire")
        .expect("free");
    let chunk = CommitChunk {
        stream: "raw-input-signals".into(),
        stream_max_len: None,
        entries: vec![entry("noaa", "alert", "1")],
        delta: StateDelta {
            upserts: vec![("alert".into(), "1".into())],
            ..StateDelta::default()
        },
        seq: 0,
    };
    assert_eq!(
        a.commit(&lease, &chunk).await.expect("commit"),
        CommitOutcome::Committed
    );
    assert!(a.force_release("noaa").await.expect("force"));
    assert_eq!(
        a.commit(&lease, &chunk).await.expect("commit"),
        CommitOutcome::Fenced
    );

    // What the primary itself holds.
    let redis = inspector_at(&primary.url()).await;
    let stream = common::layout(&a).stream("raw-input-signals");
    assert_eq!(stream_entries(&redis, &stream).await, chunk.entries);
    assert_eq!(a.load("noaa").await.expect("load").main.versions.len(), 1);
    let b = RedisBackend::connect(settings(&url, &prefix))
        .await
        .expect("connect");
    wakes_reach_the_other_client(&a, &b, "noaa").await;
    a.close().await;
    b.close().await;
}

/// A webhook wake sent by `a` reaches `b`'s one subscription, and a delivery id is new
/// once: what lets any replica receive a webhook for the lease holder.
async fn wakes_reach_the_other_client(a: &RedisBackend, b: &RedisBackend, name: &str) {
    use connector_core::ports::{Wake, Wakes};
    let mut heard = b.listen().await.expect("subscribe");
    let wake = Wake {
        connector: name.to_owned(),
        received_ms: 42,
    };
    a.wake(&wake).await.expect("publish");
    let got = tokio::time::timeout(Duration::from_secs(10), heard.recv())
        .await
        .expect("a wake within 10 s");
    assert_eq!(got, Some(wake));
    let window = Duration::from_secs(60);
    assert!(a.first_delivery(name, "d-1", window).await.expect("check"));
    assert!(
        !b.first_delivery(name, "d-1", window).await.expect("check"),
        "a replay"
    );
    assert!(b.first_delivery(name, "d-2", window).await.expect("check"));
}

/// A command to one server, for the test's own look at it.
async fn command(url: &str, args: &[&str]) -> fred::types::Value {
    use fred::interfaces::ClientLike;
    let client = inspector_at(url).await;
    let cmd = fred::types::CustomCommand::new(
        args[0].to_owned(),
        fred::types::ClusterHash::FirstKey,
        false,
    );
    let value = client
        .custom(
            cmd,
            args[1..]
                .iter()
                .map(|a| (*a).to_owned())
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let _ = client.quit().await;
    value
}

async fn wait_until<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(40);
    while !probe().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `(external id, version)` of every entry of `stream` on the server at `url`, with how
/// often each is there.
async fn counts(url: &str, stream: &str) -> std::collections::BTreeMap<(String, String), usize> {
    let client = inspector_at(url).await;
    let mut out = std::collections::BTreeMap::new();
    for e in stream_entries(&client, stream).await {
        *out.entry((e.external_id, e.version)).or_insert(0) += 1;
    }
    out
}

#[tokio::test]
async fn a_sentinel_failover_to_a_lagging_replica_republishes_exactly_what_it_lacks() {
    use common::{Gate, ItemsProvider, config_for, items_body};
    use connector_core::Factories;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let dir = tempfile::tempdir().expect("tempdir");
    let (pdir, rdir) = (dir.path().join("p"), dir.path().join("r"));
    std::fs::create_dir_all(&pdir).expect("dir");
    std::fs::create_dir_all(&rdir).expect("dir");
    let primary = RedisServer::start_with(&pdir, None, &["--appendonly", "no"]).await;
    // The replica reaches its primary through a gate the test can hold.
    let gate = Gate::start(([127, 0, 0, 1], primary.port).into()).await;
    let gate_port = gate.port.to_string();
    let replica = RedisServer::start_with(
        &rdir,
        None,
        &["--appendonly", "no", "--replicaof", "127.0.0.1", &gate_port],
    )
    .await;
    let sentinel = RedisServer::start_sentinel(dir.path(), primary.port, "main").await;
    let sentinel_url = sentinel.url();
    let replica_port = replica.port.to_string();
    wait_until("Sentinel to know the replica", || async {
        let replicas = command(&sentinel_url, &["SENTINEL", "REPLICAS", "main"]).await;
        format!("{replicas:?}").contains(&replica_port)
    })
    .await;

    let url = format!(
        "redis-sentinel://127.0.0.1:{}/0?sentinelServiceName=main",
        sentinel.port
    );
    let prefix = unique_prefix("failover");
    let backend = RedisBackend::connect(settings(&url, &prefix))
        .await
        .expect("connect");
    let server = MockServer::start().await;
    let serve = |ids: &'static [&'static str], changed: &'static [&'static str]| {
        let server = &server;
        async move {
            server.reset().await;
            Mock::given(method("GET"))
                .and(path("/items"))
                .respond_with(ResponseTemplate::new(200).set_body_string(items_body(ids, changed)))
                .mount(server)
                .await;
        }
    };
    let mut cfg = config_for("failover", &server.uri());
    cfg.commit_batch_size = 1;
    let mut factories = Factories::new();
    factories.register::<ItemsProvider>();
    let backends = backend.backends();
    let mut connector = factories
        .create(std::sync::Arc::new(cfg), backends.clone())
        .expect("create");
    let lease = backends
        .leases
        .acquire("failover", "me", Duration::from_secs(120))
        .await
        .expect("backend")
        .expect("free");

    serve(&["a", "b", "c"], &[]).await;
    assert_eq!(connector.poll(&lease).await.expect("first").published, 3);
    let layout = common::layout(&backend);
    let (state_key, stream) = (layout.state("failover"), layout.stream("raw-input-signals"));
    let (purl, rurl) = (primary.url(), replica.url());
    wait_until("the replica to hold the first poll", || async {
        command(&rurl, &["HGET", &state_key, "h:seq"]).await
            == command(&purl, &["HGET", &state_key, "h:seq"]).await
    })
    .await;

    // The link lags from here: the next poll's commits reach the primary only.
    gate.hold();
    serve(&["a", "b", "c", "d"], &["b"]).await;
    assert_eq!(connector.poll(&lease).await.expect("second").published, 2);
    assert_eq!(counts(&purl, &stream).await.len(), 5);

    command(&sentinel_url, &["SENTINEL", "FAILOVER", "main"]).await;
    wait_until("the replica to be promoted", || async {
        let master = command(
            &sentinel_url,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "main"],
        )
        .await;
        format!("{master:?}").contains(&replica_port)
    })
    .await;
    // The worker goes on polling through Sentinel, as it would on its ticker: a poll may
    // fail while the switch is made, or still reach the demoted node until Sentinel
    // reconfigures it and drops its clients.
    let expected: std::collections::BTreeMap<(String, String), usize> =
        [("a", "1"), ("b", "1"), ("c", "1"), ("b", "2"), ("d", "1")]
            .into_iter()
            .map(|(id, v)| ((id.to_owned(), v.to_owned()), 1))
            .collect();
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut promoted = counts(&rurl, &stream).await;
    while promoted != expected {
        assert!(
            Instant::now() < deadline,
            "the promoted node never got what it lacked: {promoted:?}"
        );
        let _ = connector.poll(&lease).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        promoted = counts(&rurl, &stream).await;
    }
    for _ in 0..3 {
        let _ = connector.poll(&lease).await;
    }
    assert_eq!(
        counts(&rurl, &stream).await,
        expected,
        "every current version on the promoted node, once: nothing missing, nothing twice"
    );
    assert!(connector.take_state_loss().is_some(), "the loss was seen");
    assert_eq!(connector.poll(&lease).await.expect("settled").published, 0);
    backend.close().await;
    drop(gate);
}

#[tokio::test]
async fn with_wait_replicas_a_commit_no_replica_acknowledged_is_kept_and_said() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pdir, rdir) = (dir.path().join("p"), dir.path().join("r"));
    std::fs::create_dir_all(&pdir).expect("dir");
    std::fs::create_dir_all(&rdir).expect("dir");
    let primary = RedisServer::start_with(&pdir, None, &["--appendonly", "no"]).await;
    let prefix = unique_prefix("wait");
    let backend = RedisBackend::connect(settings(&primary.url(), &prefix).with_wait_replicas(1))
        .await
        .expect("connect");
    let lease = backend
        .acquire("w", "a", Duration::from_secs(60))
        .await
        .expect("acquire")
        .expect("free");
    let chunk = |id: &str, seq: u64| CommitChunk {
        stream: "raw-input-signals".into(),
        stream_max_len: None,
        entries: vec![entry("w", id, "1")],
        delta: StateDelta {
            upserts: vec![(id.to_owned(), "1".to_owned())],
            ..StateDelta::default()
        },
        seq,
    };
    // No replica yet: nobody acknowledges within the wait.
    assert_eq!(
        backend
            .commit(&lease, &chunk("x", 0))
            .await
            .expect("commit"),
        CommitOutcome::UnderReplicated {
            acked: 0,
            wanted: 1
        }
    );
    assert_eq!(backend.load("w").await.expect("load").header.seq, 1, "kept");
    // A replica joins: the next commit is acknowledged.
    let port = primary.port.to_string();
    let _replica = RedisServer::start_with(
        &rdir,
        None,
        &["--appendonly", "no", "--replicaof", "127.0.0.1", &port],
    )
    .await;
    let purl = primary.url();
    wait_until("the replica to be in sync", || async {
        format!("{:?}", command(&purl, &["INFO", "replication"]).await).contains("state=online")
    })
    .await;
    assert_eq!(
        backend
            .commit(&lease, &chunk("y", 1))
            .await
            .expect("commit"),
        CommitOutcome::Committed
    );
    backend.close().await;
}
