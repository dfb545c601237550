#![doc = include_str!("../README.md")]

pub mod item;

use connector_core::config::fields;
use connector_core::config::{FieldError, Secret};
use connector_core::http::{Auth, HttpClient, Request};
use connector_core::pipeline::{CreateError, FetchError, StreamSpec, Streams};
use connector_core::source::time::TimeFormat;
use connector_core::source::{Paging, Read, Since, TokenPlace};
use connector_core::{
    ConnectorContext, Cursor, Description, Factories, ItemError, Provider, Record,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::item::state_of;

/// A Datadog site: where its API and its web app are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum Site {
    /// US1.
    #[default]
    #[serde(rename = "datadoghq.com")]
    Us1,
    /// EU1.
    #[serde(rename = "datadoghq.eu")]
    Eu1,
    /// US3.
    #[serde(rename = "us3.datadoghq.com")]
    Us3,
    /// US5.
    #[serde(rename = "us5.datadoghq.com")]
    Us5,
    /// AP1.
    #[serde(rename = "ap1.datadoghq.com")]
    Ap1,
    /// AP2.
    #[serde(rename = "ap2.datadoghq.com")]
    Ap2,
    /// US1-FED.
    #[serde(rename = "ddog-gov.com")]
    Gov,
}

impl Site {
    /// The API root and the web app of the site: the API is `api.` before the site's
    /// domain; the app is the site itself where it has a region part (`us3.datadoghq.com`),
    /// else `app.` before it.
    pub fn urls(self) -> (String, String) {
        let domain = match self {
            Site::Us1 => "datadoghq.com",
            Site::Eu1 => "datadoghq.eu",
            Site::Us3 => "us3.datadoghq.com",
            Site::Us5 => "us5.datadoghq.com",
            Site::Ap1 => "ap1.datadoghq.com",
            Site::Ap2 => "ap2.datadoghq.com",
            Site::Gov => "ddog-gov.com",
        };
        let app = match domain.matches('.').count() {
            1 => format!("https://app.{domain}"),
            _ => format!("https://{domain}"),
        };
        (format!("https://api.{domain}"), app)
    }
}

/// What to read: `["events", "incidents", "monitors"]`, each with its defaults, or
/// `{"events": {"query": "status:error"}, "monitors": {"states": ["Alert"]}}`.
pub type Resources = connector_core::config::Resources<ResourceName, ResourceOptions>;

fn default_resources() -> Resources {
    Resources::names([
        ResourceName::Events,
        ResourceName::Incidents,
        ResourceName::Monitors,
    ])
}

/// A resource by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ResourceName {
    /// Events, incrementally by time.
    Events,
    /// Incidents.
    Incidents,
    /// Monitors, as a snapshot.
    Monitors,
}

/// Resources with options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ResourceOptions {
    /// Events.
    pub events: Option<EventOptions>,
    /// Incidents.
    pub incidents: Option<PageOptions>,
    /// Monitors.
    pub monitors: Option<MonitorOptions>,
}

/// Options of `events`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct EventOptions {
    /// Events search syntax, e.g. `status:error source:my_apps` (all events by default).
    pub query: Option<String>,
    /// Events per page (at most 1,000; more is clamped).
    #[schemars(range(min = 1))]
    pub page_size: Option<u32>,
}

/// Options of a resource with only a page size.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PageOptions {
    /// Records per page (incidents: at most 100; more is clamped).
    #[schemars(range(min = 1))]
    pub page_size: Option<u32>,
}

/// Options of `monitors`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MonitorOptions {
    /// Only monitors with these tags (filtered by Datadog), e.g. `["team:ops"]`.
    pub tags: Vec<String>,
    /// Publish a monitor only when it enters, changes within or leaves these states
    /// (`Alert`, `Warn`, `No Data`, `OK`, ...); one returning to OK is then published
    /// once, with its OK state. All changes by default.
    pub states: Vec<String>,
    /// Monitors per page (at most 1,000).
    #[schemars(range(min = 1))]
    pub page_size: Option<u32>,
}

/// `providerConfig` of a `DATADOG` connector.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatadogConfig {
    /// The Datadog site (default `datadoghq.com`); sets the API and web-app hosts.
    #[serde(default)]
    pub site: Option<Site>,
    /// The API root instead of a site (a proxy, a test server); needs `appUrl`.
    #[serde(default)]
    pub base_url: Option<Url>,
    /// The web app the signals link to, with `baseUrl`.
    #[serde(default)]
    pub app_url: Option<Url>,
    /// Sent as `DD-API-KEY`.
    pub api_key: Secret,
    /// Sent as `DD-APPLICATION-KEY`; needs the read permissions of the resources
    /// (`events_read`, `incident_read`, `monitors_read`).
    pub app_key: Secret,
    /// What to read (default all three).
    #[serde(default = "default_resources")]
    pub resources: Resources,
    /// The events query, for a config that names no event options.
    #[serde(default)]
    pub query: Option<String>,
    /// How far before the watermark each events read asks again, in seconds.
    #[serde(default = "fields::default_u32::<120>")]
    #[schemars(range(min = 0, max = 86_400), extend("x-unit" = "seconds"))]
    pub overlap_seconds: u32,
    /// How far back the first events read goes, in minutes.
    #[serde(default = "fields::default_u32::<60>")]
    #[schemars(range(min = 1, max = 43_200), extend("x-unit" = "minutes"))]
    pub initial_lookback_minutes: u32,
}

impl DatadogConfig {
    /// The API root and the web app.
    pub fn urls(&self) -> Option<(Url, Url)> {
        match (&self.base_url, &self.app_url) {
            (Some(api), Some(app)) => Some((api.clone(), app.clone())),
            (None, None) => {
                let (api, app) = self.site.unwrap_or_default().urls();
                Some((Url::parse(&api).ok()?, Url::parse(&app).ok()?))
            }
            _ => None,
        }
    }

    /// What to read, with options: a list of names takes the events query from `query`.
    pub fn resolved(&self) -> ResourceOptions {
        let mut options = self.resources.resolved();
        if let (Resources::Names(_), Some(events)) = (&self.resources, &mut options.events) {
            events.query = self.query.clone();
        }
        options
    }
}

/// What one stream reads.
struct Target {
    resource: ResourceName,
    http: HttpClient,
    /// The first page's request, before `filter[from]`.
    request: Request,
    paging: Paging,
    /// Where the records are in a page.
    records: &'static str,
    /// The monitor states watched (all when empty).
    states: Vec<String>,
}

/// A stream's path below the API root, its first query, how its pages follow one
/// another, and where its records are.
type Endpoint = (
    &'static str,
    Vec<(&'static str, String)>,
    Paging,
    &'static str,
);

/// The endpoint of `resource`, read `size` records a page.
fn endpoint(resource: ResourceName, size: u32, query: Option<&str>, tags: &[String]) -> Endpoint {
    match resource {
        // The last page with events still names a next cursor; the empty page after it
        // ends the read.
        ResourceName::Events => {
            let mut q: Vec<_> = query
                .map(|q| ("filter[query]", q.to_owned()))
                .into_iter()
                .collect();
            q.extend([("filter[to]", "now".into()), ("sort", "timestamp".into())]);
            q.push(("page[limit]", size.to_string()));
            let paging = Paging::cursor("/meta/page/after", TokenPlace::Query, "page[cursor]");
            ("/api/v2/events", q, paging, "/data")
        }
        // `next_offset` is not to be trusted: a short or empty page ends it.
        ResourceName::Incidents => {
            let q = vec![
                ("page[size]", size.to_string()),
                ("page[offset]", "0".into()),
            ];
            let paging = Paging::offset("page[offset]", "page[size]", size.into());
            ("/api/v2/incidents", q, paging, "/data")
        }
        ResourceName::Monitors => {
            let mut q = vec![("page", "0".into()), ("page_size", size.to_string())];
            q.extend((!tags.is_empty()).then(|| ("monitor_tags", tags.join(","))));
            let paging = Paging::page_number("page", 0, size.into()).size_param("page_size");
            ("/api/v1/monitor", q, paging, "")
        }
    }
}

/// The `DATADOG` provider: events (incremental), incidents, monitors (a snapshot).
pub struct DatadogProvider {
    streams: Streams<Target>,
    app: String,
    overlap_ms: i64,
    initial_ms: i64,
}

impl Provider for DatadogProvider {
    const TYPE: &'static str = "DATADOG";
    type Config = DatadogConfig;

    /// Every mistake, with the field it is in.
    fn check(config: &DatadogConfig) -> Vec<FieldError> {
        let url = |field, url: &Option<Url>| url.as_ref().and_then(|u| fields::base_url(field, u));
        let (site, base, app) = (&config.site, &config.base_url, &config.app_url);
        let events_options =
            matches!(&config.resources, Resources::Options(o) if o.events.is_some());
        [
            url("baseUrl", base),
            url("appUrl", app),
            fields::error_if(
                site.is_some() && base.is_some(),
                &["baseUrl"],
                "set either site or baseUrl (with appUrl), not both",
            ),
            fields::error_if(
                site.is_none() && base.is_some() && app.is_none(),
                &["appUrl"],
                "baseUrl needs appUrl, the web app the signals link to (e.g. https://app.datadoghq.com)",
            ),
            fields::error_if(base.is_none() && app.is_some(), &["appUrl"], "appUrl goes with baseUrl"),
            fields::error_if(
                config.query.is_some() && events_options,
                &["query"],
                "the events query is resources.events.query here; the top-level query is for a list of resource names",
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn new(config: DatadogConfig, common: &ConnectorContext) -> Result<Self, CreateError> {
        let (api, app) = config
            .urls()
            .ok_or_else(|| CreateError("baseUrl needs appUrl".into()))?;
        let o = config.resolved();
        let wanted = [
            (o.events).map(|e| (ResourceName::Events, e.page_size, e.query, vec![], vec![])),
            (o.incidents).map(|i| (ResourceName::Incidents, i.page_size, None, vec![], vec![])),
            (o.monitors).map(|m| (ResourceName::Monitors, m.page_size, None, m.tags, m.states)),
        ];
        let mut streams = Streams::default();
        for (resource, size, query, tags, states) in wanted.into_iter().flatten() {
            let (name, kind, max) = resource.api();
            // Datadog counts per endpoint: each resource has a client, and a wait, of its own.
            let http = HttpClient::builder(api.clone())
                .auth(Auth::headers(&[
                    ("dd-api-key", &config.api_key),
                    ("dd-application-key", &config.app_key),
                ]))
                .connector_settings(common)
                .rate_limit_per_credential("datadog", &config.api_key, Some(name))
                .build()?;
            let size = size.unwrap_or(100).clamp(1, max);
            let (path, query, paging, records) = endpoint(resource, size, query.as_deref(), &tags);
            let mut url = http
                .url(path)
                .map_err(|e| CreateError(format!("{path}: {e}")))?;
            url.query_pairs_mut().extend_pairs(query);
            let spec = StreamSpec::named(name, kind, resource == ResourceName::Monitors);
            let spec = match resource {
                ResourceName::Events => spec.ascending(),
                _ => spec,
            };
            let request = Request::get(url);
            let target = Target {
                resource,
                http,
                request,
                paging,
                records,
                states,
            };
            streams.push(spec, target);
        }
        Ok(Self {
            streams,
            app: app.as_str().trim_end_matches('/').to_owned(),
            overlap_ms: i64::from(config.overlap_seconds) * 1000,
            initial_ms: i64::from(config.initial_lookback_minutes) * 60_000,
        })
    }

    fn source(&self) -> &str {
        "datadog"
    }

    fn streams(&self) -> &[StreamSpec] {
        self.streams.specs()
    }

    fn read<'a>(
        &'a self,
        stream: &'a StreamSpec,
        _: &'a Cursor,
    ) -> Result<(&'a HttpClient, Read<'a, Record>), FetchError> {
        let target = self.streams.target(stream)?;
        let resource = target.resource;
        let read = Read {
            paging: target.paging.clone(),
            records: target.records.into(),
            watermark: resource.time().map(Into::into),
            since: (resource == ResourceName::Events).then(|| {
                Since::new("filter[from]", TimeFormat::EpochMillis, self.overlap_ms)
                    .initially(self.initial_ms)
            }),
            ..Read::identified(target.request.clone(), move |text| {
                item::identity(resource, text)
            })
        };
        Ok((&target.http, read))
    }

    fn publishes(&self, stream: &StreamSpec, record: &Record, previous: Option<&str>) -> bool {
        let Ok(target) = self.streams.target(stream) else {
            return true;
        };
        if target.states.is_empty() || target.resource != ResourceName::Monitors {
            return true;
        }
        let watched = |state: &str| target.states.iter().any(|s| s.eq_ignore_ascii_case(state));
        watched(state_of(record.version())) || previous.map(state_of).is_some_and(watched)
    }

    fn describe<'a>(
        &'a self,
        stream: &StreamSpec,
        record: &'a Record,
    ) -> Result<Description<'a>, ItemError> {
        item::describe(self.streams.target(stream)?.resource, &self.app, record)
    }

    /// A 403 is a missing permission of the application key; keys are never part of it.
    fn refusal(&self, status: u16, detail: &str) -> Option<String> {
        let said = match detail {
            "" => String::new(),
            detail => format!(" (Datadog says: {detail})"),
        };
        (status == 403).then(|| format!(
            "Datadog denied the read (HTTP 403): the application key lacks a permission this resource needs (events_read, incident_read or monitors_read){said}"
        ))
    }
}

/// The connector types this crate's binary runs.
pub fn factories() -> Factories {
    Factories::of::<DatadogProvider>()
}
