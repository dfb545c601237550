//! The declarative read: a [`ReadSpec`] turned into pages of records and their signals.
//!
//! Every stream whose request, paging, records and signal a description can say runs
//! here: `HTTP_JSON` is this engine and nothing more, and a typed provider uses it for
//! the reads its description covers. Placeholders are filled per poll (`{{cursor}}` from
//! the stream's watermark less the lookback, `{{now}}`), a long gap is walked window by
//! window (`maxWindow`), an ascending read paged by link, offset or number re-anchors on
//! the last page's newest time, and each record's id and version come from pointers (or
//! a hash of its content).

use std::borrow::Cow;
use std::ops::Range;
use std::time::Duration;

use crate::context::ConnectorContext;
use crate::detect::content_version;
use crate::http::{HeaderName, HeaderValue, HttpClient, Request};
use crate::pipeline::{CreateError, FetchError, PageEvent, Pages, Partitioning, StreamSpec};
use crate::record::Record;
use crate::source::paging::{set_pointer, set_query};
use crate::source::records::{locate, locate_in, scalar};
use crate::source::{self, Body, Kept, Paging, Read, Revalidate, TokenPlace};
use crate::time::{TimeFormat, format_millis, parse_millis, read_from};
use crate::{Cursor, Description, ItemError, Severity};
use futures_util::{StreamExt, stream};
use serde_json::Value;
use serde_json::value::RawValue;
use url::Url;

use super::catalog::SEGMENT;
use super::template::{Context, Part, Template, sample_url};
use super::{AbsentMeans, Method, Order, ReadSpec, RecordsAs};
use percent_encoding::utf8_percent_encode;

/// The span of time one read covers (UNIX milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    /// `{{cursor}}`: none on a first sync without `initial`.
    start: Option<i64>,
    /// `{{now}}`.
    end: i64,
}

/// A read walking a long gap window by window (see [`SpecReader::windows`]).
struct Walk<'a> {
    /// The pages of the window being read.
    inner: Option<Pages<'a, Record>>,
    /// The cursor as stored, for the first window (validators, resume point).
    cursor: &'a Cursor,
    /// The watermark the next window starts from.
    from: Option<i64>,
    /// The end of the window being read.
    end: i64,
    /// When the poll began: no window ends later.
    poll_now: i64,
    /// Windows started.
    started: u32,
    /// A page of this window was partial: the window moves nothing.
    partial: bool,
    /// Nothing more to read this poll.
    over: bool,
    /// The partition's parent values (a parent/child read's child).
    parent: Option<Parent>,
}

/// A parent record's values by pointer, as the child request takes them.
type Parent = serde_json::Map<String, Value>;

/// A [`ReadSpec`] ready to read: its client (with the spec's auth) and its templates
/// parsed once.
pub struct SpecReader {
    http: HttpClient,
    config: ReadSpec,
    url: Template,
    /// The request's query and the signal's templates, parsed once (the config was
    /// checked at load, so they parse).
    query: Vec<(String, Template)>,
    title: Template,
    /// `signal.url` as a template; `None` when it is a pointer (or absent).
    link: Option<Template>,
    /// A parent/child read's parents.
    parents: Option<Box<SpecReader>>,
    /// On the parents' reader: the pointers whose values the child request takes, which
    /// make each parent's version.
    takes: Vec<String>,
}

impl SpecReader {
    /// The values of `{{cursor}}` and `{{now}}` for a poll from `cursor`.
    fn placeholders(&self, cursor: &Cursor) -> (Option<String>, String) {
        let now = self.http.context().clock().now_ms();
        let watermark = cursor.watermark.as_deref().and_then(parse_millis);
        self.rendered(&self.window(watermark, now))
    }

    /// The span a read from `watermark` covers at `now`: from the watermark less the
    /// lookback (or the initial time) to now, or to `maxWindow` after its start.
    fn window(&self, watermark: Option<i64>, now: i64) -> Window {
        let Some(inc) = &self.config.incremental else {
            return Window {
                start: None,
                end: now,
            };
        };
        let lookback = i64::try_from(inc.lookback_ms).unwrap_or(i64::MAX);
        let start = read_from(watermark, lookback, inc.initial_ms(now));
        let end = match (start, inc.max_window_ms()) {
            (Some(s), Some(w)) => s.saturating_add(w).min(now),
            _ => now,
        };
        Window { start, end }
    }

    /// `{{cursor}}` and `{{now}}` for a window: its start (none on a first sync without
    /// `initial`) and its end.
    fn rendered(&self, window: &Window) -> (Option<String>, String) {
        let format = self
            .config
            .incremental
            .as_ref()
            .map_or(TimeFormat::Rfc3339, |i| i.time_format());
        let now = format_millis(window.end, &format).unwrap_or_default();
        let value = window.start.and_then(|s| format_millis(s, &format).ok());
        (value, now)
    }

    /// The page size a link or token read asks for: `pagination.pageSize`, else a fixed
    /// `limit`-like query parameter (`limit`, `per_page`, `page_size`, `pageSize`, `size`,
    /// `count`, `maxResults`), so a full page without a next link can be said.
    fn page_size(&self) -> Option<u64> {
        if !matches!(
            self.config.pagination,
            Paging::LinkHeader { .. } | Paging::NextUrl { .. } | Paging::Cursor { .. }
        ) {
            return None;
        }
        const NAMES: [&str; 8] = [
            "limit",
            "per_page",
            "perPage",
            "page_size",
            "pageSize",
            "size",
            "count",
            "maxResults",
        ];
        self.config.pagination.page_size().or_else(|| {
            self.query.iter().find_map(|(name, t)| {
                if !NAMES.contains(&name.as_str()) {
                    return None;
                }
                t.render(|_| None)?.parse().ok().filter(|n: &u64| *n > 0)
            })
        })
    }

    /// The first request of a poll from `cursor`.
    fn first_request(&self, cursor: &Cursor, parent: Option<&Parent>) -> Result<Request, String> {
        let now = self.http.context().clock().now_ms();
        let watermark = cursor.watermark.as_deref().and_then(parse_millis);
        self.request_for(&self.window(watermark, now), parent)
    }

    /// The first request of a read over `window` (of a partition: with its parent's
    /// values, percent-encoded in the URL).
    fn request_for(&self, window: &Window, parent: Option<&Parent>) -> Result<Request, String> {
        let (value, now) = self.rendered(window);
        let of_parent = |p: &str| parent.and_then(|m| m.get(p)).and_then(Value::as_str);
        let fill = |p: &Part| match p {
            Part::Cursor => value.clone(),
            Part::Now => Some(now.clone()),
            Part::Parent(p) => of_parent(p).map(str::to_owned),
            _ => None,
        };
        let fill_url = |p: &Part| match p {
            Part::Parent(p) => of_parent(p).map(|v| utf8_percent_encode(v, SEGMENT).to_string()),
            other => fill(other),
        };
        let url = self
            .url
            .render(fill_url)
            .ok_or("request.url needs a value for {{cursor}} or {{parent:…}}")?;
        let mut url = Url::parse(&url).map_err(|e| format!("request.url: {e}"))?;
        for (name, t) in &self.query {
            // A whole-value placeholder without a value is left out (a first sync).
            if let Some(v) = t.render(fill) {
                url.query_pairs_mut().append_pair(name, &v);
            }
        }
        let page_params = self.config.pagination.first_params();
        for (name, v) in page_params {
            set_query(&mut url, &name, &v);
        }
        let body = match (self.config.request.method, &self.config.request.body) {
            (Method::Post, body) => {
                let mut body = body
                    .clone()
                    .unwrap_or_else(|| Value::Object(Default::default()));
                let numeric = self.config.incremental.as_ref().is_some_and(|i| {
                    matches!(
                        i.time_format(),
                        crate::time::TimeFormat::EpochSeconds
                            | crate::time::TimeFormat::EpochMillis
                    )
                });
                fill_body(&mut body, &fill, numeric)?;
                if let Paging::Cursor {
                    param,
                    place: TokenPlace::Body,
                    ..
                } = &self.config.pagination
                {
                    // `null` on the first page, as GraphQL APIs expect.
                    set_pointer(&mut body, param, Value::Null);
                }
                Some(body)
            }
            (Method::Get, _) => None,
        };
        let mut headers = Vec::new();
        for (name, value) in self.config.request.headers.iter() {
            let name = HeaderName::try_from(name).map_err(|e| format!("request.headers: {e}"))?;
            let mut value = HeaderValue::try_from(value)
                .map_err(|_| "request.headers: a value that is not a header value".to_owned())?;
            if !crate::config::is_shown_header(name.as_str()) {
                value.set_sensitive(true);
            }
            headers.push((name, value));
        }
        Ok(Request { url, body, headers })
    }

    /// An ascending incremental read paged by link, offset or page number re-anchors
    /// each next page on the last page's newest time, through the query parameter that
    /// holds `{{cursor}}` (GitHub's `since`, or a query clause): a record updated mid-read
    /// moves to the end of the order and would otherwise make a page number skip another.
    fn anchor(&self, parent: Option<&Parent>) -> Option<source::Anchor> {
        let c = &self.config;
        let incremental = c.incremental.as_ref()?;
        if c.order != Order::Asc
            || !matches!(
                c.pagination,
                Paging::LinkHeader { .. } | Paging::Offset { .. } | Paging::PageNumber { .. }
            )
        {
            return None;
        }
        // The anchor marks where the time goes with `{time}`: a parent value holding that
        // text would be taken for it, so such a partition pages by its links instead.
        if parent.is_some_and(|m| {
            m.values()
                .any(|v| v.as_str().is_some_and(|v| v.contains("{time}")))
        }) {
            return None;
        }
        let (param, template) = self.query.iter().find_map(|(name, t)| {
            if !t.uses_cursor() {
                return None;
            }
            // Inside a longer value (a query clause) the time goes where {{cursor}} was.
            let template = (!t.is_one_placeholder()).then(|| {
                let (_, now) = self.placeholders(&Cursor::default());
                t.render(|p| match p {
                    Part::Cursor => Some("{time}".to_owned()),
                    Part::Now => Some(now.clone()),
                    // A partition's clause keeps its parent's value (Jira's `project = X`).
                    Part::Parent(p) => parent
                        .and_then(|m| m.get(p))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    Part::Pointer(_) | Part::Text(_) => None,
                })
            });
            Some((name.clone(), template.flatten()))
        })?;
        Some(source::Anchor {
            param,
            format: incremental.time_format(),
            template,
        })
    }

    fn read(&self, request: Request, parent: Option<&Parent>) -> Read<'_, Record> {
        let c = &self.config;
        let paging = c.pagination.clone().with_page_size(self.page_size());
        let fail = c.fail.clone();
        // The list's presence and shape are the core reader's to check (`keyed`).
        let check = move |body: &[u8]| -> Result<(), String> {
            // Only the values the predicates name are parsed: one odd record must fail
            // alone, not the page.
            for p in &fail {
                let found = locate(body, p.pointer())
                    .ok()
                    .flatten()
                    .and_then(|at| serde_json::from_slice::<Value>(&body[at]).ok());
                if p.holds(found.as_ref()) {
                    return Err(format!(
                        "the response matches a fail predicate on {}",
                        p.pointer()
                    ));
                }
            }
            Ok(())
        };
        let (id, version, skip) = (
            c.records.id.clone(),
            c.records.version.clone(),
            c.records.skip.clone(),
        );
        let takes = self.takes.clone();
        let parse =
            move |body: &Body, span: Range<usize>, text: &str| -> Result<Kept<Record>, ItemError> {
                if !skip.is_empty() {
                    let record: Value = serde_json::from_str(text).map_err(ItemError::new)?;
                    if skip.iter().any(|p| p.holds(record.pointer(p.pointer()))) {
                        return Ok(Kept::Dropped("skipped"));
                    }
                }
                let value_at = |pointer: &str| {
                    locate_in(body, span.clone(), pointer)
                        .ok()
                        .flatten()
                        .and_then(|at| scalar(body, at).map(Cow::into_owned))
                };
                let id = value_at(&id)
                    .filter(|i| !i.is_empty())
                    .ok_or_else(|| ItemError::new(format!("no id at {id}")))?;
                let version = match &version {
                    // A parent: what the child request takes of it.
                    _ if !takes.is_empty() => parent_values(&takes, value_at)?,
                    Some(p) => {
                        value_at(p).ok_or_else(|| ItemError::new(format!("no version at {p}")))?
                    }
                    None => {
                        let raw: &RawValue = serde_json::from_str(text).map_err(ItemError::new)?;
                        content_version(raw)
                    }
                };
                Ok(Kept::Item(Record::new(body, span, &id, version)))
            };
        Read {
            paging,
            records: c.records.path.clone(),
            max_pages: c.limits.max_pages,
            conditional: if c.snapshot {
                Revalidate::Whole
            } else {
                Revalidate::EachPage
            },
            anchor: self.anchor(parent),
            watermark: c.incremental.as_ref().map(|i| i.field.clone()),
            resume: (c.order == Order::Desc && !c.snapshot).then_some(Duration::from_secs(3600)),
            absent_means_empty: c.records.absent_means == AbsentMeans::Empty,
            keyed: c.records.records_as == RecordsAs::Values,
            check: (!c.fail.is_empty()).then(|| Box::new(check) as Box<_>),
            ..Read::new(request, parse)
        }
    }
}

/// A parent's version: the values the child request takes of it, by pointer, as a JSON
/// object; a parent without one of them fails (its children could not be asked for).
fn parent_values(
    takes: &[String],
    value_at: impl Fn(&str) -> Option<String>,
) -> Result<String, ItemError> {
    let mut values = Parent::new();
    for pointer in takes {
        let value = value_at(pointer).filter(|v| !v.is_empty()).ok_or_else(|| {
            ItemError::new(format!("no value at {pointer} for the child request"))
        })?;
        // In a URL path, `.` and `..` (even percent-encoded) move up a segment: such a
        // parent would read another resource.
        if matches!(value.as_str(), "." | "..") {
            return Err(ItemError::new(format!(
                "the value at {pointer} is {value:?}, which would move the child request up its URL path"
            )));
        }
        values.insert(pointer.clone(), Value::String(value));
    }
    Ok(Value::Object(values).to_string())
}

/// Fills the placeholders of every string in `body`; a whole-value one without a value
/// becomes `null`.
/// Fills the placeholders of a JSON body. A field whose whole value is one placeholder
/// takes the type of the time format: with `epochSeconds` or `epochMillis` a JSON number
/// (AWS refuses `"1790000000"` where it wants `1790000000`), unless written
/// `{{cursor|string}}`.
impl SpecReader {
    /// A read of the gap from the watermark to now in windows of at most `maxWindow`:
    /// each window's pages, then (when every page of it arrived and none was partial) an
    /// empty page carrying the window's end as its time, so the watermark becomes
    /// min(window end, poll start) even when the window held nothing. A partial window
    /// moves nothing and ends the poll's walk; at most `maxWindowsPerPoll` windows a poll.
    fn windows<'a>(&'a self, cursor: &'a Cursor, parent: Option<Parent>) -> Pages<'a, Record> {
        let poll_now = self.http.context().clock().now_ms();
        let walk = Walk {
            inner: None,
            cursor,
            from: cursor.watermark.as_deref().and_then(parse_millis),
            end: poll_now,
            poll_now,
            started: 0,
            partial: false,
            over: false,
            parent,
        };
        stream::unfold(walk, move |mut walk| async move {
            loop {
                if walk.over {
                    return None;
                }
                let Some(inner) = walk.inner.as_mut() else {
                    if let Err(e) = self.next_window(&mut walk).await {
                        walk.over = true;
                        return Some((Err(e), walk));
                    }
                    continue;
                };
                match inner.next().await {
                    Some(Ok(PageEvent::Page(page))) => {
                        walk.partial |= page.partial;
                        return Some((Ok(PageEvent::Page(page)), walk));
                    }
                    Some(Err(e)) => {
                        walk.over = true;
                        return Some((Err(e), walk));
                    }
                    Some(Ok(other)) => return Some((Ok(other), walk)),
                    None => {
                        walk.inner = None;
                        if walk.partial {
                            return None;
                        }
                        let reached = walk.end.min(walk.poll_now);
                        walk.from = Some(reached);
                        let budget = self
                            .config
                            .incremental
                            .as_ref()
                            .map_or(1, |i| i.max_windows_per_poll);
                        walk.over = reached >= walk.poll_now || walk.started >= budget;
                        let mut done = crate::pipeline::Page::of(Vec::new());
                        done.watermark = Some(reached);
                        return Some((Ok(PageEvent::Page(done)), walk));
                    }
                }
            }
        })
        .boxed()
    }

    /// Starts the next window of `walk`.
    async fn next_window<'a>(&'a self, walk: &mut Walk<'a>) -> Result<(), FetchError> {
        let window = self.window(walk.from, walk.poll_now);
        let request = self
            .request_for(&window, walk.parent.as_ref())
            .map_err(|e| FetchError::refused(self.http.base(), e))?;
        walk.end = window.end;
        walk.partial = false;
        // The first window reads with the stored cursor (its validators and resume point
        // belong to this first request); later ones start afresh.
        let cursor = if walk.started == 0 {
            walk.cursor
        } else {
            &EMPTY_CURSOR
        };
        walk.started += 1;
        let read = self.read(request, walk.parent.as_ref());
        walk.inner = Some(source::read(&self.http, read, cursor));
        Ok(())
    }
}

/// The cursor of a window after the first: nothing stored for it.
static EMPTY_CURSOR: Cursor = Cursor {
    etag: None,
    last_modified: None,
    watermark: None,
    resume: None,
    pending: None,
    pages: None,
    partitions: None,
};

fn fill_body(
    body: &mut Value,
    fill: &impl Fn(&Part) -> Option<String>,
    numeric: bool,
) -> Result<(), String> {
    match body {
        Value::String(s) => {
            let squeezed: String = s.chars().filter(|c| !c.is_whitespace()).collect();
            let as_string = squeezed.ends_with("|string}}");
            let t = Template::parse(s, Context::Request)?;
            let whole = t.is_one_placeholder();
            *body = match t.render(fill) {
                None => Value::Null,
                Some(text) if numeric && whole && !as_string => text
                    .parse::<i64>()
                    .map_or(Value::String(text), |n| Value::Number(n.into())),
                Some(text) => Value::String(text),
            };
        }
        Value::Array(items) => {
            for v in items {
                fill_body(v, fill, numeric)?;
            }
        }
        Value::Object(map) => {
            for v in map.values_mut() {
                fill_body(v, fill, numeric)?;
            }
        }
        _ => {}
    }
    Ok(())
}

impl SpecReader {
    /// The reader of `config` for connector `common`: its client on the request URL's
    /// origin, with the spec's auth and body cap.
    pub fn new(config: ReadSpec, common: &ConnectorContext) -> Result<Self, CreateError> {
        let url = Template::parse(&config.request.url, Context::Request).map_err(CreateError)?;
        let base = sample_url(&config.request.url)
            .map_err(|e| CreateError(format!("request.url: {e}")))?;
        let mut root = base.clone();
        root.set_path("/");
        root.set_query(None);
        let mut http = HttpClient::builder(root).connector_settings(common);
        if let Some(cap) = config.limits.max_body_bytes {
            http = http.max_body_bytes(usize::try_from(cap).unwrap_or(usize::MAX));
        }
        if let Some(auth) = config.auth.auth(common)? {
            http = http.auth(auth);
        }
        let http = http.build()?;
        let query = config
            .request
            .query
            .iter()
            .map(|(name, text)| Ok((name.clone(), Template::parse(text, Context::Request)?)))
            .collect::<Result<_, String>>()
            .map_err(CreateError)?;
        let title = Template::parse(&config.signal.title, Context::Record).map_err(CreateError)?;
        let link = match &config.signal.url {
            Some(u) if u.contains("{{") => {
                Some(Template::parse(u, Context::Record).map_err(CreateError)?)
            }
            _ => None,
        };
        let parents = match config.parent_read() {
            Some(read) => {
                let mut parents = SpecReader::new(read, common)?;
                parents.takes = config.parent_pointers();
                Some(Box::new(parents))
            }
            None => None,
        };
        Ok(Self {
            http,
            config,
            url,
            query,
            title,
            link,
            parents,
            takes: Vec::new(),
        })
    }

    /// The spec it reads.
    pub fn spec(&self) -> &ReadSpec {
        &self.config
    }

    /// The client it reads with.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The stream the spec describes: its kind, a snapshot or not, ascending when an
    /// incremental read comes oldest first.
    pub fn stream(&self) -> StreamSpec {
        let c = &self.config;
        let mut stream = StreamSpec::main(c.signal.kind.clone(), c.snapshot);
        stream.partitions = c.parent.as_ref().map(|p| Partitioning {
            incremental_parents: p.incremental.is_some(),
            full_read_every_polls: p.parent_full_read_every.polls,
            full_read_every_ms: p
                .parent_full_read_every
                .hours
                .map(|h| u64::from(h) * 3_600_000),
            max_partitions: p.max_partitions as usize,
            max_per_poll: p.max_partitions_per_poll.map(|m| m as usize),
        });
        match (&c.incremental, c.order) {
            (Some(_), Order::Asc) => stream.ascending(),
            (Some(_), _) => stream.incremental(),
            (None, _) => stream,
        }
    }

    /// The parents of a parent/child read from `cursor` (none without `parent`).
    pub fn parents<'a>(&'a self, cursor: &'a Cursor) -> Pages<'a, Record> {
        match &self.parents {
            Some(parents) => parents.pages(&StreamSpec::main("parent", false), cursor),
            None => stream::empty().boxed(),
        }
    }

    /// The pages of one read of `stream` (a partition's, with its parent's values) from
    /// `cursor`.
    pub fn pages<'a>(&'a self, stream: &StreamSpec, cursor: &'a Cursor) -> Pages<'a, Record> {
        let parent = match stream
            .partition
            .as_ref()
            .map(|p| serde_json::from_str(&p.values))
        {
            None => None,
            Some(Ok(values)) => Some(values),
            Some(Err(e)) => {
                let e = format!("the partition's recorded parent values do not read: {e}");
                return stream::once(async move { Err(FetchError::refused(self.http.base(), e)) })
                    .boxed();
            }
        };
        let windowed = self
            .config
            .incremental
            .as_ref()
            .is_some_and(|i| i.max_window_ms().is_some());
        if windowed {
            return self.windows(cursor, parent);
        }
        match self.first_request(cursor, parent.as_ref()) {
            Ok(request) => source::read(&self.http, self.read(request, parent.as_ref()), cursor),
            Err(e) => {
                stream::once(async move { Err(FetchError::refused(self.http.base(), e)) }).boxed()
            }
        }
    }

    /// What a record's signal says, by the spec's `signal`.
    pub fn describe<'a>(&'a self, item: &'a Record) -> Result<Description<'a>, ItemError> {
        let s = &self.config.signal;
        let fill = |p: &Part| match p {
            Part::Pointer(ptr) => Some(item.text(ptr).map(Cow::into_owned).unwrap_or_default()),
            _ => None,
        };
        let title = self.title.render(fill).unwrap_or_default();
        let severity = s.severity.as_ref().map_or(Severity::Info, |spec| {
            item.text(&spec.path)
                .and_then(|v| Severity::mapped(&v, &spec.map))
                .unwrap_or(spec.default)
        });
        let url = match &self.link {
            Some(template) => template.render(fill),
            None => s
                .url
                .as_ref()
                .and_then(|u| item.text(u).map(Cow::into_owned)),
        };
        Ok(Description {
            kind: Cow::Borrowed(&s.kind),
            title: Cow::Owned(title),
            severity,
            occurred_at: s
                .occurred_at
                .as_ref()
                .and_then(|p| item.text(p))
                .map(|t| Cow::Owned(t.into_owned())),
            url: url.map(Cow::Owned),
        })
    }
}
