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

use connector_core::http::Request;
use connector_core::source::time::TimeFormat;
use connector_core::source::{Kept, Paging, Read, Revalidate, Since};
use connector_core::{ItemError, Record};
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

/// The read of the query: a snapshot's first page is conditional (validators are kept
/// only for one complete page); the history asks from the watermark, less the lookback.
pub fn read(query: &Query) -> Read<'static, Record> {
    let actual_only = query.actual_only;
    Read {
        paging: Paging::next_url("/pagination/next").keep_query(true),
        records: "/features".into(),
        max_pages: MAX_PAGES,
        conditional: if query.history {
            Revalidate::Never
        } else {
            Revalidate::Whole
        },
        watermark: query.history.then(|| "/properties/sent".into()),
        since: query
            .history
            .then(|| Since::new("start", TimeFormat::Rfc3339, LOOKBACK_MS)),
        resume: query.history.then_some(RESUME_FOR),
        ..Read::new(
            Request::get(query.first.clone()),
            move |body, span, text| {
                let (alert, actual) =
                    crate::schema::alert(body, span, text).map_err(ItemError::new)?;
                Ok(if actual_only && !actual {
                    Kept::Dropped("nonActualDropped")
                } else {
                    Kept::Item(alert)
                })
            },
        )
    }
}
