//! Secrets as a type: a provider marks a credential field `Secret`, and from then on the
//! value cannot be printed, logged, serialised or echoed in an error by accident.
//!
//! Redaction used to go by field name, which missed `pat`, `pwd` or a header value. Here
//! the type decides: `Secret` serialises as `****` (so `validate` output, the HTTP API and
//! anything else built from a config's serialised form hide it), its `Debug` and `Display`
//! print `****`, and its JSON Schema carries `writeOnly: true`, which is how the loader
//! knows not to quote the value of a field of this type in an error.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What every hidden value is shown as.
pub const REDACTED: &str = "****";

/// A credential: a token, a password, an API key, a header value.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value that must never be shown.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The value, for the one place that needs it: building a request.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "writeOnly": true,
            "description": "A secret: never shown. Write it as ${VAR} or ${file:/path} rather than in the file."
        })
    }
}

/// Headers whose values are shown: everything else in a [`Headers`] map may carry a
/// credential (`Authorization`, `X-Api-Key`, `PRIVATE-TOKEN`, `DD-API-KEY`, ...), and a
/// map of arbitrary names cannot know which, so only these are trusted to be harmless.
const SHOWN_HEADERS: [&str; 6] = [
    "accept",
    "accept-language",
    "content-type",
    "user-agent",
    "cache-control",
    "x-github-api-version",
];

/// Whether a header's value may be shown: the allow-list above, plus API-version headers
/// (`Api-Version`, `X-Api-Version`, `Notion-Version`, `Stripe-Version`, ...).
pub fn is_shown_header(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SHOWN_HEADERS.contains(&lower.as_str()) || lower.ends_with("-version")
}

/// An arbitrary header map from config (HTTP_JSON's `headers`): every value is a secret
/// unless its header is known to be harmless (see [`is_shown_header`]).
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct Headers(BTreeMap<String, Secret>);

impl Headers {
    /// The headers with their real values, to put on a request.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.expose()))
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, String)> for Headers {
    fn from_iter<T: IntoIterator<Item = (String, String)>>(iter: T) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k, Secret::new(v))).collect())
    }
}

impl Serialize for Headers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| {
            let shown = if is_shown_header(k) {
                v.expose()
            } else {
                REDACTED
            };
            (k, shown)
        }))
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string(self) {
            Ok(s) => f.write_str(&s),
            Err(_) => f.write_str(REDACTED),
        }
    }
}

impl JsonSchema for Headers {
    fn schema_name() -> Cow<'static, str> {
        "Headers".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "additionalProperties": { "type": "string", "writeOnly": true },
            "description": "Header name to value. Values are treated as secrets (never shown) unless the header is Accept, Content-Type, User-Agent or an API-version header."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_prints_and_serialises_as_stars() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "**** ****");
        assert_eq!(serde_json::to_string(&s).ok().as_deref(), Some("\"****\""));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn header_values_are_hidden_unless_allow_listed() {
        let h: Headers = [
            ("Accept", "application/json"),
            ("X-Api-Version", "2024-01-01"),
            ("PRIVATE-TOKEN", "glpat-1"),
            ("X-Custom", "abc"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let shown = serde_json::to_string(&h).unwrap_or_default();
        assert_eq!(
            shown,
            r#"{"Accept":"application/json","PRIVATE-TOKEN":"****","X-Api-Version":"2024-01-01","X-Custom":"****"}"#
        );
        assert!(h.iter().any(|(_, v)| v == "glpat-1"));
    }
}
