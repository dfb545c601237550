//! One Datadog record (an event, an incident, a monitor) as an item: its id, version and
//! what its signal says.

use std::borrow::Cow;

use connector_core::source::time::parse_millis;
use connector_core::{ItemError, Severity};
use serde::Deserialize;

/// Which resource a stream reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `/api/v2/events`.
    Events,
    /// `/api/v2/incidents`.
    Incidents,
    /// `/api/v1/monitor`.
    Monitors,
}

/// One record read: its identity and what its signal says.
pub struct Item {
    /// The record's id.
    pub id: String,
    /// Its version: the time for events and incidents, `<state>|<time>` for monitors.
    pub version: String,
    /// `event`, `incident` or `monitor_alert`.
    pub kind: &'static str,
    /// The signal's title.
    pub title: String,
    /// Normalised severity.
    pub severity: Severity,
    /// Path and query of the record's page in the web app.
    pub app_path: String,
    /// When it happened or last changed.
    pub occurred_at: Option<String>,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    attributes: EventAttributes<'a>,
}

#[derive(Deserialize)]
struct EventAttributes<'a> {
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    attributes: Option<EventInner<'a>>,
}

#[derive(Deserialize)]
struct EventInner<'a> {
    #[serde(default, borrow)]
    title: Option<Cow<'a, str>>,
    /// `error`, `warning`, `info`, `success`…: the event's alert type.
    #[serde(default, borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    evt: Option<Evt<'a>>,
}

#[derive(Deserialize)]
struct Evt<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Incident<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    attributes: IncidentAttributes<'a>,
}

#[derive(Deserialize)]
struct IncidentAttributes<'a> {
    #[serde(borrow)]
    modified: Cow<'a, str>,
    #[serde(default)]
    public_id: Option<u64>,
    #[serde(default, borrow)]
    title: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    severity: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Monitor<'a> {
    id: u64,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    overall_state: Cow<'a, str>,
    #[serde(default, borrow)]
    overall_state_modified: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    modified: Option<Cow<'a, str>>,
    #[serde(default)]
    priority: Option<u8>,
}

/// An event's alert type on the normalised scale.
fn event_severity(status: Option<&str>) -> Severity {
    match status.map(str::to_ascii_lowercase).as_deref() {
        Some("error") => Severity::High,
        Some("warning" | "warn") => Severity::Medium,
        _ => Severity::Info,
    }
}

/// `SEV-1` is critical, `SEV-2` high, `SEV-3` medium, `SEV-4` low, others info.
fn incident_severity(severity: Option<&str>) -> Severity {
    match severity.map(str::to_ascii_uppercase).as_deref() {
        Some("SEV-1") => Severity::Critical,
        Some("SEV-2") => Severity::High,
        Some("SEV-3") => Severity::Medium,
        Some("SEV-4") => Severity::Low,
        _ => Severity::Info,
    }
}

/// A monitor's priority (1 highest to 5) on the normalised scale; an alerting monitor
/// without one is high, any other state info.
fn monitor_severity(priority: Option<u8>, state: &str) -> Severity {
    match priority {
        Some(1) => Severity::Critical,
        Some(2) => Severity::High,
        Some(3) => Severity::Medium,
        Some(4) => Severity::Low,
        Some(_) => Severity::Info,
        None if state.eq_ignore_ascii_case("alert") => Severity::High,
        None if state.eq_ignore_ascii_case("warn") => Severity::Medium,
        None => Severity::Info,
    }
}

/// The state a monitor's version records (`<state>|<time>`).
pub fn state_of(version: &str) -> &str {
    version.split('|').next().unwrap_or_default()
}

impl Item {
    /// Reads one record of `resource`.
    pub fn of_text(resource: Resource, text: &str) -> Result<Self, ItemError> {
        let time = |t: &str| -> Result<(), ItemError> {
            parse_millis(t)
                .map(|_| ())
                .ok_or_else(|| ItemError::new(format!("{t:?} is not a time")))
        };
        let item = |id: String, version: String, kind, title, severity, app_path, at| Self {
            id,
            version,
            kind,
            title,
            severity,
            app_path,
            occurred_at: at,
        };
        match resource {
            Resource::Events => {
                let e: Event<'_> = serde_json::from_str(text).map_err(ItemError::new)?;
                time(&e.attributes.timestamp)?;
                let inner = e.attributes.attributes;
                let title = inner
                    .as_ref()
                    .and_then(|i| i.title.clone())
                    .or(e.attributes.message)
                    .unwrap_or_default();
                let severity = event_severity(inner.as_ref().and_then(|i| i.status.as_deref()));
                let app_path = match inner.and_then(|i| i.evt).and_then(|e| e.id) {
                    Some(v1) => format!("/event/event?id={v1}"),
                    None => "/event/explorer".to_owned(),
                };
                // Events are immutable: the time is all a version needs.
                let at = e.attributes.timestamp.into_owned();
                Ok(item(
                    e.id.into_owned(),
                    at.clone(),
                    "event",
                    title.into_owned(),
                    severity,
                    app_path,
                    Some(at),
                ))
            }
            Resource::Incidents => {
                let i: Incident<'_> = serde_json::from_str(text).map_err(ItemError::new)?;
                time(&i.attributes.modified)?;
                let a = i.attributes;
                let number = a.public_id.map(|n| format!("#{n} ")).unwrap_or_default();
                let title = format!("Incident {number}{}", a.title.unwrap_or_default());
                let app_path = match a.public_id {
                    Some(n) => format!("/incidents/{n}"),
                    None => "/incidents".to_owned(),
                };
                let modified = a.modified.into_owned();
                let severity = incident_severity(a.severity.as_deref());
                Ok(item(
                    i.id.into_owned(),
                    modified.clone(),
                    "incident",
                    title,
                    severity,
                    app_path,
                    Some(modified),
                ))
            }
            Resource::Monitors => {
                let m: Monitor<'_> = serde_json::from_str(text).map_err(ItemError::new)?;
                let changed = m.overall_state_modified.or(m.modified);
                let changed_text = changed.as_deref().unwrap_or_default().to_owned();
                let title = format!("[{}] {}", m.overall_state, m.name.unwrap_or_default());
                let severity = monitor_severity(m.priority, &m.overall_state);
                Ok(item(
                    m.id.to_string(),
                    format!("{}|{changed_text}", m.overall_state),
                    "monitor_alert",
                    title,
                    severity,
                    format!("/monitors/{}", m.id),
                    changed.map(Cow::into_owned),
                ))
            }
        }
    }
}
