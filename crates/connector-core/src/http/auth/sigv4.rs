//! AWS Signature Version 4, through AWS's own signer (`aws-sigv4`): each request is signed
//! as it is about to be sent (method, URL, headers, body, the context clock's time), so a
//! retried or paged request carries a fresh signature.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use secrecy::{ExposeSecret, SecretString};

use crate::http::{HeaderName, HeaderValue};

/// One AWS identity, in one region, for one service.
pub struct SigV4 {
    access_key_id: String,
    secret_access_key: SecretString,
    session_token: Option<SecretString>,
    region: String,
    service: String,
    /// Sends and signs `x-amz-content-sha256` (S3 and a few other services want it).
    sign_body: bool,
}

/// Why a request could not be signed (its headers hold something the signer refuses);
/// never holds a credential.
#[derive(Debug)]
pub struct SignError(pub String);

impl SigV4 {
    /// Credentials of `access_key_id` (with a session token for temporary credentials)
    /// for `service` (`health`, `securityhub`…) in `region`.
    pub fn new(
        access_key_id: String,
        secret_access_key: SecretString,
        session_token: Option<SecretString>,
        region: String,
        service: String,
    ) -> Self {
        Self {
            access_key_id,
            secret_access_key,
            session_token,
            region,
            service,
            sign_body: false,
        }
    }

    /// Also sends and signs the body's SHA-256 (`x-amz-content-sha256`).
    pub fn signing_body(mut self, sign_body: bool) -> Self {
        self.sign_body = sign_body;
        self
    }

    /// What must be masked wherever it could be echoed.
    /// The access key id (not secret): what names its rate budget.
    pub(crate) fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub(crate) fn secrets(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.secret_access_key.expose_secret())
            .chain(self.session_token.iter().map(|t| t.expose_secret()))
    }

    /// The headers that sign a request (`authorization`, `x-amz-date`, and
    /// `x-amz-security-token` with a session token), for `method` on `url` with `headers`
    /// and `body`, at `time`. The host is signed from the URL.
    pub fn headers(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        time: SystemTime,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, SignError> {
        let identity = Credentials::new(
            &self.access_key_id,
            self.secret_access_key.expose_secret(),
            self.session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            None,
            "connectors",
        )
        .into();
        let mut settings = SigningSettings::default();
        if self.sign_body {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| SignError(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| SignError(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| SignError(e.to_string()))?
            .into_parts();
        instructions
            .headers()
            .map(|(name, value)| {
                let name = HeaderName::try_from(name).map_err(|e| SignError(e.to_string()))?;
                let mut value =
                    HeaderValue::try_from(value).map_err(|e| SignError(e.to_string()))?;
                value.set_sensitive(true);
                Ok((name, value))
            })
            .collect()
    }

    /// Signs `request` at `time`, adding the signing headers to it.
    pub(crate) fn sign(
        &self,
        mut request: reqwest::Request,
        time: SystemTime,
    ) -> Result<reqwest::Request, SignError> {
        let owned: Vec<(String, String)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let pairs: Vec<(&str, &str)> = owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let body = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .unwrap_or_default()
            .to_vec();
        let signed = self.headers(
            request.method().as_str(),
            request.url().as_str(),
            &pairs,
            &body,
            time,
        )?;
        for (name, value) in signed {
            request.headers_mut().insert(name, value);
        }
        Ok(request)
    }
}
