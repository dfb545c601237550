//! How [`ConnectorState`] maps onto the state hash, as pure functions.
//!
//! One hash per connector, one field per fact, so a commit writes only what changed
//! (a version per new or changed item, the cursor once per poll) and never rewrites the
//! whole state:
//!
//! - `v:<external id>` → the last published version of the item;
//! - `cursor:etag`, `cursor:last_modified`, `cursor:watermark`, … → the cursor; a field
//!   is absent when its value is `None` (`cursor:position`, which no release set, is
//!   neither read nor written);
//! - `cursor:partitions` → a parent/child stream's rotation and full-read marks, on its
//!   parents' stream (whose versions are the partitions);
//! - `x:<record identity>` → in how many polls in a row the record failed to parse;
//! - `a:<external id>` → `since_ms:polls`: a snapshot item missing from the latest complete
//!   reads, whose version is kept for `removalGraceMs` / `removalGracePolls`.
//!
//! - `h:seq`, `h:format` → the state's header: writes applied so far and the layout
//!   ([`StateHeader`]); absent in a state written before the header existed (layout 1).
//!
//! Those are the main stream's fields (the only stream of a single-stream connector, so
//! state written before connectors had several streams reads unchanged). A named stream's
//! fields carry the prefix `s:<stream>|`, e.g. `s:octo/repo/issues|v:<id>`; stream names
//! never contain `|`.

use connector_core::ports::{ConnectorState, StateDelta, StateHeader, StreamState, json_text};

/// The header's write count.
pub const HEADER_SEQ: &str = "h:seq";
/// The header's layout.
pub const HEADER_FORMAT: &str = "h:format";

/// Prefix of a named stream's fields; the name ends at [`STREAM_END`].
pub const STREAM_PREFIX: &str = "s:";
/// Ends a stream name in a field.
pub const STREAM_END: char = '|';

/// Prefix of a record's failure count.
pub const FAILURE_PREFIX: &str = "x:";

/// Prefix of a missing snapshot item's absence.
pub const ABSENCE_PREFIX: &str = "a:";

/// Prefix of a version field.
pub const VERSION_PREFIX: &str = "v:";
/// The cursor's resume point.
/// The cursor's `ETag`.
pub const CURSOR_ETAG: &str = "cursor:etag";
/// The cursor's `Last-Modified`.
pub const CURSOR_LAST_MODIFIED: &str = "cursor:last_modified";
/// The stream's watermark.
pub const CURSOR_WATERMARK: &str = "cursor:watermark";
/// The stream's resume point.
pub const CURSOR_RESUME: &str = "cursor:resume";
/// The latest time an unfinished read committed.
pub const CURSOR_PENDING: &str = "cursor:pending";
/// Each page position's validators and next link.
pub const CURSOR_PAGES: &str = "cursor:pages";
/// A parent/child stream's rotation and full-read marks (on its parents' stream).
pub const CURSOR_PARTITIONS: &str = "cursor:partitions";

/// The hash writes for one delta: fields to delete (applied first), then pairs to set.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HashWrites {
    /// Fields to `HDEL`.
    pub deletes: Vec<String>,
    /// Field/value pairs to `HSET`.
    pub sets: Vec<(String, String)>,
}

/// Translates a delta into field writes. Deletes go first, as [`StateDelta::apply_to`]
/// removes before it inserts.
pub fn writes_for(delta: &StateDelta) -> HashWrites {
    let stream = stream_prefix(&delta.stream);
    let mut w = HashWrites {
        // A forgotten item's absence goes with its version.
        deletes: delta
            .removals
            .iter()
            .flat_map(|id| {
                [
                    format!("{stream}{VERSION_PREFIX}{id}"),
                    format!("{stream}{ABSENCE_PREFIX}{id}"),
                ]
            })
            .collect(),
        sets: delta
            .upserts
            .iter()
            .map(|(id, v)| (format!("{stream}{VERSION_PREFIX}{id}"), v.clone()))
            .collect(),
    };
    for (id, polls) in &delta.failures {
        let field = format!("{stream}{FAILURE_PREFIX}{id}");
        if *polls == 0 {
            w.deletes.push(field);
        } else {
            w.sets.push((field, polls.to_string()));
        }
    }
    for (id, absence) in &delta.absences {
        let field = format!("{stream}{ABSENCE_PREFIX}{id}");
        match absence {
            Some(a) => w.sets.push((field, a.encode())),
            None => w.deletes.push(field),
        }
    }
    if let Some(cursor) = &delta.cursor {
        for (field, value) in [
            (CURSOR_ETAG, cursor.etag.clone()),
            (CURSOR_LAST_MODIFIED, cursor.last_modified.clone()),
            (CURSOR_WATERMARK, cursor.watermark.clone()),
            (
                CURSOR_RESUME,
                cursor.resume.as_ref().and_then(json_text::encode),
            ),
            (CURSOR_PENDING, cursor.pending.clone()),
            (
                CURSOR_PAGES,
                cursor.pages.as_ref().and_then(json_text::encode),
            ),
            (
                CURSOR_PARTITIONS,
                cursor.partitions.as_ref().and_then(json_text::encode),
            ),
        ] {
            match value {
                Some(v) => w.sets.push((format!("{stream}{field}"), v)),
                None => w.deletes.push(format!("{stream}{field}")),
            }
        }
    }
    w
}

/// The field prefix of a stream: none for the main one.
fn stream_prefix(stream: &str) -> String {
    if stream.is_empty() {
        String::new()
    } else {
        format!("{STREAM_PREFIX}{stream}{STREAM_END}")
    }
}

/// Rebuilds the state from the hash's fields. Unknown fields (a newer layout) are ignored
/// rather than failing the load.
pub fn state_from_fields(fields: impl IntoIterator<Item = (String, String)>) -> ConnectorState {
    let mut state = ConnectorState::default();
    for (field, value) in fields {
        match field.as_str() {
            HEADER_SEQ => {
                state.header.seq = value.parse().unwrap_or(0);
                continue;
            }
            HEADER_FORMAT => {
                state.header.format = value.parse().unwrap_or(u32::MAX);
                continue;
            }
            _ => {}
        }
        let (stream, field) = match field
            .strip_prefix(STREAM_PREFIX)
            .and_then(|rest| rest.split_once(STREAM_END))
        {
            Some((name, rest)) => (state.stream_mut(name), rest),
            None => (&mut state.main, field.as_str()),
        };
        read_field(stream, field, value);
    }
    state
}

/// The header from `HMGET h:format h:seq`'s answer.
pub fn header_from(format: Option<String>, seq: Option<String>) -> StateHeader {
    StateHeader {
        format: format.map_or(0, |f| f.parse().unwrap_or(u32::MAX)),
        seq: seq.and_then(|s| s.parse().ok()).unwrap_or(0),
    }
}

fn read_field(stream: &mut StreamState, field: &str, value: String) {
    if let Some(id) = field.strip_prefix(VERSION_PREFIX) {
        stream.versions.insert(id.to_owned(), value);
    } else if let Some(id) = field.strip_prefix(FAILURE_PREFIX) {
        if let Ok(polls) = value.parse() {
            stream.failures.insert(id.to_owned(), polls);
        }
    } else if let Some(id) = field.strip_prefix(ABSENCE_PREFIX) {
        if let Some(absence) = connector_core::ports::Absence::decode(&value) {
            stream.absent.insert(id.to_owned(), absence);
        }
    } else {
        match field {
            CURSOR_ETAG => stream.cursor.etag = Some(value),
            CURSOR_LAST_MODIFIED => stream.cursor.last_modified = Some(value),
            CURSOR_WATERMARK => stream.cursor.watermark = Some(value),
            CURSOR_RESUME => stream.cursor.resume = json_text::decode(&value),
            CURSOR_PENDING => stream.cursor.pending = Some(value),
            CURSOR_PAGES => stream.cursor.pages = json_text::decode(&value),
            CURSOR_PARTITIONS => stream.cursor.partitions = json_text::decode(&value),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_core::Cursor;

    #[test]
    fn a_delta_round_trips_through_the_hash_layout() {
        let delta = StateDelta {
            failures: Vec::new(),
            absences: vec![
                (
                    "away".into(),
                    Some(connector_core::ports::Absence {
                        since_ms: 1_700_000_000_000,
                        polls: 2,
                    }),
                ),
                ("back".into(), None),
            ],
            stream: String::new(),
            upserts: vec![("a".into(), "1".into()), ("b:c".into(), "2".into())],
            removals: vec!["gone".into()],
            cursor: Some(Cursor {
                watermark: Some("2026-01-01T00:00:00Z".into()),
                etag: None,
                last_modified: Some("Tue".into()),
                ..Cursor::default()
            }),
        };
        let w = writes_for(&delta);
        assert_eq!(
            w.deletes,
            [
                "v:gone",
                "a:gone",
                "a:back",
                "cursor:etag",
                "cursor:resume",
                "cursor:pending",
                "cursor:pages",
                "cursor:partitions"
            ]
        );
        assert_eq!(w.sets.len(), 5);
        assert!(
            w.sets
                .contains(&("a:away".into(), "1700000000000:2".into()))
        );
        let mut expected = ConnectorState::default();
        delta.apply_to(&mut expected);
        assert_eq!(state_from_fields(w.sets), expected);
    }

    /// A parent/child stream's state: its parents' versions and rotation mark, and a
    /// partition's own stream, whose name holds a percent-encoded parent id.
    #[test]
    fn partition_state_round_trips_through_the_hash_layout() {
        let parents = StateDelta {
            stream: "parents".into(),
            upserts: vec![("a|b".into(), r#"{"/path":"g/a|b"}"#.into())],
            cursor: Some(Cursor {
                watermark: Some("2026-01-01T00:00:00Z".into()),
                partitions: Some(connector_core::ports::PartitionMark {
                    next: Some("a|b".into()),
                    round_ms: Some(1),
                    round_ok: true,
                    complete_ms: None,
                    full_ms: Some(2),
                    polls: 3,
                }),
                ..Cursor::default()
            }),
            ..StateDelta::default()
        };
        let child = StateDelta {
            stream: "p/a%7Cb".into(),
            upserts: vec![("7".into(), "v".into())],
            cursor: Some(Cursor {
                watermark: Some("2026-01-02T00:00:00Z".into()),
                ..Cursor::default()
            }),
            ..StateDelta::default()
        };
        let mut expected = ConnectorState::default();
        let mut fields = Vec::new();
        for delta in [&parents, &child] {
            delta.apply_to(&mut expected);
            fields.extend(writes_for(delta).sets);
        }
        assert!(
            fields
                .iter()
                .any(|(f, _)| f == "s:parents|cursor:partitions")
        );
        assert!(fields.iter().any(|(f, _)| f == "s:p/a%7Cb|v:7"));
        assert_eq!(state_from_fields(fields), expected);
    }

    #[test]
    fn named_streams_keep_their_fields_apart_from_the_main_one() {
        let named = StateDelta {
            stream: "octo/repo/issues".into(),
            upserts: vec![("I_1".into(), "2026-01-01".into())],
            cursor: Some(Cursor {
                watermark: Some("2026-01-01T00:00:00Z".into()),
                ..Cursor::default()
            }),
            ..StateDelta::default()
        };
        let main = StateDelta {
            upserts: vec![("a".into(), "1".into())],
            ..StateDelta::default()
        };
        let mut fields = writes_for(&named).sets;
        assert!(fields.contains(&("s:octo/repo/issues|v:I_1".into(), "2026-01-01".into())));
        fields.extend(writes_for(&main).sets);
        let mut expected = ConnectorState::default();
        named.apply_to(&mut expected);
        main.apply_to(&mut expected);
        let read = state_from_fields(fields);
        assert_eq!(read, expected);
        assert_eq!(read.main.versions.len(), 1);
        assert_eq!(
            read.streams["octo/repo/issues"].cursor.watermark.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
    }

    #[test]
    fn no_cursor_means_the_cursor_fields_are_left_alone() {
        let w = writes_for(&StateDelta {
            upserts: vec![("a".into(), "1".into())],
            ..StateDelta::default()
        });
        assert!(w.deletes.is_empty());
        assert_eq!(w.sets, [("v:a".to_owned(), "1".to_owned())]);
    }
}
