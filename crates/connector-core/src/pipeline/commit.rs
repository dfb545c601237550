//! The committer: a poll's changes encoded as signals in chunks of `commitBatchSize` and
//! written fenced, each chunk's outcome applied to the in-memory state.

use std::collections::HashMap;

use super::poll::{Commit, Encoder, Poll, Tail, Work};
use super::*;

impl<P: Provider> Poll<'_, P> {
    /// Commits a state change that carries no signal.
    pub(super) async fn commit_delta(
        &mut self,
        state: &mut ConnectorState,
        delta: StateDelta,
    ) -> Result<(), PollError> {
        let chunk = CommitChunk {
            stream: self.enc.config.output_stream.clone(),
            stream_max_len: self.enc.config.stream_max_len,
            entries: Vec::new(),
            delta,
            seq: state.header.seq,
        };
        match &mut self.commit {
            Commit::To { lease, backends } => {
                let outcome = backends.publisher.commit(lease, &chunk).await?;
                self.enc.committed(outcome, state, &chunk.delta)?;
                self.summary.commits += 1;
                Ok(())
            }
            Commit::DryRun(_) => {
                chunk.delta.apply_to(state);
                Ok(())
            }
        }
    }

    /// Encodes `work` in chunks of `commitBatchSize` and commits them in order; `tail` and
    /// the cursor go with the last chunk. Returns how many items failed.
    pub(super) async fn commit_work(
        &mut self,
        stream: &StreamSpec,
        state: &mut ConnectorState,
        work: &[Work<'_, Record>],
        tail: Tail,
        cursor: Option<Cursor>,
    ) -> Result<u64, PollError> {
        if work.is_empty() && tail.is_empty() && cursor.is_none() {
            return Ok(0);
        }
        let batch = self.enc.config.commit_batch_size.max(1) as usize;
        let counts = state.stream(&stream.name).map(|s| &s.failures);
        let mut chunker = Chunker {
            enc: &self.enc,
            stream,
            chunks: work.chunks(batch),
            left: work.len().div_ceil(batch).max(1),
            failing: Failing {
                counts: counts
                    .filter(|c| !c.is_empty())
                    .cloned()
                    .unwrap_or_default(),
                limit: self.enc.config.poison_after_polls,
                ..Failing::default()
            },
            tail,
            cursor,
        };
        let mut next = chunker.next()?;
        while let Some((chunk, removed)) = next.take() {
            if chunk.entries.is_empty() && chunk.delta.is_empty() {
                next = chunker.next()?;
                continue;
            }
            let published = chunk.entries.len() as u64;
            match &mut self.commit {
                Commit::To { lease, backends } => {
                    // The commit runs on its own task while this one encodes the next
                    // chunk, so Redis and the encoder work at the same time. Dropping the
                    // poll aborts the commit as dropping its future would.
                    let publisher = Arc::clone(&backends.publisher);
                    let held = (*lease).clone();
                    let mut chunk = chunk;
                    chunk.seq = state.header.seq;
                    let in_flight = AbortOnDropHandle::new(tokio::spawn(
                        async move {
                            let outcome = publisher.commit(&held, &chunk).await;
                            (outcome, chunk)
                        }
                        // The backend's log lines stay inside the poll's span.
                        .in_current_span(),
                    ));
                    let built_next = chunker.next();
                    let (outcome, chunk) = in_flight.await.map_err(|e| {
                        PollError::Backend(BackendError::new(
                            "commit",
                            format!("the commit task ended abnormally: {e}"),
                        ))
                    })?;
                    self.enc.committed(outcome?, state, &chunk.delta)?;
                    self.summary.commits += 1;
                    next = built_next?;
                }
                Commit::DryRun(entries) => {
                    chunk.delta.apply_to(state);
                    entries.extend(chunk.entries);
                    next = chunker.next()?;
                }
            }
            self.summary.published += published;
            self.summary.removed += removed;
        }
        let failing = chunker.failing;
        self.summary.failed += failing.failed;
        self.summary.poisoned += failing.poisoned;
        self.described_badly.extend(failing.ids);
        Ok(failing.failed)
    }
}

/// Records whose signal cannot be built (the provider's `describe` fails), counted toward
/// poisoning like records that fail to parse: one failing in `poisonAfterPolls` polls in a
/// row is recorded without a signal, so it cannot hold its stream's cursor forever.
#[derive(Default)]
struct Failing {
    /// Each failing record's polls in a row, as stored.
    counts: HashMap<String, u32>,
    limit: u32,
    /// Failed this time, holding the cursor.
    failed: u64,
    /// Skipped for good this time.
    poisoned: u64,
    /// The failure key of every record that failed, so its count is not forgotten as
    /// stale.
    ids: Vec<String>,
}

impl Failing {
    /// Counts the failure of `id` at `version` into `delta` (under a key of its own, so a
    /// new version starts a new count and no parse failure's key is met); true when it is
    /// poisoned now (its version is then recorded, so it is not read again until it
    /// changes).
    fn count(
        &mut self,
        stream: &StreamSpec,
        id: &str,
        version: &str,
        delta: &mut StateDelta,
    ) -> bool {
        let key = super::poll::failure_key(
            stream,
            &format!(
                "describe-{:016x}",
                xxhash_rust::xxh3::xxh3_64(format!("{id}\0{version}").as_bytes())
            ),
        );
        let polls = self.counts.get(&key).copied().unwrap_or(0) + 1;
        delta.failures.push((key.clone(), polls));
        self.ids.push(key);
        let poisoned = polls >= self.limit;
        if poisoned {
            self.poisoned += 1;
        } else {
            self.failed += 1;
        }
        poisoned
    }
}

/// The chunks of one stream's work, encoded one at a time (the next while the previous
/// commits); the last carries the prunes, absences and, when nothing failed, the cursor.
struct Chunker<'e, 'w, 'r, P: Provider> {
    enc: &'e Encoder<'e, P>,
    stream: &'e StreamSpec,
    chunks: std::slice::Chunks<'w, Work<'r, Record>>,
    left: usize,
    failing: Failing,
    tail: Tail,
    cursor: Option<Cursor>,
}

impl<P: Provider> Chunker<'_, '_, '_, P> {
    /// The next chunk and how many removals it holds; `None` after the last.
    fn next(&mut self) -> Result<Option<(CommitChunk, u64)>, PollError> {
        let Some(rest) = self.left.checked_sub(1) else {
            return Ok(None);
        };
        self.left = rest;
        let slice = self.chunks.next().unwrap_or(&[]);
        let (mut chunk, removed) = self
            .enc
            .build_chunk(self.stream, slice, &mut self.failing)?;
        if self.left == 0 {
            chunk.delta.removals.append(&mut self.tail.prunes);
            chunk.delta.absences.append(&mut self.tail.absences);
            // An item that failed must be seen again: the old cursor stays.
            if self.failing.failed == 0 {
                chunk.delta.cursor = self.cursor.take();
            }
        }
        Ok(Some((chunk, removed)))
    }
}

impl<P: Provider> Encoder<'_, P> {
    /// Applies a commit's outcome to the in-memory state: the delta and the next write
    /// count when it was committed, an error when it was refused.
    pub(super) fn committed(
        &self,
        outcome: CommitOutcome,
        state: &mut ConnectorState,
        delta: &StateDelta,
    ) -> Result<(), PollError> {
        match outcome {
            CommitOutcome::Committed => {
                delta.apply_to(state);
                state.header = StateHeader {
                    format: STATE_FORMAT,
                    seq: state.header.seq + 1,
                };
                Ok(())
            }
            CommitOutcome::UnderReplicated { acked, wanted } => {
                self.committed(CommitOutcome::Committed, state, delta)?;
                Err(PollError::UnderReplicated { acked, wanted })
            }
            CommitOutcome::Fenced => Err(PollError::Fenced {
                connector: self.config.name.clone(),
            }),
            CommitOutcome::RolledBack { stored } => Err(PollError::RolledBack {
                connector: self.config.name.clone(),
                stored,
                expected: state.header.seq,
            }),
        }
    }

    /// What the provider says of a new or changed record, and the record as the payload.
    fn signal_parts<'r>(
        &'r self,
        stream: &StreamSpec,
        record: &'r Record,
    ) -> Result<(Description<'r>, &'r RawValue), ItemError> {
        Ok((self.provider.describe(stream, record)?, record.payload()?))
    }

    /// A record whose signal could not be built: counted toward poisoning, and once
    /// poisoned recorded without a signal, so it no longer holds the cursor.
    fn signal_failed(
        &self,
        stream: &StreamSpec,
        key: &ItemKey<'_>,
        reason: &ItemError,
        failing: &mut Failing,
        delta: &mut StateDelta,
    ) {
        if failing.count(stream, &key.id, &key.version, delta) {
            tracing::error!(
                connector = %self.config.name,
                stream = %stream.label(),
                external_id = %key.id,
                %reason,
                "item skipped for good: its signal could not be built in each of the last polls"
            );
            delta
                .upserts
                .push((key.id.to_string(), key.version.to_string()));
        } else {
            tracing::warn!(
                connector = %self.config.name,
                stream = %stream.label(),
                external_id = %key.id,
                %reason,
                "item skipped: cannot build its signal"
            );
        }
    }

    /// One chunk's entries and version updates; counts what failed to transform.
    fn build_chunk(
        &self,
        stream: &StreamSpec,
        work: &[Work<'_, Record>],
        failing: &mut Failing,
    ) -> Result<(CommitChunk, u64), PollError> {
        let mut entries = Vec::with_capacity(work.len());
        let mut delta = StateDelta {
            stream: stream.name.clone(),
            ..StateDelta::default()
        };
        let mut removed = 0;
        let envelope = |external_id, version, change| Envelope {
            source: self.provider.source(),
            connector: &self.config.name,
            connector_type: &self.config.connector_type,
            observed_at: &self.observed_at,
            external_id,
            version,
            change,
        };
        for w in work {
            match *w {
                Work::Item { item, key, change } => match self.signal_parts(stream, item) {
                    Ok((mut parts, payload)) => {
                        parts.occurred_at = parts.occurred_at.and_then(crate::signal::rfc3339_time);
                        let env = envelope(&key.id, &key.version, change);
                        entries.push(StreamEntry::from_signal(&env.signal(&parts, payload))?);
                        delta
                            .upserts
                            .push((key.id.to_string(), key.version.to_string()));
                    }
                    Err(reason) => self.signal_failed(stream, key, &reason, failing, &mut delta),
                },
                Work::Quiet { key } => {
                    delta
                        .upserts
                        .push((key.id.to_string(), key.version.to_string()));
                }
                Work::Removal { id, version } => {
                    let payload = serde_json::json!({ "externalId": id, "lastVersion": version });
                    let payload = RawValue::from_string(payload.to_string())?;
                    let title = format!("{} {id} is no longer active", stream.kind);
                    let parts = Description {
                        kind: Cow::Borrowed(&stream.kind),
                        title: Cow::Owned(title),
                        severity: Severity::Info,
                        occurred_at: Some(Cow::Borrowed(&self.observed_at)),
                        url: None,
                    };
                    let env = envelope(id, version, Change::Removed);
                    entries.push(StreamEntry::from_signal(&env.signal(&parts, &payload))?);
                    delta.removals.push(id.to_owned());
                    removed += 1;
                }
            }
        }
        Ok((
            CommitChunk {
                stream: self.config.output_stream.clone(),
                stream_max_len: self.config.stream_max_len,
                entries,
                delta,
                // Set when the chunk is sent, after the chunks before it committed.
                seq: 0,
            },
            removed,
        ))
    }
}
