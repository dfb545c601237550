//! Webhooks as hints: a connector's `webhook` block says how a delivery is verified, and a
//! verified delivery only asks for a poll now. Nothing here publishes: detection, fencing
//! and exactly-once stay the poll's, so a lost or forged webhook costs latency, never data.
//!
//! Verification runs on the raw body before anything parses it, compares in constant
//! time (`ring`'s HMAC verification), and says why it refused only to the logs and
//! metrics: the sender gets a bare 401.

use std::time::SystemTime;

use base64::Engine;
use reqwest::header::HeaderMap;
use ring::hmac;

pub use crate::config::webhook::{Encoding, MIN_SECRET_LEN, Verify, WebhookConfig};
use crate::config::webhook::{Part, Template};

/// Why a delivery was refused (a metric label and a log field; never told to the sender).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The signature or token header is missing or not in its format.
    Unsigned,
    /// The signature or token does not match.
    Forged,
    /// The delivery's time is outside `maxAgeSeconds`, or unreadable.
    Stale,
    /// The body is over `maxBodyBytes`.
    TooLarge,
}

impl Rejection {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Unsigned => "unsigned",
            Rejection::Forged => "forged",
            Rejection::Stale => "stale",
            Rejection::TooLarge => "too_large",
        }
    }
}

impl WebhookConfig {
    /// Checks one delivery's raw `body` and `headers` at `now`; `Ok` with the delivery id
    /// when it names one.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Option<String>, Rejection> {
        if body.len() as u64 > self.max_body_bytes {
            return Err(Rejection::TooLarge);
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let sent = header(self.signature_header()).ok_or(Rejection::Unsigned)?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.secret.expose().as_bytes());
        match self.verify {
            Verify::Token => {
                // Constant time: the sent token is checked as an HMAC of itself.
                let tag = hmac::sign(&key, self.secret.expose().as_bytes());
                hmac::verify(&key, sent.as_bytes(), tag.as_ref()).map_err(|_| Rejection::Forged)?;
            }
            Verify::Github | Verify::Jira => {
                let hex = sent.strip_prefix("sha256=").ok_or(Rejection::Unsigned)?;
                let signature = decode(hex, Encoding::Hex)?;
                hmac::verify(&key, body, &signature).map_err(|_| Rejection::Forged)?;
            }
            Verify::Hmac => self.verify_hmac(&key, sent, headers, body, now)?,
        }
        let delivery = self.delivery_header().and_then(header);
        Ok(delivery.map(str::to_owned))
    }

    /// `hmac`: the signature (or any of them, in a `key=value` header) over the signed
    /// payload, and the delivery's age when a timestamp is named.
    fn verify_hmac(
        &self,
        key: &hmac::Key,
        sent: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), Rejection> {
        let fields: Vec<(&str, &str)> = match &self.signature_key {
            Some(_) => sent
                .split(',')
                .filter_map(|kv| kv.trim().split_once('='))
                .collect(),
            None => Vec::new(),
        };
        let signatures: Vec<&str> = match &self.signature_key {
            Some(k) => fields.iter().filter(|(n, _)| n == k).map(|p| p.1).collect(),
            None => vec![sent],
        };
        let prefix = self.prefix.as_deref().unwrap_or("");
        let inputs = Inputs {
            headers,
            fields: &fields,
            body,
        };
        if let Some(ts) = &self.timestamp {
            let at = Template::parse(ts)
                .ok()
                .and_then(|t| t.render(&inputs))
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or(Rejection::Stale)?;
            let now = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if now.abs_diff(at) > self.max_age_seconds {
                return Err(Rejection::Stale);
            }
        }
        let payload = Template::parse(&self.signed_payload)
            .ok()
            .and_then(|t| t.render(&inputs))
            .ok_or(Rejection::Unsigned)?;
        let mut any = false;
        for signature in signatures {
            let Some(text) = signature.strip_prefix(prefix) else {
                continue;
            };
            any = true;
            let Ok(bytes) = decode(text.trim(), self.encoding) else {
                continue;
            };
            if hmac::verify(key, &payload, &bytes).is_ok() {
                return Ok(());
            }
        }
        Err(if any {
            Rejection::Forged
        } else {
            Rejection::Unsigned
        })
    }
}

fn decode(text: &str, encoding: Encoding) -> Result<Vec<u8>, Rejection> {
    let bytes = match encoding {
        Encoding::Hex => hex_decode(text),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD.decode(text).ok(),
    };
    bytes.ok_or(Rejection::Forged)
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What a signed-payload template can name.
struct Inputs<'a> {
    headers: &'a HeaderMap,
    fields: &'a [(&'a str, &'a str)],
    body: &'a [u8],
}

impl Template {
    /// The bytes signed; `None` when a header or field it names is missing.
    fn render(&self, inputs: &Inputs<'_>) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(inputs.body.len() + 64);
        for part in &self.parts {
            match part {
                Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                Part::Body => out.extend_from_slice(inputs.body),
                Part::Header(name) => out.extend_from_slice(inputs.headers.get(name)?.as_bytes()),
                Part::Field(key) => {
                    let (_, value) = inputs.fields.iter().find(|(k, _)| k == key)?;
                    out.extend_from_slice(value.as_bytes());
                }
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};
    use std::time::Duration;

    fn config(json: serde_json::Value) -> WebhookConfig {
        serde_json::from_value(json).expect("webhook config")
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    HeaderValue::from_str(v).expect("value"),
                )
            })
            .collect()
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn hex_hmac(secret: &str, payload: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        hmac::sign(&key, payload)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// GitHub's documented example ("Validating webhook deliveries").
    #[test]
    fn github_signs_the_body_as_its_docs_show() {
        let github =
            config(serde_json::json!({"verify": "github", "secret": "It's a Secret to Everybody"}));
        let signed = headers(&[
            (
                "X-Hub-Signature-256",
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            ),
            ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ]);
        assert_eq!(
            github.verify(&signed, b"Hello, World!", at(0)),
            Ok(Some("72d3162e-cc78-11e3-81ab-4c9367dc0958".into()))
        );
        assert_eq!(
            github.verify(&signed, b"Hello, World?", at(0)),
            Err(Rejection::Forged)
        );
        assert_eq!(
            github.verify(&headers(&[]), b"Hello, World!", at(0)),
            Err(Rejection::Unsigned)
        );
        let sha1 = headers(&[("X-Hub-Signature-256", "sha1=00")]);
        assert_eq!(github.verify(&sha1, b"x", at(0)), Err(Rejection::Unsigned));
    }

    #[test]
    fn jira_signs_with_x_hub_signature() {
        let jira = config(serde_json::json!({"verify": "jira", "secret": "jira-webhook-secret"}));
        let body = br#"{"webhookEvent":"jira:issue_updated"}"#;
        let signature = format!("sha256={}", hex_hmac("jira-webhook-secret", body));
        let sent = headers(&[
            ("X-Hub-Signature", &signature),
            ("X-Atlassian-Webhook-Identifier", "17"),
        ]);
        assert_eq!(jira.verify(&sent, body, at(0)), Ok(Some("17".into())));
        let upper = headers(&[(
            "X-Hub-Signature",
            &signature.to_uppercase().replace("SHA256=", "sha256="),
        )]);
        assert_eq!(jira.verify(&upper, body, at(0)), Ok(None));
    }

    /// Slack's documented example ("Verifying requests from Slack").
    #[test]
    fn slack_style_hmac_covers_the_timestamp_and_refuses_old_ones() {
        let slack = config(serde_json::json!({
            "verify": "hmac",
            "secret": "8f742231b10e8888abcd99yyyzzz85a5",
            "header": "X-Slack-Signature",
            "prefix": "v0=",
            "signedPayload": "v0:{header:X-Slack-Request-Timestamp}:{body}",
            "timestamp": "{header:X-Slack-Request-Timestamp}",
        }));
        assert!(slack.problems().is_empty());
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let sent = headers(&[
            ("X-Slack-Request-Timestamp", "1531420618"),
            (
                "X-Slack-Signature",
                "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            ),
        ]);
        assert_eq!(slack.verify(&sent, body, at(1_531_420_618 + 60)), Ok(None));
        assert_eq!(
            slack.verify(&sent, body, at(1_531_420_618 + 301)),
            Err(Rejection::Stale)
        );
    }

    #[test]
    fn stripe_style_key_value_header_takes_any_v1_signature() {
        let stripe = config(serde_json::json!({
            "verify": "hmac",
            "secret": "whsec_test_secret_0123",
            "header": "Stripe-Signature",
            "signatureKey": "v1",
            "signedPayload": "{field:t}.{body}",
            "timestamp": "{field:t}",
        }));
        assert!(stripe.problems().is_empty());
        let body = br#"{"id":"evt_1"}"#;
        let good = hex_hmac("whsec_test_secret_0123", b"1700000000.{\"id\":\"evt_1\"}");
        let header = format!("t=1700000000,v1={},v1={good},v0=ignored", "ab".repeat(32));
        let sent = headers(&[("Stripe-Signature", &header)]);
        assert_eq!(stripe.verify(&sent, body, at(1_700_000_100)), Ok(None));
        let wrong = headers(&[("Stripe-Signature", "t=1700000000,v1=00")]);
        assert_eq!(
            stripe.verify(&wrong, body, at(1_700_000_100)),
            Err(Rejection::Forged)
        );
    }

    #[test]
    fn base64_signatures_and_tokens_and_size() {
        let b64 = config(serde_json::json!({
            "verify": "hmac", "secret": "base64-secret-xyz", "header": "X-Sig", "encoding": "base64",
            "maxBodyBytes": 1024
        }));
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"base64-secret-xyz");
        let sig = base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, b"{}"));
        assert_eq!(
            b64.verify(&headers(&[("X-Sig", &sig)]), b"{}", at(0)),
            Ok(None)
        );
        let big = vec![b' '; 1025];
        assert_eq!(
            b64.verify(&headers(&[("X-Sig", &sig)]), &big, at(0)),
            Err(Rejection::TooLarge)
        );
        let token = config(
            serde_json::json!({"verify": "token", "secret": "dd-shared-token-1", "header": "X-DD-Token"}),
        );
        let ok = headers(&[("X-DD-Token", "dd-shared-token-1")]);
        assert_eq!(token.verify(&ok, b"{}", at(0)), Ok(None));
        let bad = headers(&[("X-DD-Token", "dd-shared-token-2")]);
        assert_eq!(token.verify(&bad, b"{}", at(0)), Err(Rejection::Forged));
        assert_eq!(
            token.verify(&headers(&[]), b"{}", at(0)),
            Err(Rejection::Unsigned)
        );
    }

    #[test]
    fn config_mistakes_name_their_field() {
        let missing = config(serde_json::json!({"verify": "hmac", "secret": "0123456789abcdef"}));
        let paths: Vec<String> = missing
            .problems()
            .iter()
            .map(|p| crate::config::render_field_path(&p.path))
            .collect();
        assert_eq!(paths, ["webhook.header"]);
        let bad = config(serde_json::json!({
            "verify": "hmac", "secret": "0123456789abcdef", "header": "X",
            "signedPayload": "{nope}", "timestamp": "{field:t}"
        }));
        let messages: Vec<String> = bad.problems().iter().map(|p| p.message.clone()).collect();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert!(
            messages[0].contains("unknown placeholder {nope}"),
            "{messages:?}"
        );
        assert!(messages[1].contains("must be signed"), "{messages:?}");
        assert!(messages[2].contains("signatureKey"), "{messages:?}");
        let paths = |c: WebhookConfig| -> Vec<String> {
            c.problems()
                .iter()
                .map(|p| crate::config::render_field_path(&p.path))
                .collect()
        };
        // Too short a secret; an hmac-only field on a github block; a header name that
        // is none.
        let short =
            config(serde_json::json!({"verify": "github", "secret": "short", "prefix": "x"}));
        assert_eq!(paths(short), ["webhook.secret", "webhook.prefix"]);
        let header = config(
            serde_json::json!({"verify": "token", "secret": "0123456789abcdef", "header": "X Token"}),
        );
        assert_eq!(paths(header), ["webhook.header"]);
        // A reference this process could not resolve (another process runs the connector)
        // is not judged, and verifies nothing.
        let elsewhere = config(serde_json::json!({"verify": "token", "secret": "${S}"}));
        assert!(elsewhere.problems().is_empty() && elsewhere.unresolved());
    }

    #[test]
    fn hex_signatures_are_hex_digits_only() {
        assert_eq!(hex_decode("0aff"), Some(vec![0x0a, 0xff]));
        assert_eq!(hex_decode("+a"), None);
        assert_eq!(hex_decode("0g"), None);
        assert_eq!(hex_decode("abc"), None);
    }
}
