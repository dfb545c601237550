//! The shipped catalog: ready read descriptions, one JSON file each under `catalog/`,
//! compiled in. `tests/catalog.rs` runs every entry against a mock of its API and keeps
//! each shipped version's identity frozen.

use std::sync::{Arc, OnceLock};

use connector_core::spec::catalog::Catalog;

/// `(file, text)` of every entry file, each version its own file (`NAME@N.json`).
macro_rules! entries {
    ($($file:literal),* $(,)?) => {
        &[$(($file, include_str!(concat!("../catalog/", $file)))),*]
    };
}

/// Every shipped entry file; a test checks that none under `catalog/` is missing here.
pub const FILES: &[(&str, &str)] = entries![
    "alertmanager/alerts@1.json",
    "auth0/logs@1.json",
    "aws/health-events@1.json",
    "aws/securityhub-findings@1.json",
    "bitbucket/pull-requests@1.json",
    "cisa/kev@1.json",
    "cloudflare/audit-logs@1.json",
    "crowdstrike/alerts@1.json",
    "datadog/events@1.json",
    "datadog/incidents@1.json",
    "gcp/scc-findings@1.json",
    "github/dependabot-alerts@1.json",
    "github/issues@1.json",
    "github/repository-advisories@1.json",
    "gitlab/issues@1.json",
    "gitlab/vulnerabilities@1.json",
    "google-workspace/reports@1.json",
    "grafana/alerts@1.json",
    "jira/issues@1.json",
    "jira-service-management/requests@1.json",
    "linear/issues@1.json",
    "microsoft-graph/security-alerts@1.json",
    "newrelic/issues@1.json",
    "noaa/alerts@1.json",
    "nvd/cves@1.json",
    "okta/system-log@1.json",
    "opsgenie/alerts@1.json",
    "osv/package-vulnerabilities@1.json",
    "pagerduty/incidents@1.json",
    "pagerduty/log-entries@1.json",
    "sentry/issues@1.json",
    "servicenow/incidents@1.json",
    "slack/audit-logs@1.json",
    "slack/messages@1.json",
    "snyk/issues@1.json",
    "statuspage/account-incidents@1.json",
    "statuspage/incidents@1.json",
    "usgs/earthquakes@1.json",
    "zendesk/tickets@1.json",
];

/// The catalog, parsed once: it is constant data. A broken file (which its test catches
/// before it ships) leaves the catalog empty and says why, rather than stopping the
/// process.
pub fn catalog() -> Arc<Catalog> {
    static CATALOG: OnceLock<Arc<Catalog>> = OnceLock::new();
    Arc::clone(CATALOG.get_or_init(|| {
        let catalog = Catalog::parse(FILES).unwrap_or_else(|e| {
            tracing::error!("the built-in catalog does not load: {e}");
            Catalog::default()
        });
        Arc::new(catalog.with_preamble(include_str!("../catalog/PAGE.md")))
    }))
}
