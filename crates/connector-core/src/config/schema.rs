//! The JSON Schema of `connectors.json`, generated from the typed model.

use std::sync::OnceLock;

use serde_json::Value;

use super::{ConfigFile, ConnectorConfig};

/// The schema of one connector object (with `$defs`), generated once.
pub(crate) fn connector_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(super::schema_of::<ConnectorConfig>)
}

/// The top-level fields of the file.
pub(crate) fn file_fields() -> Vec<String> {
    super::schema_of::<ConfigFile>()
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// Points every `$ref` to one of `names` at its namespaced copy, `#/$defs/{ty}.{name}`.
fn rename_refs(value: &mut Value, names: &[String], ty: &str) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "$ref"
                    && let Some(name) = v.as_str().and_then(|r| r.strip_prefix("#/$defs/"))
                    && names.iter().any(|n| n == name)
                {
                    *v = Value::String(format!("#/$defs/{ty}.{name}"));
                } else {
                    rename_refs(v, names, ty);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rename_refs(v, names, ty)),
        _ => {}
    }
}

/// JSON Schema of `connectors.json`, with each registered provider's `providerConfig`
/// schema attached through `if type == X then ...`, so editors check provider fields too.
/// `other_types` are the product's types this binary does not include: accepted, with
/// their settings left to the binary that runs them.
pub fn json_schema(providers: &[(&str, Value)], other_types: &[&str]) -> Value {
    let mut schema = super::schema_of::<ConfigFile>();
    let mut defs = serde_json::Map::new();
    let conditionals: Vec<Value> = providers
        .iter()
        .map(|(ty, provider_schema)| {
            let mut provider_schema = provider_schema.clone();
            // A provider's own `$defs` move to the top, where its `$ref`s can find them,
            // under its type's name: two providers may each have a `Resources`, and the
            // second must not replace the first.
            if let Some(Value::Object(own)) = provider_schema
                .as_object_mut()
                .and_then(|o| o.remove("$defs"))
            {
                let names: Vec<String> = own.keys().cloned().collect();
                rename_refs(&mut provider_schema, &names, ty);
                for (name, mut def) in own {
                    rename_refs(&mut def, &names, ty);
                    defs.insert(format!("{ty}.{name}"), def);
                }
            }
            if let Some(o) = provider_schema.as_object_mut() {
                o.remove("$schema");
            }
            serde_json::json!({
                "if": { "properties": { "type": { "const": ty } } },
                "then": { "properties": { "providerConfig": provider_schema } }
            })
        })
        .collect();
    let mut types: Vec<&str> = providers.iter().map(|(ty, _)| *ty).collect();
    types.extend(
        other_types
            .iter()
            .filter(|t| !types.contains(t))
            .collect::<Vec<_>>(),
    );
    types.sort_unstable();
    if let Some(all) = schema.get_mut("$defs").and_then(Value::as_object_mut) {
        for (k, v) in defs {
            all.entry(k).or_insert(v);
        }
    }
    if let Some(connector) = schema.pointer_mut("/$defs/ConnectorConfig") {
        if !conditionals.is_empty() {
            connector["allOf"] = Value::Array(conditionals);
        }
        if !types.is_empty() {
            connector["properties"]["type"]["enum"] = serde_json::json!(types);
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_lists_provider_types_and_declared_ranges() {
        let schema = json_schema(
            &[("NOAA_WEATHER", serde_json::json!({"type": "object"}))],
            &["JIRA"],
        );
        assert_eq!(
            schema.pointer("/$defs/ConnectorConfig/properties/type/enum"),
            Some(&serde_json::json!(["JIRA", "NOAA_WEATHER"]))
        );
        assert_eq!(
            schema.pointer("/$defs/ConnectorConfig/properties/leaseTtlSeconds/maximum"),
            Some(&serde_json::json!(86_400))
        );
        assert!(schema.pointer("/properties/$schema").is_some());
    }
}
