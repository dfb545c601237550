//! Finding records in a page body by JSON pointer (RFC 6901), without parsing the page.
//!
//! A page of 100,000 records is 150 MB of JSON; building it as a `serde_json::Value` would
//! hold several times that, and one bad byte anywhere would fail every record. The reader
//! instead scans the bytes: it walks to the list the pointer names, splits it into one
//! byte range per record (an array's elements, or an object's values) and checks nothing
//! else. Each record is then checked on its own (UTF-8, then the provider's parse), so a
//! record with invalid UTF-8 or an odd shape fails alone and the rest are published. The
//! ranges point into the one body, which the items can share instead of copying.

use std::borrow::Cow;
use std::ops::Range;

use crate::signal::ItemError;

/// Why the bytes could not be scanned as JSON where the scan needed them to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct ScanError {
    /// What was expected.
    pub what: &'static str,
    /// Where, from the start of the body.
    pub at: usize,
}

/// What [`records_at`] says when the pointer names nothing.
pub const NO_LIST: &str = "the list of records";

fn fail<T>(what: &'static str, at: usize) -> Result<T, ScanError> {
    Err(ScanError { what, at })
}

/// The byte range of the value `pointer` names in `json`, or `None` when it is absent.
/// `""` names the whole document.
///
/// Only what the walk needs is scanned: an object or array found on the way is not skipped
/// to its end (its range then runs to the end of the body), since the list a pointer
/// names is split next anyway; a string or number's range is exact.
pub fn locate(json: &[u8], pointer: &str) -> Result<Option<Range<usize>>, ScanError> {
    let start = skip_ws(json, 0);
    if start >= json.len() {
        return fail("a JSON value", start);
    }
    locate_in(json, start..json.len(), pointer)
}

/// [`locate`] inside the value at `within` (a record, say). Of two members with the same
/// name, the first counts (the JSON spec leaves it open; the ones seen in the wild repeat
/// the same value).
pub fn locate_in(
    json: &[u8],
    within: Range<usize>,
    pointer: &str,
) -> Result<Option<Range<usize>>, ScanError> {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return fail("a JSON pointer starting with '/'", 0);
    }
    let mut at = within;
    for token in tokens(pointer) {
        let found = match json.get(at.start) {
            Some(b'{') => member(json, at.start, &token)?,
            Some(b'[') => match token.parse::<usize>() {
                Ok(index) => element(json, at.start, index)?,
                Err(_) => None,
            },
            _ => None,
        };
        match found {
            Some(range) => at = range,
            None => return Ok(None),
        }
    }
    Ok(Some(at))
}

/// The byte ranges of the records in the list at `pointer` of a page. A page without the
/// list is an error, not an empty page: an error document (`{"error": ...}`) or an HTML
/// page must not read as "no records", which for a snapshot would mean "all gone".
pub fn records_at(json: &[u8], pointer: &str, keyed: bool) -> Result<Vec<Range<usize>>, ScanError> {
    if !matches!(json.get(skip_ws(json, 0)), Some(b'{' | b'[')) {
        return fail("a JSON object or array", skip_ws(json, 0));
    }
    match locate(json, pointer)? {
        Some(list) => match (keyed, json.get(list.start)) {
            (false, Some(b'[')) | (true, Some(b'{')) => split(json, list),
            // APIs that key records by id often send `[]` for none.
            (true, Some(b'[')) if json.get(skip_ws(json, list.start + 1)) == Some(&b']') => {
                Ok(Vec::new())
            }
            (false, _) => fail("an array of records", list.start),
            (true, _) => fail("an object of records", list.start),
        },
        None => fail(NO_LIST, 0),
    }
}

/// The records of the list at `at`: an array's elements, or an object's values (APIs that
/// key records by id). Anything else is not a list of records.
pub fn split(json: &[u8], at: Range<usize>) -> Result<Vec<Range<usize>>, ScanError> {
    let mut out = Vec::new();
    match json.get(at.start) {
        Some(b'[') => {
            let mut i = skip_ws(json, at.start + 1);
            if json.get(i) == Some(&b']') {
                return Ok(out);
            }
            loop {
                let end = value_end(json, i)?;
                out.push(i..end);
                i = skip_ws(json, end);
                match json.get(i) {
                    Some(b',') => i = skip_ws(json, i + 1),
                    Some(b']') => return Ok(out),
                    _ => return fail("',' or ']' after a record", i),
                }
            }
        }
        Some(b'{') => {
            walk_members::<()>(json, at.start, |_, value| {
                let end = value_end(json, value)?;
                out.push(value..end);
                Ok(Step::Next(Some(end)))
            })?;
            Ok(out)
        }
        _ => fail("an array or an object of records", at.start),
    }
}

/// The text of `span` of a page body: a record as received, which the reader checked to
/// be UTF-8 when it split the page (empty if it is not).
pub fn text_of(body: &[u8], span: Range<usize>) -> &str {
    body.get(span)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or_default()
}

/// The text of a string or number value (a string unescaped), for ids and versions; `None`
/// for any other kind of value.
pub fn scalar(json: &[u8], at: Range<usize>) -> Option<Cow<'_, str>> {
    let bytes = json.get(at.clone())?;
    match bytes.first()? {
        b'"' => {
            let inner = bytes.get(1..bytes.len() - 1)?;
            if inner.contains(&b'\\') {
                serde_json::from_slice::<String>(bytes).ok().map(Cow::Owned)
            } else {
                std::str::from_utf8(inner).ok().map(Cow::Borrowed)
            }
        }
        b'-' | b'0'..=b'9' => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
        _ => None,
    }
}

/// The text of the string or number `pointer` names in `json` (a record's text), without
/// parsing the rest of it; `None` when it is absent or another kind of value.
pub fn text_at<'j>(json: &'j [u8], pointer: &str) -> Option<Cow<'j, str>> {
    scalar(json, locate(json, pointer).ok()??)
}

/// The text of the string `pointer` names in `json`, unescaped; `None` when it is absent
/// or not a string (an API that documents a string field and sends a number sent
/// something else).
pub fn string_at<'j>(json: &'j [u8], pointer: &str) -> Option<Cow<'j, str>> {
    let at = locate(json, pointer).ok()??;
    (json.get(at.start) == Some(&b'"'))
        .then(|| scalar(json, at))
        .flatten()
}

/// The first non-empty string among `pointers` in `json` (an id with its fallbacks); the
/// error names them, so the record fails alone.
pub fn required_string<'j>(json: &'j [u8], pointers: &[&str]) -> Result<Cow<'j, str>, ItemError> {
    pointers
        .iter()
        .find_map(|p| string_at(json, p).filter(|s| !s.is_empty()))
        .ok_or_else(|| {
            ItemError::new(format!(
                "{} is missing or not a string",
                pointers.join(" or ")
            ))
        })
}

/// The time string `json` must have at `pointer`, as written (a version or a watermark
/// time); the error says it is missing or not a time.
pub fn required_time<'j>(json: &'j [u8], pointer: &str) -> Result<Cow<'j, str>, ItemError> {
    string_at(json, pointer)
        .filter(|t| crate::time::parse_millis(t).is_some())
        .ok_or_else(|| ItemError::new(format!("{pointer} is missing or not a time")))
}

/// Whether `pointer` names a value other than `null` in `json`.
pub fn present(json: &[u8], pointer: &str) -> bool {
    matches!(locate(json, pointer), Ok(Some(at)) if json.get(at.start) != Some(&b'n'))
}

/// How deeply a record's objects and arrays may nest, so any consumer can read its entry
/// back with the usual JSON libraries: serde_json reads at most 127 levels, and the record
/// sits one level down in the signal (`payload`) and two in an embedded JSON line. Real
/// API records nest a few levels; 100 leaves the envelope room to grow.
pub const MAX_DEPTH: usize = 100;

/// Whether the JSON text `json` nests objects and arrays deeper than `max` (strings are
/// skipped whole, so brackets inside them do not count).
pub fn nested_deeper_than(json: &[u8], max: usize) -> bool {
    // Fewer opening brackets than the limit cannot nest past it: the usual record is
    // settled by one SIMD count, without walking its strings.
    if memchr::memchr2_iter(b'{', b'[', json).nth(max).is_none() {
        return false;
    }
    // From one string or opening bracket to the next (one SIMD search), counting the
    // closing brackets passed on the way (another): the bytes between, numbers and
    // whitespace mostly, are never looked at one by one.
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(rest) = json.get(i..) {
        let Some(k) = memchr::memchr3(b'"', b'{', b'[', rest) else {
            return false;
        };
        let closed = memchr::memchr2_iter(b'}', b']', &rest[..k]).count();
        depth = depth.saturating_sub(closed);
        if rest[k] == b'"' {
            match string_end(json, i + k) {
                Ok(end) => i = end,
                Err(_) => return false,
            }
        } else {
            depth += 1;
            if depth > max {
                return true;
            }
            i += k + 1;
        }
    }
    false
}

/// RFC 6901 reference tokens, unescaped (`~1` is `/`, `~0` is `~`).
fn tokens(pointer: &str) -> impl Iterator<Item = Cow<'_, str>> {
    pointer.split('/').skip(1).map(|t| {
        if t.contains('~') {
            Cow::Owned(t.replace("~1", "/").replace("~0", "~"))
        } else {
            Cow::Borrowed(t)
        }
    })
}

fn skip_ws(json: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = json.get(i) {
        i += 1;
    }
    i
}

/// The end (exclusive) of the value starting at `i`.
fn value_end(json: &[u8], i: usize) -> Result<usize, ScanError> {
    match json.get(i) {
        Some(b'"') => string_end(json, i),
        Some(b'{' | b'[') => container_end(json, i),
        Some(b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
            let mut j = i;
            while let Some(c) = json.get(j) {
                if matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                    break;
                }
                j += 1;
            }
            Ok(j)
        }
        _ => fail("a JSON value", i),
    }
}

/// The end of the string whose opening quote is at `i`.
fn string_end(json: &[u8], i: usize) -> Result<usize, ScanError> {
    let mut j = i + 1;
    loop {
        match memchr::memchr2(b'"', b'\\', json.get(j..).unwrap_or_default()) {
            Some(k) if json[j + k] == b'"' => return Ok(j + k + 1),
            Some(k) => j += k + 2,
            None => return fail("the end of a string", i),
        }
    }
}

/// The end of the object or array opening at `i`. serde_json skips it (its skipping is a
/// tight loop over the bytes, and from a byte slice it does not check UTF-8 in strings it
/// skips, so a record with bad bytes still splits off, to fail alone at its own check).
fn container_end(json: &[u8], i: usize) -> Result<usize, ScanError> {
    let rest = json.get(i..).unwrap_or_default();
    let mut values =
        serde_json::Deserializer::from_slice(rest).into_iter::<serde::de::IgnoredAny>();
    match values.next() {
        Some(Ok(_)) => Ok(i + values.byte_offset()),
        _ => fail("a complete JSON object or array", i),
    }
}

/// What a member walk does after one member.
enum Step<R> {
    /// Stop with this.
    Found(R),
    /// Go on; the value's end, if the callback had to find it anyway.
    Next(Option<usize>),
}

/// Walks the members of the object opening at `i`: `f(key, value start)` either stops the
/// walk with a result or lets it go on, and only then is the value skipped to its end (a
/// member found is never skipped whole).
fn walk_members<R>(
    json: &[u8],
    i: usize,
    mut f: impl FnMut(Range<usize>, usize) -> Result<Step<R>, ScanError>,
) -> Result<Option<R>, ScanError> {
    let mut j = skip_ws(json, i + 1);
    if json.get(j) == Some(&b'}') {
        return Ok(None);
    }
    loop {
        if json.get(j) != Some(&b'"') {
            return fail("a member name", j);
        }
        let key_end = string_end(json, j)?;
        let colon = skip_ws(json, key_end);
        if json.get(colon) != Some(&b':') {
            return fail("':' after a member name", colon);
        }
        let value = skip_ws(json, colon + 1);
        let end = match f(j..key_end, value)? {
            Step::Found(found) => return Ok(Some(found)),
            Step::Next(Some(end)) => end,
            Step::Next(None) => value_end(json, value)?,
        };
        j = skip_ws(json, end);
        match json.get(j) {
            Some(b',') => j = skip_ws(json, j + 1),
            Some(b'}') => return Ok(None),
            _ => return fail("',' or '}' after a member", j),
        }
    }
}

fn member(json: &[u8], i: usize, name: &str) -> Result<Option<Range<usize>>, ScanError> {
    walk_members(json, i, |key, value| {
        if scalar(json, key).is_none_or(|k| k != name) {
            return Ok(Step::Next(None));
        }
        // The value's end is needed only for a scalar; a container is walked into.
        Ok(Step::Found(match json.get(value) {
            Some(b'{' | b'[') => value..json.len(),
            _ => value..value_end(json, value)?,
        }))
    })
}

fn element(json: &[u8], i: usize, index: usize) -> Result<Option<Range<usize>>, ScanError> {
    let all = split(json, i..i)?;
    Ok(all.into_iter().nth(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_measured_outside_strings() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(!nested_deeper_than(deep(100).as_bytes(), MAX_DEPTH));
        assert!(nested_deeper_than(deep(101).as_bytes(), MAX_DEPTH));
        let quoted = format!(r#"{{"a": "{}", "b": [{{}}]}}"#, "[{".repeat(500));
        assert!(!nested_deeper_than(quoted.as_bytes(), 3));
        assert!(nested_deeper_than(br#"{"a": {"b": {"c": 1}}}"#, 2));
        assert!(!nested_deeper_than(b"[[1], [2, 3], [[4]]]", 3));
        assert!(nested_deeper_than(b"[[1], [2, 3], [[4]]]", 2));
    }

    #[test]
    fn fields_are_read_by_pointer_with_their_kind() {
        let record = br#"{"id": "a\u0041", "n": 7, "pr": null, "o": {"x": "y"}}"#;
        assert_eq!(text_at(record, "/id").as_deref(), Some("aA"));
        assert_eq!(text_at(record, "/n").as_deref(), Some("7"));
        assert_eq!(string_at(record, "/n"), None, "a number is not a string");
        assert_eq!(string_at(record, "/o/x").as_deref(), Some("y"));
        assert_eq!(text_at(record, "/o"), None, "an object has no text");
        assert!(present(record, "/o") && present(record, "/n"));
        assert!(!present(record, "/pr"), "null is absent");
        assert!(!present(record, "/missing"));
    }

    #[test]
    fn an_id_and_a_time_are_required_with_the_pointer_named() {
        let record = br#"{"id": "", "node": "N1", "at": "2026-01-02T03:04:05Z", "bad": "soon"}"#;
        let id = required_string(record, &["/id", "/node"]).expect("the fallback");
        assert_eq!(id, "N1", "an empty id falls back");
        let missing = required_string(record, &["/id", "/nope"]).expect_err("none usable");
        assert_eq!(missing.0, "/id or /nope is missing or not a string");
        let at = required_time(record, "/at").expect("a time");
        assert_eq!(at, "2026-01-02T03:04:05Z", "kept as written");
        let bad = required_time(record, "/bad").expect_err("not a time");
        assert_eq!(bad.0, "/bad is missing or not a time");
        assert!(required_time(record, "/gone").is_err());
    }

    const PAGE: &str = r#"{"meta": {"next": "/p?c=2", "n": 3},
  "data": [ {"id": "a", "v": {"rev": 1}, "t": "x\"y"}, {"id": 7, "v": {"rev": 2}},
            {"id": "c\u0041", "v": {"rev": 3}, "odd": [1, {"]": "}"}]} ],
  "by/id": {"k1": {"id": "k1"}, "k2": {"id": "k2"}}}"#;

    fn text(range: Option<Range<usize>>) -> &'static str {
        range.map_or("<none>", |r| &PAGE[r])
    }

    #[test]
    fn pointers_find_values_without_parsing_the_page() {
        let json = PAGE.as_bytes();
        assert_eq!(
            text(locate(json, "/meta/next").expect("scan")),
            r#""/p?c=2""#
        );
        assert_eq!(text(locate(json, "/data/1/v/rev").expect("scan")), "2");
        assert_eq!(
            text(locate(json, "/by~1id/k2/id").expect("scan")),
            r#""k2""#
        );
        assert_eq!(locate(json, "/meta/absent").expect("scan"), None);
        assert_eq!(locate(json, "/data/9").expect("scan"), None);
        assert!(locate(json, "data").is_err(), "a pointer starts with '/'");
    }

    #[test]
    fn a_list_splits_into_records_and_scalars_read_as_text() {
        let json = PAGE.as_bytes();
        let list = locate(json, "/data").expect("scan").expect("present");
        let records = split(json, list).expect("split");
        assert_eq!(records.len(), 3);
        let ids: Vec<String> = records
            .iter()
            .map(|r| {
                let at = locate_in(json, r.clone(), "/id")
                    .expect("scan")
                    .expect("id");
                scalar(json, at).expect("scalar").into_owned()
            })
            .collect();
        assert_eq!(ids, ["a", "7", "cA"]);
        let keyed = locate(json, "/by~1id").expect("scan").expect("present");
        assert_eq!(split(json, keyed).expect("split").len(), 2);
        assert!(split(json, locate(json, "/meta/n").expect("s").expect("p")).is_err());
        assert_eq!(records_at(json, "/data", false).map(|r| r.len()), Ok(3));
        assert_eq!(records_at(json, "/by~1id", true).map(|r| r.len()), Ok(2));
        assert_eq!(
            records_at(br#"{"by": [ ]}"#, "/by", true),
            Ok(Vec::new()),
            "an empty keyed collection sent as an array is no records"
        );
        assert!(
            records_at(json, "/by~1id", false).is_err() && records_at(json, "/data", true).is_err(),
            "a list of the other shape is a document of the wrong shape"
        );
        assert!(
            records_at(json, "/absent", false).is_err(),
            "no list is an error, not an empty page"
        );
        assert!(records_at(b"<html></html>", "/data", false).is_err());
        assert!(records_at(br#"{"data": ["#, "/data", false).is_err());
    }

    #[test]
    fn a_record_with_invalid_utf8_stays_a_record_of_its_own() {
        let mut json = br#"[{"id": "a"}, {"id": "b", "t": "XX"}, {"id": "c"}]"#.to_vec();
        let bad = json.windows(2).position(|w| w == b"XX").expect("marker");
        json[bad] = 0xff;
        let records = split(&json, 0..json.len()).expect("split");
        assert_eq!(records.len(), 3);
        let valid: Vec<bool> = records
            .iter()
            .map(|r| std::str::from_utf8(&json[r.clone()]).is_ok())
            .collect();
        assert_eq!(valid, [true, false, true]);
    }

    #[test]
    fn truncated_json_is_an_error_not_a_panic() {
        for cut in 0..PAGE.len() {
            let json = &PAGE.as_bytes()[..cut];
            let _ = locate(json, "/data/2/odd/1");
            if let Ok(Some(list)) = locate(json, "/data") {
                let _ = split(json, list);
            }
        }
    }
}
