//! The repository's `connectors.json`, checked by every real provider this product ships
//! (the core's own test knows only the type names).

use connector_core::ConnectorRegistry;
use connector_core::config::{ConfigSource, Environment};

#[test]
fn every_example_connector_is_valid_for_its_real_provider() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../connectors.json");
    // Credentials the examples reference, as a deployment would set them.
    let env = Environment::from_pairs([
        ("JIRA_EMAIL", "ops@example.com"),
        ("JIRA_API_TOKEN", "t"),
        ("GITHUB_TOKEN", "t"),
        ("DATADOG_API_KEY", "k"),
        ("DATADOG_APP_KEY", "k"),
        ("STATUSPAGE_API_KEY", "k"),
        ("PAGERDUTY_TOKEN", "t"),
    ]);
    let registry = ConnectorRegistry::load(
        &ConfigSource::File(path.into()),
        &env,
        &connectors::factories(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let types: std::collections::BTreeSet<&str> = registry
        .all()
        .iter()
        .map(|c| c.connector_type.as_str())
        .collect();
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        ["DATADOG", "GITHUB", "HTTP_JSON", "JIRA", "NOAA_WEATHER"]
    );
    // Each one builds: the factory accepts what the loader accepted.
    for config in registry.all() {
        let built = connectors::factories().create(
            config.clone(),
            connector_core::Backends::from_one(std::sync::Arc::new(
                connector_core::embedded::EmbeddedBackend::in_memory(),
            )),
        );
        assert!(
            built.is_ok(),
            "{}: {:?}",
            config.name,
            built.err().map(|e| e.to_string())
        );
    }
}

/// `connectors.json` names `./connectors.schema.json` for editors: the file is in the
/// repository and is exactly what `connectors schema` prints (deploy-check then applies it
/// with a JSON Schema validator to every config the repository ships).
#[test]
fn the_committed_schema_is_what_the_binary_prints() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../connectors.schema.json");
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}")),
    )
    .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        committed == connectors::factories().json_schema(),
        "connectors.schema.json is stale: run `just schema` (or `cargo run -q -p connectors -- schema > connectors.schema.json`)"
    );
    let names: Vec<&String> = committed["$defs"]
        .as_object()
        .map(|d| d.keys().collect())
        .unwrap_or_default();
    assert!(
        names.iter().any(|n| n.as_str() == "GITHUB.Resources")
            && names.iter().any(|n| n.as_str() == "DATADOG.Resources"),
        "each provider keeps its own definitions: {names:?}"
    );
}

/// Every JSON block of every README that is a connector (or a whole `connectors.json`)
/// passes `validate` as pasted, with each `${VAR}` set; a block that names a
/// `providerConfig` must be JSON at all (no comments, no ellipses).
#[test]
fn every_readme_config_example_validates_as_pasted() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let mut readmes = vec![std::path::PathBuf::from(format!("{root}/README.md"))];
    for entry in std::fs::read_dir(format!("{root}/crates")).expect("crates") {
        let readme = entry.expect("entry").path().join("README.md");
        if readme.is_file() {
            readmes.push(readme);
        }
    }
    let mut checked = 0;
    for readme in readmes {
        let text = std::fs::read_to_string(&readme).expect("readme");
        // Every fenced block (the odd pieces between ``` marks): its info string, its text.
        let fences = text.split("```").skip(1).step_by(2);
        for (n, fenced) in fences.enumerate() {
            let (info, block) = fenced.split_once('\n').unwrap_or((fenced, ""));
            let looks_like_config = block.contains("\"providerConfig\"");
            if !["json", "jsonc", "js", "javascript", ""].contains(&info.trim()) {
                assert!(
                    !looks_like_config,
                    "{} block {}: a connector example in a ```{info} fence",
                    readme.display(),
                    n + 1
                );
                continue;
            }
            let at = format!("{} block {}", readme.display(), n + 1);
            let value: serde_json::Value = match serde_json::from_str(block) {
                Ok(v) => v,
                Err(e) => {
                    assert!(
                        !looks_like_config,
                        "{at} is not JSON ({e}): a reader pasting it gets the same error"
                    );
                    continue;
                }
            };
            let file = match &value {
                v if v.get("connectors").is_some() => v.clone(),
                v if v.get("type").is_some() && v.get("name").is_some() => {
                    serde_json::json!({ "connectors": [v] })
                }
                _ => continue,
            };
            let text = file.to_string();
            let vars: Vec<(String, String)> = text
                .split("${")
                .skip(1)
                .filter_map(|rest| rest.split('}').next())
                .map(|var| {
                    let name = var.split(":-").next().unwrap_or(var).to_owned();
                    (name, "example-value-0123456789".to_owned())
                })
                .collect();
            let env = Environment::from_pairs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let source = ConfigSource::Text {
                name: at.clone().into(),
                text,
            };
            if let Err(e) = ConnectorRegistry::load(&source, &env, &connectors::factories()) {
                panic!("{at} does not validate:\n{e}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} examples found");
}
