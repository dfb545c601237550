//! How [`ConnectorState`] maps onto the state hash, as pure functions.
//!
//! One hash per connector, one field per fact, so a commit writes only what changed
//! (a version per new or changed item, the cursor once per poll) and never rewrites the
//! whole state:
//!
//! - `v:<external id>` → the last published version of the item;
//! - `cursor:position`, `cursor:etag`, `cursor:last_modified` → the cursor; a field is
//!   absent when its value is `None`.

use connector_core::ports::{ConnectorState, StateDelta};

/// Prefix of a version field.
pub const VERSION_PREFIX: &str = "v:";
/// The cursor's resume point.
pub const CURSOR_POSITION: &str = "cursor:position";
/// The cursor's `ETag`.
pub const CURSOR_ETAG: &str = "cursor:etag";
/// The cursor's `Last-Modified`.
pub const CURSOR_LAST_MODIFIED: &str = "cursor:last_modified";

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
    let mut w = HashWrites {
        deletes: delta
            .removals
            .iter()
            .map(|id| format!("{VERSION_PREFIX}{id}"))
            .collect(),
        sets: delta
            .upserts
            .iter()
            .map(|(id, v)| (format!("{VERSION_PREFIX}{id}"), v.clone()))
            .collect(),
    };
    if let Some(cursor) = &delta.cursor {
        for (field, value) in [
            (CURSOR_POSITION, &cursor.position),
            (CURSOR_ETAG, &cursor.etag),
            (CURSOR_LAST_MODIFIED, &cursor.last_modified),
        ] {
            match value {
                Some(v) => w.sets.push((field.to_owned(), v.clone())),
                None => w.deletes.push(field.to_owned()),
            }
        }
    }
    w
}

/// Rebuilds the state from the hash's fields. Unknown fields (a newer layout) are ignored
/// rather than failing the load.
pub fn state_from_fields(fields: impl IntoIterator<Item = (String, String)>) -> ConnectorState {
    let mut state = ConnectorState::default();
    for (field, value) in fields {
        if let Some(id) = field.strip_prefix(VERSION_PREFIX) {
            state.versions.insert(id.to_owned(), value);
        } else {
            match field.as_str() {
                CURSOR_POSITION => state.cursor.position = Some(value),
                CURSOR_ETAG => state.cursor.etag = Some(value),
                CURSOR_LAST_MODIFIED => state.cursor.last_modified = Some(value),
                _ => {}
            }
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_core::Cursor;

    #[test]
    fn a_delta_round_trips_through_the_hash_layout() {
        let delta = StateDelta {
            upserts: vec![("a".into(), "1".into()), ("b:c".into(), "2".into())],
            removals: vec!["gone".into()],
            cursor: Some(Cursor {
                position: Some("p".into()),
                etag: None,
                last_modified: Some("Tue".into()),
            }),
        };
        let w = writes_for(&delta);
        assert_eq!(w.deletes, ["v:gone", "cursor:etag"]);
        assert_eq!(w.sets.len(), 4);
        let mut expected = ConnectorState::default();
        delta.apply_to(&mut expected);
        assert_eq!(state_from_fields(w.sets), expected);
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
