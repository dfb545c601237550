//! Bench-local prototypes of cheaper ways to do what the pipeline does, measured next to
//! the real code so the report's "next steps" rest on numbers. None of this is used by a
//! measured poll; each prototype is checked to produce the same result as the real code.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

use anyhow::{Context, Result, bail};
use connector_core::ports::CommitChunk;
use connector_core::signal::Change;
use fred::clients::Client;
use fred::interfaces::ClientLike;
use fred::types::{ClusterHash, CustomCommand, Value};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

#[derive(Deserialize)]
struct Feature {
    properties: AlertProperties,
}

/// The properties an alert's version is computed from, read by the bench itself so the
/// prototypes do not depend on connector-noaa's private types.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertProperties {
    #[serde(default)]
    sent: Option<String>,
    #[serde(default)]
    effective: Option<String>,
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    message_type: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    headline: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    instruction: Option<String>,
}

impl AlertProperties {
    /// The properties of one feature's JSON.
    pub fn of_feature(feature: &str) -> Result<Self> {
        let f: Feature = serde_json::from_str(feature)?;
        Ok(f.properties)
    }
}

/// The fields `connector_noaa::schema::Alert::parse` versions an alert by, in the order
/// and with the names of its `VersionFields` (the key names are part of the hash).
#[derive(Serialize)]
pub struct VersionFields<'a> {
    sent: &'a Option<String>,
    effective: &'a Option<String>,
    expires: &'a Option<String>,
    status: &'a Option<String>,
    message_type: &'a Option<String>,
    severity: &'a Option<String>,
    headline: &'a Option<String>,
    description: &'a Option<String>,
    instruction: &'a Option<String>,
}

impl<'a> VersionFields<'a> {
    /// The fields of `p`.
    pub fn of(p: &'a AlertProperties) -> Self {
        Self {
            sent: &p.sent,
            effective: &p.effective,
            expires: &p.expires,
            status: &p.status,
            message_type: &p.message_type,
            severity: &p.severity,
            headline: &p.headline,
            description: &p.description,
            instruction: &p.instruction,
        }
    }
}

/// The same fields declared in sorted key order, so serialising the struct itself gives
/// the canonical bytes `content_version` builds through a `serde_json::Value`.
#[derive(Serialize)]
struct SortedVersionFields<'a> {
    description: &'a Option<String>,
    effective: &'a Option<String>,
    expires: &'a Option<String>,
    headline: &'a Option<String>,
    instruction: &'a Option<String>,
    message_type: &'a Option<String>,
    sent: &'a Option<String>,
    severity: &'a Option<String>,
    status: &'a Option<String>,
}

/// The version `content_version` gives, without the `Value` tree
/// (`connector_core::detect::sorted_fields_version`, which the NOAA provider now uses).
pub fn version_direct(p: &AlertProperties) -> String {
    let fields = SortedVersionFields {
        description: &p.description,
        effective: &p.effective,
        expires: &p.expires,
        headline: &p.headline,
        instruction: &p.instruction,
        message_type: &p.message_type,
        sent: &p.sent,
        severity: &p.severity,
        status: &p.status,
    };
    connector_core::detect::sorted_fields_version(&fields)
}

/// A seeded one-shot xxh3 for hash maps keyed by ids (std's SipHash costs more per key).
#[derive(Clone, Copy)]
pub struct Xxh3Map(u64);

impl Xxh3Map {
    /// A hasher builder with a per-process seed (ids come from outside: keep it seeded).
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
}

/// The hasher of [`Xxh3Map`].
pub struct OneShot(u64);

impl Hasher for OneShot {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxh3_64_with_seed(bytes, self.0);
    }
    fn write_u8(&mut self, i: u8) {
        self.0 = self.0.rotate_left(5) ^ u64::from(i);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl BuildHasher for Xxh3Map {
    type Hasher = OneShot;
    fn build_hasher(&self) -> OneShot {
        OneShot(self.0)
    }
}

/// `connector_core::detect::plan`'s loop, with [`Xxh3Map`] hashing; returns (changes,
/// unchanged) to compare with the real one.
pub fn plan_xxh3<'a>(
    recorded: &HashMap<String, String, Xxh3Map>,
    items: impl IntoIterator<Item = (&'a str, &'a str)>,
    hasher: Xxh3Map,
) -> (Vec<(usize, Change)>, u64) {
    let mut seen: HashSet<&str, Xxh3Map> = HashSet::with_hasher(hasher);
    let mut changes = Vec::new();
    let mut unchanged = 0;
    for (index, (id, version)) in items.into_iter().enumerate() {
        if !seen.insert(id) {
            continue;
        }
        match recorded.get(id) {
            Some(v) if v == version => unchanged += 1,
            Some(_) => changes.push((index, Change::Updated)),
            None => changes.push((index, Change::Created)),
        }
    }
    (changes, unchanged)
}

fn custom(name: &'static str) -> CustomCommand {
    CustomCommand::new_static(name, ClusterHash::FirstKey, false)
}

/// A fenced, atomic commit without Lua: `WATCH lease` + `GET lease` (one round trip), then
/// `MULTI`, the chunk's `XADD`s, one `HSET` of its versions, `EXEC` (one round trip). A
/// lease that changed or expired after the `WATCH` makes `EXEC` write nothing, so the
/// guarantee is the script's. Returns false when fenced.
pub async fn commit_watch_multi(
    client: &Client,
    lease_key: &str,
    expected: &str,
    state_key: &str,
    stream_key: &str,
    chunk: &CommitChunk,
) -> Result<bool> {
    let check = client.pipeline();
    let () = check.custom(custom("WATCH"), vec![lease_key]).await?;
    let () = check.custom(custom("GET"), vec![lease_key]).await?;
    let replies: Vec<Value> = check.all().await?;
    if replies.get(1).and_then(Value::as_string).as_deref() != Some(expected) {
        let () = client
            .custom(custom("UNWATCH"), Vec::<String>::new())
            .await?;
        return Ok(false);
    }
    let tx = client.pipeline();
    let () = tx.custom(custom("MULTI"), Vec::<String>::new()).await?;
    for entry in &chunk.entries {
        let mut args: Vec<&str> = Vec::with_capacity(14);
        args.push(stream_key);
        args.push("*");
        for (f, v) in entry.fields() {
            args.push(f);
            args.push(v);
        }
        let () = tx.custom(custom("XADD"), args).await?;
    }
    let mut hset: Vec<String> = Vec::with_capacity(1 + 2 * chunk.delta.upserts.len());
    hset.push(state_key.to_owned());
    for (id, version) in &chunk.delta.upserts {
        hset.push(format!("v:{id}"));
        hset.push(version.clone());
    }
    if hset.len() > 1 {
        let () = tx.custom(custom("HSET"), hset).await?;
    }
    let () = tx.custom(custom("EXEC"), Vec::<String>::new()).await?;
    let replies: Vec<Value> = tx.all().await?;
    match replies.last() {
        Some(Value::Array(results)) => {
            let expected = chunk.entries.len() + usize::from(!chunk.delta.upserts.is_empty());
            if results.len() != expected {
                bail!("EXEC ran {} of {expected} commands", results.len());
            }
            Ok(true)
        }
        Some(Value::Null) => Ok(false),
        other => Err(anyhow::anyhow!("unexpected EXEC reply {other:?}")).context("commit"),
    }
}

/// A script with `commit.lua`'s keys and arguments that does nothing: what moving a chunk
/// into Lua costs before any command runs.
pub const NOOP_LUA: &str = "return 1";

/// `commit.lua`'s argument list for a chunk (its header's layout; no removals, no cap).
pub fn commit_script_args(expected: &str, chunk: &CommitChunk) -> Vec<String> {
    let mut args = Vec::with_capacity(12 + 6 * chunk.entries.len() + 2 * chunk.delta.upserts.len());
    args.push(expected.to_owned());
    args.push(String::new());
    args.push("6".to_owned());
    args.push(chunk.entries.len().to_string());
    args.push(chunk.delta.upserts.len().to_string());
    args.push("0".to_owned());
    if let Some(first) = chunk.entries.first() {
        args.extend(first.fields().iter().map(|(f, _)| (*f).to_owned()));
    }
    for entry in &chunk.entries {
        args.extend(entry.fields().iter().map(|(_, v)| (*v).to_owned()));
    }
    for (id, version) in &chunk.delta.upserts {
        args.push(format!("v:{id}"));
        args.push(version.clone());
    }
    args
}

/// Loads `lua` and returns its SHA.
pub async fn load_script(client: &Client, lua: &str) -> Result<String> {
    let sha: String = client
        .custom(custom("SCRIPT"), vec!["LOAD", lua])
        .await
        .context("SCRIPT LOAD")?;
    Ok(sha)
}

/// `EVALSHA sha 3 keys… args…`; returns the script's integer reply.
pub async fn evalsha(
    client: &Client,
    sha: &str,
    keys: [&str; 3],
    args: Vec<String>,
) -> Result<i64> {
    let mut all: Vec<String> = Vec::with_capacity(4 + keys.len() + args.len());
    all.push(sha.to_owned());
    all.push("3".to_owned());
    all.extend(keys.iter().map(|k| (*k).to_owned()));
    all.extend(args);
    let reply: i64 = client
        .custom(custom("EVALSHA"), all)
        .await
        .context("EVALSHA")?;
    Ok(reply)
}

/// Keeps the compiler from proving a timed loop's result unused.
pub fn keep<T>(value: T) -> T {
    std::hint::black_box(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_version_equals_content_version() {
        let p = AlertProperties::of_feature(
            &serde_json::json!({ "properties": {
                "id": "x", "sent": "2026-01-01T00:00:00Z", "status": "Actual",
                "messageType": "Alert", "description": "a \"quoted\"\nline", "headline": null
            }})
            .to_string(),
        )
        .expect("properties");
        assert_eq!(
            version_direct(&p),
            connector_core::detect::content_version(&VersionFields::of(&p))
        );
    }
}
