//! `poll NAME --explain`: the first page of each stream read against stored state, writing
//! nothing, and what became of each record: how a config is built for `HTTP_JSON`.

use std::fmt::Write as _;

use super::*;
use crate::ports::StreamState;
use crate::source::{Note, Outcome};

/// Said of a time the watermark cannot move on.
const UNREADABLE: &str = "(unreadable: the watermark cannot move on it)";

/// The report for every stream of `provider`.
pub(super) async fn explain<P: Provider>(
    provider: &P,
    config: &ConnectorConfig,
    backends: &Backends,
) -> Result<Explanation, PollError> {
    let state = backends.state.load(&config.name).await?;
    let mut report = Explanation::default();
    for stream in provider.streams() {
        if stream.partitions.is_some() {
            explain_partitioned(provider, stream, &state, &mut report).await;
        } else {
            explain_stream(provider, stream, state.stream(&stream.name), &mut report).await;
        }
    }
    Ok(report)
}

/// A parent/child stream: the first page of a full read of its parents (each parent's
/// version is what its child request takes), then the first partition's child read.
async fn explain_partitioned<P: Provider>(
    provider: &P,
    stream: &StreamSpec,
    state: &crate::ports::ConnectorState,
    report: &mut Explanation,
) {
    use super::partition::{child_stream, is_shared, parents_stream, recorded_partitions};
    let parents = parents_stream(stream);
    let recorded = recorded_partitions(stream, state);
    let _ = writeln!(
        report.text,
        "stream {}: kind {}, parent/child ({} partition(s) recorded)",
        stream.label(),
        stream.kind,
        recorded.len()
    );
    let _ = writeln!(report.text, "parents (the first page of a full read):");
    let cursor = Cursor::default();
    let mut pages = provider.parents(stream, &cursor);
    // The partition the next poll's child reads start at.
    let mark = state
        .stream(&parents.name)
        .and_then(|s| s.cursor.partitions.clone())
        .unwrap_or_default();
    let mut first = mark
        .next
        .as_ref()
        .and_then(|n| recorded.iter().find(|(k, _)| k >= n))
        .or(recorded.first())
        .cloned();
    match pages.next().await {
        None => {
            let _ = writeln!(report.text, "  no pages");
        }
        Some(Err(e)) => {
            let _ = writeln!(report.text, "  the first page failed: {e}");
            report
                .problems
                .push(format!("the parents' first page cannot be read: {e}"));
        }
        Some(Ok(PageEvent::NotModified)) => {
            let _ = writeln!(report.text, "  304 Not Modified");
        }
        Some(Ok(PageEvent::Page(page))) => {
            if first.is_none()
                && let Some(item) = page.items.first()
            {
                let key = item.key();
                first = Some((key.id.to_string(), key.version.to_string()));
            }
            explain_page(&page, state.stream(&parents.name), &[], report);
        }
    }
    let Some((key, values)) = first else {
        let _ = writeln!(report.text, "no partition to read yet");
        return;
    };
    let shared = is_shared(stream, state, &key).then(|| SharedFrom {
        watermark: mark.complete_ms.map(super::poll::format_watermark),
    });
    let child = child_stream(
        stream,
        Partition {
            key,
            values,
            shared,
        },
    );
    explain_stream(provider, &child, state.stream(&child.name), report).await;
}

/// One stream: its kind and watermark, then its first page.
async fn explain_stream<P: Provider>(
    provider: &P,
    stream: &StreamSpec,
    stored: Option<&StreamState>,
    report: &mut Explanation,
) {
    let out = &mut report.text;
    // A partition past the cap reads from the shared watermark, as the poll does.
    let cursor = match stream.partition.as_ref().and_then(|p| p.shared.as_ref()) {
        Some(from) => Cursor {
            watermark: from.watermark.clone(),
            ..Cursor::default()
        },
        None => stored.map(|s| s.cursor.clone()).unwrap_or_default(),
    };
    let shown = stream.label();
    let how = if stream.snapshot {
        "snapshot (a complete read is the whole set: what it lacks is pruned)"
    } else if stream.incremental {
        "incremental (read from its watermark)"
    } else {
        "listing (new and changed records are published; absent ones are not removed)"
    };
    let _ = writeln!(out, "stream {shown}: kind {}, {how}", stream.kind);
    if let Some(w) = &cursor.watermark {
        let _ = writeln!(out, "  watermark {w}");
    }
    let mut pages = super::provider_pages(provider, stream, &cursor);
    match pages.next().await {
        None => {
            let _ = writeln!(out, "  no pages");
        }
        Some(Err(e)) => {
            let _ = writeln!(out, "  the first page failed: {e}");
            report.problems.push(format!(
                "stream {shown}: the first page cannot be read: {e}"
            ));
        }
        Some(Ok(PageEvent::NotModified)) => {
            let _ = writeln!(
                out,
                "  304 Not Modified: nothing changed since the last read"
            );
        }
        Some(Ok(PageEvent::Page(page))) => {
            // Each record's title as its signal would carry it.
            let titles: Vec<Option<String>> = page
                .items
                .iter()
                .map(|r| {
                    provider
                        .describe(stream, r)
                        .ok()
                        .map(|d| d.title.into_owned())
                })
                .collect();
            explain_page(&page, stored, &titles, report);
        }
    }
}

/// The first page: its request, each record, an unreadable watermark, the next request.
fn explain_page(
    page: &Page<Record>,
    stored: Option<&StreamState>,
    titles: &[Option<String>],
    report: &mut Explanation,
) {
    let out = &mut report.text;
    if let Some(request) = &page.notes.request {
        let _ = writeln!(out, "  request: {request}");
    }
    let _ = writeln!(
        out,
        "  {} records on the first page",
        page.notes.records.len()
    );
    let watermarked =
        page.unreadable.is_some() || page.notes.records.iter().any(|n| n.time.is_some());
    let mut readable = 0usize;
    let mut empty_titles = 0usize;
    for (i, note) in page.notes.records.iter().enumerate() {
        let parsed = note.time.as_deref().and_then(crate::time::parse_millis);
        readable += usize::from(parsed.is_some());
        let what = record_line(page, note, stored, parsed.is_some(), watermarked);
        let title = match note.outcome {
            Outcome::Item(k) => match titles.get(k).and_then(Option::as_deref) {
                Some("") => {
                    empty_titles += 1;
                    ", title empty".to_owned()
                }
                Some(t) => format!(", title {t:?}"),
                None => String::new(),
            },
            _ => String::new(),
        };
        let _ = writeln!(out, "  record {}: {what}{title}", i + 1);
    }
    if empty_titles > 0 {
        report.warnings.push(format!(
            "{empty_titles} record(s) of the first page would be published with an empty title: \
             the title template's pointers find nothing in them"
        ));
    }
    let out = &mut report.text;
    if let Some(u) = page
        .unreadable
        .as_ref()
        .filter(|_| readable == 0 && !page.items.is_empty())
    {
        let problem = format!(
            "no record on the first page has a readable time at {}: the watermark could never move",
            u.pointer
        );
        let _ = writeln!(out, "  {problem}");
        report.problems.push(problem);
    }
    let out = &mut report.text;
    match &page.notes.next {
        Some(next) => {
            let _ = writeln!(out, "  next request: {next}");
        }
        None => {
            let _ = writeln!(out, "  no next page{}", why_no_next(page));
        }
    }
}

/// What became of one record: its id and version, new, changed or unchanged, or why it
/// was left out or failed, with its time.
fn record_line(
    page: &Page<Record>,
    note: &Note,
    stored: Option<&StreamState>,
    readable: bool,
    watermarked: bool,
) -> String {
    let time = match (&note.time, readable) {
        (Some(t), true) => format!(", time {t}"),
        (Some(t), false) => format!(", time {t} {UNREADABLE}"),
        (None, _) if watermarked && matches!(note.outcome, Outcome::Item(_)) => {
            format!(", time absent {UNREADABLE}")
        }
        (None, _) => String::new(),
    };
    match &note.outcome {
        Outcome::Item(k) => match page.items.get(*k) {
            Some(item) => {
                let key = item.key();
                let change = match stored.and_then(|s| s.versions.get(key.id.as_ref())) {
                    None => "new",
                    Some(v) if *v == key.version => "unchanged",
                    Some(_) => "changed",
                };
                format!("id {}, version {}{time}: {change}", key.id, key.version)
            }
            None => "kept".to_owned(),
        },
        Outcome::Dropped(why) => format!("left out ({why}){time}"),
        Outcome::Failed(why) => format!("fails: {why}"),
    }
}

/// Why the first page has no next request, when that is not a documented end.
fn why_no_next<I>(page: &Page<I>) -> String {
    match (page.partial_reason, page.suspect) {
        (Some(r), _) => format!(
            " (paging stopped early: the read is partial, reason {})",
            r.label()
        ),
        (None, Some(s)) => format!(
            " (a page as full as the page size without a next link: {})",
            s.label()
        ),
        (None, None) if page.partial => " (paging stopped early: the read is partial)".to_owned(),
        (None, None) => String::new(),
    }
}
