//! The NWS alerts API's raw types and the pure transform from an alert to a signal.
//!
//! Only the fields the connector reads are typed. A page body is kept once, as received,
//! and shared by the alerts read from it: an alert is a core [`Record`], the byte range of
//! its feature in that body, which becomes the signal's payload byte for byte. A 100,000-alert snapshot
//! is about 150 MB of JSON; a private copy of every feature (or of its text fields) would
//! double what a poll holds at its peak.

use std::borrow::Cow;
use std::ops::Range;

use connector_core::detect::{content_version, sorted_fields_version};
use connector_core::source::Body;
use connector_core::source::records::{self, ScanError};
use connector_core::{Description, ItemError, Record, Severity};
use serde::{Deserialize, Serialize};

/// The alerts of one page body, each read on its own: the core's record reader splits
/// the page at `/features` without parsing it as a whole, so one odd feature (or one with
/// bytes that are not UTF-8) fails alone. An error means the body is not a
/// FeatureCollection at all.
pub fn alerts_of(body: &Body) -> Result<Vec<Result<Record, ItemError>>, ScanError> {
    Ok(records::records_at(body, "/features", false)?
        .into_iter()
        .map(|span| match std::str::from_utf8(&body[span.clone()]) {
            Ok(text) => alert(body, span, text)
                .map(|(record, _)| record)
                .map_err(ItemError::new),
            Err(e) => Err(ItemError::new(format!("not UTF-8: {e}"))),
        })
        .collect())
}

#[derive(Debug, Deserialize)]
struct Feature<'a> {
    #[serde(borrow)]
    properties: AlertProperties<'a>,
}

/// The alert fields the connector reads, borrowed from the feature's text (no copies of
/// the long description and instruction, which are only hashed). Times stay strings: they
/// carry the issuing office's local offset, which consumers may want as sent.
///
/// serde borrows a `Cow<str>` field, but not one inside an `Option`: that is always
/// copied. The optional fields go through [`borrowed`] instead, which borrows the same
/// way and fails with the same errors.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct AlertProperties<'a> {
    #[serde(rename = "@id", default, borrow, deserialize_with = "borrowed")]
    url: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    area_desc: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    sent: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    effective: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    onset: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    expires: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    status: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    message_type: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    severity: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    event: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    headline: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    description: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    instruction: Option<Cow<'a, str>>,
}

/// An optional string, borrowed from the text unless it had escapes to undo.
fn borrowed<'de: 'a, 'a, D>(deserializer: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'a>>::deserialize(deserializer)?.map(|b| b.0))
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

/// The alert whose feature is `text`, at `span` of `body` (checked to be UTF-8 already,
/// as the core's reader does), and whether it is a real-world alert (not a test,
/// exercise, draft or system message). Its id is the CAP identifier (`properties.id`;
/// stable, and new for every update), kept as its place in the body; its version the
/// hash of the fields whose change makes the alert worth publishing again.
pub fn alert(
    body: &Body,
    span: Range<usize>,
    text: &str,
) -> Result<(Record, bool), serde_json::Error> {
    let feature: Feature<'_> = serde_json::from_str(text)?;
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
    let actual = p
        .status
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("actual"));
    Ok((Record::new(body, span, &p.id, version), actual))
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

/// What the signal for a new or updated alert says: title, severity, time and link, read
/// again from the feature (only a signal needs them, so a poll where nothing changed reads
/// none of them); its payload is the feature as received, which the core adds.
pub fn describe(alert: &Record) -> Result<Description<'_>, serde_json::Error> {
    let p = serde_json::from_str::<Feature<'_>>(alert.raw())?.properties;
    let title = match (p.headline, p.event, p.area_desc) {
        (Some(h), _, _) if !h.trim().is_empty() => h,
        (_, Some(event), Some(area)) => Cow::Owned(format!("{event}: {area}")),
        (_, Some(event), None) => event,
        _ => Cow::Owned(format!("Weather alert {}", p.id)),
    };
    let severity = severity(p.severity.as_deref());
    let described = Description::new("weather_alert", title, severity);
    Ok(described.at(p.effective.or(p.onset).or(p.sent)).link(p.url))
}
