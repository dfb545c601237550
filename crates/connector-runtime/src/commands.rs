//! The one-shot commands: `validate`, `list`, `poll` (and `--explain`), `state`, `lease`
//! and `metrics`, each printing what it found and returning the exit code.

use super::*;

pub(super) fn validate(
    registry: &ConnectorRegistry,
    factories: &Factories,
    source: &ConfigSource,
    redactor: &connector_core::redact::Redactor,
    print: bool,
) -> Result<ExitCode> {
    if let Some(why) = nothing_configured(registry, source) {
        eprintln!("{why}");
        return Ok(ExitCode::FAILURE);
    }
    let here = registry
        .all()
        .iter()
        .filter(|c| factories.get(&c.connector_type).is_some())
        .count();
    // The verdict first; the resolved config only when asked for (it runs to hundreds of
    // lines).
    eprintln!(
        "{} is valid: {} connector(s), {} enabled, {here} of a type this binary runs ({})",
        source.describe(),
        registry.all().len(),
        registry.enabled().count(),
        factories.types().join(", ")
    );
    let runs_here = registry
        .enabled()
        .filter(|c| factories.get(&c.connector_type).is_some())
        .count();
    if runs_here == 0 {
        eprintln!(
            "note: nothing here would run with this binary (every connector is disabled or of another binary's type)"
        );
    }
    if print {
        // Typed secrets print as ****; a ${VAR} value in a plain field (a URL, a query
        // parameter) is masked here.
        let shown = serde_json::to_string_pretty(&registry.redacted())?;
        println!("{}", redactor.scrub(&shown));
    }
    Ok(ExitCode::SUCCESS)
}

/// Why there is nothing to check or run: no file and no `CONNECTOR_*` variables, or a file
/// without connectors (None when there is at least one connector).
pub(super) fn nothing_configured(
    registry: &ConnectorRegistry,
    source: &ConfigSource,
) -> Option<String> {
    if !registry.all().is_empty() {
        return None;
    }
    Some(match source {
        ConfigSource::EnvOnly => format!(
            "no connectors.json here and no CONNECTOR_* variables: pass --config FILE or set \
             {} (the README's \"Configuration\" shows the file)",
            connector_core::config::CONFIG_PATH_VAR
        ),
        other => format!(
            "{} has no connectors: add one to its \"connectors\" list (the README's \"Configuration\" shows one)",
            other.describe()
        ),
    })
}

pub(super) fn list(registry: &ConnectorRegistry, factories: &Factories) -> Result<ExitCode> {
    let rows: Vec<[String; 5]> = registry
        .all()
        .iter()
        .map(|c| {
            let here = factories.get(&c.connector_type).is_some();
            [
                c.name.clone(),
                c.connector_type.clone(),
                c.enabled.to_string(),
                c.poll_interval_ms.to_string(),
                if here { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    std::io::stdout()
        .lock()
        .write_all(table(&rows).as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// Each column's width: its widest cell, in characters (`list` and `catalog` align their
/// columns with it).
pub(super) fn column_widths<'a, const N: usize>(
    rows: impl IntoIterator<Item = &'a [String; N]>,
) -> [usize; N] {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    widths
}

/// `list`'s table: each column as wide as its widest value, so long names stay aligned.
fn table(rows: &[[String; 5]]) -> String {
    let head = ["NAME", "TYPE", "ENABLED", "INTERVAL_MS", "RUNS HERE"].map(str::to_owned);
    let widths = column_widths(std::iter::once(&head).chain(rows));
    let mut out = String::new();
    for row in std::iter::once(&head).chain(rows) {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub(super) async fn explain_poll(
    registry: &ConnectorRegistry,
    factories: &Factories,
    backends: Backends,
    name: &str,
    redactor: &connector_core::redact::Redactor,
) -> Result<ExitCode> {
    let config = find(registry, name)?.clone();
    runnable(factories, &config)?;
    let mut backends = backends;
    backends.context = backends.context.clone().explaining();
    let mut connector = factories.create(config, backends)?;
    let report = connector.explain().await?;
    // The requests it shows may carry values from ${VAR}: masked like the logs.
    std::io::stdout()
        .lock()
        .write_all(redactor.scrub(&report.text).as_bytes())?;
    for warning in &report.warnings {
        eprintln!("{name}: warning: {}", redactor.scrub(warning));
    }
    if report.problems.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &report.problems {
        eprintln!("{name}: {}", redactor.scrub(problem));
    }
    Ok(ExitCode::FAILURE)
}

pub(super) async fn poll(
    registry: &ConnectorRegistry,
    factories: &Factories,
    backends: Backends,
    name: &str,
    dry_run: bool,
) -> Result<ExitCode> {
    let config = find(registry, name)?.clone();
    runnable(factories, &config)?;
    let mut connector = factories.create(config.clone(), backends.clone())?;
    let hint = |e: &connector_core::pipeline::PollError| {
        if e.is_unreachable() {
            eprintln!("{}", crate::worker::OFFLINE_HINT);
        }
    };
    if dry_run {
        let preview = connector.preview().await.inspect_err(hint)?;
        // The lines a run in embedded mode prints, so a filter written on one reads both.
        let lines = connector_core::embedded::json_lines(&config.output_stream, &preview.entries)?;
        std::io::stdout().lock().write_all(&lines)?;
        let empty = preview
            .entries
            .iter()
            .filter(|e| {
                serde_json::from_str::<serde_json::Value>(&e.signal)
                    .is_ok_and(|s| s["title"].as_str().is_some_and(str::is_empty))
            })
            .count();
        if empty > 0 {
            eprintln!(
                "warning: {empty} signal(s) would be published with an empty title (the title \
                 template's pointers find nothing in them: see `poll {name} --explain`)"
            );
        }
        eprintln!(
            "dry run, nothing committed: {}",
            serde_json::to_string(&preview.summary)?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let instance = instance_id();
    let Some(lease) = backends
        .leases
        .acquire(name, &instance, config.lease_ttl())
        .await?
    else {
        bail!(
            "connector \"{name}\" is leased by another instance (see `lease show {name}`); not polling"
        );
    };
    let result = connector.poll(&lease).await;
    backends.leases.release(&lease).await?;
    let summary = result.inspect_err(hint)?;
    eprintln!("{}", serde_json::to_string(&summary)?);
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn state(
    registry: &ConnectorRegistry,
    backends: Backends,
    action: StateAction,
) -> Result<ExitCode> {
    match action {
        StateAction::Show { name, versions } => {
            find(registry, &name)?;
            show_state(&backends, &name, versions).await?;
        }
        StateAction::Reset {
            name,
            stream,
            since,
        } => {
            find(registry, &name)?;
            let since = since.as_deref().map(rfc3339).transpose()?;
            // The lease first: its holder's next commit is then fenced, so a poll in
            // flight cannot write its in-memory state over the change.
            backends.leases.force_release(&name).await?;
            let done = match (stream, since) {
                (None, None) => {
                    backends.state.reset(&name).await?;
                    "its next poll publishes every current item".to_owned()
                }
                (stream, since) => {
                    reset_stream(&backends, &name, stream.unwrap_or_default(), since).await?
                }
            };
            // The holder kept state in memory; with its lease ended it re-acquires and
            // reads the changed state.
            eprintln!("state of {name} changed and its lease ended: {done}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--since` as the RFC 3339 time a watermark holds.
fn rfc3339(t: &str) -> Result<String> {
    use connector_core::source::time::{TimeFormat, format_millis, parse_millis};
    let ms = parse_millis(t).with_context(|| {
        format!("--since {t:?} is not a time; expected RFC 3339 such as 2026-11-01T00:00:00Z")
    })?;
    format_millis(ms, &TimeFormat::Rfc3339).map_err(anyhow::Error::msg)
}

/// Prints each stream's cursor and version count (every version with `versions`).
async fn show_state(backends: &Backends, name: &str, versions: bool) -> Result<()> {
    let state = backends.state.load(name).await?;
    let streams: Vec<serde_json::Value> = state
        .all_streams()
        .filter(|(n, s)| n.is_empty() || !s.versions.is_empty() || !s.cursor.is_empty())
        .map(|(stream, s)| {
            // When a stopped read was saved to go on from (its link may carry a credential,
            // so only the time is shown).
            let resume = s.cursor.resume.as_ref().map(|r| {
                let at = u64::try_from(r.at_ms).unwrap_or(0);
                serde_json::json!({ "savedAt": connector_core::signal::rfc3339_millis(at) })
            });
            let mut shown = serde_json::json!({
                "stream": connector_core::pipeline::stream_label(stream),
                "watermark": s.cursor.watermark,
                "resumePoint": resume,
                "etag": s.cursor.etag,
                "lastModified": s.cursor.last_modified,
                "versionCount": s.versions.len(),
            });
            if versions {
                let mut list: Vec<_> = s.versions.iter().collect();
                list.sort();
                shown["versions"] = serde_json::json!(list);
            }
            shown
        })
        .collect();
    let shown = serde_json::json!({ "connector": name, "streams": streams });
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(())
}

/// Reads one stream again: from `since` keeping its versions (only what changed is
/// published), or from scratch without them. Says what will happen.
async fn reset_stream(
    backends: &Backends,
    name: &str,
    stream: String,
    since: Option<String>,
) -> Result<String> {
    let state = backends.state.load(name).await?;
    // The main stream is shown as `(main)`: that name finds it too.
    let stream = if stream == connector_core::pipeline::stream_label("") {
        String::new()
    } else {
        stream
    };
    let Some(current) = state.stream(&stream) else {
        let known: Vec<&str> = state
            .all_streams()
            .map(|(n, _)| connector_core::pipeline::stream_label(n))
            .collect();
        bail!("connector \"{name}\" has no stream \"{stream}\"; its streams: {known:?}");
    };
    let delta = connector_core::ports::StateDelta {
        stream: stream.clone(),
        // A re-sync keeps the versions: only what changed is published.
        removals: if since.is_some() {
            Vec::new()
        } else {
            current.versions.keys().cloned().collect()
        },
        upserts: Vec::new(),
        failures: Vec::new(),
        absences: Vec::new(),
        cursor: Some(connector_core::Cursor {
            watermark: since.clone(),
            ..connector_core::Cursor::default()
        }),
    };
    backends.state.apply(name, &delta).await?;
    Ok(match since {
        Some(t) => format!("stream \"{stream}\" is read again from {t}"),
        None => format!("stream \"{stream}\" publishes every current item again"),
    })
}

pub(super) async fn lease(
    registry: &ConnectorRegistry,
    backends: Backends,
    action: LeaseAction,
) -> Result<ExitCode> {
    match action {
        LeaseAction::Show { name } => {
            find(registry, &name)?;
            let holder = backends.leases.holder(&name).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({ "connector": name, "holder": holder })
                )?
            );
        }
        LeaseAction::Release { name } => {
            find(registry, &name)?;
            let removed = backends.leases.force_release(&name).await?;
            eprintln!(
                "{}",
                if removed {
                    format!(
                        "lease of {name} released; its former holder's next commit will be fenced"
                    )
                } else {
                    format!("{name} had no lease")
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn budget(backends: Backends, action: BudgetAction) -> Result<ExitCode> {
    let budgets = backends.context.budgets().store();
    match action {
        BudgetAction::List => {
            let now = crate::now_ms(&backends.context);
            let listed: Vec<serde_json::Value> = budgets
                .list()
                .await?
                .into_iter()
                .map(|(key, b)| {
                    let at = |ms: Option<i64>| {
                        ms.and_then(|ms| u64::try_from(ms).ok())
                            .filter(|ms| *ms > now)
                            .map(connector_core::signal::rfc3339_millis)
                    };
                    serde_json::json!({
                        "budget": key,
                        "remaining": b.remaining,
                        "resetsAt": at(b.reset_ms),
                        "heldUntil": at(b.hold_until_ms),
                        "heldBy": b.source.filter(|_| at(b.hold_until_ms).is_some()),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&listed)?);
        }
        BudgetAction::Clear { key } => {
            // The name as `budget list` prints it, or its start (as metrics show it).
            let matching: Vec<String> = budgets
                .list()
                .await?
                .into_iter()
                .map(|(k, _)| k)
                .filter(|k| k.starts_with(&key))
                .collect();
            let key = match matching.as_slice() {
                [one] => one.clone(),
                [] => key,
                _ => anyhow::bail!(
                    "{} budgets start with {key}: give more of the name (`budget list` prints them)",
                    matching.len()
                ),
            };
            let removed = budgets.clear(&key).await?;
            eprintln!(
                "{}",
                if removed {
                    format!(
                        "budget {key} cleared: the next request under it learns the limit again"
                    )
                } else {
                    format!("no budget {key}")
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) async fn metrics(
    registry: &ConnectorRegistry,
    backends: Backends,
    name: Option<String>,
) -> Result<ExitCode> {
    let names: Vec<String> = match name {
        Some(n) => {
            find(registry, &n)?;
            vec![n]
        }
        None => registry.all().iter().map(|c| c.name.clone()).collect(),
    };
    let mut all = serde_json::Map::new();
    for n in names {
        let m = backends.metrics.get(&n).await?;
        all.insert(
            n,
            m.as_ref()
                .map_or(serde_json::Value::Null, crate::metrics_json),
        );
    }
    println!("{}", serde_json::to_string_pretty(&all)?);
    Ok(ExitCode::SUCCESS)
}

/// `health`: asks the process on `HTTP_PORT` whether it is ready (the container
/// healthcheck: a distroless image has no curl). Exit 0 on 200, 1 on anything else.
pub(super) async fn health(settings: &crate::settings::Settings) -> Result<ExitCode> {
    let Some(addr) = settings.http else {
        eprintln!("HTTP_PORT is off: there is no API to ask");
        return Ok(ExitCode::FAILURE);
    };
    let url = format!("http://{}/health/ready", crate::fleet::reachable(addr));
    let client = connector_core::context::Context::isolated()
        .client()
        .clone();
    let asked = client
        .get(&url)
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await;
    match asked {
        Ok(response) if response.status().is_success() => {
            println!("ready ({url})");
            Ok(ExitCode::SUCCESS)
        }
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            eprintln!("not ready ({url}): HTTP {status} {body}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("no answer from {url}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod list_tests {
    #[test]
    fn columns_stay_aligned_for_long_names() {
        let row = |n: &str, t: &str| [n, t, "true", "60000", "yes"].map(str::to_owned);
        let text = super::table(&[
            row("a-connector-name-longer-than-twenty-four", "HTTP_JSON"),
            row("short", "NOAA_WEATHER"),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        let col = |line: &str, word: &str| line.find(word).expect(word);
        assert_eq!(col(lines[0], "TYPE"), col(lines[1], "HTTP_JSON"));
        assert_eq!(col(lines[1], "HTTP_JSON"), col(lines[2], "NOAA_WEATHER"));
        assert_eq!(col(lines[0], "RUNS HERE"), col(lines[2], "yes"));
    }
}
