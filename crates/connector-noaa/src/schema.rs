//! The NWS alerts API's raw types and the pure transform from an alert to a signal.
//!
//! Only the fields the connector reads are typed. A page body is kept once, as received,
//! and shared by the alerts read from it: an alert is the byte range of its feature in
//! that body, which becomes the signal's payload byte for byte. A 100,000-alert snapshot
//! is about 150 MB of JSON; a private copy of every feature (or of its text fields) would
//! double what a poll holds at its peak.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use connector_core::detect::{content_version, sorted_fields_version};
use connector_core::source::Body;
use connector_core::source::records::{self, ScanError};
use connector_core::{ItemError, ItemKey, ItemSignal, Severity};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The alerts of one page body, each read on its own: the core's record reader splits
/// the page at `/features` without parsing it as a whole, so one odd feature (or one with
/// bytes that are not UTF-8) fails alone. An error means the body is not a
/// FeatureCollection at all.
pub fn alerts_of(body: &Body) -> Result<Vec<Result<Alert, ItemError>>, ScanError> {
    Ok(records::records_at(body, "/features", false)?
        .into_iter()
        .map(|span| match std::str::from_utf8(&body[span.clone()]) {
            Ok(text) => Alert::of_text(body, span, text).map_err(ItemError::new),
            Err(e) => Err(ItemError::new(format!("not UTF-8: {e}"))),
        })
        .collect())
}

/// Where `part`, a slice of `body`, lies in it.
fn span_in(body: &[u8], part: &str) -> Option<Range<usize>> {
    let start = part.as_ptr().addr().checked_sub(body.as_ptr().addr())?;
    let span = start..start.checked_add(part.len())?;
    body.get(span.clone())
        .is_some_and(|s| std::ptr::eq(s, part.as_bytes()))
        .then_some(span)
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

/// One alert: where its feature lies in the shared page body, and where in it its id is,
/// so that a poll copies no string of it. Only the version is computed and held (change
/// detection needs it every poll); what a signal needs is read again from the feature
/// when one is built, which happens for new and changed alerts only.
#[derive(Clone)]
pub struct Alert {
    body: Body,
    span: Range<usize>,
    id: Text,
    version: String,
    actual: bool,
}

/// A string of the feature: where it is in the body, as it almost always is (no escapes
/// to undo), or unescaped in a copy of its own.
#[derive(Debug, Clone)]
enum Text {
    InBody(Range<usize>),
    Unescaped(Box<str>),
}

impl Text {
    /// `value`, read from `body`: its place in it when it was borrowed from it, else a
    /// copy (serde_json unescaped it).
    fn of(body: &[u8], value: &str) -> Self {
        span_in(body, value).map_or_else(|| Self::Unescaped(value.into()), Self::InBody)
    }

    /// The text; a span was cut from a feature checked to be UTF-8, at string bounds.
    fn get<'a>(&'a self, body: &'a [u8]) -> &'a str {
        match self {
            Self::InBody(span) => text_at(body, span.clone()),
            Self::Unescaped(text) => text,
        }
    }
}

/// The alert, not the whole page body it points into.
impl std::fmt::Debug for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alert")
            .field("id", &self.id())
            .field("version", &self.version)
            .field("actual", &self.actual)
            .field("feature", &self.feature())
            .finish()
    }
}

/// What a signal needs of an alert beyond its key, borrowed from the feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertDetails<'a> {
    /// Headline, or event and area.
    pub title: Cow<'a, str>,
    /// NWS severity, normalised.
    pub severity: Severity,
    /// `effective`, else `onset`, else `sent`.
    pub occurred_at: Option<Cow<'a, str>>,
    /// The alert's URL (`@id`).
    pub url: Option<Cow<'a, str>>,
}

impl Alert {
    /// Parses one feature held on its own, in a body of its own (for tests and tools; a
    /// page's alerts share its body instead). An error names what is missing.
    pub fn parse(feature: &str) -> Result<Self, serde_json::Error> {
        let body: Body = Arc::new(feature.as_bytes().to_vec());
        Self::of_text(&body, 0..body.len(), feature)
    }

    /// Parses the feature `text`, at `span` of `body` (checked to be UTF-8 already, as the
    /// core's reader does), keeping the body rather than a copy.
    pub fn of_text(body: &Body, span: Range<usize>, text: &str) -> Result<Self, serde_json::Error> {
        let feature: Feature<'_> = serde_json::from_str(text)?;
        Ok(Self::of(body, span, &feature.properties))
    }

    /// The alert whose feature, at `span` of `body`, has properties `p`.
    fn of(body: &Body, span: Range<usize>, p: &AlertProperties<'_>) -> Self {
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
        Self {
            body: Arc::clone(body),
            span,
            id: Text::of(body, &p.id),
            version,
            actual: p
                .status
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("actual")),
        }
    }

    /// The feature as received, untouched: a slice of the shared page body.
    pub fn feature(&self) -> &str {
        text_at(&self.body, self.span.clone())
    }

    /// The CAP identifier (`properties.id`); stable, and new for every update.
    pub fn id(&self) -> &str {
        self.id.get(&self.body)
    }

    /// Hash of the fields whose change makes the alert worth publishing again.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Identity for change detection.
    pub fn key(&self) -> ItemKey<'_> {
        ItemKey {
            id: Cow::Borrowed(self.id()),
            version: Cow::Borrowed(&self.version),
        }
    }

    /// True for real-world alerts (not tests, exercises, drafts or system messages).
    pub fn is_actual(&self) -> bool {
        self.actual
    }

    /// Title, severity, time and link, read again from the feature: only a signal needs
    /// them, so a poll where nothing changed reads none of them.
    pub fn details(&self) -> Result<AlertDetails<'_>, serde_json::Error> {
        let p = serde_json::from_str::<Feature<'_>>(self.feature())?.properties;
        let title = match (p.headline, p.event, p.area_desc) {
            (Some(h), _, _) if !h.trim().is_empty() => h,
            (_, Some(event), Some(area)) => Cow::Owned(format!("{event}: {area}")),
            (_, Some(event), None) => event,
            _ => Cow::Owned(format!("Weather alert {}", p.id)),
        };
        Ok(AlertDetails {
            title,
            severity: severity(p.severity.as_deref()),
            occurred_at: p.effective.or(p.onset).or(p.sent),
            url: p.url,
        })
    }
}

/// Text of `body` at `span`, which parsing checked to be UTF-8.
fn text_at(body: &[u8], span: Range<usize>) -> &str {
    body.get(span)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or_default()
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

/// What the signal for a new or updated alert says; its payload is the feature as
/// received, borrowed from the page body (serde_json checks it again on the way: it has no
/// constructor that trusts text it has parsed before, so this fails only if the body
/// changed, which it cannot).
pub fn alert_signal(alert: &Alert) -> Result<ItemSignal<'_>, serde_json::Error> {
    let details = alert.details()?;
    let payload: &RawValue = serde_json::from_str(alert.feature())?;
    Ok(ItemSignal {
        kind: Cow::Borrowed("weather_alert"),
        title: details.title,
        severity: details.severity,
        occurred_at: details.occurred_at,
        url: details.url,
        payload: Cow::Borrowed(payload),
    })
}
