//! The fenced commit, state and key layout on the real Redis.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{
    backend, entry, inspector, key_type, keys_under, stream_entries, stream_len, unique_prefix,
};
use connector_core::ports::{
    CommitChunk, CommitOutcome, ConnectorState, LeaseManager, MetricsStore, PollRecord, Publisher,
    Renewal, STATE_FORMAT, StateDelta, StateHeader, StateStore,
};
use connector_core::{Cursor, Lease, PollSummary};
use connector_redis::RedisBackend;
use fred::prelude::{HashesInterface, LuaInterface};

const STREAM: &str = "raw-input-signals";

fn chunk(connector: &str, ids: &[&str], version: &str, cursor: Option<Cursor>) -> CommitChunk {
    CommitChunk {
        stream: STREAM.into(),
        stream_max_len: None,
        entries: ids.iter().map(|id| entry(connector, id, version)).collect(),
        delta: StateDelta {
            failures: Vec::new(),
            stream: String::new(),
            upserts: ids
                .iter()
                .map(|id| ((*id).to_owned(), version.to_owned()))
                .collect(),
            removals: Vec::new(),
            cursor,
            absences: Vec::new(),
        },
        seq: 0,
    }
}

/// Commits `c` as the next write of the connector's state: the write count it expects is
/// read first, as the pipeline keeps it.
async fn next_commit(a: &RedisBackend, lease: &Lease, c: &CommitChunk) -> CommitOutcome {
    let mut c = c.clone();
    c.seq = a.header(&lease.connector).await.expect("header").seq;
    a.commit(lease, &c).await.expect("commit")
}

#[tokio::test]
async fn a_zombie_commit_after_its_lease_lapsed_writes_nothing() {
    let prefix = unique_prefix("zombie");
    let (a, b) = (backend(&prefix).await, backend(&prefix).await);
    let ttl = Duration::from_millis(300);
    let lease_a = a.acquire("z", "a", ttl).await.expect("a").expect("free");
    let first = chunk("z", &["x1", "x2"], "1", None);
    assert_eq!(
        next_commit(&a, &lease_a, &first).await,
        CommitOutcome::Committed
    );

    // A stalls past its TTL; B takes over.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let lease_b = b
        .acquire("z", "b", Duration::from_secs(60))
        .await
        .expect("b")
        .expect("lapsed");

    let redis = inspector().await;
    let stream = common::layout(&a).stream(STREAM);
    let before_len = stream_len(&redis, &stream).await;
    let before_state = a.load("z").await.expect("load");
    let late = chunk(
        "z",
        &["x3"],
        "1",
        Some(Cursor {
            watermark: Some("2026-12-31T00:00:00Z".into()),
            ..Cursor::default()
        }),
    );
    assert_eq!(
        next_commit(&a, &lease_a, &late).await,
        CommitOutcome::Fenced
    );
    assert_eq!(
        stream_len(&redis, &stream).await,
        before_len,
        "no entry appended"
    );
    assert_eq!(
        a.load("z").await.expect("load"),
        before_state,
        "state untouched"
    );
    assert_eq!(before_state.main.versions.len(), 2);

    // B, the rightful holder, commits fine.
    assert_eq!(
        next_commit(&b, &lease_b, &late).await,
        CommitOutcome::Committed
    );
    assert_eq!(stream_len(&redis, &stream).await, before_len + 1);
}

#[tokio::test]
async fn a_commit_without_any_lease_is_fenced() {
    let prefix = unique_prefix("nolease");
    let a = backend(&prefix).await;
    let lease = connector_core::Lease {
        connector: "n".into(),
        instance_id: "a".into(),
        token: 1,
    };
    let c = chunk("n", &["x"], "1", None);
    assert_eq!(next_commit(&a, &lease, &c).await, CommitOutcome::Fenced);
    assert_eq!(
        keys_under(&inspector().await, &prefix).await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn commits_survive_a_script_flush() {
    let prefix = unique_prefix("flush");
    let a = backend(&prefix).await;
    let lease = a
        .acquire("f", "a", Duration::from_secs(60))
        .await
        .expect("a")
        .expect("free");
    assert_eq!(
        next_commit(&a, &lease, &chunk("f", &["x1"], "1", None)).await,
        CommitOutcome::Committed
    );
    let redis = inspector().await;
    redis.script_flush(false).await.expect("SCRIPT FLUSH");
    assert_eq!(
        next_commit(&a, &lease, &chunk("f", &["x2"], "1", None)).await,
        CommitOutcome::Committed
    );
    redis.script_flush(false).await.expect("SCRIPT FLUSH");
    assert_eq!(
        a.renew(&lease, Duration::from_secs(60))
            .await
            .expect("renew after flush"),
        Renewal::Renewed
    );
    redis.script_flush(false).await.expect("SCRIPT FLUSH");
    assert!(a.holder("f").await.expect("holder after flush").is_some());
    redis.script_flush(false).await.expect("SCRIPT FLUSH");
    let record = PollRecord {
        started_at_ms: 1,
        latency: Duration::from_millis(1),
        summary: None,
    };
    a.record("f", &record).await.expect("metrics after flush");
    let ids: Vec<String> = stream_entries(&redis, &common::layout(&a).stream(STREAM))
        .await
        .into_iter()
        .map(|e| e.external_id)
        .collect();
    assert_eq!(ids, ["x1", "x2"]);
}

#[tokio::test]
async fn state_loads_back_exactly_as_committed_and_reset_empties_it() {
    let prefix = unique_prefix("state");
    let a = backend(&prefix).await;
    let lease = a
        .acquire("s", "a", Duration::from_secs(60))
        .await
        .expect("a")
        .expect("free");
    assert_eq!(
        a.load("s").await.expect("load"),
        ConnectorState::default(),
        "nothing yet"
    );

    let mut expected = ConnectorState::default();
    let chunks = [
        chunk("s", &["a", "b", "c"], "1", None),
        CommitChunk {
            stream: STREAM.into(),
            stream_max_len: Some(1000),
            entries: vec![entry("s", "b", "2")],
            delta: StateDelta {
                failures: Vec::new(),
                stream: String::new(),
                upserts: vec![("b".into(), "2".into())],
                removals: vec!["c".into()],
                // "a" is missing from a snapshot read: its version stays, with when.
                absences: vec![(
                    "a".into(),
                    Some(connector_core::ports::Absence {
                        since_ms: 1_764_633_600_000,
                        polls: 1,
                    }),
                )],
                cursor: Some(Cursor {
                    watermark: Some("2026-01-01T00:00:00Z".into()),
                    etag: Some("\"v7\"".into()),
                    last_modified: Some("Tue, 24 Nov 2026 21:00:00 GMT".into()),
                    ..Cursor::default()
                }),
            },
            seq: 0,
        },
        // A later cursor without an ETag drops the stored one.
        CommitChunk {
            stream: STREAM.into(),
            stream_max_len: None,
            entries: Vec::new(),
            delta: StateDelta {
                cursor: Some(Cursor {
                    watermark: Some("2026-01-02T00:00:00Z".into()),
                    etag: None,
                    last_modified: None,
                    ..Cursor::default()
                }),
                ..StateDelta::default()
            },
            seq: 0,
        },
    ];
    for c in &chunks {
        assert_eq!(next_commit(&a, &lease, c).await, CommitOutcome::Committed);
        c.delta.apply_to(&mut expected);
        expected.header = StateHeader {
            format: STATE_FORMAT,
            seq: expected.header.seq + 1,
        };
        assert_eq!(a.load("s").await.expect("load"), expected);
    }
    assert_eq!(expected.main.versions.len(), 2);
    assert_eq!(expected.main.absent.len(), 1, "read back from Redis too");
    assert_eq!(expected.main.cursor.etag, None);

    a.reset("s").await.expect("reset");
    assert_eq!(
        a.load("s").await.expect("load"),
        ConnectorState {
            header: StateHeader {
                format: STATE_FORMAT,
                seq: 4,
            },
            ..ConnectorState::default()
        },
        "everything forgotten but the write count, which a reset advances"
    );
    assert_eq!(
        stream_len(&inspector().await, &common::layout(&a).stream(STREAM)).await,
        4,
        "reset forgets state, not what was published"
    );
}

#[tokio::test]
async fn a_large_state_loads_completely() {
    let prefix = unique_prefix("large");
    let a = backend(&prefix).await;
    let lease = a
        .acquire("big", "a", Duration::from_secs(60))
        .await
        .expect("a")
        .expect("free");
    // More fields than one HSCAN page and than one HSET slice in the script.
    let upserts: Vec<(String, String)> = (0..2500)
        .map(|i| (format!("item-{i}"), format!("{i}")))
        .collect();
    let big = CommitChunk {
        stream: STREAM.into(),
        stream_max_len: None,
        entries: Vec::new(),
        delta: StateDelta {
            upserts: upserts.clone(),
            ..StateDelta::default()
        },
        seq: 0,
    };
    assert_eq!(
        next_commit(&a, &lease, &big).await,
        CommitOutcome::Committed
    );
    let removals: Vec<String> = (0..1200).map(|i| format!("item-{i}")).collect();
    let prune = CommitChunk {
        stream: STREAM.into(),
        stream_max_len: None,
        entries: Vec::new(),
        delta: StateDelta {
            removals,
            ..StateDelta::default()
        },
        seq: 0,
    };
    assert_eq!(
        next_commit(&a, &lease, &prune).await,
        CommitOutcome::Committed
    );
    let state = a.load("big").await.expect("load");
    let expected: HashMap<String, String> = upserts.into_iter().skip(1200).collect();
    assert_eq!(state.main.versions, expected);
}

#[tokio::test]
async fn keys_follow_the_documented_layout_with_prefix_and_hash_tag() {
    let prefix = unique_prefix("layout");
    let a = backend(&prefix).await;
    let lease = a
        .acquire("weather-noaa", "a", Duration::from_secs(60))
        .await
        .expect("a")
        .expect("free");
    let c = chunk(
        "weather-noaa",
        &["alert-1"],
        "1",
        Some(Cursor {
            etag: Some("\"e\"".into()),
            ..Cursor::default()
        }),
    );
    assert_eq!(next_commit(&a, &lease, &c).await, CommitOutcome::Committed);
    let record = PollRecord {
        started_at_ms: 1_000,
        latency: Duration::from_millis(5),
        summary: Some(PollSummary::default()),
    };
    a.record("weather-noaa", &record).await.expect("record");

    let redis = inspector().await;
    let p = &prefix;
    let expected = [
        (format!("{p}connector:state:{{weather-noaa}}"), "hash"),
        (format!("{p}lease:{{weather-noaa}}"), "string"),
        (format!("{p}lease:{{weather-noaa}}:fence"), "string"),
        (format!("{p}metrics:connector:{{weather-noaa}}"), "hash"),
        (format!("{p}raw-input-signals"), "stream"),
    ];
    let names: Vec<String> = expected.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys_under(&redis, p).await, names, "exactly these keys");
    for (key, kind) in &expected {
        assert_eq!(key_type(&redis, key).await, *kind, "TYPE {key}");
    }
    assert_eq!(common::layout(&a).lease("weather-noaa"), names[1]);

    let lease_value: String = fred::prelude::KeysInterface::get(&redis, &names[1])
        .await
        .expect("GET");
    assert_eq!(lease_value, format!("a:{}", lease.token));
    let state: HashMap<String, String> = redis.hgetall(&names[0]).await.expect("HGETALL");
    let mut fields: Vec<&str> = state.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["cursor:etag", "h:format", "h:seq", "v:alert-1"]);

    let entries = stream_entries(&redis, &names[4]).await;
    assert_eq!(entries, c.entries, "entries carry every field, in order");
}

#[tokio::test]
async fn a_commit_on_a_state_that_lost_writes_writes_nothing_and_says_rolled_back() {
    let prefix = unique_prefix("rollback");
    let a = backend(&prefix).await;
    let lease = a
        .acquire("r", "a", Duration::from_secs(60))
        .await
        .expect("a")
        .expect("free");
    for ids in [["x1"], ["x2"], ["x3"]] {
        assert_eq!(
            next_commit(&a, &lease, &chunk("r", &ids, "1", None)).await,
            CommitOutcome::Committed
        );
    }
    assert_eq!(a.header("r").await.expect("header").seq, 3);
    let redis = inspector().await;
    let stream = common::layout(&a).stream(STREAM);
    let len = stream_len(&redis, &stream).await;
    // The writer believes 3 writes are stored; Redis lost the state (as a restart without
    // persistence or a FLUSHALL would, the lease surviving).
    let state_key = common::layout(&a).state("r");
    let _: i64 = fred::prelude::KeysInterface::del(&redis, &state_key)
        .await
        .expect("DEL");
    let mut late = chunk("r", &["x4"], "1", None);
    late.seq = 3;
    assert_eq!(
        a.commit(&lease, &late).await.expect("commit"),
        CommitOutcome::RolledBack { stored: 0 }
    );
    assert_eq!(stream_len(&redis, &stream).await, len, "nothing appended");
    assert_eq!(
        a.load("r").await.expect("load"),
        ConnectorState::default(),
        "nothing written"
    );
    // An operator's change advances the count too, so a writer that did not see it is
    // refused as well.
    a.apply("r", &StateDelta::default()).await.expect("apply");
    late.seq = 0;
    assert_eq!(
        a.commit(&lease, &late).await.expect("commit"),
        CommitOutcome::RolledBack { stored: 1 }
    );
    late.seq = 1;
    assert_eq!(
        a.commit(&lease, &late).await.expect("commit"),
        CommitOutcome::Committed
    );
}
