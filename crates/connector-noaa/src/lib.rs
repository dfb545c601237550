#![doc = include_str!("../README.md")]

pub mod schema;

use std::time::Duration;

use connector_core::config::FieldError;
use connector_core::config::fields::{self, comma_list, error_if};
use connector_core::http::{DEFAULT_USER_AGENT, HttpClient, Request};
use connector_core::pipeline::{CreateError, FetchError, StreamSpec};
use connector_core::source::time::TimeFormat;
use connector_core::source::{Kept, Paging, Read, Revalidate, Since};
use connector_core::{
    ConnectorContext, Cursor, Description, Factories, ItemError, Provider, Record,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

/// State, territory and marine area codes `/alerts/active?area=` accepts.
pub const AREA_CODES: [&str; 75] = [
    "AL", "AK", "AS", "AR", "AZ", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "GU", "HI", "ID", "IL",
    "IN", "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH",
    "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "PR", "RI", "SC", "SD", "TN", "TX", "UT",
    "VT", "VI", "VA", "WA", "WV", "WI", "WY", "MP", "PW", "FM", "MH", "UM", "AM", "AN", "GM", "LC",
    "LE", "LH", "LM", "LO", "LS", "PH", "PK", "PM", "PS", "PZ", "SL",
];

const SEVERITIES: [&str; 5] = ["Extreme", "Severe", "Moderate", "Minor", "Unknown"];
const URGENCIES: [&str; 5] = ["Immediate", "Expected", "Future", "Past", "Unknown"];
const CERTAINTIES: [&str; 5] = ["Observed", "Likely", "Possible", "Unlikely", "Unknown"];
const STATUSES: [&str; 5] = ["actual", "exercise", "system", "test", "draft"];

/// `providerConfig` of a `NOAA_WEATHER` connector.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NoaaConfig {
    /// API root; a local mock in tests and demos.
    #[serde(default = "default_base_url")]
    pub base_url: Url,
    /// The alerts endpoint below `baseUrl`.
    #[serde(default = "default_alerts_path")]
    pub alerts_path: String,
    /// Comma list of state, territory or marine area codes, e.g. `CA,OR,WA` or `PZ`.
    #[serde(default)]
    pub area: Option<String>,
    /// Comma list of Extreme, Severe, Moderate, Minor, Unknown.
    #[serde(default)]
    pub severity: Option<String>,
    /// Comma list of Immediate, Expected, Future, Past, Unknown.
    #[serde(default)]
    pub urgency: Option<String>,
    /// Comma list of Observed, Likely, Possible, Unlikely, Unknown.
    #[serde(default)]
    pub certainty: Option<String>,
    /// Comma list of event names, e.g. `Flood Warning,Tornado Warning`.
    #[serde(default)]
    pub event: Option<String>,
    /// Comma list of zone ids such as `WAZ315` (excludes `area` and `point`).
    #[serde(default)]
    pub zone: Option<String>,
    /// `latitude,longitude` (excludes `area` and `zone`).
    #[serde(default)]
    pub point: Option<String>,
    /// Comma list of actual, exercise, system, test, draft. Default `actual`: without it
    /// the feed carries KEEPALIVE test messages.
    #[serde(default = "default_status")]
    pub status: String,
    /// Most new or changed alerts published by one poll; the rest follow in the next polls
    /// (the core's `maxItemsPerPoll`, by its NOAA name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10_000))]
    pub max_alerts_per_poll: Option<u32>,
    /// Replaces the whole User-Agent header. NWS requires one that identifies the caller.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// An e-mail or URL NWS can reach you at; added to the default User-Agent.
    #[serde(default)]
    pub contact: Option<String>,
    /// Cap on one response body in bytes (default 64 MiB: a nationwide snapshot is a few
    /// hundred KB). Raise it only for very large queries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 4_294_967_296u64), extend("x-unit" = "bytes"))]
    pub max_body_bytes: Option<u64>,
}

fn default_base_url() -> Url {
    Url::parse("https://api.weather.gov").unwrap_or_else(|_| unreachable!("constant URL"))
}

fn default_alerts_path() -> String {
    "/alerts/active".into()
}

fn default_status() -> String {
    "actual".into()
}

fn is_zone(z: &str) -> bool {
    let b = z.as_bytes();
    b.len() == 6
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && (b[2] == b'Z' || b[2] == b'C')
        && b[3..].iter().all(u8::is_ascii_digit)
}

fn is_point(p: &str) -> bool {
    let mut parts = p.split(',').map(|v| v.trim().parse::<f64>());
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(Ok(lat)), Some(Ok(lon)), None) if lat.abs() <= 90.0 && lon.abs() <= 180.0
    )
}

impl NoaaConfig {
    /// The comma lists the API spells its own way, with the values it knows.
    fn lists(&self) -> [(&'static str, Option<&str>, &'static [&'static str]); 4] {
        [
            ("status", Some(self.status.as_str()), &STATUSES),
            ("severity", self.severity.as_deref(), &SEVERITIES),
            ("urgency", self.urgency.as_deref(), &URGENCIES),
            ("certainty", self.certainty.as_deref(), &CERTAINTIES),
        ]
    }

    /// The query string of the first page, in the API's casing.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let upper = |list: &Option<String>| {
            let items = comma_list(list.as_deref());
            (!items.is_empty()).then(|| items.join(",").to_ascii_uppercase())
        };
        let mut q: Vec<(&'static str, Option<String>)> = vec![
            ("area", upper(&self.area)),
            ("zone", upper(&self.zone)),
            ("point", self.point.as_ref().map(|p| p.replace(' ', ""))),
        ];
        for (field, list, known) in self.lists() {
            q.push((
                field,
                fields::known_values(field, list, known).ok().flatten(),
            ));
        }
        let events = comma_list(self.event.as_deref());
        q.push(("event", (!events.is_empty()).then(|| events.join(","))));
        q.into_iter().filter_map(|(k, v)| Some((k, v?))).collect()
    }

    /// The User-Agent to send: the configured one, else the product's with the contact.
    pub fn user_agent(&self) -> String {
        match (&self.user_agent, &self.contact) {
            (Some(ua), _) => ua.clone(),
            (None, Some(contact)) => {
                format!("{} {contact}", DEFAULT_USER_AGENT.trim_end_matches(')')) + ")"
            }
            (None, None) => DEFAULT_USER_AGENT.to_owned(),
        }
    }
}

/// Guard against a server that keeps handing out `next` links.
const MAX_PAGES: u64 = 50;

/// How far before the watermark a history read starts: `sent` values repeat, and an
/// office's message can reach the API a little after the time it carries.
const LOOKBACK_MS: i64 = 10 * 60 * 1000;

/// How long a history `next` link is trusted to continue a stopped read.
const RESUME_FOR: Duration = Duration::from_secs(3600);

/// The `NOAA_WEATHER` provider: active alerts as a snapshot, or the history window.
///
/// `/alerts/active` answers with the whole current set in one response; the history
/// endpoint pages with `pagination.next`, which has no reliable last-page marker, so paging
/// stops on an empty page, a missing link, a link to another host, a repeated link, or the
/// page limit (the toolkit's rules). Only an `/alerts/active` read that ended naturally
/// counts as the complete snapshot. The history is an incremental stream instead: newest
/// first by `sent`, asked from the watermark (`start=`), which is saved when a read
/// completes; a read stopped mid-way goes on at its `next` link.
pub struct NoaaProvider {
    http: HttpClient,
    /// The first page, with the filters (re-added to `next` links that drop them).
    first: Url,
    /// The `/alerts` history rather than the `/alerts/active` snapshot.
    history: bool,
    /// Anything but real-world alerts is dropped (NWS sends KEEPALIVE test messages
    /// unless asked not to).
    actual_only: bool,
    streams: [StreamSpec; 1],
    max_alerts: Option<usize>,
}

impl Provider for NoaaProvider {
    const TYPE: &'static str = "NOAA_WEATHER";
    type Config = NoaaConfig;

    /// Every mistake, with the field it is in.
    fn check(config: &NoaaConfig) -> Vec<FieldError> {
        let area = comma_list(config.area.as_deref());
        let unknown = area
            .iter()
            .filter(|c| !AREA_CODES.contains(&c.to_ascii_uppercase().as_str()));
        let zones = comma_list(config.zone.as_deref());
        let places = [&config.area, &config.zone, &config.point];
        let mut out: Vec<FieldError> = [
            fields::base_url("baseUrl", &config.base_url),
            fields::header_text("userAgent", config.user_agent.as_deref()),
            fields::header_text("contact", config.contact.as_deref()),
            error_if(
                !config.alerts_path.starts_with('/'),
                &["alertsPath"],
                "expected a path starting with '/', e.g. /alerts/active",
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        out.extend(unknown.map(|code| FieldError::new(
            &["area"],
            format!("unknown area code \"{code}\"; expected two-letter state, territory or marine area codes such as CA, TX, PZ, separated by commas"),
        )));
        out.extend(
            config
                .lists()
                .into_iter()
                .filter_map(|(field, list, known)| fields::known_values(field, list, known).err()),
        );
        out.extend([
            error_if(
                zones.iter().any(|z| !is_zone(&z.to_ascii_uppercase())),
                &["zone"],
                "expected zone ids like WAZ315 or OHC009, separated by commas",
            ),
            error_if(
                config.point.as_deref().is_some_and(|p| !is_point(p)),
                &["point"],
                "expected \"latitude,longitude\" in degrees, e.g. \"39.7456,-97.0892\"",
            ),
            error_if(
                places.iter().filter(|v| v.is_some()).count() > 1,
                &[],
                "area, zone and point exclude one another (the API rejects the combination); set only one",
            ),
            error_if(
                config.user_agent.as_deref().is_some_and(|ua| ua.trim().is_empty()),
                &["userAgent"],
                "must not be empty: NWS rejects requests without a User-Agent; leave it out for the default",
            ),
        ].into_iter().flatten());
        out
    }

    fn new(config: NoaaConfig, common: &ConnectorContext) -> Result<Self, CreateError> {
        let mut http = HttpClient::builder(config.base_url.clone())
            .accept("application/geo+json")
            .user_agent(config.user_agent())
            .connector_settings(common);
        if let Some(cap) = config.max_body_bytes {
            http = http.max_body_bytes(usize::try_from(cap).unwrap_or(usize::MAX));
        }
        let http = http.build()?;
        let mut first = http
            .url(&config.alerts_path)
            .map_err(|e| CreateError(format!("alertsPath: {e}")))?;
        first.query_pairs_mut().extend_pairs(config.query());
        // `/alerts/active` is the whole current set; the `/alerts` history is a window.
        let snapshot = config.alerts_path.starts_with("/alerts/active");
        Ok(Self {
            http,
            first,
            history: !snapshot,
            actual_only: config.status.eq_ignore_ascii_case("actual"),
            streams: [if snapshot {
                StreamSpec::main("weather_alert", true)
            } else {
                StreamSpec::main("weather_alert", false).incremental()
            }],
            max_alerts: config.max_alerts_per_poll.map(|m| m as usize),
        })
    }

    fn source(&self) -> &str {
        "noaa"
    }

    fn streams(&self) -> &[StreamSpec] {
        &self.streams
    }

    /// A snapshot's first page is conditional (validators are kept only for one complete
    /// page); the history asks from the watermark, less the lookback.
    fn read<'a>(
        &'a self,
        _: &'a StreamSpec,
        _: &'a Cursor,
    ) -> Result<(&'a HttpClient, Read<'a, Record>), FetchError> {
        let (history, actual_only) = (self.history, self.actual_only);
        let read = Read {
            paging: Paging::next_url("/pagination/next").keep_query(true),
            records: "/features".into(),
            max_pages: MAX_PAGES,
            conditional: if history {
                Revalidate::Never
            } else {
                Revalidate::Whole
            },
            watermark: history.then(|| "/properties/sent".into()),
            since: history.then(|| Since::new("start", TimeFormat::Rfc3339, LOOKBACK_MS)),
            resume: history.then_some(RESUME_FOR),
            ..Read::new(Request::get(self.first.clone()), move |body, span, text| {
                let (alert, actual) = schema::alert(body, span, text).map_err(ItemError::new)?;
                Ok(match actual_only && !actual {
                    true => Kept::Dropped("nonActualDropped"),
                    false => Kept::Item(alert),
                })
            })
        };
        Ok((&self.http, read))
    }

    fn describe<'a>(
        &'a self,
        _stream: &StreamSpec,
        alert: &'a Record,
    ) -> Result<Description<'a>, ItemError> {
        schema::describe(alert)
            .map_err(|e| ItemError::new(format!("the alert's feature no longer parses: {e}")))
    }

    fn max_items_per_poll(&self) -> Option<usize> {
        self.max_alerts
    }
}

/// The connector types this crate's binary runs.
pub fn factories() -> Factories {
    Factories::of::<NoaaProvider>()
}
