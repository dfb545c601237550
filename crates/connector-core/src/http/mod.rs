//! The HTTP rules every provider shares, so no provider can forget one.
//!
//! - a `User-Agent` naming the product and version (api.weather.gov rejects requests
//!   without one, and every API owner likes to know who calls);
//! - a timeout on every request, covering the body; gzip; a cap on the body size;
//! - conditional requests: `If-None-Match` / `If-Modified-Since` from the stored cursor,
//!   and 304 reported as "nothing changed";
//! - retries with the connector's backoff, honouring `Retry-After` and rate-limit headers;
//! - credentials attached only to requests for the configured base URL's origin: a
//!   pagination link or redirect to any other host is refused rather than followed with
//!   the token (a redirect to another host is not followed at all).
//!
//! Error messages name the URL without its query string, which is where an API key would
//! be if an API insisted on one.

pub mod auth;

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
pub use reqwest::header::{HeaderName, HeaderValue};
use secrecy::ExposeSecret;
use url::Url;

use crate::context::{ConnectorContext, Context};
pub use crate::pool::{ClientSettings, SettingError};
use crate::ports::Cursor;
pub use crate::redact::display_url;
use crate::retry::{RetryPolicy, Retryable};
pub use auth::Auth;

/// What this framework calls itself on the wire: its version and its home, the workspace's
/// `repository` (one place to change it).
pub const DEFAULT_USER_AGENT: &str = concat!(
    "connectors/",
    env!("CARGO_PKG_VERSION"),
    " (+",
    env!("CARGO_PKG_REPOSITORY"),
    ")"
);

/// Default cap on one response body: large enough for a nationwide NOAA snapshot many times
/// over, small enough that a misbehaving server cannot exhaust memory.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Why a request failed, classified for the retry policy.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The server answered with an error status.
    #[error("HTTP {status} from {url}{}", detail_suffix(.detail))]
    Status {
        /// The status code.
        status: u16,
        /// The URL without its query.
        url: String,
        /// Server-requested delay (Retry-After or rate-limit reset).
        retry_after: Option<Duration>,
        /// The response carried rate-limit signals (Retry-After, remaining = 0).
        rate_limited: bool,
        /// The start of the body, for the operator (problem documents say what was wrong).
        detail: String,
    },
    /// No complete answer within `requestTimeoutMs`.
    #[error("request to {url} timed out after {timeout:?}")]
    Timeout {
        /// The URL without its query.
        url: String,
        /// The timeout that elapsed.
        timeout: Duration,
    },
    /// Connection refused, reset, DNS, TLS…
    #[error("cannot reach {url}: {message}")]
    Transport {
        /// The URL without its query.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The body could not be read to its end: the connection was cut mid-body (or, as
    /// the message then says, a compressed body was corrupt).
    #[error("the response from {url} broke off after {received} bytes of its body: {message}")]
    Truncated {
        /// The URL without its query.
        url: String,
        /// Body bytes that arrived.
        received: usize,
        /// What the connection said.
        message: String,
    },
    /// A redirect that is not followed: to another origin (credentials stay with the
    /// configured one) or one hop too many.
    #[error("{url} redirected to {location}, which is not followed: {why}")]
    Redirected {
        /// The URL without its query.
        url: String,
        /// Where it pointed (origin only when it is another host).
        location: String,
        /// Why it is not followed, and what to do.
        why: &'static str,
    },
    /// The body exceeded the size cap.
    #[error("response from {url} is larger than the {limit}-byte cap")]
    TooLarge {
        /// The URL without its query.
        url: String,
        /// The cap.
        limit: usize,
    },
    /// The server asked to wait (a rate limit) and the wait is not over: nothing was sent.
    #[error("rate limited: {url} asked to wait until {until}; nothing is sent before then")]
    Held {
        /// The URL without its query.
        url: String,
        /// The end of the wait, as an HTTP date.
        until: String,
    },
    /// A token endpoint refused to issue a token, or answered without one.
    #[error("{message} ({url})")]
    Credentials {
        /// The token endpoint, without its query.
        url: String,
        /// What it said, and what to check.
        message: String,
    },
    /// A URL pointed outside the configured origin while credentials are configured.
    #[error("refusing to send credentials to {url}: only {allowed} is trusted")]
    ForeignOrigin {
        /// The URL that was refused, without its query.
        url: String,
        /// The configured origin.
        allowed: String,
    },
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl Retryable for HttpError {
    fn is_retryable(&self) -> bool {
        match self {
            HttpError::Status {
                status,
                rate_limited,
                ..
            } => match *status {
                429 | 408 => true,
                403 => *rate_limited,
                501 => false,
                s => s >= 500,
            },
            HttpError::Timeout { .. }
            | HttpError::Transport { .. }
            | HttpError::Truncated { .. } => true,
            // A running hold fails the poll at once; the next tick looks again.
            HttpError::TooLarge { .. }
            | HttpError::Redirected { .. }
            | HttpError::ForeignOrigin { .. }
            | HttpError::Credentials { .. }
            | HttpError::Held { .. } => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A successful response, fully read.
#[derive(Debug)]
pub struct Response {
    /// The status (2xx).
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body, decompressed.
    pub body: Vec<u8>,
    /// The URL that answered.
    pub url: Url,
}

impl Response {
    /// The `ETag` header, to store for the next conditional request.
    pub fn etag(&self) -> Option<String> {
        header_str(&self.headers, header::ETAG)
    }

    /// The `Last-Modified` header, to store for the next conditional request.
    pub fn last_modified(&self) -> Option<String> {
        header_str(&self.headers, header::LAST_MODIFIED)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// Every field of a list-valued header (`Link`, `WWW-Authenticate`), joined with
    /// `, ` as RFC 9110 §5.3 makes equivalent: a server may send each item as a field of
    /// its own.
    pub fn header_list(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The answer to a conditional GET.
#[derive(Debug)]
pub enum Conditional {
    /// 304: the resource has not changed since the validators were stored.
    NotModified,
    /// A full response.
    Modified(Box<Response>),
}

/// An HTTP client bound to one API origin, with the shared rules applied.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    user_agent: HeaderValue,
    base: Url,
    auth: Option<Auth>,
    accept: HeaderValue,
    timeout: Duration,
    max_body_bytes: usize,
    retry: RetryPolicy,
    connector: Arc<str>,
    limit_key: Arc<str>,
    limit_phrases: Arc<[String]>,
    /// The quota left as the last response said (`u64::MAX`: not said yet).
    remaining: Arc<std::sync::atomic::AtomicU64>,
    /// Every credential this client sends, to mask wherever a server echoes one.
    redactor: crate::redact::Redactor,
    /// What identifies its credential, for naming its rate budget (only ever hashed).
    credential: Identity,
    /// The API's published limit, from the connector's `rateLimit`.
    ceiling: Option<crate::budget::Ceiling>,
    /// The provider's own scope of a rate limit ([`HttpClientBuilder::rate_limit_key`]:
    /// Datadog's endpoint), part of its budget's name.
    limit_scope: Option<Arc<str>>,
    /// The pool, holds, stop signal and clock it shares with the process's connectors.
    context: Context,
}

/// What identifies a client's credential (the credential itself): only ever hashed into
/// a budget's name, and never shown.
#[derive(Clone, Default)]
struct Identity(Arc<[u8]>);

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(crate::config::REDACTED)
    }
}

/// One request of a provider: GET, or POST with a JSON body (Jira's long JQL, Datadog's
/// search endpoints), with headers of its own. The query is part of the URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Where, with the query.
    pub url: Url,
    /// `Some`: POST this JSON; `None`: GET.
    pub body: Option<serde_json::Value>,
    /// Headers for this request only (credentials come from the client's [`Auth`]).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Request {
    /// A GET of `url`.
    pub fn get(url: Url) -> Self {
        Self {
            url,
            body: None,
            headers: Vec::new(),
        }
    }

    /// The same request with one more header of its own (an API version header, say).
    pub fn with_header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ));
        self
    }

    /// A POST of `body` as JSON to `url`.
    pub fn post(url: Url, body: serde_json::Value) -> Self {
        Self {
            url,
            body: Some(body),
            headers: Vec::new(),
        }
    }
}

/// Builds an [`HttpClient`]; start from [`HttpClient::builder`].
#[derive(Debug)]
pub struct HttpClientBuilder {
    base: Url,
    user_agent: String,
    accept: String,
    auth: Option<Auth>,
    timeout: Duration,
    max_body_bytes: usize,
    retry: RetryPolicy,
    connector: Arc<str>,
    limit_key: Option<String>,
    limit_phrases: Vec<String>,
    redactor: crate::redact::Redactor,
    context: Option<Context>,
    ceiling: Option<crate::budget::Ceiling>,
}

impl HttpClientBuilder {
    /// Replaces the default User-Agent (e.g. to add a contact address).
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// The `Accept` header (default `application/json`).
    pub fn accept(mut self, accept: impl Into<String>) -> Self {
        self.accept = accept.into();
        self
    }

    /// Credentials, sent only to the base URL's origin.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Masks `secrets` wherever a server echoes them in an error this client reports, as it
    /// masks its own credentials (values a provider sends in a path, query or body).
    pub fn redacting<'a>(self, secrets: impl IntoIterator<Item = &'a str>) -> Self {
        self.redactor.add_all(secrets);
        self
    }

    /// Timeout of one request including its body.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Cap on one response body.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// Retry policy for each request.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Timeout and retries as the connector's config says, in the process's context (its
    /// connection pool, rate-limit holds, stop signal and clock); requests are counted
    /// under the connector's name.
    pub fn connector_settings(mut self, connector: &ConnectorContext) -> Self {
        let config = connector.config();
        self.connector = config.name.as_str().into();
        self.redactor.add_all(config.secret_values());
        self.context = Some(connector.context().clone());
        // A budget lives at most an hour: a longer published window is paced as its
        // share of an hour.
        self.ceiling = config.rate_limit.map(|c| {
            let per = u64::from(c.per_seconds);
            let (requests, seconds) = if per > 3600 {
                ((u64::from(c.requests) * 3600 / per).max(1), 3600)
            } else {
                (u64::from(c.requests), per)
            };
            crate::budget::Ceiling {
                requests,
                window_ms: i64::try_from(seconds * 1000).unwrap_or(i64::MAX),
            }
        });
        self.timeout(config.request_timeout())
            .retry(RetryPolicy::from_config(config))
    }

    /// The process's context (without a connector's settings: a tool's client).
    pub fn context(mut self, context: &Context) -> Self {
        self.context = Some(context.clone());
        self
    }

    /// What a rate-limit wait is kept under (default: the connector and the API's
    /// origin): the credential when the API counts per token (GitHub), the endpoint when
    /// it counts per endpoint (Datadog). Clients sharing a key share its waits.
    pub fn rate_limit_key(mut self, key: impl Into<String>) -> Self {
        self.limit_key = Some(key.into());
        self
    }

    /// Keeps rate-limit waits per credential, for an API that counts per token: under
    /// `{api}:{origin}:{hash of the secret}` (never the secret), with `:{scope}` for an API
    /// that also counts per endpoint (Datadog). Connectors sharing a credential share its
    /// waits.
    pub fn rate_limit_per_credential(
        self,
        api: &str,
        secret: &crate::config::Secret,
        scope: Option<&str>,
    ) -> Self {
        let origin = self.base.origin().ascii_serialization();
        let hash = crate::detect::content_version(secret.expose());
        let key = match scope {
            Some(scope) => format!("{api}:{origin}:{hash}:{scope}"),
            None => format!("{api}:{origin}:{hash}"),
        };
        self.rate_limit_key(key)
    }

    /// Error bodies that mean "rate limited" although their headers do not say so
    /// (GitHub's secondary limits: a 403 whose message mentions them, sometimes without
    /// `Retry-After`). Such a 403 or 429 is retried and held like a rate limit, for a
    /// minute when the server names no time.
    pub fn rate_limit_phrases(mut self, phrases: &[&str]) -> Self {
        self.limit_phrases = phrases.iter().map(|p| p.to_ascii_lowercase()).collect();
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<HttpClient, HttpError> {
        let accept =
            HeaderValue::try_from(self.accept.as_str()).map_err(|e| HttpError::Transport {
                url: display_url(&self.base),
                message: format!("invalid Accept header: {e}"),
            })?;
        let user_agent =
            HeaderValue::try_from(self.user_agent.as_str()).map_err(|e| HttpError::Transport {
                url: display_url(&self.base),
                message: format!("invalid User-Agent: {e}"),
            })?;
        let limit_scope: Option<Arc<str>> = self.limit_key.as_deref().map(Arc::from);
        let limit_key = self.limit_key.unwrap_or_else(|| {
            format!(
                "{}@{}",
                self.connector,
                self.base.origin().ascii_serialization()
            )
        });
        // A client built outside a process's context (tests, tools) gets one of its own.
        let context = match self.context {
            Some(context) => context,
            None => Context::new(&ClientSettings::default()).map_err(|message| {
                HttpError::Transport {
                    url: display_url(&self.base),
                    message,
                }
            })?,
        };
        let client = context.client().clone();
        if let Some(auth) = &self.auth {
            auth.register(&self.redactor);
            auth.register(context.redactor());
        }
        let credential = Identity(
            self.auth
                .as_ref()
                .map(Auth::identity)
                .unwrap_or_default()
                .into(),
        );
        Ok(HttpClient {
            client,
            user_agent,
            base: self.base,
            auth: self.auth,
            accept,
            timeout: self.timeout,
            max_body_bytes: self.max_body_bytes,
            retry: self.retry,
            limit_key: limit_key.into(),
            limit_phrases: self.limit_phrases.into(),
            remaining: Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)),
            credential,
            limit_scope,
            ceiling: self.ceiling,
            connector: self.connector,
            redactor: self.redactor,
            context,
        })
    }
}

impl HttpClient {
    /// The client's redactor: a provider registers a credential it obtains at run time (an
    /// OAuth access token) so that an echo of it is masked too.
    pub fn redactor(&self) -> &crate::redact::Redactor {
        &self.redactor
    }

    /// A builder for a client of the API at `base`.
    pub fn builder(base: Url) -> HttpClientBuilder {
        HttpClientBuilder {
            base,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            accept: "application/json".to_owned(),
            auth: None,
            timeout: Duration::from_secs(30),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            retry: RetryPolicy::none(),
            connector: "unnamed".into(),
            limit_key: None,
            limit_phrases: Vec::new(),
            redactor: crate::redact::Redactor::new(),
            context: None,
            ceiling: None,
        }
    }

    /// The requests left in the API's current window, as its last response said (the
    /// `X-RateLimit-Remaining` family), for a provider's quota gauge.
    pub fn rate_limit_remaining(&self) -> Option<u64> {
        let left = self.remaining.load(std::sync::atomic::Ordering::Relaxed);
        (left != u64::MAX).then_some(left)
    }

    /// The context the client shares with the process's connectors (its clock, holds,
    /// stop signal).
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The configured base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `base` joined with `path_and_query` (which starts with `/`), keeping any path prefix
    /// of the base (`https://host/jira` + `/rest/api` → `https://host/jira/rest/api`).
    pub fn url(&self, path_and_query: &str) -> Result<Url, url::ParseError> {
        let mut joined = self.base.as_str().trim_end_matches('/').to_owned();
        joined.push_str(path_and_query);
        Url::parse(&joined)
    }

    /// Whether `url` is on the configured origin (scheme, host and port).
    pub fn is_trusted(&self, url: &Url) -> bool {
        url.origin() == self.base.origin()
    }

    /// GET `url` and read the body; 304 is an error here (use [`HttpClient::get_conditional`]).
    pub async fn get(&self, url: &Url) -> Result<Response, HttpError> {
        match self.get_conditional(url, &Cursor::default()).await? {
            Conditional::Modified(r) => Ok(*r),
            Conditional::NotModified => Err(HttpError::Status {
                status: 304,
                url: display_url(url),
                retry_after: None,
                rate_limited: false,
                detail: "not modified, although no validators were sent".into(),
            }),
        }
    }

    /// POST `pairs` form-encoded to `url`, once (an OAuth2 token request: the credentials
    /// are in the form, so the client's own auth is not sent).
    pub async fn post_form(
        &self,
        url: &Url,
        pairs: &[(&str, &str)],
    ) -> Result<Response, HttpError> {
        let shown = || display_url(url);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let resp = self
            .client
            .post(url.clone())
            .timeout(self.timeout)
            .header(header::USER_AGENT, self.user_agent.clone())
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| HttpError::Transport {
                url: shown(),
                message: error_chain(&e.without_url()),
            })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let final_url = resp.url().clone();
        let body = resp.bytes().await.map_err(|e| HttpError::Transport {
            url: shown(),
            message: error_chain(&e.without_url()),
        })?;
        if !status.is_success() {
            return Err(HttpError::Status {
                status: status.as_u16(),
                url: shown(),
                retry_after: None,
                rate_limited: false,
                detail: reason(&self.redactor, &headers, &body),
            });
        }
        Ok(Response {
            status,
            headers,
            body: body.to_vec(),
            url: final_url,
        })
    }

    /// GET `url` with `If-None-Match` / `If-Modified-Since` from `validators`, retried.
    pub async fn get_conditional(
        &self,
        url: &Url,
        validators: &Cursor,
    ) -> Result<Conditional, HttpError> {
        self.send(&Request::get(url.clone()), validators).await
    }

    /// Sends `request` (GET, or POST with a JSON body) with `If-None-Match` /
    /// `If-Modified-Since` from `validators`, retried as the connector's policy says.
    pub async fn send(
        &self,
        request: &Request,
        validators: &Cursor,
    ) -> Result<Conditional, HttpError> {
        let url = &request.url;
        // Credentials never leave the API's origin: the client's own, and any header the
        // request marks sensitive (a token a provider fetched itself).
        let carries_secret =
            self.auth.is_some() || request.headers.iter().any(|(_, v)| v.is_sensitive());
        if carries_secret && !self.is_trusted(url) {
            return Err(HttpError::ForeignOrigin {
                url: display_url(url),
                allowed: self.base.origin().ascii_serialization(),
            });
        }
        let holds = self.context.holds();
        holds.note(&self.limit_key, &self.connector);
        if let Some(until) = holds.held(&self.limit_key, self.context.clock().now()) {
            return Err(HttpError::Held {
                url: display_url(url),
                until: httpdate::fmt_http_date(until),
            });
        }
        let token = match &self.auth {
            Some(Auth::Token(source)) if self.is_trusted(url) => Some(source.token().await?),
            _ => None,
        };
        let sent = self
            .retry
            .run(&self.context, url.path(), || {
                self.attempt(request, validators, token.as_deref())
            })
            .await;
        // A refused token is fetched again for the next request.
        if let (Some(Auth::Token(source)), Err(HttpError::Status { status: 401, .. })) =
            (&self.auth, &sent)
        {
            source.forget();
        }
        sent
    }

    async fn attempt(
        &self,
        request: &Request,
        validators: &Cursor,
        token: Option<&str>,
    ) -> Result<Conditional, HttpError> {
        let url = &request.url;
        // Each attempt, a retry's too, takes its turn in the rate budget.
        self.pace(&self.budget_key(request), url).await?;
        let shown = || display_url(url);
        let mut resp = match self.build(request, validators, token)?.send().await {
            Ok(r) => r,
            Err(e) => {
                self.context.observe(&self.connector, None);
                return Err(self.failed(url, e));
            }
        };
        let status = resp.status();
        self.context.observe(&self.connector, Some(status.as_u16()));
        tracing::debug!(url = %shown(), status = status.as_u16(), "http response");
        if status == StatusCode::NOT_MODIFIED {
            // A 304 carries the limit headers too.
            let headers = resp.headers().clone();
            let limit = self.rate_limit(status, &headers, &[]);
            self.learn(request, &limit, &headers).await;
            return Ok(Conditional::NotModified);
        }
        if let Some(stopped) = redirected(&resp, url) {
            return Err(stopped);
        }
        let body = self.read_body(&mut resp, url).await?;
        let headers = resp.headers().clone();
        let limit = self.rate_limit(status, &headers, &body);
        self.learn(request, &limit, &headers).await;
        if !status.is_success() {
            return Err(HttpError::Status {
                status: status.as_u16(),
                url: shown(),
                retry_after: limit.wait,
                rate_limited: limit.limited,
                detail: reason(&self.redactor, &headers, &body),
            });
        }
        Ok(Conditional::Modified(Box::new(Response {
            status,
            headers,
            body,
            url: resp.url().clone(),
        })))
    }

    /// The request as sent: the query auth parameter (on the API's own origin, unless the
    /// link carries it), the fixed headers, the request's, the credentials and the
    /// validators.
    fn build(
        &self,
        request: &Request,
        validators: &Cursor,
        token: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, HttpError> {
        let url = &request.url;
        let mut sent = url.clone();
        if let Some(Auth::Query { name, value }) = &self.auth
            && self.is_trusted(url)
            && !url.query_pairs().any(|(k, _)| k == name.as_str())
        {
            sent.query_pairs_mut()
                .append_pair(name, value.expose_secret());
        }
        // The request's own headers replace the client's defaults (an API's Accept, the
        // Content-Type of AWS's JSON protocol) rather than adding a second value.
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(header::USER_AGENT, self.user_agent.clone());
        headers.insert(header::ACCEPT, self.accept.clone());
        for (name, _) in &request.headers {
            headers.remove(name);
        }
        for (name, value) in &request.headers {
            headers.append(name.clone(), value.clone());
        }
        let mut req = match &request.body {
            Some(_) => self.client.post(sent),
            None => self.client.get(sent),
        }
        .timeout(self.timeout)
        .headers(headers);
        if let Some(body) = &request.body {
            // Sets Content-Type only where the request did not.
            req = req.json(body);
        }
        if let Some(auth) = &self.auth
            && self.is_trusted(url)
        {
            req = auth.apply(req, token);
        }
        if let Some(etag) = &validators.etag {
            req = req.header(header::IF_NONE_MATCH, etag.as_str());
        }
        if let Some(lm) = &validators.last_modified {
            req = req.header(header::IF_MODIFIED_SINCE, lm.as_str());
        }
        match &self.auth {
            Some(Auth::AwsSigV4(signer)) if self.is_trusted(url) => self.signed(req, signer),
            _ => Ok(req),
        }
    }

    /// `req` signed as it is (AWS Signature V4), at the context clock's time; an error
    /// says what cannot be signed, never with a credential.
    fn signed(
        &self,
        req: reqwest::RequestBuilder,
        signer: &auth::SigV4,
    ) -> Result<reqwest::RequestBuilder, HttpError> {
        let (client, built) = req.build_split();
        let refused = |message: String| HttpError::Credentials {
            url: self.base.origin().ascii_serialization(),
            message: format!("cannot sign the request (AWS Signature V4): {message}"),
        };
        let request = built.map_err(|e| refused(e.to_string()))?;
        let signed = signer
            .sign(request, self.context.clock().now())
            .map_err(|e| refused(e.0))?;
        Ok(reqwest::RequestBuilder::from_parts(client, signed))
    }

    /// A request that got no answer: timed out, or the connection failed.
    fn failed(&self, url: &Url, e: reqwest::Error) -> HttpError {
        if e.is_timeout() {
            HttpError::Timeout {
                url: display_url(url),
                timeout: self.timeout,
            }
        } else {
            HttpError::Transport {
                url: display_url(url),
                message: error_chain(&e.without_url()),
            }
        }
    }

    /// The body, read chunk by chunk up to `maxBodyBytes`; a body cut off says so.
    async fn read_body(
        &self,
        resp: &mut reqwest::Response,
        url: &Url,
    ) -> Result<Vec<u8>, HttpError> {
        let too_large = || HttpError::TooLarge {
            url: display_url(url),
            limit: self.max_body_bytes,
        };
        if resp
            .content_length()
            .is_some_and(|len| len > self.max_body_bytes as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity(
            resp.content_length()
                .map_or(16 * 1024, |l| l as usize)
                .min(self.max_body_bytes),
        );
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return Ok(body),
                Err(e) if e.is_timeout() => return Err(self.failed(url, e)),
                Err(e) => {
                    return Err(HttpError::Truncated {
                        url: display_url(url),
                        received: body.len(),
                        message: error_chain(&e.without_url()),
                    });
                }
            };
            if body.len() + chunk.len() > self.max_body_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
    }

    /// The rate budget `request` takes from: its origin and credential (the client's and
    /// any sensitive header the request carries), named by an HMAC under the deployment's
    /// key, so every connector, process and replica sending under them shares it.
    fn budget_key(&self, request: &Request) -> String {
        let mut credential = self.credential.0.to_vec();
        for (name, value) in request.headers.iter().filter(|(_, v)| v.is_sensitive()) {
            credential.push(b'\n');
            credential.extend_from_slice(name.as_str().as_bytes());
            credential.push(b'=');
            credential.extend_from_slice(value.as_bytes());
        }
        let mut scope = request.url.origin().ascii_serialization();
        if let Some(own) = &self.limit_scope {
            scope.push('\n');
            scope.push_str(own);
        }
        self.context.budgets().key_for(&scope, &credential)
    }

    /// The longest a budget call may take: a tenth of the request timeout, at most 100 ms.
    fn budget_timeout(&self) -> Duration {
        crate::budget::CALL_TIMEOUT
            .min(self.timeout / 10)
            .max(Duration::from_millis(5))
    }

    /// Waits for the request's turn in its rate budget, on the context's clock (a stop
    /// cuts it short). A wait longer than a request may take ends the read as a server's
    /// hold does, instead of sleeping through the poll.
    async fn pace(&self, key: &str, url: &Url) -> Result<(), HttpError> {
        let clock = self.context.clock();
        let mut waited = Duration::ZERO;
        loop {
            let wait = self
                .context
                .budgets()
                .take(
                    key,
                    &self.connector,
                    self.ceiling,
                    clock,
                    self.budget_timeout(),
                )
                .await;
            if wait.is_zero() {
                return Ok(());
            }
            waited += wait;
            if waited > self.timeout || self.context.stop().stopping() {
                // Not kept in this process: the budget says it again next time, unless an
                // operator cleared it meanwhile.
                let now = clock.now();
                return Err(HttpError::Held {
                    url: display_url(url),
                    until: httpdate::fmt_http_date(now + wait.min(crate::ratelimit::MAX_HOLD)),
                });
            }
            self.context.stop().wait(clock.sleep(wait)).await;
        }
    }

    /// Tells the request's rate budget what the response said of the limit, so every
    /// replica sending under the same credential learns it.
    async fn learn(&self, request: &Request, limit: &crate::ratelimit::Limit, headers: &HeaderMap) {
        let now_ms = self.context.clock().now_ms();
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let learned = crate::budget::Learned {
            remaining: limit
                .remaining
                .zip(limit.reset)
                .map(|(left, reset)| (left, now_ms.saturating_add(ms(reset)))),
            hold_until_ms: limit
                .wait
                .filter(|_| limit.limited)
                .map(|w| now_ms.saturating_add(ms(w.min(crate::ratelimit::MAX_HOLD)))),
            source: crate::ratelimit::source(headers),
        };
        if learned.is_empty() {
            return;
        }
        self.context
            .budgets()
            .learn(
                &self.budget_key(request),
                &self.connector,
                &learned,
                self.context.clock(),
                self.budget_timeout(),
            )
            .await;
    }

    /// What the response says of the rate limit: the quota left (for the gauge), and a
    /// wait the server asks for, held for later requests and polls too. A 403 or 429 whose
    /// body names a limit (GitHub's secondary limits) is one, for a minute when no time is
    /// given.
    fn rate_limit(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> crate::ratelimit::Limit {
        let now = self.context.clock().now();
        let mut limit = crate::ratelimit::parse(headers, now);
        if let Some(left) = limit.remaining {
            self.remaining
                .store(left, std::sync::atomic::Ordering::Relaxed);
        }
        if matches!(status.as_u16(), 403 | 429) && !limit.limited && !self.limit_phrases.is_empty()
        {
            let text = String::from_utf8_lossy(&body[..body.len().min(2048)]).to_ascii_lowercase();
            if self.limit_phrases.iter().any(|p| text.contains(p.as_str())) {
                limit.limited = true;
                limit.wait = limit.wait.or(Some(Duration::from_secs(60)));
            }
        }
        if let Some(wait) = limit.wait.filter(|_| limit.limited) {
            self.context
                .holds()
                .hold(&self.limit_key, &self.connector, now, wait);
        }
        limit
    }
}

/// A redirect the policy stopped at: to another host (credentials stay home), or too
/// many in a row.
fn redirected(resp: &reqwest::Response, url: &Url) -> Option<HttpError> {
    if !resp.status().is_redirection() {
        return None;
    }
    let to = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| resp.url().join(l).ok())?;
    let other_host = to.origin() != resp.url().origin();
    Some(HttpError::Redirected {
        url: display_url(url),
        location: if other_host {
            format!("another host ({})", to.origin().ascii_serialization())
        } else {
            display_url(&to)
        },
        why: if other_host {
            "credentials are sent to the configured host only; if the API moved, set its base URL to the new address"
        } else {
            "more than 5 redirects in a row, or a redirect status that is not followed"
        },
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Where APIs put the reason of an error in a JSON body, most specific first (RFC 6749's
/// `error_description`, Jira's `errorMessages`, JSON:API's `errors[].detail`, RFC 9457's
/// `detail` and `title`).
const REASON_POINTERS: [&str; 10] = [
    "/message",
    "/error_description",
    "/error/message",
    "/errors/0/message",
    "/errors/0/detail",
    "/errorMessages/0",
    "/detail",
    "/title",
    "/error",
    "/errors/0",
];

/// The reason of an error response as the API gives it: a message field of its JSON body
/// and a `message` header (NVD's), else the start of the body; every credential masked
/// before anything is cut.
fn reason(redactor: &crate::redact::Redactor, headers: &HeaderMap, body: &[u8]) -> String {
    let said = serde_json::from_slice::<serde_json::Value>(&body[..body.len().min(1 << 20)])
        .ok()
        .and_then(|doc| {
            let text = |p: &str| match doc.pointer(p) {
                Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
                _ => None,
            };
            // RFC 6749 §5.2: a code and its description.
            if let (Some(code), Some(description)) = (text("/error"), text("/error_description")) {
                return Some(format!("{code}: {description}"));
            }
            REASON_POINTERS.iter().find_map(|p| text(p))
        });
    let header = headers
        .get("message")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty());
    match (said, header) {
        (Some(said), Some(h)) => {
            snippet(redactor, format!("{said} (message header: {h})").as_bytes())
        }
        (Some(said), None) => snippet(redactor, said.as_bytes()),
        (None, Some(h)) => {
            let body = snippet(redactor, body);
            let h = snippet(redactor, h.as_bytes());
            if body.is_empty() {
                h
            } else {
                format!("{h}; {body}")
            }
        }
        (None, None) => snippet(redactor, body),
    }
}

/// The first line or so of an error body, printable, for the operator. Every credential
/// the client sends is masked first, so a cut never leaves a secret's prefix behind.
fn snippet(redactor: &crate::redact::Redactor, body: &[u8]) -> String {
    // The whole body is masked before anything is collapsed or cut (an error body, capped
    // by maxBodyBytes), so no cut can leave part of a secret behind.
    let text = redactor.scrub_bytes(body);
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let words = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    match words.char_indices().nth(300) {
        Some((cut, _)) => words[..cut].to_owned(),
        None => words,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn urls_are_shown_without_query_or_credentials() {
        let url = Url::parse("https://user:pw@api.example.com/x?api_key=secret#f").expect("url");
        assert_eq!(display_url(&url), "https://api.example.com/x");
        // A loop message shows the query (the repeated cursor is the point), with
        // credential-named parameters masked.
        let looped = Url::parse(
            "https://user:pw@api.example.com/x?cursor=c2&api_key=secret&access_token=t&sig=s&page=3",
        )
        .expect("url");
        assert_eq!(
            crate::source::paging::shown_with_query(&looped),
            "https://api.example.com/x?cursor=c2&api_key=****&access_token=****&sig=****&page=3"
        );
    }

    #[test]
    fn an_echoed_secret_straddling_the_cut_leaves_no_prefix() {
        let redactor = crate::redact::Redactor::new();
        redactor.add("straddling-secret-value");
        for pad in 280..300 {
            let body = format!("{}straddling-secret-value tail", "x".repeat(pad));
            let shown = snippet(&redactor, body.as_bytes());
            assert!(!shown.contains("straddl"), "{pad}: {shown}");
            assert!(shown.chars().count() <= 300, "{pad}");
        }
    }

    #[test]
    fn auth_debug_never_shows_the_secret() {
        let auth = Auth::Bearer(SecretString::from("tok-123"));
        assert!(!format!("{auth:?}").contains("tok-123"));
    }
}
