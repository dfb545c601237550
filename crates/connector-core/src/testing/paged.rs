//! A paged, incremental provider for tests (`TEST_PAGED`), and the mock API it reads.
//!
//! `GET /records?since=<RFC 3339>&limit=<n>[&cursor=<token>]` answers
//! `{"records": [{"id", "updated", "title"}...], "next": "<token>"|null}`, sorted by
//! `updated` ascending (or descending with `order=desc`). With `linkPaging` it is read as
//! GitHub's lists are: page numbers in a `Link` header, re-anchored on `since`, an `ETag`
//! per page. It is small on purpose: what it
//! exercises is the core's paging, watermark, resume points and per-page commits, which
//! every incremental provider (Jira, GitHub, Datadog, HTTP_JSON) is built from.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;
use wiremock::{Request as MockRequest, Respond, ResponseTemplate};

use crate::http::{HttpClient, Request};
use crate::pipeline::{CreateError, Pages, StreamSpec};
use crate::signal::{Description, ItemError};
use crate::source::{self, Anchor, Kept, Paging, Read, Revalidate, Since, TokenPlace};
use crate::time::{TimeFormat, format_millis, parse_millis};
use crate::{ConnectorContext, Cursor, Provider, Record, Severity};

/// `providerConfig` of `TEST_PAGED`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PagedConfig {
    /// Where the API lives.
    pub base_url: Url,
    /// Records per page.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 1000))]
    pub limit: u32,
    /// Read newest first: the watermark is then committed only at the end of a read.
    #[serde(default)]
    pub descending: bool,
    /// How far before the watermark a read starts, in seconds.
    #[serde(default)]
    pub lookback_seconds: u32,
    /// Page by `Link` header (page numbers), re-anchored on `since`, each page revalidated
    /// by its own `ETag`.
    #[serde(default)]
    pub link_paging: bool,
}

fn default_limit() -> u32 {
    2
}

/// The `TEST_PAGED` provider.
pub struct PagedProvider {
    http: HttpClient,
    config: PagedConfig,
    streams: [StreamSpec; 1],
}

/// A record's identity: all a page needs of it.
#[derive(Deserialize)]
struct Fields {
    id: String,
    updated: String,
}

/// What its signal needs besides: a record without a title has no signal.
#[derive(Deserialize)]
struct Shown {
    title: String,
}

impl Provider for PagedProvider {
    const TYPE: &'static str = "TEST_PAGED";
    type Config = PagedConfig;

    fn new(config: PagedConfig, common: &ConnectorContext) -> Result<Self, CreateError> {
        let http = HttpClient::builder(config.base_url.clone())
            .connector_settings(common)
            .build()?;
        let stream = StreamSpec::main("record", false);
        let stream = if config.descending {
            stream
        } else {
            stream.ascending()
        };
        Ok(Self {
            http,
            config,
            streams: [stream],
        })
    }

    fn source(&self) -> &str {
        "paged"
    }

    fn streams(&self) -> &[StreamSpec] {
        &self.streams
    }

    fn pages<'a>(&'a self, _stream: &'a StreamSpec, cursor: &'a Cursor) -> Pages<'a, Record> {
        let mut url = self.http.base().clone();
        url.set_path("/records");
        let lookback = i64::from(self.config.lookback_seconds) * 1000;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("limit", &self.config.limit.to_string());
            if self.config.descending {
                q.append_pair("order", "desc");
            }
        }
        let (paging, conditional, anchor) = if self.config.link_paging {
            let anchor = Anchor {
                param: "since".into(),
                format: TimeFormat::Rfc3339,
                template: None,
            };
            let paging = Paging::link_header().stop_on_empty(false);
            (paging, Revalidate::EachPage, Some(anchor))
        } else {
            let paging = Paging::cursor("/next", TokenPlace::Query, "cursor").stop_on_empty(false);
            (paging, Revalidate::Never, None)
        };
        let read = Read {
            paging,
            records: "/records".into(),
            conditional,
            anchor,
            watermark: Some("/updated".into()),
            since: Some(Since::new("since", TimeFormat::Rfc3339, lookback)),
            resume: Some(Duration::from_secs(7 * 24 * 3600)),
            ..Read::new(Request::get(url), |body, span, text| {
                let f: Fields = serde_json::from_str(text).map_err(ItemError::new)?;
                if parse_millis(&f.updated).is_none() {
                    return Err(ItemError::new(format!(
                        "updated {:?} is not a time",
                        f.updated
                    )));
                }
                Ok(Kept::Item(Record::new(body, span, &f.id, f.updated)))
            })
        };
        source::read(&self.http, read, cursor)
    }

    fn describe<'a>(
        &'a self,
        _: &StreamSpec,
        item: &'a Record,
    ) -> Result<Description<'a>, ItemError> {
        let shown: Shown = item.parse()?;
        Ok(Description {
            kind: Cow::Borrowed("record"),
            title: Cow::Owned(shown.title),
            severity: Severity::Info,
            occurred_at: Some(Cow::Borrowed(item.version())),
            url: None,
        })
    }
}

/// The mock API: a set of records the test changes between polls, served in pages.
#[derive(Clone, Default)]
pub struct RecordsApi {
    inner: Arc<Mutex<ApiState>>,
}

#[derive(Default)]
struct ApiState {
    /// `(id, updated millis, raw JSON of the record)`.
    records: Vec<(String, i64, String)>,
    /// Answer the page after `cursor=<token>` with this token again (a loop).
    repeat_token: bool,
    /// Requests served, for assertions.
    requests: Vec<String>,
    /// Requests answered 304.
    not_modified: usize,
    /// After this many requests, change this record: `(requests, id, updated millis)`.
    change_after: Option<(usize, String, i64)>,
}

impl RecordsApi {
    /// `n` records `r0`.. updated one minute apart from 2026-01-01T00:00:00Z.
    pub fn with_records(n: usize) -> Self {
        let api = Self::default();
        for i in 0..n {
            api.upsert(&format!("r{i}"), 1_767_225_600_000 + i as i64 * 60_000);
        }
        api
    }

    /// Adds or changes a record.
    pub fn upsert(&self, id: &str, updated_ms: i64) {
        let updated = format_millis(updated_ms, &TimeFormat::Rfc3339).unwrap_or_default();
        let raw =
            serde_json::json!({ "id": id, "updated": updated, "title": format!("Record {id}") })
                .to_string();
        self.put_raw(id, updated_ms, raw);
    }

    /// Replaces a record's JSON with `raw` (e.g. one that does not parse).
    pub fn put_raw(&self, id: &str, updated_ms: i64, raw: String) {
        if let Ok(mut s) = self.inner.lock() {
            s.records.retain(|(r, _, _)| r != id);
            s.records.push((id.to_owned(), updated_ms, raw));
            s.records.sort_by_key(|(_, t, _)| *t);
        }
    }

    /// Makes the server hand out the same next token forever.
    pub fn repeat_tokens(&self) {
        if let Ok(mut s) = self.inner.lock() {
            s.repeat_token = true;
        }
    }

    /// Changes record `id` once `requests` requests have been served (a record updated
    /// while a read is under way, which moves it to the end of the order).
    pub fn change_after(&self, requests: usize, id: &str, updated_ms: i64) {
        if let Ok(mut s) = self.inner.lock() {
            s.change_after = Some((requests, id.to_owned(), updated_ms));
        }
    }

    /// How many requests were answered 304.
    pub fn not_modified(&self) -> usize {
        self.inner.lock().map(|s| s.not_modified).unwrap_or(0)
    }

    /// The query strings of the requests served so far.
    pub fn requests(&self) -> Vec<String> {
        self.inner
            .lock()
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }
}

impl Respond for RecordsApi {
    fn respond(&self, request: &MockRequest) -> ResponseTemplate {
        let response = self.page(request);
        if let Ok(mut s) = self.inner.lock()
            && let Some((after, id, updated)) = s.change_after.clone()
            && s.requests.len() >= after
        {
            s.change_after = None;
            drop(s);
            self.upsert(&id, updated);
        }
        response
    }
}

impl RecordsApi {
    fn page(&self, request: &MockRequest) -> ResponseTemplate {
        let Ok(mut s) = self.inner.lock() else {
            return ResponseTemplate::new(500);
        };
        let query: std::collections::HashMap<String, String> =
            request.url.query_pairs().into_owned().collect();
        s.requests
            .push(request.url.query().unwrap_or_default().to_owned());
        let since = query
            .get("since")
            .and_then(|t| parse_millis(t))
            .unwrap_or(i64::MIN);
        let limit: usize = query.get("limit").and_then(|l| l.parse().ok()).unwrap_or(2);
        let page_number: Option<usize> = query.get("page").and_then(|p| p.parse().ok());
        let offset: usize = match page_number {
            Some(n) => n.saturating_sub(1) * limit,
            None => query
                .get("cursor")
                .and_then(|c| c.strip_prefix("o"))
                .and_then(|o| o.parse().ok())
                .unwrap_or(0),
        };
        let mut matching: Vec<&(String, i64, String)> =
            s.records.iter().filter(|(_, t, _)| *t >= since).collect();
        if query.get("order").map(String::as_str) == Some("desc") {
            matching.reverse();
        }
        let page: Vec<&str> = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(_, _, raw)| raw.as_str())
            .collect();
        let next = if offset + limit < matching.len() {
            let token = if s.repeat_token && offset > 0 {
                offset
            } else {
                offset + limit
            };
            format!("\"o{token}\"")
        } else {
            "null".to_owned()
        };
        let body = format!("{{\"records\": [{}], \"next\": {next}}}", page.join(","));
        let etag = format!(
            "\"{:016x}\"",
            xxhash_rust::xxh3::xxh3_64(format!("{:?}{body}", request.url).as_bytes())
        );
        let sent = request
            .headers
            .get("if-none-match")
            .and_then(|v| v.to_str().ok());
        if sent == Some(etag.as_str()) {
            s.not_modified += 1;
            return ResponseTemplate::new(304).insert_header("etag", etag.as_str());
        }
        let mut response = ResponseTemplate::new(200).insert_header("etag", etag.as_str());
        if offset + limit < matching.len() {
            let mut next = request.url.clone();
            crate::source::paging::set_query(
                &mut next,
                "page",
                &(page_number.unwrap_or(1) + 1).to_string(),
            );
            // Relative: wiremock's view of the request's URL has no port.
            let next = format!("{}?{}", next.path(), next.query().unwrap_or_default());
            response = response.insert_header("link", format!("<{next}>; rel=\"next\""));
        }
        response.set_body_string(body)
    }
}
