//! One GitHub record (an issue or pull request, a repository security advisory, a
//! Dependabot alert): its identity, read on the hot path by pointer, and its signal.

use std::borrow::Cow;
use std::collections::BTreeMap;

use connector_core::source::records::{present, required_string, required_time, string_at};
use connector_core::{Description, ItemError, Record, Severity};
use serde::Deserialize;

use crate::ResourceName;

impl ResourceName {
    /// The signal's kind, the stream's name and the endpoint below `/repos/{repo}` (or
    /// `/orgs/{org}`, for alerts).
    pub fn api(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Issues => ("issue", "issues", "issues"),
            Self::SecurityAdvisories => (
                "security_advisory",
                "security-advisories",
                "security-advisories",
            ),
            Self::DependabotAlerts => {
                ("dependabot_alert", "dependabot-alerts", "dependabot/alerts")
            }
        }
    }
}

/// GitHub's severity words (advisories: critical, high, medium, low; alerts also say
/// moderate).
const SEVERITIES: [(&str, Severity); 5] = [
    ("critical", Severity::Critical),
    ("high", Severity::High),
    ("medium", Severity::Medium),
    ("moderate", Severity::Medium),
    ("low", Severity::Low),
];

/// A record's id and version: `node_id`, `ghsa_id` or `html_url` by resource, and
/// `updated_at` (with the state, for alerts, which are dismissed or fixed without always
/// moving `updated_at`).
pub fn identity(resource: ResourceName, text: &str) -> Result<(Cow<'_, str>, String), ItemError> {
    let json = text.as_bytes();
    let updated = required_time(json, "/updated_at")?.into_owned();
    Ok(match resource {
        ResourceName::Issues => (required_string(json, &["/node_id"])?, updated),
        ResourceName::SecurityAdvisories => {
            (required_string(json, &["/ghsa_id", "/node_id"])?, updated)
        }
        // Alerts have no node id; their page URL names the repository and number.
        ResourceName::DependabotAlerts => {
            let state = string_at(json, "/state").unwrap_or_default();
            let id = required_string(json, &["/html_url", "/node_id"])?;
            (id, format!("{updated}|{state}"))
        }
    })
}

/// Whether an issues record is a pull request (it carries a `pull_request` object).
pub fn is_pull_request(text: &str) -> bool {
    present(text.as_bytes(), "/pull_request")
}

#[derive(Deserialize)]
struct Labels<'a> {
    #[serde(default, borrow)]
    labels: Vec<Label<'a>>,
}

#[derive(Deserialize)]
struct Label<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

/// What a record's signal says; `place` is `owner/name` or `org:<org>`. Issues get the
/// most severe of their labels' mapped severities.
pub fn describe<'a>(
    resource: ResourceName,
    place: &str,
    labels: &BTreeMap<String, Severity>,
    record: &'a Record,
) -> Result<Description<'a>, ItemError> {
    let text = |pointer: &str| record.text(pointer).unwrap_or_default();
    let number = record
        .text("/number")
        .map(|n| format!("#{n}"))
        .unwrap_or_default();
    let word = |pointer: &str| Severity::named(&text(pointer), &SEVERITIES);
    let (kind, title, severity) = match resource {
        ResourceName::Issues => {
            let worst = record
                .parse::<Labels<'_>>()?
                .labels
                .iter()
                .filter_map(|l| Severity::mapped(&l.name, labels))
                .max();
            let kind = match is_pull_request(record.raw()) {
                true => "pull_request",
                false => "issue",
            };
            let title = format!("{place}{number}: {}", text("/title"));
            (kind, title, worst)
        }
        ResourceName::SecurityAdvisories => {
            let title = format!("{}: {}", text("/ghsa_id"), text("/summary"));
            ("security_advisory", title, word("/severity"))
        }
        ResourceName::DependabotAlerts => {
            let package = record
                .text("/dependency/package/name")
                .map(|p| format!(" ({p})"))
                .unwrap_or_default();
            let summary = text("/security_advisory/summary");
            let title = format!("{place}{number}: {summary}{package}");
            let severity = word("/security_advisory/severity");
            ("dependabot_alert", title, severity)
        }
    };
    let described = Description::new(kind, title, severity.unwrap_or(Severity::Info));
    Ok(described
        .at(record.text("/updated_at"))
        .link(record.text("/html_url")))
}
