//! The HTTP source toolkit: what every provider (and HTTP_JSON) reads pages with, so none
//! of them writes its own paging loop, record splitter or guards.
//!
//! A provider describes one stream's read as a [`Read`]: the first request, the
//! [`Paging`], where the records are in a page (a JSON pointer), and how one record
//! becomes its item. [`read`] turns that into the stream of pages the pipeline consumes:
//! it sends each request (conditional on the first page), splits the body into records
//! without parsing the page as a whole, parses each record on its own (a bad one is
//! counted as failed and the others go on), and asks the paginator for the next request.

pub mod paging;
pub mod records;
pub mod time;

use std::ops::Range;
use std::sync::Arc;

pub use paging::{Next, Pager, Paging, Seen, TokenIn};

use crate::http::{Conditional, HttpClient, Request, display_url};
use crate::pipeline::{FetchError, Page, PageEvent, Pages, paged};
use crate::ports::Cursor;
use crate::signal::ItemError;

/// A page body, shared by the items read from it (they are byte ranges of it).
pub type Body = Arc<Vec<u8>>;

/// What a record became.
#[derive(Debug)]
pub enum Kept<I> {
    /// An item of the stream.
    Item(I),
    /// Left out on purpose (a filter the API cannot apply), counted under this name in the
    /// poll summary.
    Dropped(&'static str),
}

/// How one record becomes the provider's item: the page body, the record's byte range in
/// it, and its text (checked to be UTF-8 once, here). An error counts it as failed.
pub type ParseRecord<'a, I> =
    dyn Fn(&Body, Range<usize>, &str) -> Result<Kept<I>, ItemError> + Send + Sync + 'a;

/// One stream's read, as a provider describes it.
pub struct Read<'a, I> {
    /// The first page's request.
    pub request: Request,
    /// How pages follow one another.
    pub paging: Paging,
    /// JSON pointer to the list of records in a page (`""`: the body is the list).
    pub records: String,
    /// Most pages one read follows; reaching it marks the read partial.
    pub max_pages: u64,
    /// Send the stored validators with the first request (a 304 then ends the read).
    pub conditional: bool,
    /// JSON pointer to each record's time (RFC 3339, ISO 8601, epoch seconds or
    /// milliseconds), for the stream's watermark.
    pub watermark: Option<String>,
    /// Keep a resume point after each page, so a read stopped mid-way continues where it
    /// was instead of starting over; it expires after this long (Jira's page tokens last 7
    /// days) and is dropped when the first request changes (a new watermark, a new config)
    /// or the server refuses it with a 4xx. `None` for snapshots, which always start over.
    pub resume: Option<std::time::Duration>,
    /// One record to its item.
    pub parse: Box<ParseRecord<'a, I>>,
}

/// Where a read is between two pages.
struct At<'a, I> {
    read: Read<'a, I>,
    pager: Pager,
    next: Option<Request>,
    pages: u64,
    /// The fingerprint of the read's first request, which a resume point belongs to.
    fingerprint: String,
    /// The next request came from a stored resume point (a 4xx drops it).
    resumed: bool,
}

/// A stored resume point: the request that continues a read, and which read.
#[derive(serde::Serialize, serde::Deserialize)]
struct ResumePoint {
    fingerprint: String,
    at_ms: i64,
    url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<serde_json::Value>,
}

fn now_ms() -> i64 {
    i64::try_from(crate::pipeline::now_ms()).unwrap_or(i64::MAX)
}

fn fingerprint_of(request: &Request) -> String {
    format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(paging::fingerprint(request).as_bytes())
    )
}

/// The resume point that continues this read at `next`, when the read keeps them.
fn resume_point<I>(at: &At<'_, I>, next: &Request) -> Option<String> {
    at.read.resume?;
    let point = ResumePoint {
        fingerprint: at.fingerprint.clone(),
        at_ms: now_ms(),
        url: next.url.to_string(),
        body: next.body.clone(),
    };
    serde_json::to_string(&point).ok()
}

/// The stored resume point of `cursor`, if it belongs to this read and has not expired.
fn resume_from(cursor: &Cursor, read: &Read<'_, impl Sized>, fingerprint: &str) -> Option<Request> {
    let ttl = read.resume?;
    let point: ResumePoint = serde_json::from_str(cursor.resume.as_deref()?).ok()?;
    let age = now_ms().saturating_sub(point.at_ms);
    if point.fingerprint != fingerprint || age < 0 || age as u128 > ttl.as_millis() {
        return None;
    }
    let url = url::Url::parse(&point.url).ok()?;
    // A resume point is only ever on the API's own origin.
    (url.origin() == read.request.url.origin()).then(|| Request {
        url,
        body: point.body,
        headers: read.request.headers.clone(),
    })
}

/// The pages of `read`, through `http`, resuming with `cursor`'s validators.
pub fn read<'a, I: Send + 'a>(
    http: &'a HttpClient,
    read: Read<'a, I>,
    cursor: &'a Cursor,
) -> Pages<'a, I> {
    let pager = Pager::new(read.paging.clone(), read.request.clone(), read.max_pages);
    let fingerprint = fingerprint_of(&read.request);
    let resumed = resume_from(cursor, &read, &fingerprint);
    let start = At {
        resumed: resumed.is_some(),
        next: Some(resumed.unwrap_or_else(|| read.request.clone())),
        read,
        pager,
        pages: 0,
        fingerprint,
    };
    paged(start, move |mut at| async move {
        let Some(mut request) = at.next.take() else {
            return Ok(None);
        };
        let validators = if at.pages == 0 && at.read.conditional && !at.resumed {
            cursor.clone()
        } else {
            Cursor::default()
        };
        let sent = match http.send(&request, &validators).await {
            // The server no longer knows the resume point (an expired or invalid token):
            // start over. Other 4xx (auth, rate limits) say nothing about the point.
            Err(crate::http::HttpError::Status { status, .. })
                if at.resumed && matches!(status, 400 | 404 | 410 | 422) =>
            {
                tracing::warn!(
                    status,
                    "resume point refused; the read starts over from its first page"
                );
                at.resumed = false;
                request = at.read.request.clone();
                http.send(&request, &Cursor::default()).await
            }
            other => other,
        };
        let response = match sent? {
            Conditional::NotModified if at.pages == 0 => {
                return Ok(Some((PageEvent::NotModified, at)));
            }
            Conditional::NotModified => {
                return Err(FetchError::malformed(
                    &request.url,
                    "304 for a page fetched without validators",
                ));
            }
            Conditional::Modified(r) => r,
        };
        at.pages += 1;
        let single_validators = Cursor {
            position: None,
            etag: response.etag(),
            last_modified: response.last_modified(),
            ..Cursor::default()
        };
        let link = response.header("link");
        let url = response.url.clone();
        let body: Body = Arc::new(response.body);
        let spans = records::records_at(&body, &at.read.records).map_err(|e| {
            FetchError::malformed(&url, format!("not the documented list of records: {e}"))
        })?;
        let mut page = Page::of(Vec::with_capacity(spans.len()));
        for span in &spans {
            let parsed = match std::str::from_utf8(&body[span.clone()]) {
                Ok(text) => (at.read.parse)(&body, span.clone(), text),
                Err(e) => Err(ItemError::new(format!("not UTF-8: {e}"))),
            };
            if let (Ok(Kept::Item(_)), Some(pointer)) = (&parsed, &at.read.watermark) {
                let time = records::locate_in(&body, span.clone(), pointer)
                    .ok()
                    .flatten()
                    .and_then(|t| records::scalar(&body, t))
                    .and_then(|t| time::parse_millis(&t));
                page.watermark = page.watermark.max(time);
            }
            match parsed {
                Ok(Kept::Item(item)) => page.items.push(item),
                Ok(Kept::Dropped(why)) => *page.extras.entry(why.to_owned()).or_insert(0) += 1,
                Err(e) => {
                    tracing::warn!(url = %display_url(&url), error = %e, "record skipped: it does not parse");
                    page.failed += 1;
                    // Its bytes are its identity: the same broken record fails the same way.
                    page.failures.push(format!(
                        "{:016x}",
                        xxhash_rust::xxh3::xxh3_64(&body[span.clone()])
                    ));
                }
            }
        }
        let seen = Seen {
            request: &request,
            url: &url,
            link: link.as_deref(),
            body: &body,
            records: spans.len(),
        };
        at.resumed = false;
        let next = at.pager.next(&seen).map_err(|message| FetchError::Loop {
            url: display_url(&url),
            message,
        })?;
        match next {
            Next::Done => {}
            Next::Page(next) => {
                page.resume = resume_point(&at, &next);
                at.next = Some(next);
            }
            Next::Stop { reason, next } => {
                tracing::warn!(url = %display_url(&url), %reason, "paging stopped early; the read is partial");
                page.partial = true;
                // At the page limit the read goes on from here next time, instead of
                // reading the same first pages forever.
                page.resume = next.and_then(|next| resume_point(&at, &next));
            }
        }
        // One complete page is the whole answer: its validators describe it. A paged or
        // partial answer has none, and keeping old ones would turn the next poll into a
        // 304 that hides what this one could not read.
        let single = at.pages == 1 && at.next.is_none() && !page.partial;
        page.cursor = Some(if single {
            single_validators
        } else {
            Cursor::default()
        });
        Ok(Some((PageEvent::Page(page), at)))
    })
}
