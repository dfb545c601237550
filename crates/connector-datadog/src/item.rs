//! One Datadog record (an event, an incident, a monitor): its identity, read on the hot
//! path by pointer, and its signal.

use std::borrow::Cow;

use connector_core::source::records::{string_at, text_at};
use connector_core::source::time::parse_millis;
use connector_core::{Description, ItemError, Record, Severity};

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

/// An event's alert type (`error`, `warning`, `info`, `success`…).
const EVENT_SEVERITIES: [(&str, Severity); 3] = [
    ("error", Severity::High),
    ("warning", Severity::Medium),
    ("warn", Severity::Medium),
];

/// An incident's severity: `SEV-1` critical to `SEV-4` low.
const INCIDENT_SEVERITIES: [(&str, Severity); 4] = [
    ("SEV-1", Severity::Critical),
    ("SEV-2", Severity::High),
    ("SEV-3", Severity::Medium),
    ("SEV-4", Severity::Low),
];

/// A monitor's priority (1 highest to 5) on the normalised scale; an alerting monitor
/// without one is high, a warning one medium, any other state info.
fn monitor_severity(priority: Option<u8>, state: &str) -> Severity {
    const STATES: [(&str, Severity); 2] = [("alert", Severity::High), ("warn", Severity::Medium)];
    match priority {
        Some(1) => Severity::Critical,
        Some(2) => Severity::High,
        Some(3) => Severity::Medium,
        Some(4) => Severity::Low,
        Some(_) => Severity::Info,
        None => Severity::named(state, &STATES).unwrap_or(Severity::Info),
    }
}

/// The state a monitor's version records (`<state>|<time>`).
pub fn state_of(version: &str) -> &str {
    version.split('|').next().unwrap_or_default()
}

/// A string field the record must have, and that must be a time where `time`.
fn required<'j>(json: &'j [u8], pointer: &str, time: bool) -> Result<Cow<'j, str>, ItemError> {
    let text = string_at(json, pointer)
        .ok_or_else(|| ItemError::new(format!("{pointer} is missing or not a string")))?;
    if time && parse_millis(&text).is_none() {
        return Err(ItemError::new(format!("{text:?} is not a time")));
    }
    Ok(text)
}

/// A monitor's numeric id.
fn monitor_id(json: &[u8]) -> Result<u64, ItemError> {
    text_at(json, "/id")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| ItemError::new("/id is missing or not a monitor number"))
}

/// A record's id and version: the time for events (immutable) and incidents,
/// `<state>|<time>` for monitors (a state change is what a monitor's signal is about).
pub fn identity(resource: Resource, text: &str) -> Result<(Cow<'_, str>, String), ItemError> {
    let json = text.as_bytes();
    Ok(match resource {
        Resource::Events => {
            let at = required(json, "/attributes/timestamp", true)?;
            (required(json, "/id", false)?, at.into_owned())
        }
        Resource::Incidents => {
            let at = required(json, "/attributes/modified", true)?;
            (required(json, "/id", false)?, at.into_owned())
        }
        Resource::Monitors => {
            let id = monitor_id(json)?;
            let state = required(json, "/overall_state", false)?;
            let changed = string_at(json, "/overall_state_modified")
                .or_else(|| string_at(json, "/modified"))
                .unwrap_or_default();
            (Cow::Owned(id.to_string()), format!("{state}|{changed}"))
        }
    })
}

/// What a record's signal says; `app` is the web app its page is in.
pub fn describe<'a>(
    resource: Resource,
    app: &str,
    record: &'a Record,
) -> Result<Description<'a>, ItemError> {
    let text = |pointer: &str| record.text(pointer);
    let (kind, title, severity, path, at) = match resource {
        Resource::Events => {
            let title =
                text("/attributes/attributes/title").or_else(|| text("/attributes/message"));
            let status = text("/attributes/attributes/status").unwrap_or_default();
            let path = match text("/attributes/attributes/evt/id") {
                Some(v1) => format!("/event/event?id={v1}"),
                None => "/event/explorer".to_owned(),
            };
            let severity = Severity::named(&status, &EVENT_SEVERITIES);
            let title = title.unwrap_or_default().into_owned();
            let at = text("/attributes/timestamp");
            ("event", title, severity.unwrap_or(Severity::Info), path, at)
        }
        Resource::Incidents => {
            let number = text("/attributes/public_id").filter(|n| n.parse::<u64>().is_ok());
            let shown = number
                .as_ref()
                .map(|n| format!("#{n} "))
                .unwrap_or_default();
            let title = text("/attributes/title").unwrap_or_default();
            let path = match &number {
                Some(n) => format!("/incidents/{n}"),
                None => "/incidents".to_owned(),
            };
            let severity = Severity::named(
                &text("/attributes/severity").unwrap_or_default(),
                &INCIDENT_SEVERITIES,
            );
            let title = format!("Incident {shown}{title}");
            let at = text("/attributes/modified");
            (
                "incident",
                title,
                severity.unwrap_or(Severity::Info),
                path,
                at,
            )
        }
        Resource::Monitors => {
            let id = monitor_id(record.raw().as_bytes())?;
            let state = text("/overall_state").unwrap_or_default();
            let priority = text("/priority").and_then(|p| p.parse().ok());
            let title = format!("[{state}] {}", text("/name").unwrap_or_default());
            let severity = monitor_severity(priority, &state);
            let at = text("/overall_state_modified").or_else(|| text("/modified"));
            (
                "monitor_alert",
                title,
                severity,
                format!("/monitors/{id}"),
                at,
            )
        }
    };
    Ok(Description {
        kind: Cow::Borrowed(kind),
        title: Cow::Owned(title),
        severity,
        occurred_at: at,
        url: Some(Cow::Owned(format!("{app}{path}"))),
    })
}
