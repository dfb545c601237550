//! A connector's `webhook` block: how a delivery is verified, and the checks of its
//! settings. Verifying a delivery is the `webhook` module's.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::fields::error_if;
use super::{FieldError, Secret};

/// A connector's `webhook` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookConfig {
    /// How a delivery proves it comes from the provider: `github` (`X-Hub-Signature-256`),
    /// `jira` (`X-Hub-Signature`, Jira Cloud webhooks registered with a secret), `hmac`
    /// (any HMAC-SHA256 header, see `header`, `prefix`, `encoding`, `signedPayload`) or
    /// `token` (a shared token in a header).
    pub verify: Verify,
    /// The HMAC key, or the token a `token` delivery carries.
    pub secret: Secret,
    /// The header carrying the signature (`hmac`, required) or the token (`token`, default
    /// `X-Webhook-Token`); `github` and `jira` use their own.
    #[serde(default)]
    pub header: Option<String>,
    /// Text before the signature in its header, e.g. `sha256=` or `v0=` (`hmac`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// How the signature is written: `hex` (default) or `base64` (`hmac`).
    #[serde(default)]
    pub encoding: Encoding,
    /// What is signed (`hmac`): `{body}` (default) is the raw body, `{header:NAME}` a
    /// request header, `{field:KEY}` a value of a `key=value,…` signature header (with
    /// `signatureKey`). Slack: `v0:{header:X-Slack-Request-Timestamp}:{body}`; Stripe:
    /// `{field:t}.{body}`.
    #[serde(default = "default_signed_payload")]
    pub signed_payload: String,
    /// The signature header is a `key=value,…` list (Stripe's `t=…,v1=…`) and the
    /// signature is the value of this key (any of them, when it repeats) (`hmac`).
    #[serde(default)]
    pub signature_key: Option<String>,
    /// Where the delivery's UNIX time in seconds is, as a `signedPayload` placeholder
    /// (`{header:X-Slack-Request-Timestamp}`, `{field:t}`); with it a delivery older (or
    /// newer) than `maxAgeSeconds` is refused (`hmac`).
    #[serde(default)]
    pub timestamp: Option<String>,
    /// How far the delivery's time may be from now, in seconds (with `timestamp`).
    #[serde(default = "default_max_age_seconds")]
    #[schemars(range(min = 1, max = 86_400), extend("x-unit" = "seconds"))]
    pub max_age_seconds: u64,
    /// The header naming each delivery, so a replay within 10 minutes is ignored: default
    /// `X-GitHub-Delivery` (`github`), `X-Atlassian-Webhook-Identifier` (`jira`), none for
    /// the others.
    #[serde(default)]
    pub delivery_header: Option<String>,
    /// Fewest milliseconds between two polls a webhook asks for; webhooks in between are
    /// folded into the next one.
    #[serde(default = "default_min_interval_ms")]
    #[schemars(range(min = 100, max = 86_400_000), extend("x-unit" = "milliseconds"))]
    pub min_interval_ms: u64,
    /// APIs lag their own webhooks (search indexes, list endpoints): a woken poll that
    /// publishes nothing is followed by one more this many milliseconds later (0: none).
    #[serde(default = "default_settle_ms")]
    #[schemars(range(max = 3_600_000), extend("x-unit" = "milliseconds"))]
    pub settle_ms: u64,
    /// Largest body accepted, in bytes; a larger one is refused with 413 unread.
    #[serde(default = "default_max_body_bytes")]
    #[schemars(range(min = 1024, max = 67_108_864), extend("x-unit" = "bytes"))]
    pub max_body_bytes: u64,
}

/// How deliveries are verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Verify {
    /// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
    Github,
    /// Jira Cloud: `X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>`.
    Jira,
    /// Any HMAC-SHA256 signature header.
    Hmac,
    /// A shared token in a header, compared in constant time.
    Token,
}

/// How a signature is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Encoding {
    /// Lowercase or uppercase hexadecimal.
    #[default]
    Hex,
    /// Standard base64.
    Base64,
}

/// The shortest webhook secret accepted.
pub const MIN_SECRET_LEN: usize = 16;

fn default_signed_payload() -> String {
    "{body}".into()
}
fn default_max_age_seconds() -> u64 {
    300
}
fn default_min_interval_ms() -> u64 {
    10_000
}
fn default_settle_ms() -> u64 {
    10_000
}
fn default_max_body_bytes() -> u64 {
    1 << 20
}

impl WebhookConfig {
    /// The header the signature or token is in.
    pub fn signature_header(&self) -> &str {
        match (self.verify, &self.header) {
            (Verify::Github, _) => "x-hub-signature-256",
            (Verify::Jira, _) => "x-hub-signature",
            (_, Some(h)) => h,
            (Verify::Token, None) => "x-webhook-token",
            (Verify::Hmac, None) => "",
        }
    }

    /// The header naming each delivery, if any.
    pub fn delivery_header(&self) -> Option<&str> {
        match (self.verify, &self.delivery_header) {
            (_, Some(h)) => Some(h),
            (Verify::Github, None) => Some("x-github-delivery"),
            (Verify::Jira, None) => Some("x-atlassian-webhook-identifier"),
            _ => None,
        }
    }

    /// The most time between two woken polls.
    pub fn min_interval(&self) -> Duration {
        Duration::from_millis(self.min_interval_ms)
    }

    /// The wait before the one follow-up poll of a woken poll that published nothing.
    pub fn settle(&self) -> Option<Duration> {
        (self.settle_ms > 0).then(|| Duration::from_millis(self.settle_ms))
    }

    /// Whether the secret is still an unresolved `${…}` reference (a connector another
    /// process runs): such a block must not verify anything.
    pub fn unresolved(&self) -> bool {
        self.secret.expose().contains("${")
    }

    /// Every mistake, with the field it is in (below `webhook`).
    pub fn problems(&self) -> Vec<FieldError> {
        let mut out = Vec::new();
        if !self.unresolved() && self.secret.expose().len() < MIN_SECRET_LEN {
            out.push(FieldError::new(
                &["webhook", "secret"],
                format!(
                    "must be at least {MIN_SECRET_LEN} characters: it is all that stands between \
                     anyone who can reach the API and a poll (generate one, e.g. `openssl rand -hex 32`)"
                ),
            ));
        }
        if self.verify != Verify::Hmac {
            let set = [
                ("prefix", self.prefix.is_some()),
                (
                    "signedPayload",
                    self.signed_payload != default_signed_payload(),
                ),
                ("signatureKey", self.signature_key.is_some()),
                ("timestamp", self.timestamp.is_some()),
                ("encoding", self.encoding != Encoding::Hex),
            ];
            for (field, _) in set.iter().filter(|(_, on)| *on) {
                out.push(FieldError::new(
                    &["webhook", field],
                    "applies to \"verify\": \"hmac\" only",
                ));
            }
        }
        for (field, name) in [
            ("header", &self.header),
            ("deliveryHeader", &self.delivery_header),
        ] {
            if let Some(name) = name
                && reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
            {
                out.push(FieldError::new(
                    &["webhook", field],
                    "expected an HTTP header name, e.g. X-Signature",
                ));
            }
        }
        out.extend(error_if(
            self.verify == Verify::Hmac && self.header.as_deref().is_none_or(str::is_empty),
            &["webhook", "header"],
            "\"hmac\" needs the name of the header carrying the signature, e.g. X-Signature",
        ));
        let payload = Template::parse(&self.signed_payload).err();
        out.extend(payload.map(|e| FieldError::new(&["webhook", "signedPayload"], e)));
        if let Some(ts) = &self.timestamp {
            match Template::parse(ts) {
                Ok(t) if t.parts.len() == 1 && !matches!(t.parts[0], Part::Text(_)) => {}
                _ => out.push(FieldError::new(
                    &["webhook", "timestamp"],
                    "expected one placeholder, e.g. {header:X-Slack-Request-Timestamp} or {field:t}",
                )),
            }
            // An unsigned time could be replaced to replay an old delivery.
            if !self.signed_payload.contains(ts.as_str()) {
                out.push(FieldError::new(
                    &["webhook", "timestamp"],
                    format!("must be signed: put {ts} in signedPayload too"),
                ));
            }
        }
        let uses_fields = [Some(&self.signed_payload), self.timestamp.as_ref()]
            .into_iter()
            .flatten()
            .any(|t| t.contains("{field:"));
        out.extend(error_if(
            uses_fields && self.signature_key.is_none(),
            &["webhook", "signatureKey"],
            "{field:…} needs a key=value signature header: set signatureKey (Stripe: \"v1\")",
        ));
        out
    }
}

/// A parsed `signedPayload`: text and placeholders.
pub(crate) struct Template {
    pub(crate) parts: Vec<Part>,
}

/// One piece of a signed-payload template.
pub(crate) enum Part {
    Text(String),
    Body,
    Header(String),
    Field(String),
}

impl Template {
    /// Parses `{body}`, `{header:NAME}` and `{field:KEY}` between literal text.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in {text:?}"))?;
            let inner = &rest[open + 1..open + close];
            parts.push(match inner.split_once(':') {
                None if inner == "body" => Part::Body,
                Some(("header", name)) if !name.is_empty() => Part::Header(name.to_owned()),
                Some(("field", name)) if !name.is_empty() => Part::Field(name.to_owned()),
                _ => {
                    return Err(format!(
                        "unknown placeholder {{{inner}}}; expected {{body}}, {{header:NAME}} or {{field:KEY}}"
                    ));
                }
            });
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }
}
