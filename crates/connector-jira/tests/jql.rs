//! JQL handling: a user's ORDER BY split off, and the incremental bound written in the
//! searching user's zone.

use connector_jira::jql::{is_updated_ascending, query, since, split_order_by};

#[test]
fn a_user_order_by_is_split_off_outside_quotes_only() {
    assert_eq!(
        split_order_by("project = OPS ORDER BY priority DESC"),
        ("project = OPS", Some("ORDER BY priority DESC"))
    );
    assert_eq!(
        split_order_by(r#"summary ~ "sort order by date" AND project = A"#),
        (r#"summary ~ "sort order by date" AND project = A"#, None)
    );
    assert_eq!(
        split_order_by("project = A order\n  by updated"),
        ("project = A", Some("order\n  by updated"))
    );
    assert_eq!(split_order_by("reorder = by"), ("reorder = by", None));
    assert_eq!(
        split_order_by("labels = größe ORDER BY created"),
        ("labels = größe", Some("ORDER BY created"))
    );
    assert_eq!(
        split_order_by("summary ~ 日本語"),
        ("summary ~ 日本語", None)
    );
    assert!(is_updated_ascending("ORDER BY updated ASC"));
    assert!(!is_updated_ascending("ORDER BY updated DESC"));
}

#[test]
fn the_bound_is_written_in_the_users_zone_to_the_minute() {
    // 2026-01-09T13:03:59Z is 08:03 in New York (UTC-5 in January); the overlap is 3 min.
    let bound = since("America/New_York", 180_000)
        .value(Some("2026-01-09T13:06:59Z"), 0)
        .expect("a JQL time");
    assert_eq!(bound.as_deref(), Some("2026/01/09 08:03"));
    assert_eq!(
        query("project = A OR labels = x", bound.as_deref()),
        r#"(project = A OR labels = x) AND updated >= "2026/01/09 08:03" ORDER BY updated ASC"#
    );
    assert_eq!(
        query("project = A", None),
        "(project = A) ORDER BY updated ASC"
    );
    assert_eq!(
        since("UTC", 180_000).value(None, 0),
        Ok(None),
        "a first sync has no bound"
    );
    let unwritable = since("Mars/Olympus", 0).value(Some("2026-01-09T13:06:59Z"), 0);
    assert!(
        unwritable.is_err(),
        "a bound that cannot be written fails the read: {unwritable:?}"
    );
}
