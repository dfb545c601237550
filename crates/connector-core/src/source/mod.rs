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

use std::ops::Range;
use std::sync::Arc;

pub use paging::{Anchor, Next, Pager, Paging, Seen, TokenPlace};

use crate::http::{Conditional, HttpClient, Request, display_url};
use crate::page::{FetchError, Page, PageEvent, Pages, paged};
pub use crate::page::{Note, Notes, Outcome};
use crate::ports::{Cursor, PageMark, ResumePoint, StoredRequest};
use crate::signal::ItemError;
/// The time cursor's parsing and formatting (at the top level as `crate::time`; here for
/// the providers that read it as part of the toolkit).
pub use crate::time;

/// A page body, shared by the items read from it (they are byte ranges of it).
pub type Body = Arc<Vec<u8>>;

/// A request as `--explain` shows it: method, URL (the query is the config's own; query
/// credentials are added when sent, so never appear here), body.
fn shown(request: &Request) -> String {
    match &request.body {
        Some(body) => format!("POST {} {body}", request.url),
        None => format!("GET {}", request.url),
    }
}

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

/// Which stored validators a read sends, so an unchanged answer costs a 304.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revalidate {
    /// None: every page is fetched in full.
    Never,
    /// The stream's validators go with the first request, and a 304 means the whole answer
    /// is unchanged. They are kept only when one complete page was the whole answer: the
    /// rule for snapshots, whose several pages must be read whole (a 304 page would hide
    /// which ids it holds).
    Whole,
    /// Each page position keeps its URL, validators and next link from the last complete
    /// read; a page answered 304 is skipped and the read follows its stored next link. For
    /// incremental streams (GitHub counts no 304 against the rate limit).
    EachPage,
}

impl StoredRequest {
    fn of(request: &Request) -> Self {
        Self {
            url: request.url.to_string(),
            body: request.body.clone(),
        }
    }

    /// The request again, only ever on the API's own origin.
    fn request(&self, first: &Request) -> Option<Request> {
        let url = url::Url::parse(&self.url).ok()?;
        (url.origin() == first.url.origin()).then(|| Request {
            url,
            body: self.body.clone(),
            headers: first.headers.clone(),
        })
    }
}

/// One stream's read, as a provider describes it.
pub struct Read<'a, I> {
    /// The first page's request.
    pub request: Request,
    /// How pages follow one another.
    pub paging: Paging,
    /// JSON pointer to the list of records in a page (`""`: the body is the list).
    pub records: String,
    /// The records are an object's values (APIs that key records by id), not an array's
    /// elements. Either way a list of the other shape fails the page: a document of the
    /// wrong shape is not a page of odd records.
    pub keyed: bool,
    /// Most pages one read follows; reaching it marks the read partial.
    pub max_pages: u64,
    /// Which stored validators go with the requests.
    pub conditional: Revalidate,
    /// Re-anchor each next page on the last page's greatest watermark time, for offset,
    /// page-number and link reads ordered ascending by it (see [`Anchor`]).
    pub anchor: Option<Anchor>,
    /// JSON pointer to each record's time (RFC 3339, ISO 8601, epoch seconds or
    /// milliseconds), for the stream's watermark.
    pub watermark: Option<String>,
    /// The first request's lower time bound, from the stored watermark (see [`Since`]).
    pub since: Option<Since>,
    /// Keep a resume point after each page, so a read stopped mid-way continues where it
    /// was instead of starting over; it expires after this long (Jira's page tokens last 7
    /// days) and is dropped when the first request changes (a new watermark, a new config)
    /// or the server refuses it with a 4xx. `None` for snapshots, which always start over.
    pub resume: Option<std::time::Duration>,
    /// A body without the list of records means no records (Google's reports API leaves
    /// `items` out when nothing matched); otherwise it fails the page.
    pub absent_means_empty: bool,
    /// A check of each whole response before its records are read: an error fails the
    /// read (APIs that answer errors with 200, such as Slack's `{"ok": false}`).
    pub check: Option<Box<CheckPage<'a>>>,
    /// One record to its item.
    pub parse: Box<ParseRecord<'a, I>>,
}

impl<'a, I> Read<'a, I> {
    /// A read of `request` whose records `parse` turns into items, with every option at
    /// its default: one page, the body itself is the list (an array), 1,000 pages at most,
    /// no validators sent, no watermark, no resume point, no flags, no check. A provider
    /// sets what its API needs with struct update syntax:
    /// `Read { paging, records: "/data".into(), ..Read::new(request, parse) }`.
    pub fn new(
        request: Request,
        parse: impl Fn(&Body, Range<usize>, &str) -> Result<Kept<I>, ItemError> + Send + Sync + 'a,
    ) -> Self {
        Self {
            request,
            paging: Paging::None,
            records: String::new(),
            keyed: false,
            max_pages: 1000,
            conditional: Revalidate::Never,
            anchor: None,
            watermark: None,
            since: None,
            resume: None,
            absent_means_empty: false,
            check: None,
            parse: Box::new(parse),
        }
    }
}

/// The lower time bound an incremental read's first request carries, as the query
/// parameter `param` in `format`: the stored watermark less `lookback_ms` (records updated
/// while the last read ran, or with clocks a little apart, are read again; their versions
/// keep them from being published twice), or on a first sync `initial_ms` before now (no
/// bound without it). Whole seconds: APIs compare to the second at best, and an earlier
/// bound only reads a record again, never misses one.
#[derive(Debug, Clone)]
pub struct Since {
    /// The query parameter, e.g. `since`.
    pub param: String,
    /// How the time is written.
    pub format: time::TimeFormat,
    /// How far before the watermark a read starts.
    pub lookback_ms: i64,
    /// How far before now a first sync starts; `None` reads everything.
    pub initial_ms: Option<i64>,
}

impl Since {
    /// A bound `lookback_ms` before the watermark, and none on a first sync.
    pub fn new(param: impl Into<String>, format: time::TimeFormat, lookback_ms: i64) -> Self {
        Self {
            param: param.into(),
            format,
            lookback_ms,
            initial_ms: None,
        }
    }

    /// A first sync starts `initial_ms` before now.
    pub fn initially(self, initial_ms: i64) -> Self {
        Self {
            initial_ms: Some(initial_ms),
            ..self
        }
    }

    /// The parameter's value for a stored `watermark` (text, as the cursor keeps it) at
    /// `now`, or `None` for no bound; an error when the bound cannot be written in the
    /// format (the read must fail then, not quietly read everything).
    pub fn value(&self, watermark: Option<&str>, now: i64) -> Result<Option<String>, String> {
        let watermark = watermark.and_then(time::parse_millis);
        let initial = self.initial_ms.map(|ms| now - ms);
        time::read_from(watermark, self.lookback_ms, initial)
            .map(|ms| time::format_millis(ms.div_euclid(1000) * 1000, &self.format))
            .transpose()
    }
}

/// A check of one whole response body; the error says what it found.
pub type CheckPage<'a> = dyn Fn(&[u8]) -> Result<(), String> + Send + Sync + 'a;

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
    /// The read began at a resume point: it covers only the tail, so it keeps no marks.
    partial_start: bool,
    /// The last complete read's page marks, and this read's so far.
    marks: Vec<PageMark>,
    new_marks: Vec<PageMark>,
    /// The clock resume points are dated by.
    clock: &'a dyn crate::context::Clock,
}

fn fingerprint_of(request: &Request) -> String {
    format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(paging::fingerprint(request).as_bytes())
    )
}

/// The resume point that continues this read at `next`, when the read keeps them.
fn resume_point<I>(at: &At<'_, I>, next: &Request) -> Option<ResumePoint> {
    at.read.resume?;
    Some(ResumePoint {
        fingerprint: at.fingerprint.clone(),
        at_ms: at.clock.now_ms(),
        next: StoredRequest::of(next),
    })
}

/// The stored resume point of `cursor`, if it belongs to this read and has not expired.
fn resume_from(
    cursor: &Cursor,
    read: &Read<'_, impl Sized>,
    fingerprint: &str,
    now_ms: i64,
) -> Option<Request> {
    let ttl = read.resume?;
    let point = cursor.resume.as_ref()?;
    let age = now_ms.saturating_sub(point.at_ms);
    if point.fingerprint != fingerprint || age < 0 || age as u128 > ttl.as_millis() {
        return None;
    }
    point.next.request(&read.request)
}

/// The pages of `read`, through `http`, resuming with `cursor`'s validators.
pub fn read<'a, I: Send + 'a>(
    http: &'a HttpClient,
    mut read: Read<'a, I>,
    cursor: &'a Cursor,
) -> Pages<'a, I> {
    let clock = http.context().clock();
    if let Some(since) = &read.since {
        match since.value(cursor.watermark.as_deref(), clock.now_ms()) {
            Ok(Some(value)) => {
                let url = &mut read.request.url;
                url.query_pairs_mut().append_pair(&since.param, &value);
            }
            Ok(None) => {}
            Err(e) => {
                let refused =
                    FetchError::refused(&read.request.url, format!("{}: {e}", since.param));
                return crate::page::single_page(async move { Err(refused) });
            }
        }
    }
    let pager = Pager::new(read.paging.clone(), read.request.clone(), read.max_pages)
        .anchored(read.anchor.clone());
    let fingerprint = fingerprint_of(&read.request);
    let resumed = resume_from(cursor, &read, &fingerprint, clock.now_ms());
    let marks = match (read.conditional, &cursor.pages) {
        (Revalidate::EachPage, Some(marks)) => marks.clone(),
        _ => Vec::new(),
    };
    let start = At {
        resumed: resumed.is_some(),
        partial_start: resumed.is_some(),
        marks,
        new_marks: Vec::new(),
        next: Some(resumed.unwrap_or_else(|| read.request.clone())),
        read,
        pager,
        pages: 0,
        fingerprint,
        clock,
    };
    paged(start, move |at| next_page(http, cursor, at))
}

/// What fetching a page gave: a response to read, or the event the page already is.
enum Fetched<I> {
    /// A full response to the request that was sent.
    Response(Request, Box<crate::http::Response>),
    /// A 304 or a skipped page.
    Event(Box<PageEvent<I>>),
}

/// The next page of a read, or `None` when the read is over.
async fn next_page<'a, I: Send + 'a>(
    http: &'a HttpClient,
    cursor: &'a Cursor,
    mut at: At<'a, I>,
) -> Result<Option<(PageEvent<I>, At<'a, I>)>, FetchError> {
    let Some(request) = at.next.take() else {
        return Ok(None);
    };
    let (fetched, mut at) = fetch(http, cursor, at, request).await?;
    let (request, response) = match fetched {
        Fetched::Response(request, response) => (request, response),
        Fetched::Event(event) => return Ok(Some((*event, at))),
    };
    at.pages += 1;
    let single_validators = Cursor {
        etag: response.etag(),
        last_modified: response.last_modified(),
        ..Cursor::default()
    };
    let mut new_mark = PageMark {
        fingerprint: fingerprint_of(&request),
        etag: single_validators.etag.clone(),
        last_modified: single_validators.last_modified.clone(),
        next: None,
    };
    let link = response.header_list("link");
    let url = response.url.clone();
    let body: Body = Arc::new(response.body);
    if let Some(check) = &at.read.check {
        check(&body).map_err(|e| FetchError::malformed(&url, e))?;
    }
    let spans = spans_of(&at.read, &body, &url)?;
    let explain = http.context().explains();
    let mut page = parse_records(&at.read, &body, &url, &spans, explain);
    if explain {
        page.notes.request = Some(shown(&request));
    }
    let seen = Seen {
        request: &request,
        url: &url,
        link: link.as_deref(),
        body: &body,
        records: spans.len(),
        max_time: page.watermark,
    };
    at.resumed = false;
    let last = last_by_flags(&at.read, &body, &url)?;
    let next = if last {
        Next::Done
    } else {
        at.pager.next(&seen).map_err(|message| FetchError::Loop {
            url: display_url(&url),
            message,
        })?
    };
    let full = !last
        && at
            .read
            .paging
            .page_size()
            .is_some_and(|n| n > 0 && spans.len() as u64 >= n);
    go_on(&mut at, &mut page, &mut new_mark, next, full, &url, explain);
    // One complete page is the whole answer: its validators describe it. A paged or
    // partial answer has none, and keeping old ones would turn the next poll into a
    // 304 that hides what this one could not read.
    at.new_marks.push(new_mark);
    page.cursor = Some(match at.read.conditional {
        Revalidate::Whole if at.pages == 1 && at.next.is_none() && !page.partial => {
            single_validators
        }
        Revalidate::EachPage => marks_cursor(&at, page.partial),
        _ => Cursor::default(),
    });
    Ok(Some((PageEvent::Page(page), at)))
}

/// Sends a page's request with the validators it may carry; a refused resume point starts
/// the read over; a 304 is the page's event. The read comes back with what was fetched.
async fn fetch<'a, I>(
    http: &'a HttpClient,
    cursor: &'a Cursor,
    mut at: At<'a, I>,
    mut request: Request,
) -> Result<(Fetched<I>, At<'a, I>), FetchError> {
    let index = usize::try_from(at.pages).unwrap_or(usize::MAX);
    let mark = at
        .marks
        .get(index)
        .filter(|m| !at.partial_start && m.fingerprint == fingerprint_of(&request))
        .cloned();
    let validators = match at.read.conditional {
        Revalidate::Whole if at.pages == 0 && !at.resumed => cursor.clone(),
        Revalidate::EachPage => Cursor {
            etag: mark.as_ref().and_then(|m| m.etag.clone()),
            last_modified: mark.as_ref().and_then(|m| m.last_modified.clone()),
            ..Cursor::default()
        },
        _ => Cursor::default(),
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
    let without =
        || FetchError::malformed(&request.url, "304 for a page fetched without validators");
    match sent? {
        Conditional::NotModified if at.read.conditional == Revalidate::EachPage => {
            let mark = mark.ok_or_else(without)?;
            let (page, at) = skipped(at, mark)?;
            Ok((Fetched::Event(Box::new(PageEvent::Page(page))), at))
        }
        Conditional::NotModified if at.pages == 0 => {
            Ok((Fetched::Event(Box::new(PageEvent::NotModified)), at))
        }
        Conditional::NotModified => Err(without()),
        Conditional::Modified(r) => Ok((Fetched::Response(request, r), at)),
    }
}

/// The byte ranges of the page's records; a missing list is none (`absentMeans:
/// empty`) or an error that names the pointer and what the body holds instead.
fn spans_of<I>(
    read: &Read<'_, I>,
    body: &[u8],
    url: &url::Url,
) -> Result<Vec<Range<usize>>, FetchError> {
    match records::records_at(body, &read.records, read.keyed) {
        Ok(spans) => Ok(spans),
        Err(e) if e.what == records::NO_LIST => {
            if read.absent_means_empty {
                Ok(Vec::new())
            } else {
                Err(FetchError::malformed(
                    url,
                    missing_list(body, &read.records),
                ))
            }
        }
        Err(e) => Err(FetchError::malformed(
            url,
            format!("not the documented list of records: {e}"),
        )),
    }
}

/// The page of `spans`: each record parsed into an item, left out, or failed (under its
/// bytes' hash as identity), with the page's newest readable time.
fn parse_records<I>(
    read: &Read<'_, I>,
    body: &Body,
    url: &url::Url,
    spans: &[Range<usize>],
    explain: bool,
) -> Page<I> {
    let mut page = Page::of(Vec::with_capacity(spans.len()));
    for span in spans {
        let parsed = match std::str::from_utf8(&body[span.clone()]) {
            Ok(text) => (read.parse)(body, span.clone(), text),
            Err(e) => Err(ItemError::new(format!("not UTF-8: {e}"))),
        };
        if let (Ok(Kept::Item(_)), Some(pointer)) = (&parsed, &read.watermark) {
            record_time(&mut page, body, span, pointer);
        }
        if explain {
            let time = read.watermark.as_deref().and_then(|pointer| {
                let at = records::locate_in(body, span.clone(), pointer).ok()??;
                records::scalar(body, at).map(|t| t.into_owned())
            });
            let outcome = match &parsed {
                Ok(Kept::Item(_)) => Outcome::Item(page.items.len()),
                Ok(Kept::Dropped(why)) => Outcome::Dropped(why),
                Err(e) => Outcome::Failed(e.to_string()),
            };
            page.notes.records.push(Note { outcome, time });
        }
        match parsed {
            Ok(Kept::Item(item)) => page.items.push(item),
            Ok(Kept::Dropped(why)) => *page.extras.entry(why.to_owned()).or_insert(0) += 1,
            Err(e) => {
                tracing::warn!(url = %display_url(url), error = %e, "record skipped: it does not parse");
                page.failed += 1;
                // Its bytes are its identity: the same broken record fails the same way.
                page.failures.push(format!(
                    "{:016x}",
                    xxhash_rust::xxh3::xxh3_64(&body[span.clone()])
                ));
            }
        }
    }
    page
}

/// A kept record's time into the page's watermark; a time that cannot be read is
/// counted (the record is published all the same, but the watermark cannot move on it).
fn record_time<I>(page: &mut Page<I>, body: &Body, span: &Range<usize>, pointer: &str) {
    let raw = records::locate_in(body, span.clone(), pointer)
        .ok()
        .flatten()
        .and_then(|t| records::scalar(body, t));
    let time = raw.as_deref().and_then(time::parse_millis);
    if time.is_none() {
        let u = page
            .unreadable
            .get_or_insert_with(|| crate::ports::UnreadableTimes {
                pointer: pointer.to_owned(),
                first: raw.map(|r| r.into_owned()),
                count: 0,
            });
        u.count += 1;
    }
    page.watermark = page.watermark.max(time);
}

/// Whether the page's own flags end the read (`stopPath` true, `morePath` false). A
/// more-pages flag that is not in the page is a wrong pointer, not the last page: ending
/// there would be a silent partial read.
fn last_by_flags<I>(read: &Read<'_, I>, body: &[u8], url: &url::Url) -> Result<bool, FetchError> {
    let value = |pointer: &str| {
        records::locate(body, pointer)
            .ok()
            .flatten()
            .and_then(|at| body.get(at))
    };
    if let Some(more) = read.paging.more_when()
        && !matches!(value(more), Some(b"true" | b"false"))
    {
        return Err(FetchError::malformed(
            url,
            format!("no true or false at the more-pages flag {more} (morePath): check the pointer"),
        ));
    }
    let flag = |pointer: &str| value(pointer) == Some(b"true".as_slice());
    Ok(read.paging.stop_when().is_some_and(flag)
        || read.paging.more_when().is_some_and(|more| !flag(more)))
}

/// Where the read goes after `page`: done (said when a full page came without a next
/// link), the next request (with its resume point and mark), or a partial end.
fn go_on<I>(
    at: &mut At<'_, I>,
    page: &mut Page<I>,
    new_mark: &mut PageMark,
    next: Next,
    full: bool,
    url: &url::Url,
    explain: bool,
) {
    match next {
        Next::Done if full => {
            tracing::warn!(
                url = %display_url(url),
                records = page.items.len(),
                "a page as full as the page size came without a next page: if the API has more, \
                 check the pagination settings (the read is taken as complete)"
            );
            page.suspect = Some(crate::ports::PartialReason::FullPageNoNext);
        }
        Next::Done => {}
        Next::Page(next) => {
            page.resume = resume_point(at, &next);
            new_mark.next = Some(StoredRequest::of(&next));
            if explain {
                page.notes.next = Some(shown(&next));
            }
            at.next = Some(next);
        }
        Next::Stop {
            reason,
            message,
            next,
        } => stopped(at, page, reason, &message, next, &display_url(url)),
    }
}

/// A read that ended before its documented end: said with its reason, the page marked
/// partial, and at the page limit a resume point, so the next poll goes on from here
/// instead of reading the same first pages forever.
fn stopped<I>(
    at: &At<'_, I>,
    page: &mut Page<I>,
    reason: crate::ports::PartialReason,
    message: &str,
    next: Option<Request>,
    url: &str,
) {
    tracing::warn!(url, reason = reason.label(), "partial read: {message}");
    page.partial = true;
    page.partial_reason = Some(reason);
    page.resume = next.and_then(|next| resume_point(at, &next));
}

/// Says which pointer found no list, and what the body has at its top level instead, so
/// the pointer can be fixed from the message alone.
fn missing_list(body: &[u8], pointer: &str) -> String {
    let keys: Option<std::collections::BTreeMap<String, serde::de::IgnoredAny>> =
        serde_json::from_slice(body).ok();
    let shown = if pointer.is_empty() { "\"\"" } else { pointer };
    match keys {
        Some(keys) if !keys.is_empty() => {
            let mut names: Vec<&str> = keys.keys().map(String::as_str).take(20).collect();
            if keys.len() > 20 {
                names.push("…");
            }
            format!(
                "no list of records at {shown}; the body's top-level keys are {} \
                 (set records.path to the list's pointer, or records.absentMeans: \"empty\" \
                 if the API leaves the list out when nothing matched)",
                names.join(", ")
            )
        }
        Some(_) => format!("no list of records at {shown}; the body is an empty object"),
        None => format!("no list of records at {shown}"),
    }
}

/// The page a 304 stands for: nothing new on it, and the read goes on at its stored next.
fn skipped<I>(mut at: At<'_, I>, mark: PageMark) -> Result<(Page<I>, At<'_, I>), FetchError> {
    at.pages += 1;
    let next = mark.next.as_ref().and_then(|n| n.request(&at.read.request));
    let url = next
        .as_ref()
        .map(|n| display_url(&n.url))
        .unwrap_or_default();
    let mut page = Page::of(Vec::new());
    match at.pager.skip(next).map_err(|message| FetchError::Loop {
        url: url.clone(),
        message,
    })? {
        Next::Done => {}
        Next::Page(next) => {
            page.resume = resume_point(&at, &next);
            at.next = Some(next);
        }
        Next::Stop {
            reason,
            message,
            next,
        } => stopped(&at, &mut page, reason, &message, next, &url),
    }
    at.new_marks.push(mark);
    page.cursor = Some(marks_cursor(&at, page.partial));
    Ok((page, at))
}

/// The cursor a page of an each-page read commits: the stored marks until the read is
/// complete, then this read's.
fn marks_cursor<I>(at: &At<'_, I>, partial: bool) -> Cursor {
    let complete = at.next.is_none() && !partial && !at.partial_start;
    let marks = if complete { &at.new_marks } else { &at.marks };
    Cursor {
        pages: (!marks.is_empty()).then(|| marks.clone()),
        ..Cursor::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::TimeFormat;

    #[test]
    fn since_is_the_watermark_less_the_lookback_in_whole_seconds() {
        let since = Since::new("since", TimeFormat::Rfc3339, 60_000);
        let at = Some("2026-01-02T03:04:05.678Z");
        let now = 1_767_323_045_678; // 2026-01-02T03:04:05.678Z
        assert_eq!(
            since.value(at, now),
            Ok(Some("2026-01-02T03:03:05Z".to_owned())),
            "a minute back, floored to the second"
        );
        assert_eq!(
            since.value(None, now),
            Ok(None),
            "a first sync reads everything"
        );
        assert_eq!(since.value(Some("not a time"), now), Ok(None));
        let from = Since::new("from", TimeFormat::EpochMillis, 120_000).initially(3_600_000);
        assert_eq!(
            from.value(None, now),
            Ok(Some("1767319445000".to_owned())),
            "a first sync starts an hour before now"
        );
        assert_eq!(from.value(at, now), Ok(Some("1767322925000".to_owned())));
    }
}
