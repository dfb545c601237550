//! HTTP for the NWS alerts API: one request helper, filters, paging and caps.
//!
//! `/alerts/active` answers with the whole current set in one response; the history
//! endpoint pages with `pagination.next`, which has no reliable last-page marker, so paging
//! stops on an empty page, a missing link, a link to another host, a repeated link, or the
//! page limit. Only a read that ended naturally counts as the complete snapshot.

use connector_core::Cursor;
use connector_core::http::{Conditional, HttpClient};
use connector_core::pipeline::{FetchError, FetchOutcome, Fetched};
use url::Url;

use crate::schema::{Alert, FeatureCollection};

/// Guard against a server that keeps handing out `next` links.
const MAX_PAGES: u64 = 50;

/// A client for one connector's query.
pub struct NoaaClient {
    http: HttpClient,
    first_page: Url,
    max_alerts: Option<usize>,
    actual_only: bool,
}

impl NoaaClient {
    /// `filters` are sent on the first page and re-added to `next` links that drop them.
    pub fn new(
        http: HttpClient,
        first_page: Url,
        max_alerts: Option<usize>,
        actual_only: bool,
    ) -> Self {
        Self {
            http,
            first_page,
            max_alerts,
            actual_only,
        }
    }

    /// The first page's URL, with the filters.
    pub fn first_page(&self) -> &Url {
        &self.first_page
    }

    /// Fetches every page of the query. Validators are sent with the first page only, and
    /// kept only when the answer was a single page (a paged answer has no single ETag).
    pub async fn fetch_alerts(&self, cursor: &Cursor) -> Result<FetchOutcome<Alert>, FetchError> {
        let mut url = self.first_page.clone();
        let mut alerts = Vec::new();
        let mut extras = std::collections::BTreeMap::new();
        let mut pages = 0u64;
        let mut complete = true;
        let mut validators = Cursor::default();
        loop {
            let sent = if pages == 0 {
                cursor
            } else {
                &Cursor::default()
            };
            let resp = match self.http.get_conditional(&url, sent).await? {
                Conditional::NotModified if pages == 0 => return Ok(FetchOutcome::NotModified),
                Conditional::NotModified => {
                    return Err(FetchError::malformed(
                        &url,
                        "304 for a page fetched without validators",
                    ));
                }
                Conditional::Modified(r) => r,
            };
            pages += 1;
            if pages == 1 {
                validators.etag = resp.etag();
                validators.last_modified = resp.last_modified();
            }
            let page: FeatureCollection = serde_json::from_slice(&resp.body).map_err(|e| {
                FetchError::malformed(&url, format!("not an alerts FeatureCollection: {e}"))
            })?;
            let empty = page.features.is_empty();
            for raw in page.features {
                match Alert::parse(raw) {
                    Ok(alert) if self.actual_only && !alert.is_actual() => {
                        *extras.entry("nonActualDropped".to_owned()).or_insert(0) += 1;
                    }
                    Ok(alert) => alerts.push(alert),
                    Err(e) => {
                        // Publishing the rest beats blocking every alert on one odd one;
                        // the read is no longer the whole set, so nothing is pruned.
                        tracing::warn!(url = %connector_core::http::display_url(&url), error = %e, "alert skipped: unexpected shape");
                        *extras.entry("malformedSkipped".to_owned()).or_insert(0) += 1;
                        complete = false;
                    }
                }
            }
            let has_next = page
                .pagination
                .as_ref()
                .and_then(|p| p.next.as_ref())
                .is_some();
            if let Some(max) = self.max_alerts
                && alerts.len() >= max
            {
                // A capped read is not the whole set: nothing may be pruned from it.
                if alerts.len() > max || (has_next && !empty) {
                    complete = false;
                    extras.insert("capped".to_owned(), 1);
                }
                alerts.truncate(max);
                break;
            }
            let next = match page.pagination.and_then(|p| p.next) {
                Some(next) if !empty => next,
                _ => break,
            };
            let Some(next) = self.next_page(&url, &next) else {
                complete = false;
                break;
            };
            if pages >= MAX_PAGES {
                tracing::warn!(pages, "page limit reached; the rest is read next poll");
                complete = false;
                break;
            }
            url = next;
        }
        let cursor = if pages == 1 {
            validators
        } else {
            Cursor::default()
        };
        Ok(FetchOutcome::Fetched(Fetched {
            items: alerts,
            cursor,
            complete,
            pages,
            extras,
        }))
    }

    /// The next page to read, or `None` to stop: a link to another host is not followed
    /// (nothing secret is sent to NWS, but a foreign host is not the API), nor one that
    /// repeats the current page. Filters the link dropped are added back.
    fn next_page(&self, current: &Url, next: &str) -> Option<Url> {
        let mut next = current.join(next).ok()?;
        if !self.http.is_trusted(&next) {
            tracing::warn!(next = %connector_core::http::display_url(&next), "pagination link to another host ignored");
            return None;
        }
        if next == *current {
            return None;
        }
        let present: Vec<String> = next
            .query_pairs()
            .map(|(k, _)| k.split('[').next().unwrap_or_default().to_owned())
            .collect();
        let missing: Vec<(String, String)> = self
            .first_page
            .query_pairs()
            .filter(|(k, _)| !present.iter().any(|p| p == k))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if !missing.is_empty() {
            next.query_pairs_mut().extend_pairs(missing);
        }
        Some(next)
    }
}
