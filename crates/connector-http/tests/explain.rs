//! `connector-http poll NAME --explain`, as a user building a config runs it.

use std::process::Command;

use serde_json::json;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn explain_shows_each_record_and_the_next_request() {
    let server = MockServer::start().await;
    let next = format!("<{}/items?page=2>; rel=\"next\"", server.uri());
    Mock::given(path("/items"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", next.as_str())
                .set_body_json(json!([
                    {"id": "a", "updated": "2026-01-05T10:00:00Z", "title": "First"},
                    {"id": "b", "updated": "2026-01-05T10:01:00Z", "title": "A pull request", "pull_request": {}},
                    {"updated": "2026-01-05T10:02:00Z", "title": "No id"}
                ])),
        )
        .mount(&server)
        .await;
    let dir = std::env::temp_dir().join(format!("connector-http-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = json!({"connectors": [{
        "name": "items",
        "type": "HTTP_JSON",
        "providerConfig": {
            "request": {"url": format!("{}/items", server.uri()), "query": {"since": "{{cursor}}"}},
            "records": {"path": "", "id": "/id", "version": "/updated", "skip": [{"present": "/pull_request"}]},
            "signal": {"kind": "item", "title": "{{/title}}"},
            "pagination": {"type": "linkHeader"},
            "incremental": {"field": "/updated"}
        }
    }]});
    let file = dir.join("connectors.json");
    std::fs::write(&file, config.to_string()).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_connector-http"))
        .args(["poll", "items", "--explain"])
        .env("CONNECTORS_CONFIG_PATH", &file)
        .env_remove("REDIS_URL")
        .env_remove("STATE_DIR")
        .env("HTTP_PORT", "off")
        .env("RUST_LOG", "error")
        .output()
        .expect("runs");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = [
        "stream (main): kind item, incremental (read from its watermark)".to_owned(),
        format!("  request: GET {}/items", server.uri()),
        "  3 records on the first page".to_owned(),
        "  record 1: id a, version 2026-01-05T10:00:00Z, time 2026-01-05T10:00:00Z: new, title \"First\"".to_owned(),
        "  record 2: left out (skipped), time 2026-01-05T10:01:00Z".to_owned(),
        "  record 3: fails: no id at /id".to_owned(),
        // Re-anchored on `since` (the page's newest kept record), not the link's page 2.
        format!(
            "  next request: GET {}/items?since=2026-01-05T10%3A00%3A00Z",
            server.uri()
        ),
    ];
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected, "{stdout}");
    // Nothing was written: the embedded store of this process is gone with it, and the
    // first page was the only request.
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        1
    );
}

/// Runs the binary on `config` in a folder of its own.
fn run_binary(
    tag: &str,
    config: &serde_json::Value,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("connector-http-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("connectors.json");
    std::fs::write(&file, config.to_string()).expect("write");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_connector-http"));
    cmd.args(args)
        .env("CONNECTORS_CONFIG_PATH", &file)
        .env_remove("REDIS_URL")
        .env_remove("STATE_DIR")
        .env("HTTP_PORT", "off")
        .env("RUST_LOG", "error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("runs");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn validate_masks_a_variable_inside_the_url_or_query() {
    let config = json!({"connectors": [{
        "name": "keyed",
        "type": "HTTP_JSON",
        "providerConfig": {
            "request": {"url": "https://api.example.test/bot${BOT_TOKEN}/items", "query": {"sig": "${SIG}"}},
            "records": {"path": "", "id": "/id"},
            "signal": {"kind": "item", "title": "{{/id}}"}
        }
    }]});
    let out = run_binary(
        "validate-vars",
        &config,
        &["validate", "--print"],
        &[
            ("BOT_TOKEN", "bot-t0ken-123456"),
            ("SIG", "sig-value-123456"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains("bot-t0ken-123456"), "{stdout}");
    assert!(!stdout.contains("sig-value-123456"), "{stdout}");
    assert!(
        stdout.contains("https://api.example.test/bot****/items"),
        "{stdout}"
    );
}

#[tokio::test]
async fn explain_marks_unreadable_times_and_fails_when_none_is_readable() {
    let server = MockServer::start().await;
    Mock::given(path("/items"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": "a", "changed": "yesterday"},
            {"id": "b"}
        ])))
        .mount(&server)
        .await;
    let config = json!({"connectors": [{
        "name": "times",
        "type": "HTTP_JSON",
        "providerConfig": {
            "request": {"url": format!("{}/items", server.uri())},
            "records": {"path": "", "id": "/id"},
            "signal": {"kind": "item", "title": "{{/id}}"},
            "incremental": {"field": "/changed", "initial": "-1d"}
        }
    }]});
    let out = run_binary(
        "explain-times",
        &config,
        &["poll", "times", "--explain"],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("record 1: id a, version ")
            && stdout.contains("time yesterday (unreadable: the watermark cannot move on it)"),
        "{stdout}"
    );
    assert!(stdout.contains("time absent (unreadable"), "{stdout}");
    assert!(
        stderr.contains("no record on the first page has a readable time at /changed"),
        "{stderr}"
    );
}

/// A title template whose pointers find nothing is said by `--explain` and `--dry-run`
/// (the poll itself would publish empty titles without a word); a first page that cannot
/// be read fails `--explain`.
#[tokio::test]
async fn empty_titles_are_warned_about_and_an_unreadable_first_page_fails() {
    let server = MockServer::start().await;
    Mock::given(path("/items"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": "a"}])))
        .mount(&server)
        .await;
    Mock::given(path("/broken"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let config = |url: String| {
        json!({"connectors": [{
            "name": "items",
            "type": "HTTP_JSON",
            "maxRetries": 0,
            "providerConfig": {
                "request": {"url": url},
                "records": {"path": "", "id": "/id"},
                "signal": {"kind": "item", "title": "{{/summary}}"}
            }
        }]})
    };
    let items = config(format!("{}/items", server.uri()));
    for args in [
        ["poll", "items", "--explain"],
        ["poll", "items", "--dry-run"],
    ] {
        let out = run_binary("empty-title", &items, &args, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        assert!(err.contains("empty title"), "{args:?}: {err}");
    }
    let broken = config(format!("{}/broken", server.uri()));
    let out = run_binary("broken-page", &broken, &["poll", "items", "--explain"], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the first page cannot be read"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
