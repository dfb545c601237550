//! How the process reaches providers: proxies and extra CA certificates read once from
//! the standard variables, and the one connection pool (a reqwest client with this
//! framework's redirect rules) every connector of the process shares.

use std::time::Duration;

use reqwest::redirect;
use url::Url;

use crate::redact::display_url;

/// The PEM certificates of the bundle at `path`, or what is wrong with it.
fn read_ca_bundle(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    // A CA bundle is a few hundred KB; the cap keeps a mistake from filling memory.
    let too_big = std::fs::metadata(path).is_ok_and(|m| !m.is_file() || m.len() > 16 << 20);
    let pem = if too_big {
        Err(std::io::Error::other(
            "not a regular file of at most 16 MiB",
        ))
    } else {
        std::fs::read(path)
    }
    .map_err(|e| format!("cannot read {} ({e})", path.display()))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        _ => Err(format!(
            "{} holds no PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)",
            path.display()
        )),
    }
}

/// How the process reaches providers: proxies and extra CA certificates, read once from the
/// standard variables at start-up (Jira Data Center and GitHub Enterprise often sit behind
/// both a proxy and a private CA).
#[derive(Clone, Default)]
pub struct ClientSettings {
    /// `HTTPS_PROXY` / `https_proxy`: proxy for `https://` URLs.
    pub https_proxy: Option<Url>,
    /// `HTTP_PROXY` / `http_proxy`: proxy for `http://` URLs.
    pub http_proxy: Option<Url>,
    /// `ALL_PROXY` / `all_proxy`: proxy for both, when the specific one is unset.
    pub all_proxy: Option<Url>,
    /// `NO_PROXY` / `no_proxy`: hosts, domains (`.corp`) and CIDR ranges reached directly.
    pub no_proxy: Option<String>,
    /// `SSL_CERT_FILE`: PEM certificates to trust.
    pub ca_certificates: Vec<reqwest::Certificate>,
    /// `SSL_CERT_FILE` as given, for messages.
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for ClientSettings {
    // Proxy URLs may carry credentials: only what display_url keeps is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |u: &Option<Url>| u.as_ref().map(display_url);
        f.debug_struct("ClientSettings")
            .field("https_proxy", &show(&self.https_proxy))
            .field("http_proxy", &show(&self.http_proxy))
            .field("all_proxy", &show(&self.all_proxy))
            .field("no_proxy", &self.no_proxy)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// One problem with a process setting: the variable, and what is wrong and allowed (never
/// the value when it may hold a credential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The variable.
    pub var: String,
    /// What is wrong and what would be right.
    pub message: String,
}

impl std::fmt::Display for SettingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.var, self.message)
    }
}

impl ClientSettings {
    /// Reads the proxy variables (upper-case first, then lower-case) and `SSL_CERT_FILE`.
    pub fn from_env(env: &crate::config::Environment) -> Result<Self, Vec<SettingError>> {
        let mut errors = Vec::new();
        let get = |upper: &str| -> Option<(String, String)> {
            let lower = upper.to_ascii_lowercase();
            [upper, lower.as_str()].into_iter().find_map(|var| {
                env.get(var)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (var.to_owned(), v.trim().to_owned()))
            })
        };
        let proxy = |name: &str, errors: &mut Vec<SettingError>| {
            let (var, value) = get(name)?;
            // `proxy:3128` without a scheme means http://, as curl reads it.
            let text = if value.contains("://") {
                value
            } else {
                format!("http://{value}")
            };
            match Url::parse(&text) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
                _ => {
                    errors.push(SettingError {
                        var,
                        message: "expected a proxy URL such as http://proxy.corp:3128 (http or https; user:password@ allowed); value not shown".into(),
                    });
                    None
                }
            }
        };
        let https_proxy = proxy("HTTPS_PROXY", &mut errors);
        let http_proxy = proxy("HTTP_PROXY", &mut errors);
        let all_proxy = proxy("ALL_PROXY", &mut errors);
        let no_proxy = ["NO_PROXY", "no_proxy"]
            .into_iter()
            .find_map(|v| env.get(v).map(str::to_owned));
        let ca_file = env
            .get("SSL_CERT_FILE")
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from);
        let ca_certificates = match ca_file.as_deref().map(read_ca_bundle) {
            Some(Ok(certs)) => certs,
            Some(Err(message)) => {
                errors.push(SettingError {
                    var: "SSL_CERT_FILE".into(),
                    message,
                });
                Vec::new()
            }
            None => Vec::new(),
        };
        if errors.is_empty() {
            Ok(Self {
                https_proxy,
                http_proxy,
                all_proxy,
                no_proxy,
                ca_certificates,
                ca_file,
            })
        } else {
            Err(errors)
        }
    }

    /// The reqwest client these settings describe, with this framework's fixed rules.
    pub fn build_client(&self) -> Result<reqwest::Client, String> {
        // reqwest is built without a bundled crypto provider; ring is the one this
        // workspace carries. Installing twice is harmless (the first wins).
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Proxies come from these settings only, never read behind their back.
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .gzip(true)
            .connect_timeout(Duration::from_secs(10))
            .redirect(redirect::Policy::custom(|attempt| {
                // Credentials are per request and must not follow a redirect to
                // another origin, so such redirects are not followed at all.
                let same_origin = attempt
                    .previous()
                    .last()
                    .is_some_and(|prev| prev.origin() == attempt.url().origin());
                if attempt.previous().len() >= 5 || !same_origin {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            }));
        let no_proxy = self
            .no_proxy
            .as_deref()
            .and_then(reqwest::NoProxy::from_string);
        let proxies = [
            (&self.https_proxy, reqwest::Proxy::https as fn(Url) -> _),
            (&self.http_proxy, reqwest::Proxy::http),
            (&self.all_proxy, reqwest::Proxy::all),
        ];
        for (url, make) in proxies {
            if let Some(url) = url {
                let proxy = make(url.clone())
                    .map_err(|e| format!("invalid proxy {}: {e}", display_url(url)))?;
                builder = builder.proxy(proxy.no_proxy(no_proxy.clone()));
            }
        }
        // The system's verifier reads SSL_CERT_FILE itself too (instead of the system
        // store, as OpenSSL does); merging the same certificates makes them trusted
        // whichever verifier reqwest picks.
        if !self.ca_certificates.is_empty() {
            builder = builder.tls_certs_merge(self.ca_certificates.iter().cloned());
        }
        builder.build().map_err(|e| e.without_url().to_string())
    }
}
