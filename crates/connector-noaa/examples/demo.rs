//! `just demo`: the NOAA connector in embedded mode against a local server that replays
//! recorded api.weather.gov responses. No network, no credentials, no Redis.
//!
//! The server answers the first polls with three recorded severe-weather alerts, then with
//! one of them updated and another expired, so the output shows `created`, then nothing
//! (unchanged), then `updated` and `removed`. Signals go to stdout, logs to stderr:
//! `cargo run -p connector-noaa --example demo 2>/dev/null | jq .signal.title`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Parser;
use connector_runtime::Cli;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SEVERE: &str = include_str!("../tests/fixtures/alerts-active-severe-trimmed.json");

/// Serves `bodies[min(call, last)]`: the feed changes as the demo goes on.
struct Replay {
    bodies: Vec<String>,
    calls: AtomicUsize,
}

impl Respond for Replay {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let body = &self.bodies[n.min(self.bodies.len() - 1)];
        ResponseTemplate::new(200)
            .insert_header("content-type", "application/geo+json")
            .set_body_string(body.clone())
    }
}

fn later_feed() -> anyhow::Result<String> {
    let mut doc: Value = serde_json::from_str(SEVERE)?;
    if let Some(Value::Array(features)) = doc.get_mut("features") {
        features[1]["properties"]["description"] =
            "The river crest forecast was raised by one foot.".into();
        features.remove(0);
    }
    Ok(doc.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    connector_runtime::init_tracing();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/alerts/active"))
        .respond_with(Replay {
            bodies: vec![SEVERE.to_owned(), SEVERE.to_owned(), later_feed()?],
            calls: AtomicUsize::new(0),
        })
        .mount(&server)
        .await;
    let config = serde_json::json!({ "connectors": [{
        "name": "weather-demo",
        "type": "NOAA_WEATHER",
        "pollIntervalMs": 3000,
        "emitRemovals": true,
        "providerConfig": { "baseUrl": server.uri(), "area": "OH,WV,KY", "severity": "Severe" }
    }]});
    let path = std::env::temp_dir().join(format!("connectors-demo-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
    eprintln!(
        "demo: replaying recorded NWS alerts from {}; a poll every 3 s; Ctrl-C to stop",
        server.uri()
    );
    let cli = Cli::parse_from([
        "connector-noaa".as_ref(),
        "--config".as_ref(),
        path.as_os_str(),
        "run".as_ref(),
        "weather-demo".as_ref(),
    ]);
    let code = connector_runtime::execute(cli, connector_noaa::factories()).await;
    let _ = std::fs::remove_file(&path);
    code
}
