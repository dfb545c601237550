//! Ready read descriptions by name: a catalog entry is a [`super::ReadSpec`] with
//! `{{param:NAME}}` placeholders and the parameters that fill them, so a user writes
//! `{"use": "pagerduty/log-entries", "with": {"token": "${PD_TOKEN}"}}` instead of the
//! whole read.
//!
//! Expansion happens before the config is parsed, so a catalog connector is validated,
//! explained and run exactly like a hand-written one. Any other key next to `use` and
//! `with` overrides the entry's definition as a JSON Merge Patch (RFC 7396). A secret
//! parameter's value is a secret wherever it lands (a header, a query, a URL): the
//! expansion reports each place it put one, so messages mask it and the redactor learns
//! it. Entries are versioned: `NAME` is the newest, `NAME@N` pins one, and a change to
//! what identifies a record (its id, its version, its kind) is always a new version, so
//! an upgrade never republishes what a pinned or older version published.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::config::Expanded;
use crate::config::{FieldError, PathSegment, Reference, References};

/// Characters a path segment keeps as they are (RFC 3986 unreserved); everything else is
/// percent-encoded, so `group/project` becomes `group%2Fproject`.
pub(crate) const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One ready source: what it reads, what it needs, and the read itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entry {
    /// `vendor/stream`, lowercase.
    pub name: String,
    /// Starts at 1; a change to the records' identity is a new version.
    pub version: u32,
    /// One line for people.
    pub title: String,
    /// The signals' kind.
    pub publishes: String,
    /// The API and its version, as the vendor names it.
    pub api: String,
    /// The vendor document the definition follows.
    pub docs: String,
    /// How requests are authenticated, for people.
    pub auth: String,
    /// What the user gives.
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// The read description, with `{{param:NAME}}` placeholders.
    pub read: Value,
}

/// A value the user gives in `with`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Parameter {
    /// Its name in `with`.
    pub name: String,
    /// What it is, for people.
    pub description: String,
    /// Whether a config must give it (a parameter with a default never must).
    #[serde(default)]
    pub required: bool,
    /// A credential: masked wherever it is shown, and a secret wherever it is sent.
    #[serde(default)]
    pub secret: bool,
    /// A base URL (inserted as it is, not encoded as a path segment; a trailing `/` is
    /// dropped).
    #[serde(default)]
    pub url: bool,
    /// The value when a config leaves it out; without one, a placeholder that is a whole
    /// value is removed with its key.
    #[serde(default)]
    pub default: Option<Value>,
    /// A value that shows its form, for the catalog page.
    #[serde(default)]
    pub example: Option<String>,
}

impl Parameter {
    /// What it is in a word or two: required, secret, and (with `default`) its default.
    fn tags(&self, default: bool) -> Vec<String> {
        let mut tags = Vec::new();
        if self.required {
            tags.push("required".to_owned());
        }
        if self.secret {
            tags.push("secret".to_owned());
        }
        if let Some(d) = self.default.as_ref().filter(|_| default) {
            let shown = d.as_str().map_or_else(|| d.to_string(), str::to_owned);
            tags.push(format!("default `{shown}`"));
        }
        tags
    }
}

/// ` (did you mean "X"?)` when one of `known` is close to `name`, else nothing.
fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    crate::config::closest_name(name, known)
        .map(|n| format!(" (did you mean \"{n}\"?)"))
        .unwrap_or_default()
}

/// The shipped entries.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: Vec<Entry>,
    /// Markdown the catalog page shows before its table (what the entries cover).
    preamble: String,
}

impl Catalog {
    /// Parses entries from `(file, text)` pairs, sorted by name and version.
    pub fn parse(files: &[(&str, &str)]) -> Result<Self, String> {
        let mut entries = files
            .iter()
            .map(|(file, text)| {
                serde_json::from_str::<Entry>(text).map_err(|e| format!("{file}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        entries.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        Ok(Self {
            entries,
            preamble: String::new(),
        })
    }

    /// The same catalog, whose page shows `preamble` (Markdown) before its table.
    pub fn with_preamble(mut self, preamble: &str) -> Self {
        self.preamble = preamble.to_owned();
        self
    }

    /// Every version of every entry, by name, oldest version first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The newest version of each entry.
    pub fn latest(&self) -> Vec<&Entry> {
        let mut out: Vec<&Entry> = Vec::new();
        for e in &self.entries {
            match out.last_mut() {
                Some(last) if last.name == e.name => *last = e,
                _ => out.push(e),
            }
        }
        out
    }

    /// The entry `NAME` (newest) or `NAME@N`; an error says what exists.
    pub fn find(&self, wanted: &str) -> Result<&Entry, String> {
        let (name, version) = match wanted.split_once('@') {
            Some((name, v)) => {
                let v = v.parse::<u32>().map_err(|_| {
                    format!("\"{wanted}\": the version after @ is a number, e.g. {name}@1")
                })?;
                (name, Some(v))
            }
            None => (wanted, None),
        };
        let versions: Vec<&Entry> = self.entries.iter().filter(|e| e.name == name).collect();
        if versions.is_empty() {
            let names: Vec<&str> = self.latest().iter().map(|e| e.name.as_str()).collect();
            let hint = did_you_mean(name, names.iter().copied());
            return Err(format!(
                "no catalog entry \"{name}\"{hint}; `connectors catalog` lists the {} entries",
                names.len()
            ));
        }
        match version {
            None => Ok(versions[versions.len() - 1]),
            Some(v) => versions
                .iter()
                .find(|e| e.version == v)
                .copied()
                .ok_or_else(|| {
                    let known: Vec<String> =
                        versions.iter().map(|e| format!("@{}", e.version)).collect();
                    format!("\"{name}\" has no version {v}; it has {}", known.join(", "))
                }),
        }
    }

    /// Expands `settings` when it names an entry (`use`); `None` when it does not.
    pub fn expand(
        &self,
        settings: &Map<String, Value>,
        references: &References,
    ) -> Option<Result<Expanded, Vec<FieldError>>> {
        let wanted = settings.get("use")?;
        let Some(wanted) = wanted.as_str() else {
            let e = FieldError::new(
                &["use"],
                "expected a catalog entry's name, e.g. \"pagerduty/incidents\"",
            );
            return Some(Err(vec![e]));
        };
        Some(
            self.find(wanted)
                .map_err(|m| vec![FieldError::new(&["use"], m)])
                .and_then(|entry| entry.expand(settings, references)),
        )
    }
}

/// A parameter's value and where it came from.
struct Given<'a> {
    parameter: &'a Parameter,
    value: Option<Value>,
    /// The `${...}` it was written as, when it was.
    written: Option<Vec<Reference>>,
}

impl Entry {
    /// `name@version`.
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// The parameters' names in the order declared, with what each is.
    pub fn parameter_list(&self) -> String {
        self.parameters
            .iter()
            .map(|p| {
                let tags = p.tags(false);
                match tags.is_empty() {
                    true => p.name.clone(),
                    false => format!("{} ({})", p.name, tags.join(", ")),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The read with `with` filled in and the rest of `settings` merged over it.
    fn expand(
        &self,
        settings: &Map<String, Value>,
        references: &References,
    ) -> Result<Expanded, Vec<FieldError>> {
        let given = self.given(settings, references)?;
        let mut read = self.read.clone();
        // Overrides first, so they may use the parameters too.
        let mut patch = settings.clone();
        patch.remove("use");
        patch.remove("with");
        merge_patch(&mut read, &Value::Object(patch));
        let mut out = References::new();
        fill(&mut read, &mut Vec::new(), &given, &mut out);
        // The user's own references outside `with` keep their paths: a merge patch does
        // not move values.
        for (path, refs) in references {
            if !matches!(path.first(), Some(PathSegment::Key(k)) if k == "with" || k == "use") {
                out.entry(path.clone())
                    .or_default()
                    .extend(refs.iter().cloned());
            }
        }
        match read {
            Value::Object(settings) => Ok(Expanded {
                entry: self.pinned(),
                settings,
                references: out,
            }),
            _ => Err(vec![FieldError::new(
                &["use"],
                format!("{} is not an object (a broken entry)", self.pinned()),
            )]),
        }
    }

    /// The value of each parameter, checked: every key of `with` is a parameter, every
    /// required one is given, a URL is an http(s) URL.
    fn given<'a>(
        &'a self,
        settings: &Map<String, Value>,
        references: &References,
    ) -> Result<BTreeMap<&'a str, Given<'a>>, Vec<FieldError>> {
        let empty = Map::new();
        let with = match settings.get("with") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(with)) => with,
            Some(_) => {
                return Err(vec![FieldError::new(
                    &["with"],
                    "expected an object of parameters, e.g. {\"token\": \"${TOKEN}\"}",
                )]);
            }
        };
        let mut errors = Vec::new();
        for key in with.keys() {
            if !self.parameters.iter().any(|p| &p.name == key) {
                let names = self.parameters.iter().map(|p| p.name.as_str());
                let hint = did_you_mean(key, names);
                errors.push(FieldError::new(
                    &["with", key],
                    format!(
                        "{} has no parameter \"{key}\"{hint}; its parameters: {}",
                        self.pinned(),
                        self.parameter_list()
                    ),
                ));
            }
        }
        let mut out = BTreeMap::new();
        for p in &self.parameters {
            let value = with.get(&p.name).filter(|v| !v.is_null()).cloned();
            let path = vec![
                PathSegment::Key("with".into()),
                PathSegment::Key(p.name.clone()),
            ];
            if let Err(e) = check_value(p, value.as_ref()) {
                errors.push(FieldError::at(path.clone(), e));
            }
            if value.is_none() && p.required {
                errors.push(FieldError::new(
                    &["with"],
                    format!(
                        "{} needs parameter \"{}\": {}",
                        self.pinned(),
                        p.name,
                        p.description
                    ),
                ));
            }
            let written = references.get(&path).cloned();
            out.insert(
                p.name.as_str(),
                Given {
                    parameter: p,
                    value: value.or_else(|| p.default.clone()),
                    written,
                },
            );
        }
        fill_defaults(&mut out);
        match errors.is_empty() {
            true => Ok(out),
            false => Err(errors),
        }
    }
}

/// Fills other parameters into a default that names them (Security Hub's
/// `https://securityhub.{{param:region}}.amazonaws.com`), so an endpoint follows the
/// region unless a config gives its own. Only plain (not secret) parameters fill one.
fn fill_defaults(given: &mut BTreeMap<&str, Given<'_>>) {
    let plain: BTreeMap<String, String> = given
        .iter()
        .filter(|(_, g)| !g.parameter.secret)
        .filter_map(|(name, g)| match &g.value {
            Some(Value::String(s)) if !s.contains("{{param:") => {
                Some((name.to_string(), s.clone()))
            }
            Some(v @ (Value::Number(_) | Value::Bool(_))) => {
                Some((name.to_string(), v.to_string()))
            }
            _ => None,
        })
        .collect();
    for g in given.values_mut() {
        if let Some(Value::String(s)) = &mut g.value
            && s.contains("{{param:")
        {
            for (name, value) in &plain {
                *s = s.replace(&format!("{{{{param:{name}}}}}"), value);
            }
        }
    }
}

/// A parameter's value, if given, is a string (or a number or boolean) and a URL
/// parameter an http(s) URL. Never quotes the value: it may be a secret.
fn check_value(p: &Parameter, value: Option<&Value>) -> Result<(), String> {
    match value {
        None | Some(Value::Number(_) | Value::Bool(_)) if !p.url => Ok(()),
        None => Ok(()),
        Some(Value::String(s)) if p.url => match url::Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
            _ => Err("expected an http or https URL, e.g. https://api.example.com".into()),
        },
        Some(Value::String(_)) => Ok(()),
        Some(_) => Err(format!("expected text: {}", p.description)),
    }
}

/// The text a parameter stands for inside a longer string.
fn text_of(given: &Given<'_>, in_url_path: bool) -> String {
    let text = match &given.value {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    match (given.parameter.url, in_url_path) {
        (true, _) => text.trim_end_matches('/').to_owned(),
        (false, true) => utf8_percent_encode(&text, SEGMENT).to_string(),
        (false, false) => text,
    }
}

/// Replaces every `{{param:NAME}}` below `node` (at `path`); a whole-value placeholder
/// in a request body takes the value with its JSON type (elsewhere its text), and is
/// removed with its key (or array element) when the parameter has no value. Notes in
/// `out` where each secret parameter's value went, in the form it took there.
fn fill(
    node: &mut Value,
    path: &mut Vec<PathSegment>,
    given: &BTreeMap<&str, Given<'_>>,
    out: &mut References,
) {
    match node {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                path.push(PathSegment::Key(key.clone()));
                if let Some(child) = map.get_mut(&key) {
                    fill(child, path, given, out);
                }
                path.pop();
            }
            map.retain(|_, v| !is_absent(v));
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(PathSegment::Index(i));
                fill(item, path, given, out);
                path.pop();
            }
            let removed: Vec<usize> = (0..items.len()).filter(|i| is_absent(&items[*i])).collect();
            items.retain(|v| !is_absent(v));
            renumber(out, path, &removed);
        }
        Value::String(text) => {
            if let Some(filled) = fill_text(text, path, given, out) {
                *node = filled;
            }
        }
        _ => {}
    }
}

/// Moves the notes below the array at `path` down past its `removed` elements, so each
/// still names the element it was made for.
fn renumber(out: &mut References, path: &[PathSegment], removed: &[usize]) {
    if removed.is_empty() {
        return;
    }
    let below: Vec<Vec<PathSegment>> = out
        .keys()
        .filter(|k| k.len() > path.len() && k.starts_with(path))
        .cloned()
        .collect();
    for key in below {
        let Some(PathSegment::Index(i)) = key.get(path.len()) else {
            continue;
        };
        let shift = removed.iter().filter(|r| **r < *i).count();
        if shift > 0
            && let Some(refs) = out.remove(&key)
        {
            let mut moved = key.clone();
            moved[path.len()] = PathSegment::Index(i - shift);
            out.entry(moved).or_default().extend(refs);
        }
    }
}

/// The marker a whole-value placeholder without a value leaves, removed by its parent.
const ABSENT: &str = "\u{0}absent";

fn is_absent(v: &Value) -> bool {
    v.as_str() == Some(ABSENT)
}

/// Notes, at `path`, that a secret parameter's value went there as `inserted` (its text,
/// percent-encoded in a URL path) within the string `whole`: as the user wrote it
/// (`${VAR}`) or as `with.NAME`, each form a credential whatever it looks like.
fn note(g: &Given<'_>, inserted: &str, whole: &str, path: &[PathSegment], out: &mut References) {
    if !g.parameter.secret {
        return;
    }
    let raw = g
        .value
        .as_ref()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        .unwrap_or_default();
    let written = g.written.clone().map_or_else(
        || {
            vec![Reference::literal(
                format!("with.{}", g.parameter.name),
                raw.clone(),
            )]
        },
        |refs| refs.into_iter().map(Reference::secret).collect(),
    );
    let mut refs = Vec::new();
    for r in written {
        if inserted != raw {
            refs.push(r.standing_for(inserted.to_owned()));
        }
        // A value written around a reference (`abc-${X}`) is secret as a whole.
        if whole != inserted && whole.contains(inserted) {
            refs.push(r.standing_for(whole.to_owned()));
        }
        refs.push(r);
    }
    out.entry(path.to_vec()).or_default().extend(refs);
}

/// The string `text` at `path` with its placeholders filled; `None` when it has none.
fn fill_text(
    text: &str,
    path: &[PathSegment],
    given: &BTreeMap<&str, Given<'_>>,
    out: &mut References,
) -> Option<Value> {
    if !text.contains("{{param:") {
        return None;
    }
    let whole = text
        .strip_prefix("{{param:")
        .and_then(|t| t.strip_suffix("}}"))
        .filter(|name| !name.contains("}}"));
    if let Some(g) = whole.and_then(|name| given.get(name)) {
        let inserted = text_of(g, path_is_url(path) && !g.parameter.url);
        note(g, &inserted, &inserted, path, out);
        let typed = in_body(path) && !g.parameter.secret;
        return Some(match &g.value {
            None => Value::String(ABSENT.into()),
            Some(v) if typed && !v.is_string() => v.clone(),
            Some(_) => Value::String(inserted),
        });
    }
    let mut result = String::new();
    let mut inserted: Vec<(&Given<'_>, String)> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("{{param:") {
        result.push_str(&rest[..at]);
        let after = &rest[at + "{{param:".len()..];
        let Some(end) = after.find("}}") else {
            result.push_str(&rest[at..]);
            rest = "";
            break;
        };
        match given.get(&after[..end]) {
            Some(g) => {
                let text = text_of(g, path_is_url(path));
                result.push_str(&text);
                inserted.push((g, text));
            }
            None => result.push_str(&rest[at..at + "{{param:".len() + end + 2]),
        }
        rest = &after[end + 2..];
    }
    result.push_str(rest);
    for (g, text) in &inserted {
        note(g, text, &result, path, out);
    }
    Some(Value::String(result))
}

/// Whether a string at `path` is in a request body, where a whole-value parameter keeps
/// its JSON type (everywhere else the config wants text).
fn in_body(path: &[PathSegment]) -> bool {
    matches!(path, [PathSegment::Key(a), PathSegment::Key(b), ..] if a == "request" && b == "body")
}

/// Whether a string at `path` is a request URL, whose placeholders are path segments.
fn path_is_url(path: &[PathSegment]) -> bool {
    matches!(path, [PathSegment::Key(a), PathSegment::Key(b)] if a == "request" && b == "url")
}

/// RFC 7396 JSON Merge Patch: objects merge key by key, `null` removes, anything else
/// replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(key);
            } else {
                merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// Every `{{param:NAME}}` name used below `node`.
pub fn placeholders(node: &Value, out: &mut Vec<String>) {
    let mut strings = Vec::new();
    super::collect_strings(node, &mut strings);
    for s in strings {
        let mut rest = s;
        while let Some(at) = rest.find("{{param:") {
            let after = &rest[at + "{{param:".len()..];
            let Some(end) = after.find("}}") else { break };
            out.push(after[..end].to_owned());
            rest = &after[end + 2..];
        }
    }
}

impl Entry {
    /// The smallest `connectors.json` entry that uses it: secrets from the environment
    /// (`${VENDOR_PARAM}`), other required parameters as their example.
    pub fn example_config(&self) -> Value {
        let vendor = self.name.split('/').next().unwrap_or_default();
        let mut with = Map::new();
        for p in self.parameters.iter().filter(|p| p.required) {
            let value = match (p.secret, &p.example) {
                (true, _) => format!("${{{}}}", env_name(vendor, &p.name)),
                (false, Some(example)) => example.clone(),
                (false, None) => format!("<{}>", p.name),
            };
            with.insert(p.name.clone(), Value::String(value));
        }
        serde_json::json!({
            "name": self.name.replace('/', "-"),
            "type": "HTTP_JSON",
            "providerConfig": { "use": self.name, "with": with },
        })
    }

    /// The required parameters' names, or `-`.
    pub fn required(&self) -> String {
        let names: Vec<&str> = self
            .parameters
            .iter()
            .filter(|p| p.required)
            .map(|p| p.name.as_str())
            .collect();
        match names.is_empty() {
            true => "-".into(),
            false => names.join(", "),
        }
    }
}

/// `PAGERDUTY_TOKEN` for vendor `pagerduty`, parameter `token`; `appKey` → `APP_KEY`.
fn env_name(vendor: &str, parameter: &str) -> String {
    let mut out: String = vendor
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    out.push('_');
    for c in parameter.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

impl Catalog {
    /// The `providerConfig` schema `written` (a whole read description) widened to also
    /// accept a catalog entry by name, for editors.
    pub fn schema_around(&self, mut written: Value) -> Value {
        let defs = written.as_object_mut().and_then(|o| o.remove("$defs"));
        let names: Vec<String> = self.latest().iter().map(|e| e.name.clone()).collect();
        let mut out = serde_json::json!({
            "anyOf": [written, {
                "title": "A catalog entry",
                "type": "object",
                "required": ["use"],
                "properties": {
                    "use": {
                        "type": "string",
                        "description": "A catalog entry: NAME for its newest version, NAME@N to pin one (`connectors catalog` lists them)",
                        "examples": names,
                    },
                    "with": {
                        "type": "object",
                        "description": "The entry's parameters (`connectors catalog show NAME` lists them)",
                    },
                },
                "description": "Any other key overrides the entry's definition as a JSON Merge Patch (RFC 7396)",
            }]
        });
        if let (Some(defs), Some(o)) = (defs, out.as_object_mut()) {
            o.insert("$defs".into(), defs);
        }
        out
    }

    /// The catalog page: a table of every entry, then each entry's parameters and the
    /// smallest config that uses it.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "<!-- Generated from crates/connector-http/catalog by `connectors catalog --markdown`; a test keeps it current. -->\n\
             # The catalog: ready sources\n\n\
             Each entry is a tested `HTTP_JSON` read description, used from `connectors.json` by\n\
             name: give `use` (`NAME` for the newest version, `NAME@N` to pin one) and the\n\
             entry's parameters in `with`. Any other key next to them overrides the definition\n\
             as a JSON Merge Patch (RFC 7396), e.g. `\"signal\": {\"title\": \"...\"}`.\n\
             `connectors catalog` lists the entries and `connectors catalog show NAME` prints one;\n\
             `validate`, `poll NAME --explain` and `--dry-run` work as for any config. Secret\n\
             parameters are masked wherever the config is shown.\n\n",
        );
        if !self.preamble.is_empty() {
            out.push_str(self.preamble.trim_end());
            out.push_str("\n\n");
        }
        out.push_str(
            "| Entry | Publishes | Auth | Required parameters | API |\n|---|---|---|---|---|\n",
        );
        let latest = self.latest();
        for e in &latest {
            out.push_str(&format!(
                "| [`{}`](#{}) | `{}` | {} | {} | {} |\n",
                e.name,
                anchor(&e.name),
                e.publishes,
                e.auth,
                e.required(),
                e.api
            ));
        }
        for e in &latest {
            out.push_str(&e.markdown());
        }
        out
    }
}

/// GitHub's heading anchor of an entry name (already lowercase): `/` and `@` dropped.
fn anchor(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

impl Entry {
    /// The entry's section of the catalog page.
    fn markdown(&self) -> String {
        let mut out = format!(
            "\n## {}\n\n{}. Version {}; follows [{}]({}). Publishes `{}`; auth: {}.\n\n",
            self.name, self.title, self.version, self.api, self.docs, self.publishes, self.auth
        );
        for p in &self.parameters {
            let tags = p.tags(true);
            let tags = match tags.is_empty() {
                true => String::new(),
                false => format!(" ({})", tags.join(", ")),
            };
            out.push_str(&format!("- `{}`{tags}: {}\n", p.name, p.description));
        }
        let example = serde_json::to_string_pretty(&self.example_config()).unwrap_or_default();
        out.push_str(&format!("\n```json\n{example}\n```\n"));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(version: u32) -> (String, String) {
        let text = json!({
            "name": "acme/events", "version": version, "title": "Acme events", "publishes": "event",
            "api": "Acme API v1", "docs": "https://docs.example.com", "auth": "token",
            "parameters": [
                {"name": "token", "required": true, "secret": true, "description": "the token"},
                {"name": "project", "required": true, "description": "the project", "example": "a/b"},
                {"name": "baseUrl", "url": true, "default": "https://api.example.com", "description": "root"},
                {"name": "label", "description": "optional filter"},
                {"name": "size", "default": 50, "description": "page size"}
            ],
            "read": {
                "request": {"url": "{{param:baseUrl}}/projects/{{param:project}}/events/{{param:token}}",
                    "body": {"size": "{{param:size}}", "key": "{{param:token}}"},
                    "query": {"label": "{{param:label}}", "key": "k-{{param:token}}", "size": "{{param:size}}"},
                    "headers": {"Authorization": "Bearer {{param:token}}"}},
                "records": {"path": "/events", "id": "/id"},
                "signal": {"kind": "event", "title": "{{/title}}"}
            }
        });
        (format!("acme/events@{version}.json"), text.to_string())
    }

    fn catalog() -> Catalog {
        let (f1, t1) = entry(1);
        let (f2, t2) = entry(2);
        Catalog::parse(&[(&f2, &t2), (&f1, &t1)]).expect("parses")
    }

    fn settings(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn a_name_finds_the_newest_version_and_a_pin_finds_its_own() {
        let c = catalog();
        assert_eq!(c.find("acme/events").map(|e| e.version), Ok(2));
        assert_eq!(c.find("acme/events@1").map(|e| e.version), Ok(1));
        assert!(c.find("acme/events@3").is_err_and(|e| e.contains("@1, @2")));
        assert!(
            c.find("acme/event")
                .is_err_and(|e| e.contains("did you mean \"acme/events\""))
        );
        assert_eq!(c.latest().len(), 1);
    }

    #[test]
    fn parameters_fill_the_read_with_paths_encoded_and_absent_values_dropped() {
        let c = catalog();
        let s = settings(
            json!({"use": "acme/events", "with": {"token": "s3+c/ret", "project": "group/sub project"},
            "signal": {"title": "{{/name}} {{param:project}}"}, "records": {"version": "/v"}}),
        );
        let out = c
            .expand(&s, &References::new())
            .expect("an entry")
            .expect("expands");
        let read = Value::Object(out.settings);
        assert_eq!(
            read["request"]["url"],
            "https://api.example.com/projects/group%2Fsub%20project/events/s3%2Bc%2Fret"
        );
        assert!(
            read["request"]["query"].get("label").is_none(),
            "an absent whole-value parameter is left out"
        );
        assert_eq!(
            read["request"]["query"]["size"], "50",
            "a query value is text"
        );
        assert_eq!(
            read["request"]["body"]["size"], 50,
            "a body value keeps its type"
        );
        assert_eq!(
            read["signal"]["title"], "{{/name}} group/sub project",
            "overrides merge over the entry, and may use its parameters"
        );
        assert_eq!(read["records"]["version"], "/v");
        assert_eq!(read["records"]["id"], "/id");
        // The secret's every landing place is known, so messages can mask it.
        let at = |p: &[&str]| -> Vec<PathSegment> {
            p.iter().map(|k| PathSegment::Key((*k).into())).collect()
        };
        let masked = out
            .references
            .get(&at(&["request", "query", "key"]))
            .expect("noted");
        let masks = |text: &str| masked.iter().fold(text.to_owned(), |t, r| r.mask(&t));
        assert_eq!(masks("got k-s3+c/ret"), "got with.token");
        assert!(
            out.references
                .contains_key(&at(&["request", "headers", "Authorization"]))
        );
        // In the URL path it went in encoded: that form is masked too.
        let in_url = out.references.get(&at(&["request", "url"])).expect("noted");
        let shown = in_url.iter().fold(
            read["request"]["url"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            |t, r| r.mask(&t),
        );
        assert!(!shown.contains("s3%2Bc%2Fret"), "{shown}");
        assert_eq!(out.entry, "acme/events@2");
    }

    /// An endpoint's default may name another parameter (the region), filled from the
    /// config; a given endpoint replaces it.
    #[test]
    fn a_default_follows_the_parameters_it_names() {
        let text = json!({
            "name": "aws/things", "version": 1, "title": "t", "publishes": "thing",
            "api": "v1", "docs": "https://docs.example.com", "auth": "none",
            "parameters": [
                {"name": "region", "required": true, "description": "the region", "example": "us-east-1"},
                {"name": "baseUrl", "url": true, "description": "the endpoint",
                 "default": "https://things.{{param:region}}.amazonaws.com"}
            ],
            "read": {"request": {"url": "{{param:baseUrl}}/things"},
                     "records": {"path": "", "id": "/id"}, "signal": {"kind": "thing", "title": "t"}}
        })
        .to_string();
        let c = Catalog::parse(&[("aws/things@1.json", &text)]).expect("parses");
        let url = |with: Value| {
            let s = settings(json!({"use": "aws/things", "with": with}));
            let out = c
                .expand(&s, &References::new())
                .expect("an entry")
                .expect("expands");
            Value::Object(out.settings)["request"]["url"].clone()
        };
        assert_eq!(
            url(json!({"region": "eu-west-3"})),
            "https://things.eu-west-3.amazonaws.com/things"
        );
        assert_eq!(
            url(json!({"region": "eu-west-3", "baseUrl": "http://127.0.0.1:9/"})),
            "http://127.0.0.1:9/things"
        );
    }

    #[test]
    fn mistakes_in_with_are_named_and_never_quote_a_secret() {
        let c = catalog();
        let s = settings(
            json!({"use": "acme/events", "with": {"tokn": "s3cret", "baseUrl": "ftp://x"}}),
        );
        let errors = c
            .expand(&s, &References::new())
            .expect("an entry")
            .expect_err("invalid");
        let text: Vec<String> = errors
            .iter()
            .map(|e| format!("{:?}: {}", e.path, e.message))
            .collect();
        let all = text.join("\n");
        assert!(all.contains("no parameter \"tokn\""), "{all}");
        assert!(all.contains("needs parameter \"token\""), "{all}");
        assert!(all.contains("needs parameter \"project\""), "{all}");
        assert!(all.contains("http or https URL"), "{all}");
        assert!(!all.contains("s3cret"), "{all}");
        let none = settings(json!({"request": {"url": "https://x"}}));
        assert!(
            c.expand(&none, &References::new()).is_none(),
            "a config without use is read as written"
        );
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        // RFC 7396 Appendix A, a selection.
        for (target, patch, result) in [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ] {
            let mut t = target.clone();
            merge_patch(&mut t, &patch);
            assert_eq!(t, result, "{target} + {patch}");
        }
    }
}
