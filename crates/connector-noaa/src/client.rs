//! HTTP for the NWS alerts API, on the core's source toolkit.
//!
//! `/alerts/active` answers with the whole current set in one response; the history
//! endpoint pages with `pagination.next`, which has no reliable last-page marker, so paging
//! stops on an empty page, a missing link, a link to another host, a repeated link, or the
//! page limit (the toolkit's rules). Only an `/alerts/active` read that ended naturally
//! counts as the complete snapshot. The history is an incremental stream instead: newest
//! first by `sent`, asked from the watermark (`start=`), which is saved when a read
//! completes; a read stopped mid-way goes on at its `next` link.

use connector_core::http::{HttpClient, Request};
use connector_core::pipeline::Pages;
use std::time::Duration;

use connector_core::source::time::{TimeFormat, format_millis, parse_millis, read_from};
use connector_core::source::{self, Kept, Paging, Read, Revalidate};
use connector_core::{Cursor, ItemError};
use url::Url;

use crate::schema::Alert;

/// Guard against a server that keeps handing out `next` links.
const MAX_PAGES: u64 = 50;

/// How far before the watermark a history read starts: `sent` values repeat, and an
/// office's message can reach the API a little after the time it carries.
const LOOKBACK_MS: i64 = 10 * 60 * 1000;

/// How long a history `next` link is trusted to continue a stopped read.
const RESUME_FOR: Duration = Duration::from_secs(3600);

/// A client for one connector's query.
pub struct NoaaClient {
    http: HttpClient,
    first_page: Url,
    actual_only: bool,
    history: bool,
}

impl NoaaClient {
    /// `first_page` carries the filters, which are re-added to `next` links that drop them.
    /// With `actual_only`, anything but real-world alerts is dropped (NWS sends KEEPALIVE
    /// test messages unless asked not to).
    /// `history` reads the `/alerts` window incrementally instead of a snapshot.
    pub fn new(http: HttpClient, first_page: Url, actual_only: bool, history: bool) -> Self {
        Self {
            http,
            first_page,
            actual_only,
            history,
        }
    }

    /// The first page's URL, with the filters.
    pub fn first_page(&self) -> &Url {
        &self.first_page
    }

    /// Reads the query page by page. A snapshot's first page is conditional; validators
    /// are kept only for one complete page.
    pub fn pages<'a>(&'a self, cursor: &'a Cursor) -> Pages<'a, Alert> {
        let actual_only = self.actual_only;
        let mut first = self.first_page.clone();
        let watermark = cursor.watermark.as_deref().and_then(parse_millis);
        if self.history
            && let Some(start) = read_from(watermark, LOOKBACK_MS, None)
                .and_then(|ms| format_millis(ms.div_euclid(1000) * 1000, &TimeFormat::Rfc3339).ok())
        {
            first.query_pairs_mut().append_pair("start", &start);
        }
        let read = Read {
            request: Request::get(first),
            paging: Paging::NextUrl {
                pointer: "/pagination/next".into(),
                keep_query: true,
                stop_on_empty: true,
            },
            records: "/features".into(),
            max_pages: MAX_PAGES,
            conditional: if self.history {
                Revalidate::Never
            } else {
                Revalidate::Whole
            },
            anchor: None,
            watermark: self.history.then(|| "/properties/sent".into()),
            resume: self.history.then_some(RESUME_FOR),
            parse: Box::new(move |body, span, text| {
                let alert = Alert::of_text(body, span, text).map_err(ItemError::new)?;
                Ok(if actual_only && !alert.is_actual() {
                    Kept::Dropped("nonActualDropped")
                } else {
                    Kept::Item(alert)
                })
            }),
        };
        source::read(&self.http, read, cursor)
    }
}
