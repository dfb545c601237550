//! The guide's metrics hash: field names and how to read them back.
//!
//! Writes go through `metrics_record.lua` (the running average needs a read-modify-write
//! that concurrent instances must not interleave); reads are one `HGETALL`.

use std::collections::HashMap;

use connector_core::ports::ConnectorMetrics;

/// Last poll start, UNIX ms.
pub const LAST_POLL_TIME: &str = "lastPollTime";
/// Last successful poll start, UNIX ms.
pub const LAST_SUCCESS_TIME: &str = "lastSuccessTime";
/// Polls attempted.
pub const TOTAL_POLLS: &str = "totalPolls";
/// Polls that succeeded.
pub const SUCCESSFUL_POLLS: &str = "successfulPolls";
/// Polls that failed.
pub const FAILED_POLLS: &str = "failedPolls";
/// Items fetched.
pub const ITEMS_FETCHED: &str = "itemsFetched";
/// Signals published.
pub const ITEMS_PUBLISHED: &str = "itemsPublished";
/// Mean poll latency, milliseconds.
pub const AVERAGE_LATENCY_MS: &str = "averageLatencyMs";

/// Every field of the hash, in the guide's order.
pub const FIELDS: [&str; 8] = [
    LAST_POLL_TIME,
    LAST_SUCCESS_TIME,
    TOTAL_POLLS,
    SUCCESSFUL_POLLS,
    FAILED_POLLS,
    ITEMS_FETCHED,
    ITEMS_PUBLISHED,
    AVERAGE_LATENCY_MS,
];

/// Reads the hash; `None` for an empty (absent) one. A field that does not parse counts as
/// absent: metrics are for display and must not fail a health check over one bad value.
pub fn metrics_from_fields(fields: &HashMap<String, String>) -> Option<ConnectorMetrics> {
    if fields.is_empty() {
        return None;
    }
    let int = |name: &str| fields.get(name).and_then(|v| v.trim().parse::<u64>().ok());
    Some(ConnectorMetrics {
        last_poll_time: int(LAST_POLL_TIME),
        last_success_time: int(LAST_SUCCESS_TIME),
        total_polls: int(TOTAL_POLLS).unwrap_or(0),
        successful_polls: int(SUCCESSFUL_POLLS).unwrap_or(0),
        failed_polls: int(FAILED_POLLS).unwrap_or(0),
        items_fetched: int(ITEMS_FETCHED).unwrap_or(0),
        items_published: int(ITEMS_PUBLISHED).unwrap_or(0),
        average_latency_ms: fields
            .get(AVERAGE_LATENCY_MS)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .unwrap_or(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_hash_is_no_metrics() {
        assert_eq!(metrics_from_fields(&HashMap::new()), None);
    }

    #[test]
    fn fields_parse_into_the_metrics() {
        let fields: HashMap<String, String> = [
            (LAST_POLL_TIME, "20"),
            (TOTAL_POLLS, "3"),
            (FAILED_POLLS, "3"),
            (AVERAGE_LATENCY_MS, "12.500"),
            (ITEMS_FETCHED, "junk"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let m = metrics_from_fields(&fields).expect("some");
        assert_eq!(m.last_poll_time, Some(20));
        assert_eq!(m.last_success_time, None);
        assert_eq!((m.total_polls, m.failed_polls, m.items_fetched), (3, 3, 0));
        assert!((m.average_latency_ms - 12.5).abs() < 1e-9);
    }
}
