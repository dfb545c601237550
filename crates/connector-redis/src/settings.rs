//! How to reach Redis: the URL (standalone, TLS, Sentinel or Cluster), the key namespace,
//! timeouts and the reconnect backoff, validated once when read.
//!
//! The URL usually carries a password, so it is never printed: [`RedisSettings`] shows it
//! with its user info (and any `sentinelPassword` query parameter) removed, in `Debug`,
//! in logs and in every error.

use std::fmt;
use std::time::Duration;

use connector_core::Environment;
use fred::types::config::{Config, ServerConfig};
use url::Url;

use crate::keys::{InvalidPrefix, Keys};

/// Variable holding the Redis URL; when unset the runtime uses the embedded backend.
pub const URL_VAR: &str = "REDIS_URL";
/// Variable holding the key namespace.
pub const KEY_PREFIX_VAR: &str = "REDIS_KEY_PREFIX";
/// Variable holding the per-command timeout in milliseconds.
pub const COMMAND_TIMEOUT_VAR: &str = "REDIS_COMMAND_TIMEOUT_MS";
/// Variable holding the connection (and TLS handshake) timeout in milliseconds.
pub const CONNECT_TIMEOUT_VAR: &str = "REDIS_CONNECT_TIMEOUT_MS";
/// Variable holding how many replicas must acknowledge each commit (`WAIT N`).
pub const WAIT_REPLICAS_VAR: &str = "REDIS_WAIT_REPLICAS";

/// The most replicas a commit may wait for.
const MAX_WAIT_REPLICAS: u32 = 16;

/// URL schemes fred understands (TCP or TLS; standalone, Sentinel or Cluster).
const SCHEMES: [&str; 12] = [
    "redis",
    "rediss",
    "redis-sentinel",
    "rediss-sentinel",
    "redis-cluster",
    "rediss-cluster",
    "valkey",
    "valkeys",
    "valkey-sentinel",
    "valkeys-sentinel",
    "valkey-cluster",
    "valkeys-cluster",
];

/// How the server is deployed, as the URL scheme says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One server (`redis://`, `rediss://`): commits are exactly-once relative to state.
    Standalone,
    /// A primary found through Sentinel (`redis-sentinel://`): exactly-once, like standalone.
    Sentinel,
    /// Redis Cluster (`redis-cluster://`): the shared stream lives in another slot than a
    /// connector's state, so commits are at-least-once (see the crate docs).
    Cluster,
}

impl Topology {
    /// Lower-case name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Topology::Standalone => "standalone",
            Topology::Sentinel => "sentinel",
            Topology::Cluster => "cluster",
        }
    }
}

/// Why the Redis settings were refused. Messages never contain a credential.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The URL does not parse, or fred does not accept it.
    #[error(
        "invalid {URL_VAR} {shown}: {reason}; expected redis://[user:password@]host[:port][/db], \
         rediss://… for TLS, redis-sentinel://host:26379/db?sentinelServiceName=name \
         or redis-cluster://host:port?node=host2:port2"
    )]
    Url {
        /// The URL without credentials (or a placeholder when it does not parse at all).
        shown: String,
        /// What is wrong.
        reason: String,
    },
    /// The key prefix would break the hash-tag layout.
    #[error(transparent)]
    Prefix(#[from] InvalidPrefix),
    /// `REDIS_WAIT_REPLICAS` is not a small whole number, or is set for a Cluster.
    #[error("invalid {WAIT_REPLICAS_VAR}={value:?}: {reason}")]
    WaitReplicas {
        /// Its value.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A timeout variable is not a positive number of milliseconds.
    #[error("invalid {var}={value:?}: expected a positive number of milliseconds")]
    Timeout {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
}

/// Everything needed to build the Redis client, already validated.
#[derive(Clone)]
pub struct RedisSettings {
    /// fred's parsed config; it holds the password, so it is never printed.
    pub(crate) config: Config,
    shown: String,
    topology: Topology,
    keys: Keys,
    command_timeout: Duration,
    connect_timeout: Duration,
    reconnect_min: Duration,
    reconnect_max: Duration,
    wait_replicas: u32,
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.shown)
            .field("topology", &self.topology)
            .field("key_prefix", &self.keys.prefix())
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect", &(self.reconnect_min, self.reconnect_max))
            .field("wait_replicas", &self.wait_replicas)
            .finish()
    }
}

impl RedisSettings {
    /// Reads `REDIS_URL`, `REDIS_KEY_PREFIX`, `REDIS_COMMAND_TIMEOUT_MS` and
    /// `REDIS_CONNECT_TIMEOUT_MS`. `Ok(None)` when `REDIS_URL` is unset or empty: the
    /// runtime then runs on the embedded backend.
    pub fn from_env(env: &Environment) -> Result<Option<Self>, SettingsError> {
        let Some(url) = env.get(URL_VAR).filter(|u| !u.trim().is_empty()) else {
            return Ok(None);
        };
        let mut settings = Self::from_url(url.trim())?;
        if let Some(prefix) = env.get(KEY_PREFIX_VAR) {
            settings = settings.with_key_prefix(prefix)?;
        }
        if let Some(ms) = env.get(COMMAND_TIMEOUT_VAR) {
            settings.command_timeout = millis(COMMAND_TIMEOUT_VAR, ms)?;
        }
        if let Some(ms) = env.get(CONNECT_TIMEOUT_VAR) {
            settings.connect_timeout = millis(CONNECT_TIMEOUT_VAR, ms)?;
        }
        if let Some(n) = env.get(WAIT_REPLICAS_VAR).filter(|n| !n.trim().is_empty()) {
            let fail = |reason| SettingsError::WaitReplicas {
                value: n.to_owned(),
                reason,
            };
            let n: u32 = n
                .trim()
                .parse()
                .ok()
                .filter(|n| *n <= MAX_WAIT_REPLICAS)
                .ok_or_else(|| fail("expected a number of replicas from 0 to 16"))?;
            if n > 0 && settings.topology == Topology::Cluster {
                return Err(fail(
                    "not offered on Redis Cluster, whose commits are at-least-once already",
                ));
            }
            settings.wait_replicas = n;
        }
        Ok(Some(settings))
    }

    /// Parses a Redis URL: `redis://` (optionally `user:password@`, `:port`, `/db`),
    /// `rediss://` for TLS (system root certificates), `redis-sentinel://` with
    /// `sentinelServiceName` and extra `node=host:port` sentinels, `redis-cluster://` with
    /// extra `node=host:port` seeds. No key prefix, default timeouts.
    pub fn from_url(url: &str) -> Result<Self, SettingsError> {
        let parsed = Url::parse(url).map_err(|e| SettingsError::Url {
            // The text may hold a password: show nothing of it.
            shown: "(unparseable URL)".into(),
            reason: e.to_string(),
        })?;
        let shown = display_url(&parsed);
        let fail = |reason: String| SettingsError::Url {
            shown: shown.clone(),
            reason,
        };
        let scheme = parsed.scheme();
        let known = SCHEMES.contains(&scheme);
        if !known {
            return Err(fail(format!("unsupported scheme \"{scheme}\"")));
        }
        if scheme.starts_with("rediss") || scheme.starts_with("valkeys") {
            // fred builds its rustls config from the process-wide provider; ring is the one
            // this workspace ships. Installing twice is harmless (the second call fails).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let config = Config::from_url(url).map_err(|e| fail(e.details().to_owned()))?;
        let topology = match config.server {
            ServerConfig::Clustered { .. } => Topology::Cluster,
            ServerConfig::Sentinel { .. } => Topology::Sentinel,
            _ => Topology::Standalone,
        };
        Ok(Self {
            config,
            shown,
            topology,
            keys: Keys::default(),
            command_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            wait_replicas: 0,
        })
    }

    /// Puts every key under `prefix` (a `:` is appended when missing).
    pub fn with_key_prefix(mut self, prefix: &str) -> Result<Self, SettingsError> {
        self.keys = Keys::new(prefix)?;
        Ok(self)
    }

    /// How long one command may take before it fails with a backend error (default 5 s).
    /// This is also how long an operation waits during an outage before giving up.
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long opening a connection (TCP and TLS) may take (default 10 s).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The reconnect backoff: the first delay, doubling up to `max` (default 100 ms to 5 s),
    /// retried forever; operations fail with a timeout meanwhile.
    pub fn with_reconnect_delays(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min.max(Duration::from_millis(1));
        self.reconnect_max = max.max(self.reconnect_min);
        self
    }

    /// The URL as it may be shown: no user name, no password.
    pub fn display_url(&self) -> &str {
        &self.shown
    }

    /// Standalone, Sentinel or Cluster.
    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// The key layout under the configured prefix.
    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Per-command timeout.
    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// Makes every commit wait (`WAIT n`) for `n` replicas to acknowledge it (0: none).
    pub fn with_wait_replicas(mut self, n: u32) -> Self {
        self.wait_replicas = n.min(MAX_WAIT_REPLICAS);
        self
    }

    /// How many replicas each commit waits for (0: none).
    pub fn wait_replicas(&self) -> u32 {
        self.wait_replicas
    }

    /// Connection timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Reconnect backoff bounds.
    pub fn reconnect_delays(&self) -> (Duration, Duration) {
        (self.reconnect_min, self.reconnect_max)
    }
}

fn millis(var: &'static str, value: &str) -> Result<Duration, SettingsError> {
    match value.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(SettingsError::Timeout {
            var,
            value: value.to_owned(),
        }),
    }
}

/// A Redis URL fit for logs: user info removed, and any query parameter whose name
/// mentions a password (fred's `sentinelPassword`) dropped.
pub fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !k.to_ascii_lowercase().contains("password"))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    shown.set_query(None);
    if !kept.is_empty() {
        shown.query_pairs_mut().extend_pairs(kept);
    }
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        let s =
            RedisSettings::from_url("redis://alice:s3cret@cache.internal:6380/2").expect("valid");
        assert_eq!(s.display_url(), "redis://cache.internal:6380/2");
        assert_eq!(s.topology(), Topology::Standalone);
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("alice"),
            "{debug}"
        );
        assert_eq!(s.config.username.as_deref(), Some("alice"));
        assert_eq!(s.config.password.as_deref(), Some("s3cret"));
        assert_eq!(s.config.database, Some(2));
    }

    #[test]
    fn errors_do_not_echo_the_password() {
        let err = RedisSettings::from_url("redis://u:hunter2@host:notaport")
            .expect_err("bad port")
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        let err = RedisSettings::from_url("http://u:hunter2@host:6379")
            .expect_err("bad scheme")
            .to_string();
        assert!(
            !err.contains("hunter2") && err.contains("unsupported scheme"),
            "{err}"
        );
        let err = RedisSettings::from_url("redis://u:hunter2@host:6379/db")
            .expect_err("bad db")
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn sentinel_and_cluster_schemes_are_recognised() {
        let s = RedisSettings::from_url(
            "redis-sentinel://u:pw@s1:26379/1?sentinelServiceName=main&node=s2:26379&sentinelPassword=pw2",
        )
        .expect("sentinel");
        assert_eq!(s.topology(), Topology::Sentinel);
        assert!(!s.display_url().contains("pw"), "{}", s.display_url());
        let c = RedisSettings::from_url("redis-cluster://c1:7000?node=c2:7001").expect("cluster");
        assert_eq!(c.topology(), Topology::Cluster);
    }

    #[test]
    fn tls_urls_are_accepted() {
        let s = RedisSettings::from_url("rediss://default:pw@secure.example:6380").expect("tls");
        assert_eq!(s.display_url(), "rediss://secure.example:6380");
    }

    #[test]
    fn settings_come_from_an_explicit_environment() {
        let env = Environment::from_pairs([
            ("REDIS_URL", "redis://localhost:6379"),
            ("REDIS_KEY_PREFIX", "staging"),
            ("REDIS_COMMAND_TIMEOUT_MS", "750"),
        ]);
        let s = RedisSettings::from_env(&env).expect("valid").expect("set");
        assert_eq!(s.keys().lease("x"), "staging:lease:{x}");
        assert_eq!(s.command_timeout(), Duration::from_millis(750));
        assert!(
            RedisSettings::from_env(&Environment::default())
                .expect("ok")
                .is_none()
        );
        let bad = Environment::from_pairs([
            ("REDIS_URL", "redis://localhost"),
            ("REDIS_COMMAND_TIMEOUT_MS", "soon"),
        ]);
        assert!(matches!(
            RedisSettings::from_env(&bad),
            Err(SettingsError::Timeout { .. })
        ));
    }
}
