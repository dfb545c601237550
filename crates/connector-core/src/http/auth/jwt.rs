//! The JWT-bearer grant (RFC 7523 §2.1): the client proves who it is with an assertion it
//! signs itself (RS256) and trades it for an access token, as Google service accounts
//! (with domain-wide delegation through `sub`) do. The assertion is made fresh for each
//! token request, from the context clock.

use std::time::SystemTime;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::Serialize;

/// How long an assertion is valid: Google accepts at most an hour.
const LIFETIME_SECS: u64 = 3600;

/// What the assertions say and the key that signs them.
pub struct JwtGrant {
    /// `iss`: the service account's e-mail.
    pub issuer: String,
    /// `scope`: space-separated.
    pub scope: Option<String>,
    /// `sub`: the user to act as (domain-wide delegation).
    pub subject: Option<String>,
    /// `aud`: the token endpoint unless the issuer documents another.
    pub audience: String,
    key: EncodingKey,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

/// The private key is not an RSA key in PEM; says so without quoting it.
pub fn read_key(pem: &str) -> Result<EncodingKey, String> {
    EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| {
        "expected an RSA private key in PEM (-----BEGIN PRIVATE KEY----- ..., as in a Google service account's JSON key file)".to_owned()
    })
}

impl JwtGrant {
    /// A grant whose assertions `issuer` signs with `pem`.
    pub fn new(
        issuer: String,
        pem: &str,
        scope: Option<String>,
        subject: Option<String>,
        audience: String,
    ) -> Result<Self, String> {
        Ok(Self {
            issuer,
            scope,
            subject,
            audience,
            key: read_key(pem)?,
        })
    }

    /// The token request's form at `now`: `grant_type` and a signed `assertion`.
    pub fn form(&self, now: SystemTime) -> Result<Vec<(&'static str, String)>, String> {
        let iat = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = Claims {
            iss: &self.issuer,
            scope: self.scope.as_deref(),
            sub: self.subject.as_deref(),
            aud: &self.audience,
            iat,
            exp: iat + LIFETIME_SECS,
        };
        let assertion = encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|e| format!("cannot sign the assertion: {e}"))?;
        Ok(vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
            ),
            ("assertion", assertion),
        ])
    }
}
