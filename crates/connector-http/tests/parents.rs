//! Parent/child reads against a mock of GitLab's documented behaviour: `GET
//! /projects?last_activity_after=` lists projects active after a time, and `GET
//! /projects/:id/issues?updated_after=` (`:id` an id or the URL-encoded path, "on or
//! after") lists a project's issues oldest first. The mock answers from a model the test
//! changes between polls, on a manual clock, so every time a request carries is pinned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use connector_core::ConnectorConfig;
use connector_core::context::{Context, ManualClock};
use connector_core::testing::Harness;
use connector_http::HttpJsonProvider;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The mock's clock starts here (UNIX seconds).
const T0: i64 = 1_800_000_000;

fn rfc3339(secs: i64) -> String {
    connector_core::time::format_millis(secs * 1000, &connector_core::time::TimeFormat::Rfc3339)
        .unwrap_or_default()
}

fn parse(text: &str) -> i64 {
    connector_core::time::parse_millis(text).map_or(0, |ms| ms / 1000)
}

#[derive(Clone)]
struct Project {
    id: u64,
    path: String,
    active: i64,
    /// Left out of the project list (archived), its issues still readable.
    archived: bool,
    /// Issues answered without their `updated_at` (they fail to parse).
    broken: Vec<u64>,
    /// (id, updated at)
    issues: Vec<(u64, i64)>,
}

/// GitLab, as far as these two endpoints go.
#[derive(Clone, Default)]
struct Gitlab {
    projects: Arc<Mutex<Vec<Project>>>,
    /// Each request's path and query, in order.
    asked: Arc<Mutex<Vec<String>>>,
}

impl Gitlab {
    fn with(&self, edit: impl FnOnce(&mut Vec<Project>)) {
        if let Ok(mut p) = self.projects.lock() {
            edit(&mut p);
        }
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().map(|a| a.clone()).unwrap_or_default()
    }

    fn query(request: &Request, name: &str) -> Option<String> {
        request
            .url
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

impl Respond for Gitlab {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let shown = match request.url.query() {
            Some(q) => format!("{}?{q}", request.url.path()),
            None => request.url.path().to_owned(),
        };
        if let Ok(mut a) = self.asked.lock() {
            a.push(shown);
        }
        let projects = self.projects.lock().map(|p| p.clone()).unwrap_or_default();
        let path = request.url.path();
        if path == "/api/v4/projects" {
            let after = Self::query(request, "last_activity_after").map(|t| parse(&t));
            let listed: Vec<Value> = projects
                .iter()
                .filter(|p| !p.archived && after.is_none_or(|a| p.active > a))
                .map(|p| {
                    json!({"id": p.id, "path_with_namespace": p.path,
                           "last_activity_at": rfc3339(p.active)})
                })
                .collect();
            return ResponseTemplate::new(200).set_body_json(listed);
        }
        let Some(project) = path
            .strip_prefix("/api/v4/projects/")
            .and_then(|rest| rest.strip_suffix("/issues"))
            .and_then(|id| projects.iter().find(|p| p.path.replace('/', "%2F") == id))
        else {
            return ResponseTemplate::new(404)
                .set_body_json(json!({"message": "404 Project Not Found"}));
        };
        let after = Self::query(request, "updated_after").map(|t| parse(&t));
        let mut issues: Vec<(u64, i64)> = project
            .issues
            .iter()
            .copied()
            .filter(|(_, at)| after.is_none_or(|a| *at >= a))
            .collect();
        issues.sort_by_key(|(_, at)| *at);
        // Paged as GitLab pages: `per_page` and `page`, a `Link` to the next.
        let per_page = Self::query(request, "per_page").and_then(|v| v.parse().ok());
        let page: usize = Self::query(request, "page")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let (from, size) = per_page.map_or((0, issues.len()), |n: usize| ((page - 1) * n, n));
        let body: Vec<Value> = issues
            .iter()
            .skip(from)
            .take(size)
            .map(|(id, at)| {
                let mut issue = json!({"id": id, "project_id": project.id,
                                       "title": format!("issue {id}"), "updated_at": rfc3339(*at)});
                if project.broken.contains(id) {
                    issue.as_object_mut().map(|o| o.remove("updated_at"));
                }
                issue
            })
            .collect();
        let mut reply = ResponseTemplate::new(200).set_body_json(body);
        if from + size < issues.len() {
            let mut next = request.url.clone();
            let kept: Vec<(String, String)> = next
                .query_pairs()
                .filter(|(k, _)| k != "page")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            next.query_pairs_mut()
                .clear()
                .extend_pairs(kept)
                .append_pair("page", &(page + 1).to_string());
            reply = reply.insert_header("link", format!("<{next}>; rel=\"next\"").as_str());
        }
        reply
    }
}

fn config(name: &str, server: &MockServer, parent: Value) -> ConnectorConfig {
    ConnectorConfig::new(name, "HTTP_JSON").with_provider_config(provider(server, parent))
}

/// The read: each project's issues, from the projects the token is a member of.
fn provider(server: &MockServer, parent: Value) -> Value {
    let mut parent_spec = json!({
        "request": {"url": format!("{}/api/v4/projects", server.uri()),
                    "query": {"membership": "true", "last_activity_after": "{{cursor}}"}},
        "records": {"path": "", "id": "/id"},
        "incremental": {"field": "/last_activity_at"}
    });
    if let (Some(spec), Value::Object(extra)) = (parent_spec.as_object_mut(), parent) {
        spec.extend(extra);
    }
    let provider = json!({
        "source": "gitlab",
        "request": {"url": format!("{}/api/v4/projects/{{{{parent:/path_with_namespace}}}}/issues", server.uri()),
                    "query": {"updated_after": "{{cursor}}", "order_by": "updated_at", "sort": "asc"}},
        "records": {"path": "", "id": "/id", "version": "/updated_at"},
        "signal": {"kind": "issue", "title": "{{/title}}"},
        "incremental": {"field": "/updated_at"},
        "parent": parent_spec
    });
    provider
}

/// Three projects: a and b, and c under a subgroup, with a few issues each.
fn three_projects() -> Vec<Project> {
    vec![
        Project {
            id: 1,
            path: "grp/a".into(),
            active: T0 - 500,
            archived: false,
            broken: Vec::new(),
            issues: vec![(11, T0 - 900), (12, T0 - 800)],
        },
        Project {
            id: 2,
            path: "grp/b".into(),
            active: T0 - 500,
            archived: false,
            broken: Vec::new(),
            issues: vec![(21, T0 - 700)],
        },
        Project {
            id: 3,
            path: "grp/sub/c".into(),
            active: T0 - 5000,
            archived: false,
            broken: Vec::new(),
            issues: vec![(31, T0 - 6000), (32, T0 - 5500)],
        },
    ]
}

struct Run {
    server: MockServer,
    api: Gitlab,
    clock: Arc<ManualClock>,
    harness: Harness,
}

async fn start(name: &str, parent: Value) -> Run {
    let server = MockServer::start().await;
    let api = Gitlab::default();
    api.with(|p| *p = three_projects());
    Mock::given(wiremock::matchers::any())
        .respond_with(api.clone())
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::at(
        UNIX_EPOCH + Duration::from_secs(T0.unsigned_abs()),
    ));
    let context = Context::isolated().with_clock(clock.clone());
    let harness =
        Harness::in_context::<HttpJsonProvider>(config(name, &server, parent), context).await;
    Run {
        server,
        api,
        clock,
        harness,
    }
}

impl Run {
    fn now(&self) -> i64 {
        self.clock.now_secs()
    }

    async fn poll(&mut self) -> connector_core::PollSummary {
        self.try_poll().await.expect("poll")
    }

    async fn try_poll(
        &mut self,
    ) -> Result<connector_core::PollSummary, connector_core::pipeline::PollError> {
        let h = &mut self.harness;
        let summary = h.connector.poll(&h.lease).await;
        self.clock.advance(Duration::from_secs(60));
        summary
    }

    /// How many times each external id was published.
    fn published(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for e in self.harness.published() {
            *out.entry(e.external_id.clone()).or_insert(0) += 1;
        }
        out
    }

    fn state(&self) -> connector_core::ports::ConnectorState {
        self.harness
            .backend
            .load_state(&self.harness.connector.config().name)
    }
}

trait Secs {
    fn now_secs(&self) -> i64;
}

impl Secs for ManualClock {
    fn now_secs(&self) -> i64 {
        connector_core::context::Clock::now_ms(self) / 1000
    }
}

/// The issue's test: three parents, one unchanged for ten polls while the others change
/// and full reads of the parents come and go; none of its children is published again,
/// its partition is never removed, and every other new or changed issue is published
/// once.
#[tokio::test]
async fn an_unchanged_parent_keeps_its_partition_and_publishes_nothing_again() {
    let mut run = start(
        "gitlab-issues",
        json!({"parentFullReadEvery": {"polls": 4}}),
    )
    .await;
    let first = run.poll().await;
    assert_eq!(first.published, 5, "{first:?}");
    for (next_issue, poll) in (100..).zip(2..=11) {
        let now = run.now();
        run.api.with(|projects| {
            // a gets a new issue every poll; b has one updated every other poll.
            projects[0].issues.push((next_issue, now - 1));
            projects[0].active = now - 1;
            if poll % 2 == 0 {
                projects[1].issues[0].1 = now - 1;
                projects[1].active = now - 1;
            }
        });
        let s = run.poll().await;
        let expected = 1 + u64::from(poll % 2 == 0);
        assert_eq!(s.published, expected, "poll {poll}: {s:?}");
        let state = run.state();
        for key in ["p/1", "p/2", "p/3"] {
            assert!(state.streams.contains_key(key), "poll {poll}: {key} kept");
        }
    }
    let published = run.published();
    assert_eq!(published.get("31"), Some(&1), "{published:?}");
    assert_eq!(published.get("32"), Some(&1), "{published:?}");
    assert_eq!(
        published.get("21"),
        Some(&6),
        "b's issue: created, then 5 updates"
    );
    let asked = run.api.asked();
    let full_reads = asked
        .iter()
        .filter(|a| a.starts_with("/api/v4/projects?") && !a.contains("last_activity_after"))
        .count();
    assert!(
        full_reads >= 3,
        "full parent reads every 4 polls: {asked:?}"
    );
    // c's children are asked for under its URL-encoded path, from c's own watermark.
    let c_reads: Vec<&String> = asked
        .iter()
        .filter(|a| a.starts_with("/api/v4/projects/grp%2Fsub%2Fc/issues"))
        .collect();
    assert_eq!(c_reads.len(), 11, "{c_reads:?}");
    let c_from = format!("updated_after={}", rfc3339(T0 - 5500).replace(':', "%3A"));
    assert!(
        c_reads[1..].iter().all(|a| a.contains(&c_from)),
        "{c_reads:?}"
    );
}

/// A parent gone from an incremental read is kept; complete full reads that no longer
/// list it (two in a row: `removalGracePolls`, as an API may drop an item from one
/// response) remove its partition and the partition's state, and its children are not
/// asked for again. A child answering 404 (its parent deleted) makes the next parent read
/// a full one.
#[tokio::test]
async fn a_partition_is_removed_only_by_a_complete_full_read() {
    let mut run = start(
        "gitlab-removal",
        json!({"parentFullReadEvery": {"polls": 10}}),
    )
    .await;
    run.poll().await;
    // Archived: no longer listed, its issues still readable.
    run.api.with(|p| p[1].archived = true);
    let before = run.api.asked().len();
    run.poll().await;
    assert!(
        run.state().streams.contains_key("p/2"),
        "an incremental read removes nothing"
    );
    assert!(
        run.api.asked()[before..]
            .iter()
            .any(|a| a.contains("grp%2Fb"))
    );
    // Deleted: its child answers 404, so the next poll reads the parents in full.
    run.api.with(|projects| {
        projects.retain(|p| p.id != 2);
    });
    let failed = run.try_poll().await.expect_err("b's child answers 404");
    assert!(failed.to_string().contains("404"), "{failed}");
    assert!(run.state().streams.contains_key("p/2"));
    let before = run.api.asked().len();
    run.try_poll()
        .await
        .expect_err("missing from one full read: kept, still 404");
    assert!(
        run.api.asked()[before..].contains(&"/api/v4/projects?membership=true".to_owned()),
        "a full read: {:?}",
        &run.api.asked()[before..]
    );
    assert!(run.state().streams["parents"].versions.contains_key("2"));
    run.poll().await;
    let state = run.state();
    let gone = state.streams.get("p/2").cloned().unwrap_or_default();
    assert_eq!(gone, Default::default(), "b's state is gone");
    assert!(!state.streams["parents"].versions.contains_key("2"));
    let before = run.api.asked().len();
    run.poll().await;
    let after: Vec<String> = run.api.asked()[before..].to_vec();
    assert!(
        !after.iter().any(|a| a.contains("grp%2Fb")),
        "b is not read once removed: {after:?}"
    );
}

/// `maxPartitionsPerPoll` reads that many partitions a poll, and the next poll goes on
/// where the last one stopped.
#[tokio::test]
async fn child_reads_rotate_through_the_partitions_across_polls() {
    let mut run = start("gitlab-rotation", json!({"maxPartitionsPerPoll": 2})).await;
    let mut order = Vec::new();
    for _ in 0..3 {
        let before = run.api.asked().len();
        run.poll().await;
        let children: Vec<String> = run.api.asked()[before..]
            .iter()
            .filter_map(|a| {
                a.strip_prefix("/api/v4/projects/")
                    .and_then(|r| r.split_once("/issues"))
                    .map(|(p, _)| p.to_owned())
            })
            .collect();
        order.push(children);
    }
    assert_eq!(
        order,
        [
            vec!["grp%2Fa", "grp%2Fb"],
            vec!["grp%2Fsub%2Fc"],
            vec!["grp%2Fa", "grp%2Fb"]
        ]
    );
    assert_eq!(run.published().len(), 5);
    // Nothing changed: once each partition was read from its watermark, a read writes
    // nothing but the rotation's mark.
    run.poll().await;
    let quiet = run.poll().await;
    assert_eq!((quiet.published, quiet.commits), (0, 1), "{quiet:?}");
}

/// Past `maxPartitions`, the partitions over the cap keep no state of their own: each
/// reads its whole history once, then from the start of the last round in which every
/// partition was read to completion (never from a record's time); nothing is published
/// twice, and the partitions under the cap keep their own watermarks.
#[tokio::test]
async fn past_the_cap_children_share_the_start_of_the_last_complete_round() {
    let mut run = start("gitlab-capped", json!({"maxPartitions": 2})).await;
    let round = run.now();
    let s = run.poll().await;
    assert_eq!(s.published, 5, "{s:?}");
    let before = run.api.asked().len();
    let s = run.poll().await;
    assert_eq!(s.published, 0, "{s:?}");
    let children: Vec<String> = run.api.asked()[before..]
        .iter()
        .filter(|a| a.contains("/issues"))
        .cloned()
        .collect();
    let from = |secs| format!("updated_after={}", rfc3339(secs).replace(':', "%3A"));
    assert_eq!(children.len(), 3, "{children:?}");
    assert!(
        children[0].contains(&from(T0 - 800)),
        "a, from its own watermark: {children:?}"
    );
    assert!(
        children[2].contains(&from(round)),
        "c, from the round's start: {children:?}"
    );
    let state = run.state();
    assert!(state.streams.contains_key("p/1") && state.streams.contains_key("p/2"));
    assert_eq!(
        state.streams.get("p/3").cloned().unwrap_or_default(),
        Default::default(),
        "no state of its own once its history was read"
    );
    assert_eq!(
        state.streams["p/*"].versions.len(),
        3,
        "c's two issues and its mark"
    );
}

/// Crossing the cap republishes nothing: the partitions with state keep it, and the one
/// past the cap reads its whole history once (its old issues are published, once).
#[tokio::test]
async fn crossing_the_cap_keeps_the_tracked_partitions_and_reads_the_new_ones_whole() {
    let mut run = start(
        "gitlab-crossing",
        json!({"maxPartitions": 3, "parentFullReadEvery": {"polls": 1}}),
    )
    .await;
    assert_eq!(run.poll().await.published, 5);
    let now = run.now();
    run.api.with(|p| {
        p.push(Project {
            id: 4,
            path: "grp/d".into(),
            active: now - 10,
            archived: false,
            broken: Vec::new(),
            issues: vec![(41, T0 - 90_000), (42, T0 - 80_000)],
        });
    });
    let s = run.poll().await;
    assert_eq!(s.published, 2, "d's whole history, once: {s:?}");
    let s = run.poll().await;
    assert_eq!(s.published, 0, "{s:?}");
    let published = run.published();
    assert!(published.values().all(|n| *n == 1), "{published:?}");
    assert_eq!(published.len(), 7);
}

/// `poll --explain` shows the parents found and the first partition's child request, as
/// a user building the config runs it.
#[tokio::test]
async fn explain_shows_the_parents_and_the_first_child_request() {
    let run = start("gitlab-explain", json!({})).await;
    let dir = std::env::temp_dir().join(format!("connector-http-parents-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("connectors.json");
    let doc = json!({"connectors": [{"name": "gitlab", "type": "HTTP_JSON",
                                     "providerConfig": provider(&run.server, json!({}))}]});
    std::fs::write(&file, doc.to_string()).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_connector-http"))
        .args(["poll", "gitlab", "--explain"])
        .env("CONNECTORS_CONFIG_PATH", &file)
        .env_remove("REDIS_URL")
        .env_remove("STATE_DIR")
        .env("HTTP_PORT", "off")
        .env("RUST_LOG", "error")
        .output()
        .expect("runs");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uri = run.server.uri();
    for line in [
        "stream (main): kind issue, parent/child (0 partition(s) recorded)".to_owned(),
        format!("  request: GET {uri}/api/v4/projects?membership=true"),
        r#"  record 1: id 1, version {"/path_with_namespace":"grp/a"}, time 2027-01-15T07:51:40Z: new"#
            .to_owned(),
        format!("  request: GET {uri}/api/v4/projects/grp%2Fa/issues?order_by=updated_at&sort=asc"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\nin\n{text}");
    }
}

/// Each partition's pages commit as they arrive: a process stopped after the first
/// partitions were committed loses nothing and publishes nothing twice when the next
/// process goes on.
#[tokio::test]
async fn a_stop_between_partitions_loses_and_repeats_nothing() {
    let run = start("gitlab-crash", json!({})).await;
    let backend = std::sync::Arc::new(connector_core::embedded::EmbeddedBackend::in_memory());
    for crash_after in [1, 2, 3] {
        let name = format!("gitlab-crash-{crash_after}");
        let mut first = Harness::on::<HttpJsonProvider>(
            config(&name, &run.server, json!({})),
            backend.clone(),
            Some(crash_after),
        )
        .await;
        let stopped = first.connector.poll(&first.lease).await;
        assert!(stopped.is_err(), "the process stops mid-poll");
        let mut next = Harness::on::<HttpJsonProvider>(
            config(&name, &run.server, json!({})),
            backend.clone(),
            None,
        )
        .await;
        next.connector.poll(&next.lease).await.expect("poll");
        next.connector.poll(&next.lease).await.expect("poll");
        let mut ids: Vec<String> = backend
            .published()
            .into_iter()
            .filter(|(_, e)| e.connector == name)
            .map(|(_, e)| e.external_id)
            .collect();
        ids.sort();
        assert_eq!(
            ids,
            ["11", "12", "21", "31", "32"],
            "stopped after {crash_after} commits"
        );
    }
}

/// An ascending read paged by offset asks each next page from the last page's newest
/// time, in the clause that holds `{{cursor}}`: the partition's own value stays in that
/// clause (`project = OPS`), and a parent value `..` cannot move up the path.
#[tokio::test]
async fn a_re_anchored_clause_keeps_its_parent_value() {
    let server = MockServer::start().await;
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = asked.clone();
    Mock::given(wiremock::matchers::any())
        .respond_with(move |r: &Request| {
            if let Ok(mut a) = seen.lock() {
                a.push(r.url.to_string());
            }
            if r.url.path() == "/rest/projects" {
                return ResponseTemplate::new(200)
                    .set_body_json(json!([{"id": "1", "key": "OPS"}, {"id": "2", "key": ".."},
                                          {"id": "3", "key": "T{time}"}]));
            }
            let start: u64 = r
                .url
                .query_pairs()
                .find(|(k, _)| k == "startAt")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let issues: Vec<Value> = (start..(start + 2).min(3))
                .map(|i| json!({"id": format!("{}-{i}", r.url.path()), "updated": rfc3339(T0 - 100 + i as i64)}))
                .collect();
            ResponseTemplate::new(200).set_body_json(json!({"issues": issues, "total": 3}))
        })
        .mount(&server)
        .await;
    let provider = json!({
        "request": {"url": format!("{}/rest/{{{{parent:/key}}}}/search", server.uri()),
                    "query": {"jql": "project = {{parent:/key}} AND updated >= \"{{cursor}}\""}},
        "records": {"path": "/issues", "id": "/id", "version": "/updated"},
        "signal": {"kind": "issue", "title": "{{/id}}"},
        "pagination": {"type": "offset", "param": "startAt", "limit": 2, "limitParam": "maxResults", "totalPath": "/total"},
        "incremental": {"field": "/updated", "initial": "2020-01-01T00:00:00Z"},
        "parent": {"request": {"url": format!("{}/rest/projects", server.uri())},
                   "records": {"path": "", "id": "/id"}}
    });
    let config = ConnectorConfig::new("anchored", "HTTP_JSON").with_provider_config(provider);
    let mut h = Harness::new::<HttpJsonProvider>(config).await;
    let s = h.connector.poll(&h.lease).await.expect("poll");
    assert_eq!((s.published, s.failed), (6, 1), "{s:?}");
    let asked = asked.lock().map(|a| a.clone()).unwrap_or_default();
    let ops: Vec<&String> = asked
        .iter()
        .filter(|a| a.contains("/rest/OPS/search"))
        .collect();
    assert!(ops.len() >= 2, "{asked:?}");
    assert!(
        ops.iter()
            .all(|a| a.contains("jql=project+%3D+OPS+AND+updated")),
        "{ops:?}"
    );
    assert!(
        asked.iter().all(|a| a.contains("/rest/")),
        "a parent `..` fails to parse, never reaches a path: {asked:?}"
    );
    // A value holding the anchor's own mark is left alone: that partition pages by offset.
    let odd: Vec<&String> = asked
        .iter()
        .filter(|a| a.contains("/rest/T%7Btime%7D/search"))
        .collect();
    assert!(
        odd.iter()
            .all(|a| a.contains("jql=project+%3D+T%7Btime%7D+AND+updated")),
        "{odd:?}"
    );
}

/// A partition past the cap whose history is longer than `limits.maxPages` reads it over
/// several polls, resuming where it stopped like any read, then joins the shared ones:
/// every issue once.
#[tokio::test]
async fn a_long_history_past_the_cap_is_read_over_several_polls() {
    let server = MockServer::start().await;
    let api = Gitlab::default();
    api.with(|p| {
        *p = three_projects();
        p[2].issues.push((33, T0 - 5000));
    });
    Mock::given(wiremock::matchers::any())
        .respond_with(api.clone())
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::at(
        UNIX_EPOCH + Duration::from_secs(T0.unsigned_abs()),
    ));
    let context = Context::isolated().with_clock(clock.clone());
    let mut spec = provider(&server, json!({"maxPartitions": 2}));
    spec["request"]["query"]["per_page"] = json!("2");
    spec["pagination"] = json!({"type": "linkHeader", "pageSize": 2});
    spec["limits"] = json!({"maxPages": 1});
    let config = ConnectorConfig::new("gitlab-long", "HTTP_JSON").with_provider_config(spec);
    let mut h = Harness::in_context::<HttpJsonProvider>(config, context).await;
    for _ in 0..5 {
        h.connector.poll(&h.lease).await.expect("poll");
        clock.advance(Duration::from_secs(60));
    }
    let mut ids: Vec<String> = h.published().into_iter().map(|e| e.external_id).collect();
    ids.sort();
    assert_eq!(ids, ["11", "12", "21", "31", "32", "33"], "each once");
    let state = h.backend.load_state("gitlab-long");
    assert_eq!(
        state.streams["p/*"]
            .versions
            .get("\u{1}3")
            .map(String::as_str),
        Some("shared")
    );
    assert_eq!(
        state.streams.get("p/3").cloned().unwrap_or_default(),
        Default::default()
    );
}

/// Past the cap, a record's failures are counted per partition: another shared
/// partition's complete read does not forget them, and its own complete read does.
#[tokio::test]
async fn a_shared_partitions_failures_are_its_own() {
    let mut run = start("gitlab-failing", json!({"maxPartitions": 1})).await;
    // b and c read their histories, then share the watermark; then c's issue 32 changes
    // into something that does not parse.
    run.poll().await;
    let now = run.now();
    run.api.with(|p| {
        p[2].broken = vec![32];
        p[2].issues[1].1 = now;
    });
    let failures = |run: &Run| -> Vec<(String, u32)> {
        let state = run.state();
        let mut f: Vec<(String, u32)> = state
            .streams
            .get("p/*")
            .map(|s| s.failures.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        f.sort();
        f
    };
    run.poll().await;
    run.poll().await;
    let counted = failures(&run);
    assert_eq!(counted.len(), 1, "{counted:?}");
    assert!(counted[0].0.starts_with("3\u{1}"), "{counted:?}");
    assert_eq!(
        counted[0].1, 2,
        "two polls in a row, b's reads between them"
    );
    run.api.with(|p| p[2].broken.clear());
    run.poll().await;
    assert_eq!(
        failures(&run),
        Vec::<(String, u32)>::new(),
        "forgotten once it parses"
    );
    assert_eq!(
        run.published().get("32"),
        Some(&2),
        "created, then its change"
    );
}
