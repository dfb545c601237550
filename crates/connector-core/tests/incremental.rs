//! Incremental, paged reads end to end: the TEST_PAGED provider against its mock API on the
//! embedded backend, through the incremental contract and the cases behind it.

use connector_core::ConnectorConfig;
use connector_core::testing::paged::{PagedProvider, RecordsApi};
use connector_core::testing::{Harness, IncrementalScenario, run_incremental_contract};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

const N: usize = 7;

struct Records {
    api: std::sync::Mutex<RecordsApi>,
}

impl Records {
    fn new() -> Self {
        Self {
            api: std::sync::Mutex::new(RecordsApi::default()),
        }
    }

    fn api(&self) -> RecordsApi {
        self.api.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

async fn mount(server: &MockServer, api: &RecordsApi) {
    Mock::given(method("GET"))
        .and(path("/records"))
        .respond_with(api.clone())
        .mount(server)
        .await;
}

impl IncrementalScenario for Records {
    async fn serve_pages(&self, server: &MockServer) -> usize {
        let api = RecordsApi::with_records(N);
        mount(server, &api).await;
        if let Ok(mut slot) = self.api.lock() {
            *slot = api;
        }
        N
    }
    async fn serve_repeated_token(&self, _server: &MockServer) {
        self.api().repeat_tokens();
    }
    async fn break_one(&self, _server: &MockServer) -> String {
        self.api().put_raw(
            "r3",
            1_767_225_600_000 + 3 * 60_000,
            r#"{"id": "r3", "updated": 5}"#.into(),
        );
        "r3".into()
    }
    async fn fix_one(&self, _server: &MockServer) {
        self.api().upsert("r3", 1_767_225_600_000 + 3 * 60_000);
    }
}

fn config(server: &MockServer, extra: serde_json::Value) -> ConnectorConfig {
    let mut settings = serde_json::json!({ "baseUrl": server.uri() });
    if let (Some(s), Some(e)) = (settings.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let mut c = ConnectorConfig::new("paged", "TEST_PAGED").with_provider_config(settings);
    c.retry_config.base_delay_ms = 10;
    c.retry_config.max_delay_ms = 50;
    c
}

/// Six records read newest first by a process that stopped after committing the first
/// page. Descending: the watermark waits for the end of the read, so the resume point is
/// what saves the pages already read.
async fn stopped_after_one_page(
    server: &MockServer,
) -> (
    RecordsApi,
    ConnectorConfig,
    std::sync::Arc<connector_core::embedded::EmbeddedBackend>,
) {
    let api = RecordsApi::with_records(6);
    mount(server, &api).await;
    let cfg = config(server, serde_json::json!({ "descending": true }));
    let backend = std::sync::Arc::new(connector_core::embedded::EmbeddedBackend::in_memory());
    let mut stopped = Harness::on::<PagedProvider>(cfg.clone(), backend.clone(), Some(1)).await;
    assert!(
        stopped.connector.poll(&stopped.lease).await.is_err(),
        "the stopped poll fails"
    );
    (api, cfg, backend)
}

#[tokio::test]
async fn an_ascending_paged_read_meets_the_incremental_contract() {
    let server = MockServer::start().await;
    run_incremental_contract::<PagedProvider>(
        config(&server, serde_json::json!({})),
        &server,
        &Records::new(),
    )
    .await;
}

#[tokio::test]
async fn a_descending_paged_read_meets_the_incremental_contract() {
    let server = MockServer::start().await;
    let cfg = config(&server, serde_json::json!({ "descending": true }));
    run_incremental_contract::<PagedProvider>(cfg, &server, &Records::new()).await;
}

#[tokio::test]
async fn an_ascending_read_commits_its_watermark_page_by_page_and_starts_from_it() {
    let server = MockServer::start().await;
    let api = RecordsApi::with_records(5);
    mount(&server, &api).await;
    let mut h = Harness::new::<PagedProvider>(config(&server, serde_json::json!({}))).await;
    let first = h.connector.poll(&h.lease).await.expect("first sync");
    assert_eq!((first.published, first.pages, first.commits), (5, 3, 3));
    let state = h.backend.load_state("paged");
    assert_eq!(
        state.main.cursor.watermark.as_deref(),
        Some("2026-01-01T00:04:00Z")
    );
    assert_eq!(
        state.main.cursor.resume, None,
        "a complete read leaves no resume point"
    );

    api.upsert("r9", 1_767_225_600_000 + 10 * 60_000);
    let second = h.connector.poll(&h.lease).await.expect("incremental");
    assert_eq!(second.published, 1, "only the new record: {second:?}");
    let last = api.requests().last().cloned().unwrap_or_default();
    assert!(
        last.contains("since=2026-01-01T00%3A04%3A00Z"),
        "read from the watermark: {last}"
    );
}

#[tokio::test]
async fn a_read_stopped_mid_way_continues_from_its_resume_point() {
    let server = MockServer::start().await;
    let (api, cfg, backend) = stopped_after_one_page(&server).await;
    let resume = backend.load_state("paged").main.cursor.resume;
    assert!(
        resume.is_some(),
        "the first page's commit kept where the read goes on"
    );

    let mut next = Harness::on::<PagedProvider>(cfg, backend.clone(), None).await;
    let rest = next.connector.poll(&next.lease).await.expect("resumed");
    assert_eq!(
        rest.published, 4,
        "the two pages not yet committed: {rest:?}"
    );
    // The stopped process asked for pages 1 to 3 (one page is always fetched ahead); the
    // next one starts at page 2, the first one not committed.
    let asked: Vec<String> = api.requests();
    assert_eq!(asked.len(), 5, "{asked:?}");
    assert!(
        asked[3].contains("cursor=o2"),
        "the resumed read starts at page 2: {asked:?}"
    );
    let state = backend.load_state("paged");
    assert_eq!(state.main.cursor.resume, None);
    assert_eq!(
        state.main.cursor.watermark.as_deref(),
        Some("2026-01-01T00:05:00Z")
    );
}

#[tokio::test]
async fn a_record_that_keeps_failing_is_poisoned_after_three_polls_and_the_stream_moves_on() {
    let server = MockServer::start().await;
    let api = RecordsApi::with_records(5);
    api.put_raw(
        "r1",
        1_767_225_600_000 + 60_000,
        r#"{"id": "r1", "updated": []}"#.into(),
    );
    mount(&server, &api).await;
    let mut h = Harness::new::<PagedProvider>(config(&server, serde_json::json!({}))).await;
    for poll in 1..=2 {
        let s = h.connector.poll(&h.lease).await.expect("poll");
        assert_eq!((s.failed, s.poisoned), (1, 0), "poll {poll}: {s:?}");
        let state = h.backend.load_state("paged");
        // The failing record is on the first page: no page's position is saved past it.
        assert_eq!(
            state.main.cursor.watermark, None,
            "poll {poll}: the watermark waits below the failing record"
        );
        assert_eq!(
            state.main.failures.values().copied().collect::<Vec<_>>(),
            [poll]
        );
    }
    let third = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((third.failed, third.poisoned), (0, 1), "{third:?}");
    let state = h.backend.load_state("paged");
    assert_eq!(
        state.main.cursor.watermark.as_deref(),
        Some("2026-01-01T00:04:00Z"),
        "past the poisoned record"
    );
    let ids: Vec<String> = h.published().into_iter().map(|e| e.external_id).collect();
    assert_eq!(
        ids,
        ["r0", "r2", "r3", "r4"],
        "each published once, the poisoned one never"
    );
    // Mended, it is a new record (its bytes changed) and is published.
    api.upsert("r1", 1_767_225_600_000 + 9 * 60_000);
    let mended = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!(mended.published, 1, "{mended:?}");
}

#[tokio::test]
async fn a_pagination_loop_drops_the_resume_point_so_the_next_read_starts_over() {
    let server = MockServer::start().await;
    let (api, cfg, backend) = stopped_after_one_page(&server).await;
    assert!(backend.load_state("paged").main.cursor.resume.is_some());
    api.repeat_tokens();
    let mut next = Harness::on::<PagedProvider>(cfg, backend.clone(), None).await;
    let looped = next.connector.poll(&next.lease).await;
    let message = looped
        .map(|_| String::new())
        .unwrap_or_else(|e| e.to_string());
    assert!(message.contains("pagination loop"), "{message}");
    assert_eq!(
        backend.load_state("paged").main.cursor.resume,
        None,
        "the resume point that led into the loop is gone"
    );
}

#[tokio::test]
async fn a_link_paged_read_re_anchors_on_since_so_a_record_moved_mid_read_is_not_skipped() {
    let server = MockServer::start().await;
    let api = RecordsApi::with_records(6);
    // Once the first page is served, r0 is updated: it moves to the end of the order, and
    // every other record one place back, onto the page already read. Page 2 by number
    // would then start at r3 and r2 would never be read.
    api.change_after(1, "r0", 1_780_000_000_000);
    mount(&server, &api).await;
    let cfg = config(&server, serde_json::json!({ "linkPaging": true }));
    let mut h = Harness::new::<PagedProvider>(cfg).await;
    let first = h.connector.poll(&h.lease).await.expect("first sync");
    let ids: std::collections::BTreeSet<String> =
        h.published().into_iter().map(|e| e.external_id).collect();
    assert_eq!(
        ids.into_iter().collect::<Vec<_>>(),
        ["r0", "r1", "r2", "r3", "r4", "r5"],
        "{first:?}"
    );
    assert_eq!(first.published, 7, "r0 twice: its two versions");
    let asked = api.requests();
    assert!(
        asked[1..].iter().all(|q| q.contains("since=")),
        "each next page is asked for by time: {asked:?}"
    );
}

#[tokio::test]
async fn unchanged_pages_cost_a_304_and_the_read_follows_their_stored_links() {
    let server = MockServer::start().await;
    let api = RecordsApi::with_records(5);
    mount(&server, &api).await;
    // A lookback wide enough that each poll asks the same pages again.
    let cfg = config(
        &server,
        serde_json::json!({ "linkPaging": true, "lookbackSeconds": 864000 }),
    );
    let mut h = Harness::new::<PagedProvider>(cfg).await;
    let first = h.connector.poll(&h.lease).await.expect("first sync");
    assert_eq!(first.published, 5);
    // The first request now has a `since`: it is new; the pages it re-anchors onto are
    // the first poll's, unchanged.
    let second = h.connector.poll(&h.lease).await.expect("same pages");
    assert_eq!(second.published, 0, "{second:?}");
    assert_eq!(api.not_modified() as u64, second.pages - 1, "{second:?}");
    let (before, revalidated) = (api.requests().len(), api.not_modified());
    let third = h.connector.poll(&h.lease).await.expect("revalidated");
    let asked = api.requests().len() - before;
    assert_eq!(third.published, 0, "{third:?}");
    assert_eq!(
        api.not_modified() - revalidated,
        asked,
        "every page answered 304, each reached by its stored link"
    );
    assert!(asked > 1, "the whole chain was walked: {asked}");
    let asked_before = api.requests().len();
    let revalidated = api.not_modified();

    // A change on a later page: that page is read in full, the others still 304.
    api.upsert("r3", 1_767_225_600_000 + 3 * 60_000 + 1000);
    let fourth = h.connector.poll(&h.lease).await.expect("one page changed");
    assert_eq!(fourth.published, 1, "{fourth:?}");
    let full = (api.requests().len() - asked_before) - (api.not_modified() - revalidated);
    assert!(
        api.not_modified() > revalidated && full >= 1,
        "the unchanged first pages were 304s, the changed one read in full"
    );
}

#[tokio::test]
async fn a_record_whose_signal_cannot_be_built_is_poisoned_like_one_that_does_not_parse() {
    let server = MockServer::start().await;
    let api = RecordsApi::with_records(5);
    // It has an id and a time, so it is read, but no title for its signal.
    api.put_raw(
        "r1",
        1_767_225_600_000 + 60_000,
        r#"{"id": "r1", "updated": "2026-01-01T00:01:00Z"}"#.into(),
    );
    mount(&server, &api).await;
    let mut h = Harness::new::<PagedProvider>(config(&server, serde_json::json!({}))).await;
    for poll in 1..=2 {
        let s = h.connector.poll(&h.lease).await.expect("poll");
        assert_eq!((s.failed, s.poisoned), (1, 0), "poll {poll}: {s:?}");
        let state = h.backend.load_state("paged");
        assert_eq!(
            state.main.cursor.watermark, None,
            "poll {poll}: the cursor waits for the record"
        );
        assert_eq!(
            state.main.failures.values().copied().collect::<Vec<_>>(),
            [poll]
        );
    }
    let third = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((third.failed, third.poisoned), (0, 1), "{third:?}");
    let state = h.backend.load_state("paged");
    assert_eq!(
        state.main.cursor.watermark.as_deref(),
        Some("2026-01-01T00:04:00Z"),
        "past the poisoned record"
    );
    assert!(
        state.main.versions.contains_key("r1"),
        "recorded, unpublished"
    );
    let fourth = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!(
        (fourth.failed, fourth.poisoned, fourth.published),
        (0, 0, 0),
        "{fourth:?}"
    );
    let state = h.backend.load_state("paged");
    assert!(
        state.main.failures.is_empty(),
        "its count is forgotten once it no longer fails"
    );
    let ids: Vec<String> = h.published().into_iter().map(|e| e.external_id).collect();
    assert_eq!(
        ids,
        ["r0", "r2", "r3", "r4"],
        "the others once each, r1 never"
    );
}

#[tokio::test]
async fn a_record_nested_deeper_than_a_reader_takes_fails_alone() {
    let server = MockServer::start().await;
    let api = RecordsApi::with_records(3);
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    api.put_raw(
        "r1",
        1_767_225_600_000 + 60_000,
        format!(
            r#"{{"id": "r1", "updated": "2026-01-01T00:01:00Z", "title": "t", "deep": {deep}}}"#
        ),
    );
    mount(&server, &api).await;
    let mut h = Harness::new::<PagedProvider>(config(&server, serde_json::json!({}))).await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((s.failed, s.published), (1, 2), "{s:?}");
    let ids: Vec<String> = h.published().into_iter().map(|e| e.external_id).collect();
    assert_eq!(ids, ["r0", "r2"], "the deep record is not published");
}

#[tokio::test]
async fn a_record_at_the_depth_cap_is_published_and_its_signal_reads_back() {
    let server = MockServer::start().await;
    let api = RecordsApi::with_records(1);
    // The record's own object is the first level.
    let deep = format!("{}{}", "[".repeat(99), "]".repeat(99));
    api.put_raw(
        "r0",
        1_767_225_600_000,
        format!(
            r#"{{"id": "r0", "updated": "2026-01-01T00:00:00Z", "title": "t", "deep": {deep}}}"#
        ),
    );
    mount(&server, &api).await;
    let mut h = Harness::new::<PagedProvider>(config(&server, serde_json::json!({}))).await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((s.failed, s.published), (0, 1), "{s:?}");
    let entry = h.published().pop().expect("entry");
    let signal: serde_json::Value =
        serde_json::from_str(&entry.signal).expect("serde_json reads the signal back");
    assert_eq!(signal["payload"]["id"], "r0");
}
