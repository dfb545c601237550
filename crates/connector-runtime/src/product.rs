//! The product's binaries: each binary's own name, the connector types the product has
//! and the binary that runs each, so a binary given a type it does not link names the
//! one that runs it. The core names no provider; this list is the one place that does.

use anyhow::{Result, bail};
use connector_core::{ConnectorConfig, Factories};

/// The name the binary was started under (`connector-noaa`, `connectors`, ...), for a
/// binary that does not name itself.
pub(crate) fn started_as() -> String {
    std::env::args()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "connectors".into())
}

/// The product's connector types and the binary that runs each (besides the universal
/// `connectors`): the one list every binary shares, so a binary skips the types another
/// binary runs and names that binary. The core names no provider.
pub const PRODUCT: [(&str, &str); 5] = [
    ("DATADOG", "connector-datadog"),
    ("GITHUB", "connector-github"),
    ("HTTP_JSON", "connector-http"),
    ("JIRA", "connector-jira"),
    ("NOAA_WEATHER", "connector-noaa"),
];

/// `factories` knowing the product's other types.
pub fn with_product(factories: Factories) -> Factories {
    let types: Vec<&'static str> = PRODUCT.iter().map(|(t, _)| *t).collect();
    factories.with_product_types(&types)
}

/// The binary of the product that runs connectors of `connector_type`.
fn binary_for(connector_type: &str) -> Option<&'static str> {
    PRODUCT
        .iter()
        .find(|(t, _)| *t == connector_type)
        .map(|(_, b)| *b)
}

pub(crate) fn runnable(factories: &Factories, config: &ConnectorConfig) -> Result<()> {
    if factories.get(&config.connector_type).is_some() {
        return Ok(());
    }
    // This binary lacks the type, so it is not the universal one, which runs them all.
    let binary = binary_for(&config.connector_type)
        .map(|b| format!("; run it with {b} or the universal `connectors` binary"))
        .unwrap_or_default();
    bail!(
        "connector \"{}\" has type {}, which this binary does not include (it runs {}){binary}",
        config.name,
        config.connector_type,
        factories.types().join(", ")
    )
}
