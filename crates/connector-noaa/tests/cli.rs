//! The `connector-noaa` binary as an operator uses it: validate, schema, a dry-run poll.

use std::path::Path;
use std::process::{Command, Output};

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn connector(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_connector-noaa"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("REDIS_URL")
        .env_remove("CONNECTORS_CONFIG_PATH")
        .env_remove("ENABLED_CONNECTORS")
        .env_remove("CONNECTOR_NAME")
        .env_remove("STATE_DIR")
        .env_remove("NOAA_CONTACT")
        .env_remove("NOAA_BASE_URL")
        .env("HTTP_PORT", "off")
        .env("RUST_LOG", "warn");
    for var in [
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "https_proxy",
        "http_proxy",
        "all_proxy",
        "no_proxy",
        "SSL_CERT_FILE",
        "LOG_FORMAT",
        "SHUTDOWN_GRACE_SECONDS",
        "HTTP_BIND",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ] {
        cmd.env_remove(var);
    }
    // The tests own the environment their configs read.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CONNECTOR_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the binary runs")
}

async fn serve_severe(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/alerts/active"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(include_str!("fixtures/alerts-active-severe-trimmed.json")),
        )
        .mount(server)
        .await;
}

fn write_config(dir: &Path, json: &str) {
    std::fs::write(dir.join("connectors.json"), json).expect("write config");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("noaa-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn validate_prints_the_resolved_config_without_secrets() {
    let dir = tempdir("valid");
    write_config(
        &dir,
        r#"{"connectors": [
  {"name": "w", "type": "NOAA_WEATHER", "providerConfig": {"area": "CA"}},
  {"name": "j", "type": "JIRA", "enabled": false, "providerConfig": {"apiToken": "${JIRA_TOKEN}"}}
]}"#,
    );
    let out = connector(&dir, &["validate"], &[("JIRA_TOKEN", "very-secret-token")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The verdict alone, unless the resolved config is asked for.
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).starts_with("connectors.json is valid: 2 connector(s)"),
        "{}",
        text(&out.stderr)
    );
    let out = connector(
        &dir,
        &["validate", "--print"],
        &[("JIRA_TOKEN", "very-secret-token")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("very-secret-token"), "{stdout}");
    let shown: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(
        shown["connectors"][0]["pollIntervalMs"], 60000,
        "defaults resolved"
    );
    assert_eq!(shown["connectors"][1]["providerConfig"]["apiToken"], "****");
}

#[test]
fn validate_exits_1_listing_every_mistake() {
    let dir = tempdir("broken");
    write_config(
        &dir,
        r#"{"connectors": [
  {"name": "w", "type": "NOAA_WEATHER", "pollIntervalMS": 5,
   "providerConfig": {"area": "CA", "contact": "${NOAA_CONTACT}"}}
]}"#,
    );
    let out = connector(&dir, &["validate"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("2 problems in the connector configuration"),
        "{stderr}"
    );
    assert!(
        stderr.contains("connectors.json:2:41: connectors[0].pollIntervalMS: unknown field \"pollIntervalMS\", did you mean \"pollIntervalMs\"?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("connectors.json:3:37: connectors[0].providerConfig.contact: environment variable NOAA_CONTACT is not set"),
        "{stderr}"
    );

    write_config(&dir, "{\"connectors\": [\n  {\"name\": \"w\"\n]}");
    let out = connector(&dir, &["validate"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("connectors.json:3:1: invalid JSON"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn schema_prints_a_json_schema_with_the_provider_settings() {
    let dir = tempdir("schema");
    let out = connector(&dir, &["schema"], &[]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let text = schema.to_string();
    assert!(text.contains("maxAlertsPerPoll") && text.contains("pollIntervalMs"));
}

#[tokio::test]
async fn a_dry_run_poll_prints_signals_as_json_lines() {
    let server = MockServer::start().await;
    serve_severe(&server).await;
    let dir = tempdir("dry");
    write_config(
        &dir,
        &format!(
            r#"{{"connectors": [{{"name": "w", "type": "NOAA_WEATHER", "providerConfig": {{"baseUrl": "{}"}}}}]}}"#,
            server.uri()
        ),
    );
    let (out, run) = tokio::task::spawn_blocking(move || {
        (
            connector(&dir, &["poll", "w", "--dry-run"], &[]),
            connector(&dir, &["poll", "w"], &[]),
        )
    })
    .await
    .expect("join");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let parse = |bytes: &[u8]| -> Vec<serde_json::Value> {
        text(bytes)
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON line per signal"))
            .collect()
    };
    let lines = parse(&out.stdout);
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["stream"] == "raw-input-signals"
        && l["signal"]["kind"] == "weather_alert"
        && l["signal"]["change"] == "created"));
    // Exactly what a real poll in embedded mode prints: one jq filter reads both.
    let published = parse(&run.stdout);
    let keys = |l: &serde_json::Value| -> Vec<String> {
        l.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(
        lines.iter().map(keys).collect::<Vec<_>>(),
        published.iter().map(keys).collect::<Vec<_>>()
    );
    let dedup = |ls: &[serde_json::Value]| -> Vec<String> {
        ls.iter().map(|l| l["dedup_id"].to_string()).collect()
    };
    assert_eq!(dedup(&lines), dedup(&published));
}

#[test]
fn a_bad_runtime_setting_is_refused_by_validate_naming_the_variable() {
    let dir = tempdir("settings");
    write_config(
        &dir,
        r#"{"connectors": [{"name": "w", "type": "NOAA_WEATHER"}]}"#,
    );
    let out = connector(
        &dir,
        &["validate"],
        &[("SHUTDOWN_GRACE_SECONDS", "-1"), ("LOG_FORMAT", "weird")],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "2 problems in the runtime settings (environment variables):\n  \
         SHUTDOWN_GRACE_SECONDS: invalid value=\"-1\": expected a whole number of seconds from 0 to 3600\n  \
         LOG_FORMAT: invalid value=\"weird\": expected \"text\" or \"json\"\n"
    );
}

#[tokio::test]
async fn requests_go_through_the_proxy_the_environment_names() {
    // The mock plays the proxy: a request for http://noaa.invalid/... reaches it in
    // absolute form, which it matches like any other.
    let proxy = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/alerts/active"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string(include_str!("fixtures/alerts-active-severe-trimmed.json")),
        )
        .expect(1)
        .mount(&proxy)
        .await;
    let dir = tempdir("proxy");
    write_config(
        &dir,
        r#"{"connectors": [{"name": "w", "type": "NOAA_WEATHER", "providerConfig": {"baseUrl": "http://noaa.invalid"}}]}"#,
    );
    let uri = proxy.uri();
    let (through, bypassed) = tokio::task::spawn_blocking(move || {
        let through = connector(
            &dir,
            &["poll", "w", "--dry-run"],
            &[("HTTP_PROXY", uri.as_str())],
        );
        let bypassed = connector(
            &dir,
            &["poll", "w", "--dry-run"],
            &[("HTTP_PROXY", uri.as_str()), ("NO_PROXY", "noaa.invalid")],
        );
        (through, bypassed)
    })
    .await
    .expect("join");
    assert!(through.status.success(), "{}", text(&through.stderr));
    assert_eq!(text(&through.stdout).lines().count(), 3);
    assert!(
        !bypassed.status.success(),
        "NO_PROXY sends it direct, where the host does not resolve"
    );
}

#[tokio::test]
async fn state_is_shown_and_reset_per_stream() {
    let server = MockServer::start().await;
    serve_severe(&server).await;
    let dir = tempdir("state");
    let state_dir = dir.join("state");
    write_config(
        &dir,
        &format!(
            r#"{{"connectors": [{{"name": "w", "type": "NOAA_WEATHER", "providerConfig": {{"baseUrl": "{}"}}}}]}}"#,
            server.uri()
        ),
    );
    let sd = state_dir.display().to_string();
    let outs = tokio::task::spawn_blocking(move || {
        let env = [("STATE_DIR", sd.as_str())];
        let polled = connector(&dir, &["poll", "w"], &env);
        let shown = connector(&dir, &["state", "show", "w"], &env);
        let resync = connector(
            &dir,
            &["state", "reset", "w", "--since", "2026-11-01T00:00:00Z"],
            &env,
        );
        let after = connector(&dir, &["state", "show", "w"], &env);
        let unknown = connector(&dir, &["state", "reset", "w", "--stream", "nope"], &env);
        (polled, shown, resync, after, unknown)
    })
    .await
    .expect("join");
    let (polled, shown, resync, after, unknown) = outs;
    assert!(polled.status.success(), "{}", text(&polled.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    assert_eq!(shown["streams"][0]["stream"], "(main)");
    assert!(shown["streams"][0]["resumePoint"].is_null(), "{shown}");
    assert_eq!(shown["streams"][0]["versionCount"], 3);
    assert!(resync.status.success(), "{}", text(&resync.stderr));
    assert!(text(&resync.stderr).contains("read again from 2026-11-01T00:00:00Z"));
    let after: serde_json::Value = serde_json::from_slice(&after.stdout).expect("JSON");
    assert_eq!(after["streams"][0]["watermark"], "2026-11-01T00:00:00Z");
    assert_eq!(
        after["streams"][0]["versionCount"], 3,
        "a re-sync keeps the versions"
    );
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("has no stream \"nope\""),
        "{}",
        text(&unknown.stderr)
    );
}

#[test]
fn the_binary_names_itself_in_its_version() {
    let dir = std::env::temp_dir();
    let out = connector(&dir, &["--version"], &[]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("connector-noaa {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_connector_of_another_binary_names_the_binary_that_runs_it() {
    let dir = tempdir("other-binary");
    write_config(
        &dir,
        r#"{"connectors": [{"name": "h", "type": "HTTP_JSON", "providerConfig": {}}]}"#,
    );
    let out = connector(&dir, &["poll", "h", "--dry-run"], &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("run it with connector-http or the universal `connectors` binary"),
        "{err}"
    );
}

#[test]
fn inspection_commands_in_embedded_mode_say_what_they_need() {
    let dir = tempdir("embedded-inspect");
    write_config(
        &dir,
        r#"{"connectors": [{"name": "w", "type": "NOAA_WEATHER", "providerConfig": {}}]}"#,
    );
    for (args, needs) in [
        (&["lease", "show", "w"][..], "`lease` needs REDIS_URL"),
        (&["metrics"][..], "`metrics` needs REDIS_URL"),
        (
            &["state", "show", "w"][..],
            "`state` needs REDIS_URL or STATE_DIR",
        ),
        (
            &["state", "reset", "w"][..],
            "`state` needs REDIS_URL or STATE_DIR",
        ),
    ] {
        let out = connector(&dir, args, &[]);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(needs), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} prints no empty answer");
    }
    // With STATE_DIR, `state` acts on the folder, and a reset warns about a running process.
    let sd = dir.join("state").display().to_string();
    let reset = connector(&dir, &["state", "reset", "w"], &[("STATE_DIR", &sd)]);
    assert!(reset.status.success(), "{}", text(&reset.stderr));
    assert!(
        text(&reset.stderr).contains("stop the process that runs this connector first"),
        "{}",
        text(&reset.stderr)
    );
}

#[tokio::test]
async fn one_shot_commands_print_only_their_answer_unless_rust_log_asks() {
    let server = MockServer::start().await;
    serve_severe(&server).await;
    let dir = tempdir("quiet");
    write_config(
        &dir,
        &format!(
            r#"{{"connectors": [{{"name": "w", "type": "NOAA_WEATHER", "providerConfig": {{"baseUrl": "{}"}}}}]}}"#,
            server.uri()
        ),
    );
    let (quiet, asked) = tokio::task::spawn_blocking(move || {
        let mut quiet = Command::new(env!("CARGO_BIN_EXE_connector-noaa"));
        quiet
            .args(["poll", "w", "--dry-run"])
            .current_dir(&dir)
            .env_remove("RUST_LOG")
            .env_remove("REDIS_URL")
            .env_remove("CONNECTORS_CONFIG_PATH")
            .env("HTTP_PORT", "off");
        let quiet = quiet.output().expect("runs");
        let asked = connector(&dir, &["poll", "w", "--dry-run"], &[("RUST_LOG", "info")]);
        (quiet, asked)
    })
    .await
    .expect("join");
    assert!(quiet.status.success(), "{}", text(&quiet.stderr));
    let err = text(&quiet.stderr);
    assert!(!err.contains("INFO"), "no progress lines: {err}");
    assert!(
        err.contains("dry run, nothing committed"),
        "the answer: {err}"
    );
    assert!(
        text(&asked.stderr).contains("INFO"),
        "{}",
        text(&asked.stderr)
    );
}

#[test]
fn a_connector_variable_with_a_misspelt_name_is_warned_about() {
    let dir = tempdir("env-typo");
    write_config(
        &dir,
        r#"{"connectors": [{"name": "weather-noaa", "type": "NOAA_WEATHER", "providerConfig": {}}]}"#,
    );
    let out = connector(
        &dir,
        &["validate"],
        &[("CONNECTOR_WEATHER_NOA_POLL_INTERVAL_MS", "120000")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("CONNECTOR_WEATHER_NOA_POLL_INTERVAL_MS matches no configured connector"),
        "{err}"
    );
    assert!(err.contains("CONNECTOR_WEATHER_NOAA_*"), "{err}");
}

#[test]
fn validate_and_run_say_when_there_is_nothing_configured() {
    let dir = tempdir("nothing");
    let out = connector(&dir, &["validate"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("no connectors.json here and no CONNECTOR_* variables: pass --config FILE"),
        "{err}"
    );
    let out = connector(&dir, &["run"], &[("HTTP_PORT", "off")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no connectors.json here"),
        "{}",
        text(&out.stderr)
    );
    write_config(&dir, r#"{"connectors": []}"#);
    let out = connector(&dir, &["validate"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("connectors.json has no connectors"),
        "{}",
        text(&out.stderr)
    );
    // Disabled connectors are a configuration, said with a note.
    write_config(
        &dir,
        r#"{"connectors": [{"name": "w", "type": "NOAA_WEATHER", "enabled": false}]}"#,
    );
    let out = connector(&dir, &["validate"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("note: nothing here would run"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_dry_run_against_an_unreachable_provider_points_to_the_demo() {
    let dir = tempdir("dry-offline");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    write_config(
        &dir,
        &format!(
            r#"{{"connectors": [{{"name": "w", "type": "NOAA_WEATHER", "maxRetries": 0,
                "providerConfig": {{"baseUrl": "http://127.0.0.1:{closed}"}}}}]}}"#
        ),
    );
    let out = connector(&dir, &["poll", "w", "--dry-run"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("cargo run -p connector-noaa --example demo"),
        "{err}"
    );
    assert!(!err.contains("committed pages stay"), "{err}");
}

#[test]
fn help_names_the_types_this_binary_runs() {
    let dir = tempdir("help");
    let out = connector(&dir, &["--help"], &[]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(help.contains("of type NOAA_WEATHER and appends"), "{help}");
    assert!(!help.contains("JIRA"), "{help}");
}

#[test]
fn an_unreachable_redis_is_one_line_in_plain_words_with_what_to_do() {
    let dir = tempdir("no-redis");
    write_config(
        &dir,
        r#"{"connectors": [{"name": "w", "type": "NOAA_WEATHER"}]}"#,
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let url = format!("redis://127.0.0.1:{closed}");
    let out = connector(&dir, &["run"], &[("REDIS_URL", url.as_str())]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("connection refused: nothing listens there"),
        "{err}"
    );
    assert!(err.contains("just infra-up"), "{err}");
    assert!(!err.contains("Os {"), "{err}");
    assert_eq!(err.matches(&url).count(), 1, "{err}");
    assert!(!err.contains("already stopped"), "{err}");
}
