//! One Datadog record (an event, an incident, a monitor): its identity, read on the hot
//! path by pointer, and its signal.

use std::borrow::Cow;

use connector_core::source::records::{required_string, required_time, string_at, text_at};
use connector_core::{Description, ItemError, Record, Severity};

use crate::ResourceName;

impl ResourceName {
    /// The stream's name, the signal's kind and the most records a page may hold.
    pub fn api(self) -> (&'static str, &'static str, u32) {
        match self {
            Self::Events => ("events", "event", 1000),
            Self::Incidents => ("incidents", "incident", 100),
            Self::Monitors => ("monitors", "monitor_alert", 1000),
        }
    }

    /// The pointer to a record's time (its version, and the watermark's), for the
    /// resources read by time; monitors are versioned by state.
    pub fn time(self) -> Option<&'static str> {
        match self {
            ResourceName::Events => Some("/attributes/timestamp"),
            ResourceName::Incidents => Some("/attributes/modified"),
            ResourceName::Monitors => None,
        }
    }
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

/// When a monitor's recorded state began, as its version records it; `None` when the
/// monitor said neither time.
fn changed_of(version: &str) -> Option<&str> {
    version
        .split_once('|')
        .map(|(_, at)| at)
        .filter(|at| !at.is_empty())
}

/// A monitor's numeric id.
fn monitor_id(json: &[u8]) -> Result<u64, ItemError> {
    text_at(json, "/id")
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| ItemError::new("/id is missing or not a monitor number"))
}

/// A record's id and version: the time for events (immutable) and incidents,
/// `<state>|<time>` for monitors (a state change is what a monitor's signal is about).
pub fn identity(resource: ResourceName, text: &str) -> Result<(Cow<'_, str>, String), ItemError> {
    let json = text.as_bytes();
    Ok(match resource.time() {
        Some(time) => {
            let at = required_time(json, time)?.into_owned();
            (required_string(json, &["/id"])?, at)
        }
        None => {
            let id = monitor_id(json)?;
            // An empty state is a state (the version records it as it was).
            let state = string_at(json, "/overall_state")
                .ok_or_else(|| ItemError::new("/overall_state is missing or not a string"))?;
            let changed = string_at(json, "/overall_state_modified")
                .or_else(|| string_at(json, "/modified"))
                .unwrap_or_default();
            (Cow::Owned(id.to_string()), format!("{state}|{changed}"))
        }
    })
}

/// What a record's signal says; `app` is the web app its page is in.
pub fn describe<'a>(
    resource: ResourceName,
    app: &str,
    record: &'a Record,
) -> Result<Description<'a>, ItemError> {
    let text = |pointer: &str| record.text(pointer).unwrap_or_default();
    let (kind, title, severity, path) = match resource {
        ResourceName::Events => {
            let title = record
                .text("/attributes/attributes/title")
                .or_else(|| record.text("/attributes/message"));
            let path = match record.text("/attributes/attributes/evt/id") {
                Some(v1) => format!("/event/event?id={v1}"),
                None => "/event/explorer".to_owned(),
            };
            let status = text("/attributes/attributes/status");
            let severity = Severity::named(&status, &EVENT_SEVERITIES);
            (
                "event",
                title.unwrap_or_default().into_owned(),
                severity,
                path,
            )
        }
        ResourceName::Incidents => {
            let number = record.text("/attributes/public_id");
            let (shown, path) = match number.filter(|n| n.parse::<u64>().is_ok()) {
                Some(n) => (format!("#{n} "), format!("/incidents/{n}")),
                None => (String::new(), "/incidents".to_owned()),
            };
            let title = format!("Incident {shown}{}", text("/attributes/title"));
            let severity = Severity::named(&text("/attributes/severity"), &INCIDENT_SEVERITIES);
            ("incident", title, severity, path)
        }
        ResourceName::Monitors => {
            // The id is the monitor number and the version its state, as identity read them.
            let path = format!("/monitors/{}", record.id());
            let state = state_of(record.version());
            let title = format!("[{state}] {}", text("/name"));
            let severity = monitor_severity(text("/priority").parse().ok(), state);
            ("monitor_alert", title, Some(severity), path)
        }
    };
    let at = match resource.time() {
        Some(time) => record.text(time),
        None => changed_of(record.version()).map(Cow::Borrowed),
    };
    let url = Cow::Owned(format!("{app}{path}"));
    let described = Description::new(kind, title, severity.unwrap_or(Severity::Info));
    Ok(described.at(at).link(Some(url)))
}
