//! The raw signal and the stream entry: the contract with every downstream consumer.
//!
//! A signal is what a consumer of `raw-input-signals` reads. Its shape is versioned
//! (`schemaVersion`) and is the same for every provider; what differs between providers
//! lives in `payload`, which is the item exactly as the API sent it.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;
use xxhash_rust::xxh3::xxh3_128;

/// The version of the signal JSON layout; bump it only with a migration note for consumers.
pub const SCHEMA_VERSION: u32 = 1;

/// What happened to an item since the last poll that saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// First time this connector has seen the external id.
    Created,
    /// Seen before with another version.
    Updated,
    /// Left a snapshot source's current set (only with `emitRemovals`).
    Removed,
}

impl Change {
    /// The lower-case name used in the signal JSON and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Removed => "removed",
        }
    }
}

/// Severity normalised across providers so consumers can route without knowing each API.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational; also used when the provider gives no severity.
    Info,
    /// Minor.
    Low,
    /// Moderate.
    Medium,
    /// Severe.
    High,
    /// Extreme or outage-level.
    Critical,
}

impl Severity {
    /// The severity an API's word stands for in `table` (its words, matched without regard
    /// to case): one way for every provider to read `critical`, `SEV-1` or `Highest`.
    pub fn named(word: &str, table: &[(&str, Severity)]) -> Option<Severity> {
        table
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(word))
            .map(|(_, s)| *s)
    }

    /// The severity a user's map (a config field: label, priority or state to severity)
    /// gives `word`, matched without regard to case.
    pub fn mapped(
        word: &str,
        map: &std::collections::BTreeMap<String, Severity>,
    ) -> Option<Severity> {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(word))
            .map(|(_, s)| *s)
    }
}

/// `text` as RFC 3339, which the stream entry's `occurredAt` promises: kept as it is when
/// it already is (an office's local offset stays as sent), rewritten in UTC when it is
/// another time format the core reads (Jira's `+0000`, epoch numbers), dropped when it is
/// no time at all.
pub fn rfc3339_time(text: Cow<'_, str>) -> Option<Cow<'_, str>> {
    if is_rfc3339(&text) {
        return Some(text);
    }
    let millis = crate::time::parse_millis(&text)?;
    crate::time::format_millis(millis, &crate::time::TimeFormat::Rfc3339)
        .ok()
        .map(Cow::Owned)
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
fn is_rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !(digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10))
        || !matches!(b[10], b'T' | b't')
        || !(digits(11..13) && b[13] == b':' && digits(14..16) && b[16] == b':' && digits(17..19))
    {
        return false;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

/// What a provider says about one new or changed record: only what differs per record.
/// The pipeline adds the rest of the envelope (schema version, source, connector, type,
/// id, version, change, observation time, dedup id) from the config and the record's key,
/// and the payload: the record as received.
#[derive(Debug, Clone)]
pub struct Description<'a> {
    /// What kind of thing the record is, e.g. `weather_alert`, `issue`.
    pub kind: Cow<'a, str>,
    /// One line for humans.
    pub title: Cow<'a, str>,
    /// Normalised severity.
    pub severity: Severity,
    /// When the thing happened, RFC 3339, as the provider states it.
    pub occurred_at: Option<Cow<'a, str>>,
    /// A link to the record, when the API has one.
    pub url: Option<Cow<'a, str>>,
}

impl<'a> Description<'a> {
    /// A record of `kind` titled `title`, without a time or a link.
    pub fn new(
        kind: impl Into<Cow<'a, str>>,
        title: impl Into<Cow<'a, str>>,
        severity: Severity,
    ) -> Self {
        Self {
            kind: kind.into(),
            title: title.into(),
            severity,
            occurred_at: None,
            url: None,
        }
    }

    /// With when it happened.
    pub fn at(self, occurred_at: Option<Cow<'a, str>>) -> Self {
        Self {
            occurred_at,
            ..self
        }
    }

    /// With its link.
    pub fn link(self, url: Option<Cow<'a, str>>) -> Self {
        Self { url, ..self }
    }
}

/// Why one item could not become a signal: it is counted as failed, skipped for this
/// poll, and seen again by the next one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ItemError(pub String);

impl ItemError {
    /// An item that does not have the shape the provider needs.
    pub fn new(reason: impl std::fmt::Display) -> Self {
        Self(reason.to_string())
    }
}

/// One new, changed or removed item, normalised: the envelope the pipeline builds around
/// a [`Description`] and a payload. Serialises to the signal JSON of DESIGN.md. It borrows everything,
/// since it lives only until it is encoded.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RawSignal<'a> {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Provider, e.g. `noaa`.
    pub source: &'a str,
    /// Connector instance name, e.g. `weather-noaa`.
    pub connector: &'a str,
    /// Connector type, e.g. `NOAA_WEATHER`.
    pub connector_type: &'a str,
    /// The provider's stable id of the item.
    pub external_id: &'a str,
    /// The version that was detected (API version field or content hash).
    pub version: &'a str,
    /// What kind of thing the item is, e.g. `weather_alert`, `issue`.
    pub kind: &'a str,
    /// Created, updated or removed.
    pub change: Change,
    /// One line for humans.
    pub title: &'a str,
    /// Normalised severity.
    pub severity: Severity,
    /// When the thing happened, RFC 3339, as the provider states it.
    pub occurred_at: Option<&'a str>,
    /// When this connector saw it, RFC 3339 UTC.
    pub observed_at: &'a str,
    /// A link to the item, when the API has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<&'a str>,
    /// The item as received, so nothing the provider said is lost (only whitespace between
    /// tokens is dropped when the entry is encoded).
    pub payload: &'a RawValue,
}

/// What the pipeline knows of a signal before the provider speaks: everything that comes
/// from the config and the item's key.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// The provider's name, e.g. `noaa`.
    pub source: &'a str,
    /// Connector instance name.
    pub connector: &'a str,
    /// Connector type.
    pub connector_type: &'a str,
    /// When this poll observed the item (RFC 3339 UTC).
    pub observed_at: &'a str,
    /// The item's id.
    pub external_id: &'a str,
    /// The item's version.
    pub version: &'a str,
    /// Created, updated or removed.
    pub change: Change,
}

impl<'a> Envelope<'a> {
    /// The whole signal: this envelope around what the provider said and the payload.
    pub fn signal(&self, parts: &'a Description<'_>, payload: &'a RawValue) -> RawSignal<'a> {
        RawSignal {
            schema_version: SCHEMA_VERSION,
            source: self.source,
            connector: self.connector,
            connector_type: self.connector_type,
            external_id: self.external_id,
            version: self.version,
            kind: &parts.kind,
            change: self.change,
            title: &parts.title,
            severity: parts.severity,
            occurred_at: parts.occurred_at.as_deref(),
            observed_at: self.observed_at,
            url: parts.url.as_deref(),
            payload,
        }
    }
}

/// One entry of the output stream: flat fields for cheap filtering plus the signal JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StreamEntry {
    /// Connector instance name.
    pub connector: String,
    /// Connector type.
    #[serde(rename = "type")]
    pub connector_type: String,
    /// The provider's id of the item.
    pub external_id: String,
    /// The item's version.
    pub version: String,
    /// Stable hash of connector + external id + version; consumers de-duplicate on it.
    pub dedup_id: String,
    /// The signal, serialised once.
    pub signal: String,
}

impl StreamEntry {
    /// Serialises the signal once; the Redis and stdout publishers both reuse the string.
    pub fn from_signal(signal: &RawSignal<'_>) -> Result<Self, serde_json::Error> {
        Ok(Self {
            connector: signal.connector.to_owned(),
            connector_type: signal.connector_type.to_owned(),
            external_id: signal.external_id.to_owned(),
            version: signal.version.to_owned(),
            // A removal repeats the last version it had; without the marker it would share
            // the dedup_id of the signal that published that version, and consumers that
            // de-duplicate would drop it.
            dedup_id: if signal.change == Change::Removed {
                dedup_id(
                    signal.connector,
                    signal.external_id,
                    &format!("{}\0removed", signal.version),
                )
            } else {
                dedup_id(signal.connector, signal.external_id, signal.version)
            },
            signal: compact_json(serde_json::to_string(signal)?),
        })
    }

    /// The entry's fields in stream order, as `XADD` wants them.
    pub fn fields(&self) -> [(&'static str, &str); 6] {
        [
            ("connector", &self.connector),
            ("type", &self.connector_type),
            ("external_id", &self.external_id),
            ("version", &self.version),
            ("dedup_id", &self.dedup_id),
            ("signal", &self.signal),
        ]
    }
}

/// Removes the whitespace outside strings that a raw payload kept from a pretty-printed
/// response, so an entry is one line (JSON-lines output) and no bytes are wasted in Redis.
/// Everything else, including number spelling and key order, stays byte for byte.
pub fn compact_json(json: String) -> String {
    let bytes = json.as_bytes();
    // The copy is made only once whitespace outside a string turns up: a compact document
    // (the common case for compact API responses) is returned as is. Bytes are copied in
    // runs, from one dropped whitespace byte to the next.
    let mut out: Option<Vec<u8>> = None;
    let (mut kept, mut i) = (0, 0);
    while let Some(&b) = bytes.get(i) {
        if b == b'"' {
            i = string_end(bytes, i);
        } else if b.is_ascii_whitespace() {
            let out = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
            out.extend_from_slice(&bytes[kept..i]);
            i += 1;
            kept = i;
        } else {
            i += 1;
        }
    }
    let Some(mut out) = out else {
        return json;
    };
    out.extend_from_slice(&bytes[kept..]);
    // Only ASCII whitespace outside strings was removed, so the bytes are still UTF-8.
    String::from_utf8(out).unwrap_or(json)
}

/// The offset just past the string that opens at `open`: after its closing quote (found
/// with memchr, escapes skipped), or the end for a string left open (not JSON, but no
/// byte is ever lost).
fn string_end(bytes: &[u8], open: usize) -> usize {
    let mut i = open + 1;
    while let Some(off) = bytes
        .get(i..)
        .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
    {
        i += off;
        if bytes[i] == b'"' {
            return i + 1;
        }
        i += 2;
    }
    bytes.len()
}

/// Stable across processes and releases: changing it would make consumers see every item
/// as new once, so the algorithm (xxh3-128 over NUL-separated parts) is fixed.
pub fn dedup_id(connector: &str, external_id: &str, version: &str) -> String {
    let mut buf = Vec::with_capacity(connector.len() + external_id.len() + version.len() + 2);
    buf.extend_from_slice(connector.as_bytes());
    buf.push(0);
    buf.extend_from_slice(external_id.as_bytes());
    buf.push(0);
    buf.extend_from_slice(version.as_bytes());
    format!("{:032x}", xxh3_128(&buf))
}

/// Formats a UNIX time in milliseconds as RFC 3339 UTC (`2026-11-24T21:00:00.000Z`).
///
/// Written out here because the only other user of a date library would be this one line.
pub fn rfc3339_millis(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let millis = unix_ms % 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm), valid for the whole u64-ms range we use.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_words_and_maps_match_without_case() {
        let table = [("SEV-1", Severity::Critical), ("warn", Severity::Medium)];
        assert_eq!(Severity::named("sev-1", &table), Some(Severity::Critical));
        assert_eq!(Severity::named("WARN", &table), Some(Severity::Medium));
        assert_eq!(Severity::named("SEV-9", &table), None);
        let map = [("Blocker".to_owned(), Severity::High)]
            .into_iter()
            .collect();
        assert_eq!(Severity::mapped("blocker", &map), Some(Severity::High));
        assert_eq!(Severity::mapped("minor", &map), None);
    }

    #[test]
    fn occurred_at_is_rfc3339_whatever_the_api_wrote() {
        let t = |s: &str| rfc3339_time(Cow::Borrowed(s)).map(Cow::into_owned);
        assert_eq!(
            t("2026-09-28T23:57:00-06:00").as_deref(),
            Some("2026-09-28T23:57:00-06:00")
        );
        assert_eq!(
            t("2022-03-20T06:21:50.295+0530").as_deref(),
            Some("2022-03-20T00:51:50.295Z")
        );
        assert_eq!(t("1655744852000").as_deref(), Some("2022-06-20T17:07:32Z"));
        assert_eq!(t("soon"), None);
    }

    #[test]
    fn dedup_id_is_stable_and_separates_parts() {
        assert_eq!(dedup_id("a", "b", "c"), dedup_id("a", "b", "c"));
        assert_ne!(dedup_id("ab", "", "c"), dedup_id("a", "b", "c"));
        assert_eq!(dedup_id("a", "b", "c").len(), 32);
    }

    #[test]
    fn compaction_removes_whitespace_outside_strings_only() {
        let pretty = "{\n  \"a\": [1, 2.50],\n  \"b\": \"x  y\\\" \\n z\"\n}".to_owned();
        assert_eq!(compact_json(pretty), r#"{"a":[1,2.50],"b":"x  y\" \n z"}"#);
        assert_eq!(
            compact_json("{ \"é\" : \"ü  ß\" }".to_owned()),
            "{\"é\":\"ü  ß\"}",
            "multi-byte text inside and outside strings is kept"
        );
        let already = r#"{"a":"b c"}"#.to_owned();
        assert_eq!(compact_json(already.clone()), already);
        assert_eq!(
            compact_json("[\"a\\\\\" , \"b\"]".to_owned()),
            "[\"a\\\\\",\"b\"]",
            "an escaped backslash does not escape the closing quote"
        );
    }

    /// The byte-at-a-time definition the fast version must match.
    fn compact_reference(json: &str) -> String {
        let mut out = Vec::new();
        let (mut in_string, mut escaped) = (false, false);
        for &b in json.as_bytes() {
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                out.push(b);
            } else if !b.is_ascii_whitespace() {
                in_string = b == b'"';
                out.push(b);
            }
        }
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn compaction_matches_the_byte_at_a_time_definition_on_any_input() {
        // Unterminated strings, trailing backslashes and stray quotes included: nothing
        // from outside may make it lose or invent a byte.
        let alphabet = [
            '{', '}', '[', ']', '"', '\\', ' ', '\n', '\t', 'a', 'é', ',', ':', '1',
        ];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            let text: String = (0..len)
                .map(|k| alphabet[((seed >> (k % 8 * 8)) as usize + k * 7) % alphabet.len()])
                .collect();
            assert_eq!(
                compact_json(text.clone()),
                compact_reference(&text),
                "{text:?}"
            );
        }
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(
            rfc3339_millis(1_795_554_000_000),
            "2026-11-24T21:00:00.000Z"
        );
    }

    #[test]
    fn signal_serialises_to_the_documented_field_names() {
        let payload = RawValue::from_string(r#"{"a": 1}"#.into()).expect("valid json");
        let observed_at = rfc3339_millis(0);
        let signal = RawSignal {
            schema_version: SCHEMA_VERSION,
            source: "noaa",
            connector: "weather-noaa",
            connector_type: "NOAA_WEATHER",
            external_id: "x1",
            version: "v1",
            kind: "weather_alert",
            change: Change::Created,
            title: "t",
            severity: Severity::High,
            occurred_at: Some("2026-01-01T00:00:00Z"),
            observed_at: &observed_at,
            url: None,
            payload: &payload,
        };
        let entry = StreamEntry::from_signal(&signal).expect("serialises");
        let json: serde_json::Value = serde_json::from_str(&entry.signal).expect("json");
        let keys: Vec<_> = json.as_object().expect("object").keys().cloned().collect();
        for key in [
            "schemaVersion",
            "source",
            "connector",
            "connectorType",
            "externalId",
            "version",
            "kind",
            "change",
            "title",
            "severity",
            "occurredAt",
            "observedAt",
            "payload",
        ] {
            assert!(keys.contains(&key.to_string()), "missing {key}");
        }
        assert_eq!(json["change"], "created");
        assert_eq!(json["severity"], "high");
        assert!(
            entry.signal.contains(r#""payload":{"a":1}"#),
            "payload kept, compacted"
        );
        assert_eq!(entry.dedup_id, dedup_id("weather-noaa", "x1", "v1"));
    }
}
