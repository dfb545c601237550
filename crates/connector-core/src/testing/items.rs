//! A provider for tests: a JSON array of `{id, rev, title}` items at one URL, served as a
//! snapshot. Small enough to read at a glance, real enough to exercise the pipeline, the
//! HTTP rules, a backend and the contract harness end to end. The core's and the Redis
//! backend's tests share it.

use std::borrow::Cow;

use crate::config::Secret;
use crate::http::{Auth, Conditional, HttpClient};
use crate::pipeline::{CreateError, FetchError, Page, PageEvent, Pages, StreamSpec, single_page};
use crate::signal::{Description, ItemError};
use crate::{ConnectorConfig, ConnectorContext, Cursor, Provider, Record, Severity};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use url::Url;

/// `providerConfig` of `TEST_ITEMS`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ItemsConfig {
    /// Where the API lives.
    pub base_url: Url,
    /// Path of the item list.
    #[serde(default = "default_path")]
    pub path: String,
    /// Optional bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token: Option<Secret>,
    /// Page size, 1 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100), extend("x-expected" = "a page size from 1 to 100"))]
    pub limit: Option<u32>,
}

fn default_path() -> String {
    "/items".into()
}

/// The `TEST_ITEMS` provider.
pub struct ItemsProvider {
    http: HttpClient,
    url: Url,
    streams: [StreamSpec; 1],
}

#[derive(Deserialize)]
struct Fields {
    id: String,
    rev: u64,
    title: String,
}

impl Provider for ItemsProvider {
    const TYPE: &'static str = "TEST_ITEMS";
    type Config = ItemsConfig;

    fn new(config: ItemsConfig, common: &ConnectorContext) -> Result<Self, CreateError> {
        let mut builder = HttpClient::builder(config.base_url).connector_settings(common);
        if let Some(token) = config.api_token {
            builder = builder.auth(Auth::Bearer(token.expose().into()));
        }
        let http = builder.build()?;
        let url = http
            .url(&config.path)
            .map_err(|e| CreateError(e.to_string()))?;
        Ok(Self {
            http,
            url,
            streams: [StreamSpec::main("item", true)],
        })
    }

    fn source(&self) -> &str {
        "items"
    }

    fn streams(&self) -> &[StreamSpec] {
        &self.streams
    }

    fn pages<'a>(&'a self, _stream: &'a StreamSpec, cursor: &'a Cursor) -> Pages<'a, Record> {
        single_page(self.fetch(cursor))
    }

    fn describe<'a>(
        &'a self,
        _stream: &StreamSpec,
        record: &'a Record,
    ) -> Result<Description<'a>, ItemError> {
        let f: Fields = record.parse()?;
        Ok(Description {
            kind: Cow::Borrowed("item"),
            title: Cow::Owned(f.title),
            severity: Severity::Info,
            occurred_at: None,
            url: None,
        })
    }
}

impl ItemsProvider {
    /// The one page: the whole list, or 304 when the validators still match.
    async fn fetch(&self, cursor: &Cursor) -> Result<PageEvent<Record>, FetchError> {
        let resp = match self.http.get_conditional(&self.url, cursor).await? {
            Conditional::NotModified => return Ok(PageEvent::NotModified),
            Conditional::Modified(r) => r,
        };
        let raws: Vec<Box<RawValue>> =
            serde_json::from_slice(&resp.body).map_err(|e| FetchError::malformed(&self.url, e))?;
        let mut items = Vec::with_capacity(raws.len());
        for raw in raws {
            let f: Fields =
                serde_json::from_str(raw.get()).map_err(|e| FetchError::malformed(&self.url, e))?;
            items.push(Record::standalone(raw.get(), &f.id, f.rev.to_string()));
        }
        let next = Cursor {
            etag: resp.etag(),
            last_modified: resp.last_modified(),
            ..Cursor::default()
        };
        let mut page = Page::of(items);
        page.cursor = Some(next);
        Ok(PageEvent::Page(page))
    }
}

/// A body of `n` items with revision `rev` for every item except those listed in `bumped`.
pub fn items_body(ids: &[&str], bumped: &[&str]) -> String {
    let items: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            let rev = if bumped.contains(id) { 2 } else { 1 };
            serde_json::json!({ "id": id, "rev": rev, "title": format!("Item {id}"), "extra": [1, 2] })
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

/// A `TEST_ITEMS` connector named `name` against `base_url`, with quick retries.
pub fn config_for(name: &str, base_url: &str) -> ConnectorConfig {
    let mut c = ConnectorConfig::new(name, ItemsProvider::TYPE)
        .with_provider_config(serde_json::json!({ "baseUrl": base_url }));
    c.retry_config.base_delay_ms = 10;
    c.retry_config.max_delay_ms = 50;
    c
}
