//! HTTP for the NWS alerts API: one request helper, filters, paging and caps.
//!
//! `/alerts/active` answers with the whole current set in one response; the history
//! endpoint pages with `pagination.next`, which has no reliable last-page marker, so paging
//! stops on an empty page, a missing link, a link to another host, a repeated link, or the
//! page limit. Only an `/alerts/active` read that ended naturally counts as the complete
//! snapshot; the history window is never one (leaving it means nothing).

use connector_core::Cursor;
use connector_core::http::{Conditional, HttpClient, display_url};
use connector_core::pipeline::{FetchError, Page, PageEvent, Pages, paged};
use url::Url;

use crate::schema::{Alert, AlertPage};

/// Guard against a server that keeps handing out `next` links.
const MAX_PAGES: u64 = 50;

/// Where a read is: the next page to fetch, and how many were fetched.
struct Reading {
    url: Option<Url>,
    pages: u64,
}

/// A client for one connector's query.
pub struct NoaaClient {
    http: HttpClient,
    first_page: Url,
    actual_only: bool,
    snapshot: bool,
}

impl NoaaClient {
    /// `first_page` carries the filters, which are re-added to `next` links that drop them.
    /// `snapshot` says the endpoint returns the whole current set (`/alerts/active…`), as
    /// opposed to the history window of `/alerts`, where absence means nothing.
    pub fn new(http: HttpClient, first_page: Url, actual_only: bool, snapshot: bool) -> Self {
        Self {
            http,
            first_page,
            actual_only,
            snapshot,
        }
    }

    /// The first page's URL, with the filters.
    pub fn first_page(&self) -> &Url {
        &self.first_page
    }

    /// Reads the query page by page. Validators are sent with the first page only, and
    /// kept only when the answer was one complete page: a paged or partial answer has no
    /// single ETag, and keeping one would turn the next poll into a 304 that hides what
    /// this one could not read.
    pub fn pages<'a>(&'a self, cursor: &'a Cursor) -> Pages<'a, Alert> {
        let start = Reading {
            url: Some(self.first_page.clone()),
            pages: 0,
        };
        paged(start, move |mut at| async move {
            let Some(url) = at.url.take() else {
                return Ok(None);
            };
            let sent = if at.pages == 0 {
                cursor
            } else {
                &Cursor::default()
            };
            let resp = match self.http.get_conditional(&url, sent).await? {
                Conditional::NotModified if at.pages == 0 => {
                    return Ok(Some((PageEvent::NotModified, at)));
                }
                Conditional::NotModified => {
                    return Err(FetchError::malformed(
                        &url,
                        "304 for a page fetched without validators",
                    ));
                }
                Conditional::Modified(r) => r,
            };
            at.pages += 1;
            let validators = Cursor {
                position: None,
                etag: resp.etag(),
                last_modified: resp.last_modified(),
            };
            // The body is moved, not copied: the alerts point into it.
            let parsed = AlertPage::parse(resp.body).map_err(|e| {
                FetchError::malformed(&url, format!("not an alerts FeatureCollection: {e}"))
            })?;
            let empty = parsed.is_empty();
            let mut page = Page::of(Vec::with_capacity(parsed.alerts.len()));
            page.partial = !self.snapshot;
            for alert in parsed.alerts {
                match alert {
                    Ok(alert) if self.actual_only && !alert.is_actual() => {
                        *page
                            .extras
                            .entry("nonActualDropped".to_owned())
                            .or_insert(0) += 1;
                    }
                    Ok(alert) => page.items.push(alert),
                    Err(e) => {
                        // Publishing the rest beats blocking every alert on one odd one;
                        // the read is no longer the whole set, so nothing is pruned.
                        tracing::warn!(url = %display_url(&url), error = %e, "alert skipped: unexpected shape");
                        *page
                            .extras
                            .entry("malformedSkipped".to_owned())
                            .or_insert(0) += 1;
                        page.partial = true;
                    }
                }
            }
            at.url = match parsed.next {
                Some(next) if !empty => match self.next_page(&url, &next) {
                    Some(_) if at.pages >= MAX_PAGES => {
                        tracing::warn!(
                            pages = at.pages,
                            "page limit reached; later pages are not read (narrow the filters)"
                        );
                        page.partial = true;
                        None
                    }
                    Some(next) => Some(next),
                    None => {
                        page.partial = true;
                        None
                    }
                },
                _ => None,
            };
            // One complete page is the whole answer: its validators describe it.
            let single = at.pages == 1 && at.url.is_none();
            page.cursor = Some(if single {
                validators
            } else {
                Cursor::default()
            });
            Ok(Some((PageEvent::Page(page), at)))
        })
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
