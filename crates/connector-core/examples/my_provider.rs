//! A whole provider: tickets from a paged, incremental JSON API.

use std::borrow::Cow;
use std::time::Duration;

use connector_core::config::Secret;
use connector_core::http::{Auth, HttpClient, Request};
use connector_core::pipeline::{CreateError, FetchError, StreamSpec};
use connector_core::source::records::{required_string, required_time};
use connector_core::source::time::TimeFormat;
use connector_core::source::{Paging, Read, Since, TokenPlace};
use connector_core::{
    ConnectorContext, Cursor, Description, Factories, ItemError, Provider, Record, Severity,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

/// `providerConfig` of a `MY_API` connector; its JSON Schema is what the loader checks.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MyConfig {
    /// Where the API lives.
    pub base_url: Url,
    /// The API token (a secret: never shown by `validate`, logs or errors).
    pub token: Secret,
    /// Records per page.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 100))] // checked at load, and in the schema
    pub limit: u32,
}

fn default_limit() -> u32 {
    50
}

/// One ticket as the API sends it: only the fields the connector reads, borrowed.
#[derive(Deserialize)]
struct Ticket<'a> {
    #[serde(borrow)]
    updated_at: Cow<'a, str>,
    #[serde(borrow, default)]
    title: Cow<'a, str>,
    #[serde(borrow, default)]
    html_url: Option<Cow<'a, str>>,
}

/// The `MY_API` provider.
pub struct MyProvider {
    http: HttpClient,
    limit: u32,
    streams: [StreamSpec; 1],
}

impl Provider for MyProvider {
    const TYPE: &'static str = "MY_API";
    type Config = MyConfig;

    fn new(config: MyConfig, common: &ConnectorContext) -> Result<Self, CreateError> {
        let http = HttpClient::builder(config.base_url)
            .connector_settings(common) // timeouts, retries, masking of secrets
            .auth(Auth::bearer(&config.token)) // sent only to this origin
            .build()?;
        // One stream, not a snapshot, read oldest first (the watermark moves per page).
        let streams = [StreamSpec::main("ticket", false).ascending()];
        Ok(Self {
            http,
            limit: config.limit,
            streams,
        })
    }

    fn source(&self) -> &str {
        "myapi"
    }

    fn streams(&self) -> &[StreamSpec] {
        &self.streams
    }

    fn read<'a>(
        &'a self,
        _: &'a StreamSpec,
        _: &'a Cursor,
    ) -> Result<(&'a HttpClient, Read<'a, Record>), FetchError> {
        let mut url = self.http.base().clone();
        url.set_path("/v1/tickets");
        url.query_pairs_mut()
            .append_pair("limit", &self.limit.to_string());
        let read = Read {
            paging: Paging::cursor("/next", TokenPlace::Query, "cursor"),
            records: "/tickets".into(), // JSON pointer to the list
            watermark: Some("/updated_at".into()),
            // From the watermark less a minute of lookback; everything on the first sync.
            since: Some(Since::new("updated_since", TimeFormat::Rfc3339, 60_000)),
            resume: Some(Duration::from_secs(86_400)), // a stopped read goes on here
            // Identity on the hot path, read by pointer without parsing the record: the id
            // (kept as its place in the page body) and the version. An error fails this
            // record alone. (`Read::new` sees the whole record instead, for a provider that
            // leaves some out on purpose with `Kept::Dropped("why")`.)
            ..Read::identified(Request::get(url), |text| {
                let json = text.as_bytes();
                let version = required_time(json, "/updated_at")?.into_owned();
                Ok((required_string(json, &["/id"])?, version))
            })
        };
        Ok((&self.http, read))
    }

    fn describe<'a>(
        &'a self,
        _: &StreamSpec,
        record: &'a Record,
    ) -> Result<Description<'a>, ItemError> {
        let t: Ticket<'a> = record.parse()?;
        let described = Description::new("ticket", t.title, Severity::Medium);
        Ok(described.at(Some(t.updated_at)).link(t.html_url))
    }
}

/// The connector types this crate's binary runs (`src/main.rs` hands them to
/// `connector_runtime::main`).
pub fn factories() -> Factories {
    Factories::of::<MyProvider>()
}

fn main() {
    println!("{:?}", factories().types());
}
