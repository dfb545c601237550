//! HTTP for the NWS alerts API: one request helper, filters, paging and caps.
//!
//! `/alerts/active` answers with the whole current set in one response; the history
//! endpoint pages with `pagination.next`, which has no reliable last-page marker, so paging
//! stops on an empty page, a missing link, a link to another host, a repeated link, or the
//! page limit. Only an `/alerts/active` read that ended naturally counts as the complete
//! snapshot; the history window is never one (leaving it means nothing).

use connector_core::Cursor;
use connector_core::http::{Conditional, HttpClient, display_url};
use connector_core::pipeline::{FetchError, FetchOutcome, Fetched};
use url::Url;

use crate::schema::{Alert, AlertPage};

/// Guard against a server that keeps handing out `next` links.
const MAX_PAGES: u64 = 50;

/// A client for one connector's query.
pub struct NoaaClient {
    http: HttpClient,
    first_page: Url,
    max_alerts: Option<usize>,
    actual_only: bool,
    snapshot: bool,
}

impl NoaaClient {
    /// `first_page` carries the filters, which are re-added to `next` links that drop them.
    /// `snapshot` says the endpoint returns the whole current set (`/alerts/active…`), as
    /// opposed to the history window of `/alerts`, where absence means nothing.
    pub fn new(
        http: HttpClient,
        first_page: Url,
        max_alerts: Option<usize>,
        actual_only: bool,
        snapshot: bool,
    ) -> Self {
        Self {
            http,
            first_page,
            max_alerts,
            actual_only,
            snapshot,
        }
    }

    /// The first page's URL, with the filters.
    pub fn first_page(&self) -> &Url {
        &self.first_page
    }

    /// Fetches every page of the query. Validators are sent with the first page only, and
    /// kept only when the answer was one complete page: a paged or partial answer has no
    /// single ETag, and keeping one would turn the next poll into a 304 that hides what
    /// this one could not read.
    pub async fn fetch_alerts(&self, cursor: &Cursor) -> Result<FetchOutcome<Alert>, FetchError> {
        let mut url = self.first_page.clone();
        let mut alerts = Vec::new();
        let mut extras = std::collections::BTreeMap::new();
        let mut pages = 0u64;
        let mut complete = self.snapshot;
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
            // The body is moved, not copied: the alerts point into it.
            let page = AlertPage::parse(resp.body).map_err(|e| {
                FetchError::malformed(&url, format!("not an alerts FeatureCollection: {e}"))
            })?;
            let empty = page.is_empty();
            let kept = page.alerts.into_iter().filter_map(|parsed| match parsed {
                Ok(alert) if self.actual_only && !alert.is_actual() => {
                    *extras.entry("nonActualDropped".to_owned()).or_insert(0) += 1;
                    None
                }
                Ok(alert) => Some(alert),
                Err(e) => {
                    // Publishing the rest beats blocking every alert on one odd one;
                    // the read is no longer the whole set, so nothing is pruned.
                    tracing::warn!(url = %display_url(&url), error = %e, "alert skipped: unexpected shape");
                    *extras.entry("malformedSkipped".to_owned()).or_insert(0) += 1;
                    complete = false;
                    None
                }
            });
            if alerts.is_empty() {
                // The page's own list, reused in place: no second list of every alert.
                alerts = kept.collect();
            } else {
                alerts.extend(kept);
            }
            let next = match page.next {
                Some(next) if !empty => next,
                _ => break,
            };
            let Some(next) = self.next_page(&url, &next) else {
                complete = false;
                break;
            };
            if pages >= MAX_PAGES {
                tracing::warn!(
                    pages,
                    "page limit reached; later pages are not read (narrow the filters)"
                );
                complete = false;
                break;
            }
            url = next;
        }
        let cursor = if pages == 1 && complete {
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
            change_limit: self.max_alerts,
        }))
    }

    /// The next page to read, or `None` to stop: a link to another host is not followed
    /// (nothing secret is sent to NWS, but a foreign host is not the API), nor one that
    /// repeats the current page. Filters the link dropped are added back.
    fn next_page(&self, current: &Url, next: &str) -> Option<Url> {
        let mut next = current.join(next).ok()?;
        if !self.http.is_trusted(&next) {
            tracing::warn!(next = %display_url(&next), "pagination link to another host ignored");
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
