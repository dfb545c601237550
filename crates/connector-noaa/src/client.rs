//! HTTP for the NWS alerts API, on the core's source toolkit.
//!
//! `/alerts/active` answers with the whole current set in one response; the history
//! endpoint pages with `pagination.next`, which has no reliable last-page marker, so paging
//! stops on an empty page, a missing link, a link to another host, a repeated link, or the
//! page limit (the toolkit's rules). Only an `/alerts/active` read that ended naturally
//! counts as the complete snapshot. The history is an incremental stream instead: newest
//! first by `sent`, asked from the watermark (`start=`), which is saved when a read
//! completes; a read stopped mid-way goes on at its `next` link.

use std::time::Duration;

use connector_core::http::{HttpClient, Request};
use connector_core::pipeline::Pages;
use connector_core::source::time::{TimeFormat, format_millis, parse_millis, read_from};
use connector_core::source::{self, Kept, Paging, Read, Revalidate};
use connector_core::{Cursor, ItemError, Record};
use url::Url;

/// Guard against a server that keeps handing out `next` links.
const MAX_PAGES: u64 = 50;

/// How far before the watermark a history read starts: `sent` values repeat, and an
/// office's message can reach the API a little after the time it carries.
const LOOKBACK_MS: i64 = 10 * 60 * 1000;

/// How long a history `next` link is trusted to continue a stopped read.
const RESUME_FOR: Duration = Duration::from_secs(3600);

/// What one connector asks: `first` carries the filters (re-added to `next` links that
/// drop them); `history` reads the `/alerts` window instead of the active snapshot; with
/// `actual_only` anything but real-world alerts is dropped (NWS sends KEEPALIVE test
/// messages unless asked not to).
pub struct Query {
    /// The first page, with the filters.
    pub first: Url,
    /// The `/alerts` history rather than `/alerts/active`.
    pub history: bool,
    /// Only `status: Actual`.
    pub actual_only: bool,
}

/// Reads the query page by page. A snapshot's first page is conditional; validators are
/// kept only for one complete page.
pub fn pages<'a>(http: &'a HttpClient, query: &'a Query, cursor: &'a Cursor) -> Pages<'a, Record> {
    let mut first = query.first.clone();
    let watermark = cursor.watermark.as_deref().and_then(parse_millis);
    let start = read_from(watermark, LOOKBACK_MS, None)
        .and_then(|ms| format_millis(ms.div_euclid(1000) * 1000, &TimeFormat::Rfc3339).ok());
    if let (true, Some(start)) = (query.history, start) {
        first.query_pairs_mut().append_pair("start", &start);
    }
    let actual_only = query.actual_only;
    let read = Read {
        paging: Paging::next_url("/pagination/next").keep_query(true),
        records: "/features".into(),
        max_pages: MAX_PAGES,
        conditional: if query.history {
            Revalidate::Never
        } else {
            Revalidate::Whole
        },
        watermark: query.history.then(|| "/properties/sent".into()),
        resume: query.history.then_some(RESUME_FOR),
        ..Read::new(Request::get(first), move |body, span, text| {
            let (alert, actual) = crate::schema::alert(body, span, text).map_err(ItemError::new)?;
            Ok(if actual_only && !actual {
                Kept::Dropped("nonActualDropped")
            } else {
                Kept::Item(alert)
            })
        })
    };
    source::read(http, read, cursor)
}
