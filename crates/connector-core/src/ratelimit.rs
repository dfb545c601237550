//! Rate limits in one place: what the servers' headers say, and the waits they ask for,
//! kept across polls.
//!
//! A wait the server asks for (`Retry-After`, or a quota at 0 with its reset time) holds
//! for the next polls too: until it is over, no request under the same key is sent, so a
//! connector does not spend its polls hammering an API that already said no. The key is
//! the provider's choice: the credential (GitHub counts per token), or the endpoint
//! (Datadog counts per API). Holds are capped (a broken reset header must not silence a
//! connector for a day), logged once when set, and shown in `/health/connectors`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

use crate::time::parse_retry_after;

/// The longest hold a header can set.
pub const MAX_HOLD: Duration = Duration::from_secs(3600);

/// What one response's headers say about the rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limit {
    /// The server asked to wait this long before the next request.
    pub wait: Option<Duration>,
    /// The response signals a limit (Retry-After, or no quota left).
    pub limited: bool,
    /// Requests left in the current window, when the server says.
    pub remaining: Option<u64>,
    /// When the current window ends (from now), when the server says.
    pub reset: Option<Duration>,
}

/// Reads `Retry-After` (seconds or HTTP date) and the remaining / reset headers in their
/// common spellings (`X-RateLimit-*`, `RateLimit-*`, `X-Rate-Limit-*`), the reset as
/// seconds from now, epoch seconds or milliseconds, or an RFC 3339 time.
pub fn parse(headers: &HeaderMap, now: SystemTime) -> Limit {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let first = |suffix: &str| {
        ["x-ratelimit-", "ratelimit-", "x-rate-limit-"]
            .iter()
            .find_map(|p| get(&format!("{p}{suffix}")))
    };
    let policies = get("ratelimit-policy").map(policies).unwrap_or_default();
    let structured = get("ratelimit").and_then(|v| structured_limit(v, &policies));
    let remaining = first("remaining")
        .and_then(|v| v.parse::<u64>().ok())
        .or(structured.map(|(r, _)| r));
    let reset = first("reset")
        .and_then(|r| reset_in(r, now))
        .or(structured.and_then(|(_, t)| t));
    if let Some(v) = get("retry-after") {
        return Limit {
            wait: parse_retry_after(v, now),
            limited: true,
            remaining,
            reset,
        };
    }
    Limit {
        wait: reset.filter(|_| remaining == Some(0)),
        limited: remaining == Some(0),
        remaining,
        reset,
    }
}

/// The header that says the most about a limit, as `name: value` (for the log line of a
/// hold and `budget list`): limit headers carry no credential.
pub fn source(headers: &HeaderMap) -> String {
    const NAMES: [&str; 7] = [
        "retry-after",
        "x-ratelimit-reset",
        "ratelimit-reset",
        "x-rate-limit-reset",
        "ratelimit",
        "x-ratelimit-remaining",
        "ratelimit-remaining",
    ];
    NAMES
        .iter()
        .find_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            let value: String = value.chars().take(120).collect();
            Some(format!("{name}: {value}"))
        })
        .unwrap_or_else(|| "the response body".to_owned())
}

/// One policy of the IETF `RateLimit-Policy` field (`"default";q=100;w=10`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Policy {
    name: String,
    /// The window, seconds.
    window: Option<u64>,
    /// What the quota counts: `requests` unless `qu` says otherwise (`content-bytes`,
    /// `concurrent-requests`).
    requests: bool,
}

/// The policies a `RateLimit-Policy` field lists.
fn policies(value: &str) -> Vec<Policy> {
    value
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next()?.trim_matches('"').to_owned();
            let mut policy = Policy {
                name,
                window: None,
                requests: true,
            };
            for (k, v) in parts.filter_map(|p| p.split_once('=')) {
                match k.trim() {
                    "w" => policy.window = v.trim().parse().ok(),
                    "qu" => policy.requests = v.trim().trim_matches('"') == "requests",
                    _ => {}
                }
            }
            Some(policy)
        })
        .collect()
}

/// The IETF `RateLimit` field: its structured form (`"default";r=50;t=30`, one item per
/// policy) or the earlier drafts' (`limit=100, remaining=50, reset=30`). A spent policy
/// decides, else the one with the slowest pace (reset over requests left): (remaining,
/// reset from now). With `RateLimit-Policy`:
/// an item without `t` resets within its policy's window `w`, and a policy counting
/// something else than requests (`qu="content-bytes"`) paces nothing, though it holds
/// when spent (`r=0`).
fn structured_limit(value: &str, policies: &[Policy]) -> Option<(u64, Option<Duration>)> {
    let param = |item: &str, names: &[&str]| {
        item.split([';', ','])
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| names.contains(&k.trim()))
            .and_then(|(_, v)| v.trim().trim_matches('"').parse::<u64>().ok())
    };
    let items: Vec<&str> = if value.contains(';') {
        value.split(',').collect()
    } else {
        vec![value]
    };
    items
        .into_iter()
        .filter_map(|item| {
            let name = item
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .trim_matches('"');
            let policy = policies.iter().find(|p| p.name == name);
            let remaining = param(item, &["r", "remaining"])?;
            if policy.is_some_and(|p| !p.requests) && remaining > 0 {
                return None;
            }
            let reset = param(item, &["t", "reset"])
                .or_else(|| policy.and_then(|p| p.window))
                .map(Duration::from_secs);
            Some((remaining, reset))
        })
        .min_by_key(|(r, t)| {
            // A spent policy first; then the slowest pace (the most time per request
            // left), so an hour's quota is not paced to a minute's reset; then the fewest.
            let pace = t.map(|t| t.as_millis() / u128::from((*r).max(1)));
            (*r != 0, std::cmp::Reverse(pace), *r)
        })
}

/// A reset header as a wait from `now`.
fn reset_in(value: &str, now: SystemTime) -> Option<Duration> {
    let now_ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let at_ms = match value.parse::<i64>() {
        // Seconds from now (Datadog, the IETF draft); epoch seconds (GitHub); epoch ms.
        Ok(n) if n < 1_000_000_000 => return Some(Duration::from_secs(n.max(0) as u64)),
        Ok(n) if n < 100_000_000_000 => n * 1000,
        Ok(n) => n,
        Err(_) => crate::time::parse_millis(value)?,
    };
    Some(Duration::from_millis(
        at_ms.saturating_sub(now_ms).max(0) as u64
    ))
}

struct Hold {
    until: SystemTime,
    connector: String,
}

/// The holds of one process's connectors (its [`crate::context::Context`]): after a
/// server said "wait until", nothing is sent under the same key before then.
#[derive(Default)]
pub struct Holds {
    all: Mutex<HashMap<String, Hold>>,
    /// The keys each connector's requests go under: a hold another connector set on a
    /// shared key (one GitHub token) holds this one's too.
    keys: Mutex<HashMap<String, Vec<String>>>,
}

impl Holds {
    /// Holds `key` until `now + wait` (at most [`MAX_HOLD`]); a later end replaces an
    /// earlier one.
    pub fn hold(&self, key: &str, connector: &str, now: SystemTime, wait: Duration) {
        let until = now + wait.min(MAX_HOLD);
        let Ok(mut all) = self.all.lock() else { return };
        let longer = all.get(key).is_none_or(|h| h.until < until);
        if longer {
            tracing::warn!(
                connector,
                wait_s = wait.min(MAX_HOLD).as_secs(),
                "rate limited: no request is sent before the server's reset"
            );
            all.insert(
                key.to_owned(),
                Hold {
                    until,
                    connector: connector.to_owned(),
                },
            );
        }
    }

    /// Notes that `connector` sends requests under `key`.
    pub fn note(&self, key: &str, connector: &str) {
        let Ok(mut keys) = self.keys.lock() else {
            return;
        };
        let of = keys.entry(connector.to_owned()).or_default();
        if !of.iter().any(|k| k == key) {
            of.push(key.to_owned());
        }
    }

    /// The end of the hold on `key`, if one is still running at `now`.
    pub fn held(&self, key: &str, now: SystemTime) -> Option<SystemTime> {
        let all = self.all.lock().ok()?;
        all.get(key).map(|h| h.until).filter(|u| *u > now)
    }

    /// The latest running hold of `connector`'s requests: one it set, or one on a key its
    /// requests go under (for `/health/connectors`, and to defer a webhook's poll).
    pub fn held_for(&self, connector: &str, now: SystemTime) -> Option<SystemTime> {
        let keys: Vec<String> = self
            .keys
            .lock()
            .ok()
            .and_then(|k| k.get(connector).cloned())
            .unwrap_or_default();
        let all = self.all.lock().ok()?;
        all.iter()
            .filter(|(key, h)| h.connector == connector || keys.contains(key))
            .map(|(_, h)| h.until)
            .filter(|until| *until > now)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn every_common_spelling_of_the_limit_headers_is_read() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let wait = |pairs| parse(&headers(pairs), now).wait;
        assert_eq!(parse(&headers(&[]), now), Limit::default());
        let secs = Some(Duration::from_secs(42));
        assert_eq!(
            wait(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1800000042")
            ]),
            secs
        );
        assert_eq!(
            wait(&[("ratelimit-remaining", "0"), ("ratelimit-reset", "42")]),
            secs
        );
        assert_eq!(
            wait(&[
                ("x-rate-limit-remaining", "0"),
                ("x-rate-limit-reset", "1800000042000")
            ]),
            secs
        );
        assert_eq!(
            wait(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "2027-01-15T08:00:42Z")
            ]),
            secs
        );
        // Jira writes its reset to the minute: `yyyy-MM-ddTHH:mmZ`.
        assert_eq!(
            wait(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "2027-01-15T08:01Z")
            ]),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            wait(&[("retry-after", "60"), ("x-ratelimit-remaining", "10")]),
            Some(Duration::from_secs(60))
        );
        let left = parse(&headers(&[("x-ratelimit-remaining", "4999")]), now);
        assert_eq!((left.limited, left.remaining), (false, Some(4999)));
        // The IETF field, structured (Cloudflare) and in the earlier drafts' form.
        let ietf = parse(
            &headers(&[("ratelimit", "\"default\";r=50;t=30, \"burst\";r=7;t=5")]),
            now,
        );
        assert_eq!(
            (ietf.remaining, ietf.reset),
            (Some(7), Some(Duration::from_secs(5)))
        );
        let draft = parse(
            &headers(&[("ratelimit", "limit=100, remaining=0, reset=42")]),
            now,
        );
        assert_eq!((draft.limited, draft.wait), (true, secs));
        let window = parse(
            &headers(&[
                ("x-ratelimit-remaining", "10"),
                ("x-ratelimit-reset", "1800000042"),
            ]),
            now,
        );
        assert_eq!((window.limited, window.reset), (false, secs));
    }

    #[test]
    fn a_rate_limit_policy_gives_windows_and_units() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let secs = Some(Duration::from_secs(42));
        // RateLimit-Policy: an item without `t` resets within its policy's window; a
        // policy counting bytes paces nothing until it is spent.
        let policy = parse(
            &headers(&[
                (
                    "ratelimit-policy",
                    "\"hour\";q=1000;w=3600, \"bytes\";q=100000;qu=\"content-bytes\";w=60",
                ),
                ("ratelimit", "\"hour\";r=900, \"bytes\";r=20"),
            ]),
            now,
        );
        assert_eq!(
            (policy.limited, policy.remaining, policy.reset),
            (false, Some(900), Some(Duration::from_secs(3600)))
        );
        let spent_bytes = parse(
            &headers(&[
                (
                    "ratelimit-policy",
                    "\"hour\";q=1000;w=3600, \"bytes\";q=100000;qu=\"content-bytes\";w=60",
                ),
                ("ratelimit", "\"hour\";r=900;t=1200, \"bytes\";r=0;t=42"),
            ]),
            now,
        );
        assert_eq!((spent_bytes.limited, spent_bytes.wait), (true, secs));
        // Two request policies: the slower pace decides (900 an hour, not 50 a minute).
        let two = parse(
            &headers(&[("ratelimit", "\"minute\";r=50;t=60, \"hour\";r=900;t=3600")]),
            now,
        );
        assert_eq!(
            (two.remaining, two.reset),
            (Some(900), Some(Duration::from_secs(3600)))
        );
    }

    #[test]
    fn a_hold_lasts_until_its_end_capped_and_is_kept_per_key() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let holds = Holds::default();
        holds.hold("test-key-a", "c1", now, Duration::from_secs(30));
        holds.hold("test-key-a", "c1", now, Duration::from_secs(10));
        assert_eq!(
            holds.held("test-key-a", now),
            Some(now + Duration::from_secs(30)),
            "the longer stays"
        );
        assert_eq!(
            holds.held("test-key-a", now + Duration::from_secs(31)),
            None
        );
        assert_eq!(holds.held("test-key-b", now), None);
        holds.hold("test-key-c", "c2", now, Duration::from_secs(86_400));
        assert_eq!(holds.held_for("c2", now), Some(now + MAX_HOLD));
    }
}
