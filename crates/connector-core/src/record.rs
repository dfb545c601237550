//! One record as the core holds it: where it lies in the page body it came in, and its
//! identity (id and version), which change detection reads on every poll.
//!
//! A page body is kept once, as received, and shared by the records read from it; a
//! record is a byte range of it, which becomes the signal's payload byte for byte. A
//! 100,000-record snapshot is about 150 MB of JSON: a private copy of every record (or of
//! its id) would double what a poll holds at its peak, so an id that is a plain string of
//! the record is kept as its place in the body, not as a copy.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::http::Request;
use crate::signal::ItemError;
use crate::source::records::{MAX_DEPTH, locate_in, nested_deeper_than, scalar, text_of};
use crate::source::{Body, Kept, Read};

/// An item's identity for change detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemKey<'a> {
    /// The provider's stable id.
    pub id: Cow<'a, str>,
    /// The version: the API's version field, or [`crate::detect::content_version`].
    pub version: Cow<'a, str>,
}

impl<'a> ItemKey<'a> {
    /// A key borrowing its id and version from the item.
    pub fn of(id: &'a str, version: &'a str) -> Self {
        Self {
            id: Cow::Borrowed(id),
            version: Cow::Borrowed(version),
        }
    }
}

/// One record of a page: its text (a slice of the page body), id and version.
#[derive(Clone)]
pub struct Record {
    body: Body,
    span: Range<usize>,
    id: Text,
    version: String,
}

/// A string of the record: its place in the body (no escapes to undo, the usual case), or
/// a copy of its own.
#[derive(Debug, Clone)]
enum Text {
    InBody(Range<usize>),
    Owned(Box<str>),
}

impl Record {
    /// The record at `span` of `body` (UTF-8 there, as the core's reader checks), with its
    /// id and version. An `id` borrowed from the body's text is kept as its place in it.
    pub fn new(body: &Body, span: Range<usize>, id: &str, version: String) -> Self {
        let id = span_in(body, id).map_or_else(|| Text::Owned(id.into()), Text::InBody);
        Self {
            body: Arc::clone(body),
            span,
            id,
            version,
        }
    }

    /// A record held on its own, in a body of its own (tests and tools; a page's records
    /// share its body instead).
    pub fn standalone(text: &str, id: &str, version: String) -> Self {
        let body: Body = Arc::new(text.as_bytes().to_vec());
        Self::new(&body, 0..body.len(), id, version)
    }

    /// The record as received.
    pub fn raw(&self) -> &str {
        text_of(&self.body, self.span.clone())
    }

    /// The provider's stable id.
    pub fn id(&self) -> &str {
        match &self.id {
            Text::InBody(span) => text_of(&self.body, span.clone()),
            Text::Owned(text) => text,
        }
    }

    /// The version change detection compares.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Id and version, for change detection.
    pub fn key(&self) -> ItemKey<'_> {
        ItemKey::of(self.id(), &self.version)
    }

    /// The text of the string or number at `pointer` of the record, without parsing the
    /// rest of it.
    pub fn text(&self, pointer: &str) -> Option<Cow<'_, str>> {
        let at = locate_in(&self.body, self.span.clone(), pointer).ok()??;
        scalar(&self.body, at)
    }

    /// Whether the record has a value other than `null` at `pointer`.
    pub fn has(&self, pointer: &str) -> bool {
        crate::source::records::present(self.raw().as_bytes(), pointer)
    }

    /// The record as the provider's type, borrowing from its text where `T` does.
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> Result<T, ItemError> {
        serde_json::from_str(self.raw()).map_err(ItemError::new)
    }

    /// The record as the signal's payload, untouched (serde_json checks it on the way: it
    /// has no constructor that trusts text parsed before). A record nested deeper than
    /// [`MAX_DEPTH`] levels fails: a consumer could not read its entry back.
    pub fn payload(&self) -> Result<&RawValue, ItemError> {
        if nested_deeper_than(self.raw().as_bytes(), MAX_DEPTH) {
            return Err(ItemError::new(format!(
                "the record nests deeper than {MAX_DEPTH} levels, more than a consumer's JSON reader takes"
            )));
        }
        self.parse()
    }
}

/// The record, not the whole page body it points into.
impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("id", &self.id())
            .field("version", &self.version)
            .field("raw", &self.raw())
            .finish()
    }
}

/// Where `part`, a slice of `body`, lies in it.
fn span_in(body: &[u8], part: &str) -> Option<Range<usize>> {
    let start = part.as_ptr().addr().checked_sub(body.as_ptr().addr())?;
    let span = start..start.checked_add(part.len())?;
    body.get(span.clone())
        .is_some_and(|s| std::ptr::eq(s, part.as_bytes()))
        .then_some(span)
}

impl<'a> Read<'a, Record> {
    /// A read whose every record is an item, its id and version said by `identity` from
    /// the record's text: what a provider without filters of its own needs.
    pub fn identified(
        request: Request,
        identity: impl Fn(&str) -> Result<(Cow<'_, str>, String), ItemError> + Send + Sync + 'a,
    ) -> Self {
        Self::new(request, move |body, span, text| {
            let (id, version) = identity(text)?;
            Ok(Kept::Item(Record::new(body, span, &id, version)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_from_the_body_is_kept_as_its_place_and_an_unescaped_one_as_a_copy() {
        let body: Body = Arc::new(br#"[{"id":"a1","v":2},{"id":"b\"2"}]"#.to_vec());
        let text = std::str::from_utf8(&body[1..18]).expect("utf-8");
        let id = &text[7..9];
        let r = Record::new(&body, 1..18, id, "2".into());
        assert!(matches!(r.id, Text::InBody(_)));
        assert_eq!(
            (r.id(), r.version(), r.raw()),
            ("a1", "2", r#"{"id":"a1","v":2}"#)
        );
        assert_eq!(r.text("/v").as_deref(), Some("2"));
        let copy = Record::new(&body, 19..32, "b\"2", "x".into());
        assert!(matches!(copy.id, Text::Owned(_)));
        assert_eq!(copy.id(), "b\"2");
        #[derive(Deserialize)]
        struct One<'a> {
            id: &'a str,
        }
        assert_eq!(r.parse::<One<'_>>().expect("parse").id, "a1");
        assert_eq!(r.payload().expect("payload").get(), r.raw());
    }
}
