//! Paginators: from one page's response to the next page's request, with explicit stop
//! rules and guards every provider gets the same way.
//!
//! Each kind stops on its own rule (no next link, an empty token, a short page, a total
//! reached). Every kind also stops, failing the read, when the server hands out a request
//! already made in this read (a loop), and stops at `maxPages`, which marks the read
//! partial. A next URL on another origin is not followed at all (a credential must never
//! go there, and a foreign host is not the API): the read is then partial.

use std::collections::HashSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::records;
use crate::http::{Request, display_url};

/// Where a cursor token goes on the next request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TokenPlace {
    /// A query parameter.
    #[default]
    Query,
    /// A field of the POST body (`null` on the first page).
    Body,
}

fn yes() -> bool {
    true
}

fn one() -> u64 {
    1
}

/// How pages follow one another. Every kind takes `stopPath` (a flag that is `true` on the
/// last page) and `morePath` (a flag whose `false` ends the read), so a read ends on the
/// API's own word instead of one wasted request.
// This is what `HTTP_JSON`'s `pagination` deserializes into and what a typed provider
// builds with `Paging::link_header`, `next_url`, `cursor`, `offset` or `page_number` and
// the setters after them (the doc comment above is the config schema's description).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "PaginationSpec")]
pub enum Paging {
    /// One page.
    #[default]
    None,
    /// RFC 8288 `Link: <...>; rel="next"`.
    #[serde(rename_all = "camelCase")]
    LinkHeader {
        /// What relative links resolve against (see `NextUrl`'s `linkBase`).
        #[serde(default)]
        link_base: Option<Url>,
        /// Pointer to a flag that is `true` on the last page.
        #[serde(default)]
        stop_path: Option<String>,
        /// Pointer to a flag whose `false` ends the read.
        #[serde(default)]
        more_path: Option<String>,
        /// The page size the request asks for: a page this full without a next link is
        /// warned about.
        #[serde(default)]
        #[schemars(range(min = 1))]
        page_size: Option<u64>,
        /// Query parameters of the first request that a next link drops are added back
        /// (default false).
        #[serde(default)]
        keep_query: bool,
        /// A page with no records ends the read even when it still links to a next one
        /// (default true: Sentry's past-the-end page links to itself).
        #[serde(default = "yes")]
        stop_on_empty: bool,
    },
    /// A next URL in the body.
    #[serde(rename_all = "camelCase")]
    NextUrl {
        /// Pointer to it.
        path: String,
        /// What relative links resolve against, for an API whose links drop its base path
        /// (Snyk's `links.next` is `/orgs/…` under `https://api.snyk.io/rest`): a link
        /// starting with `/` is appended to this URL's path; other relative links resolve
        /// by RFC 3986; absolute links are used as given. Default: the response's URL.
        #[serde(default)]
        link_base: Option<Url>,
        /// Pointer to a flag that is `true` on the last page.
        #[serde(default)]
        stop_path: Option<String>,
        /// Pointer to a flag whose `false` ends the read.
        #[serde(default)]
        more_path: Option<String>,
        /// The page size the request asks for (see `LinkHeader`).
        #[serde(default)]
        #[schemars(range(min = 1))]
        page_size: Option<u64>,
        /// Query parameters of the first request that a next link drops are added back
        /// (default false; NOAA's links drop the filters).
        #[serde(default)]
        keep_query: bool,
        /// An empty page ends the read even when it still links to a next one (default
        /// true).
        #[serde(default = "yes")]
        stop_on_empty: bool,
    },
    /// A token in the body, sent back as `param`.
    #[serde(rename_all = "camelCase")]
    Cursor {
        /// Pointer to the token.
        path: String,
        /// The query parameter, or with `in: body` the body pointer, it goes back in.
        param: String,
        /// `query` (default) or `body`.
        #[serde(default, rename = "in")]
        place: TokenPlace,
        /// Pointer to a flag that is `true` on the last page (Jira's `/isLast`, Zendesk's
        /// `/end_of_stream`).
        #[serde(default)]
        stop_path: Option<String>,
        /// Pointer to a flag whose `false` ends the read (Linear's
        /// `/data/issues/pageInfo/hasNextPage`).
        #[serde(default)]
        more_path: Option<String>,
        /// The page size the request asks for (see `LinkHeader`).
        #[serde(default)]
        #[schemars(range(min = 1))]
        page_size: Option<u64>,
        /// An empty page ends the read even when it still carries a token (default true:
        /// Datadog's last non-empty page advertises one more).
        #[serde(default = "yes")]
        stop_on_empty: bool,
    },
    /// Offset and limit parameters.
    #[serde(rename_all = "camelCase")]
    Offset {
        /// The offset parameter.
        param: String,
        /// Records per page.
        limit: u64,
        /// The limit parameter.
        limit_param: String,
        /// The first offset.
        #[serde(default)]
        start: u64,
        /// Pointer to the total number of records, if the API gives it.
        #[serde(default)]
        total_path: Option<String>,
        /// Pointer to a flag that is `true` on the last page.
        #[serde(default)]
        stop_path: Option<String>,
        /// Pointer to a flag that says more pages follow (PagerDuty's `/more`): `false`
        /// ends the read there.
        #[serde(default)]
        more_path: Option<String>,
    },
    /// A page number parameter.
    #[serde(rename = "page", rename_all = "camelCase")]
    PageNumber {
        /// The page parameter.
        param: String,
        /// Records per page.
        size: u64,
        /// The page-size parameter, if the API takes one.
        #[serde(default)]
        size_param: Option<String>,
        /// The first page's number.
        #[serde(default = "one")]
        start: u64,
        /// Pointer to a flag that is `true` on the last page.
        #[serde(default)]
        stop_path: Option<String>,
        /// Pointer to a flag that says more pages follow: `false` ends the read there.
        #[serde(default)]
        more_path: Option<String>,
    },
}

impl Paging {
    /// RFC 8288 link headers; an empty page ends the read.
    pub fn link_header() -> Self {
        Paging::LinkHeader {
            link_base: None,
            stop_path: None,
            more_path: None,
            page_size: None,
            keep_query: false,
            stop_on_empty: true,
        }
    }

    /// A next URL at `path` in the body; an empty page ends the read.
    pub fn next_url(path: impl Into<String>) -> Self {
        Paging::NextUrl {
            path: path.into(),
            link_base: None,
            stop_path: None,
            more_path: None,
            page_size: None,
            keep_query: false,
            stop_on_empty: true,
        }
    }

    /// A token at `path` in the body, sent back as `param` in `place`; an empty page
    /// ends the read.
    pub fn cursor(path: impl Into<String>, place: TokenPlace, param: impl Into<String>) -> Self {
        Paging::Cursor {
            path: path.into(),
            param: param.into(),
            place,
            stop_path: None,
            more_path: None,
            page_size: None,
            stop_on_empty: true,
        }
    }

    /// `param` (from 0) and `limit_param` = `limit`; a short page ends the read.
    pub fn offset(param: impl Into<String>, limit_param: impl Into<String>, limit: u64) -> Self {
        Paging::Offset {
            param: param.into(),
            limit,
            limit_param: limit_param.into(),
            start: 0,
            total_path: None,
            stop_path: None,
            more_path: None,
        }
    }

    /// Page numbers in `param` from `start`, `size` records a page; a short page ends the
    /// read.
    pub fn page_number(param: impl Into<String>, start: u64, size: u64) -> Self {
        Paging::PageNumber {
            param: param.into(),
            size,
            size_param: None,
            start,
            stop_path: None,
            more_path: None,
        }
    }

    /// Whether first-request query parameters a next link drops are added back (link kinds).
    pub fn keep_query(mut self, keep: bool) -> Self {
        if let Paging::LinkHeader { keep_query, .. } | Paging::NextUrl { keep_query, .. } =
            &mut self
        {
            *keep_query = keep;
        }
        self
    }

    /// Whether an empty page ends the read whatever the paginator would do next (link and
    /// token kinds; offset and page-number reads always end there).
    pub fn stop_on_empty(mut self, stop: bool) -> Self {
        if let Paging::LinkHeader { stop_on_empty, .. }
        | Paging::NextUrl { stop_on_empty, .. }
        | Paging::Cursor { stop_on_empty, .. } = &mut self
        {
            *stop_on_empty = stop;
        }
        self
    }

    /// A flag at `pointer` that is `true` on the last page (Jira Cloud's `/isLast`).
    pub fn stop_path(mut self, pointer: impl Into<String>) -> Self {
        if let Some(slot) = self.stop_slot() {
            *slot = Some(pointer.into());
        }
        self
    }

    /// The page-size parameter of a page-number read.
    pub fn size_param(mut self, name: impl Into<String>) -> Self {
        if let Paging::PageNumber { size_param, .. } = &mut self {
            *size_param = Some(name.into());
        }
        self
    }

    /// Where an offset read finds the total number of records.
    pub fn total_path(mut self, pointer: impl Into<String>) -> Self {
        if let Paging::Offset { total_path, .. } = &mut self {
            *total_path = Some(pointer.into());
        }
        self
    }

    /// The page size a link or token read asks for, when it is not already said.
    pub fn with_page_size(mut self, size: Option<u64>) -> Self {
        if let Paging::LinkHeader { page_size, .. }
        | Paging::NextUrl { page_size, .. }
        | Paging::Cursor { page_size, .. } = &mut self
            && page_size.is_none()
        {
            *page_size = size;
        }
        self
    }

    fn stop_slot(&mut self) -> Option<&mut Option<String>> {
        match self {
            Paging::None => None,
            Paging::LinkHeader { stop_path, .. }
            | Paging::NextUrl { stop_path, .. }
            | Paging::Cursor { stop_path, .. }
            | Paging::Offset { stop_path, .. }
            | Paging::PageNumber { stop_path, .. } => Some(stop_path),
        }
    }

    /// The last-page flag, whatever the kind.
    pub fn stop_when(&self) -> Option<&str> {
        match self {
            Paging::None => None,
            Paging::LinkHeader { stop_path, .. }
            | Paging::NextUrl { stop_path, .. }
            | Paging::Cursor { stop_path, .. }
            | Paging::Offset { stop_path, .. }
            | Paging::PageNumber { stop_path, .. } => stop_path.as_deref(),
        }
    }

    /// The more-pages flag, whatever the kind.
    pub fn more_when(&self) -> Option<&str> {
        match self {
            Paging::None => None,
            Paging::LinkHeader { more_path, .. }
            | Paging::NextUrl { more_path, .. }
            | Paging::Cursor { more_path, .. }
            | Paging::Offset { more_path, .. }
            | Paging::PageNumber { more_path, .. } => more_path.as_deref(),
        }
    }

    /// What next links resolve against, for the kinds that follow links.
    pub fn link_base(&self) -> Option<&Url> {
        match self {
            Paging::LinkHeader { link_base, .. } | Paging::NextUrl { link_base, .. } => {
                link_base.as_ref()
            }
            _ => None,
        }
    }

    /// The page size a link or token read asks for, when given (offset and page reads go
    /// on after every full page by themselves).
    pub fn page_size(&self) -> Option<u64> {
        match self {
            Paging::LinkHeader { page_size, .. }
            | Paging::NextUrl { page_size, .. }
            | Paging::Cursor { page_size, .. } => *page_size,
            _ => None,
        }
    }

    /// The query parameters the first request carries for this kind (an offset read's
    /// start and limit, a page-number read's first page and size).
    pub fn first_params(&self) -> Vec<(String, String)> {
        match self {
            Paging::Offset {
                param,
                limit,
                limit_param,
                start,
                ..
            } => vec![
                (param.clone(), start.to_string()),
                (limit_param.clone(), limit.to_string()),
            ],
            Paging::PageNumber {
                param,
                size,
                size_param,
                start,
                ..
            } => {
                let mut v = vec![(param.clone(), start.to_string())];
                v.extend(size_param.iter().map(|s| (s.clone(), size.to_string())));
                v
            }
            _ => Vec::new(),
        }
    }
}

/// Where a read goes after a page.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// The read is over, complete.
    Done,
    /// The next page's request.
    Page(Request),
    /// The read stops early, incomplete: why, and where it would have gone on (at the page
    /// limit; not for a link to another host).
    Stop {
        /// Why, from the fixed set the metric counts.
        reason: crate::ports::PartialReason,
        /// Why, in words.
        message: String,
        /// The request that would have come next.
        next: Option<Request>,
    },
}

/// Re-anchoring a read ordered ascending on a time field: each next page is asked for
/// from the first request with this parameter set to the last page's greatest time
/// (GitHub's `since`), instead of by its link, page number or offset. A set ordered by
/// time shifts while it is read (an item updated mid-read jumps to the end and moves the
/// rest onto pages already read), so a page number would skip records; a time does not.
/// While a whole page shares the anchor's time, the read falls back to the next page
/// number or link, which is the only way past it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The query parameter holding the time.
    pub param: String,
    /// How the time is written in it.
    pub format: crate::time::TimeFormat,
    /// The parameter's whole value with `{time}` where the time goes, when the time sits
    /// inside a longer value (Jira's JQL: `(...) AND updated >= "{time}" ORDER BY ...`);
    /// `None`: the value is the time alone.
    pub template: Option<String>,
}

impl Anchor {
    /// The time alone as the parameter's value.
    pub fn new(param: impl Into<String>, format: crate::time::TimeFormat) -> Self {
        Self {
            param: param.into(),
            format,
            template: None,
        }
    }
}

/// What a paginator sees of one response.
pub struct Seen<'a> {
    /// The request that was sent.
    pub request: &'a Request,
    /// The final URL of the response (after same-origin redirects).
    pub url: &'a Url,
    /// The `Link` header, if any.
    pub link: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
    /// Records on the page, before any filtering.
    pub records: usize,
    /// The greatest record time on the page (UNIX milliseconds), for re-anchoring.
    pub max_time: Option<i64>,
}

/// A paginator in the middle of a read: it remembers the requests made, to catch loops.
pub struct Pager {
    paging: Paging,
    first: Request,
    max_pages: u64,
    pages: u64,
    made: HashSet<String>,
    anchor: Option<Anchor>,
}

impl Pager {
    /// A read that starts with `first`, at most `max_pages` pages long.
    pub fn new(paging: Paging, first: Request, max_pages: u64) -> Self {
        let mut made = HashSet::new();
        made.insert(fingerprint(&first));
        Self {
            paging,
            first,
            max_pages: max_pages.max(1),
            pages: 0,
            made,
            anchor: None,
        }
    }

    /// Re-anchors each next page on the last page's greatest time (see [`Anchor`]).
    pub fn anchored(mut self, anchor: Option<Anchor>) -> Self {
        self.anchor = anchor;
        self
    }

    /// The next step after a page that was not fetched again (a 304): its stored next
    /// request, through the same loop guard and page limit.
    pub fn skip(&mut self, next: Option<Request>) -> Result<Next, String> {
        self.pages += 1;
        match next {
            None => Ok(Next::Done),
            Some(next) => self.step(next),
        }
    }

    /// The first request.
    pub fn first(&self) -> &Request {
        &self.first
    }

    /// The next step after a page; `Err` when the server repeats a request of this read.
    pub fn next(&mut self, seen: &Seen<'_>) -> Result<Next, String> {
        self.pages += 1;
        let followed = match &self.paging {
            Paging::None => None,
            Paging::LinkHeader {
                keep_query,
                stop_on_empty,
                ..
            } => (!*stop_on_empty || seen.records > 0)
                .then(|| seen.link.and_then(next_link))
                .flatten()
                .map(|link| self.follow(seen.url, &link, *keep_query)),
            Paging::NextUrl {
                path,
                keep_query,
                stop_on_empty,
                ..
            } => (!*stop_on_empty || seen.records > 0)
                .then(|| text_at(seen.body, path))
                .flatten()
                .map(|link| self.follow(seen.url, &link, *keep_query)),
            Paging::Cursor {
                path,
                param,
                place,
                stop_on_empty,
                ..
            } => (!*stop_on_empty || seen.records > 0)
                .then(|| text_at(seen.body, path))
                .flatten()
                .map(|token| Ok(with_token(seen.request, *place, param, token))),
            Paging::Offset {
                param,
                limit_param,
                limit,
                total_path,
                ..
            } => next_offset(seen, param, limit_param, *limit, total_path.as_deref()).map(Ok),
            Paging::PageNumber {
                param,
                start,
                size_param,
                size,
                ..
            } => next_page_number(seen, param, *start, size_param.as_deref(), *size).map(Ok),
        };
        let next = match followed {
            None => return Ok(Next::Done),
            Some(Ok(request)) => request,
            Some(Err((reason, message))) => {
                return Ok(Next::Stop {
                    reason,
                    message,
                    next: None,
                });
            }
        };
        let next = self.reanchor(seen, next)?;
        self.step(next)
    }

    /// `next`, or the first request anchored on the page's greatest time.
    fn reanchor(&self, seen: &Seen<'_>, next: Request) -> Result<Request, String> {
        let (Some(anchor), Some(max)) = (&self.anchor, seen.max_time) else {
            return Ok(next);
        };
        if matches!(
            self.paging,
            Paging::None | Paging::NextUrl { .. } | Paging::Cursor { .. }
        ) {
            // A token or a next URL already says where the server is; it does not shift.
            return Ok(next);
        }
        let time = crate::time::format_millis(max, &anchor.format)?;
        let at = match &anchor.template {
            Some(template) => template.replacen("{time}", &time, 1),
            None => time,
        };
        let current = seen
            .request
            .url
            .query_pairs()
            .find(|(k, _)| *k == anchor.param.as_str())
            .map(|(_, v)| v.into_owned());
        if current.as_deref() == Some(at.as_str()) {
            // The whole page shares the anchor's time: only the page number gets past it.
            return Ok(next);
        }
        let mut request = self.first.clone();
        set_query(&mut request.url, &anchor.param, &at);
        Ok(request)
    }

    /// Counts the page and guards the next request against loops and the page limit.
    fn step(&mut self, next: Request) -> Result<Next, String> {
        if !self.made.insert(fingerprint(&next)) {
            return Err(format!(
                "the server sent page {} again ({}): a pagination loop; the read stops",
                self.pages + 1,
                shown_with_query(&next.url)
            ));
        }
        if self.pages >= self.max_pages {
            return Ok(Next::Stop {
                reason: crate::ports::PartialReason::PageCap,
                message: format!(
                    "page limit of {} reached; the next poll goes on from here",
                    self.max_pages
                ),
                next: Some(next),
            });
        }
        Ok(Next::Page(next))
    }

    /// The request for a followed link, or why the read stops instead.
    fn follow(
        &self,
        base: &Url,
        link: &str,
        keep_query: bool,
    ) -> Result<Request, (crate::ports::PartialReason, String)> {
        use crate::ports::PartialReason;
        let Some(mut url) = resolve_link(self.paging.link_base(), base, link) else {
            return Err((
                PartialReason::LinkUnresolvable,
                format!(
                    "the next link {:?} could not be resolved to a URL against {}",
                    shown_link(link),
                    display_url(self.paging.link_base().unwrap_or(base))
                ),
            ));
        };
        if url.origin() != self.first.url.origin() {
            return Err((
                PartialReason::ForeignLink,
                format!(
                    "a next link to another host ({}, built from the link {:?}) is not followed",
                    display_url(&url),
                    shown_link(link)
                ),
            ));
        }
        if keep_query {
            let present: Vec<String> = url
                .query_pairs()
                .map(|(k, _)| k.split('[').next().unwrap_or_default().to_owned())
                .collect();
            let missing: Vec<(String, String)> = self
                .first
                .url
                .query_pairs()
                .filter(|(k, _)| !present.iter().any(|p| p == k))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if !missing.is_empty() {
                url.query_pairs_mut().extend_pairs(missing);
            }
        }
        Ok(Request {
            url,
            body: None,
            headers: self.first.headers.clone(),
        })
    }
}

/// What identifies a request within a read: URL and body.
pub fn fingerprint(request: &Request) -> String {
    match &request.body {
        Some(body) => format!("{} {body}", request.url),
        None => request.url.to_string(),
    }
}

/// The request again with a page token where the API wants it (query or body).
fn with_token(request: &Request, place: TokenPlace, param: &str, token: String) -> Request {
    let mut request = request.clone();
    match place {
        TokenPlace::Query => set_query(&mut request.url, param, &token),
        TokenPlace::Body => {
            let body = request
                .body
                .get_or_insert_with(|| Value::Object(Default::default()));
            set_pointer(body, param, Value::String(token));
        }
    }
    request
}

/// The next offset page, or `None` when the read is over. With a total, only the total or
/// an empty page ends the read: a server that caps its page below `limit` would otherwise
/// look done after one.
fn next_offset(
    seen: &Seen<'_>,
    param: &str,
    limit_param: &str,
    limit: u64,
    total_pointer: Option<&str>,
) -> Option<Request> {
    let offset = query_number(&seen.request.url, param).unwrap_or(0) + seen.records as u64;
    let total = total_pointer
        .and_then(|p| text_at(seen.body, p))
        .and_then(|t| t.parse::<u64>().ok());
    let done = match total {
        Some(t) => offset >= t || seen.records == 0,
        None => (seen.records as u64) < limit,
    };
    if done {
        return None;
    }
    let mut request = seen.request.clone();
    set_query(&mut request.url, param, &offset.to_string());
    set_query(&mut request.url, limit_param, &limit.to_string());
    Some(request)
}

/// The next numbered page, or `None` after a short or empty page.
fn next_page_number(
    seen: &Seen<'_>,
    param: &str,
    start: u64,
    size_param: Option<&str>,
    size: u64,
) -> Option<Request> {
    if seen.records == 0 || (seen.records as u64) < size {
        return None;
    }
    let page = query_number(&seen.request.url, param).unwrap_or(start) + 1;
    let mut request = seen.request.clone();
    set_query(&mut request.url, param, &page.to_string());
    if let Some(size_param) = size_param {
        set_query(&mut request.url, size_param, &size.to_string());
    }
    Some(request)
}

/// Resolves a next link: against `link_base` when given (a link starting with `/` is
/// appended to its path, so `…/rest` + `/orgs/x` is `…/rest/orgs/x`; other relative links
/// resolve by RFC 3986), else against the response's URL; absolute links as given.
pub fn resolve_link(link_base: Option<&Url>, response: &Url, link: &str) -> Option<Url> {
    // A fragment never goes to the server.
    let link = link.split_once('#').map_or(link, |(before, _)| before);
    let Some(base) = link_base else {
        return response.join(link).ok();
    };
    if link.starts_with('/') && !link.starts_with("//") {
        let mut joined = base.clone();
        let (path, query) = match link.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (link, None),
        };
        let prefix = base.path().trim_end_matches('/');
        joined.set_path(&format!("{prefix}{path}"));
        joined.set_query(query);
        joined.set_fragment(None);
        return Some(joined);
    }
    base.join(link).ok()
}

/// A link as it may be shown: its query's credential-like values masked.
fn shown_link(link: &str) -> String {
    match link.split_once('?') {
        Some((path, query)) => format!("{path}?{}", masked_query(query)),
        None => link.to_owned(),
    }
}

/// Whether a query parameter's name says it holds a credential.
pub fn credential_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["key", "token", "secret", "password", "auth"]
        .iter()
        .any(|w| lower.contains(w))
        || lower.starts_with("sig")
}

/// A query string with the values of credential-named parameters as `****`.
pub fn masked_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if credential_name(k) => format!("{k}=****"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A URL as a loop message shows it: whole, query included (the repeated cursor is what
/// the reader needs to see), with credential-named parameters masked and no user info.
pub fn shown_with_query(url: &Url) -> String {
    let shown = display_url(url);
    match url.query() {
        Some(q) => format!("{shown}?{}", masked_query(q)),
        None => shown,
    }
}

/// The `rel="next"` target of a `Link` header (its fields joined, as RFC 9110 §5.3 allows),
/// unless it says `results="false"`.
fn next_link(header: &str) -> Option<String> {
    let links = parse_link_header::parse_with_rel(header).ok()?;
    let next = links.get("next")?;
    let empty = next
        .params
        .get("results")
        .is_some_and(|r| r.trim_matches('"').eq_ignore_ascii_case("false"));
    (!empty).then(|| next.raw_uri.clone())
}

/// A non-empty string (or a number, as text) at `pointer` of the body.
fn text_at(body: &[u8], pointer: &str) -> Option<String> {
    let at = records::locate(body, pointer).ok()??;
    records::scalar(body, at)
        .map(|t| t.into_owned())
        .filter(|t| !t.is_empty())
}

fn query_number(url: &Url, name: &str) -> Option<u64> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// Sets (or replaces) one query parameter, keeping the others in order.
pub fn set_query(url: &mut Url, name: &str, value: &str) {
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(name, value);
}

/// Sets the value at a JSON pointer, creating objects on the way.
pub fn set_pointer(root: &mut Value, pointer: &str, value: Value) {
    let tokens: Vec<String> = pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, path)) = tokens.split_last() else {
        *root = value;
        return;
    };
    let mut node = root;
    for token in path {
        if !node.is_object() {
            *node = Value::Object(Default::default());
        }
        let Value::Object(map) = node else { return };
        node = map
            .entry(token.clone())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    if !node.is_object() {
        *node = Value::Object(Default::default());
    }
    if let Value::Object(map) = node {
        map.insert(last.clone(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    fn seen<'a>(
        request: &'a Request,
        body: &'a str,
        records: usize,
        link: Option<&'a str>,
    ) -> Seen<'a> {
        Seen {
            request,
            url: &request.url,
            link,
            body: body.as_bytes(),
            records,
            max_time: None,
        }
    }

    fn next_url(next: Next) -> String {
        match next {
            Next::Page(r) => r.url.to_string(),
            other => panic!("expected a page, got {other:?}"),
        }
    }

    #[test]
    fn link_headers_are_followed_until_there_is_no_next() {
        let first = Request::get(url("https://api.example/issues?since=x&per_page=100"));
        let mut p = Pager::new(
            Paging::link_header().stop_on_empty(false),
            first.clone(),
            10,
        );
        let link = r#"<https://api.example/issues?page=2&since=x>; rel="next", <https://api.example/issues?page=5>; rel="last""#;
        let n = p.next(&seen(&first, "[]", 100, Some(link))).expect("next");
        assert_eq!(next_url(n), "https://api.example/issues?page=2&since=x");
        let last = Request::get(url("https://api.example/issues?page=5"));
        assert_eq!(p.next(&seen(&last, "[]", 3, None)), Ok(Next::Done));
    }

    #[test]
    fn relative_next_urls_resolve_and_keep_the_first_query() {
        let first = Request::get(url("https://api.example/v1/alerts?status=actual&area=CA"));
        let paging = Paging::next_url("/pagination/next").keep_query(true);
        let mut p = Pager::new(paging, first.clone(), 10);
        let body = r#"{"pagination": {"next": "alerts?cursor=abc&area=CA"}, "features": [1]}"#;
        let n = p.next(&seen(&first, body, 1, None)).expect("next");
        assert_eq!(
            next_url(n),
            "https://api.example/v1/alerts?cursor=abc&area=CA&status=actual"
        );
        assert_eq!(
            p.next(&seen(&first, body, 0, None)),
            Ok(Next::Done),
            "empty page"
        );
    }

    #[test]
    fn cursors_go_back_in_the_query_or_the_body() {
        let first = Request::post(
            url("https://x.atlassian.net/rest/api/3/search/jql"),
            serde_json::json!({"jql": "a", "nextPageToken": null}),
        );
        let paging = Paging::cursor("/nextPageToken", TokenPlace::Body, "/nextPageToken")
            .stop_on_empty(false);
        let mut p = Pager::new(paging, first.clone(), 10);
        let Next::Page(second) = p
            .next(&seen(
                &first,
                r#"{"nextPageToken": "t2", "issues": [1]}"#,
                1,
                None,
            ))
            .expect("next")
        else {
            panic!("a page")
        };
        assert_eq!(
            second.body,
            Some(serde_json::json!({"jql": "a", "nextPageToken": "t2"}))
        );
        assert_eq!(
            p.next(&seen(&second, r#"{"isLast": true, "issues": []}"#, 0, None)),
            Ok(Next::Done)
        );

        let first = Request::get(url(
            "https://api.datadoghq.com/api/v2/events?page%5Blimit%5D=2",
        ));
        let paging = Paging::cursor("/meta/page/after", TokenPlace::Query, "page[cursor]");
        let mut p = Pager::new(paging, first.clone(), 10);
        let n = p
            .next(&seen(
                &first,
                r#"{"meta": {"page": {"after": "c2"}}}"#,
                2,
                None,
            ))
            .expect("next");
        assert_eq!(
            next_url(n),
            "https://api.datadoghq.com/api/v2/events?page%5Blimit%5D=2&page%5Bcursor%5D=c2"
        );
        assert_eq!(
            p.next(&seen(
                &first,
                r#"{"meta": {"page": {"after": "c3"}}}"#,
                0,
                None
            )),
            Ok(Next::Done)
        );
    }

    #[test]
    fn offsets_and_page_numbers_stop_on_a_short_page_or_the_total() {
        let first = Request::get(url("https://h/rest/api/2/search?startAt=0&maxResults=2"));
        let paging = Paging::offset("startAt", "maxResults", 2).total_path("/total");
        let mut p = Pager::new(paging, first.clone(), 10);
        let n = p
            .next(&seen(&first, r#"{"total": 5}"#, 2, None))
            .expect("next");
        assert_eq!(
            next_url(n),
            "https://h/rest/api/2/search?startAt=2&maxResults=2"
        );
        let at4 = Request::get(url("https://h/rest/api/2/search?startAt=2&maxResults=2"));
        assert_eq!(
            p.next(&seen(&at4, r#"{"total": 4}"#, 2, None)),
            Ok(Next::Done),
            "total reached"
        );

        let first = Request::get(url("https://h/items?page=1"));
        let paging = Paging::page_number("page", 1, 2).size_param("per_page");
        let mut p = Pager::new(paging, first.clone(), 10);
        let n = p.next(&seen(&first, "[1,2]", 2, None)).expect("next");
        assert_eq!(next_url(n), "https://h/items?page=2&per_page=2");
        assert_eq!(
            p.next(&seen(&first, "[1]", 1, None)),
            Ok(Next::Done),
            "short page"
        );
    }

    #[test]
    fn an_anchored_read_asks_from_the_last_pages_greatest_time() {
        let first = Request::get(url("https://api.example/issues?sort=updated&per_page=2"));
        let anchor = Anchor {
            param: "since".into(),
            format: crate::time::TimeFormat::Rfc3339,
            template: None,
        };
        let mut p = Pager::new(
            Paging::link_header().stop_on_empty(false),
            first.clone(),
            10,
        )
        .anchored(Some(anchor));
        let link = r#"<https://api.example/issues?sort=updated&per_page=2&page=2>; rel="next""#;
        let mut page = seen(&first, "[1,2]", 2, Some(link));
        page.max_time = Some(1_767_225_660_000);
        let n = next_url(p.next(&page).expect("next"));
        assert_eq!(
            n,
            "https://api.example/issues?sort=updated&per_page=2&since=2026-01-01T00%3A01%3A00Z"
        );
        // A whole page at the anchor's time: the page number takes the read past it.
        let anchored = Request::get(url(&n));
        let link = format!("<{n}&page=2>; rel=\"next\"");
        let mut page = seen(&anchored, "[1,2]", 2, Some(&link));
        page.max_time = Some(1_767_225_660_000);
        assert_eq!(
            next_url(p.next(&page).expect("next")),
            format!("{n}&page=2")
        );
        // Without a next link the read is over, whatever the times.
        page.link = None;
        assert_eq!(p.next(&page), Ok(Next::Done));
    }

    #[test]
    fn loops_fail_the_read_and_limits_and_foreign_hosts_stop_it() {
        let first = Request::get(url("https://h/a?p=1"));
        let paging = Paging::next_url("/next").stop_on_empty(false);
        let mut p = Pager::new(paging.clone(), first.clone(), 10);
        let err = p.next(&seen(&first, r#"{"next": "https://h/a?p=1"}"#, 1, None));
        assert!(err.is_err_and(|e| e.contains("pagination loop")));

        let mut p = Pager::new(paging.clone(), first.clone(), 1);
        assert!(matches!(
            p.next(&seen(&first, r#"{"next": "/a?p=2"}"#, 1, None)),
            Ok(Next::Stop { next: Some(_), .. })
        ));

        let mut p = Pager::new(paging, first.clone(), 10);
        let n = p.next(&seen(
            &first,
            r#"{"next": "https://evil.example/a?p=2"}"#,
            1,
            None,
        ));
        assert!(
            matches!(n, Ok(Next::Stop { message, next: None, .. }) if message.contains("another host"))
        );
    }

    /// What HTTP_JSON's config says is what a typed provider builds: the defaults of the
    /// JSON (an empty page ends a link or token read; the first page number is 1; links
    /// keep no dropped query) are the constructors'.
    #[test]
    fn the_config_form_and_the_constructors_agree() {
        let parse = |v: serde_json::Value| -> Paging { serde_json::from_value(v).expect("paging") };
        assert_eq!(
            parse(serde_json::json!({"type": "nextUrl", "path": "/next"})),
            Paging::next_url("/next")
        );
        assert_eq!(
            parse(serde_json::json!({"type": "linkHeader"})),
            Paging::link_header()
        );
        assert_eq!(
            parse(
                serde_json::json!({"type": "cursor", "path": "/t", "param": "/t", "in": "body", "stopOnEmpty": false, "stopPath": "/isLast"})
            ),
            Paging::cursor("/t", TokenPlace::Body, "/t")
                .stop_on_empty(false)
                .stop_path("/isLast")
        );
        assert_eq!(
            parse(
                serde_json::json!({"type": "page", "param": "page", "size": 50, "sizeParam": "per_page"})
            ),
            Paging::page_number("page", 1, 50).size_param("per_page")
        );
        assert_eq!(
            parse(
                serde_json::json!({"type": "offset", "param": "startAt", "limit": 2, "limitParam": "maxResults", "totalPath": "/total"})
            ),
            Paging::offset("startAt", "maxResults", 2).total_path("/total")
        );
        assert_eq!(
            Paging::offset("o", "l", 5).first_params(),
            [
                ("o".to_owned(), "0".to_owned()),
                ("l".to_owned(), "5".to_owned())
            ]
        );
        let unknown = serde_json::from_value::<Paging>(
            serde_json::json!({"type": "linkHeader", "keepquery": true}),
        );
        assert!(unknown.is_err(), "a misspelt field is refused");
    }
}
