//! HTTP for the NWS alerts API, on the core's source toolkit.
//!
//! `/alerts/active` answers with the whole current set in one response; the history
//! endpoint pages with `pagination.next`, which has no reliable last-page marker, so paging
//! stops on an empty page, a missing link, a link to another host, a repeated link, or the
//! page limit (the toolkit's rules). Only an `/alerts/active` read that ended naturally
//! counts as the complete snapshot; the history window is never one.

use connector_core::http::{HttpClient, Request};
use connector_core::pipeline::Pages;
use connector_core::source::{self, Kept, Paging, Read};
use connector_core::{Cursor, ItemError};
use url::Url;

use crate::schema::Alert;

/// Guard against a server that keeps handing out `next` links.
const MAX_PAGES: u64 = 50;

/// A client for one connector's query.
pub struct NoaaClient {
    http: HttpClient,
    first_page: Url,
    actual_only: bool,
}

impl NoaaClient {
    /// `first_page` carries the filters, which are re-added to `next` links that drop them.
    /// With `actual_only`, anything but real-world alerts is dropped (NWS sends KEEPALIVE
    /// test messages unless asked not to).
    pub fn new(http: HttpClient, first_page: Url, actual_only: bool) -> Self {
        Self {
            http,
            first_page,
            actual_only,
        }
    }

    /// The first page's URL, with the filters.
    pub fn first_page(&self) -> &Url {
        &self.first_page
    }

    /// Reads the query page by page. Only the first page is conditional; validators are
    /// kept only for one complete page.
    pub fn pages<'a>(&'a self, cursor: &'a Cursor) -> Pages<'a, Alert> {
        let actual_only = self.actual_only;
        let read = Read {
            request: Request::get(self.first_page.clone()),
            paging: Paging::NextUrl {
                pointer: "/pagination/next".into(),
                keep_query: true,
                stop_on_empty: true,
            },
            records: "/features".into(),
            max_pages: MAX_PAGES,
            conditional: true,
            watermark: None,
            resume: None,
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
