//! The fenced commit of one chunk ([`Publisher`]).
//!
//! On a standalone or Sentinel server, one `commit.lua` call checks the lease, appends the
//! entries and writes the state fields: all of it happens or none of it does, so a signal
//! is in the stream exactly when its version is in state (exactly-once relative to state).
//!
//! On Redis Cluster the output stream is shared by connectors and carries no hash tag, so
//! it usually lives in another slot than the connector's keys, and no script may touch
//! both. There the entries are appended first (one pipelined round trip, after a lease
//! check that keeps a zombie from appending in the common case), then the same script runs
//! with no entries to write the state, fenced. A crash or a fence between the two leaves
//! entries whose versions are not recorded; the next poll publishes them again
//! (at-least-once), and consumers de-duplicate on `dedup_id`.
//!
//! The client never resends a command whose connection dropped mid-flight (see
//! `backend.rs`): a commit that may have run is reported as an error, the pipeline reloads
//! state from Redis, and whatever did commit is not published twice.

use connector_core::ports::{
    BackendError, BoxFuture, CommitChunk, CommitOutcome, Lease, Publisher, STATE_FORMAT,
};
use fred::interfaces::{HashesInterface, KeysInterface, StreamsInterface};
use fred::types::Value;
use fred::types::streams::XCap;

use crate::backend::{RedisBackend, fail};
use crate::lease::lease_value;
use crate::settings::Topology;
use crate::state::writes_for;

/// `commit.lua`'s ARGV for a chunk (see the script's header for the layout). With
/// `with_entries` false the entries are left out (the cluster path appends them itself).
pub(crate) fn commit_args(
    expected_lease: &str,
    chunk: &CommitChunk,
    with_entries: bool,
) -> Vec<Value> {
    let writes = writes_for(&chunk.delta);
    let entries: &[_] = if with_entries { &chunk.entries } else { &[] };
    let names = entries.first().map(|e| e.fields().map(|(name, _)| name));
    let field_count = names.as_ref().map_or(0, |n| n.len());
    let mut args: Vec<Value> = Vec::with_capacity(
        8 + field_count * (entries.len() + 1) + 2 * writes.sets.len() + writes.deletes.len(),
    );
    args.push(expected_lease.into());
    args.push(
        chunk
            .stream_max_len
            .map(|n| n.to_string())
            .unwrap_or_default()
            .into(),
    );
    for count in [
        field_count,
        entries.len(),
        writes.sets.len(),
        writes.deletes.len(),
    ] {
        args.push((count as i64).into());
    }
    args.push(chunk.seq.to_string().into());
    args.push(i64::from(STATE_FORMAT).into());
    args.extend(names.into_iter().flatten().map(Value::from));
    for entry in entries {
        args.extend(
            entry
                .fields()
                .into_iter()
                .map(|(_, value)| Value::from(value)),
        );
    }
    for (field, value) in writes.sets {
        args.push(field.into());
        args.push(value.into());
    }
    args.extend(writes.deletes.into_iter().map(Value::from));
    args
}

impl RedisBackend {
    /// The cluster path's first half: append the entries, fenced on a best-effort basis
    /// (the lease and the write count are checked first, one round trip, as the script
    /// checks them again). `Some(outcome)` when nothing was appended.
    async fn append_unfenced(
        &self,
        lease: &Lease,
        chunk: &CommitChunk,
        expected: &str,
    ) -> Result<Option<CommitOutcome>, BackendError> {
        let checks = self.client.pipeline();
        let () = checks
            .get(self.keys.lease(&lease.connector))
            .await
            .map_err(fail("commit"))?;
        let () = checks
            .hget(self.keys.state(&lease.connector), crate::state::HEADER_SEQ)
            .await
            .map_err(fail("commit"))?;
        let (holder, stored): (Option<String>, Option<String>) =
            checks.all().await.map_err(fail("commit"))?;
        if holder.as_deref() != Some(expected) {
            return Ok(Some(CommitOutcome::Fenced));
        }
        let stored = stored.and_then(|s| s.parse().ok()).unwrap_or(0);
        if stored != chunk.seq {
            return Ok(Some(CommitOutcome::RolledBack { stored }));
        }
        let stream = self.keys.stream(&chunk.stream);
        let cap = |max: Option<u64>| -> Result<XCap, BackendError> {
            match max {
                Some(n) => XCap::try_from(("MAXLEN", "~", i64::try_from(n).unwrap_or(i64::MAX)))
                    .map_err(fail("commit")),
                None => Ok(XCap::from(None::<()>)),
            }
        };
        let pipeline = self.client.pipeline();
        for entry in &chunk.entries {
            let fields: Vec<(&str, &str)> = entry.fields().to_vec();
            let () = pipeline
                .xadd(
                    stream.as_str(),
                    false,
                    cap(chunk.stream_max_len)?,
                    "*",
                    fields,
                )
                .await
                .map_err(fail("commit"))?;
        }
        let _ids: Vec<Value> = pipeline.all().await.map_err(fail("commit"))?;
        Ok(None)
    }
}

impl RedisBackend {
    /// `WAIT n` after a commit, on the commit connection (one connection per server), so
    /// it counts the replicas that have this commit; it blocks only that connection.
    async fn replicated(&self) -> Result<CommitOutcome, BackendError> {
        use fred::interfaces::ServerInterface;
        let wanted = self.wait_replicas;
        let timeout = i64::try_from(self.wait_timeout.as_millis()).unwrap_or(i64::MAX);
        let acked: i64 = self
            .committer
            .wait(i64::from(wanted), timeout.max(1))
            .await
            .map_err(fail("commit"))?;
        let acked = u32::try_from(acked).unwrap_or(0);
        Ok(if acked >= wanted {
            CommitOutcome::Committed
        } else {
            CommitOutcome::UnderReplicated { acked, wanted }
        })
    }
}

impl Publisher for RedisBackend {
    fn commit<'a>(
        &'a self,
        lease: &'a Lease,
        chunk: &'a CommitChunk,
    ) -> BoxFuture<'a, Result<CommitOutcome, BackendError>> {
        Box::pin(async move {
            let expected = lease_value(&lease.instance_id, lease.token);
            let name = &lease.connector;
            let clustered = self.topology == Topology::Cluster;
            let mut keys = vec![self.keys.lease(name), self.keys.state(name)];
            if clustered {
                if !chunk.entries.is_empty()
                    && let Some(refused) = self.append_unfenced(lease, chunk, &expected).await?
                {
                    return Ok(refused);
                }
            } else {
                keys.push(self.keys.stream(&chunk.stream));
            }
            let args = commit_args(&expected, chunk, !clustered);
            let (code, count): (i64, i64) = self
                .scripts
                .commit
                .evalsha_with_reload(&self.committer, keys, args)
                .await
                .map_err(fail("commit"))?;
            Ok(match code {
                1 if self.wait_replicas > 0 => self.replicated().await?,
                1 => CommitOutcome::Committed,
                -1 => CommitOutcome::RolledBack {
                    stored: u64::try_from(count).unwrap_or(0),
                },
                _ => CommitOutcome::Fenced,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_core::ports::StateDelta;
    use connector_core::{Cursor, StreamEntry};

    fn entry(id: &str) -> StreamEntry {
        StreamEntry {
            connector: "c".into(),
            connector_type: "T".into(),
            external_id: id.into(),
            version: "1".into(),
            dedup_id: format!("d-{id}"),
            signal: "{}".into(),
        }
    }

    fn strings(args: &[Value]) -> Vec<String> {
        args.iter()
            .map(|v| v.as_string().unwrap_or_default())
            .collect()
    }

    #[test]
    fn arguments_follow_the_script_header() {
        let chunk = CommitChunk {
            stream: "s".into(),
            stream_max_len: Some(1000),
            entries: vec![entry("a"), entry("b")],
            delta: StateDelta {
                failures: Vec::new(),
                absences: Vec::new(),
                stream: String::new(),
                upserts: vec![("a".into(), "1".into()), ("b".into(), "1".into())],
                removals: vec!["z".into()],
                cursor: Some(Cursor {
                    etag: Some("e".into()),
                    ..Cursor::default()
                }),
            },
            seq: 41,
        };
        let args = strings(&commit_args("me:7", &chunk, true));
        assert_eq!(&args[..8], ["me:7", "1000", "6", "2", "3", "8", "41", "2"]);
        assert_eq!(
            &args[8..14],
            [
                "connector",
                "type",
                "external_id",
                "version",
                "dedup_id",
                "signal"
            ]
        );
        assert_eq!(&args[14..20], ["c", "T", "a", "1", "d-a", "{}"]);
        assert_eq!(&args[26..32], ["v:a", "1", "v:b", "1", "cursor:etag", "e"]);
        assert_eq!(
            &args[32..],
            [
                "v:z",
                "a:z",
                "cursor:last_modified",
                "cursor:watermark",
                "cursor:resume",
                "cursor:pending",
                "cursor:pages",
                "cursor:partitions"
            ]
        );
    }

    #[test]
    fn the_cluster_path_sends_state_only() {
        let chunk = CommitChunk {
            stream: "s".into(),
            stream_max_len: None,
            entries: vec![entry("a")],
            delta: StateDelta {
                upserts: vec![("a".into(), "1".into())],
                ..StateDelta::default()
            },
            seq: 0,
        };
        let args = strings(&commit_args("me:7", &chunk, false));
        assert_eq!(args, ["me:7", "", "0", "0", "1", "0", "0", "2", "v:a", "1"]);
    }
}
