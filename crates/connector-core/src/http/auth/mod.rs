//! How a connector proves who it is, for every provider: the credentials a client sends
//! ([`Auth`]) and their description in config ([`AuthSpec`], what `HTTP_JSON`'s `auth`
//! deserializes into and any provider may embed).
//!
//! Credentials are secrets: they are never formatted, logged or sent to another origin,
//! and every form of them the client sends (a Basic pair's base64, an access token it
//! fetched) is registered with the client's redactor, so an API echoing one is masked.
//! A token-based kind (OAuth2 client credentials) fetches its token on the first request,
//! keeps it until shortly before it expires, and drops it when the API answers 401, so the
//! next request fetches a new one. The JWT-bearer grant (RFC 7523) signs the assertion it
//! trades for a token with the configured key ([`jwt`]); AWS Signature V4 signs each
//! request as it is sent ([`sigv4`]).

pub mod jwt;
pub mod sigv4;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::config::{FieldError, Secret};
use crate::context::ConnectorContext;
use crate::http::{HeaderName, HeaderValue, HttpClient, HttpError};
use crate::redact::Redactor;
pub use jwt::JwtGrant;
pub use sigv4::SigV4;

/// Credentials for one API, as a client sends them.
#[derive(Clone)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(SecretString),
    /// `Authorization: Basic base64(user:password)` (Jira Cloud: e-mail and API token).
    Basic {
        /// User name or e-mail; not secret.
        username: String,
        /// Password or API token.
        password: SecretString,
    },
    /// Custom headers, e.g. Datadog's `DD-API-KEY` and `DD-APPLICATION-KEY`.
    Headers(Vec<(HeaderName, SecretString)>),
    /// A query parameter (`?api_key=...`), added to every request on the API's origin,
    /// followed links included, unless the link already carries it.
    Query {
        /// The parameter's name; not secret.
        name: String,
        /// Its value.
        value: SecretString,
    },
    /// `Authorization: Bearer` with a token a token endpoint issues (OAuth2).
    Token(Arc<TokenSource>),
    /// AWS Signature V4, computed for each request as it is sent.
    AwsSigV4(Arc<SigV4>),
}

impl Auth {
    /// `Authorization: Bearer` with a token from the config.
    pub fn bearer(token: &Secret) -> Self {
        Auth::Bearer(SecretString::from(token.expose().to_owned()))
    }

    /// Credentials in headers of their own (Datadog's `DD-API-KEY`), from the config.
    pub fn headers(headers: &[(&str, &Secret)]) -> Self {
        Auth::Headers(
            headers
                .iter()
                .filter_map(|(name, value)| {
                    let name = HeaderName::try_from(name.to_ascii_lowercase()).ok()?;
                    Some((name, SecretString::from(value.expose().to_owned())))
                })
                .collect(),
        )
    }

    /// `Authorization: Basic` with a user name and a password or token from the config.
    pub fn basic(username: impl Into<String>, password: &Secret) -> Self {
        Auth::Basic {
            username: username.into(),
            password: SecretString::from(password.expose().to_owned()),
        }
    }

    /// Adds the credentials to a request (reqwest marks them sensitive, so they are not
    /// printed by its Debug output either); `token` is what a token source issued.
    pub(crate) fn apply(
        &self,
        req: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        match self {
            // Goes into the URL, or signs the whole request: see `HttpClient::build`.
            Auth::Query { .. } | Auth::AwsSigV4(_) => req,
            Auth::Bearer(token) => req.bearer_auth(token.expose_secret()),
            Auth::Token(_) => match token {
                Some(token) => req.bearer_auth(token),
                None => req,
            },
            Auth::Basic { username, password } => {
                req.basic_auth(username, Some(password.expose_secret()))
            }
            Auth::Headers(list) => list.iter().fold(req, |req, (name, value)| {
                match HeaderValue::try_from(value.expose_secret()) {
                    Ok(mut v) => {
                        v.set_sensitive(true);
                        req.header(name.clone(), v)
                    }
                    // Left out; the server answers 401/403, which names the problem
                    // without echoing the value.
                    Err(_) => req,
                }
            }),
        }
    }

    /// What identifies the credential, for naming its rate budget (an HMAC of it under
    /// the deployment's key: never stored or shown as it is).
    pub(crate) fn identity(&self) -> Vec<u8> {
        let text = match self {
            Auth::Bearer(token) => format!("bearer\n{}", token.expose_secret()),
            Auth::Basic { username, password } => {
                format!("basic\n{username}\n{}", password.expose_secret())
            }
            Auth::Headers(headers) => headers
                .iter()
                .map(|(k, v)| format!("{k}={}", v.expose_secret()))
                .collect::<Vec<_>>()
                .join("\n"),
            Auth::Query { name, value } => format!("query\n{name}={}", value.expose_secret()),
            Auth::Token(source) => format!("token\n{}\n{}", source.token_url, source.identity()),
            Auth::AwsSigV4(signer) => format!("sigv4\n{}", signer.access_key_id()),
        };
        text.into_bytes()
    }

    /// Registers what the credentials send, derived forms included (a Basic pair's
    /// base64); a token source registers each token as it is issued.
    pub(crate) fn register(&self, redactor: &Redactor) {
        match self {
            Auth::Bearer(token) => redactor.add(token.expose_secret()),
            Auth::Basic { username, password } => {
                redactor.add(password.expose_secret());
                redactor.add(&crate::redact::basic_pair(
                    username,
                    password.expose_secret(),
                ));
            }
            Auth::Headers(headers) => {
                redactor.add_all(headers.iter().map(|(_, v)| v.expose_secret()));
            }
            Auth::Query { value, .. } => redactor.add(value.expose_secret()),
            Auth::Token(source) => {
                if let Grant::Form(form) = &source.grant {
                    redactor.add_all(
                        form.iter()
                            .filter(|(k, _)| *k == "client_secret")
                            .map(|(_, v)| v.as_str()),
                    );
                }
                source.mask_in(redactor);
            }
            Auth::AwsSigV4(signer) => {
                redactor.add_all(signer.secrets());
            }
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::Bearer(_) => "Auth::Bearer(****)",
            Auth::Basic { .. } => "Auth::Basic(****)",
            Auth::Headers(_) => "Auth::Headers(****)",
            Auth::Query { .. } => "Auth::Query(****)",
            Auth::Token(_) => "Auth::Token(****)",
            Auth::AwsSigV4(_) => "Auth::AwsSigV4(****)",
        })
    }
}

/// What a token request sends.
enum Grant {
    /// A fixed form (client credentials).
    Form(Vec<(&'static str, String)>),
    /// A freshly signed assertion each time (JWT bearer).
    Jwt(JwtGrant),
}

/// Access tokens from an OAuth2 token endpoint (RFC 6749 §4.4, client credentials), each
/// kept until a minute before it expires.
pub struct TokenSource {
    client: HttpClient,
    token_url: Url,
    grant: Grant,
    cached: Mutex<Option<(String, SystemTime)>>,
    /// The last token issued, which the redactors mask until the next replaces it.
    issued: Mutex<Option<String>>,
    /// Every redactor a token joins besides the token endpoint client's: the API client's
    /// and the process's (the log writer's), each added when a client takes this source.
    maskers: Mutex<Vec<Redactor>>,
}

impl TokenSource {
    /// Who asks for the tokens: the client id, or the JWT issuer and subject.
    fn identity(&self) -> String {
        match &self.grant {
            Grant::Form(form) => form
                .iter()
                .filter(|(k, _)| matches!(*k, "client_id" | "client_secret"))
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            Grant::Jwt(grant) => format!(
                "{}\n{}",
                grant.issuer,
                grant.subject.as_deref().unwrap_or_default()
            ),
        }
    }

    /// The current token: the cached one while it lasts, else a new one.
    pub async fn token(&self) -> Result<String, HttpError> {
        if let Ok(cached) = self.cached.lock()
            && let Some((token, until)) = cached.as_ref()
            && self.client.context().clock().now() < *until
        {
            return Ok(token.clone());
        }
        let signed;
        let form = match &self.grant {
            Grant::Form(form) => form,
            Grant::Jwt(grant) => {
                signed = grant
                    .form(self.client.context().clock().now())
                    .map_err(|message| HttpError::Credentials {
                        url: crate::http::display_url(&self.token_url),
                        message,
                    })?;
                &signed
            }
        };
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = self
            .client
            .post_form(&self.token_url, &pairs)
            .await
            .map_err(|e| self.refused(e))?;
        #[derive(serde::Deserialize)]
        struct Token {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        let token: Token =
            serde_json::from_slice(&response.body).map_err(|_| HttpError::Credentials {
                url: crate::http::display_url(&self.token_url),
                message: "unexpected response from the token endpoint: it has no access_token"
                    .into(),
            })?;
        // A minute's margin, so a token never expires between this check and its use.
        let life = Duration::from_secs(token.expires_in.unwrap_or(3600).saturating_sub(60));
        if let Ok(mut issued) = self.issued.lock() {
            let previous = issued.replace(token.access_token.clone());
            self.client
                .redactor()
                .replace(previous.as_deref(), &token.access_token);
            if let Ok(maskers) = self.maskers.lock() {
                for redactor in maskers.iter() {
                    redactor.replace(previous.as_deref(), &token.access_token);
                }
            }
        }
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((
                token.access_token.clone(),
                self.client.context().clock().now() + life,
            ));
        }
        Ok(token.access_token)
    }

    /// Masks every token this source issues in `redactor` too.
    pub fn mask_in(&self, redactor: &Redactor) {
        if let Ok(mut maskers) = self.maskers.lock() {
            maskers.push(redactor.clone());
        }
        if let Ok(issued) = self.issued.lock()
            && let Some(token) = issued.as_deref()
        {
            redactor.add(token);
        }
    }

    /// Drops the cached token (the API refused it), so the next request fetches another.
    pub fn forget(&self) {
        if let Ok(mut cached) = self.cached.lock() {
            *cached = None;
        }
    }

    /// The token endpoint's refusal in the operator's terms.
    fn refused(&self, e: HttpError) -> HttpError {
        let HttpError::Status { status, detail, .. } = e else {
            return e;
        };
        // RFC 6749 §5.2: only `invalid_client` is about the client's credentials.
        let hint = match (
            &self.grant,
            detail.starts_with("invalid_client") || detail.is_empty(),
        ) {
            (Grant::Form(_), true) => "; check clientId and clientSecret",
            (Grant::Jwt(_), _) if detail.starts_with("invalid_grant") || detail.is_empty() => {
                "; check clientEmail, privateKey and scopes (and, with subject, that the account may act for that user)"
            }
            _ => "",
        };
        let said = if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        };
        HttpError::Credentials {
            url: crate::http::display_url(&self.token_url),
            message: format!("the token endpoint refused the request (HTTP {status}){said}{hint}"),
        }
    }
}

/// Authentication.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum AuthSpec {
    /// No credentials.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: Secret,
    },
    /// HTTP Basic.
    Basic {
        /// User name.
        username: String,
        /// Password or token.
        password: Secret,
    },
    /// Headers of their own.
    #[serde(rename_all = "camelCase")]
    Headers {
        /// Header name to value.
        headers: BTreeMap<String, Secret>,
    },
    /// A query parameter, added to every request (followed links included).
    Query {
        /// The parameter.
        name: String,
        /// Its value.
        value: Secret,
    },
    /// OAuth2 client credentials: a token from `tokenUrl`, cached until shortly before it
    /// expires and fetched again after a 401.
    #[serde(rename_all = "camelCase")]
    Oauth2ClientCredentials {
        /// The token endpoint.
        token_url: Url,
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: Secret,
        /// Scopes, space-separated.
        #[serde(default)]
        scope: Option<String>,
        /// The audience (Auth0 and others).
        #[serde(default)]
        audience: Option<String>,
    },
    /// AWS Signature Version 4: every request signed for `service` in `region`.
    #[serde(rename_all = "camelCase")]
    AwsSigV4 {
        /// The access key id (`AKIA…`, `ASIA…` for temporary credentials).
        access_key_id: String,
        /// The secret access key.
        secret_access_key: Secret,
        /// The session token of temporary credentials (STS, an assumed role).
        #[serde(default)]
        session_token: Option<Secret>,
        /// The region, e.g. `us-east-1`.
        region: String,
        /// The signing name of the service, e.g. `health`, `securityhub`.
        service: String,
        /// Also send and sign the body's SHA-256 as `x-amz-content-sha256` (S3 wants it;
        /// default false).
        #[serde(default)]
        sign_body: bool,
    },
    /// The JWT-bearer grant (RFC 7523): an assertion signed with `privateKey` (RS256) is
    /// traded at `tokenUrl` for a token, cached until shortly before it expires (Google
    /// service accounts).
    JwtBearer(JwtBearerSpec),
}

/// The JWT-bearer grant's settings.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtBearerSpec {
    /// The token endpoint, e.g. `https://oauth2.googleapis.com/token`.
    pub token_url: Url,
    /// The assertion's issuer: the service account's e-mail.
    pub client_email: String,
    /// The RSA private key in PEM (the service account key file's `private_key`).
    pub private_key: Secret,
    /// Scopes the token is asked for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The user to act as (Google Workspace domain-wide delegation).
    #[serde(default)]
    pub subject: Option<String>,
    /// The assertion's audience (default: `tokenUrl`).
    #[serde(default)]
    pub audience: Option<String>,
}

impl AuthSpec {
    /// The credentials a client of connector `common` sends. A token a token endpoint
    /// issues is masked by the client that takes the credentials and by the process's
    /// redactor (see [`TokenSource::mask_in`]).
    pub fn auth(&self, common: &ConnectorContext) -> Result<Option<Auth>, HttpError> {
        Ok(Some(match self {
            AuthSpec::None => return Ok(None),
            AuthSpec::Bearer { token } => Auth::bearer(token),
            AuthSpec::Basic { username, password } => Auth::basic(username.clone(), password),
            AuthSpec::Headers { headers } => {
                let named: Vec<(&str, &Secret)> =
                    headers.iter().map(|(k, v)| (k.as_str(), v)).collect();
                Auth::headers(&named)
            }
            AuthSpec::Query { name, value } => Auth::Query {
                name: name.clone(),
                value: value.expose().to_owned().into(),
            },
            AuthSpec::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
                audience,
            } => {
                let client = HttpClient::builder(token_url.clone())
                    .connector_settings(common)
                    .build()?;
                let mut form = vec![
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", client_id.clone()),
                    ("client_secret", client_secret.expose().to_owned()),
                ];
                form.extend(scope.iter().map(|s| ("scope", s.clone())));
                form.extend(audience.iter().map(|a| ("audience", a.clone())));
                Auth::Token(Arc::new(TokenSource::new(
                    client,
                    token_url.clone(),
                    Grant::Form(form),
                )))
            }
            AuthSpec::AwsSigV4 {
                access_key_id,
                secret_access_key,
                session_token,
                region,
                service,
                sign_body,
            } => Auth::AwsSigV4(Arc::new(
                SigV4::new(
                    access_key_id.clone(),
                    SecretString::from(secret_access_key.expose().to_owned()),
                    session_token
                        .as_ref()
                        .map(|t| SecretString::from(t.expose().to_owned())),
                    region.clone(),
                    service.clone(),
                )
                .signing_body(*sign_body),
            )),
            AuthSpec::JwtBearer(spec) => spec.auth(common)?,
        }))
    }

    /// Mistakes a type cannot catch: a private key that is not one, an empty region.
    pub fn problems(&self) -> Vec<FieldError> {
        match self {
            AuthSpec::JwtBearer(spec) => jwt::read_key(spec.private_key.expose())
                .err()
                .map(|e| FieldError::new(&["auth", "privateKey"], e))
                .into_iter()
                .collect(),
            AuthSpec::AwsSigV4 {
                region, service, ..
            } => [("region", region), ("service", service)]
                .into_iter()
                .filter(|(_, v)| v.trim().is_empty() || v.contains(char::is_whitespace))
                .map(|(field, _)| {
                    FieldError::new(
                        &["auth", field],
                        "expected a name such as us-east-1 (region) or health (service)",
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl JwtBearerSpec {
    /// The JWT-bearer credentials: a token source whose requests carry a fresh assertion.
    fn auth(&self, common: &ConnectorContext) -> Result<Auth, HttpError> {
        let JwtBearerSpec {
            token_url,
            client_email,
            private_key,
            scopes,
            subject,
            audience,
        } = self;
        let refused = |message: String| HttpError::Credentials {
            url: crate::http::display_url(token_url),
            message: format!("privateKey: {message}"),
        };
        let grant = JwtGrant::new(
            client_email.clone(),
            private_key.expose(),
            (!scopes.is_empty()).then(|| scopes.join(" ")),
            subject.clone(),
            audience.clone().unwrap_or_else(|| token_url.to_string()),
        )
        .map_err(refused)?;
        let client = HttpClient::builder(token_url.clone())
            .connector_settings(common)
            .build()?;
        Ok(Auth::Token(Arc::new(TokenSource::new(
            client,
            token_url.clone(),
            Grant::Jwt(grant),
        ))))
    }
}

impl TokenSource {
    fn new(client: HttpClient, token_url: Url, grant: Grant) -> Self {
        Self {
            client,
            token_url,
            grant,
            cached: Mutex::new(None),
            issued: Mutex::new(None),
            maskers: Mutex::new(Vec::new()),
        }
    }
}
