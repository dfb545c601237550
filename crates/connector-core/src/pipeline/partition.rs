//! A parent/child stream: its parents read (in full every so often, else from their
//! watermark), the partitions they name kept in state, and each partition read as a
//! stream of its own, a bounded number per poll.
//!
//! State, all under the stream's name: `parents` holds the partition set (each parent's
//! id → what its child request needs) and the [`PartitionMark`]; `p/<key>` holds one
//! partition's cursor and versions (the key percent-encoded, or hashed when long, since a
//! parent id may hold any character); `p/*` holds the versions of every partition past
//! the cap on tracked ones, which share one watermark.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::poll::{Poll, StreamRead, Tail, Work, format_watermark};
use super::*;
use crate::ports::{PartitionMark, StateDelta};

/// What a partition key keeps as it is in a state name: RFC 3986's unreserved characters.
/// Everything else (`|` ends a stream name in the state hash; `*` and `#` are the shared
/// and hashed names) is percent-encoded.
const KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Keys longer than this (encoded) are hashed in state names.
const LONGEST_KEY: usize = 96;

/// A name under a parent/child stream's own.
fn under(stream: &str, part: &str) -> String {
    if stream.is_empty() {
        part.to_owned()
    } else {
        format!("{stream}/{part}")
    }
}

/// The state name of the parents of `stream`.
pub(crate) fn parents_name(stream: &str) -> String {
    under(stream, "parents")
}

/// The state name of one partition of `stream`.
pub(crate) fn partition_name(stream: &str, key: &str) -> String {
    let encoded = utf8_percent_encode(key, KEY).to_string();
    if encoded.len() <= LONGEST_KEY {
        under(stream, &format!("p/{encoded}"))
    } else {
        let hash = xxhash_rust::xxh3::xxh3_128(key.as_bytes());
        under(stream, &format!("p/#{hash:032x}"))
    }
}

/// The state name the untracked partitions of `stream` share.
fn shared_name(stream: &str) -> String {
    under(stream, "p/*")
}

/// The mark, among the shared versions, of a partition read from the shared watermark:
/// once shared it stays so (its records' versions are kept there, not in a state of its
/// own). No record id holds a control character, so a mark is never an item's version.
pub(crate) fn shared_marker(key: &str) -> String {
    format!("\u{1}{key}")
}

/// Whether `key` has a state of its own.
fn has_own_state(stream: &StreamSpec, state: &ConnectorState, key: &str) -> bool {
    state
        .streams
        .get(&partition_name(&stream.name, key))
        .is_some_and(|s| *s != crate::ports::StreamState::default())
}

/// A shared partition's mark: [`NEW`] until its first complete read (which reads its
/// whole history, from `initial`), then [`SHARED`].
fn shared_mark<'s>(stream: &StreamSpec, state: &'s ConnectorState, key: &str) -> Option<&'s str> {
    state
        .streams
        .get(&shared_name(&stream.name))
        .and_then(|s| s.versions.get(&shared_marker(key)))
        .map(String::as_str)
}

/// Whether `key` is read from the shared watermark.
pub(crate) fn is_shared(stream: &StreamSpec, state: &ConnectorState, key: &str) -> bool {
    shared_mark(stream, state, key) == Some(SHARED)
}

/// The mark of a shared partition not yet read to completion.
const NEW: &str = "new";
/// The mark of a shared partition read to completion at least once.
const SHARED: &str = "shared";

/// The stream its parents are read as.
pub(crate) fn parents_stream(stream: &StreamSpec) -> StreamSpec {
    let mut parents = StreamSpec::named(parents_name(&stream.name), "parent", false);
    parents.incremental = stream
        .partitions
        .as_ref()
        .is_some_and(|p| p.incremental_parents);
    parents
}

/// The child read of one partition.
pub(crate) fn child_stream(stream: &StreamSpec, partition: Partition) -> StreamSpec {
    let mut child = stream.clone();
    child.partitions = None;
    child.name = match partition.shared {
        Some(_) => shared_name(&stream.name),
        None => partition_name(&stream.name, &partition.key),
    };
    child.partition = Some(partition);
    child
}

/// The partitions of `stream` as state records them, by key.
pub(crate) fn recorded_partitions(
    stream: &StreamSpec,
    state: &ConnectorState,
) -> Vec<(String, String)> {
    let mut keys = versions_of(state, &parents_name(&stream.name));
    keys.sort();
    keys
}

/// A stream's recorded versions (id, version), none when it has no state.
fn versions_of(state: &ConnectorState, stream: &str) -> Vec<(String, String)> {
    state
        .stream(stream)
        .map(|s| {
            s.versions
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether this poll reads the parents in full: always when they are not read
/// incrementally, else when no full read completed yet, or the last one is
/// `parentFullReadEvery` polls or hours old.
fn full_read_due(mark: &PartitionMark, how: &Partitioning, now_ms: i64) -> bool {
    if !how.incremental_parents {
        return true;
    }
    let Some(full_ms) = mark.full_ms else {
        return true;
    };
    let by_polls = mark.polls.saturating_add(1) >= how.full_read_every_polls.max(1);
    let by_time = how
        .full_read_every_ms
        .is_some_and(|every| u64::try_from(now_ms.saturating_sub(full_ms)).unwrap_or(0) >= every);
    by_polls || by_time
}

/// The partitions (by their place in key order) whose children this poll reads: from
/// where the rotation stands, `maxPartitionsPerPoll` of them (all without it). A turn from
/// the first partition begins a round.
fn this_turn(
    keys: &[(String, String)],
    how: &Partitioning,
    mark: &mut PartitionMark,
    now_ms: i64,
) -> std::ops::Range<usize> {
    let mut start = mark
        .next
        .as_ref()
        .map_or(0, |n| keys.partition_point(|(k, _)| k < n));
    if start >= keys.len() {
        start = 0;
    }
    if start == 0 {
        mark.round_ms = Some(now_ms);
        mark.round_ok = true;
    }
    let end = how.max_per_poll.map_or(keys.len(), |m| {
        start.saturating_add(m.max(1)).min(keys.len())
    });
    start..end
}

/// Moves the rotation on: the next poll starts at `next` (a place in key order), or, when
/// the round went through every partition, at the first, and a round that read every
/// partition to completion becomes the shared watermark.
fn end_turn(keys: &[(String, String)], next: Option<usize>, mark: &mut PartitionMark) {
    match next {
        Some(at) => mark.next = keys.get(at).map(|(k, _)| k.clone()),
        None => {
            if mark.round_ok {
                mark.complete_ms = mark.round_ms;
            }
            mark.next = None;
        }
    }
}

/// How the child reads of a poll went.
struct ChildReads {
    read: StreamRead,
    /// The first child read's fetch error.
    error: Option<FetchError>,
    /// No child read went through (every one failed, or none was due).
    read_none: bool,
}

/// How a read of the parents went.
struct ParentRead {
    /// Every page arrived and every parent parsed.
    complete: bool,
    /// The newest parent time read (no later than the poll's start).
    newest: Option<i64>,
    /// Partitions found that state did not have.
    added: usize,
}

impl<'a, P: Provider> Poll<'a, P> {
    /// Reads a parent/child stream: the parents, then the partitions' children from where
    /// the rotation stands. A fetch error of the parents or of one child is kept until the
    /// others have been read.
    pub(super) async fn read_partitioned(
        &mut self,
        stream: &StreamSpec,
        how: &Partitioning,
        state: &mut ConnectorState,
    ) -> Result<StreamRead, PollError> {
        let parents = parents_stream(stream);
        let stored = state
            .stream(&parents.name)
            .map(|s| s.cursor.clone())
            .unwrap_or_default();
        let mut mark = stored.partitions.clone().unwrap_or_default();
        let full = full_read_due(&mark, how, self.started_ms);
        let mut first_error = None;
        let mut newest = None;
        match self.read_parents(stream, &parents, state, full).await {
            Ok(read) => {
                newest = read.newest.filter(|_| read.complete);
                if read.complete && full {
                    mark.full_ms = Some(self.started_ms);
                    mark.polls = 0;
                } else {
                    mark.polls = mark.polls.saturating_add(1);
                }
                // A round already under way did not read what was found since.
                if read.added > 0 && mark.next.is_some() {
                    mark.round_ok = false;
                }
            }
            Err(PollError::Fetch(e)) => {
                self.stream_failed(&parents, &e);
                first_error = Some(e);
            }
            Err(e) => return Err(e),
        }
        let before = mark.clone();
        let children = self.read_children(stream, how, &mut mark, state).await?;
        if children.read_none && first_error.is_some() {
            // Nothing was read: the rotation stands where it stood (a poll that fails
            // leaves state untouched), though a child's 404 still asks for a full read.
            // With the parents read, failing children are passed by (round_ok is false),
            // so one that always fails cannot pin the rotation.
            let polls = mark.polls;
            mark = before;
            mark.polls = polls;
        }
        let mut cursor = state
            .stream(&parents.name)
            .map(|s| s.cursor.clone())
            .unwrap_or_default();
        if let Some(n) = newest {
            let stored = cursor
                .watermark
                .as_deref()
                .and_then(crate::time::parse_millis);
            cursor.watermark = Some(format_watermark(stored.max(Some(n)).unwrap_or(n)));
        }
        cursor.partitions = Some(mark);
        if Some(&cursor) != state.stream(&parents.name).map(|s| &s.cursor) {
            self.commit_work(&parents, state, &[], Tail::default(), Some(cursor))
                .await?;
        }
        match first_error.or(children.error) {
            Some(e) => Err(PollError::Fetch(e)),
            None => Ok(children.read),
        }
    }

    /// Reads the parents (from no cursor for a full read), recording each partition found
    /// or changed page by page; after a complete full read, the partitions no parent named
    /// are removed with their state. An incremental read removes nothing: a parent it did
    /// not list is unchanged, not gone.
    async fn read_parents(
        &mut self,
        stream: &StreamSpec,
        parents: &StreamSpec,
        state: &mut ConnectorState,
        full: bool,
    ) -> Result<ParentRead, PollError> {
        let cursor = if full {
            Cursor::default()
        } else {
            state
                .stream(&parents.name)
                .map(|s| s.cursor.clone())
                .unwrap_or_default()
        };
        let provider = self.enc.provider;
        let mut pages = provider.parents(stream, &cursor);
        let mut seen = HashSet::new();
        let mut read = ParentRead {
            complete: true,
            newest: None,
            added: 0,
        };
        // A parent that does not parse could be any partition: no full read removes one
        // while it fails, until it has failed `poisonAfterPolls` polls in a row.
        let mut at = super::poll::Progress::new(cursor.clone());
        while let Some(event) = pages.next().await {
            let mut page = match event {
                Err(e) => return Err(PollError::Fetch(e)),
                Ok(PageEvent::NotModified) => {
                    read.complete = false;
                    break;
                }
                Ok(PageEvent::Page(page)) => page,
            };
            self.drop_bad_ids(parents, &mut page);
            self.summary.pages += 1;
            self.page_failures(parents, state, &mut at, &page).await?;
            read.newest = read
                .newest
                .max(page.watermark.map(|w| w.min(self.started_ms)));
            let recorded = state.stream(&parents.name).map(|s| &s.versions);
            let keys: Vec<ItemKey<'_>> = page.items.iter().map(|i| i.key()).collect();
            let mut work = Vec::new();
            for key in &keys {
                if !seen.insert(key.id.to_string()) {
                    continue;
                }
                match recorded.and_then(|r| r.get(key.id.as_ref())) {
                    Some(v) if *v == key.version => {}
                    Some(_) => work.push(Work::Quiet { key }),
                    None => {
                        read.added += 1;
                        work.push(Work::Quiet { key });
                    }
                }
            }
            self.commit_work(parents, state, &work, Tail::default(), None)
                .await?;
        }
        read.complete &= at.read.complete;
        self.settle_partitions(stream, parents, state, &seen, full && read.complete)
            .await?;
        Ok(read)
    }

    /// Keeps the partition set: a parent seen again is no longer missing; after a complete
    /// full read, a partition no parent named is missing, and is removed (with its own
    /// state) once `removalGracePolls` complete full reads in a row missed it, since an API
    /// may leave an item out of one response. The parent's entry goes first: a stop between
    /// the two leaves child state behind, never a partition read again from nothing.
    async fn settle_partitions(
        &mut self,
        stream: &StreamSpec,
        parents: &StreamSpec,
        state: &mut ConnectorState,
        seen: &HashSet<String>,
        full_and_complete: bool,
    ) -> Result<(), PollError> {
        let absent = state
            .stream(&parents.name)
            .map(|s| s.absent.clone())
            .unwrap_or_default();
        let mut tail = Tail {
            absences: absent
                .keys()
                .filter(|k| seen.contains(*k))
                .map(|k| (k.clone(), None))
                .collect(),
            ..Tail::default()
        };
        let mut gone = Vec::new();
        if full_and_complete {
            let now = u64::try_from(self.started_ms).unwrap_or(0);
            for (key, _) in recorded_partitions(stream, state) {
                if seen.contains(&key) {
                    continue;
                }
                let before = absent.get(&key);
                let missing = crate::ports::Absence {
                    since_ms: before.map_or(now, |b| b.since_ms),
                    polls: before.map_or(1, |b| b.polls.saturating_add(1)),
                };
                if missing.polls >= self.enc.config.removal_grace_polls.max(1) {
                    gone.push(key);
                } else {
                    tail.absences.push((key, Some(missing)));
                }
            }
        }
        // A shared partition's mark goes first: left behind, a parent that came back would
        // read from the shared watermark and skip what it missed meanwhile.
        for key in &gone {
            self.drop_marker(stream, state, key).await?;
        }
        tail.prunes = gone.clone();
        self.commit_work(parents, state, &[], tail, None).await?;
        if !gone.is_empty() {
            tracing::info!(
                connector = %self.enc.config.name,
                stream = %stream.label(),
                partitions = gone.len(),
                "partitions removed: complete full reads of the parents no longer list them"
            );
        }
        for key in &gone {
            self.drop_own_state(stream, state, key).await?;
        }
        Ok(())
    }

    /// Marks a partition past the cap as shared (`NEW` until its history was read).
    async fn mark_shared(
        &mut self,
        stream: &StreamSpec,
        state: &mut ConnectorState,
        key: &str,
        how: &str,
    ) -> Result<(), PollError> {
        let delta = StateDelta {
            stream: shared_name(&stream.name),
            upserts: vec![(shared_marker(key), how.to_owned())],
            ..StateDelta::default()
        };
        self.commit_delta(state, delta).await
    }

    /// Forgets a partition's own state.
    async fn drop_own_state(
        &mut self,
        stream: &StreamSpec,
        state: &mut ConnectorState,
        key: &str,
    ) -> Result<(), PollError> {
        let name = partition_name(&stream.name, key);
        if let Some(own) = state.streams.get(&name) {
            let delta = StateDelta {
                stream: name.clone(),
                removals: own.versions.keys().cloned().collect(),
                cursor: Some(Cursor::default()),
                failures: own.failures.keys().map(|k| (k.clone(), 0)).collect(),
                absences: own.absent.keys().map(|k| (k.clone(), None)).collect(),
                upserts: Vec::new(),
            };
            self.commit_delta(state, delta).await?;
            state.streams.remove(&name);
        }
        Ok(())
    }

    /// Forgets a partition's mark among the shared ones.
    async fn drop_marker(
        &mut self,
        stream: &StreamSpec,
        state: &mut ConnectorState,
        key: &str,
    ) -> Result<(), PollError> {
        if shared_mark(stream, state, key).is_some() {
            let delta = StateDelta {
                stream: shared_name(&stream.name),
                removals: vec![shared_marker(key)],
                ..StateDelta::default()
            };
            self.commit_delta(state, delta).await?;
        }
        Ok(())
    }

    /// A partition past the cap whose history was read to completion joins the shared
    /// ones: its versions are copied to theirs, it is marked shared, and its own state goes
    /// (in that order: a stop between two steps repeats the first, never loses a version).
    async fn join_shared(
        &mut self,
        stream: &StreamSpec,
        state: &mut ConnectorState,
        key: &str,
    ) -> Result<(), PollError> {
        let versions = versions_of(state, &partition_name(&stream.name, key));
        if !versions.is_empty() {
            let delta = StateDelta {
                stream: shared_name(&stream.name),
                upserts: versions,
                ..StateDelta::default()
            };
            self.commit_delta(state, delta).await?;
        }
        self.mark_shared(stream, state, key, SHARED).await?;
        self.drop_own_state(stream, state, key).await
    }

    /// Reads the children of the partitions whose turn it is (all, or
    /// `maxPartitionsPerPoll` from where the last poll stopped), and moves the rotation:
    /// a round that read every partition to completion becomes the shared watermark.
    async fn read_children(
        &mut self,
        stream: &StreamSpec,
        how: &Partitioning,
        mark: &mut PartitionMark,
        state: &mut ConnectorState,
    ) -> Result<ChildReads, PollError> {
        let keys = recorded_partitions(stream, state);
        let mut tracked = keys
            .iter()
            .filter(|(k, _)| {
                has_own_state(stream, state, k) && shared_mark(stream, state, k).is_none()
            })
            .count();
        if keys.len() > how.max_partitions {
            tracing::warn!(
                connector = %self.enc.config.name,
                stream = %stream.label(),
                partitions = keys.len(),
                max_partitions = how.max_partitions,
                "more partitions than maxPartitions: those past it share one watermark, the \
                 start of the last round in which every partition was read to completion"
            );
        }
        let from = SharedFrom {
            watermark: mark.complete_ms.map(format_watermark),
        };
        let turn = this_turn(&keys, how, mark, self.started_ms);
        let mut reads = ChildReads {
            read: StreamRead {
                complete: true,
                capped: false,
            },
            error: None,
            read_none: true,
        };
        let mut stopped = None;
        for (at, (key, values)) in keys.iter().enumerate().take(turn.end).skip(turn.start) {
            // A partition with a state of its own keeps it, and a new one gets one while
            // there is room under the cap. One past the cap reads its history with a state
            // of its own (resumable, page by page) that joins the shared versions once
            // complete; from then on it reads from the shared watermark.
            let shared = match shared_mark(stream, state, key) {
                Some(SHARED) => Some(from.clone()),
                Some(_) => None,
                None if has_own_state(stream, state, key) => None,
                None if tracked < how.max_partitions => {
                    tracked += 1;
                    None
                }
                None => {
                    self.mark_shared(stream, state, key, NEW).await?;
                    None
                }
            };
            let partition = Partition {
                key: key.clone(),
                values: values.clone(),
                shared,
            };
            if self
                .read_child(stream, partition, mark, state, &mut reads)
                .await?
            {
                stopped = Some(at);
                break;
            }
        }
        end_turn(
            &keys,
            stopped.or((turn.end < keys.len()).then_some(turn.end)),
            mark,
        );
        Ok(reads)
    }

    /// Reads one partition's children into `reads`; true when the per-poll cap stopped it
    /// (the next poll starts there).
    async fn read_child(
        &mut self,
        stream: &StreamSpec,
        partition: Partition,
        mark: &mut PartitionMark,
        state: &mut ConnectorState,
        reads: &mut ChildReads,
    ) -> Result<bool, PollError> {
        let key = partition.key.clone();
        let child = child_stream(stream, partition);
        let unmodified = self.streams_not_modified;
        match self.read_stream(&child, state).await {
            Ok(r) => {
                reads.read_none = false;
                // A 304 is a complete read of an unchanged partition.
                let whole = r.complete || self.streams_not_modified > unmodified;
                self.streams_not_modified = unmodified;
                reads.read.complete &= whole;
                mark.round_ok &= whole;
                if whole && shared_mark(stream, state, &key) == Some(NEW) {
                    self.join_shared(stream, state, &key).await?;
                }
                reads.read.capped |= r.capped;
                Ok(r.capped)
            }
            Err(PollError::Fetch(e)) => {
                self.stream_failed(&child, &e);
                if matches!(&e, FetchError::Http(HttpError::Status { status: 404, .. })) {
                    // Its parent may be gone: the next poll reads the parents in full,
                    // which removes the partition if so.
                    mark.polls = u32::MAX;
                }
                reads.read.complete = false;
                mark.round_ok = false;
                reads.error.get_or_insert(e);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_key_is_escaped_or_hashed_in_its_state_name() {
        assert_eq!(partition_name("", "42"), "p/42");
        assert_eq!(partition_name("", "grp/sub c|x"), "p/grp%2Fsub%20c%7Cx");
        assert_eq!(partition_name("", "*"), "p/%2A");
        assert_eq!(partition_name("issues", "a"), "issues/p/a");
        let long = "k".repeat(200);
        let hashed = partition_name("", &long);
        assert!(hashed.starts_with("p/#") && hashed.len() == 35, "{hashed}");
        assert_ne!(hashed, partition_name("", &"k".repeat(201)));
        for name in [partition_name("", "a|b"), shared_name(""), parents_name("")] {
            assert!(!name.contains('|'), "{name}");
        }
    }

    fn mark(full_ms: Option<i64>, polls: u32) -> PartitionMark {
        PartitionMark {
            full_ms,
            polls,
            ..PartitionMark::default()
        }
    }

    #[test]
    fn the_parents_are_read_in_full_every_so_many_polls_or_hours() {
        let how = Partitioning {
            incremental_parents: true,
            full_read_every_polls: 4,
            full_read_every_ms: Some(3_600_000),
            max_partitions: 10,
            max_per_poll: None,
        };
        assert!(full_read_due(&mark(None, 0), &how, 0), "never read in full");
        assert!(!full_read_due(&mark(Some(0), 2), &how, 60_000));
        assert!(
            full_read_due(&mark(Some(0), 3), &how, 60_000),
            "the fourth poll"
        );
        assert!(
            full_read_due(&mark(Some(0), 0), &how, 3_600_000),
            "an hour on"
        );
        assert!(
            full_read_due(&mark(Some(0), u32::MAX), &how, 0),
            "a child said 404"
        );
        let listing = Partitioning {
            incremental_parents: false,
            ..how
        };
        assert!(full_read_due(&mark(Some(0), 0), &listing, 0));
    }
}
