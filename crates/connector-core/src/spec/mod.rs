//! The read description: one stream's request, auth, paging, records, identity pointers,
//! incremental cursor and signal mapping, as data. `HTTP_JSON`'s `providerConfig`
//! deserializes into [`ReadSpec`] directly (as does any provider that builds one in Rust),
//! and [`SpecReader`] reads it: it turns the description into the toolkit's
//! `source::Read` for each request, the same read a typed provider builds in Rust, so every
//! provider's pages come out of one reader (`source::read`). What a description cannot say
//! (a lookup before the first request, an identity over several fields) stays in code.

pub mod catalog;
mod engine;
pub mod template;

use std::collections::BTreeMap;

use crate::Severity;
use crate::config::fields::error_if;
use crate::config::{FieldError, Headers, PathSegment};
pub use crate::http::auth::AuthSpec;
pub use crate::source::{Paging, TokenPlace};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use engine::SpecReader;
use template::{Context, Template, is_pointer};

/// `providerConfig` of an `HTTP_JSON` connector.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(rename = "HttpJsonConfig")]
pub struct ReadSpec {
    /// The signals' `source` (default `http`).
    #[serde(default = "default_source")]
    pub source: String,
    /// The first page's request.
    pub request: RequestSpec,
    /// How requests are authenticated (default none).
    #[serde(default)]
    pub auth: AuthSpec,
    /// Where the records are and what identifies them.
    pub records: RecordsSpec,
    /// Predicates on a whole response that make the poll fail (APIs that answer errors
    /// with 200).
    #[serde(default)]
    pub fail: Vec<Predicate>,
    /// What each record's signal says.
    pub signal: SignalSpec,
    /// How pages follow one another (default none: one page).
    #[serde(default)]
    pub pagination: Paging,
    /// How records come, by the incremental field: `asc` (the watermark is saved with each
    /// page) or `desc` (saved when a read completes).
    #[serde(default)]
    pub order: Order,
    /// The incremental cursor, which gives `{{cursor}}` its value.
    #[serde(default)]
    pub incremental: Option<Incremental>,
    /// Each poll reads the whole set: what is gone is pruned (and `removed` with
    /// `emitRemovals`).
    #[serde(default)]
    pub snapshot: bool,
    /// Limits of one read.
    #[serde(default)]
    pub limits: Limits,
    /// A parent/child read: the parents, each of whose records is one partition, read
    /// with this request (`{{parent:/pointer}}` in it) and its own state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentSpec>,
}

/// The parents of a parent/child read ("for each project, list its issues").
///
/// Each parent record is a partition, keyed by its id; the child request takes its
/// values through `{{parent:/pointer}}` (percent-encoded in `request.url`, so GitLab's
/// `group/project` becomes `group%2Fproject`). The partition set is kept in state, and a
/// partition is removed only after a complete full read of the parents: an incremental
/// read lists what changed, and an unchanged parent is not a removed one.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParentSpec {
    /// The parents' first request: on `request.url`'s origin, with the same auth.
    pub request: RequestSpec,
    /// Where the parents are; `id` is the partition's key (`version` is not used: a
    /// parent's version is what the child request takes of it).
    pub records: RecordsSpec,
    /// How the parents' pages follow one another (default none: one page).
    #[serde(default)]
    pub pagination: Paging,
    /// How the parents come by their incremental field.
    #[serde(default)]
    pub order: Order,
    /// Reads only the parents changed since the last read (`{{cursor}}` in the parent
    /// request, as a whole query value so a full read leaves it out); every
    /// `parentFullReadEvery` the parents are read in full.
    #[serde(default)]
    pub incremental: Option<Incremental>,
    /// How often an incremental parent read is a full one (the only kind that removes
    /// partitions): whichever comes first.
    #[serde(default)]
    pub parent_full_read_every: FullReadEvery,
    /// Partitions with state of their own (default 10,000). Past it, every child reads
    /// from one watermark: the start of the last round in which every partition was read
    /// to completion.
    #[serde(default = "ten_thousand")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_partitions: u32,
    /// Child reads per poll (default: every partition); the next poll goes on where this
    /// one stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_partitions_per_poll: Option<u32>,
    /// Limits of one read of the parents.
    #[serde(default)]
    pub limits: Limits,
}

/// When an incremental read of the parents is a full one.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FullReadEvery {
    /// Every this many polls (default 24).
    #[serde(default = "twenty_four")]
    #[schemars(range(min = 1, max = 100_000))]
    pub polls: u32,
    /// At least every this many hours (default 24).
    #[serde(default = "some_twenty_four")]
    #[schemars(range(min = 1, max = 8760))]
    pub hours: Option<u32>,
}

impl Default for FullReadEvery {
    fn default() -> Self {
        Self {
            polls: 24,
            hours: Some(24),
        }
    }
}

fn ten_thousand() -> u32 {
    10_000
}

fn twenty_four() -> u32 {
    24
}

fn some_twenty_four() -> Option<u32> {
    Some(24)
}

fn default_source() -> String {
    "http".into()
}

/// The first request.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequestSpec {
    /// The URL; `{{cursor}}` and `{{now}}` are filled in per poll.
    pub url: String,
    /// `GET` (default) or `POST`.
    #[serde(default)]
    pub method: Method,
    /// Query parameters; a value that is one placeholder with no value yet is left out.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Headers; values not on the allow-list (Accept, Content-Type, User-Agent...) are
    /// treated as secrets.
    #[serde(default)]
    pub headers: Headers,
    /// The POST body (JSON); string values may hold `{{cursor}}` and `{{now}}`.
    #[serde(default)]
    pub body: Option<Value>,
}

impl RequestSpec {
    /// The parent pointers the request uses (`{{parent:/id}}`), each once.
    pub fn parent_pointers(&self) -> Vec<String> {
        let mut texts: Vec<&str> = vec![self.url.as_str()];
        texts.extend(self.query.values().map(String::as_str));
        if let Some(body) = &self.body {
            collect_strings(body, &mut texts);
        }
        let mut out: Vec<String> = Vec::new();
        for text in texts {
            if let Ok(t) = Template::parse(text, Context::Request) {
                for p in t.parent_pointers() {
                    if !out.iter().any(|o| o == p) {
                        out.push(p.to_owned());
                    }
                }
            }
        }
        out
    }
}

/// The request method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Method {
    /// GET.
    #[default]
    #[serde(rename = "GET")]
    Get,
    /// POST with a JSON body.
    #[serde(rename = "POST")]
    Post,
}

/// Where the records are.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecordsSpec {
    /// RFC 6901 pointer to the records; `""` is the body itself.
    pub path: String,
    /// `array` (default) or `values`: an object whose values are the records.
    #[serde(default)]
    pub records_as: RecordsAs,
    /// Pointer to each record's id (required).
    pub id: String,
    /// Pointer to each record's version; left out, a hash of the record's content.
    #[serde(default)]
    pub version: Option<String>,
    /// Records left out (counted as `skipped` in the poll summary).
    #[serde(default)]
    pub skip: Vec<Predicate>,
    /// What a body without the list at `path` means: `error` (default: the poll fails
    /// and says which keys the body has) or `empty` (no records: Google's reports API
    /// leaves `items` out when nothing matched).
    #[serde(default)]
    pub absent_means: AbsentMeans,
}

/// What a missing records list means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum AbsentMeans {
    /// The response is not what was documented: the poll fails.
    #[default]
    Error,
    /// No records.
    Empty,
}

/// How the records sit at `path`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RecordsAs {
    /// A JSON array of records.
    #[default]
    Array,
    /// An object whose values are the records.
    Values,
}

/// A test on a JSON document (a record, or a whole response).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Predicate {
    /// The pointer holds a value other than `null`.
    Present(String),
    /// The pointer holds nothing, or `null`.
    Absent(String),
    /// The pointer holds exactly this value.
    Equals {
        /// Where.
        pointer: String,
        /// What.
        value: Value,
    },
}

impl Predicate {
    /// The pointer it tests.
    pub fn pointer(&self) -> &str {
        match self {
            Predicate::Present(p) | Predicate::Absent(p) => p,
            Predicate::Equals { pointer, .. } => pointer,
        }
    }

    /// Whether it holds for the value found at its pointer.
    pub fn holds(&self, found: Option<&Value>) -> bool {
        let present = found.is_some_and(|v| !v.is_null());
        match self {
            Predicate::Present(_) => present,
            Predicate::Absent(_) => !present,
            Predicate::Equals { value, .. } => found == Some(value),
        }
    }
}

/// What a record's signal says.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignalSpec {
    /// The signal's kind, e.g. `issue`.
    pub kind: String,
    /// A template of record pointers, e.g. `{{/key}}: {{/fields/summary}}`.
    pub title: String,
    /// Severity from a record field (default: info).
    #[serde(default)]
    pub severity: Option<SeveritySpec>,
    /// Pointer to when it happened.
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// A pointer to the record's link, or (with `{{ }}`) a template.
    #[serde(default)]
    pub url: Option<String>,
}

/// Severity from a field.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeveritySpec {
    /// Pointer to the field.
    pub path: String,
    /// Field value to severity (matched without regard to case).
    #[serde(default)]
    pub map: BTreeMap<String, Severity>,
    /// When the field is missing or not in the map.
    #[serde(default = "info")]
    pub default: Severity,
}

fn info() -> Severity {
    Severity::Info
}

/// The order records come in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Order {
    /// Oldest first.
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

/// The incremental cursor.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Incremental {
    /// Pointer to each record's time (read leniently).
    pub field: String,
    /// How `{{cursor}}` is written: `rfc3339` (default), `epochSeconds`, `epochMillis`, or
    /// a strftime pattern such as `%Y-%m-%d %H:%M`.
    #[serde(default = "rfc3339")]
    pub format: String,
    /// The zone a strftime format is written in: `UTC` (default), `+hh:mm`, or an IANA name.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Where the first poll starts: a time (read leniently), or a span before now such
    /// as `-30d`; left out, it has no lower bound.
    #[serde(default)]
    pub initial: Option<String>,
    /// How far before the watermark every later poll starts, in milliseconds.
    #[serde(default)]
    pub lookback_ms: u64,
    /// The longest span `{{cursor}}`..`{{now}}` the API allows (NVD: `120d`), as a number
    /// and a unit (`s`, `m`, `h`, `d`, `w`): a longer gap is read window by window, each
    /// window's end standing in for `{{now}}`.
    #[serde(default)]
    pub max_window: Option<String>,
    /// Most windows one poll reads; the next poll goes on (default 10).
    #[serde(default = "ten")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_windows_per_poll: u32,
}

fn ten() -> u32 {
    10
}

fn rfc3339() -> String {
    "rfc3339".into()
}

/// Limits of one read.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Most pages one read follows; reaching it makes the read partial.
    #[serde(default = "hundred")]
    #[schemars(range(min = 1, max = 100_000))]
    pub max_pages: u64,
    /// Cap on one response body in bytes (default 64 MiB, the core's
    /// `DEFAULT_MAX_BODY_BYTES`); a larger body fails the poll. Raise it only for APIs
    /// that answer in very large pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 4_294_967_296u64), extend("x-unit" = "bytes"))]
    pub max_body_bytes: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_pages: 100,
            max_body_bytes: None,
        }
    }
}

fn hundred() -> u64 {
    100
}

impl Incremental {
    /// Where the first poll starts, at `now_ms`.
    pub fn initial_ms(&self, now_ms: i64) -> Option<i64> {
        self.initial
            .as_deref()
            .and_then(|i| crate::time::parse_start(i, now_ms))
    }

    /// The longest span one read may cover, in milliseconds.
    pub fn max_window_ms(&self) -> Option<i64> {
        self.max_window
            .as_deref()
            .and_then(crate::time::parse_span_ms)
    }

    /// The core's time format for `format`.
    pub fn time_format(&self) -> crate::time::TimeFormat {
        use crate::time::TimeFormat;
        match self.format.as_str() {
            "rfc3339" => TimeFormat::Rfc3339,
            "epochSeconds" => TimeFormat::EpochSeconds,
            "epochMillis" => TimeFormat::EpochMillis,
            pattern => TimeFormat::Pattern {
                pattern: pattern.to_owned(),
                zone: self.time_zone.clone().unwrap_or_else(|| "UTC".into()),
            },
        }
    }
}

impl ReadSpec {
    /// Every mistake, with the field it is in.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        self.request_problems(&mut out);
        self.pointer_problems(&mut out);
        self.signal_problems(&mut out);
        self.incremental_problems(&mut out);
        self.parent_problems(&mut out);
        out.extend(self.auth.problems());
        out
    }

    /// The read of the parents, as a read description of its own (the child's auth; no
    /// signal: parents are not published).
    pub fn parent_read(&self) -> Option<ReadSpec> {
        let p = self.parent.as_ref()?;
        Some(ReadSpec {
            source: self.source.clone(),
            request: p.request.clone(),
            auth: self.auth.clone(),
            records: p.records.clone(),
            fail: self.fail.clone(),
            signal: SignalSpec {
                kind: "parent".into(),
                title: String::new(),
                severity: None,
                occurred_at: None,
                url: None,
            },
            pagination: p.pagination.clone(),
            order: p.order,
            incremental: p.incremental.clone(),
            snapshot: false,
            limits: p.limits.clone(),
            parent: None,
        })
    }

    /// The parent pointers the child request uses (`{{parent:/id}}`), each once.
    pub fn parent_pointers(&self) -> Vec<String> {
        self.request.parent_pointers()
    }

    fn parent_problems(&self, out: &mut Vec<FieldError>) {
        let uses = !self.parent_pointers().is_empty();
        let Some(parent) = &self.parent else {
            if uses {
                out.push(FieldError::new(
                    &["request"],
                    "{{parent:/pointer}} needs parent, whose records fill it",
                ));
            }
            return;
        };
        let origin = |u: &str| template::sample_url(u).ok().map(|u| u.origin());
        let child_origin = origin(&self.request.url);
        let windows = self
            .incremental
            .as_ref()
            .is_some_and(|i| i.max_window.is_some());
        let initial = (parent.incremental.as_ref()).is_some_and(|i| i.initial.is_some());
        out.extend([
            error_if(
                !uses,
                &["request"],
                "a parent/child read needs {{parent:/pointer}} in request.url, request.query or request.body, such as /projects/{{parent:/id}}/issues",
            ),
            error_if(
                self.snapshot,
                &["snapshot"],
                "a parent/child read is incremental or a listing per partition; it cannot be a snapshot",
            ),
            error_if(
                origin(&parent.request.url).is_some_and(|o| Some(o) != child_origin),
                &["parent", "request", "url"],
                "must be on request.url's origin: the credentials are sent only there",
            ),
            error_if(
                !template::parents_after_host(&self.request.url),
                &["request", "url"],
                "{{parent:/pointer}} may stand only in the path or the query, after the host: a parent record never chooses where the credentials go",
            ),
            error_if(
                !parent.request.parent_pointers().is_empty(),
                &["parent", "request"],
                "the parents' own request cannot hold {{parent:/pointer}}",
            ),
            error_if(
                windows,
                &["incremental", "maxWindow"],
                "a parent/child read cannot walk windows: past maxPartitions every child reads from one shared time, which a walk stopped by maxWindowsPerPoll would move past unread data",
            ),
            error_if(
                parent.records.version.is_some(),
                &["parent", "records", "version"],
                "not used: a parent's version is what the child request takes of it",
            ),
            error_if(
                initial,
                &["parent", "incremental", "initial"],
                "a full read of the parents must list them all: leave initial out, and make {{cursor}} a whole query value (a full read leaves it out)",
            ),
        ].into_iter().flatten());
        let Some(read) = self.parent_read() else {
            return;
        };
        let mut inner = Vec::new();
        read.request_problems(&mut inner);
        read.pointer_problems(&mut inner);
        read.incremental_problems(&mut inner);
        for mut e in inner {
            if !matches!(e.path.first(), Some(PathSegment::Key(k)) if k == "fail") {
                e.path.insert(0, PathSegment::Key("parent".into()));
                out.push(e);
            }
        }
    }

    /// The request: its templates, URL, method and link base, and what `{{cursor}}` needs.
    fn request_problems(&self, out: &mut Vec<FieldError>) {
        let url = &self.request.url;
        let first = template::sample_url(url);
        let base = self.pagination.link_base();
        out.extend(error_if(
            base.is_some_and(|b| first.as_ref().is_ok_and(|f| f.origin() != b.origin())),
            &["pagination", "linkBase"],
            "must be on request.url's origin: links to another origin are never followed",
        ));
        // Request templates: which use the cursor, and whether inside a longer value.
        let mut request_texts: Vec<(Vec<String>, &str)> = vec![(
            vec!["request".into(), "url".into()],
            self.request.url.as_str(),
        )];
        for (name, value) in &self.request.query {
            request_texts.push((vec!["request".into(), "query".into(), name.clone()], value));
        }
        if let Some(body) = &self.request.body {
            let mut strings = Vec::new();
            collect_strings(body, &mut strings);
            request_texts.extend(
                strings
                    .into_iter()
                    .map(|s| (vec!["request".into(), "body".into()], s)),
            );
        }
        let (mut cursor_used, mut inside_longer) = (false, false);
        for (i, (path, text)) in request_texts.iter().enumerate() {
            match Template::parse(text, Context::Request) {
                Ok(t) => {
                    cursor_used |= t.uses_cursor();
                    // In the URL itself the cursor is always part of a longer value.
                    inside_longer |= t.uses_cursor() && (i == 0 || !t.is_one_placeholder());
                }
                Err(e) => out.push(at(path, e)),
            }
        }
        out.extend(error_if(
            first.map_or(true, |u| !matches!(u.scheme(), "http" | "https")),
            &["request", "url"],
            "expected an http or https URL",
        ));
        out.extend(error_if(
            self.request.body.is_some() && self.request.method == Method::Get,
            &["request", "body"],
            "a body needs method POST",
        ));
        match &self.incremental {
            None if cursor_used => out.push(FieldError::new(
                &["request"],
                "{{cursor}} needs incremental, which gives it its value",
            )),
            Some(inc) if inside_longer && inc.initial.is_none() => out.push(FieldError::new(
                &["incremental", "initial"],
                "{{cursor}} inside a longer value (a URL, a query clause) needs initial: on a first sync it has no value, and only a whole-value placeholder can be left out",
            )),
            _ => {}
        }
        out.extend(error_if(
            self.snapshot && self.incremental.is_some(),
            &["snapshot"],
            "a snapshot reads the whole set every poll; it cannot also be incremental",
        ));
    }

    /// Every JSON pointer of the spec is one.
    fn pointer_problems(&self, out: &mut Vec<FieldError>) {
        let mut pointers: Vec<(&[&str], &str)> = vec![
            (&["records", "path"], &self.records.path),
            (&["records", "id"], &self.records.id),
        ];
        if let Some(v) = &self.records.version {
            pointers.push((&["records", "version"], v));
        }
        pointers.extend(
            self.records
                .skip
                .iter()
                .map(|p| (&["records", "skip"][..], p.pointer())),
        );
        pointers.extend(self.fail.iter().map(|p| (&["fail"][..], p.pointer())));
        if let Some(s) = &self.signal.severity {
            pointers.push((&["signal", "severity", "path"], &s.path));
        }
        if let Some(p) = &self.signal.occurred_at {
            pointers.push((&["signal", "occurredAt"], p));
        }
        if let Some(s) = self.pagination.stop_when() {
            pointers.push((&["pagination", "stopPath"], s));
        }
        if let Some(m) = self.pagination.more_when() {
            pointers.push((&["pagination", "morePath"], m));
        }
        match &self.pagination {
            Paging::NextUrl { path, .. } => pointers.push((&["pagination", "path"], path)),
            Paging::Cursor {
                path, param, place, ..
            } => {
                pointers.push((&["pagination", "path"], path));
                if *place == TokenPlace::Body {
                    pointers.push((&["pagination", "param"], param));
                    if self.request.method == Method::Get {
                        out.push(FieldError::new(
                            &["pagination", "in"],
                            "a token in the body needs method POST",
                        ));
                    }
                }
            }
            Paging::Offset {
                total_path: Some(t),
                ..
            } => pointers.push((&["pagination", "totalPath"], t)),
            _ => {}
        }
        if let Some(inc) = &self.incremental {
            pointers.push((&["incremental", "field"], &inc.field));
        }
        for (path, p) in pointers {
            if !is_pointer(p) {
                out.push(FieldError::new(
                    path,
                    format!("{p:?} is not a JSON pointer (RFC 6901): use \"\" or a path such as /data/id"),
                ));
            }
        }
    }

    /// The signal's templates and link.
    fn signal_problems(&self, out: &mut Vec<FieldError>) {
        for (field, text) in [
            ("title", Some(&self.signal.title)),
            ("url", self.signal.url.as_ref()),
        ] {
            if let Some(text) = text
                && let Err(e) = Template::parse(text, Context::Record)
            {
                out.push(FieldError::new(&["signal", field], e));
            }
        }
        if let Some(url) = &self.signal.url
            && !url.contains("{{")
            && !is_pointer(url)
        {
            out.push(FieldError::new(
                &["signal", "url"],
                "expected a JSON pointer such as /html_url, or a template such as https://example.com/items/{{/id}}",
            ));
        }
    }

    /// The incremental cursor: zone, format, initial time and windows.
    fn incremental_problems(&self, out: &mut Vec<FieldError>) {
        if let Some(inc) = &self.incremental {
            if let Some(zone) = &inc.time_zone
                && let Err(e) = crate::time::zone(zone)
            {
                out.push(FieldError::new(&["incremental", "timeZone"], e));
            }
            if !matches!(
                inc.format.as_str(),
                "rfc3339" | "epochSeconds" | "epochMillis"
            ) && !inc.format.contains('%')
            {
                out.push(FieldError::new(
                    &["incremental", "format"],
                    "expected rfc3339, epochSeconds, epochMillis or a strftime pattern such as %Y-%m-%d %H:%M",
                ));
            }
            if let Some(initial) = &inc.initial
                && crate::time::parse_start(initial, 0).is_none()
            {
                out.push(FieldError::new(
                    &["incremental", "initial"],
                    "expected a time such as 2024-01-01T00:00:00Z, epoch seconds, or a span before now such as -30d",
                ));
            }
            if inc.max_window.is_some() && self.order == Order::Desc {
                out.push(FieldError::new(
                    &["incremental", "maxWindow"],
                    "windows need order asc: a descending read moves its watermark only when the whole walk completes, so a capped later window would stall it",
                ));
            }
            if let Some(window) = &inc.max_window {
                match inc.max_window_ms() {
                    None => out.push(FieldError::new(
                        &["incremental", "maxWindow"],
                        format!("{window:?} is not a span: expected a number and a unit (s, m, h, d, w), such as 120d"),
                    )),
                    Some(ms) if ms <= i64::try_from(inc.lookback_ms).unwrap_or(i64::MAX) => {
                        out.push(FieldError::new(
                            &["incremental", "maxWindow"],
                            "must be longer than lookbackMs, or a window would never move the watermark",
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
    }
}

fn at(path: &[String], message: String) -> FieldError {
    let refs: Vec<&str> = path.iter().map(String::as_str).collect();
    FieldError::new(&refs, message)
}

/// Every string in a JSON value.
pub fn collect_strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}
