//! The process's runtime settings, read from the environment once, at start-up, into one
//! typed value. A bad value is refused with the variable, the value (unless it may hold a
//! credential) and what is allowed, instead of quietly becoming a default.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use connector_core::Environment;
use connector_core::http::{ClientSettings, SettingError};
use connector_redis::{RedisSettings, SettingsError};
use url::Url;

/// Time in-flight polls get to finish after SIGTERM/SIGINT; fits Kubernetes' default 30 s
/// termination grace period with room to release leases.
const DEFAULT_GRACE: Duration = Duration::from_secs(25);
/// The longest grace period accepted: longer than any sensible poll, short enough that a
/// typo (`250000`) is caught.
const MAX_GRACE_SECONDS: u64 = 3_600;
const DEFAULT_HTTP_PORT: u16 = 9090;

/// How log lines are written to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where OpenTelemetry data goes, when it is exported at all.
#[derive(Clone)]
pub struct Otlp {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`; the exporter itself reads the variable again.
    pub endpoint: Url,
}

impl fmt::Debug for Otlp {
    // A collector URL can carry a token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Otlp({})",
            connector_core::http::display_url(&self.endpoint)
        )
    }
}

/// Every setting the runtime reads from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `HTTP_PORT` (`off` disables the API) and `HTTP_BIND`.
    pub http: Option<SocketAddr>,
    /// `SHUTDOWN_GRACE_SECONDS`.
    pub grace: Duration,
    /// `MAX_CONCURRENT_POLLS`: polls in flight at once in this process.
    pub concurrent_polls: usize,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `RUST_LOG`, checked.
    pub log_filter: String,
    /// `REDIS_URL` and its companions; `None` runs embedded.
    pub redis: Option<RedisSettings>,
    /// `STATE_DIR` (or `--state-dir`).
    pub state_dir: Option<PathBuf>,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otlp: Option<Otlp>,
    /// `OTEL_SERVICE_NAME`.
    pub service_name: Option<String>,
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, `SSL_CERT_FILE`.
    pub client: ClientSettings,
    /// The process's redactor: every credential of the loaded configuration, masked in
    /// every log line (not a setting: carried here because every sink is set up from
    /// these settings).
    pub redactor: connector_core::redact::Redactor,
    /// Under `connectors all`, the connector this child runs: every log line names it
    /// (the children share the supervisor's standard error).
    pub child: Option<String>,
    /// Whether this process says the start-up notes (all but the supervisor's other
    /// children do).
    pub startup_notes: bool,
    /// The meter the poll metrics are also exported through over OTLP, once
    /// [`crate::telemetry::init`] made one (not a setting: carried here, like the redactor,
    /// so the serve loop gets it without a process-wide meter provider).
    pub otlp_meter: Option<opentelemetry::metrics::Meter>,
}

/// Every bad setting at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingErrors(pub Vec<SettingError>);

impl fmt::Display for SettingErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        connector_core::config::write_problems(
            f,
            "the runtime settings (environment variables)",
            &self.0,
        )
    }
}

impl std::error::Error for SettingErrors {}

impl Settings {
    /// Reads and checks every setting; `state_dir` is the command line's `--state-dir`,
    /// which wins over `STATE_DIR`.
    pub fn from_env(env: &Environment, state_dir: Option<PathBuf>) -> Result<Self, SettingErrors> {
        let mut errors = Vec::new();
        let e = &mut errors;
        let http = http_addr(env, e);
        let grace = grace(env, e);
        let concurrent_polls = concurrent_polls(env, e);
        let log_format = log_format(env, e);
        let log_filter = log_filter(env, e);
        let redis = redis(env, e);
        let state_dir = state_dir.or_else(|| {
            env.get("STATE_DIR")
                .filter(|v| !v.trim().is_empty())
                .map(PathBuf::from)
        });
        let otlp = otlp(env, e);
        let service_name = env
            .get("OTEL_SERVICE_NAME")
            .filter(|v| !v.trim().is_empty())
            .map(str::to_owned);
        let client = ClientSettings::from_env(env).unwrap_or_else(|list| {
            e.extend(list);
            ClientSettings::default()
        });
        if !errors.is_empty() {
            return Err(SettingErrors(errors));
        }
        Ok(Self {
            http,
            grace,
            concurrent_polls,
            log_format,
            log_filter,
            redis,
            state_dir,
            otlp,
            service_name,
            client,
            redactor: connector_core::redact::Redactor::new(),
            child: None,
            startup_notes: true,
            otlp_meter: None,
        })
    }
}

/// `HTTP_PORT` (`off`: no API) and `HTTP_BIND`.
fn http_addr(env: &Environment, errors: &mut Vec<SettingError>) -> Option<SocketAddr> {
    let port = match env.get("HTTP_PORT").map(str::trim) {
        None | Some("") => Some(DEFAULT_HTTP_PORT),
        Some(v) if v.eq_ignore_ascii_case("off") => None,
        Some(v) => v.parse::<u16>().map(Some).unwrap_or_else(|_| {
            bad(
                errors,
                "HTTP_PORT",
                Some(v),
                "a port number from 0 to 65535, or \"off\"",
            );
            None
        }),
    };
    let bind = match env.get("HTTP_BIND").map(str::trim) {
        None | Some("") => IpAddr::from([0, 0, 0, 0]),
        Some("localhost") => IpAddr::from([127, 0, 0, 1]),
        Some(v) => v.parse::<IpAddr>().unwrap_or_else(|_| {
            bad(
                errors,
                "HTTP_BIND",
                Some(v),
                "an IP address such as 0.0.0.0, 127.0.0.1 or ::",
            );
            IpAddr::from([0, 0, 0, 0])
        }),
    };
    port.map(|p| SocketAddr::new(bind, p))
}

/// `SHUTDOWN_GRACE_SECONDS`.
fn grace(env: &Environment, errors: &mut Vec<SettingError>) -> Duration {
    match env.get("SHUTDOWN_GRACE_SECONDS").map(str::trim) {
        None | Some("") => DEFAULT_GRACE,
        Some(v) => match v.parse::<u64>() {
            Ok(s) if s <= MAX_GRACE_SECONDS => Duration::from_secs(s),
            _ => {
                bad(
                    errors,
                    "SHUTDOWN_GRACE_SECONDS",
                    Some(v),
                    &format!("a whole number of seconds from 0 to {MAX_GRACE_SECONDS}"),
                );
                DEFAULT_GRACE
            }
        },
    }
}

/// `MAX_CONCURRENT_POLLS`.
fn concurrent_polls(env: &Environment, errors: &mut Vec<SettingError>) -> usize {
    const DEFAULT: usize = connector_core::context::DEFAULT_CONCURRENT_POLLS;
    match env.get("MAX_CONCURRENT_POLLS").map(str::trim) {
        None | Some("") => DEFAULT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=100_000).contains(&n) => n,
            _ => {
                bad(
                    errors,
                    "MAX_CONCURRENT_POLLS",
                    Some(v),
                    "a whole number of polls from 1 to 100000",
                );
                DEFAULT
            }
        },
    }
}

/// `LOG_FORMAT`.
fn log_format(env: &Environment, errors: &mut Vec<SettingError>) -> LogFormat {
    match env.get("LOG_FORMAT").map(str::trim) {
        None | Some("") => LogFormat::Text,
        Some(v) if v.eq_ignore_ascii_case("text") => LogFormat::Text,
        Some(v) if v.eq_ignore_ascii_case("json") => LogFormat::Json,
        Some(v) => {
            bad(errors, "LOG_FORMAT", Some(v), "\"text\" or \"json\"");
            LogFormat::Text
        }
    }
}

/// `RUST_LOG`, checked.
fn log_filter(env: &Environment, errors: &mut Vec<SettingError>) -> String {
    let log_filter = env
        .get("RUST_LOG")
        .filter(|v| !v.trim().is_empty())
        .unwrap_or("info")
        .to_owned();
    if tracing_subscriber::EnvFilter::try_new(&log_filter).is_err()
        || log_filter.split(',').any(|d| !known_directive(d.trim()))
    {
        bad(
            errors,
            "RUST_LOG",
            Some(&log_filter),
            "a level (off, error, warn, info, debug, trace), or comma-separated directives \
             of a level and target=level with a target of this program (connector_core, \
             connector_runtime, connector_redis, connector_<provider>, connectors, fred, \
             reqwest, hyper, rustls, opentelemetry, …), e.g. info,connector_core=debug",
        );
    }
    log_filter
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// The crates whose log lines a directive may name (a target's first path segment):
/// anything else is a typo that `EnvFilter` would accept and then match nothing.
const LOG_TARGETS: [&str; 24] = [
    "connectors",
    "connector_core",
    "connector_runtime",
    "connector_redis",
    "connector_noaa",
    "connector_jira",
    "connector_github",
    "connector_datadog",
    "connector_http",
    "connector_bench",
    "fred",
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "rustls",
    "tokio",
    "tower",
    "axum",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "redis_protocol",
    "tracing",
];

/// Whether one `RUST_LOG` directive is a level, or names a target of this program with
/// an optional level (`EnvFilter` reads a bare word as a target, so `verbose` would
/// silently turn every log off).
fn known_directive(directive: &str) -> bool {
    if directive.is_empty() {
        return true;
    }
    let (target, level) = match directive.rsplit_once('=') {
        Some((t, l)) => (t, Some(l)),
        None if LEVELS.contains(&directive.to_ascii_lowercase().as_str()) => return true,
        None => (directive, None),
    };
    let level_ok = level.is_none_or(|l| LEVELS.contains(&l.trim().to_ascii_lowercase().as_str()));
    // `[span{field}]=level` filters by span wherever it is.
    let name = target.split(['[', ':']).next().unwrap_or("").trim();
    let target_ok = (name.is_empty() && target.starts_with('[')) || LOG_TARGETS.contains(&name);
    level_ok && target_ok
}

/// `REDIS_URL` and its companions, each error blamed on its variable.
fn redis(env: &Environment, errors: &mut Vec<SettingError>) -> Option<RedisSettings> {
    RedisSettings::from_env(env).unwrap_or_else(|e| {
        let var = match &e {
            SettingsError::Url { .. } => connector_redis::settings::URL_VAR,
            SettingsError::Prefix(_) => connector_redis::settings::KEY_PREFIX_VAR,
            SettingsError::Timeout { var, .. } => var,
            SettingsError::WaitReplicas { .. } => connector_redis::settings::WAIT_REPLICAS_VAR,
        };
        // The Redis messages name their variable already.
        let message = e.to_string();
        let message = message
            .strip_prefix(&format!("invalid {var}"))
            .map_or(message.clone(), |rest| format!("invalid value{rest}"));
        errors.push(SettingError {
            var: var.to_owned(),
            message,
        });
        None
    })
}

/// `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn otlp(env: &Environment, errors: &mut Vec<SettingError>) -> Option<Otlp> {
    match env.get("OTEL_EXPORTER_OTLP_ENDPOINT").map(str::trim) {
        None | Some("") => None,
        Some(v) => match Url::parse(v) {
            Ok(endpoint) if matches!(endpoint.scheme(), "http" | "https") => {
                Some(Otlp { endpoint })
            }
            _ => {
                // Collector URLs can carry tokens: the value is not repeated.
                bad(
                    errors,
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    None,
                    "an http:// or https:// URL such as http://otel-collector:4318",
                );
                None
            }
        },
    }
}

fn bad(errors: &mut Vec<SettingError>, var: &str, value: Option<&str>, allowed: &str) {
    let shown = value.map(|v| format!("={v:?}")).unwrap_or_default();
    errors.push(SettingError {
        var: var.to_owned(),
        message: format!("invalid value{shown}: expected {allowed}"),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(pairs: &[(&str, &str)]) -> Vec<String> {
        match Settings::from_env(&Environment::from_pairs(pairs.iter().copied()), None) {
            Ok(s) => panic!("expected errors, got {s:?}"),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn rust_log_refuses_what_would_silently_match_nothing() {
        for ok in [
            "info",
            "WARN",
            "info,connector_core=debug",
            "connector_core::pipeline=trace",
            "fred=error,reqwest=debug",
            "connector_noaa",
            "[poll]=debug",
            "off",
        ] {
            assert!(
                Settings::from_env(&Environment::from_pairs([("RUST_LOG", ok)]), None).is_ok(),
                "{ok}"
            );
        }
        for wrong in [
            "connector_nooa=debug",
            "verbose",
            "info,verbose",
            "bogus=debug",
            "connector_core=loud",
            "fred=",
            "warning",
        ] {
            let e = errors(&[("RUST_LOG", wrong)]);
            assert!(
                e[0].starts_with("RUST_LOG: invalid value"),
                "{wrong}: {e:?}"
            );
            assert!(e[0].contains("target=level"), "{e:?}");
        }
    }

    #[test]
    fn defaults_need_no_variable() {
        let s = Settings::from_env(&Environment::default(), None).expect("defaults");
        assert_eq!(s.http, Some("0.0.0.0:9090".parse().expect("addr")));
        assert_eq!(s.grace, Duration::from_secs(25));
        assert_eq!(s.log_format, LogFormat::Text);
        assert!(s.redis.is_none() && s.otlp.is_none() && s.state_dir.is_none());
    }

    #[test]
    fn values_are_typed_once() {
        let env = Environment::from_pairs([
            ("HTTP_PORT", "off"),
            ("SHUTDOWN_GRACE_SECONDS", "0"),
            ("LOG_FORMAT", "JSON"),
            ("STATE_DIR", "/var/lib/connectors"),
            ("REDIS_URL", "redis://127.0.0.1:6379/2"),
            ("HTTPS_PROXY", "proxy.corp:3128"),
            ("NO_PROXY", "localhost,.corp"),
        ]);
        let s = Settings::from_env(&env, None).expect("valid");
        assert_eq!(s.http, None);
        assert_eq!(s.grace, Duration::ZERO);
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.state_dir, Some(PathBuf::from("/var/lib/connectors")));
        assert!(s.redis.is_some());
        assert_eq!(
            s.client.https_proxy.as_ref().map(Url::as_str),
            Some("http://proxy.corp:3128/")
        );
        assert!(s.client.build_client().is_ok());
        let cli = Settings::from_env(&env, Some("/tmp/x".into())).expect("valid");
        assert_eq!(
            cli.state_dir,
            Some(PathBuf::from("/tmp/x")),
            "--state-dir wins"
        );
    }

    #[test]
    fn concurrent_polls_are_a_positive_count() {
        let s = Settings::from_env(
            &Environment::from_pairs([("MAX_CONCURRENT_POLLS", "64")]),
            None,
        );
        assert_eq!(s.map(|s| s.concurrent_polls), Ok(64));
        let default = Settings::from_env(&Environment::from_pairs::<&str, &str>([]), None);
        assert_eq!(default.map(|s| s.concurrent_polls), Ok(256));
        assert_eq!(
            errors(&[("MAX_CONCURRENT_POLLS", "0")]),
            vec![
                "MAX_CONCURRENT_POLLS: invalid value=\"0\": expected a whole number of polls from 1 to 100000"
            ]
        );
    }

    #[test]
    fn each_bad_value_names_the_variable_and_what_is_allowed() {
        assert_eq!(
            errors(&[("SHUTDOWN_GRACE_SECONDS", "-1")]),
            vec![
                "SHUTDOWN_GRACE_SECONDS: invalid value=\"-1\": expected a whole number of seconds from 0 to 3600"
            ]
        );
        assert_eq!(
            errors(&[
                ("SHUTDOWN_GRACE_SECONDS", "1e309"),
                ("LOG_FORMAT", "weird"),
                ("HTTP_PORT", "99999"),
                ("HTTP_BIND", "my host"),
            ]),
            vec![
                "HTTP_PORT: invalid value=\"99999\": expected a port number from 0 to 65535, or \"off\"",
                "HTTP_BIND: invalid value=\"my host\": expected an IP address such as 0.0.0.0, 127.0.0.1 or ::",
                "SHUTDOWN_GRACE_SECONDS: invalid value=\"1e309\": expected a whole number of seconds from 0 to 3600",
                "LOG_FORMAT: invalid value=\"weird\": expected \"text\" or \"json\"",
            ]
        );
        assert_eq!(
            errors(&[
                ("SHUTDOWN_GRACE_SECONDS", "abc"),
                ("REDIS_COMMAND_TIMEOUT_MS", "0")
            ])
            .len(),
            1,
            "REDIS_* is checked only with REDIS_URL set"
        );
        let redis = errors(&[
            ("REDIS_URL", "redis://127.0.0.1"),
            ("REDIS_COMMAND_TIMEOUT_MS", "soon"),
        ]);
        assert_eq!(
            redis,
            vec![
                "REDIS_COMMAND_TIMEOUT_MS: invalid value=\"soon\": expected a positive number of milliseconds"
            ]
        );
    }

    #[test]
    fn credentials_in_urls_are_never_repeated() {
        let shown = errors(&[
            ("HTTPS_PROXY", "http://user:s3cret@[bad"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://token@collector"),
            ("REDIS_URL", "redis://:s3cret@host:notaport"),
        ])
        .join("\n");
        assert!(
            !shown.contains("s3cret") && !shown.contains("token@"),
            "{shown}"
        );
        assert!(
            shown.contains("HTTPS_PROXY: expected a proxy URL"),
            "{shown}"
        );
        assert!(shown.contains("OTEL_EXPORTER_OTLP_ENDPOINT: invalid value: expected an http"));
        assert!(shown.contains("REDIS_URL: invalid value"), "{shown}");
    }

    #[test]
    fn a_ca_bundle_must_hold_certificates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let shown = errors(&[("SSL_CERT_FILE", empty.to_str().unwrap_or_default())]);
        assert_eq!(
            shown,
            vec![format!(
                "SSL_CERT_FILE: {} holds no PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)",
                empty.display()
            )]
        );
        let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/test-ca.pem");
        let s = Settings::from_env(&Environment::from_pairs([("SSL_CERT_FILE", ca)]), None)
            .expect("a PEM bundle");
        assert_eq!(s.client.ca_certificates.len(), 1);
        assert!(
            s.client.build_client().is_ok(),
            "merged with the system roots"
        );
        let missing = errors(&[("SSL_CERT_FILE", "/nonexistent/ca.pem")]);
        assert_eq!(
            missing,
            vec![
                "SSL_CERT_FILE: cannot read /nonexistent/ca.pem (No such file or directory (os error 2))"
            ]
        );
    }
}
