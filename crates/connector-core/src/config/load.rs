//! Loading `connectors.json` and the environment into validated [`ConnectorConfig`]s.
//!
//! Order of work: read and parse the file (a syntax error stops here, with line and
//! column); layer, per connector, the declared defaults, the file's object and the
//! environment's variables with figment, which also remembers which layer each value came
//! from; resolve `${...}` in provider settings; check every connector against the schema
//! generated from [`ConnectorConfig`], collecting every mistake; have the provider parse
//! its settings into its typed config; only then build the configs.
//!
//! What figment does not carry, and is done here instead: positions inside a JSON file
//! (figment knows a value came from the file, not from which line, so [`Positions`]
//! finds it), and collecting every mistake at once (figment's `extract` stops at the
//! first serde error and its messages quote values, which may be secrets).

use std::collections::HashMap;
use std::path::PathBuf;

use figment::providers::Serialized;
use figment::value::{Dict, Map as FigmentMap};
use figment::{Figment, Metadata, Profile, Provider, Source};
use serde_json::{Map, Value};

use super::check::{self, Mode, Schema};
use super::env::{ENABLED_VAR, EnvField, Environment, FieldNames, env_fields, env_prefix};
use super::errors::{ConfigError, ConfigErrors, FieldError, Location, PathSegment, render_path};
use super::positions::Positions;
use super::provider::{ProviderCatalog, ProviderSettings, References};
use super::schema::{connector_schema, file_fields};
use super::source::ConfigSource;
use super::substitute::{Lookup, SubstituteError, substitute};
use super::{ConnectorConfig, defaults};

/// Loads, layers, substitutes and validates the connector configuration.
///
/// Returns every mistake at once; on success every config is valid for its provider.
pub fn load(
    source: &ConfigSource,
    env: &Environment,
    catalog: &dyn ProviderCatalog,
) -> Result<Vec<ConnectorConfig>, ConfigErrors> {
    load_for(source, env, catalog, None)
}

/// [`load`] for a process that runs only the connector `only`: the other connectors are
/// still checked, but variables and files they reference need not exist here.
pub fn load_for(
    source: &ConfigSource,
    env: &Environment,
    catalog: &dyn ProviderCatalog,
    only: Option<&str>,
) -> Result<Vec<ConnectorConfig>, ConfigErrors> {
    let file = source
        .read()
        .map_err(|message| ConfigErrors(vec![ConfigError::new("", message)]))?;
    let mut loader = Loader {
        file: file.as_ref().map(|(p, t)| (p.clone(), t.as_str())),
        positions: None,
        errors: Vec::new(),
    };
    let configs = loader.run(env, catalog, only);
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

/// Where a connector was defined: its index in the file, or only the environment.
#[derive(Debug, Clone)]
enum Origin {
    File(usize),
    EnvOnly(String),
}

/// One figment layer: a JSON value with the metadata that says where it came from.
struct Layer {
    metadata: Metadata,
    value: Value,
}

impl Layer {
    fn env(var: &str, path: &[String], value: Value) -> Self {
        let mut nested = value;
        for key in path.iter().rev() {
            let mut map = Map::new();
            map.insert(key.clone(), nested);
            nested = Value::Object(map);
        }
        Self {
            metadata: Metadata::from(
                format!("environment variable {var}"),
                Source::Custom(var.to_owned()),
            ),
            value: nested,
        }
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<FigmentMap<Profile, Dict>, figment::Error> {
        Serialized::defaults(&self.value).data()
    }
}

/// The universal defaults as the first layer, from the same functions serde uses.
fn defaults_layer() -> Layer {
    let mut value = serde_json::to_value(ConnectorConfig::new("", "")).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.remove("name");
        obj.remove("type");
    }
    Layer {
        metadata: Metadata::named("defaults"),
        value,
    }
}

/// What loading every connector needs: the universal schema, how `${...}` resolves,
/// the provider types and the connector asked for.
struct Run<'a> {
    schema: &'a Value,
    doc: &'a Schema<'a>,
    lookup: Lookup<'a>,
    catalog: &'a dyn ProviderCatalog,
    only: Option<&'a str>,
}

impl Run<'_> {
    /// Whether this process runs the connector: credentials are needed only then (a
    /// disabled connector, or one of a type another binary runs, may reference variables
    /// and files that are not there). `enabled` may still be text from
    /// `CONNECTOR_<NAME>_ENABLED` here.
    fn runs_here(&self, obj: &Map<String, Value>, name: Option<&str>, ty: Option<&str>) -> bool {
        let disabled = matches!(obj.get("enabled"), Some(Value::Bool(false)))
            || obj.get("enabled").and_then(Value::as_str).map(str::trim) == Some("false");
        !disabled
            && ty.is_some_and(|t| self.catalog.types().contains(&t))
            && self.only.is_none_or(|only| name == Some(only))
    }
}

/// One connector's layered value and where each part of it came from.
struct Layered {
    origin: Origin,
    figment: Figment,
    merged: Option<figment::value::Value>,
    value: Value,
}

impl Layered {
    /// The environment variable that set the value at `path`, if one did.
    fn env_var(&self, path: &[PathSegment]) -> Option<String> {
        let merged = self.merged.as_ref()?;
        let keys: Vec<&str> = path
            .iter()
            .map_while(|s| match s {
                PathSegment::Key(k) => Some(k.as_str()),
                PathSegment::Index(_) => None,
            })
            .collect();
        // The deepest layered node on the path (a missing field belongs to its parent),
        // walked key by key: figment's own lookup splits on dots, which keys may hold.
        let mut node = merged;
        for key in keys {
            match node.as_dict().and_then(|d| d.get(key)) {
                Some(child) => node = child,
                None => break,
            }
        }
        // A merged object carries the tag of the last layer that touched it, so only a
        // leaf says truly where it came from.
        if node.as_dict().is_some() {
            return None;
        }
        match &self.figment.get_metadata(node.tag())?.source {
            Some(Source::Custom(var)) => Some(var.clone()),
            _ => None,
        }
    }
}

struct Loader<'a> {
    file: Option<(PathBuf, &'a str)>,
    positions: Option<Option<Positions>>,
    errors: Vec<ConfigError>,
}

impl Loader<'_> {
    fn run(
        &mut self,
        env: &Environment,
        catalog: &dyn ProviderCatalog,
        only: Option<&str>,
    ) -> Vec<ConnectorConfig> {
        let file_connectors = match self.file.as_ref().map(|(_, t)| *t) {
            Some(text) => match self.parse_file(text) {
                Some(list) => list,
                None => return Vec::new(),
            },
            None => Vec::new(),
        };
        let mut layered = self.layer(env, file_connectors);
        let schema = connector_schema();
        let doc = Schema::new(schema);
        let lookup_var = |var: &str| env.get(var).map(str::to_owned);
        let read_file = |path: &std::path::Path| read_secret_file(path);
        let run = Run {
            schema,
            doc: &doc,
            lookup: Lookup {
                var: &lookup_var,
                file: &read_file,
            },
            catalog,
            only,
        };
        let mut seen_names: HashMap<String, String> = HashMap::new();
        layered
            .iter_mut()
            .filter_map(|cand| self.load_one(cand, &run, &mut seen_names))
            .collect()
    }

    /// One connector: its references resolved, checked against the schema, its provider
    /// settings parsed; `None` when it has a mistake (reported).
    fn load_one(
        &mut self,
        cand: &mut Layered,
        run: &Run<'_>,
        seen_names: &mut HashMap<String, String>,
    ) -> Option<ConnectorConfig> {
        let before = self.errors.len();
        let here = self.describe_origin(&cand.origin);
        let Some(obj) = cand.value.as_object_mut() else {
            self.report(cand, &[], "expected an object describing one connector");
            return None;
        };
        let name = obj.get("name").and_then(Value::as_str).map(str::to_owned);
        let ty = obj.get("type").and_then(Value::as_str).map(str::to_owned);
        let mut problems = Vec::new();
        let runs_here = run.runs_here(obj, name.as_deref(), ty.as_deref());
        let (references, unresolved) = resolve(obj, &run.lookup, name.as_deref());
        let unresolved_elsewhere = !runs_here && !unresolved.is_empty();
        if runs_here {
            problems.extend(unresolved);
        }
        // As written, for messages that echo a bad value (the check may drop it).
        let written = Value::Object(obj.clone());
        let mut checked = Value::Object(std::mem::take(obj));
        run.doc.check(
            run.schema,
            &mut checked,
            &mut Vec::new(),
            Mode::Full,
            &mut problems,
        );
        cand.value = checked;
        let obj = cand.value.as_object_mut()?;
        check_retry(obj, &mut problems);
        check_webhook(obj, &mut problems);
        if let Some(name) = &name
            && let Some(first) = seen_names.insert(name.clone(), here)
        {
            problems.push(FieldError::new(
                &["name"],
                format!("duplicate connector name \"{name}\" (first defined at {first}); names must be unique"),
            ));
        }
        // Not an object: already reported, and parsing `{}` instead would only add
        // "missing field" noise.
        let (settings, parseable) = match obj.remove("providerConfig") {
            Some(Value::Object(map)) => (map, true),
            None => (Map::new(), true),
            Some(_) => (Map::new(), false),
        };
        // Settings still holding `${...}` text cannot be judged; this process does
        // not run the connector, so they need not be.
        let judged = parseable && !unresolved_elsewhere;
        let provider_settings = ty.as_deref().and_then(|ty| {
            parse_settings(
                run.catalog,
                ty,
                &settings,
                &references,
                judged,
                &mut problems,
            )
        });
        self.report_all(cand, &written, &references, problems);
        if self.errors.len() != before {
            return None;
        }
        let mut cfg = serde_json::from_value::<ConnectorConfig>(cand.value.clone())
            .map_err(|e| self.report(cand, &[], e.to_string()))
            .ok()?;
        let resolved = Value::Object(settings.clone());
        cfg.provider_config = provider_settings
            .unwrap_or_else(|| ProviderSettings::raw(settings))
            .with_references(&references, &resolved);
        Some(cfg)
    }

    /// Parses the file; a syntax error or a wrong top-level shape ends the load here.
    fn parse_file(&mut self, text: &str) -> Option<Vec<Value>> {
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let full = e.to_string();
                let mut message = full
                    .rsplit_once(" at line ")
                    .map_or(full.as_str(), |(m, _)| m)
                    .to_owned();
                // What a pasted JSONC example or a hand edit most often brings.
                let line = text.lines().nth(e.line().saturating_sub(1)).unwrap_or("");
                let from = line
                    .char_indices()
                    .nth(e.column().saturating_sub(2))
                    .map_or(0, |(i, _)| i);
                let rest = &line[from..];
                if rest.contains("//") || rest.contains("/*") {
                    message.push_str(
                        " (comments are not allowed in connectors.json: it is plain JSON)",
                    );
                } else if rest.trim_start().starts_with([']', '}'])
                    && !message.contains("trailing comma")
                {
                    message.push_str(" (a trailing comma before it is not allowed in JSON)");
                }
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
        let known = file_fields();
        for key in top.keys() {
            if !known.contains(key) {
                let hint = check::suggest(key, &known)
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

    /// Layers defaults, the file's connectors and the environment, per connector.
    fn layer(&mut self, env: &Environment, file_connectors: Vec<Value>) -> Vec<Layered> {
        let enabled = env.enabled_list();
        let mut names: Vec<String> = file_connectors
            .iter()
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let mut origins: Vec<(Origin, Value)> = file_connectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| (Origin::File(i), v))
            .collect();
        for name in enabled.iter().flatten() {
            if !names.contains(name) && self.env_only(env, name) {
                names.push(name.clone());
                origins.push((
                    Origin::EnvOnly(name.clone()),
                    serde_json::json!({ "name": name }),
                ));
            }
        }
        let schema = connector_schema();
        let doc = Schema::new(schema);
        let universal = check::field_names(&doc, schema);
        let retry = doc
            .at(schema, &[PathSegment::Key("retryConfig".into())])
            .map(|s| check::field_names(&doc, s))
            .unwrap_or_default();
        let fields = FieldNames {
            universal: &universal,
            retry: &retry,
        };
        let mut by_name = env_fields(env, &names, &fields);
        origins
            .into_iter()
            .map(|(origin, value)| {
                let name = value.get("name").and_then(Value::as_str).map(str::to_owned);
                let vars = name.as_ref().and_then(|n| by_name.remove(n));
                let enabled = match (&enabled, &name) {
                    (Some(list), Some(name)) => Some(list.contains(name)),
                    _ => None,
                };
                self.layered(origin, value, enabled, vars.unwrap_or_default())
            })
            .collect()
    }

    /// Whether `name`, listed in `ENABLED_CONNECTORS` but not in the file, is configured by
    /// the environment alone (its `CONNECTOR_<NAME>_TYPE` is set); an error says so if not.
    fn env_only(&mut self, env: &Environment, name: &str) -> bool {
        let var = format!("{}TYPE", env_prefix(name));
        if env.get(&var).is_some() {
            return true;
        }
        let file = self
            .file
            .as_ref()
            .map_or("any config file".into(), |(p, _)| p.display().to_string());
        self.errors.push(ConfigError {
            location: Location::Env {
                var: ENABLED_VAR.into(),
            },
            path: format!("connectors[{name}]"),
            message: format!(
                "\"{name}\" is listed in {ENABLED_VAR} but is not in {file} and {var} is not set"
            ),
        });
        false
    }

    /// One connector's layers: the defaults, its own value, `enabled` from the list, and
    /// its environment variables, each remembering where it came from.
    fn layered(
        &self,
        origin: Origin,
        value: Value,
        enabled: Option<bool>,
        vars: Vec<EnvField>,
    ) -> Layered {
        if !value.is_object() {
            return Layered {
                origin,
                figment: Figment::new(),
                merged: None,
                value,
            };
        }
        let own = match (&origin, &self.file) {
            (Origin::File(i), Some((path, _))) => {
                Metadata::from(format!("connectors[{i}]"), Source::File(path.clone()))
            }
            _ => Metadata::from("the environment", Source::Custom(ENABLED_VAR.to_owned())),
        };
        let mut figment = Figment::new().merge(defaults_layer()).merge(Layer {
            metadata: own,
            value,
        });
        if let Some(enabled) = enabled {
            figment = figment.merge(Layer::env(
                ENABLED_VAR,
                &["enabled".into()],
                Value::Bool(enabled),
            ));
        }
        for field in vars {
            figment = figment.merge(Layer::env(
                &field.var,
                &field.path,
                Value::String(field.value),
            ));
        }
        let merged = figment.find_value("").ok();
        let value = figment.extract::<Value>().unwrap_or(Value::Null);
        Layered {
            origin,
            figment,
            merged,
            value,
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

    fn report(&mut self, cand: &Layered, path: &[PathSegment], message: impl Into<String>) {
        let env_var = cand.env_var(path);
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

    /// Reports `problems` of one connector; an "expected …" about a universal field
    /// written in the file echoes the value as written (`written`).
    fn report_all(
        &mut self,
        cand: &Layered,
        written: &Value,
        references: &References,
        problems: Vec<FieldError>,
    ) {
        for p in problems {
            let got = match chosen(written, references, &p) {
                Some(got) => Some(got),
                None => shown_value(written, &p.path),
            };
            let message = match got {
                Some(got)
                    if cand.env_var(&p.path).is_none() && p.message.starts_with("expected") =>
                {
                    format!("{} (got {got})", p.message)
                }
                _ => p.message,
            };
            self.report(cand, &p.path, message);
        }
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
        match &self.file {
            Some((path, _)) => Location::File {
                path: path.clone(),
                line,
                column,
            },
            None => Location::Unknown,
        }
    }

    fn file_location(&mut self, path: &[PathSegment]) -> Location {
        let Some((_, text)) = self.file.as_ref().map(|(p, t)| (p.clone(), *t)) else {
            return Location::Unknown;
        };
        let positions = self.positions.get_or_insert_with(|| Positions::new(text));
        match positions.as_ref().map(|p| p.locate(text, path)) {
            Some((line, column)) => self.file_location_at(line, column),
            None => Location::Unknown,
        }
    }
}

/// A secret file holds one value: anything larger is a mistake (`/dev/zero`), and
/// anything but a regular file (a FIFO, a device) could block the load.
const MAX_SECRET_FILE: u64 = 1024 * 1024;

fn read_secret_file(path: &std::path::Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(std::io::Error::other(
            "it is larger than 1 MiB, which no single secret is",
        ));
    }
    std::fs::read_to_string(path)
}

/// Resolves every `${...}` in a connector's `providerConfig`: the references made (to mask
/// their values) and the ones that could not be resolved.
fn resolve(
    obj: &mut Map<String, Value>,
    lookup: &Lookup<'_>,
    name: Option<&str>,
) -> (References, Vec<FieldError>) {
    let mut references = References::new();
    let mut unresolved = Vec::new();
    if let Some(Value::Object(provider)) = obj.get_mut("providerConfig") {
        let mut resolver = Resolver {
            lookup,
            who: name.unwrap_or("?"),
            root: "providerConfig",
            references: &mut references,
            problems: &mut unresolved,
        };
        resolver.all(provider, &mut Vec::new());
    }
    // The webhook's secret comes from the environment too; it is a `Secret` by type, so
    // nothing needs to remember where it came from.
    if let Some(Value::Object(webhook)) = obj.get_mut("webhook") {
        let mut resolver = Resolver {
            lookup,
            who: name.unwrap_or("?"),
            root: "webhook",
            references: &mut References::new(),
            problems: &mut unresolved,
        };
        resolver.all(webhook, &mut Vec::new());
    }
    (references, unresolved)
}

/// The provider's typed settings, when this binary includes type `ty` and the settings
/// can be judged; the provider's own problems go to `problems` (under `providerConfig`).
/// A type another binary of the product runs is left to it; any other is unknown.
fn parse_settings(
    catalog: &dyn ProviderCatalog,
    ty: &str,
    settings: &Map<String, Value>,
    references: &References,
    judged: bool,
    problems: &mut Vec<FieldError>,
) -> Option<ProviderSettings> {
    if !catalog.types().contains(&ty) {
        if !catalog.product_types().contains(&ty) {
            problems.push(unknown_type(ty, catalog));
        }
        return None;
    }
    if !judged {
        return None;
    }
    match catalog.parse(ty, settings.clone(), references)? {
        Ok(parsed) => Some(parsed),
        Err(errors) => {
            problems.extend(errors.into_iter().map(|mut e| {
                e.path.insert(0, PathSegment::Key("providerConfig".into()));
                e
            }));
            None
        }
    }
}

fn unknown_type(ty: &str, catalog: &dyn ProviderCatalog) -> FieldError {
    let mut known = catalog.types();
    for t in catalog.product_types() {
        if !known.contains(t) {
            known.push(t);
        }
    }
    known.sort_unstable();
    let owned: Vec<String> = known.iter().map(|k| (*k).to_owned()).collect();
    let hint = check::suggest(ty, &owned)
        .map(|k| format!(" (did you mean \"{k}\"?)"))
        .unwrap_or_default();
    FieldError::new(
        &["type"],
        format!(
            "unknown connector type \"{ty}\"{hint}; known types: {}",
            known.join(", ")
        ),
    )
}

/// The bad value at `path` of a connector as written, as a message may echo it: a
/// number, a boolean, or a short string of a universal field. Nothing below
/// `providerConfig` or `webhook` (a provider says its own values, and a credential must
/// never be echoed).
/// A wrong choice below `providerConfig` (a problem listing what is allowed) as a
/// message may echo it: the `${VAR}` it was written as, or a short plain value written in
/// the file (a choice holds no credential, and a credential pasted into one by mistake is
/// long or odd enough to stay out). Never a `webhook` value.
fn chosen(connector: &Value, references: &References, problem: &FieldError) -> Option<String> {
    let (Some(PathSegment::Key(first)), true) = (
        problem.path.first(),
        problem.message.starts_with("expected one of"),
    ) else {
        return None;
    };
    if first != "providerConfig" {
        return None;
    }
    if let Some(refs) = references.get(&problem.path[1..]) {
        let written: Vec<&str> = refs.iter().map(|r| r.written.as_str()).collect();
        return Some(written.join(" and "));
    }
    if references.keys().any(|k| problem.path[1..].starts_with(k)) {
        return None;
    }
    let at = super::provider::value_at(connector, &problem.path)?;
    let plain = |s: &str| {
        s.len() <= 40
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || " ._:/-".contains(c))
    };
    at.as_str().filter(|s| plain(s)).map(|s| format!("{s:?}"))
}

fn shown_value(connector: &Value, path: &[PathSegment]) -> Option<String> {
    if let Some(PathSegment::Key(first)) = path.first()
        && (first == "providerConfig" || first == "webhook")
    {
        return None;
    }
    let at = super::provider::value_at(connector, path)?;
    match at {
        Value::Number(_) | Value::Bool(_) => Some(at.to_string()),
        Value::String(s) if s.chars().count() <= 60 => Some(at.to_string()),
        _ => None,
    }
}

/// The webhook block's rules a schema cannot say (its shape was checked already).
fn check_webhook(obj: &Map<String, Value>, problems: &mut Vec<FieldError>) {
    let Some(webhook) = obj.get("webhook").filter(|w| !w.is_null()) else {
        return;
    };
    if let Ok(webhook) = serde_json::from_value::<super::webhook::WebhookConfig>(webhook.clone()) {
        problems.extend(webhook.problems());
    }
}

/// The one rule between universal fields that a schema cannot say.
fn check_retry(obj: &Map<String, Value>, problems: &mut Vec<FieldError>) {
    let Some(retry) = obj.get("retryConfig").and_then(Value::as_object) else {
        return;
    };
    let base = retry
        .get("baseDelayMs")
        .and_then(Value::as_u64)
        .unwrap_or_else(defaults::base_delay_ms);
    if let Some(max) = retry.get("maxDelayMs").and_then(Value::as_u64)
        && max < base
    {
        problems.push(FieldError::new(
            &["retryConfig", "maxDelayMs"],
            format!("must be at least baseDelayMs ({base})"),
        ));
    }
}

/// Resolves `${...}` in every string of the provider settings, recording which paths took
/// their value from a reference and which references could not be resolved.
struct Resolver<'a, 'l> {
    lookup: &'a Lookup<'l>,
    /// The connector, for messages.
    who: &'a str,
    /// The connector field resolved, for the errors' paths.
    root: &'static str,
    references: &'a mut References,
    problems: &'a mut Vec<FieldError>,
}

impl Resolver<'_, '_> {
    fn all(&mut self, map: &mut Map<String, Value>, path: &mut Vec<PathSegment>) {
        for (key, value) in map.iter_mut() {
            path.push(PathSegment::Key(key.clone()));
            self.value(value, path);
            path.pop();
        }
    }

    fn value(&mut self, value: &mut Value, path: &mut Vec<PathSegment>) {
        let mut at = vec![PathSegment::Key(self.root.into())];
        at.extend_from_slice(path);
        let who = self.who;
        match value {
            Value::String(s) => match substitute(s, self.lookup) {
                Ok(resolved) => {
                    if !resolved.references.is_empty() {
                        self.references.insert(path.clone(), resolved.references);
                    }
                    *s = resolved.text;
                }
                Err(SubstituteError::Unset(var)) => self.problems.push(FieldError::at(
                    at,
                    format!(
                        "environment variable {var} is not set (referenced as ${{{var}}} by connector \"{who}\"); set it or write ${{{var}:-default}}"
                    ),
                )),
                Err(SubstituteError::File { path: file, reason }) => {
                    self.problems.push(FieldError::at(
                        at,
                        format!(
                            "cannot read {file} (referenced as ${{file:{file}}} by connector \"{who}\"): {reason}"
                        ),
                    ))
                }
                Err(SubstituteError::Unterminated) => self.problems.push(FieldError::at(
                    at,
                    "\"${\" without a closing \"}\"; write ${VAR} or $${ for a literal",
                )),
            },
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    path.push(PathSegment::Index(i));
                    self.value(item, path);
                    path.pop();
                }
            }
            Value::Object(map) => self.all(map, path),
            _ => {}
        }
    }
}
