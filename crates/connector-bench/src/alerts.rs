//! NOAA-shaped alerts, generated deterministically: the same index always gives the same
//! bytes, so runs are comparable and nothing depends on a recorded file.
//!
//! An alert has the shape of `tests/fixtures/alerts-active-severe-trimmed.json` in
//! connector-noaa (ids, times, area, zones, severity, headline, description, instruction,
//! parameters; no geometry), with a unique `properties.id`, pretty-printed with two-space
//! indentation like that fixture. A served alert is about 1.5 KB (1.15 KB compact). Revision 1 of an alert is an NWS update:
//! new `sent`/`expires` times and `messageType: Update`, which changes its version.

use serde::Serialize;
use serde_json::{Value, json};

/// Mixes an integer into a well-spread 64-bit value (splitmix64); the only randomness here.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

const AREAS: [(&str, &str); 8] = [
    ("Athens, OH", "OHC009"),
    ("Harris, TX", "TXC201"),
    ("King, WA", "WAC033"),
    ("Cook, IL", "ILC031"),
    ("Maricopa, AZ", "AZC013"),
    ("Polk, FL", "FLC105"),
    ("Hennepin, MN", "MNC053"),
    ("Fresno, CA", "CAC019"),
];

const EVENTS: [(&str, &str, &str, &str, &str); 6] = [
    ("Flood Warning", "Severe", "Likely", "Expected", "FLW"),
    (
        "Winter Storm Warning",
        "Moderate",
        "Likely",
        "Expected",
        "WSW",
    ),
    (
        "Severe Thunderstorm Warning",
        "Severe",
        "Observed",
        "Immediate",
        "SVR",
    ),
    ("Heat Advisory", "Moderate", "Likely", "Expected", "NPW"),
    ("Tornado Warning", "Extreme", "Observed", "Immediate", "TOR"),
    ("Wind Advisory", "Minor", "Possible", "Future", "NPW"),
];

const OFFICES: [(&str, &str); 6] = [
    ("NWS Charleston WV", "RLX"),
    ("NWS Houston/Galveston TX", "HGX"),
    ("NWS Seattle WA", "SEW"),
    ("NWS Chicago IL", "LOT"),
    ("NWS Phoenix AZ", "PSR"),
    ("NWS Tampa Bay Ruskin FL", "TBW"),
];

fn time(day: u64, hour: u64, minute: u64) -> String {
    format!(
        "2026-09-{:02}T{:02}:{:02}:00-04:00",
        day % 28 + 1,
        hour % 24,
        minute % 60
    )
}

/// The feature of alert `index` in the set named `set`, at `revision` (0: as first issued).
pub fn feature(set: &str, index: usize, revision: u32) -> Value {
    let seed = mix(set.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) ^ index as u64);
    let id = format!(
        "urn:oid:2.49.0.1.840.0.{:016x}{:016x}{:08x}.001.1",
        seed,
        mix(seed),
        mix(seed ^ 1) as u32
    );
    let url = format!("https://api.weather.gov/alerts/{id}");
    let (area, ugc) = AREAS[(seed % AREAS.len() as u64) as usize];
    let (event, severity, certainty, urgency, code) =
        EVENTS[((seed >> 8) % EVENTS.len() as u64) as usize];
    let (office, wfo) = OFFICES[((seed >> 16) % OFFICES.len() as u64) as usize];
    let day = seed >> 24;
    let hour = (seed >> 32) + u64::from(revision) * 3;
    let sent = time(day, hour, seed >> 40);
    let expires = time(day, hour + 8 + u64::from(revision), 0);
    let stage = (seed >> 44) % 900 + 100;
    let crest = (seed >> 50) % 15 + 15;
    let headline = format!("{event} issued September {} by {office}", day % 28 + 1);
    let description = format!(
        "* WHAT...{event}; river forecast to reach {crest}.{} feet.\n\n\
         * IMPACTS...At {stage} feet, low roads flood.",
        stage % 10
    );
    let mut properties = json!({
        "@id": url,
        "@type": "wx:Alert",
        "id": id,
        "areaDesc": area,
        "geocode": { "UGC": [ugc] },
        "affectedZones": [format!("https://api.weather.gov/zones/county/{ugc}")],
        "references": [],
        "sent": sent,
        "effective": sent,
        "onset": sent,
        "expires": expires,
        "status": "Actual",
        "messageType": if revision == 0 { "Alert" } else { "Update" },
        "category": "Met",
        "severity": severity,
        "certainty": certainty,
        "urgency": urgency,
        "event": event,
        "senderName": office,
        "headline": headline,
        "description": description,
        "instruction": "Turn around, don't drown when encountering flooded roads.",
        "response": "Avoid",
        "parameters": { "AWIPSidentifier": [format!("{code}{wfo}")] }
    });
    if revision > 0
        && let Some(p) = properties.as_object_mut()
    {
        p.insert(
            "references".into(),
            json!([{ "@id": url, "sent": time(day, hour, 0) }]),
        );
    }
    json!({ "id": url, "type": "Feature", "geometry": null, "properties": properties })
}

/// `value` pretty-printed (two-space indentation, as the recorded fixtures), nested
/// `depth` levels deep.
pub fn pretty(value: &Value, depth: usize) -> String {
    let mut out = Vec::with_capacity(2048);
    let mut ser = serde_json::Serializer::with_formatter(
        &mut out,
        serde_json::ser::PrettyFormatter::with_indent(b"  "),
    );
    // Serialising a Value into a Vec cannot fail.
    let _ = value.serialize(&mut ser);
    let text = String::from_utf8_lossy(&out);
    let pad = "  ".repeat(depth);
    let mut nested = String::with_capacity(text.len() * 11 / 10);
    nested.push_str(&pad);
    nested.push_str(&text.replace('\n', &format!("\n{pad}")));
    nested
}

/// A `/alerts/active` FeatureCollection around already printed features.
pub fn collection<'a>(features: impl IntoIterator<Item = &'a str>) -> String {
    let mut body = String::from(
        "{\n    \"@context\": [\n        \"https://geojson.org/geojson-ld/geojson-context.jsonld\",\n        {\n            \"@version\": \"1.1\",\n            \"wx\": \"https://api.weather.gov/ontology#\",\n            \"@vocab\": \"https://api.weather.gov/ontology#\"\n        }\n    ],\n    \"type\": \"FeatureCollection\",\n    \"features\": [\n",
    );
    let mut first = true;
    for f in features {
        if !first {
            body.push_str(",\n");
        }
        first = false;
        body.push_str(f);
    }
    body.push_str(
        "\n    ],\n    \"title\": \"Current watches, warnings, and advisories\",\n    \"updated\": \"2026-09-21T13:00:00+00:00\"\n}\n",
    );
    body
}

/// The printed features of a set of `n` alerts: revision 0, and the revision-1 text of
/// every `changed_every`-th one (index 0, 10, 20… for 10 %).
pub struct PrintedSet {
    /// Revision 0 of every alert.
    pub base: Vec<String>,
    /// `(index, revision 1)` of the changed alerts.
    pub changed: Vec<(usize, String)>,
}

impl PrintedSet {
    /// Prints `n` alerts of set `set`.
    pub fn new(set: &str, n: usize, changed_every: usize) -> Self {
        let base = (0..n).map(|i| pretty(&feature(set, i, 0), 2)).collect();
        let changed = (0..n)
            .step_by(changed_every.max(1))
            .map(|i| (i, pretty(&feature(set, i, 1), 2)))
            .collect();
        Self { base, changed }
    }

    /// The collection with revision 0 everywhere.
    pub fn base_body(&self) -> String {
        collection(self.base.iter().map(String::as_str))
    }

    /// The collection with the changed alerts at revision 1.
    pub fn changed_body(&self) -> String {
        let mut changed = self.changed.iter().peekable();
        collection(
            self.base
                .iter()
                .enumerate()
                .map(|(i, text)| match changed.peek() {
                    Some((at, new)) if *at == i => {
                        changed.next();
                        new.as_str()
                    }
                    _ => text.as_str(),
                }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_core::Record;
    use connector_noaa::schema::alerts_of;

    fn parse(body: &str) -> Vec<Record> {
        alerts_of(&std::sync::Arc::new(body.as_bytes().to_vec()))
            .expect("collection parses")
            .into_iter()
            .map(|a| a.expect("alert parses"))
            .collect()
    }

    #[test]
    fn alerts_are_deterministic_unique_and_about_one_and_a_half_kilobytes() {
        let a = PrintedSet::new("t", 200, 10);
        let b = PrintedSet::new("t", 200, 10);
        assert_eq!(a.base_body(), b.base_body());
        let mean = a.base.iter().map(String::len).sum::<usize>() / a.base.len();
        assert!(
            (1300..=1700).contains(&mean),
            "mean alert size {mean} bytes"
        );
        let alerts = parse(&a.base_body());
        let ids: std::collections::HashSet<String> =
            alerts.iter().map(|x| x.key().id.into_owned()).collect();
        assert_eq!(ids.len(), 200);
        assert!(
            alerts
                .iter()
                .all(|a| a.text("/properties/status").as_deref() == Some("Actual"))
        );
    }

    #[test]
    fn the_changed_body_changes_the_version_of_one_alert_in_ten_only() {
        let set = PrintedSet::new("t", 100, 10);
        let before = parse(&set.base_body());
        let after = parse(&set.changed_body());
        let changed: Vec<usize> = (0..100)
            .filter(|&i| before[i].key().version != after[i].key().version)
            .collect();
        assert_eq!(changed, (0..100).step_by(10).collect::<Vec<_>>());
        assert!(
            before
                .iter()
                .zip(&after)
                .all(|(x, y)| x.key().id == y.key().id)
        );
    }
}
