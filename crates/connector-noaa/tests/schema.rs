//! The NWS alert schema: reading features from a page body, versions, and what a signal
//! says of an alert.

use std::sync::Arc;

use connector_core::source::Body;
use connector_core::{Record, Severity};
use connector_noaa::schema::{alert, alerts_of, describe, severity};

const SEVERE: &str = include_str!("fixtures/alerts-active-severe-trimmed.json");
const MD: &str = include_str!("fixtures/alerts-active-area-MD.json");

/// One feature in a body of its own, as a record.
fn parse(feature: &str) -> Result<Record, serde_json::Error> {
    let body: Body = Arc::new(feature.as_bytes().to_vec());
    Ok(alert(&body, 0..body.len(), feature)?.0)
}

/// A real-world alert (`status: Actual`).
fn is_actual(alert: &Record) -> bool {
    alert
        .text("/properties/status")
        .is_some_and(|s| s.eq_ignore_ascii_case("actual"))
}

fn alerts(body: &str) -> Vec<Record> {
    alerts_of(&Arc::new(body.as_bytes().to_vec()))
        .expect("fixture parses")
        .into_iter()
        .map(|a| a.expect("feature parses"))
        .collect()
}

#[test]
fn recorded_alerts_parse_with_stable_versions() {
    let a = alerts(SEVERE);
    let b = alerts(SEVERE);
    assert_eq!(a.len(), 3);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.version(), y.version());
        assert!(is_actual(x));
    }
    assert_ne!(a[0].version(), a[1].version());
}

#[test]
fn the_signal_follows_the_contract() {
    let a = &alerts(SEVERE)[0];
    let s = describe(a).expect("signal");
    assert_eq!(s.kind, "weather_alert");
    assert_eq!(s.severity, Severity::High);
    assert!(s.title.starts_with("Flood Warning issued September 21"));
    assert_eq!(s.occurred_at.as_deref(), Some("2026-09-21T09:00:00-04:00"));
    assert_eq!(
        s.url.as_deref(),
        Some(
            "https://api.weather.gov/alerts/urn:oid:2.49.0.1.840.0.98dd4a259cd31c075f985143f8f356067c3bcf73.001.1"
        )
    );
}

#[test]
fn a_missing_headline_falls_back_to_event_and_area() {
    let a = &alerts(MD)[0];
    let title = describe(a).expect("details").title;
    assert!(title.starts_with("Test Message"), "no headline: {}", title);
    assert!(!is_actual(a), "the KEEPALIVE is a Test message");
    let s = describe(a).expect("signal");
    assert!(s.title.starts_with("Test Message"), "{}", s.title);
    assert_eq!(s.severity, Severity::Info);
}

#[test]
fn severities_map_onto_the_normalised_scale() {
    assert_eq!(severity(Some("Extreme")), Severity::Critical);
    assert_eq!(severity(Some("Severe")), Severity::High);
    assert_eq!(severity(Some("Moderate")), Severity::Medium);
    assert_eq!(severity(Some("Minor")), Severity::Low);
    assert_eq!(severity(Some("Unknown")), Severity::Info);
    assert_eq!(severity(None), Severity::Info);
}

#[test]
fn a_changed_description_changes_the_version_and_geometry_does_not() {
    let base = alerts(SEVERE).remove(0);
    let mut v: serde_json::Value = serde_json::from_str(base.raw()).expect("json");
    v["geometry"] = serde_json::Value::Null;
    let same = parse(&v.to_string()).expect("ok");
    assert_eq!(same.version(), base.version());
    v["properties"]["description"] = "updated text".into();
    let changed = parse(&v.to_string()).expect("ok");
    assert_ne!(changed.version(), base.version());
}

#[test]
fn the_alerts_of_a_page_point_into_its_one_body() {
    let body = Arc::new(SEVERE.as_bytes().to_vec());
    let alerts: Vec<Record> = alerts_of(&body)
        .expect("fixture parses")
        .into_iter()
        .map(|a| a.expect("feature parses"))
        .collect();
    assert_eq!(alerts.len(), 3);
    let within = body.as_ptr().addr()..body.as_ptr().addr() + body.len();
    for a in &alerts {
        assert!(
            within.contains(&a.raw().as_ptr().addr()),
            "the feature is a slice of the body, not a copy"
        );
        assert!(SEVERE.contains(a.raw()), "the feature as received");
        assert!(within.contains(&a.id().as_ptr().addr()), "so is the id");
    }
    assert_eq!(
        Arc::strong_count(&body),
        1 + alerts.len(),
        "every alert holds the one body, no copy"
    );
}

#[test]
fn stray_bytes_fail_only_the_feature_they_are_in() {
    let clean = alerts(SEVERE);
    let mut body = b"{\"note\": \"\xff\xfe\",".to_vec();
    body.extend_from_slice(&SEVERE.as_bytes()[1..]);
    let read: Vec<Record> = alerts_of(&Arc::new(body))
        .expect("stray bytes in a field not read")
        .into_iter()
        .map(|a| a.expect("alert"))
        .collect();
    assert_eq!(read.len(), clean.len());
    for (x, y) in read.iter().zip(&clean) {
        assert_eq!(
            (x.id(), x.version(), x.raw()),
            (y.id(), y.version(), y.raw())
        );
    }
    let mut body = SEVERE.as_bytes().to_vec();
    let at = SEVERE.find("Flood Warning issued").expect("a headline");
    body[at] = 0xff;
    let read = alerts_of(&Arc::new(body)).expect("the page still splits");
    assert_eq!(read.len(), 3);
    assert!(read[0].is_err(), "the feature that is not UTF-8");
    assert!(read[1].is_ok() && read[2].is_ok(), "the others are read");
}

#[test]
fn a_body_that_is_not_a_feature_collection_is_an_error() {
    for text in [r#"{"features": [{}, ]}"#, r#"{"features": 5}"#, "[[]"] {
        assert!(
            alerts_of(&Arc::new(text.as_bytes().to_vec())).is_err(),
            "{text}"
        );
    }
    let odd = r#"{"features": [{"properties": {"id": "a\u0031"}}, 42, [{"id": "b"}]]}"#;
    let read = alerts_of(&Arc::new(odd.as_bytes().to_vec())).expect("a list");
    assert_eq!(read[0].as_ref().map(Record::id).ok(), Some("a1"));
    assert!(read[1].is_err(), "a number is no feature");
    assert!(
        read[2].is_ok(),
        "serde reads a struct from a sequence, as it always did"
    );
}

#[test]
fn optional_strings_are_borrowed_unescaped_when_needed_and_type_checked_as_before() {
    let a =
        parse(r#"{"properties": {"id": "a\u0031", "headline": "Flood \"Warning\"", "@id": "u"}}"#)
            .expect("alert");
    assert_eq!(a.id(), "a1");
    assert_eq!(describe(&a).expect("details").title, "Flood \"Warning\"");
    let e = parse(r#"{"properties": {"id": "a", "headline": 5}}"#)
        .expect_err("a number is not a headline");
    assert_eq!(
        e.to_string(),
        "invalid type: integer `5`, expected a string at line 1 column 40"
    );
}
