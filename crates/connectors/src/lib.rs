//! The list of built-in connector types: one line per provider.

use connector_core::{Factories, Provider};

/// Every connector type this product ships.
pub fn factories() -> Factories {
    let mut factories = Factories::new();
    factories.register::<connector_noaa::NoaaProvider>();
    factories.register::<connector_jira::JiraProvider>();
    factories.register::<connector_github::GithubProvider>();
    factories.register::<connector_datadog::DatadogProvider>();
    factories.register::<connector_http::HttpJsonProvider>();
    factories.with_catalog(
        connector_http::HttpJsonProvider::TYPE,
        connector_http::catalog(),
    );
    factories
}
