//! The environment as a config source: `ENABLED_CONNECTORS` and `CONNECTOR_<NAME>_<FIELD>`.
//!
//! The environment is a snapshot passed in explicitly, so tests never touch the process
//! environment and one load sees one consistent view. Values stay text here; the schema
//! check turns `"300000"` into a number only where the field is a number.

use std::collections::{BTreeMap, HashMap};

/// The variable naming the config file.
pub const CONFIG_PATH_VAR: &str = "CONNECTORS_CONFIG_PATH";
/// The variable listing the connectors that are enabled.
pub const ENABLED_VAR: &str = "ENABLED_CONNECTORS";
/// Set by `connectors all` in its children's environment: a child ignores the terminal's
/// SIGINT (the supervisor forwards the stop as SIGTERM) and leaves to the supervisor what
/// it already said about the environment.
pub const SUPERVISED_VAR: &str = "CONNECTORS_SUPERVISED";

/// A snapshot of environment variables.
#[derive(Clone, Default)]
pub struct Environment(BTreeMap<String, String>);

impl Environment {
    /// The process environment; variables that are not UTF-8 are ignored.
    pub fn from_process() -> Self {
        Self(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        )
    }

    /// An environment made of the given pairs only.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// One variable's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Every variable, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `ENABLED_CONNECTORS` as a list, when set.
    pub(crate) fn enabled_list(&self) -> Option<Vec<String>> {
        self.get(ENABLED_VAR).map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
    }
}

impl std::fmt::Debug for Environment {
    // Values may be credentials: only names are ever printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// The prefix of a connector's variables: `jira-prod` → `CONNECTOR_JIRA_PROD_`.
pub fn env_prefix(name: &str) -> String {
    let mut out = String::from("CONNECTOR_");
    out.extend(name.chars().map(|c| match c {
        '-' | '.' => '_',
        c => c.to_ascii_uppercase(),
    }));
    out.push('_');
    out
}

/// One `CONNECTOR_<NAME>_<FIELD>` variable, resolved to the field it sets.
#[derive(Debug, Clone)]
pub(crate) struct EnvField {
    /// The variable's name.
    pub var: String,
    /// The field below the connector, e.g. `["retryConfig", "jitterRatio"]`.
    pub path: Vec<String>,
    /// The text as set.
    pub value: String,
}

/// How variable names map onto fields: which names are universal, which sit in
/// `retryConfig`; everything else is a provider field.
pub(crate) struct FieldNames<'a> {
    /// The connector object's fields.
    pub universal: &'a [String],
    /// `retryConfig`'s fields.
    pub retry: &'a [String],
}

/// Groups `CONNECTOR_<NAME>_<FIELD>` variables by connector. When two names share a prefix
/// (`jira` and `jira-prod`), a variable belongs to the longest matching name.
pub(crate) fn env_fields(
    env: &Environment,
    names: &[String],
    fields: &FieldNames<'_>,
) -> HashMap<String, Vec<EnvField>> {
    let mut prefixes: Vec<(String, &String)> = names.iter().map(|n| (env_prefix(n), n)).collect();
    prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    let mut out: HashMap<String, Vec<EnvField>> = HashMap::new();
    let supervised = env.get(SUPERVISED_VAR).is_some();
    for (var, raw) in env.iter() {
        let Some((prefix, name)) = prefixes.iter().find(|(p, _)| var.starts_with(p.as_str()))
        else {
            if !supervised {
                warn_if_meant_for_a_connector(var, &prefixes);
            }
            continue;
        };
        let field = &var[prefix.len()..];
        if field.is_empty() {
            continue;
        }
        out.entry((*name).clone()).or_default().push(EnvField {
            var: var.to_owned(),
            path: env_field_path(field, fields),
            value: raw.to_owned(),
        });
    }
    out
}

/// A `CONNECTOR_*` variable that belongs to no configured connector is most likely a typo
/// in the name (`CONNECTOR_WEATHER_NOA_POLL_INTERVAL_MS`): ignored in silence, the setting
/// it meant would never apply.
fn warn_if_meant_for_a_connector(var: &str, prefixes: &[(String, &String)]) {
    // (Not called in the children of `connectors all`: the supervisor said it once.)
    const NOT_A_CONNECTOR: [&str; 2] = ["CONNECTOR_NAME", "CONNECTOR_BENCH_WORKER"];
    if !var.starts_with("CONNECTOR_") || NOT_A_CONNECTOR.contains(&var) {
        return;
    }
    // A few prefixes show the form; a worker with thousands of connectors would otherwise
    // write them all into one line.
    const SHOWN: usize = 5;
    let mut known: Vec<String> = prefixes
        .iter()
        .take(SHOWN)
        .map(|(p, _)| format!("{p}*"))
        .collect();
    if prefixes.len() > SHOWN {
        known.push(format!("and {} more", prefixes.len() - SHOWN));
    }
    // The name part of the variable against each connector's prefix, a letter or two off.
    let meant = prefixes
        .iter()
        .filter_map(|(p, _)| {
            let (distance, head) = (p.len().saturating_sub(2)..=p.len() + 2)
                .filter_map(|n| var.get(..n).map(|head| (n, head)))
                .map(|(n, head)| (crate::config::errors::edit_distance(head, p), n))
                .min()?;
            (distance <= 2).then_some((distance, p, head))
        })
        .min_by_key(|(d, _, _)| *d)
        .map(|(_, p, head)| format!(" (did you mean {p}{}?)", &var[head..]))
        .unwrap_or_default();
    tracing::warn!(
        variable = var,
        "{var} matches no configured connector and is ignored{meant}; a connector's variables start with {}",
        if known.is_empty() {
            "CONNECTOR_<NAME>_".to_owned()
        } else {
            known.join(", ")
        }
    );
}

/// `POLL_INTERVAL_MS` → `pollIntervalMs`; `RETRY_BASE_DELAY_MS` → `retryConfig.baseDelayMs`;
/// anything else → `providerConfig.<camelCase>`.
pub(crate) fn env_field_path(field: &str, fields: &FieldNames<'_>) -> Vec<String> {
    let camel = camel_case(field);
    if camel != "retryConfig" && camel != "providerConfig" && fields.universal.contains(&camel) {
        return vec![camel];
    }
    for prefix in ["RETRY_CONFIG_", "RETRY_"] {
        if let Some(rest) = field.strip_prefix(prefix) {
            let inner = camel_case(rest);
            if fields.retry.contains(&inner) {
                return vec!["retryConfig".into(), inner];
            }
        }
    }
    vec!["providerConfig".into(), camel]
}

/// SNAKE_CASE → camelCase.
fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    for (i, part) in snake.split('_').filter(|p| !p.is_empty()).enumerate() {
        let lower = part.to_ascii_lowercase();
        if i == 0 {
            out.push_str(&lower);
        } else {
            let mut chars = lower.chars();
            if let Some(first) = chars.next() {
                out.push(first.to_ascii_uppercase());
                out.extend(chars);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_field_names_map_to_config_paths() {
        let universal: Vec<String> = ["pollIntervalMs", "type", "retryConfig", "providerConfig"]
            .map(String::from)
            .to_vec();
        let retry: Vec<String> = ["baseDelayMs", "jitterRatio"].map(String::from).to_vec();
        let fields = FieldNames {
            universal: &universal,
            retry: &retry,
        };
        let path = |f: &str| env_field_path(f, &fields);
        assert_eq!(path("POLL_INTERVAL_MS"), vec!["pollIntervalMs"]);
        assert_eq!(path("TYPE"), vec!["type"]);
        assert_eq!(
            path("RETRY_JITTER_RATIO"),
            vec!["retryConfig", "jitterRatio"]
        );
        assert_eq!(
            path("MAX_ALERTS_PER_POLL"),
            vec!["providerConfig", "maxAlertsPerPoll"]
        );
        assert_eq!(path("API_TOKEN"), vec!["providerConfig", "apiToken"]);
        assert_eq!(env_prefix("jira-prod"), "CONNECTOR_JIRA_PROD_");
    }
}
