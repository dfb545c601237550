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
    Ok(records::records_at(body, "/features")?
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

/// One alert: where its feature lies in the shared page body, and where in it the strings
/// a signal needs are, so that a poll copies none of them. Only the version is computed
/// and held (change detection needs it every poll); the strings are copied out when a
/// signal is built, which happens for new and changed alerts only.
#[derive(Clone)]
pub struct Alert {
    body: Body,
    span: Range<usize>,
    id: Text,
    version: String,
    title: Title,
    occurred_at: Option<Text>,
    url: Option<Text>,
    severity: Severity,
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

/// Which strings make the title: the headline, else event and area, else the event, else
/// the id.
#[derive(Debug, Clone)]
enum Title {
    Headline(Text),
    EventArea(Text, Text),
    Event(Text),
    Id,
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

/// What a signal needs of an alert beyond its key, copied out of the body on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertDetails {
    /// Headline, or event and area.
    pub title: String,
    /// NWS severity, normalised.
    pub severity: Severity,
    /// `effective`, else `onset`, else `sent`.
    pub occurred_at: Option<String>,
    /// The alert's URL (`@id`).
    pub url: Option<String>,
}

impl Alert {
    /// Parses one feature held on its own, copied into a body of its own (for tests and
    /// tools; a page's alerts share its body instead). An error names what is missing.
    pub fn parse(feature: &RawValue) -> Result<Self, serde_json::Error> {
        let body: Body = Arc::new(feature.get().as_bytes().to_vec());
        Self::in_body(&body, 0..body.len())
    }

    /// Parses the feature at `span` of `body`, keeping the body rather than a copy.
    pub fn in_body(body: &Body, span: Range<usize>) -> Result<Self, serde_json::Error> {
        let bytes = body.get(span.clone()).unwrap_or_default();
        let text = std::str::from_utf8(bytes).map_err(|e| {
            <serde_json::Error as serde::de::Error>::custom(format!("not UTF-8: {e}"))
        })?;
        Self::of_text(body, span, text)
    }

    /// [`Alert::in_body`] for a feature whose `text` (at `span` of `body`) was checked to
    /// be UTF-8 already, as the core's reader does.
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
        let text = |v: &str| Text::of(body, v);
        let title = match (&p.headline, &p.event, &p.area_desc) {
            (Some(h), _, _) if !h.trim().is_empty() => Title::Headline(text(h)),
            (_, Some(event), Some(area)) => Title::EventArea(text(event), text(area)),
            (_, Some(event), None) => Title::Event(text(event)),
            _ => Title::Id,
        };
        let occurred_at = (p.effective.as_deref())
            .or(p.onset.as_deref())
            .or(p.sent.as_deref());
        Self {
            body: Arc::clone(body),
            span,
            id: text(&p.id),
            version,
            title,
            occurred_at: occurred_at.map(text),
            url: p.url.as_deref().map(text),
            severity: severity(p.severity.as_deref()),
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

    /// Title, severity, time and link, copied out of the body: only a signal needs them,
    /// so a poll where nothing changed copies none of them.
    pub fn details(&self) -> AlertDetails {
        let body: &[u8] = &self.body;
        let title = match &self.title {
            Title::Headline(h) | Title::Event(h) => h.get(body).to_owned(),
            Title::EventArea(event, area) => format!("{}: {}", event.get(body), area.get(body)),
            Title::Id => format!("Weather alert {}", self.id()),
        };
        AlertDetails {
            title,
            severity: self.severity,
            occurred_at: self.occurred_at.as_ref().map(|t| t.get(body).to_owned()),
            url: self.url.as_ref().map(|t| t.get(body).to_owned()),
        }
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
    let details = alert.details();
    let payload: &RawValue = serde_json::from_str(alert.feature())?;
    Ok(ItemSignal {
        kind: Cow::Borrowed("weather_alert"),
        title: Cow::Owned(details.title),
        severity: details.severity,
        occurred_at: details.occurred_at.map(Cow::Owned),
        url: details.url.map(Cow::Owned),
        payload: Cow::Borrowed(payload),
    })
}
