//! The NWS alerts API's raw types and the pure transform from an alert to a signal.
//!
//! Only the fields the connector reads are typed; the feature itself is kept as received
//! (`Box<RawValue>`) and becomes the signal's payload byte for byte.

use std::borrow::Cow;

use connector_core::detect::{content_version, sorted_fields_version};
use connector_core::signal::SCHEMA_VERSION;
use connector_core::{Change, ItemKey, RawSignal, Severity, SignalContext};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// `GET /alerts/active` and `GET /alerts`: a GeoJSON FeatureCollection.
#[derive(Debug, Deserialize)]
pub struct FeatureCollection {
    /// The alerts, each kept raw until it is parsed on its own, so one odd feature does
    /// not fail the whole page.
    pub features: Vec<Box<RawValue>>,
    /// Only `/alerts` (history) pages; `/alerts/active` is one response.
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

/// The history endpoint's cursor link.
#[derive(Debug, Deserialize)]
pub struct Pagination {
    /// The full URL of the next page; its presence does not promise a non-empty page.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Feature<'a> {
    #[serde(borrow)]
    properties: AlertProperties<'a>,
}

/// The alert fields the connector reads, borrowed from the feature's text (no copies of
/// the long description and instruction, which are only hashed). Times stay strings: they
/// carry the issuing office's local offset, which consumers may want as sent.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertProperties<'a> {
    #[serde(rename = "@id", default, borrow)]
    url: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(default, borrow)]
    area_desc: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    sent: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    effective: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    onset: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    expires: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    severity: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    headline: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    description: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    instruction: Option<Cow<'a, str>>,
}

/// The fields that define an alert's version. Geometry, zones and the JSON-LD context are
/// left out: they do not change what a consumer should act on. Declared in lexicographic
/// order, so serialising it directly is the canonical form (`sorted_fields_version`).
#[derive(Serialize)]
struct VersionFields<'a> {
    description: &'a Option<Cow<'a, str>>,
    effective: &'a Option<Cow<'a, str>>,
    expires: &'a Option<Cow<'a, str>>,
    headline: &'a Option<Cow<'a, str>>,
    instruction: &'a Option<Cow<'a, str>>,
    message_type: &'a Option<Cow<'a, str>>,
    sent: &'a Option<Cow<'a, str>>,
    severity: &'a Option<Cow<'a, str>>,
    status: &'a Option<Cow<'a, str>>,
}

/// One alert: the feature as received plus what the signal needs from it, computed once
/// at parse time so a 100,000-alert poll holds each alert's bytes once.
#[derive(Debug)]
pub struct Alert {
    /// The feature, untouched.
    pub raw: Box<RawValue>,
    /// The CAP identifier (`properties.id`); stable, and new for every update.
    pub id: String,
    /// Hash of the fields whose change makes the alert worth publishing again.
    pub version: String,
    /// Headline, or event and area.
    pub title: String,
    /// NWS severity, normalised.
    pub severity: Severity,
    /// `effective`, else `onset`, else `sent`.
    pub occurred_at: Option<String>,
    /// The alert's URL (`@id`).
    pub url: Option<String>,
    /// `status` is Actual (not a test, exercise, draft or system message).
    pub actual: bool,
}

fn owned(v: &Option<Cow<'_, str>>) -> Option<String> {
    v.as_deref().map(str::to_owned)
}

impl Alert {
    /// Parses one feature; an error names what is missing.
    pub fn parse(raw: Box<RawValue>) -> Result<Self, serde_json::Error> {
        let feature: Feature<'_> = serde_json::from_str(raw.get())?;
        let p = &feature.properties;
        let fields = VersionFields {
            description: &p.description,
            effective: &p.effective,
            expires: &p.expires,
            headline: &p.headline,
            instruction: &p.instruction,
            message_type: &p.message_type,
            sent: &p.sent,
            severity: &p.severity,
            status: &p.status,
        };
        let version = sorted_fields_version(&fields);
        debug_assert_eq!(version, content_version(&fields));
        let title = match (&p.headline, &p.event, &p.area_desc) {
            (Some(h), _, _) if !h.trim().is_empty() => h.to_string(),
            (_, Some(event), Some(area)) => format!("{event}: {area}"),
            (_, Some(event), None) => event.to_string(),
            _ => format!("Weather alert {}", p.id),
        };
        let id = p.id.to_string();
        let severity = severity(p.severity.as_deref());
        let occurred_at = owned(&p.effective)
            .or_else(|| owned(&p.onset))
            .or_else(|| owned(&p.sent));
        let url = owned(&p.url);
        let actual = p
            .status
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("actual"));
        drop(feature);
        Ok(Self {
            raw,
            id,
            version,
            title,
            severity,
            occurred_at,
            url,
            actual,
        })
    }

    /// Identity for change detection.
    pub fn key(&self) -> ItemKey<'_> {
        ItemKey {
            id: Cow::Borrowed(&self.id),
            version: Cow::Borrowed(&self.version),
        }
    }

    /// True for real-world alerts (not tests, exercises, drafts or system messages).
    pub fn is_actual(&self) -> bool {
        self.actual
    }
}

/// NWS severity → the normalised scale.
pub fn severity(nws: Option<&str>) -> Severity {
    match nws.map(str::to_ascii_lowercase).as_deref() {
        Some("extreme") => Severity::Critical,
        Some("severe") => Severity::High,
        Some("moderate") => Severity::Medium,
        Some("minor") => Severity::Low,
        _ => Severity::Info,
    }
}

/// The signal for a new or updated alert.
pub fn alert_signal(
    alert: &Alert,
    change: Change,
    ctx: &SignalContext<'_>,
    connector_type: &'static str,
) -> RawSignal {
    RawSignal {
        schema_version: SCHEMA_VERSION,
        source: "noaa",
        connector: ctx.connector.to_owned(),
        connector_type,
        external_id: alert.id.clone(),
        version: alert.version.clone(),
        kind: "weather_alert",
        change,
        title: alert.title.clone(),
        severity: alert.severity,
        occurred_at: alert.occurred_at.clone(),
        observed_at: ctx.observed_at.to_owned(),
        url: alert.url.clone(),
        payload: alert.raw.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEVERE: &str = include_str!("../tests/fixtures/alerts-active-severe-trimmed.json");
    const MD: &str = include_str!("../tests/fixtures/alerts-active-area-MD.json");

    fn alerts(body: &str) -> Vec<Alert> {
        let fc: FeatureCollection = serde_json::from_str(body).expect("fixture parses");
        fc.features
            .into_iter()
            .map(|f| Alert::parse(f).expect("feature parses"))
            .collect()
    }

    #[test]
    fn recorded_alerts_parse_with_stable_versions() {
        let a = alerts(SEVERE);
        let b = alerts(SEVERE);
        assert_eq!(a.len(), 3);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.version, y.version);
            assert!(x.is_actual());
        }
        assert_ne!(a[0].version, a[1].version);
    }

    #[test]
    fn the_signal_follows_the_contract() {
        let a = &alerts(SEVERE)[0];
        let ctx = SignalContext {
            connector: "weather-noaa",
            observed_at: "2026-11-24T21:00:00.000Z",
        };
        let s = alert_signal(a, Change::Created, &ctx, "NOAA_WEATHER");
        assert_eq!(s.kind, "weather_alert");
        assert_eq!(s.severity, Severity::High);
        assert!(s.title.starts_with("Flood Warning issued September 21"));
        assert_eq!(s.occurred_at.as_deref(), Some("2026-09-21T09:00:00-04:00"));
        assert_eq!(
            s.url.as_deref(),
            Some(
                "https://api.weather.gov/alerts/urn:oid:2.49.0.1.840.0.98dd4a259cd31c075f985143f8f356067c3bcf73.001.1"
            )
        );
        assert_eq!(
            s.payload.get(),
            a.raw.get(),
            "payload is the feature as received"
        );
    }

    #[test]
    fn a_missing_headline_falls_back_to_event_and_area() {
        let a = &alerts(MD)[0];
        assert!(
            a.title.starts_with("Test Message"),
            "no headline: {}",
            a.title
        );
        assert!(!a.is_actual(), "the KEEPALIVE is a Test message");
        let ctx = SignalContext {
            connector: "c",
            observed_at: "x",
        };
        let s = alert_signal(a, Change::Created, &ctx, "NOAA_WEATHER");
        assert!(s.title.starts_with("Test Message"), "{}", s.title);
        assert_eq!(s.severity, Severity::Info);
    }

    #[test]
    fn severities_map_onto_the_normalised_scale() {
        assert_eq!(severity(Some("Extreme")), Severity::Critical);
        assert_eq!(severity(Some("Severe")), Severity::High);
        assert_eq!(severity(Some("Moderate")), Severity::Medium);
        assert_eq!(severity(Some("Minor")), Severity::Low);
        assert_eq!(severity(Some("Unknown")), Severity::Info);
        assert_eq!(severity(None), Severity::Info);
    }

    #[test]
    fn a_changed_description_changes_the_version_and_geometry_does_not() {
        let base = alerts(SEVERE).remove(0);
        let mut v: serde_json::Value = serde_json::from_str(base.raw.get()).expect("json");
        v["geometry"] = serde_json::Value::Null;
        let same = Alert::parse(RawValue::from_string(v.to_string()).expect("raw")).expect("ok");
        assert_eq!(same.version, base.version);
        v["properties"]["description"] = "updated text".into();
        let changed = Alert::parse(RawValue::from_string(v.to_string()).expect("raw")).expect("ok");
        assert_ne!(changed.version, base.version);
    }
}
