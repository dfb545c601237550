//! One GitHub record (an issue or pull request, a repository security advisory, a
//! Dependabot alert) as an item: its id, version and what its signal says.

use connector_core::source::time::parse_millis;
use connector_core::{ItemError, Severity};
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Which resource a stream reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `/repos/{repo}/issues` (pull requests included, told apart).
    Issues,
    /// `/repos/{repo}/security-advisories`.
    SecurityAdvisories,
    /// `/repos/{repo}/dependabot/alerts` or `/orgs/{org}/dependabot/alerts`.
    DependabotAlerts,
}

/// One record read: its identity and what its signal says, borrowed from its text where
/// it can be.
pub struct Item<'a> {
    /// `node_id`, `ghsa_id` or `html_url`, by resource.
    pub id: Cow<'a, str>,
    /// `updated_at` (with the state, for alerts).
    pub version: String,
    /// `issue`, `pull_request`, `security_advisory` or `dependabot_alert`.
    pub kind: &'static str,
    /// What the signal's title says.
    pub title: String,
    /// Normalised severity.
    pub severity: Severity,
    /// `html_url`.
    pub url: Option<Cow<'a, str>>,
    /// `updated_at`.
    pub updated: Cow<'a, str>,
    /// The record carries a `pull_request` object.
    pub is_pull_request: bool,
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(default, borrow)]
    node_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    ghsa_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    html_url: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    updated_at: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    title: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    summary: Option<Cow<'a, str>>,
    #[serde(default)]
    number: Option<u64>,
    #[serde(default, borrow)]
    state: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    severity: Option<Cow<'a, str>>,
    #[serde(default)]
    pull_request: Option<IgnoredAny>,
    #[serde(default, borrow)]
    labels: Vec<Label<'a>>,
    #[serde(default, borrow)]
    security_advisory: Option<AdvisoryRef<'a>>,
    #[serde(default, borrow)]
    dependency: Option<Dependency<'a>>,
}

#[derive(Deserialize)]
struct Label<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

#[derive(Deserialize)]
struct AdvisoryRef<'a> {
    #[serde(default, borrow)]
    severity: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    summary: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Dependency<'a> {
    #[serde(default, borrow)]
    package: Option<Package<'a>>,
}

#[derive(Deserialize)]
struct Package<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

/// GitHub's severity words (advisories: critical, high, medium, low; alerts also say
/// moderate) on the normalised scale.
pub fn severity(word: Option<&str>) -> Severity {
    match word.map(str::to_ascii_lowercase).as_deref() {
        Some("critical") => Severity::Critical,
        Some("high") => Severity::High,
        Some("medium" | "moderate") => Severity::Medium,
        Some("low") => Severity::Low,
        _ => Severity::Info,
    }
}

impl<'a> Item<'a> {
    /// Reads one record of `resource` read from `place` (`owner/name` or `org:<org>`).
    /// Issues get the most severe of their labels' mapped severities.
    pub fn of_text(
        resource: Resource,
        place: &str,
        labels: &BTreeMap<String, Severity>,
        text: &'a str,
    ) -> Result<Self, ItemError> {
        let raw: Raw<'a> = serde_json::from_str(text).map_err(ItemError::new)?;
        let updated = raw
            .updated_at
            .filter(|u| parse_millis(u).is_some())
            .ok_or_else(|| ItemError::new("updated_at is missing or not a time"))?;
        let number = raw.number.map(|n| format!("#{n}")).unwrap_or_default();
        let (id, kind, title, severity, version) = match resource {
            Resource::Issues => {
                let kind = if raw.pull_request.is_some() {
                    "pull_request"
                } else {
                    "issue"
                };
                let severity = raw
                    .labels
                    .iter()
                    .filter_map(|l| {
                        labels
                            .iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(&l.name))
                            .map(|(_, s)| *s)
                    })
                    .max()
                    .unwrap_or(Severity::Info);
                let title = format!("{place}{number}: {}", raw.title.unwrap_or_default());
                (raw.node_id, kind, title, severity, updated.to_string())
            }
            Resource::SecurityAdvisories => {
                let id = raw.ghsa_id.clone().or(raw.node_id);
                let title = format!(
                    "{}: {}",
                    raw.ghsa_id.as_deref().unwrap_or_default(),
                    raw.summary.unwrap_or_default()
                );
                let severity = severity(raw.severity.as_deref());
                (
                    id,
                    "security_advisory",
                    title,
                    severity,
                    updated.to_string(),
                )
            }
            Resource::DependabotAlerts => {
                let advisory = raw.security_advisory;
                let package = raw
                    .dependency
                    .and_then(|d| d.package)
                    .map(|p| format!(" ({})", p.name))
                    .unwrap_or_default();
                let summary = advisory
                    .as_ref()
                    .and_then(|a| a.summary.as_deref())
                    .unwrap_or_default();
                let title = format!("{place}{number}: {summary}{package}");
                let severity = severity(advisory.as_ref().and_then(|a| a.severity.as_deref()));
                // An alert is dismissed or fixed without always moving `updated_at`.
                let version = format!("{updated}|{}", raw.state.as_deref().unwrap_or_default());
                // Alerts have no node id; their page URL names the repository and number.
                (
                    raw.html_url.clone().or(raw.node_id),
                    "dependabot_alert",
                    title,
                    severity,
                    version,
                )
            }
        };
        let id = id
            .filter(|i| !i.is_empty())
            .ok_or_else(|| ItemError::new("the record has no id (node_id, ghsa_id or html_url)"))?;
        Ok(Self {
            id,
            version,
            kind,
            title,
            severity,
            url: raw.html_url,
            updated,
            is_pull_request: raw.pull_request.is_some(),
        })
    }
}
