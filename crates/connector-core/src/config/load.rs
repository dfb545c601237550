//! Loading `connectors.json` and the environment into validated [`ConnectorConfig`]s.
//!
//! Order of work: read and parse the file (a syntax error stops here, with line and
//! column); read `ENABLED_CONNECTORS` and `CONNECTOR_<NAME>_<FIELD>`; layer the environment
//! over the file field by field (figment); resolve `${VAR}` in provider settings; check every
//! field of every connector, collecting all mistakes; only then build the typed configs.
//! Validation works on JSON values rather than through serde so that one wrong field does
//! not hide the next, and so each mistake can be traced back to a line or a variable.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::Serialized;
use jsonc_parser::common::Ranged;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::errors::closest;
use super::substitute::{SubstituteError, substitute};
use super::{ConfigError, ConfigErrors, ConnectorConfig, Location, is_secret_field};
use crate::registry::{BUILTIN_TYPES, Factories};

/// Every field a connector object may have, in the file's spelling.
pub(crate) const UNIVERSAL_FIELDS: [&str; 13] = [
    "name",
    "type",
    "enabled",
    "pollIntervalMs",
    "requestTimeoutMs",
    "maxRetries",
    "outputStream",
    "leaseTtlSeconds",
    "commitBatchSize",
    "streamMaxLen",
    "emitRemovals",
    "retryConfig",
    "providerConfig",
];

const RETRY_FIELDS: [&str; 3] = ["baseDelayMs", "maxDelayMs", "jitterRatio"];

/// The variable naming the config file.
pub const CONFIG_PATH_VAR: &str = "CONNECTORS_CONFIG_PATH";
/// The variable listing the connectors that are enabled.
pub const ENABLED_VAR: &str = "ENABLED_CONNECTORS";

/// A snapshot of environment variables, passed explicitly so tests never touch the process
/// environment and the loader sees one consistent view.
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
}

impl std::fmt::Debug for Environment {
    // Values may be credentials: only names are ever printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// Where the connector list comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A JSON file.
    File(PathBuf),
    /// JSON text with a name to report errors against (tests, stdin).
    Text {
        /// Shown in error locations.
        name: PathBuf,
        /// The JSON.
        text: String,
    },
    /// No file: connectors come from the environment only.
    EnvOnly,
}

impl ConfigSource {
    /// `CONNECTORS_CONFIG_PATH` when set, else `./connectors.json` when it exists, else the
    /// environment alone.
    pub fn from_env(env: &Environment) -> Self {
        match env.get(CONFIG_PATH_VAR) {
            Some(path) if !path.is_empty() => Self::File(path.into()),
            _ if Path::new("connectors.json").is_file() => Self::File("connectors.json".into()),
            _ => Self::EnvOnly,
        }
    }

    /// How to name this source in messages.
    pub fn describe(&self) -> String {
        match self {
            Self::File(p) | Self::Text { name: p, .. } => p.display().to_string(),
            Self::EnvOnly => "the environment".into(),
        }
    }
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A mistake inside one connector, relative to the connector object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path below the connector (for provider checks: below `providerConfig`).
    pub path: Vec<PathSegment>,
    /// What is wrong and what would be right; never the value itself.
    pub message: String,
}

impl FieldError {
    /// A mistake at `path` (dot-separated keys; `[n]` for indexes is not needed here).
    pub fn new(path: &[&str], message: impl Into<String>) -> Self {
        Self {
            path: path
                .iter()
                .map(|k| PathSegment::Key((*k).to_owned()))
                .collect(),
            message: message.into(),
        }
    }
}

fn render_path(prefix: &str, segs: &[PathSegment]) -> String {
    let mut out = prefix.to_owned();
    for seg in segs {
        match seg {
            PathSegment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            PathSegment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Loads, layers, substitutes and validates the connector configuration.
///
/// Returns every mistake at once; on success every config is valid for its provider.
pub fn load(
    source: &ConfigSource,
    env: &Environment,
    factories: &Factories,
) -> Result<Vec<ConnectorConfig>, ConfigErrors> {
    load_for(source, env, factories, None)
}

/// [`load`] for a process that runs only the connector `only`: the other connectors are
/// still checked, but variables they reference need not be set.
pub fn load_for(
    source: &ConfigSource,
    env: &Environment,
    factories: &Factories,
    only: Option<&str>,
) -> Result<Vec<ConnectorConfig>, ConfigErrors> {
    let (file_name, text) = match source {
        ConfigSource::File(path) => match std::fs::read_to_string(path) {
            Ok(text) => (Some(path.clone()), Some(text)),
            Err(e) => {
                return Err(ConfigErrors(vec![ConfigError::new(
                    "",
                    format!(
                        "cannot read config file {} ({e}); set {CONFIG_PATH_VAR} to an existing file",
                        path.display()
                    ),
                )]));
            }
        },
        ConfigSource::Text { name, text } => (Some(name.clone()), Some(text.clone())),
        ConfigSource::EnvOnly => (None, None),
    };
    let mut loader = Loader {
        file_name,
        text: text.as_deref(),
        ast_positions: None,
        errors: Vec::new(),
        only: only.map(str::to_owned),
    };
    let configs = loader.run(env, factories);
    if loader.errors.is_empty() {
        Ok(configs)
    } else {
        // In reading order, so the list can be worked through top to bottom.
        loader.errors.sort_by_key(|e| match &e.location {
            Location::File { line, column, .. } => (0, *line, *column),
            Location::Env { .. } => (1, 0, 0),
            Location::Unknown => (2, 0, 0),
        });
        Err(ConfigErrors(loader.errors))
    }
}

/// Where a connector came from: its index in the file, or only the environment.
#[derive(Debug, Clone)]
enum Origin {
    File(usize),
    EnvOnly(String),
}

struct Candidate {
    origin: Origin,
    value: Value,
    /// Field paths (below the connector) set by environment variables, with the variable.
    env_fields: Vec<(Vec<PathSegment>, String)>,
}

struct Loader<'a> {
    file_name: Option<PathBuf>,
    text: Option<&'a str>,
    ast_positions: Option<Option<Positions>>,
    errors: Vec<ConfigError>,
    only: Option<String>,
}

impl Loader<'_> {
    fn run(&mut self, env: &Environment, factories: &Factories) -> Vec<ConnectorConfig> {
        let file_connectors = match self.text {
            Some(text) => match self.parse_file(text) {
                Some(list) => list,
                None => return Vec::new(),
            },
            None => Vec::new(),
        };
        let mut candidates: Vec<Candidate> = file_connectors
            .into_iter()
            .enumerate()
            .map(|(i, value)| Candidate {
                origin: Origin::File(i),
                value,
                env_fields: Vec::new(),
            })
            .collect();
        self.layer_env(env, &mut candidates);

        let lookup = |var: &str| env.get(var).map(str::to_owned);
        let mut seen_names: HashMap<String, String> = HashMap::new();
        let mut configs = Vec::new();
        for cand in &mut candidates {
            let before = self.errors.len();
            let here = self.describe_origin(&cand.origin);
            let Some(obj) = cand.value.as_object_mut() else {
                self.report(cand, &[], "expected an object describing one connector");
                continue;
            };
            let name = obj.get("name").and_then(Value::as_str).map(str::to_owned);
            let mut problems = Vec::new();
            // Credentials are needed only by connectors this process will run: a disabled
            // connector, or one of a type another binary runs, may reference variables
            // that are not set here.
            let runs_here = obj.get("enabled").and_then(Value::as_bool) != Some(false)
                && obj
                    .get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| factories.get(t).is_some())
                && self
                    .only
                    .as_deref()
                    .is_none_or(|only| name.as_deref() == Some(only));
            let mut unresolved_elsewhere = false;
            if let Some(Value::Object(provider)) = obj.get_mut("providerConfig") {
                let mut unresolved = Vec::new();
                substitute_all(provider, &mut Vec::new(), &lookup, &mut unresolved);
                unresolved_elsewhere = !runs_here && !unresolved.is_empty();
                if runs_here {
                    let who = name.as_deref().unwrap_or("?");
                    problems.extend(unresolved.into_iter().map(|mut p| {
                        p.message = p.message.replace("{who}", who);
                        p
                    }));
                }
            }
            check_universal(obj, &mut problems);
            if let Some(name) = &name {
                if let Some(first) = seen_names.insert(name.clone(), here) {
                    problems.push(FieldError::new(
                        &["name"],
                        format!("duplicate connector name \"{name}\" (first defined at {first}); names must be unique"),
                    ));
                }
            }
            if let Some(ty) = obj.get("type").and_then(Value::as_str) {
                match factories.get(ty) {
                    // Settings still holding `${VAR}` text cannot be judged; this process
                    // does not run the connector, so they need not be.
                    Some(_) if unresolved_elsewhere => {}
                    Some(factory) => {
                        let empty = Map::new();
                        let provider = obj
                            .get("providerConfig")
                            .and_then(Value::as_object)
                            .unwrap_or(&empty);
                        for mut e in factory.validate(provider) {
                            e.path.insert(0, PathSegment::Key("providerConfig".into()));
                            problems.push(e);
                        }
                    }
                    // Run by another binary of the product, which checks its settings.
                    None if BUILTIN_TYPES.contains(&ty) => {}
                    None => {
                        let mut known = factories.types();
                        let extra: Vec<&str> = BUILTIN_TYPES
                            .iter()
                            .copied()
                            .filter(|t| !known.contains(t))
                            .collect();
                        known.extend(extra);
                        known.sort_unstable();
                        let hint = closest(ty, known.iter().copied())
                            .map(|k| format!(" (did you mean \"{k}\"?)"))
                            .unwrap_or_default();
                        problems.push(FieldError::new(
                            &["type"],
                            format!(
                                "unknown connector type \"{ty}\"{hint}; known types: {}",
                                known.join(", ")
                            ),
                        ));
                    }
                }
            }
            for p in problems {
                self.report(cand, &p.path, p.message);
            }
            if self.errors.len() == before {
                match serde_json::from_value::<ConnectorConfig>(cand.value.clone()) {
                    Ok(cfg) => configs.push(cfg),
                    Err(e) => self.report(cand, &[], e.to_string()),
                }
            }
        }
        configs
    }

    /// Parses the file; a syntax error or a wrong top-level shape ends the load here.
    fn parse_file(&mut self, text: &str) -> Option<Vec<Value>> {
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let full = e.to_string();
                let message = full
                    .rsplit_once(" at line ")
                    .map_or(full.as_str(), |(m, _)| m)
                    .to_owned();
                self.errors.push(ConfigError {
                    location: self.file_location_at(e.line(), e.column()),
                    path: String::new(),
                    message: format!("invalid JSON: {message}"),
                });
                return None;
            }
        };
        let Value::Object(mut top) = value else {
            self.report_file(&[], "expected an object like {\"connectors\": [...]}");
            return None;
        };
        for key in top.keys() {
            if key != "connectors" && key != "$schema" && key != "$comment" {
                let hint = closest(key, ["connectors"])
                    .map(|k| format!(" (did you mean \"{k}\"?)"))
                    .unwrap_or_default();
                self.report_file(
                    &[PathSegment::Key(key.clone())],
                    format!("unknown field \"{key}\"{hint}; expected \"connectors\""),
                );
            }
        }
        match top.remove("connectors") {
            Some(Value::Array(list)) => Some(list),
            Some(_) => {
                self.report_file(
                    &[PathSegment::Key("connectors".into())],
                    "expected an array of connector objects",
                );
                None
            }
            None => {
                self.report_file(&[], "missing field \"connectors\" (an array of connectors)");
                None
            }
        }
    }

    /// Applies `ENABLED_CONNECTORS` and `CONNECTOR_<NAME>_<FIELD>` over the file's connectors.
    fn layer_env(&mut self, env: &Environment, candidates: &mut Vec<Candidate>) {
        let enabled: Option<Vec<String>> = env.get(ENABLED_VAR).map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        });
        let mut names: Vec<String> = candidates
            .iter()
            .filter_map(|c| {
                c.value
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
        for name in enabled.iter().flatten() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let overrides = env_overrides(env, &names);
        for name in enabled.iter().flatten() {
            let in_file = candidates
                .iter()
                .any(|c| c.value.get("name").and_then(Value::as_str) == Some(name));
            if !in_file {
                let var = format!("{}TYPE", env_prefix(name));
                if env.get(&var).is_none() {
                    self.errors.push(ConfigError {
                        location: Location::Env {
                            var: ENABLED_VAR.into(),
                        },
                        path: format!("connectors[{name}]"),
                        message: format!(
                            "\"{name}\" is listed in {ENABLED_VAR} but is not in {} and {var} is not set",
                            self.file_name
                                .as_deref()
                                .map_or("any config file".into(), |p| p.display().to_string()),
                        ),
                    });
                    continue;
                }
                candidates.push(Candidate {
                    origin: Origin::EnvOnly(name.clone()),
                    value: serde_json::json!({ "name": name }),
                    env_fields: Vec::new(),
                });
            }
        }
        for cand in candidates.iter_mut() {
            let Some(name) = cand
                .value
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_owned)
            else {
                continue;
            };
            if let Some(list) = &enabled {
                let on = list.contains(&name);
                if let Some(obj) = cand.value.as_object_mut() {
                    obj.insert("enabled".into(), Value::Bool(on));
                }
            }
            let Some(EnvOverride { value, fields }) = overrides.get(&name) else {
                continue;
            };
            if !cand.value.is_object() {
                continue;
            }
            let merged = Figment::new()
                .merge(Serialized::defaults(&cand.value))
                .merge(Serialized::defaults(value))
                .extract::<Value>();
            match merged {
                Ok(v) => cand.value = v,
                Err(e) => self.errors.push(ConfigError::new(
                    format!("connectors[{name}]"),
                    format!("cannot apply environment overrides: {e}"),
                )),
            }
            cand.env_fields = fields.clone();
        }
    }

    fn describe_origin(&mut self, origin: &Origin) -> String {
        match origin {
            Origin::File(i) => {
                let loc = self.file_location(&[
                    PathSegment::Key("connectors".into()),
                    PathSegment::Index(*i),
                ]);
                match loc {
                    Location::File { line, .. } => format!("connectors[{i}], line {line}"),
                    _ => format!("connectors[{i}]"),
                }
            }
            Origin::EnvOnly(_) => "the environment".into(),
        }
    }

    fn report(&mut self, cand: &Candidate, path: &[PathSegment], message: impl Into<String>) {
        let env_var = cand
            .env_fields
            .iter()
            .find(|(p, _)| path.starts_with(p) || p.starts_with(path) && !path.is_empty())
            .map(|(_, var)| var.clone());
        let (prefix, location) = match &cand.origin {
            Origin::File(i) => {
                let mut full = vec![
                    PathSegment::Key("connectors".into()),
                    PathSegment::Index(*i),
                ];
                full.extend_from_slice(path);
                let location = match env_var {
                    Some(var) => Location::Env { var },
                    None => self.file_location(&full),
                };
                (format!("connectors[{i}]"), location)
            }
            Origin::EnvOnly(name) => (
                format!("connectors[{name}]"),
                env_var.map_or(Location::Unknown, |var| Location::Env { var }),
            ),
        };
        self.errors.push(ConfigError {
            location,
            path: render_path(&prefix, path),
            message: message.into(),
        });
    }

    fn report_file(&mut self, path: &[PathSegment], message: impl Into<String>) {
        let location = self.file_location(path);
        self.errors.push(ConfigError {
            location,
            path: render_path("", path),
            message: message.into(),
        });
    }

    fn file_location_at(&self, line: usize, column: usize) -> Location {
        match &self.file_name {
            Some(path) => Location::File {
                path: path.clone(),
                line,
                column,
            },
            None => Location::Unknown,
        }
    }

    fn file_location(&mut self, path: &[PathSegment]) -> Location {
        let Some(text) = self.text else {
            return Location::Unknown;
        };
        let positions = self
            .ast_positions
            .get_or_insert_with(|| Positions::new(text));
        match positions.as_ref().map(|p| p.locate(text, path)) {
            Some((line, column)) => self.file_location_at(line, column),
            None => Location::Unknown,
        }
    }
}

/// Byte offsets of every node of the file by path, computed once when the first error
/// needs a line number (serde_json's values carry no positions).
struct Positions(HashMap<Vec<PathSegment>, usize>);

impl Positions {
    fn new(text: &str) -> Option<Self> {
        let parsed =
            jsonc_parser::parse_to_ast(text, &Default::default(), &Default::default()).ok()?;
        let mut map = HashMap::new();
        if let Some(root) = &parsed.value {
            collect_positions(root, &mut Vec::new(), root.range().start, &mut map);
        }
        Some(Self(map))
    }

    /// Line and column of the deepest existing node on `path` (a missing field points at
    /// the object that should hold it).
    fn locate(&self, text: &str, path: &[PathSegment]) -> (usize, usize) {
        let offset = (0..=path.len())
            .rev()
            .find_map(|n| self.0.get(&path[..n]).copied())
            .unwrap_or(0);
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit_once('\n')
            .map_or(before, |(_, l)| l)
            .chars()
            .count()
            + 1;
        (line, column)
    }
}

fn collect_positions(
    node: &jsonc_parser::ast::Value<'_>,
    path: &mut Vec<PathSegment>,
    start: usize,
    out: &mut HashMap<Vec<PathSegment>, usize>,
) {
    use jsonc_parser::ast::Value as Ast;
    out.insert(path.clone(), start);
    match node {
        Ast::Object(obj) => {
            for prop in &obj.properties {
                path.push(PathSegment::Key(prop.name.as_str().to_owned()));
                collect_positions(&prop.value, path, prop.range.start, out);
                path.pop();
            }
        }
        Ast::Array(arr) => {
            for (i, el) in arr.elements.iter().enumerate() {
                path.push(PathSegment::Index(i));
                collect_positions(el, path, el.range().start, out);
                path.pop();
            }
        }
        _ => {}
    }
}

struct EnvOverride {
    value: Value,
    fields: Vec<(Vec<PathSegment>, String)>,
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

/// Groups `CONNECTOR_<NAME>_<FIELD>` variables by connector. When two names share a prefix
/// (`jira` and `jira-prod`), a variable belongs to the longest matching name.
fn env_overrides(env: &Environment, names: &[String]) -> HashMap<String, EnvOverride> {
    let mut prefixes: Vec<(String, &String)> = names.iter().map(|n| (env_prefix(n), n)).collect();
    prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    let mut out: HashMap<String, EnvOverride> = HashMap::new();
    for (var, raw) in &env.0 {
        let Some((prefix, name)) = prefixes.iter().find(|(p, _)| var.starts_with(p.as_str()))
        else {
            continue;
        };
        let field = &var[prefix.len()..];
        if field.is_empty() {
            continue;
        }
        let path = env_field_path(field);
        let entry = out.entry((*name).clone()).or_insert_with(|| EnvOverride {
            value: Value::Object(Map::new()),
            fields: Vec::new(),
        });
        set_path(&mut entry.value, &path, parse_env_value(raw));
        entry.fields.push((
            path.into_iter().map(PathSegment::Key).collect(),
            var.clone(),
        ));
    }
    out
}

/// `POLL_INTERVAL_MS` → `pollIntervalMs`; `RETRY_BASE_DELAY_MS` → `retryConfig.baseDelayMs`;
/// anything else → `providerConfig.<camelCase>`.
fn env_field_path(field: &str) -> Vec<String> {
    let camel = camel_case(field);
    if camel != "retryConfig"
        && camel != "providerConfig"
        && UNIVERSAL_FIELDS.contains(&camel.as_str())
    {
        return vec![camel];
    }
    for prefix in ["RETRY_CONFIG_", "RETRY_"] {
        if let Some(rest) = field.strip_prefix(prefix) {
            let inner = camel_case(rest);
            if RETRY_FIELDS.contains(&inner.as_str()) {
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

/// Environment values are text; numbers and booleans are recognised so `MAX_RETRIES=5`
/// means the number 5.
fn parse_env_value(raw: &str) -> Value {
    match raw {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(n) = raw.parse::<i64>() {
        return Value::from(n);
    }
    if let Ok(n) = raw.parse::<u64>() {
        return Value::from(n);
    }
    if raw.contains('.')
        && let Ok(f) = raw.parse::<f64>()
        && f.is_finite()
    {
        return Value::from(f);
    }
    Value::String(raw.to_owned())
}

fn set_path(root: &mut Value, path: &[String], value: Value) {
    let mut node = root;
    for key in &path[..path.len() - 1] {
        let Value::Object(map) = node else { return };
        node = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let (Value::Object(map), Some(last)) = (node, path.last()) {
        map.insert(last.clone(), value);
    }
}

fn substitute_all(
    map: &mut Map<String, Value>,
    path: &mut Vec<PathSegment>,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<FieldError>,
) {
    for (key, value) in map.iter_mut() {
        path.push(PathSegment::Key(key.clone()));
        substitute_value(value, path, lookup, problems);
        path.pop();
    }
}

fn substitute_value(
    value: &mut Value,
    path: &mut Vec<PathSegment>,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<FieldError>,
) {
    match value {
        Value::String(s) => match substitute(s, lookup) {
            Ok(resolved) => *s = resolved,
            Err(SubstituteError::Unset(var)) => {
                let mut full = vec![PathSegment::Key("providerConfig".into())];
                full.extend_from_slice(path);
                problems.push(FieldError {
                    path: full,
                    message: format!(
                        "environment variable {var} is not set (referenced as ${{{var}}} by connector \"{{who}}\"); set it or write ${{{var}:-default}}"
                    ),
                });
            }
            Err(SubstituteError::Unterminated) => {
                let mut full = vec![PathSegment::Key("providerConfig".into())];
                full.extend_from_slice(path);
                problems.push(FieldError {
                    path: full,
                    message: "\"${\" without a closing \"}\"; write ${VAR} or $${ for a literal"
                        .into(),
                });
            }
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(PathSegment::Index(i));
                substitute_value(item, path, lookup, problems);
                path.pop();
            }
        }
        Value::Object(map) => substitute_all(map, path, lookup, problems),
        _ => {}
    }
}

fn unknown_field(key: &str, known: &[&str]) -> String {
    let listed = known
        .iter()
        .filter(|k| !k.starts_with('$'))
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    match closest(key, known.iter().copied()) {
        Some(k) => format!("unknown field \"{key}\", did you mean \"{k}\"?"),
        None => format!("unknown field \"{key}\"; expected one of {listed}"),
    }
}

fn whole(v: &Value, min: u64, max: u64) -> bool {
    v.as_u64().is_some_and(|n| (min..=max).contains(&n))
}

/// Checks the universal fields of one connector object, collecting every mistake.
fn check_universal(obj: &Map<String, Value>, problems: &mut Vec<FieldError>) {
    for required in ["name", "type"] {
        if !obj.contains_key(required) {
            problems.push(FieldError::new(
                &[],
                format!("missing required field \"{required}\""),
            ));
        }
    }
    for (key, v) in obj {
        let bad = |problems: &mut Vec<FieldError>, msg: &str| {
            problems.push(FieldError::new(&[key.as_str()], msg));
        };
        match key.as_str() {
            "name" => {
                let ok = v.as_str().is_some_and(|s| {
                    (1..=64).contains(&s.len())
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                });
                if !ok {
                    bad(
                        problems,
                        "expected a name of 1 to 64 letters, digits, '-' or '_' (it becomes part of Redis keys and metric labels)",
                    );
                }
            }
            "type" if !v.is_string() => bad(
                problems,
                "expected a connector type name such as \"NOAA_WEATHER\"",
            ),
            "enabled" | "emitRemovals" if !v.is_boolean() => {
                bad(problems, "expected true or false")
            }
            "pollIntervalMs" | "requestTimeoutMs" if !whole(v, 1, u64::MAX) => bad(
                problems,
                "expected a whole number of milliseconds greater than 0",
            ),
            "maxRetries" if !whole(v, 0, 100) => {
                bad(problems, "expected a whole number from 0 to 100")
            }
            "outputStream" if v.as_str().is_none_or(|s| s.trim().is_empty()) => {
                bad(problems, "expected a non-empty stream name")
            }
            "leaseTtlSeconds" if !whole(v, 1, 86_400) => bad(
                problems,
                "expected a whole number of seconds from 1 to 86400",
            ),
            "commitBatchSize" if !whole(v, 1, 100_000) => {
                bad(problems, "expected a whole number from 1 to 100000")
            }
            "streamMaxLen" if !(v.is_null() || whole(v, 1, u64::MAX)) => bad(
                problems,
                "expected a whole number greater than 0, or null for no cap",
            ),
            "providerConfig" if !v.is_object() => {
                bad(problems, "expected an object with the provider's settings")
            }
            "retryConfig" => match v.as_object() {
                Some(retry) => check_retry(retry, problems),
                None => bad(
                    problems,
                    "expected an object with baseDelayMs, maxDelayMs and jitterRatio",
                ),
            },
            known if UNIVERSAL_FIELDS.contains(&known) => {}
            unknown => problems.push(FieldError::new(
                &[unknown],
                unknown_field(unknown, &UNIVERSAL_FIELDS),
            )),
        }
    }
}

fn check_retry(retry: &Map<String, Value>, problems: &mut Vec<FieldError>) {
    for (key, v) in retry {
        let msg = match key.as_str() {
            "baseDelayMs" | "maxDelayMs" if !whole(v, 0, 3_600_000) => {
                "expected a whole number of milliseconds from 0 to 3600000".to_owned()
            }
            "jitterRatio" if !v.as_f64().is_some_and(|r| (0.0..=1.0).contains(&r)) => {
                "expected a number between 0 and 1".to_owned()
            }
            k if RETRY_FIELDS.contains(&k) => continue,
            other => unknown_field(other, &RETRY_FIELDS),
        };
        problems.push(FieldError::new(&["retryConfig", key.as_str()], msg));
    }
    let base = retry
        .get("baseDelayMs")
        .and_then(Value::as_u64)
        .unwrap_or_else(super::defaults::base_delay_ms);
    if let Some(max) = retry.get("maxDelayMs").and_then(Value::as_u64)
        && max < base
    {
        problems.push(FieldError::new(
            &["retryConfig", "maxDelayMs"],
            format!("must be at least baseDelayMs ({base})"),
        ));
    }
}

/// Parses a provider's settings into its typed config, reporting every unknown field (with
/// the likely intended one) and every top-level field of the wrong type, not only the first.
///
/// `known` lists the provider's field names. Messages about secret-looking fields never
/// include the value.
pub fn parse_provider_config<T: DeserializeOwned>(
    provider: &Map<String, Value>,
    known: &[&str],
) -> Result<T, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut map = provider.clone();
    for key in provider.keys() {
        if !known.contains(&key.as_str()) {
            errors.push(FieldError::new(&[key.as_str()], unknown_field(key, known)));
            map.remove(key);
        }
    }
    let mut removed: HashSet<String> = HashSet::new();
    // Each round reports one serde error and drops the field, so the next round can find
    // the next one; bounded by the number of fields.
    for _ in 0..=provider.len() {
        let result: Result<T, _> = serde_path_to_error::deserialize(Value::Object(map.clone()));
        match result {
            Ok(value) if errors.is_empty() => return Ok(value),
            Ok(_) => return Err(errors),
            Err(e) => {
                let segs: Vec<PathSegment> = e
                    .path()
                    .iter()
                    .filter_map(|s| match s {
                        serde_path_to_error::Segment::Map { key } => {
                            Some(PathSegment::Key(key.clone()))
                        }
                        serde_path_to_error::Segment::Seq { index } => {
                            Some(PathSegment::Index(*index))
                        }
                        _ => None,
                    })
                    .collect();
                let inner = e.into_inner().to_string();
                if let Some(missing) = inner
                    .strip_prefix("missing field `")
                    .and_then(|s| s.strip_suffix('`'))
                {
                    if !removed.contains(missing) {
                        errors.push(FieldError {
                            path: segs,
                            message: format!("missing required field \"{missing}\""),
                        });
                    }
                    return Err(errors);
                }
                let secret = segs
                    .iter()
                    .any(|s| matches!(s, PathSegment::Key(k) if is_secret_field(k)));
                let message = if secret {
                    "has the wrong type or an invalid value (not shown: it is a secret)".into()
                } else {
                    inner
                };
                let top = match segs.first() {
                    Some(PathSegment::Key(k)) => Some(k.clone()),
                    _ => None,
                };
                errors.push(FieldError {
                    path: segs,
                    message,
                });
                match top {
                    Some(k) if map.remove(&k).is_some() => {
                        removed.insert(k);
                    }
                    _ => return Err(errors),
                }
            }
        }
    }
    Err(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_field_names_map_to_config_paths() {
        assert_eq!(env_field_path("POLL_INTERVAL_MS"), vec!["pollIntervalMs"]);
        assert_eq!(env_field_path("TYPE"), vec!["type"]);
        assert_eq!(
            env_field_path("RETRY_JITTER_RATIO"),
            vec!["retryConfig", "jitterRatio"]
        );
        assert_eq!(
            env_field_path("MAX_ALERTS_PER_POLL"),
            vec!["providerConfig", "maxAlertsPerPoll"]
        );
        assert_eq!(
            env_field_path("API_TOKEN"),
            vec!["providerConfig", "apiToken"]
        );
        assert_eq!(env_prefix("jira-prod"), "CONNECTOR_JIRA_PROD_");
    }

    #[test]
    fn env_values_are_typed() {
        assert_eq!(parse_env_value("true"), Value::Bool(true));
        assert_eq!(parse_env_value("300000"), Value::from(300_000));
        assert_eq!(parse_env_value("-5"), Value::from(-5));
        assert_eq!(parse_env_value("0.5"), Value::from(0.5));
        assert_eq!(parse_env_value("CA,OR"), Value::from("CA,OR"));
        assert_eq!(parse_env_value("1.2.3"), Value::from("1.2.3"));
    }
}
