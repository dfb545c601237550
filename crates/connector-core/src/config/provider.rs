//! A provider's `providerConfig`: parsed once, at load, into the provider's own typed
//! config, which is what the provider receives.
//!
//! The loader does not know the providers; it asks a [`ProviderCatalog`] (the registry
//! implements it), so nothing in `config/` depends on the registry.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::check::{Mode, Schema, describe};
use super::errors::{FieldError, PathSegment};
use super::secret::REDACTED;
pub use super::substitute::Reference;

/// What the loader needs to know about connector types.
pub trait ProviderCatalog {
    /// Parses `providerConfig` for `connector_type`; `None` when this binary does not
    /// include the type. `references` maps paths (relative to `providerConfig`) whose
    /// value came from `${...}` to the reference as written, so errors can name it.
    fn parse(
        &self,
        connector_type: &str,
        settings: Map<String, Value>,
        references: &References,
    ) -> Option<Result<ProviderSettings, Vec<FieldError>>>;

    /// Types this binary includes, sorted.
    fn types(&self) -> Vec<&'static str>;

    /// Types of the product that another binary may run: a config naming one of these is
    /// accepted unchecked by a binary that does not include it.
    fn product_types(&self) -> &[&'static str];
}

/// Paths (relative to `providerConfig`) whose value came from `${VAR}` or `${file:...}`.
pub type References = BTreeMap<Vec<PathSegment>, Vec<Reference>>;

/// A connector's `providerConfig` with the entry it names expanded.
#[derive(Debug)]
pub struct Expanded {
    /// The entry, as `name@version`.
    pub entry: String,
    /// The read description, overrides applied.
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Where each secret or referenced value landed, as written by the user.
    pub references: References,
}

/// `errors` (a provider's own checks, which may quote a value) with every text that came
/// from a reference replaced by the reference as written.
pub fn mask_references(mut errors: Vec<FieldError>, references: &References) -> Vec<FieldError> {
    for e in &mut errors {
        for (path, refs) in references {
            if e.path.starts_with(path) || path.starts_with(&e.path) {
                for r in refs {
                    e.message = r.mask(&e.message);
                }
            }
        }
    }
    errors
}

/// A typed `providerConfig`, type-erased so [`super::ConnectorConfig`] needs no generic
/// parameter; the provider's factory takes its own type back out.
#[derive(Clone)]
pub struct ProviderSettings {
    typed: Option<Arc<dyn Any + Send + Sync>>,
    /// Settings given as JSON by a program (tests, the bench) and not parsed yet; the
    /// factory parses them when it builds the connector.
    raw: Option<Arc<Map<String, Value>>>,
    /// The serialised typed config: secrets are `****` by their type.
    shown: Arc<Value>,
    /// A hash of the resolved settings, secrets included, so a reload notices a rotated
    /// secret without the secret being kept anywhere else.
    fingerprint: u64,
    /// Every value sent as a credential: typed secrets and the values `${VAR}` and
    /// `${file:…}` stood for; the redactor masks them wherever they are echoed.
    secrets: Arc<Vec<crate::config::Secret>>,
}

impl ProviderSettings {
    /// Settings of the typed config `T`.
    pub fn typed<T: Serialize + Send + Sync + 'static>(value: T, resolved: &Value) -> Self {
        let shown = serde_json::to_value(&value).unwrap_or(Value::Null);
        let mut secrets = Vec::new();
        hidden_values(resolved, &shown, &mut secrets);
        Self {
            typed: Some(Arc::new(value)),
            raw: None,
            shown: Arc::new(shown),
            fingerprint: fingerprint(resolved),
            secrets: Arc::new(secrets),
        }
    }

    /// Settings as JSON, parsed later by the provider's factory. Until then every value is
    /// shown as `****`, since nothing says which are secrets.
    pub fn raw(settings: Map<String, Value>) -> Self {
        let mut shown = Value::Object(settings.clone());
        hide_all(&mut shown);
        let fingerprint = fingerprint(&Value::Object(settings.clone()));
        Self {
            typed: None,
            raw: Some(Arc::new(settings)),
            shown: Arc::new(shown),
            fingerprint,
            secrets: Arc::default(),
        }
    }

    /// Adds the values `${VAR}` and `${file:…}` references stood for to the secrets: a
    /// value taken from the environment is treated as a credential wherever it is sent,
    /// except what only forms a URL's origin (a host is no secret, and messages keep it)
    /// and bare numbers and booleans (masking `60000` would mask ordinary text).
    pub fn with_references(mut self, references: &References, resolved: &Value) -> Self {
        let mut secrets: Vec<crate::config::Secret> = self.secrets.as_ref().clone();
        for (path, refs) in references {
            let text = value_at(resolved, path).and_then(Value::as_str);
            for r in refs {
                let value = r.value();
                let plain = !r.is_secret()
                    && (value.parse::<f64>().is_ok() || value == "true" || value == "false");
                let known = secrets.iter().any(|s| s.expose() == value);
                if !plain && !known && !text.is_some_and(|t| only_in_origin(t, value)) {
                    secrets.push(crate::config::Secret::new(value));
                }
            }
        }
        // A secret may sit in a plain string (a catalog parameter in a query or a URL):
        // the printed form hides it there too.
        let mut shown = self.shown.as_ref().clone();
        mask_strings(&mut shown, &secrets);
        self.shown = Arc::new(shown);
        self.secrets = Arc::new(secrets);
        self
    }

    /// Every value sent as a credential (typed secrets, substituted values).
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.secrets.iter().map(crate::config::Secret::expose)
    }

    /// The typed config, when these settings were parsed as `T`.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.typed.as_deref()?.downcast_ref::<T>()
    }

    /// The unparsed JSON, for settings given by a program.
    pub fn unparsed(&self) -> Option<&Map<String, Value>> {
        self.raw.as_deref()
    }

    /// The form that may be printed: secrets hidden.
    pub fn shown(&self) -> &Value {
        &self.shown
    }
}

impl Default for ProviderSettings {
    fn default() -> Self {
        Self::raw(Map::new())
    }
}

impl PartialEq for ProviderSettings {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.shown)
    }
}

impl Serialize for ProviderSettings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.shown.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ProviderSettings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Map::<String, Value>::deserialize(deserializer).map(Self::raw)
    }
}

impl JsonSchema for ProviderSettings {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ProviderConfig".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "object",
            "x-expected": "an object with the provider's settings"
        })
    }
}

fn fingerprint(value: &Value) -> u64 {
    xxhash_rust::xxh3::xxh3_64(value.to_string().as_bytes())
}

/// The value at `path` below `root`.
pub(crate) fn value_at<'v>(
    root: &'v Value,
    path: &[super::errors::PathSegment],
) -> Option<&'v Value> {
    use super::errors::PathSegment;
    path.iter().try_fold(root, |node, seg| match seg {
        PathSegment::Key(k) => node.get(k),
        PathSegment::Index(i) => node.get(i),
    })
}

/// Whether `value` appears in the URL `text` only inside its origin (scheme, host, port).
fn only_in_origin(text: &str, value: &str) -> bool {
    let Ok(url) = url::Url::parse(text) else {
        return false;
    };
    let origin = url.origin().ascii_serialization();
    let rest = &text[text.find(&origin).map_or(0, |at| at + origin.len())..];
    origin.contains(value) && !rest.contains(value)
}

/// Collects the strings of `resolved` that the typed config shows as `****` at the same
/// place: the values its types hide (a `Secret`, a header value), whatever the field is
/// called.
fn hidden_values(resolved: &Value, shown: &Value, out: &mut Vec<crate::config::Secret>) {
    match (resolved, shown) {
        (Value::String(value), Value::String(mask)) if mask == REDACTED && value != REDACTED => {
            out.push(crate::config::Secret::new(value.clone()));
        }
        (Value::Object(r), Value::Object(s)) => {
            for (key, value) in r {
                if let Some(hidden) = s.get(key) {
                    hidden_values(value, hidden, out);
                }
            }
        }
        (Value::Array(r), Value::Array(s)) => {
            for (value, hidden) in r.iter().zip(s) {
                hidden_values(value, hidden, out);
            }
        }
        _ => {}
    }
}

/// Replaces every secret's text inside the strings of `value` by `****`, the longest
/// first (a secret that starts another must not leave the other's tail).
fn mask_strings(value: &mut Value, secrets: &[crate::config::Secret]) {
    let mut longest_first: Vec<&str> = secrets.iter().map(crate::config::Secret::expose).collect();
    longest_first.sort_by_key(|s| std::cmp::Reverse(s.len()));
    mask_each(value, &longest_first);
}

fn mask_each(value: &mut Value, secrets: &[&str]) {
    match value {
        Value::String(text) => {
            for s in secrets.iter().copied() {
                if !s.is_empty() && text.contains(s) {
                    *text = text.replace(s, REDACTED);
                }
            }
        }
        Value::Object(map) => map.values_mut().for_each(|v| mask_each(v, secrets)),
        Value::Array(items) => items.iter_mut().for_each(|v| mask_each(v, secrets)),
        _ => {}
    }
}

fn hide_all(value: &mut Value) {
    match value {
        Value::Object(map) => map.values_mut().for_each(hide_all),
        Value::Array(items) => items.iter_mut().for_each(hide_all),
        Value::Null => {}
        other => *other = Value::String(REDACTED.into()),
    }
}

/// The JSON Schema of a typed config.
pub fn schema_of<T: JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
}

/// Parses settings into `T`, reporting every unknown field (with the likely intended one),
/// every value out of its declared range and every field of the wrong type, not only the
/// first. A secret's value (a field of type [`super::Secret`]) and a value that came from
/// `${...}` are never quoted: the message names the reference instead.
///
/// `check` is the provider's semantic check; it runs on what parsed even when other
/// fields did not, so every mistake is reported in one pass.
pub fn parse_provider<T: DeserializeOwned>(
    settings: Map<String, Value>,
    schema: &Value,
    references: &References,
    check: &dyn Fn(&T) -> Vec<FieldError>,
) -> Result<(T, Value), Vec<FieldError>> {
    let doc = Schema::new(schema);
    let mut value = Value::Object(settings);
    let mut errors = Vec::new();
    // Types first converted (text from the environment) and ranges checked from the
    // schema; serde then reports type mismatches in its own words.
    doc.check(
        schema,
        &mut value,
        &mut Vec::new(),
        Mode::SkipTypes,
        &mut errors,
    );
    // A bad choice is quoted; one that came from `${VAR}` shows as the reference.
    let mut errors = mask_references(errors, references);
    let Value::Object(mut map) = value else {
        return Err(errors);
    };
    let mut removed: Vec<String> = errors
        .iter()
        .filter_map(|e| match e.path.first() {
            Some(PathSegment::Key(k)) => map.remove(k).map(|_| k.clone()),
            _ => None,
        })
        .collect();
    let resolved = Value::Object(map.clone());
    // Each round reports one serde error and drops its top-level field, so the next round
    // can find the next one; bounded by the number of fields.
    for _ in 0..=map.len() {
        let result: Result<T, _> = serde_path_to_error::deserialize(Value::Object(map.clone()));
        let e = match result {
            Ok(value) => {
                let problems = mask_references(check(&value), references);
                if errors.is_empty() && problems.is_empty() {
                    return Ok((value, resolved));
                }
                add_unreported(&mut errors, problems);
                break;
            }
            Err(e) => e,
        };
        let segs = segments(e.path());
        let inner = e.into_inner().to_string();
        if let Some(missing) = inner
            .strip_prefix("missing field `")
            .and_then(|s| s.strip_suffix('`'))
        {
            let message = format!("missing required field \"{missing}\"");
            // The schema check reports required fields already.
            let known = errors
                .iter()
                .any(|e| e.path == segs && e.message == message);
            if !removed.iter().any(|r| r == missing) && !known {
                errors.push(FieldError::at(segs, message));
            }
            break;
        }
        let top = match segs.first() {
            Some(PathSegment::Key(k)) => Some(k.clone()),
            _ => None,
        };
        let message = hide_value(&doc, schema, references, &segs, &inner);
        errors.push(FieldError::at(segs, message));
        match top {
            Some(k) if map.remove(&k).is_some() => removed.push(k),
            _ => break,
        }
    }
    Err(errors)
}

/// Adds the provider check's `problems` that are not about a field already reported (it
/// would be said twice).
fn add_unreported(errors: &mut Vec<FieldError>, problems: Vec<FieldError>) {
    let reported: Vec<Vec<PathSegment>> = errors.iter().map(|e| e.path.clone()).collect();
    errors.extend(problems.into_iter().filter(|p| {
        !reported
            .iter()
            .any(|r| p.path.starts_with(r) && !r.is_empty())
    }));
}

/// A serde path as the config's path segments.
fn segments(path: &serde_path_to_error::Path) -> Vec<PathSegment> {
    path.iter()
        .filter_map(|s| match s {
            serde_path_to_error::Segment::Map { key } => Some(PathSegment::Key(key.clone())),
            serde_path_to_error::Segment::Seq { index } => Some(PathSegment::Index(*index)),
            _ => None,
        })
        .collect()
}

/// The message for a problem at `path`, with the value kept out of it when it is a secret
/// or came from a reference.
fn hide_value(
    doc: &Schema<'_>,
    schema: &Value,
    references: &References,
    path: &[PathSegment],
    message: &str,
) -> String {
    let expected = doc
        .at(schema, path)
        .map(|s| describe(doc, s))
        .unwrap_or_else(|| "expected a valid value".into());
    let reference = (0..=path.len())
        .rev()
        .find_map(|n| references.get(&path[..n]));
    if let Some(refs) = reference {
        let from = refs
            .iter()
            .map(|r| r.written.as_str())
            .collect::<Vec<_>>()
            .join(" and ");
        return format!("invalid value from {from} (not shown): {expected}");
    }
    if doc.is_secret(schema, path) {
        return "has the wrong type or an invalid value (not shown: it is a secret)".into();
    }
    message.to_owned()
}
