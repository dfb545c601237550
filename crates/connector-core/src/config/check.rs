//! Checks a JSON value against the JSON Schema generated from the typed config, so that a
//! field's type, default, range and doc are declared once (on the struct) and the loader's
//! checks, its messages and the printed schema all come from that declaration.
//!
//! The checker understands the part of JSON Schema that schemars emits for our types
//! (`type`, `properties`, `additionalProperties`, `required`, `minimum`/`maximum`, the
//! integer `format`s, `minLength`/`maxLength`, `enum`, `items`, `$ref`, `anyOf`/`oneOf`)
//! plus three annotations of ours: `x-unit` (for messages: "a whole number of
//! milliseconds"), `x-expected` (a message written by hand where the generated one would
//! be vague) and the formats `connector-name` and `non-blank`. It never quotes a value in
//! a message, so a secret in the wrong field does not leak through an error.
//!
//! Text from the environment or from `${VAR}` is brought to the declared type here, once:
//! `"300000"` becomes a number only where the schema says the field is a number, and
//! `"CA,OR"` becomes a list only where it says a list.

use serde_json::{Map, Value};

use super::errors::{FieldError, PathSegment, closest, unknown_field};

/// How much to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Types, ranges, unknown and missing fields.
    Full,
    /// Everything but type mismatches, which serde reports in its own words afterwards.
    SkipTypes,
}

/// A schema document: the root holds `$defs` that `$ref`s point into.
#[derive(Clone, Copy)]
pub(crate) struct Schema<'a> {
    root: &'a Value,
}

impl<'a> Schema<'a> {
    pub(crate) fn new(root: &'a Value) -> Self {
        Self { root }
    }

    /// Follows `$ref` (`#/$defs/Name`) until a schema with content.
    fn resolve(&self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..16 {
            match schema
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix('#'))
            {
                Some(pointer) => match self.root.pointer(pointer) {
                    Some(target) => schema = target,
                    None => return schema,
                },
                None => return schema,
            }
        }
        schema
    }

    /// The branch of an `anyOf`/`oneOf` that fits `value` (schemars writes `Option<Struct>`
    /// as `anyOf: [{$ref}, {type: null}]`), or the schema itself.
    fn branch(&self, schema: &'a Value, value: &Value) -> &'a Value {
        let schema = self.resolve(schema);
        let Some(branches) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array)
        else {
            return schema;
        };
        let resolved: Vec<&Value> = branches.iter().map(|b| self.resolve(b)).collect();
        // A documented string enum is a oneOf of constants: the branch is the one that
        // names the value; none does, and the whole list is what a message must show.
        if self.constants(schema).is_some() {
            return resolved
                .iter()
                .find(|b| b.get("const") == Some(value))
                .copied()
                .unwrap_or(schema);
        }
        // A tagged enum (`{"type": "bearer", ...}`) is a oneOf of objects: the branch is
        // the one whose constant properties the value carries.
        let tagged = value.as_object().and_then(|object| {
            resolved.iter().find(|b| {
                let constants: Vec<(&String, &Value)> = b
                    .get("properties")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, p)| self.constant_of(p).map(|c| (k, c)))
                    .collect();
                !constants.is_empty() && constants.iter().all(|(k, c)| object.get(*k) == Some(*c))
            })
        });
        if let Some(b) = tagged {
            return b;
        }
        // An externally tagged enum (`{"absent": "/x"}`) is a oneOf of objects with one
        // required key each: the branch is the one whose required keys the value has and
        // which declares every key the value has.
        let keyed = value.as_object().and_then(|object| {
            resolved.iter().find(|b| {
                let required: Vec<&str> = b
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let declared = b.get("properties").and_then(Value::as_object);
                !required.is_empty()
                    && required.iter().all(|k| object.contains_key(*k))
                    && declared.is_some_and(|d| object.keys().all(|k| d.contains_key(k)))
            })
        });
        if let Some(b) = keyed {
            return b;
        }
        resolved
            .iter()
            .find(|b| types(b).is_some_and(|t| t.iter().any(|t| fits(t, value))))
            .or_else(|| resolved.iter().find(|b| !allows(b, "null")))
            .copied()
            .unwrap_or(schema)
    }

    /// A tagged union (`{"type": "bearer", …}`) whose tag names no branch: the tag is the
    /// mistake, not whatever the first branch would miss. True when it was reported.
    fn tag_problem(
        &self,
        schema: &'a Value,
        value: &Value,
        path: &[PathSegment],
        problems: &mut Vec<FieldError>,
    ) -> bool {
        let Some((tag, allowed)) = self.tag_mismatch(schema, value) else {
            return false;
        };
        let listed: Vec<String> = allowed.iter().map(ToString::to_string).collect();
        let mut at = path.to_vec();
        at.push(PathSegment::Key(tag));
        problems.push(FieldError::at(
            at,
            format!("expected one of {}", listed.join(", ")),
        ));
        true
    }

    /// The one value a property schema allows (`const`, or an `enum` of one), if so.
    fn constant_of(&self, property: &'a Value) -> Option<&'a Value> {
        let p = self.resolve(property);
        p.get("const").or_else(|| {
            p.get("enum")
                .and_then(Value::as_array)
                .filter(|e| e.len() == 1)
                .and_then(|e| e.first())
        })
    }

    /// For a tagged union (every branch an object with a constant under one key) and an
    /// object whose tag is none of them: the tag's key and the values it may take.
    fn tag_mismatch(&self, schema: &'a Value, value: &Value) -> Option<(String, Vec<&'a Value>)> {
        let object = value.as_object()?;
        let schema = self.resolve(schema);
        let branches: Vec<&Value> = schema
            .get("oneOf")
            .or_else(|| schema.get("anyOf"))
            .and_then(Value::as_array)?
            .iter()
            .map(|b| self.resolve(b))
            .filter(|b| !is_null_only(b))
            .collect();
        let tag_of = |b: &'a Value| -> Option<(&'a String, &'a Value)> {
            b.get("properties")?
                .as_object()?
                .iter()
                .find_map(|(k, p)| Some((k, self.constant_of(p)?)))
        };
        let tags: Vec<(&String, &Value)> =
            branches.iter().map(|b| tag_of(b)).collect::<Option<_>>()?;
        let key = tags.first()?.0;
        if branches.len() < 2 || tags.iter().any(|(k, _)| *k != key) {
            return None;
        }
        let given = object.get(key)?;
        let allowed: Vec<&Value> = tags.iter().map(|(_, v)| *v).collect();
        (!allowed.contains(&given)).then(|| (key.clone(), allowed))
    }

    /// An externally tagged union (`{"present": "/x"}`, one key naming the variant) whose
    /// key names no variant: that key is the mistake, not the first variant's missing
    /// one. True when it was reported.
    fn variant_problem(
        &self,
        schema: &'a Value,
        value: &Value,
        path: &[PathSegment],
        problems: &mut Vec<FieldError>,
    ) -> bool {
        // A key is a name the user typed, never a value: it may be quoted.
        let Some(object) = value.as_object().filter(|o| o.len() == 1) else {
            return false;
        };
        let schema = self.resolve(schema);
        let Some(branches) = schema.get("oneOf").and_then(Value::as_array) else {
            return false;
        };
        let variant = |b: &'a Value| -> Option<&'a str> {
            let required = self.resolve(b).get("required")?.as_array()?;
            match required.as_slice() {
                [only] => only.as_str(),
                _ => None,
            }
        };
        let Some(names) = branches.iter().map(variant).collect::<Option<Vec<&str>>>() else {
            return false;
        };
        let Some(given) = object
            .keys()
            .next()
            .filter(|k| !names.contains(&k.as_str()))
        else {
            return false;
        };
        let hint = closest(given, names.iter().copied())
            .map(|n| format!(" (did you mean \"{n}\"?)"))
            .unwrap_or_default();
        problems.push(FieldError::at(
            path.to_vec(),
            format!(
                "unknown kind {given:?}{hint}; expected one of {}",
                names.join(", ")
            ),
        ));
        true
    }

    /// The values a oneOf/anyOf of constants allows (schemars writes a string enum with
    /// documented variants so), or None for any other schema.
    pub(crate) fn constants(&self, schema: &'a Value) -> Option<Vec<&'a Value>> {
        let branches = schema
            .get("oneOf")
            .or_else(|| schema.get("anyOf"))
            .and_then(Value::as_array)?;
        let values: Vec<&Value> = branches
            .iter()
            .map(|b| self.resolve(b))
            .filter(|b| !is_null_only(b))
            .map(|b| b.get("const"))
            .collect::<Option<_>>()?;
        (!values.is_empty()).then_some(values)
    }

    /// The schema of the node at `path` below `schema`, if the schema declares one.
    pub(crate) fn at(&self, schema: &'a Value, path: &[PathSegment]) -> Option<&'a Value> {
        let mut node = self.resolve(schema);
        for seg in path {
            node = self.non_null(node);
            let child = |n: &'a Value| -> Option<&'a Value> {
                match seg {
                    PathSegment::Key(k) => n
                        .get("properties")
                        .and_then(|p| p.get(k))
                        .or_else(|| n.get("additionalProperties").filter(|a| a.is_object())),
                    PathSegment::Index(_) => n.get("items"),
                }
            };
            // In a tagged or untagged enum, the field of whichever branch declares it.
            node = child(node).or_else(|| {
                ["oneOf", "anyOf"]
                    .iter()
                    .filter_map(|key| node.get(*key).and_then(Value::as_array))
                    .flatten()
                    .find_map(|b| child(self.resolve(b)))
            })?;
            node = self.resolve(node);
        }
        Some(self.non_null(node))
    }

    fn non_null(&self, schema: &'a Value) -> &'a Value {
        let schema = self.resolve(schema);
        // A tagged enum keeps its branches: `at` looks a field up in any of them.
        let branches = schema
            .get("oneOf")
            .or_else(|| schema.get("anyOf"))
            .and_then(Value::as_array);
        if branches.is_some_and(|b| b.iter().filter(|b| !is_null_only(self.resolve(b))).count() > 1)
        {
            return schema;
        }
        self.non_null_branch(schema)
    }

    fn non_null_branch(&self, schema: &'a Value) -> &'a Value {
        let schema = self.resolve(schema);
        schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array)
            .and_then(|b| b.iter().map(|b| self.resolve(b)).find(|b| !is_null_only(b)))
            .unwrap_or(schema)
    }

    /// Whether the value at `path` is a secret (`writeOnly`), sits inside one, or may hold
    /// one (a wrong value in the place of a header map may be the credential itself).
    pub(crate) fn is_secret(&self, schema: &'a Value, path: &[PathSegment]) -> bool {
        let above = (0..path.len()).any(|n| {
            self.at(schema, &path[..n])
                .is_some_and(|s| s.get("writeOnly") == Some(&Value::Bool(true)))
        });
        above
            || self
                .at(schema, path)
                .is_some_and(|s| self.holds_secret(s, 0))
    }

    fn holds_secret(&self, schema: &'a Value, depth: usize) -> bool {
        let schema = self.resolve(schema);
        if schema.get("writeOnly") == Some(&Value::Bool(true)) {
            return true;
        }
        if depth > 8 {
            return false;
        }
        let children = schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|p| p.values())
            .chain(schema.get("additionalProperties").filter(|a| a.is_object()))
            .chain(schema.get("items"))
            .chain(
                ["anyOf", "oneOf"]
                    .iter()
                    .filter_map(|k| schema.get(*k).and_then(Value::as_array))
                    .flatten(),
            );
        children
            .into_iter()
            .any(|c| self.holds_secret(c, depth + 1))
    }

    /// Checks `value` against `schema`, converting text to the declared type on the way,
    /// and appends every problem with its path.
    pub(crate) fn check(
        &self,
        schema: &'a Value,
        value: &mut Value,
        path: &mut Vec<PathSegment>,
        mode: Mode,
        problems: &mut Vec<FieldError>,
    ) {
        if self.tag_problem(schema, value, path, problems)
            || self.variant_problem(schema, value, path, problems)
        {
            return;
        }
        let schema = self.branch(schema, value);
        coerce(self, schema, value);
        let problem = |problems: &mut Vec<FieldError>, path: &[PathSegment]| {
            problems.push(FieldError::at(path.to_vec(), describe(self, schema)));
        };
        if let Some(types) = types(schema)
            && !types.iter().any(|t| fits(t, value))
        {
            if mode == Mode::Full {
                problem(problems, path);
            }
            return;
        }
        match value {
            Value::Number(n) if !number_fits(schema, n) => problem(problems, path),
            Value::String(s) if !self.string_fits(schema, s) => problem(problems, path),
            Value::Number(_) | Value::String(_) => {}
            Value::Object(map) => self.check_object(schema, map, path, mode, problems),
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter_mut().enumerate() {
                        path.push(PathSegment::Index(i));
                        self.check(item_schema, item, path, mode, problems);
                        path.pop();
                    }
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }

    /// Whether a string meets the schema's length, format and listed values.
    fn string_fits(&self, schema: &Value, s: &str) -> bool {
        let len = s.chars().count() as u64;
        let short = schema
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m);
        let long = schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m);
        let format_ok = match schema.get("format").and_then(Value::as_str) {
            Some("connector-name") => is_connector_name(s),
            Some("non-blank") => !s.trim().is_empty(),
            // `api.weather.gov` would otherwise meet the URL parser's "relative URL
            // without a base", which does not say what to write.
            Some("uri") => url::Url::parse(s).is_ok(),
            _ => true,
        };
        let listed = schema
            .get("enum")
            .and_then(Value::as_array)
            .is_none_or(|e| e.iter().any(|x| x.as_str() == Some(s)))
            && self
                .constants(schema)
                .is_none_or(|c| c.iter().any(|x| x.as_str() == Some(s)));
        !short && !long && format_ok && listed
    }

    fn check_object(
        &self,
        schema: &'a Value,
        map: &mut Map<String, Value>,
        path: &mut Vec<PathSegment>,
        mode: Mode,
        problems: &mut Vec<FieldError>,
    ) {
        let props = schema.get("properties").and_then(Value::as_object);
        let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
        let extra = schema.get("additionalProperties").filter(|a| a.is_object());
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(name) {
                    problems.push(FieldError::at(
                        path.clone(),
                        format!("missing required field \"{name}\""),
                    ));
                }
            }
        }
        let known: Vec<&str> = props
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        for (key, item) in map.iter_mut() {
            path.push(PathSegment::Key(key.clone()));
            match props.and_then(|p| p.get(key)).or(extra) {
                Some(field_schema) => self.check(field_schema, item, path, mode, problems),
                None if closed => {
                    problems.push(FieldError::at(path.clone(), unknown_field(key, &known)))
                }
                None => {}
            }
            path.pop();
        }
    }
}

/// The declared JSON types of a schema, if it declares any.
fn types(schema: &Value) -> Option<Vec<&str>> {
    match schema.get("type")? {
        Value::String(t) => Some(vec![t.as_str()]),
        Value::Array(list) => Some(list.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

fn allows(schema: &Value, ty: &str) -> bool {
    types(schema).is_some_and(|t| t.contains(&ty))
}

fn is_null_only(schema: &Value) -> bool {
    types(schema).is_some_and(|t| t == ["null"])
}

fn fits(ty: &str, value: &Value) -> bool {
    match ty {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => match value {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        },
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    }
}

/// Whether a number is within the schema's bounds (and whole, where it says integer).
fn number_fits(schema: &Value, n: &serde_json::Number) -> bool {
    let (min, max) = bounds(schema);
    let v = n.as_f64().unwrap_or(f64::NAN);
    let below = min.is_some_and(|m| v < m);
    let above = max.is_some_and(|m| v > m);
    let too_big = n.as_u64().is_none()
        && n.as_i64().is_none()
        && schema.get("type").and_then(Value::as_str) == Some("integer");
    !below && !above && !too_big
}

/// The bounds of a number: explicit `minimum`/`maximum`, else those of its integer format.
fn bounds(schema: &Value) -> (Option<f64>, Option<f64>) {
    let (fmin, fmax) = match schema.get("format").and_then(Value::as_str) {
        Some("uint8") => (Some(0.0), Some(f64::from(u8::MAX))),
        Some("uint16") => (Some(0.0), Some(f64::from(u16::MAX))),
        Some("uint32") => (Some(0.0), Some(f64::from(u32::MAX))),
        Some("uint64" | "uint") => (Some(0.0), None),
        Some("int32") => (Some(f64::from(i32::MIN)), Some(f64::from(i32::MAX))),
        _ => (None, None),
    };
    let min = schema.get("minimum").and_then(Value::as_f64).or(fmin);
    let max = schema.get("maximum").and_then(Value::as_f64).or(fmax);
    (min, max)
}

/// Text where the schema wants another type: the environment and `${VAR}` only make text.
/// Only lossless conversions are made; anything else is left for the type check to report.
fn coerce(doc: &Schema<'_>, schema: &Value, value: &mut Value) {
    let Value::String(text) = &*value else {
        return;
    };
    let Some(types) = types(schema) else { return };
    if types.contains(&"string") {
        return;
    }
    let trimmed = text.trim();
    let converted = if types.contains(&"integer") {
        trimmed
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| trimmed.parse::<u64>().map(Value::from))
            .ok()
    } else if types.contains(&"number") {
        trimmed
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
    } else if types.contains(&"boolean") {
        match trimmed {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        }
    } else if types.contains(&"array") {
        // `CA,OR,WA` in a variable for a list field.
        let item_schema = schema.get("items").map(|s| doc.resolve(s));
        let mut items: Vec<Value> = trimmed
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Value::String(s.to_owned()))
            .collect();
        if let Some(item_schema) = item_schema {
            items.iter_mut().for_each(|i| coerce(doc, item_schema, i));
        }
        Some(Value::Array(items))
    } else if types.contains(&"null") && trimmed.is_empty() {
        Some(Value::Null)
    } else {
        None
    };
    if let Some(v) = converted {
        *value = v;
    }
}

/// Letters, digits, `-` and `_`, 1 to 64 of them: a connector name is part of Redis keys
/// (inside a Cluster hash tag) and of metric labels.
pub(crate) fn is_connector_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// What a valid value of `schema` looks like, as "expected ...".
pub(crate) fn describe(doc: &Schema<'_>, schema: &Value) -> String {
    // `null` (or leaving the field out) is always allowed for an optional field: saying
    // so in every message would only add noise.
    let schema = doc.non_null(schema);
    if let Some(text) = schema.get("x-expected").and_then(Value::as_str) {
        return format!("expected {text}");
    }
    if let Some(constants) = doc.constants(schema) {
        let listed: Vec<String> = constants.iter().map(|c| c.to_string()).collect();
        return format!("expected one of {}", listed.join(", "));
    }
    let ty = types(schema)
        .and_then(|t| t.into_iter().find(|t| *t != "null"))
        .unwrap_or("");
    let what = match ty {
        "boolean" => "true or false".to_owned(),
        "integer" | "number" => describe_number(schema, ty == "integer"),
        "string" => match schema.get("enum").and_then(Value::as_array) {
            Some(options) => {
                let listed: Vec<String> = options
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|o| format!("\"{o}\""))
                    .collect();
                format!("one of {}", listed.join(", "))
            }
            None if schema.get("format").and_then(Value::as_str) == Some("uri") => {
                "an absolute URL with its scheme, such as https://api.example.com".to_owned()
            }
            None => "a string".to_owned(),
        },
        "array" => "a list".to_owned(),
        "object" => {
            let fields: Vec<&str> = schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            match fields.split_last() {
                Some((last, rest)) if !rest.is_empty() => {
                    format!("an object with {} and {last}", rest.join(", "))
                }
                _ => "an object".to_owned(),
            }
        }
        _ => "a valid value".to_owned(),
    };
    format!("expected {what}")
}

/// A whole number or a number, with its unit and bounds.
fn describe_number(schema: &Value, whole: bool) -> String {
    let num = |f: f64| {
        if f.fract() == 0.0 && f.abs() < 1e15 {
            format!("{}", f as i64)
        } else {
            format!("{f}")
        }
    };
    let mut out = String::from(if whole { "a whole number" } else { "a number" });
    if let Some(unit) = schema.get("x-unit").and_then(Value::as_str) {
        out.push_str(" of ");
        out.push_str(unit);
    }
    let explicit = (
        schema.get("minimum").and_then(Value::as_f64),
        schema.get("maximum").and_then(Value::as_f64),
    );
    let range = if whole {
        match (explicit.0.or(bounds(schema).0), explicit.1) {
            (Some(a), Some(b)) => format!(" from {} to {}", num(a), num(b)),
            (Some(1.0), None) => " greater than 0".to_owned(),
            (Some(a), None) if a != 0.0 => format!(" of at least {}", num(a)),
            (None, Some(b)) => format!(" of at most {}", num(b)),
            _ => String::new(),
        }
    } else {
        match explicit {
            (Some(a), Some(b)) => format!(" between {} and {}", num(a), num(b)),
            (Some(a), None) => format!(" of at least {}", num(a)),
            (None, Some(b)) => format!(" of at most {}", num(b)),
            (None, None) => String::new(),
        }
    };
    out + &range
}

/// The declared field names of an object schema (for env variable mapping and hints).
pub(crate) fn field_names(doc: &Schema<'_>, schema: &Value) -> Vec<String> {
    doc.resolve(schema)
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// The declared name closest to a misspelt one.
pub(crate) fn suggest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    closest(name, known.iter().map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(schema: &Value, mut value: Value) -> (Value, Vec<String>) {
        let doc = Schema::new(schema);
        let mut problems = Vec::new();
        doc.check(
            schema,
            &mut value,
            &mut Vec::new(),
            Mode::Full,
            &mut problems,
        );
        let shown = problems
            .iter()
            .map(|p| {
                format!(
                    "{}: {}",
                    super::super::errors::render_path("", &p.path),
                    p.message
                )
            })
            .collect();
        (value, shown)
    }

    #[test]
    fn text_becomes_the_declared_type_and_ranges_are_checked() {
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "ms": {"type": "integer", "format": "uint64", "minimum": 1, "x-unit": "milliseconds"},
                "ratio": {"type": "number", "minimum": 0.0, "maximum": 1.0},
                "on": {"type": "boolean"},
                "areas": {"type": "array", "items": {"type": "string"}},
                "cap": {"type": ["integer", "null"], "format": "uint32", "minimum": 1}
            }
        });
        let (v, problems) = run(
            &schema,
            json!({"ms": "300", "ratio": "0.5", "on": "true", "areas": "CA, OR", "cap": null}),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            v,
            json!({"ms": 300, "ratio": 0.5, "on": true, "areas": ["CA", "OR"], "cap": null})
        );
        let (_, problems) = run(
            &schema,
            json!({"ms": 0, "ratio": 2, "on": "yes", "cap": 5_000_000_000u64, "rato": 1}),
        );
        assert_eq!(
            problems,
            vec![
                "cap: expected a whole number greater than 0",
                "ms: expected a whole number of milliseconds greater than 0",
                "on: expected true or false",
                "ratio: expected a number between 0 and 1",
                "rato: unknown field \"rato\", did you mean \"ratio\"?",
            ]
        );
    }
}
