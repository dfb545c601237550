//! The incremental time cursor: reading a record's time leniently and writing the
//! watermark back in the format the API's query wants.
//!
//! APIs disagree on how to write a time: RFC 3339 (GitHub), ISO 8601 with a `+hhmm` offset
//! (Jira's `2024-01-09T14:03:00.000+0100`), epoch seconds or milliseconds (Datadog, as
//! numbers or text), and queries in a local wall clock (Jira's JQL takes `yyyy-MM-dd HH:mm`
//! in the searching user's time zone). Times are held as UNIX milliseconds in between.
//! The time zone database is compiled in (jiff's bundled tzdb): the images carry none.

use jiff::tz::TimeZone;
use jiff::{Timestamp, civil};

/// How a watermark is written into a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// `2024-01-09T13:03:00Z` (UTC, whole seconds unless the time has milliseconds).
    Rfc3339,
    /// Seconds since the UNIX epoch.
    EpochSeconds,
    /// Milliseconds since the UNIX epoch.
    EpochMillis,
    /// A strftime pattern (`%Y-%m-%d %H:%M`) in a time zone (an IANA name such as
    /// `Europe/Berlin`, or `UTC`).
    Pattern {
        /// The pattern.
        pattern: String,
        /// The zone the wall-clock time is read in.
        zone: String,
    },
}

/// A decimal or exponent number (`1512085950.000216`, `1.79E9`), not a date.
fn epoch_number(t: &str) -> Option<f64> {
    let first = t.bytes().next()?;
    let numeric = t
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !numeric || !(first.is_ascii_digit() || first == b'.') {
        return None;
    }
    t.parse::<f64>().ok().filter(|n| *n >= 0.0)
}

/// A time zone by IANA name, from the compiled-in database.
pub fn zone(name: &str) -> Result<TimeZone, String> {
    if name.eq_ignore_ascii_case("utc") || name == "Z" {
        return Ok(TimeZone::UTC);
    }
    // A fixed offset, `+hh:mm` or `-hh:mm`.
    if let [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] = name.as_bytes()
        && [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit())
    {
        let hours = i32::from((h1 - b'0') * 10 + (h2 - b'0'));
        let minutes = i32::from((m1 - b'0') * 10 + (m2 - b'0'));
        let seconds = (hours * 3600 + minutes * 60) * if *sign == b'-' { -1 } else { 1 };
        if let Ok(offset) = jiff::tz::Offset::from_seconds(seconds)
            && hours <= 18
            && minutes < 60
        {
            return Ok(TimeZone::fixed(offset));
        }
    }
    TimeZone::get(name).map_err(|_| {
        format!("unknown time zone \"{name}\"; expected an IANA name such as Europe/Berlin, UTC, or an offset such as +05:30")
    })
}

/// A time as UNIX milliseconds, read leniently from text: RFC 3339, ISO 8601 with `+hhmm`
/// or `+hh:mm`, a date and time without offset (taken as UTC), or epoch seconds or
/// milliseconds, whole, decimal (Slack's `1512085950.000216`) or with an exponent
/// (`1.79E9`), told apart by size: anything past the year 2286 in seconds is milliseconds.
pub fn parse_millis(text: &str) -> Option<i64> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = t.parse().ok()?;
        return Some(if n >= 10_000_000_000 { n } else { n * 1000 });
    }
    if let Some(n) = epoch_number(t) {
        let millis = if n >= 1e10 { n } else { n * 1000.0 };
        return (millis.is_finite() && millis.abs() < 9e15).then(|| millis.round() as i64);
    }
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Some(ts.as_millisecond());
    }
    // `+hhmm` without the colon, as Jira writes it.
    if let Some(fixed) = colon_offset(t)
        && let Ok(ts) = fixed.parse::<Timestamp>()
    {
        return Some(ts.as_millisecond());
    }
    // No offset at all: UTC, the only reading that does not depend on this machine.
    let civil: civil::DateTime = t.replace(' ', "T").parse().ok()?;
    TimeZone::UTC
        .to_timestamp(civil)
        .ok()
        .map(|ts| ts.as_millisecond())
}

/// `...+0100` → `...+01:00`.
fn colon_offset(t: &str) -> Option<String> {
    let cut = t.len().checked_sub(5)?;
    let (head, tail) = (t.get(..cut)?, t.get(cut..)?);
    let sign = tail.as_bytes().first()?;
    (matches!(sign, b'+' | b'-') && tail[1..].bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("{head}{}:{}", &tail[..3], &tail[3..]))
}

/// The time `millis` written as `format` wants it.
pub fn format_millis(millis: i64, format: &TimeFormat) -> Result<String, String> {
    let ts = Timestamp::from_millisecond(millis).map_err(|e| e.to_string())?;
    Ok(match format {
        TimeFormat::Rfc3339 => {
            if millis % 1000 == 0 {
                ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
            } else {
                ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            }
        }
        TimeFormat::EpochSeconds => millis.div_euclid(1000).to_string(),
        TimeFormat::EpochMillis => millis.to_string(),
        TimeFormat::Pattern {
            pattern,
            zone: name,
        } => {
            let tz = zone(name)?;
            jiff::fmt::strtime::format(pattern.as_str(), &ts.to_zoned_datetime(tz))
                .map_err(|e| format!("cannot write the time with \"{pattern}\": {e}"))?
        }
    })
}

/// A span written as a number and a unit: `45s`, `90m`, `12h`, `30d`, `2w`; in
/// milliseconds.
pub fn parse_span_ms(text: &str) -> Option<i64> {
    let t = text.trim();
    let unit_at = t.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = t.split_at(unit_at);
    let n: i64 = n.parse().ok().filter(|n| *n > 0)?;
    let scale: i64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// A start time as configured: a time (read leniently), or a span before `now_ms`
/// (`-30d`).
pub fn parse_start(text: &str, now_ms: i64) -> Option<i64> {
    match text.trim().strip_prefix('-') {
        Some(span) if span.ends_with(|c: char| c.is_ascii_alphabetic()) => {
            parse_span_ms(span).map(|s| now_ms - s)
        }
        _ => parse_millis(text),
    }
}

/// Where the next incremental read starts: the watermark minus the lookback (records
/// updated while the last read ran, or with clocks a little apart, are read again; their
/// versions keep them from being published twice), or the initial time when there is no
/// watermark yet.
pub fn read_from(watermark: Option<i64>, lookback_ms: i64, initial: Option<i64>) -> Option<i64> {
    watermark.map(|w| w - lookback_ms).or(initial)
}

/// Parses `Retry-After`: delta-seconds or an HTTP date, relative to `now`.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<std::time::Duration> {
    let value = value.trim();
    // Delta-seconds too large for a number are a very long wait, not no wait: it holds for
    // the longest hold rather than letting the next request go at once.
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(
            value
                .parse()
                .map_or(std::time::Duration::MAX, std::time::Duration::from_secs),
        );
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(std::time::Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_in_every_common_spelling() {
        let at = 1_704_805_380_000; // 2024-01-09T13:03:00Z
        for text in [
            "2024-01-09T13:03:00Z",
            "2024-01-09T14:03:00+01:00",
            "2024-01-09T14:03:00.000+0100",
            "2024-01-09T13:03:00",
            "2024-01-09 13:03:00",
            "1704805380",
            "1704805380000",
            "1704805380.000",
            "1.70480538E9",
            "1.70480538e12",
        ] {
            assert_eq!(parse_millis(text), Some(at), "{text}");
        }
        assert_eq!(parse_span_ms("120d"), Some(120 * 86_400_000));
        assert_eq!(parse_span_ms("90m"), Some(5_400_000));
        for odd in ["", "d", "5", "5y", "-5d", "0d"] {
            assert_eq!(parse_span_ms(odd), None, "{odd}");
        }
        assert_eq!(
            parse_start("-1d", 100_000_000),
            Some(100_000_000 - 86_400_000)
        );
        assert_eq!(parse_start("2024-01-09T13:03:00Z", 0), Some(at));
        // Slack's ts: seconds with microseconds.
        assert_eq!(parse_millis("1512085950.000216"), Some(1_512_085_950_000));
        for odd in ["", "soon", "-5", "1e999", "12.5.1"] {
            assert_eq!(parse_millis(odd), None, "{odd}");
        }
        assert_eq!(parse_millis("2024-01-09T13:03:00.250Z"), Some(at + 250));
        assert_eq!(parse_millis("yesterday"), None);
        assert_eq!(parse_millis("x€abcd"), None, "no panic inside a character");
        assert_eq!(parse_millis(""), None);
    }

    #[test]
    fn watermarks_are_written_as_the_query_wants_in_its_zone() {
        let at = 1_704_805_380_000;
        assert_eq!(
            format_millis(at, &TimeFormat::Rfc3339).as_deref(),
            Ok("2024-01-09T13:03:00Z")
        );
        assert_eq!(
            format_millis(at + 5, &TimeFormat::Rfc3339).as_deref(),
            Ok("2024-01-09T13:03:00.005Z")
        );
        assert_eq!(
            format_millis(at, &TimeFormat::EpochSeconds).as_deref(),
            Ok("1704805380")
        );
        assert_eq!(
            format_millis(at, &TimeFormat::EpochMillis).as_deref(),
            Ok("1704805380000")
        );
        let jql = |zone: &str| TimeFormat::Pattern {
            pattern: "%Y-%m-%d %H:%M".into(),
            zone: zone.into(),
        };
        assert_eq!(
            format_millis(at, &jql("Europe/Berlin")).as_deref(),
            Ok("2024-01-09 14:03")
        );
        assert_eq!(
            format_millis(at, &jql("America/Los_Angeles")).as_deref(),
            Ok("2024-01-09 05:03")
        );
        assert_eq!(
            format_millis(at, &jql("UTC")).as_deref(),
            Ok("2024-01-09 13:03")
        );
        assert!(format_millis(at, &jql("Mars/Olympus")).is_err());
    }

    #[test]
    fn a_read_starts_a_lookback_before_the_watermark() {
        assert_eq!(read_from(Some(10_000), 3_000, Some(1)), Some(7_000));
        assert_eq!(read_from(None, 3_000, Some(1)), Some(1));
        assert_eq!(read_from(None, 3_000, None), None);
    }
}
