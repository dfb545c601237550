//! A provider's choice of what to read, in the two forms its users write: a list of
//! resource names (`["issues", "dependabotAlerts"]`), or the same names with options
//! (`{"issues": {"labels": "bug"}}`).

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What to read: resource names, each with its default options, or names with options.
/// `N` is the provider's enum of names (so a misspelt name fails the config with the list
/// of known ones), `O` its struct with one optional field of options per name, whose
/// serde field names are the names.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
#[schemars(
    rename = "Resources",
    description = "Which resources to read: a list of names, or names with their options."
)]
pub enum Resources<N, O> {
    /// A list of names, each read with its default options.
    Names(Vec<N>),
    /// Names with their options.
    Options(O),
}

/// Read by its shape, so a mistake is told in the words of the form it is in (an unknown
/// name with the known ones, an unknown option) instead of serde's "did not match any
/// variant of untagged enum".
impl<'de, N: DeserializeOwned, O: DeserializeOwned> Deserialize<'de> for Resources<N, O> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(deserializer)? {
            list @ Value::Array(_) => serde_json::from_value(list)
                .map(Self::Names)
                .map_err(D::Error::custom),
            options @ Value::Object(_) => serde_json::from_value(options)
                .map(Self::Options)
                .map_err(D::Error::custom),
            other => Err(D::Error::custom(format!(
                "expected a list of resource names or an object of names with their options, not {other}"
            ))),
        }
    }
}

impl<N: Serialize, O: DeserializeOwned + Clone + Default> Resources<N, O> {
    /// The options of each resource read: a name in a list reads as that name with `{}`,
    /// so its defaults are the ones its options declare (one place for each default).
    pub fn resolved(&self) -> O {
        match self {
            Self::Options(options) => options.clone(),
            Self::Names(names) => {
                let chosen: Map<String, Value> = names
                    .iter()
                    .filter_map(|n| match serde_json::to_value(n) {
                        Ok(Value::String(name)) => Some((name, Value::Object(Map::new()))),
                        _ => None,
                    })
                    .collect();
                serde_json::from_value(Value::Object(chosen)).unwrap_or_default()
            }
        }
    }

    /// A list of these names.
    pub fn names(names: impl IntoIterator<Item = N>) -> Self {
        Self::Names(names.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    enum Name {
        Issues,
        DependabotAlerts,
    }

    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    struct Options {
        #[serde(default)]
        issues: Option<Issues>,
        #[serde(default)]
        dependabot_alerts: Option<Issues>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Issues {
        #[serde(default = "all")]
        state: String,
    }

    fn all() -> String {
        "all".into()
    }

    #[test]
    fn a_mistake_is_told_in_the_terms_of_its_form() {
        let err = |v: Value| {
            serde_json::from_value::<Resources<Name, Options>>(v)
                .expect_err("refused")
                .to_string()
        };
        let named = err(serde_json::json!(["issues", "dependabotAlert"]));
        assert!(
            named.contains(
                "unknown variant `dependabotAlert`, expected `issues` or `dependabotAlerts`"
            ),
            "{named}"
        );
        let option = err(serde_json::json!({"issue": {}}));
        assert!(option.contains("unknown field `issue`"), "{option}");
        assert!(err(serde_json::json!("issues")).contains("expected a list of resource names"));
        assert!(!named.contains("untagged"));
    }

    #[test]
    fn a_list_of_names_reads_as_each_name_with_its_defaults() {
        let listed: Resources<Name, Options> =
            serde_json::from_str(r#"["dependabotAlerts"]"#).expect("names");
        let options = listed.resolved();
        assert_eq!(options.issues, None);
        assert_eq!(options.dependabot_alerts, Some(Issues { state: all() }));
        let given: Resources<Name, Options> =
            serde_json::from_str(r#"{"issues": {"state": "open"}}"#).expect("options");
        assert_eq!(
            given.resolved().issues.map(|i| i.state),
            Some("open".into())
        );
        assert!(serde_json::from_str::<Resources<Name, Options>>(r#"["isues"]"#).is_err());
        let both = Resources::<Name, Options>::names([Name::Issues, Name::DependabotAlerts]);
        assert!(both.resolved().issues.is_some() && both.resolved().dependabot_alerts.is_some());
    }
}
