//! The JQL a poll sends: the user's query, bounded below by the watermark, always in
//! `updated` order.
//!
//! The order is what lets the watermark be saved with each page: every issue on a later
//! page is updated no earlier than those before it. A user `ORDER BY` would break that,
//! so it is replaced (and [`split_order_by`] says so at load). JQL date literals have
//! minute precision and are read in the searching user's time zone; the watermark is
//! written in that zone, floored to the minute and moved back by the overlap, so a
//! mistake costs a re-read, never a missed issue.

use connector_core::source::Since;
use connector_core::source::time::TimeFormat;

/// The user's clause without any trailing `ORDER BY`, and that `ORDER BY` if there was one.
/// Words inside quoted strings (`summary ~ "order by"`) are not keywords.
pub fn split_order_by(jql: &str) -> (&str, Option<&str>) {
    let bytes = jql.as_bytes();
    let mut quote: Option<u8> = None;
    let mut at = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None => {
                // `o` is ASCII, so `i` is a character boundary whatever the JQL holds.
                let word_start = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
                if matches!(b, b'o' | b'O') && word_start && is_order_by(&jql[i..]) {
                    at = Some(i);
                    break;
                }
            }
        }
        i += 1;
    }
    match at {
        Some(i) => (jql[..i].trim(), Some(jql[i..].trim())),
        None => (jql.trim(), None),
    }
}

/// `ORDER` then `BY` as words, in any case and spacing.
fn is_order_by(rest: &str) -> bool {
    let Some(after) = rest
        .get(..5)
        .filter(|o| o.eq_ignore_ascii_case("order"))
        .map(|_| &rest[5..])
    else {
        return false;
    };
    let by = after.trim_start();
    by.len() < after.len()
        && by.get(..2).is_some_and(|b| b.eq_ignore_ascii_case("by"))
        && by[2..].chars().next().is_none_or(char::is_whitespace)
}

/// True when `order` already is the order the connector uses.
pub fn is_updated_ascending(order: &str) -> bool {
    let words: Vec<String> = order
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    words == ["order", "by", "updated", "asc"] || words == ["order", "by", "updated"]
}

/// How JQL writes a time: to the minute, in the searching user's `zone`.
pub fn time_format(zone: &str) -> TimeFormat {
    TimeFormat::Pattern {
        pattern: "%Y/%m/%d %H:%M".into(),
        zone: zone.to_owned(),
    }
}

/// The core's lower bound of a poll (the watermark less `overlap_ms`), written as JQL
/// writes a time in `zone`; [`query`] puts it inside the JQL.
pub fn since(zone: &str, overlap_ms: i64) -> Since {
    Since::new("jql", time_format(zone), overlap_ms)
}

/// The JQL of one poll: `clause` (without its `ORDER BY`), from `bound` (a JQL time;
/// `None` on the first sync), in `updated` order.
pub fn query(clause: &str, bound: Option<&str>) -> String {
    let bound = bound.map(|time| format!("updated >= \"{time}\""));
    match (clause.is_empty(), bound) {
        (true, None) => "ORDER BY updated ASC".to_owned(),
        (true, Some(b)) => format!("{b} ORDER BY updated ASC"),
        (false, None) => format!("({clause}) ORDER BY updated ASC"),
        (false, Some(b)) => format!("({clause}) AND {b} ORDER BY updated ASC"),
    }
}

/// The JQL of a page read from a time: `clause` bounded at `{time}`, which the reader
/// fills with the last page's newest update (see the core's `Anchor`).
pub fn anchored(clause: &str) -> String {
    if clause.is_empty() {
        "updated >= \"{time}\" ORDER BY updated ASC".to_owned()
    } else {
        format!("({clause}) AND updated >= \"{{time}}\" ORDER BY updated ASC")
    }
}
