//! Large chunks: the `WATCH` + `MULTI`/`EXEC` commit on a dedicated connection, held to
//! the same guarantees as the script (all or nothing, fenced), on the real Redis.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{
    MultiGate, backend, entry, inspector, redis_url, settings, stream_entries, stream_len,
    unique_prefix,
};
use connector_core::ports::{
    CommitChunk, CommitOutcome, ConnectorState, LeaseManager, Publisher, StateDelta, StateStore,
};
use connector_core::{Cursor, Lease};
use connector_redis::{RedisBackend, WATCHED_COMMIT_MIN_ENTRIES};
use fred::prelude::{HashesInterface, KeysInterface, StreamsInterface};

const STREAM: &str = "raw-input-signals";

/// `size` entries `<tag>-0` … with `version`, recording their versions.
fn big_chunk(connector: &str, tag: &str, size: usize, version: &str) -> CommitChunk {
    let ids: Vec<String> = (0..size).map(|i| format!("{tag}-{i}")).collect();
    CommitChunk {
        stream: STREAM.into(),
        stream_max_len: None,
        entries: ids.iter().map(|id| entry(connector, id, version)).collect(),
        delta: StateDelta {
            upserts: ids.iter().map(|id| (id.clone(), version.into())).collect(),
            ..StateDelta::default()
        },
    }
}

async fn holder_of(name: &str, prefix: &str) -> (Arc<RedisBackend>, Lease) {
    let b = backend(prefix).await;
    let lease = b
        .acquire(name, "a", Duration::from_secs(60))
        .await
        .expect("backend")
        .expect("free");
    (b, lease)
}

#[tokio::test]
async fn a_large_chunk_commits_entries_state_removals_and_cursor_like_the_script() {
    let size = WATCHED_COMMIT_MIN_ENTRIES + 36;
    // The same chunks through the script (split small) and the watched path (whole).
    let (big, big_lease) = holder_of("w", &unique_prefix("watched-big")).await;
    let (small, small_lease) = holder_of("w", &unique_prefix("watched-small")).await;
    let first = big_chunk("w", "a", size, "1");
    let mut second = big_chunk("w", "b", size, "2");
    second.stream_max_len = Some(10_000);
    second.delta.removals = vec!["a-0".into(), "a-1".into(), "never-there".into()];
    second.delta.cursor = Some(Cursor {
        etag: Some("\"v9\"".into()),
        last_modified: Some("Tue, 01 Dec 2026 12:00:00 GMT".into()),
        ..Cursor::default()
    });

    let mut expected = ConnectorState::default();
    for chunk in [&first, &second] {
        assert_eq!(
            big.commit(&big_lease, chunk).await.expect("watched commit"),
            CommitOutcome::Committed
        );
        for part in chunk.entries.chunks(10) {
            let piece = CommitChunk {
                stream: chunk.stream.clone(),
                stream_max_len: chunk.stream_max_len,
                entries: part.to_vec(),
                delta: StateDelta::default(),
            };
            assert_eq!(
                small.commit(&small_lease, &piece).await.expect("script"),
                CommitOutcome::Committed
            );
        }
        let state_only = CommitChunk {
            entries: Vec::new(),
            ..chunk.clone()
        };
        assert_eq!(
            small
                .commit(&small_lease, &state_only)
                .await
                .expect("state"),
            CommitOutcome::Committed
        );
        chunk.delta.apply_to(&mut expected);
    }

    let redis = inspector().await;
    let published = stream_entries(&redis, &big.keys().stream(STREAM)).await;
    assert_eq!(
        published,
        stream_entries(&redis, &small.keys().stream(STREAM)).await,
        "the same entries, in the same order"
    );
    let ids: Vec<&str> = published.iter().map(|e| e.external_id.as_str()).collect();
    assert_eq!(ids.len(), 2 * size);
    assert_eq!((ids[0], ids[size - 1], ids[size]), ("a-0", "a-99", "b-0"));
    let state = big.load("w").await.expect("load");
    assert_eq!(state, expected);
    assert_eq!(state, small.load("w").await.expect("load"));
    assert_eq!(state.versions.len(), 2 * size - 2, "a-0 and a-1 removed");
    assert_eq!(state.cursor.etag.as_deref(), Some("\"v9\""));
}

#[tokio::test]
async fn a_large_commit_after_the_lease_moved_writes_nothing() {
    let prefix = unique_prefix("watched-zombie");
    let (a, lease_a) = holder_of("z", &prefix).await;
    let first = big_chunk("z", "x", WATCHED_COMMIT_MIN_ENTRIES, "1");
    assert_eq!(
        a.commit(&lease_a, &first).await.expect("commit"),
        CommitOutcome::Committed
    );
    assert!(a.force_release("z").await.expect("release"));
    let b = backend(&prefix).await;
    let lease_b = b
        .acquire("z", "b", Duration::from_secs(60))
        .await
        .expect("b")
        .expect("free");

    let redis = inspector().await;
    let stream = a.keys().stream(STREAM);
    let before = a.load("z").await.expect("load");
    let late = big_chunk("z", "late", WATCHED_COMMIT_MIN_ENTRIES * 2, "1");
    assert_eq!(
        a.commit(&lease_a, &late).await.expect("commit"),
        CommitOutcome::Fenced
    );
    assert_eq!(
        stream_len(&redis, &stream).await,
        first.entries.len() as u64
    );
    assert_eq!(a.load("z").await.expect("load"), before, "state untouched");

    // The same connection serves the next commit; the rightful holder's goes through.
    assert_eq!(
        b.commit(&lease_b, &late).await.expect("commit"),
        CommitOutcome::Committed
    );
    assert_eq!(
        a.commit(&lease_a, &late).await.expect("commit"),
        CommitOutcome::Fenced
    );
    assert_eq!(
        stream_len(&redis, &stream).await,
        (first.entries.len() + late.entries.len()) as u64
    );
}

#[tokio::test]
async fn a_large_commit_into_a_key_of_the_wrong_type_fails_and_writes_nothing() {
    let prefix = unique_prefix("watched-type");
    let (a, lease) = holder_of("t", &prefix).await;
    let redis = inspector().await;
    let chunk = big_chunk("t", "x", WATCHED_COMMIT_MIN_ENTRIES, "1");

    let state_key = a.keys().state("t");
    let () = redis
        .set(&state_key, "not a hash", None, None, false)
        .await
        .expect("SET");
    let err = a
        .commit(&lease, &chunk)
        .await
        .expect_err("state is a string");
    assert!(err.to_string().contains("not a hash"), "{err}");
    assert_eq!(stream_len(&redis, &a.keys().stream(STREAM)).await, 0);

    let () = redis.del(&state_key).await.expect("DEL");
    let stream_key = a.keys().stream(STREAM);
    let () = redis
        .set(&stream_key, "not a stream", None, None, false)
        .await
        .expect("SET");
    let err = a
        .commit(&lease, &chunk)
        .await
        .expect_err("stream is a string");
    assert!(err.to_string().contains("not a stream"), "{err}");
    let fields: i64 = redis.hlen(&state_key).await.expect("HLEN");
    assert_eq!(fields, 0, "no version recorded without its entry");

    let () = redis.del(&stream_key).await.expect("DEL");
    assert_eq!(
        a.commit(&lease, &chunk).await.expect("commit"),
        CommitOutcome::Committed
    );
    let len: u64 = redis.xlen(&stream_key).await.expect("XLEN");
    assert_eq!(len, chunk.entries.len() as u64);
}

/// The lease moves after the commit checked it and before its `EXEC` ran: the `WATCH`
/// makes the `EXEC` run nothing, and the commit reports the fence.
#[tokio::test]
async fn a_takeover_between_the_check_and_the_exec_writes_nothing() {
    let upstream: std::net::SocketAddr = {
        let url = url::Url::parse(&redis_url()).expect("REDIS_URL");
        let host = url.host_str().unwrap_or("127.0.0.1");
        let port = url.port().unwrap_or(6379);
        tokio::net::lookup_host((host, port))
            .await
            .expect("resolve")
            .next()
            .expect("an address")
    };
    let gate = MultiGate::start(upstream).await;
    let prefix = unique_prefix("watched-gate");
    let a = RedisBackend::connect(settings(&gate.url(), &prefix))
        .await
        .expect("connect through the gate");
    let lease = a
        .acquire("g", "a", Duration::from_secs(60))
        .await
        .expect("backend")
        .expect("free");
    let b = backend(&prefix).await;
    let chunk = big_chunk("g", "x", WATCHED_COMMIT_MIN_ENTRIES, "1");

    // Same lease, touched by its own renewal in the gap: the commit retries and lands.
    let held = gate.arm();
    let commit = tokio::spawn({
        let (a, lease, chunk) = (a.clone(), lease.clone(), chunk.clone());
        async move { a.commit(&lease, &chunk).await }
    });
    held.await;
    assert!(
        b.renew(&lease, Duration::from_secs(60))
            .await
            .expect("renew")
    );
    gate.release();
    assert_eq!(
        commit.await.expect("task").expect("commit"),
        CommitOutcome::Committed
    );
    let redis = inspector().await;
    let stream = a.keys().stream(STREAM);
    assert_eq!(
        stream_len(&redis, &stream).await,
        chunk.entries.len() as u64,
        "once"
    );

    // Taken over in the gap: nothing of the second chunk is written.
    let late = big_chunk("g", "late", WATCHED_COMMIT_MIN_ENTRIES, "1");
    let held = gate.arm();
    let commit = tokio::spawn({
        let (a, lease, late) = (a.clone(), lease.clone(), late.clone());
        async move { a.commit(&lease, &late).await }
    });
    held.await;
    assert!(b.force_release("g").await.expect("release"));
    let lease_b = b
        .acquire("g", "b", Duration::from_secs(60))
        .await
        .expect("b")
        .expect("free");
    gate.release();
    assert_eq!(
        commit.await.expect("task").expect("commit"),
        CommitOutcome::Fenced
    );
    assert_eq!(
        stream_len(&redis, &stream).await,
        chunk.entries.len() as u64
    );
    let state = a.load("g").await.expect("load");
    assert_eq!(state.versions.len(), chunk.entries.len(), "state untouched");
    assert_eq!(
        b.commit(&lease_b, &late).await.expect("commit"),
        CommitOutcome::Committed
    );
}

/// Renewals by the holder itself touch the watched lease key (an `EXEC` then runs
/// nothing and the commit tries again), and a takeover lands at an arbitrary point: every
/// chunk reported committed is in the stream whole, and nothing else is.
#[tokio::test]
async fn large_commits_racing_renewals_and_a_takeover_are_all_or_nothing() {
    let prefix = unique_prefix("watched-race");
    let (a, lease) = holder_of("r", &prefix).await;
    let b = backend(&prefix).await;
    let stop = Arc::new(AtomicBool::new(false));
    let renewer = {
        let (a, lease, stop) = (a.clone(), lease.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if !a
                    .renew(&lease, Duration::from_secs(60))
                    .await
                    .expect("renew")
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let thief = {
        let (b, stop) = (b.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            assert!(b.force_release("r").await.expect("release"));
            let taken = b.acquire("r", "b", Duration::from_secs(60)).await;
            stop.store(true, Ordering::Relaxed);
            let lease_b = taken.expect("b").expect("free");
            // The new holder's first entry: nothing of A's may follow it.
            let marker = big_chunk("r", "b-marker", 1, "1");
            let outcome = b.commit(&lease_b, &marker).await.expect("commit");
            assert_eq!(outcome, CommitOutcome::Committed);
        })
    };

    let mut committed = Vec::new();
    let mut fenced = 0;
    for n in 0..400 {
        let chunk = big_chunk("r", &format!("c{n}"), WATCHED_COMMIT_MIN_ENTRIES + 16, "1");
        match a.commit(&lease, &chunk).await.expect("commit") {
            CommitOutcome::Committed => {
                assert_eq!(fenced, 0, "no commit succeeds after a fence");
                committed.push(chunk);
            }
            CommitOutcome::Fenced => {
                fenced += 1;
                if fenced == 3 {
                    break;
                }
            }
        }
    }
    thief.await.expect("thief");
    stop.store(true, Ordering::Relaxed);
    renewer.await.expect("renewer");
    assert!(!committed.is_empty(), "some chunks went through first");
    assert_eq!(fenced, 3, "the takeover fenced the rest");

    let redis = inspector().await;
    let published: Vec<String> = stream_entries(&redis, &a.keys().stream(STREAM))
        .await
        .into_iter()
        .map(|e| e.external_id)
        .collect();
    let mut expected: Vec<String> = committed
        .iter()
        .flat_map(|c| c.entries.iter().map(|e| e.external_id.clone()))
        .collect();
    let versions: i64 = redis.hlen(a.keys().state("r")).await.expect("HLEN");
    assert_eq!(
        versions as usize,
        expected.len() + 1,
        "A's and the marker's"
    );
    expected.push("b-marker-0".into());
    assert_eq!(
        published, expected,
        "exactly the committed chunks, whole, all before the new holder's first entry"
    );
}
