//! One poll in progress: every stream read page by page, detected, and handed to the
//! committer; snapshots pruned after a complete read.

use super::*;

/// Where a poll's chunks go.
pub(super) enum Commit<'a> {
    To {
        lease: &'a Lease,
        backends: &'a Backends,
    },
    /// Nowhere: the entries are kept for the caller to show.
    DryRun(Vec<StreamEntry>),
}

/// What building a signal needs, apart from the poll's mutable parts.
pub(super) struct Encoder<'a, P: Provider> {
    pub(super) provider: &'a P,
    pub(super) config: &'a ConnectorConfig,
    pub(super) observed_at: String,
}

/// One poll in progress: its figures, its cap and where it commits.
pub(super) struct Poll<'a, P: Provider> {
    pub(super) enc: Encoder<'a, P>,
    pub(super) commit: Commit<'a>,
    pub(super) summary: PollSummary,
    /// New or changed items this poll may still publish.
    pub(super) remaining: Option<usize>,
    pub(super) streams_not_modified: usize,
    /// Records whose id was already read in this poll (said once, at the end).
    pub(super) repeated_ids: u64,
    /// Records whose signal could not be built since the last page was taken in (their
    /// failure counts are the read's, like those of records that fail to parse).
    pub(super) described_badly: Vec<String>,
    /// When the poll began (UNIX ms): no watermark moves past it, since records written
    /// while the read ran may not have been seen.
    pub(super) started_ms: i64,
}

/// Where one stream's read is: what it has seen and committed so far.
pub(super) struct Progress {
    /// The stream's cursor as stored when the read began.
    pub(super) start: Cursor,
    /// Its watermark, read.
    pub(super) stored_watermark: Option<i64>,
    /// What an unfinished read of another order committed before it stopped.
    pub(super) pending: Option<i64>,
    /// Ids read so far (a snapshot prunes the others).
    pub(super) seen: HashSet<String>,
    /// How the read is going.
    pub(super) read: StreamRead,
    /// A snapshot's validators describe the whole read: kept only once it completed.
    pub(super) snapshot_cursor: Option<Cursor>,
    /// Once an item failed, later pages' cursors would move past it: they are not saved.
    pub(super) hold_cursor: bool,
    /// The stream's cursor as committed so far in this read.
    pub(super) committed: Cursor,
    /// The newest record time read so far (no later than the poll's start).
    pub(super) read_max: Option<i64>,
    /// Records that failed to parse in this read.
    pub(super) seen_failures: HashSet<String>,
    /// Recorded items met again (for a snapshot's removal count).
    pub(super) recorded_seen: usize,
}

impl Progress {
    pub(super) fn new(start: Cursor) -> Self {
        let time = |t: &Option<String>| t.as_deref().and_then(crate::time::parse_millis);
        Self {
            stored_watermark: time(&start.watermark),
            pending: time(&start.pending),
            seen: HashSet::new(),
            read: StreamRead {
                complete: true,
                capped: false,
            },
            snapshot_cursor: None,
            hold_cursor: false,
            committed: start.clone(),
            read_max: None,
            seen_failures: HashSet::new(),
            recorded_seen: 0,
            start,
        }
    }

    /// The cursor to commit with `page`, for an incremental stream whose cursor is not
    /// held: an ascending read's watermark moves with each page (and needs no resume
    /// point, which would belong to a first request that no longer exists); another
    /// order's progress waits as `pending` until the read completes.
    fn page_cursor<I>(
        &mut self,
        stream: &StreamSpec,
        page: &Page<I>,
        started_ms: i64,
    ) -> Option<Cursor> {
        let page_max = page.watermark.map(|w| w.min(started_ms));
        self.read_max = self.read_max.max(page_max);
        let mut after = page
            .cursor
            .clone()
            .unwrap_or_else(|| self.committed.clone());
        after.resume = page.resume.clone().filter(|_| !stream.ascending);
        if stream.ascending {
            after.watermark = self
                .stored_watermark
                .max(self.read_max)
                .map(format_watermark);
        } else {
            after.watermark = self.committed.watermark.clone();
            after.pending = self.pending.max(self.read_max).map(format_watermark);
        }
        (!stream.snapshot && !self.hold_cursor).then_some(after)
    }

    /// A complete read's cursor: no resume point, and (for any order) the watermark of
    /// everything read.
    fn final_cursor(&self) -> Cursor {
        let mut last = self.committed.clone();
        last.resume = None;
        last.pending = None;
        last.watermark = self
            .stored_watermark
            .max(self.read_max)
            .max(self.pending.filter(|_| self.start.resume.is_some()))
            .map(format_watermark);
        last
    }
}

/// The key a record's failure count is kept under: its identity, or, for a partition
/// past the cap (whose counts sit with every other shared partition's), its partition's
/// key and its identity.
pub(super) fn failure_key(stream: &StreamSpec, id: &str) -> String {
    match &stream.partition {
        Some(p) if p.shared.is_some() => format!("{}\u{1}{id}", p.key),
        _ => id.to_owned(),
    }
}

/// How one stream's read ended.
pub(crate) struct StreamRead {
    /// Every page arrived and every item was published: a snapshot may be pruned.
    pub(crate) complete: bool,
    /// The per-poll cap stopped the read: no later stream is read either.
    pub(crate) capped: bool,
}

impl<'a, P: Provider> Poll<'a, P> {
    pub(super) fn new(
        provider: &'a P,
        config: &'a ConnectorConfig,
        now: u64,
        commit: Commit<'a>,
    ) -> Self {
        let remaining = provider
            .max_items_per_poll()
            .or(config.max_items_per_poll.map(|m| m as usize));
        Self {
            enc: Encoder {
                provider,
                config,
                observed_at: rfc3339_millis(now),
            },
            commit,
            summary: PollSummary::default(),
            remaining,
            streams_not_modified: 0,
            repeated_ids: 0,
            described_badly: Vec::new(),
            started_ms: i64::try_from(now).unwrap_or(i64::MAX),
        }
    }

    /// Reads every stream in order. A stream's fetch error is kept until the others have
    /// been read; a fence or a backend error ends the poll at once.
    pub(super) async fn read_all(&mut self, state: &mut ConnectorState) -> Result<(), PollError> {
        let streams = self.enc.provider.streams();
        let mut first_error: Option<FetchError> = None;
        for stream in streams {
            let read = match &stream.partitions {
                Some(how) => self.read_partitioned(stream, how, state).await,
                None => self.read_stream(stream, state).await,
            };
            match read {
                Ok(read) if read.capped => break,
                Ok(_) => {}
                Err(PollError::Fetch(e)) => {
                    self.stream_failed(stream, &e);
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        self.summary.not_modified =
            !streams.is_empty() && self.streams_not_modified == streams.len();
        if self.repeated_ids > 0 {
            tracing::info!(
                connector = %self.enc.config.name,
                records = self.repeated_ids,
                "records repeated an id already read in this poll (a page overlap, or the API listing one item twice); each id counts once"
            );
        }
        match first_error {
            Some(e) => Err(PollError::Fetch(e)),
            None => Ok(()),
        }
    }

    /// Says that a stream's read failed (the poll goes on with the next).
    pub(super) fn stream_failed(&self, stream: &StreamSpec, e: &FetchError) {
        let what = match self.commit {
            Commit::DryRun(_) => "stream read failed (dry run: nothing was committed)",
            Commit::To { .. } => {
                "stream read failed; its committed pages stay, the next poll resumes it"
            }
        };
        tracing::warn!(
            connector = %self.enc.config.name,
            stream = %stream.label(),
            error = %e,
            "{what}"
        );
    }

    /// Reads one stream page by page, each page committed while the next is fetched.
    pub(super) async fn read_stream(
        &mut self,
        stream: &StreamSpec,
        state: &mut ConnectorState,
    ) -> Result<StreamRead, PollError> {
        // A partition past the cap on tracked ones reads from the shared watermark and
        // moves no cursor (its versions are kept with the other untracked partitions').
        let shared = stream.partition.as_ref().and_then(|p| p.shared.as_ref());
        let cursor = match shared {
            Some(from) => Cursor {
                watermark: from.watermark.clone(),
                ..Cursor::default()
            },
            None => state
                .stream(&stream.name)
                .map(|s| s.cursor.clone())
                .unwrap_or_default(),
        };
        let mut pages = super::provider_pages(self.enc.provider, stream, &cursor);
        let mut at = Progress::new(cursor.clone());
        at.hold_cursor = shared.is_some();
        let mut next = pages.next().await;
        loop {
            let page = match next.take() {
                None => break,
                Some(Err(e)) => {
                    // A loop would come back at the same resume point: start over next time.
                    if matches!(e, FetchError::Loop { .. }) && at.committed.resume.is_some() {
                        let mut fresh = at.committed.clone();
                        fresh.resume = None;
                        self.commit_work(stream, state, &[], Tail::default(), Some(fresh))
                            .await?;
                    }
                    return Err(PollError::Fetch(e));
                }
                Some(Ok(PageEvent::NotModified)) => {
                    self.streams_not_modified += 1;
                    return Ok(StreamRead {
                        complete: false,
                        capped: false,
                    });
                }
                Some(Ok(PageEvent::Page(page))) => page,
            };
            let mut page = page;
            self.drop_bad_ids(stream, &mut page);
            self.note_page(&page);
            self.page_failures(stream, state, &mut at, &page).await?;
            let page_cursor = at.page_cursor(stream, &page, self.started_ms);
            // The next page is fetched while this one is committed, unless this page may
            // reach the per-poll cap (the read would stop here, and the fetch be wasted).
            let may_cap = self.remaining.is_some_and(|left| page.items.len() >= left);
            let (outcome, following) = if may_cap {
                let outcome = self
                    .commit_page(stream, state, &mut at.seen, &page, page_cursor)
                    .await;
                let capped = outcome.as_ref().is_ok_and(|o| o.capped);
                let following = if capped { None } else { pages.next().await };
                (outcome, following)
            } else {
                tokio::join!(
                    self.commit_page(stream, state, &mut at.seen, &page, page_cursor),
                    pages.next()
                )
            };
            at.seen_failures.extend(self.described_badly.drain(..));
            if self.page_committed(stream, &mut at, &page, outcome?) {
                return Ok(at.read);
            }
            next = following;
        }
        self.finish_stream(stream, state, at).await
    }

    /// A page's figures into the poll's summary: pages, provider counters, why a read
    /// ended early, unreadable times.
    fn note_page(&mut self, page: &Page<Record>) {
        self.summary.pages += 1;
        for (k, v) in &page.extras {
            *self.summary.extras.entry(k.clone()).or_insert(0) += v;
        }
        if let Some(reason) = page.partial_reason.or(page.suspect) {
            *self.summary.partial_reads.entry(reason).or_default() += 1;
        }
        if let Some(u) = &page.unreadable {
            let total = self.summary.unreadable_times.get_or_insert_with(|| {
                crate::ports::UnreadableTimes {
                    count: 0,
                    ..u.clone()
                }
            });
            total.count += u.count;
        }
    }

    /// The page's records that failed to parse: a record that failed in too many polls in
    /// a row is poisoned (skipped with an error, so it no longer holds the watermark); the
    /// others are counted and hold the cursor. Their counts are committed at once.
    pub(super) async fn page_failures(
        &mut self,
        stream: &StreamSpec,
        state: &mut ConnectorState,
        at: &mut Progress,
        page: &Page<Record>,
    ) -> Result<(), PollError> {
        let limit = self.enc.config.poison_after_polls;
        let counts = state.stream(&stream.name).map(|s| &s.failures);
        let mut failures = Vec::new();
        let mut poisoned = 0u64;
        for id in &page.failures {
            let id = &failure_key(stream, id);
            at.seen_failures.insert(id.clone());
            let polls = counts.and_then(|c| c.get(id)).copied().unwrap_or(0) + 1;
            if polls >= limit {
                poisoned += 1;
                tracing::error!(
                    connector = %self.enc.config.name,
                    stream = %stream.label(),
                    record = %id,
                    polls,
                    "record skipped for good: it failed to parse in each of the last polls"
                );
            }
            failures.push((id.clone(), polls));
        }
        // Failures without an identity are held like those not yet poisoned.
        let holding = page.failed.saturating_sub(poisoned);
        if page.partial || holding > 0 {
            at.read.complete = false;
        }
        if holding > 0 {
            at.hold_cursor = true;
        }
        self.summary.failed += holding;
        self.summary.poisoned += poisoned;
        if failures.is_empty() {
            return Ok(());
        }
        let delta_only = StateDelta {
            stream: stream.name.clone(),
            failures,
            ..StateDelta::default()
        };
        self.commit_delta(state, delta_only).await
    }

    /// Takes in what a page's commit made durable; true when the per-poll cap ended the
    /// read there.
    fn page_committed(
        &mut self,
        stream: &StreamSpec,
        at: &mut Progress,
        page: &Page<Record>,
        outcome: PageOutcome,
    ) -> bool {
        at.recorded_seen += outcome.recorded_seen;
        if outcome.failed {
            at.hold_cursor = true;
            at.read.complete = false;
        }
        if let Some(c) = outcome.committed {
            // A moved watermark or resume point is progress, even with nothing new.
            if (&c.watermark, &c.resume, &c.pending)
                != (
                    &at.committed.watermark,
                    &at.committed.resume,
                    &at.committed.pending,
                )
            {
                self.summary.progressed = true;
            }
            at.committed = c;
        }
        if stream.snapshot
            && !at.hold_cursor
            && let Some(c) = &page.cursor
        {
            at.snapshot_cursor = Some(c.clone());
        }
        if !outcome.capped {
            return false;
        }
        tracing::warn!(
            connector = %self.enc.config.name,
            stream = %stream.label(),
            reason = crate::ports::PartialReason::ItemCap.label(),
            "partial read: the per-poll cap of new or changed items was reached; the next poll goes on from here"
        );
        *self
            .summary
            .partial_reads
            .entry(crate::ports::PartialReason::ItemCap)
            .or_default() += 1;
        at.read.complete = false;
        at.read.capped = true;
        true
    }

    /// After the last page: stale failure counts forgotten, a snapshot pruned, or an
    /// incremental stream's final cursor committed.
    async fn finish_stream(
        &mut self,
        stream: &StreamSpec,
        state: &mut ConnectorState,
        at: Progress,
    ) -> Result<StreamRead, PollError> {
        // A shared partition holds no cursor, but its own failures are its to forget.
        let own = failure_key(stream, "");
        if at.read.complete && (!at.hold_cursor || !own.is_empty()) {
            // Records that failed before and were not met failing now: forget them.
            let stale: Vec<(String, u32)> = state
                .stream(&stream.name)
                .map(|s| {
                    s.failures
                        .keys()
                        .filter(|k| k.starts_with(&own) && !at.seen_failures.contains(*k))
                        .map(|k| (k.clone(), 0))
                        .collect()
                })
                .unwrap_or_default();
            if !stale.is_empty() {
                let delta = StateDelta {
                    stream: stream.name.clone(),
                    failures: stale,
                    ..StateDelta::default()
                };
                self.commit_delta(state, delta).await?;
            }
        }
        if stream.snapshot {
            self.finish_snapshot(
                stream,
                state,
                &at.seen,
                at.recorded_seen,
                at.read.complete,
                at.snapshot_cursor.clone(),
            )
            .await?;
        } else if at.read.complete && !at.hold_cursor {
            let last = at.final_cursor();
            if last != at.committed {
                self.commit_work(stream, state, &[], Tail::default(), Some(last))
                    .await?;
            }
        }
        Ok(at.read)
    }

    /// Fails the items whose id cannot be an external id (empty, over 1,024 bytes, or
    /// holding control characters): each is counted as failed, under an identity of its
    /// own so it is poisoned like a record that does not parse, and the read is partial.
    /// Kept, an empty id would be published, and the real item pruned as vanished.
    pub(super) fn drop_bad_ids(&self, stream: &StreamSpec, page: &mut Page<Record>) {
        let mut bad = Vec::new();
        page.items.retain(|item| {
            let key = item.key();
            match id_problem(&key.id) {
                None => true,
                Some(why) => {
                    let shown: String = key.id.chars().take(64).collect();
                    tracing::warn!(
                        connector = %self.enc.config.name,
                        stream = %stream.label(),
                        id = ?shown,
                        "record skipped: its id {why}"
                    );
                    bad.push(format!(
                        "id-{:016x}",
                        xxhash_rust::xxh3::xxh3_64(key.id.as_bytes())
                    ));
                    false
                }
            }
        });
        page.failed += bad.len() as u64;
        page.failures.extend(bad);
    }

    /// Detects, transforms and commits one page.
    async fn commit_page(
        &mut self,
        stream: &StreamSpec,
        state: &mut ConnectorState,
        seen: &mut HashSet<String>,
        page: &Page<Record>,
        cursor: Option<Cursor>,
    ) -> Result<PageOutcome, PollError> {
        let provider = self.enc.provider;
        let keys: Vec<ItemKey<'_>> = page.items.iter().map(|i| i.key()).collect();
        let recorded = state.stream(&stream.name);
        let found = crate::detect::page(
            recorded.map(|r| &r.versions),
            keys.iter().map(|k| (k.id.as_ref(), k.version.as_ref())),
            seen,
        );
        self.repeated_ids += found.repeated;
        self.summary.fetched += found.fetched;
        self.summary.skipped_unchanged += found.unchanged;
        let recorded_seen = found.recorded_seen;
        let mut work = found.changes;
        let capped = self.cap(&mut work);
        // A capped page is not fully published: its cursor would skip the rest.
        let cursor = cursor
            .filter(|_| !capped)
            .filter(|c| Some(c) != recorded.map(|r| &r.cursor));
        let committing = cursor.clone();
        let items: Vec<Work<'_, Record>> = work
            .iter()
            .map(|&(i, change)| {
                let previous = recorded
                    .and_then(|r| r.versions.get(keys[i].id.as_ref()))
                    .map(String::as_str);
                if provider.publishes(stream, &page.items[i], previous) {
                    Work::Item {
                        item: &page.items[i],
                        key: &keys[i],
                        change,
                    }
                } else {
                    Work::Quiet { key: &keys[i] }
                }
            })
            .collect();
        let quiet = items
            .iter()
            .filter(|w| matches!(w, Work::Quiet { .. }))
            .count() as u64;
        if quiet > 0 {
            *self
                .summary
                .extras
                .entry("notPublished".to_owned())
                .or_insert(0) += quiet;
        }
        let failed = self
            .commit_work(stream, state, &items, Tail::default(), cursor)
            .await?;
        Ok(PageOutcome {
            failed: failed > 0,
            capped,
            committed: committing.filter(|_| failed == 0),
            recorded_seen,
        })
    }

    /// Holds back what the per-poll cap does not allow; true when it cut `work`.
    fn cap(&mut self, work: &mut Vec<(usize, Change)>) -> bool {
        let Some(left) = self.remaining.as_mut() else {
            return false;
        };
        let capped = work.len() > *left;
        if capped {
            let held = (work.len() - *left) as u64;
            *self
                .summary
                .extras
                .entry("heldBack".to_owned())
                .or_insert(0) += held;
            work.truncate(*left);
        }
        *left -= work.len();
        capped
    }

    /// After a snapshot's read: forgets what was missing long enough (only after a
    /// complete read), and keeps the read's validators.
    ///
    /// A missing item's version is kept as an absence first, since public APIs drop items
    /// from single responses: with `emitRemovals` it is published as `removed` once
    /// `removalGracePolls` complete reads in a row missed it, otherwise pruned silently
    /// once `removalGraceMs` passed. An item back within its grace is unchanged (or
    /// updated), not created again.
    async fn finish_snapshot(
        &mut self,
        stream: &StreamSpec,
        state: &mut ConnectorState,
        seen: &HashSet<String>,
        recorded_seen: usize,
        complete: bool,
        cursor: Option<Cursor>,
    ) -> Result<(), PollError> {
        let config = &self.enc.config;
        let recorded = state.stream(&stream.name);
        let absent = recorded.map(|r| &r.absent);
        // Seen again, in any read: no longer missing, so "in a row" starts again.
        let mut tail = Tail {
            absences: absent
                .into_iter()
                .flat_map(|a| a.keys())
                .filter(|id| seen.contains(id.as_str()))
                .map(|id| (id.clone(), None))
                .collect(),
            ..Tail::default()
        };
        if !complete {
            // Nothing is pruned or counted missing after a partial read.
            self.commit_work(stream, state, &[], tail, None).await?;
            return Ok(());
        }
        // The poll's start stands for now: a removal's grace is counted in hours.
        let now = u64::try_from(self.started_ms).unwrap_or(0);
        let gone = removals(config, recorded, seen, recorded_seen, now, &mut tail);
        if !tail.absences.is_empty() {
            tracing::debug!(
                connector = %config.name,
                stream = %stream.label(),
                changes = tail.absences.len(),
                "snapshot items missing or back within their removal grace"
            );
        }
        let cursor = cursor
            .or_else(|| Some(Cursor::default()))
            .filter(|c| Some(c) != recorded.map(|r| &r.cursor));
        let work: Vec<Work<'_, Record>> = if config.emit_removals {
            gone.iter()
                .map(|(id, v)| Work::Removal { id, version: v })
                .collect()
        } else {
            self.summary.removed += gone.len() as u64;
            tail.prunes = gone.iter().map(|(id, _)| id.clone()).collect();
            Vec::new()
        };
        self.commit_work(stream, state, &work, tail, cursor).await?;
        Ok(())
    }
}

/// What a complete snapshot read says of the recorded items it did not see: those whose
/// removal grace ran out (returned, with their version), and the absences to record in
/// `tail` (with `emitRemovals` each missing read counts; without, only when it began).
fn removals(
    config: &ConnectorConfig,
    recorded: Option<&crate::ports::StreamState>,
    seen: &HashSet<String>,
    recorded_seen: usize,
    now: u64,
    tail: &mut Tail,
) -> Vec<(String, String)> {
    // Counting while reading keeps the common case (nothing vanished, nothing missing
    // before) free of a pass over state.
    let mut vanished: Vec<(String, String)> = recorded
        .filter(|r| recorded_seen < r.versions.len())
        .map(|r| {
            r.versions
                .iter()
                .filter(|(id, _)| !seen.contains(id.as_str()))
                .map(|(id, v)| (id.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    vanished.sort();
    let absent = recorded.map(|r| &r.absent);
    let mut gone = Vec::new();
    for (id, version) in vanished {
        let before = absent.and_then(|a| a.get(&id)).copied();
        let missing = Absence {
            since_ms: before.map_or(now, |b| b.since_ms),
            polls: before.map_or(1, |b| b.polls.saturating_add(1)),
        };
        let due = if config.emit_removals {
            missing.polls >= config.removal_grace_polls
        } else {
            now.saturating_sub(missing.since_ms) >= config.removal_grace_ms
        };
        if due {
            gone.push((id, version));
        } else if config.emit_removals || before.is_none() {
            tail.absences.push((id, Some(missing)));
        }
    }
    gone
}

/// State changes that go with the last chunk of a commit and carry no signal.
#[derive(Default)]
pub(super) struct Tail {
    /// Versions forgotten without a signal (left a snapshot, `emitRemovals` off).
    pub(super) prunes: Vec<String>,
    /// Snapshot items missing, or back.
    pub(super) absences: Vec<(String, Option<Absence>)>,
}

impl Tail {
    pub(super) fn is_empty(&self) -> bool {
        self.prunes.is_empty() && self.absences.is_empty()
    }
}

/// How one page's commit went.
pub(super) struct PageOutcome {
    pub(super) failed: bool,
    pub(super) capped: bool,
    /// The stream cursor the page committed, if it committed one.
    pub(super) committed: Option<Cursor>,
    /// Items of the page whose id state had recorded (first sightings in this read).
    pub(super) recorded_seen: usize,
}

/// A watermark as state keeps it: RFC 3339, readable in `state show`.
pub(super) fn format_watermark(millis: i64) -> String {
    crate::time::format_millis(millis, &crate::time::TimeFormat::Rfc3339)
        .unwrap_or_else(|_| millis.to_string())
}

/// One signal to build.
pub(super) enum Work<'a, I> {
    Item {
        item: &'a I,
        key: &'a ItemKey<'a>,
        change: Change,
    },
    Removal {
        id: &'a str,
        version: &'a str,
    },
    /// A new version recorded without a signal (the provider does not publish it).
    Quiet {
        key: &'a ItemKey<'a>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::StreamState;

    /// A recorded stream of `a` and `b` at version 1, with `absent` already noted.
    fn recorded(absent: &[(&str, u64, u32)]) -> StreamState {
        let mut state = StreamState::default();
        for id in ["a", "b"] {
            state.versions.insert(id.into(), "1".into());
        }
        for (id, since_ms, polls) in absent {
            let absence = Absence {
                since_ms: *since_ms,
                polls: *polls,
            };
            state.absent.insert((*id).into(), absence);
        }
        state
    }

    /// The snapshot removal rules as a table: what is gone after a complete read that saw
    /// only `seen`, and which absences the tail records.
    #[test]
    fn removals_follow_the_grace_in_time_or_in_polls() {
        type Absences = Vec<(String, Option<Absence>)>;
        /// (case, emitRemovals, before, seen, counted as seen, now, gone, recorded absences)
        type Case = (
            &'static str,
            bool,
            Vec<(&'static str, u64, u32)>,
            Vec<&'static str>,
            usize,
            u64,
            Vec<(String, String)>,
            Absences,
        );
        let gone_ab = |v: &[&str]| -> Vec<(String, String)> {
            v.iter().map(|id| ((*id).into(), "1".into())).collect()
        };
        let noted = |id: &str, since_ms, polls| -> Absences {
            vec![(id.into(), Some(Absence { since_ms, polls }))]
        };
        let cases: Vec<Case> = vec![
            (
                "all seen",
                false,
                vec![],
                vec!["a", "b"],
                2,
                1_000,
                vec![],
                vec![],
            ),
            (
                "every recorded one counted: no pass over state",
                false,
                vec![],
                vec!["a"],
                2,
                1_000,
                vec![],
                vec![],
            ),
            (
                "missing for the first time: noted",
                false,
                vec![],
                vec!["a"],
                1,
                1_000,
                vec![],
                noted("b", 1_000, 1),
            ),
            (
                "still missing within the grace: already noted",
                false,
                vec![("b", 1_000, 1)],
                vec!["a"],
                1,
                60_000,
                vec![],
                vec![],
            ),
            (
                "missing past the grace: gone",
                false,
                vec![("b", 1_000, 1)],
                vec!["a"],
                1,
                601_000,
                gone_ab(&["b"]),
                vec![],
            ),
            (
                "emitRemovals counts reads: noted again",
                true,
                vec![("b", 1_000, 1)],
                vec!["a"],
                1,
                2_000,
                vec![],
                noted("b", 1_000, 2),
            ),
            (
                "emitRemovals: the third missing read removes it",
                true,
                vec![("b", 1_000, 2)],
                vec!["a"],
                1,
                3_000,
                gone_ab(&["b"]),
                vec![],
            ),
            (
                "both missing: in id order",
                false,
                vec![("a", 0, 1), ("b", 0, 1)],
                vec![],
                0,
                600_000,
                gone_ab(&["a", "b"]),
                vec![],
            ),
        ];
        for (case, emit, before, seen, counted, now, gone, absences) in cases {
            let mut config = ConnectorConfig::new("t", "T");
            config.emit_removals = emit;
            config.removal_grace_ms = 600_000;
            config.removal_grace_polls = 3;
            let state = recorded(&before);
            let seen: HashSet<String> = seen.into_iter().map(str::to_owned).collect();
            let mut tail = Tail::default();
            let found = removals(&config, Some(&state), &seen, counted, now, &mut tail);
            assert_eq!(found, gone, "{case}");
            assert_eq!(tail.absences, absences, "{case}");
        }
        let mut tail = Tail::default();
        let config = ConnectorConfig::new("t", "T");
        assert!(removals(&config, None, &HashSet::new(), 0, 0, &mut tail).is_empty());
        assert!(tail.is_empty(), "a first read removes nothing");
    }
}
