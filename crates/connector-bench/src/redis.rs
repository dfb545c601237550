//! Talking to Redis on the bench's own account: `INFO` snapshots to count what a poll
//! cost the server, the pipelined-`XADD` ceiling, and removing the bench's keys.
//!
//! Counting: `total_commands_processed` counts every command the server ran, including
//! those a Lua script runs, so its delta over a poll is the server-side command count.
//! The poll path's only top-level commands are `EVALSHA` (a commit chunk, the metrics
//! record) and `HSCAN` (loading state), so their `INFO commandstats` deltas are its round
//! trips. A poll whose deltas show any other top-level traffic, or an `EVALSHA` count other
//! than commits + 1, ran on a Redis that was not quiet and is marked so.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fred::clients::Client;
use fred::interfaces::{ClientLike, KeysInterface, StreamsInterface};
use fred::types::config::Config;
use fred::types::streams::XCap;
use fred::types::{Builder, ClusterHash, CustomCommand, Value};
use serde::{Deserialize, Serialize};

/// Commands Redis runs inside the connector's Lua scripts (commit, metrics, lease).
const NESTED: [&str; 12] = [
    "get", "type", "xadd", "hset", "hdel", "hget", "hincrby", "exists", "incr", "set", "pexpire",
    "pttl",
];

/// A fred client for the bench's own commands (separate from the backend under test).
pub async fn connect(url: &str) -> Result<Client> {
    let config = Config::from_url(url).context("parsing the Redis URL")?;
    let client = Builder::from_config(config)
        .with_performance_config(|p| p.default_command_timeout = Duration::from_secs(60))
        .build()?;
    client.init().await.context("connecting to Redis")?;
    Ok(client)
}

fn custom(name: &'static str) -> CustomCommand {
    CustomCommand::new_static(name, ClusterHash::FirstKey, false)
}

/// The server counters a poll is measured with.
#[derive(Debug, Clone, Default)]
pub struct Info {
    commands: u64,
    net_in: u64,
    net_out: u64,
    cpu_s: f64,
    calls: BTreeMap<String, u64>,
    usec: BTreeMap<String, u64>,
    /// `redis_version`.
    pub version: String,
    /// `used_memory`, bytes.
    pub used_memory: u64,
}

impl Info {
    /// CPU seconds the server has used (user + system).
    pub fn cpu_s(&self) -> f64 {
        self.cpu_s
    }
}

/// Reads `INFO all`.
pub async fn info(client: &Client) -> Result<Info> {
    let text: String = client
        .custom(custom("INFO"), vec!["all"])
        .await
        .context("INFO")?;
    let mut info = Info::default();
    let mut cpu = 0.0;
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        let num = || value.parse::<u64>().unwrap_or(0);
        match key {
            "total_commands_processed" => info.commands = num(),
            "total_net_input_bytes" => info.net_in = num(),
            "total_net_output_bytes" => info.net_out = num(),
            "used_memory" => info.used_memory = num(),
            "redis_version" => info.version = value.to_owned(),
            "used_cpu_sys" | "used_cpu_user" => cpu += value.parse::<f64>().unwrap_or(0.0),
            _ => {
                if let Some(cmd) = key.strip_prefix("cmdstat_") {
                    let field = |name: &str| {
                        value
                            .split(',')
                            .find_map(|kv| kv.strip_prefix(name))
                            .and_then(|c| c.parse::<u64>().ok())
                            .unwrap_or(0)
                    };
                    info.calls.insert(cmd.to_owned(), field("calls="));
                    info.usec.insert(cmd.to_owned(), field("usec="));
                }
            }
        }
    }
    info.cpu_s = cpu;
    Ok(info)
}

/// What one measured stretch cost the server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RedisCost {
    /// Top-level commands of the poll path (`EVALSHA` + `HSCAN`), each one round trip.
    pub round_trips: u64,
    /// Every command the server ran, including those inside Lua scripts.
    pub commands: u64,
    /// `XADD`s (stream writes).
    pub xadds: u64,
    /// `HSET` + `HDEL` (state and metrics hash writes).
    pub hash_writes: u64,
    /// Bytes the server received.
    pub bytes_in: u64,
    /// Bytes the server sent.
    pub bytes_out: u64,
    /// CPU seconds the server used (user + system, all its threads).
    pub cpu_s: f64,
    /// Calls per command.
    pub calls: BTreeMap<String, u64>,
    /// Microseconds the server spent per command (`EVALSHA`'s includes the commands its
    /// script ran).
    pub usec: BTreeMap<String, u64>,
    /// False when commands the poll path never sends showed up: someone else used the
    /// server meanwhile, and the counts include their traffic.
    pub quiet: bool,
}

/// `after - before - overhead`, where `overhead` is the cost of one `INFO` (measured as
/// the delta of two back-to-back snapshots).
pub fn cost(before: &Info, after: &Info, overhead: &Info) -> RedisCost {
    let d = |a: u64, b: u64, o: u64| a.saturating_sub(b).saturating_sub(o);
    let mut calls = BTreeMap::new();
    for (cmd, &n) in &after.calls {
        let b = before.calls.get(cmd).copied().unwrap_or(0);
        let o = overhead.calls.get(cmd).copied().unwrap_or(0);
        let delta = d(n, b, o);
        if delta > 0 {
            calls.insert(cmd.clone(), delta);
        }
    }
    let usec: BTreeMap<String, u64> = calls
        .keys()
        .map(|cmd| {
            let a = after.usec.get(cmd).copied().unwrap_or(0);
            let b = before.usec.get(cmd).copied().unwrap_or(0);
            (cmd.clone(), a.saturating_sub(b))
        })
        .collect();
    let get = |c: &str| calls.get(c).copied().unwrap_or(0);
    let quiet = calls
        .keys()
        .all(|c| c == "evalsha" || c == "hscan" || NESTED.contains(&c.as_str()));
    RedisCost {
        round_trips: get("evalsha") + get("hscan"),
        commands: d(after.commands, before.commands, overhead.commands),
        xadds: get("xadd"),
        hash_writes: get("hset") + get("hdel"),
        bytes_in: d(after.net_in, before.net_in, overhead.net_in),
        bytes_out: d(after.net_out, before.net_out, overhead.net_out),
        cpu_s: (after.cpu_s - before.cpu_s).max(0.0),
        calls,
        usec,
        quiet,
    }
}

/// Two back-to-back snapshots: what one `INFO` adds to the counters.
pub async fn info_overhead(client: &Client) -> Result<(Info, Info)> {
    let a = info(client).await?;
    let b = info(client).await?;
    let overhead = Info {
        commands: b.commands.saturating_sub(a.commands),
        net_in: b.net_in.saturating_sub(a.net_in),
        net_out: b.net_out.saturating_sub(a.net_out),
        calls: b
            .calls
            .iter()
            .map(|(c, &n)| {
                (
                    c.clone(),
                    n.saturating_sub(a.calls.get(c).copied().unwrap_or(0)),
                )
            })
            .collect(),
        ..Info::default()
    };
    Ok((overhead, b))
}

/// Deletes every key under `prefix` (which ends with `:`); returns how many.
pub async fn delete_prefix(client: &Client, prefix: &str) -> Result<u64> {
    if prefix.len() < 4 || !prefix.ends_with(':') {
        bail!("refusing to delete keys under the prefix {prefix:?}");
    }
    let pattern = format!("{prefix}*");
    let mut cursor = "0".to_owned();
    let mut deleted = 0u64;
    loop {
        let (next, keys): (String, Vec<String>) = client
            .custom(
                custom("SCAN"),
                vec![
                    cursor,
                    "MATCH".into(),
                    pattern.clone(),
                    "COUNT".into(),
                    "1000".into(),
                ],
            )
            .await
            .context("SCAN")?;
        if !keys.is_empty() {
            let n: u64 = client.unlink(keys).await.context("UNLINK")?;
            deleted += n;
        }
        if next == "0" {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// `DEL`: frees the keys' memory before it returns (unlike `UNLINK`).
pub async fn del(client: &Client, keys: Vec<String>) -> Result<u64> {
    client.custom(custom("DEL"), keys).await.context("DEL")
}

/// The first `count` entries of a stream, as field/value pairs.
pub async fn sample_entries(
    client: &Client,
    stream: &str,
    count: usize,
) -> Result<Vec<Vec<(String, String)>>> {
    let reply: Value = client
        .custom(
            custom("XRANGE"),
            vec![
                stream.to_owned(),
                "-".into(),
                "+".into(),
                "COUNT".into(),
                count.to_string(),
            ],
        )
        .await
        .context("XRANGE")?;
    let mut out = Vec::new();
    for entry in reply.into_array() {
        let mut parts = entry.into_array().into_iter();
        let _id = parts.next();
        let fields: Vec<String> = parts
            .next()
            .map(Value::into_array)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v.as_string())
            .collect();
        out.push(
            fields
                .chunks_exact(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect(),
        );
    }
    Ok(out)
}

/// The Redis key of the output stream `stream` under the key prefix `prefix`, from the
/// documented layout (the key table of `crates/connector-redis/README.md`, and
/// `REDIS_KEY_PREFIX` in the README: "a `:` is added if missing"; DESIGN.md, "Redis
/// keys": the prefix comes first). `prod` and `prod:` both give `prod:raw-input-signals`,
/// no prefix gives the stream name alone; streams carry no hash tag. The bench reads the
/// stream as a consumer would, by its documented name, not through the backend's
/// internal key builder.
pub fn stream_key(prefix: &str, stream: &str) -> String {
    if prefix.is_empty() || prefix.ends_with(':') {
        format!("{prefix}{stream}")
    } else {
        format!("{prefix}:{stream}")
    }
}

/// Stream length.
pub async fn xlen(client: &Client, stream: &str) -> Result<u64> {
    client.xlen(stream).await.context("XLEN")
}

/// A measured rate.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rate {
    /// Operations done.
    pub count: u64,
    /// Wall time.
    pub seconds: f64,
    /// `count / seconds`.
    pub per_second: f64,
}

/// `XADD`s of `entries` (cycled) into `stream` from one fred client: pipelines of
/// `batch` commands, `in_flight` pipelines outstanding, one connection.
pub async fn xadd_ceiling_fred(
    client: &Client,
    stream: &str,
    entries: &[Vec<(String, String)>],
    count: usize,
    batch: usize,
    in_flight: usize,
) -> Result<Rate> {
    if entries.is_empty() {
        bail!("no sample entries for the ceiling");
    }
    let started = Instant::now();
    let mut pending = tokio::task::JoinSet::new();
    let mut sent = 0usize;
    while sent < count {
        let size = batch.min(count - sent);
        let pipeline = client.pipeline();
        for i in sent..sent + size {
            let fields: Vec<(&str, &str)> = entries[i % entries.len()]
                .iter()
                .map(|(f, v)| (f.as_str(), v.as_str()))
                .collect();
            let () = pipeline
                .xadd(stream, false, XCap::from(None::<()>), "*", fields)
                .await?;
        }
        sent += size;
        pending.spawn(async move { pipeline.all::<Vec<Value>>().await.map(|v| v.len()) });
        while pending.len() >= in_flight {
            if let Some(done) = pending.join_next().await {
                done??;
            }
        }
    }
    while let Some(done) = pending.join_next().await {
        done??;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Rate {
        count: count as u64,
        seconds,
        per_second: count as f64 / seconds,
    })
}

/// `redis-benchmark -P 64` of one `XADD` of `entry`, when the tool is installed and the
/// URL is a plain `redis://` one. `Ok(None)` when it cannot run here.
pub async fn xadd_ceiling_redis_benchmark(
    url: &str,
    stream: &str,
    entry: &[(String, String)],
    count: usize,
) -> Result<Option<Rate>> {
    let parsed = url::Url::parse(url)?;
    if parsed.scheme() != "redis" {
        return Ok(None);
    }
    let mut cmd = tokio::process::Command::new("redis-benchmark");
    cmd.arg("-h")
        .arg(parsed.host_str().unwrap_or("127.0.0.1"))
        .arg("-p")
        .arg(parsed.port().unwrap_or(6379).to_string());
    if let Some(pw) = parsed.password() {
        cmd.arg("-a").arg(pw).arg("--no-auth-warning");
        if !parsed.username().is_empty() {
            cmd.arg("--user").arg(parsed.username());
        }
    }
    if let Ok(db) = parsed.path().trim_start_matches('/').parse::<u32>() {
        cmd.arg("--dbnum").arg(db.to_string());
    }
    cmd.args([
        "-n",
        &count.to_string(),
        "-P",
        "64",
        "--csv",
        "XADD",
        stream,
        "*",
    ]);
    for (f, v) in entry {
        cmd.arg(f).arg(v);
    }
    let started = Instant::now();
    let out = match cmd.output().await {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("running redis-benchmark"),
    };
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "redis-benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // The last line is `"<command>","<rps>",<six latency columns>`; the command holds
    // commas and quotes of its own, so read the numbers from the right.
    let rps = text
        .lines()
        .rev()
        .find(|l| l.starts_with("\"XADD"))
        .and_then(|l| l.rsplit(',').nth(6))
        .and_then(|f| f.trim_matches('"').parse::<f64>().ok())
        .context("no rate in redis-benchmark's output")?;
    Ok(Some(Rate {
        count: count as u64,
        seconds,
        per_second: rps,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_keys_follow_the_documented_layout() {
        assert_eq!(
            stream_key("prod", "raw-input-signals"),
            "prod:raw-input-signals"
        );
        assert_eq!(
            stream_key("prod:", "raw-input-signals"),
            "prod:raw-input-signals"
        );
        assert_eq!(stream_key("", "raw-input-signals"), "raw-input-signals");
    }
}
