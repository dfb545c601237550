#![doc = include_str!("../README.md")]

pub mod item;

use std::collections::BTreeMap;

use connector_core::config::fields;
use connector_core::config::{FieldError, PathSegment, Secret};
use connector_core::http::{Auth, HttpClient, Request};
use connector_core::pipeline::{CreateError, FetchError, Pages, StreamSpec, Streams, single_page};
use connector_core::source::time::{TimeFormat, format_millis, parse_millis, read_from};
use connector_core::source::{self, Anchor, Kept, Paging, Read, Revalidate};
use connector_core::{
    ConnectorContext, Cursor, Description, Factories, ItemError, Provider, Record, Severity,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::item::Resource;

/// What to read of each repository: `["issues", "securityAdvisories",
/// "dependabotAlerts"]`, each with its defaults, or `{"issues": {"labels": "bug"},
/// "dependabotAlerts": {}}`.
pub type Resources = connector_core::config::Resources<ResourceName, ResourceOptions>;

fn default_resources() -> Resources {
    Resources::names([ResourceName::Issues])
}

/// A resource by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ResourceName {
    /// Issues (and pull requests) of each repository.
    Issues,
    /// Each repository's security advisories.
    SecurityAdvisories,
    /// Each repository's Dependabot alerts.
    DependabotAlerts,
}

/// Resources with options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceOptions {
    /// Issues, read incrementally by `since`.
    #[serde(default)]
    pub issues: Option<IssueOptions>,
    /// Repository security advisories (no options).
    #[serde(default)]
    pub security_advisories: Option<NoOptions>,
    /// Dependabot alerts.
    #[serde(default)]
    pub dependabot_alerts: Option<DependabotOptions>,
}

/// A resource without options: `{}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// Options of the `issues` resource.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssueOptions {
    /// `all` (default: closing an issue is then seen as an update), `open` or `closed`.
    #[serde(default = "default_state")]
    pub state: IssueState,
    /// Only issues with all of these labels (comma list, as GitHub takes it).
    #[serde(default)]
    pub labels: Option<String>,
    /// Publish pull requests too (kind `pull_request`); by default they are skipped.
    #[serde(default)]
    pub include_pull_requests: bool,
}

/// Issue states GitHub filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IssueState {
    /// Open and closed.
    All,
    /// Open only.
    Open,
    /// Closed only.
    Closed,
}

fn default_state() -> IssueState {
    IssueState::All
}

/// Options of the `dependabotAlerts` resource.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DependabotOptions {
    /// Comma list of `auto_dismissed`, `dismissed`, `fixed`, `open`; all by default, so
    /// a fix or a dismissal is published as an update.
    #[serde(default)]
    pub state: Option<String>,
}

const ALERT_STATES: [&str; 4] = ["auto_dismissed", "dismissed", "fixed", "open"];

/// `providerConfig` of a `GITHUB` connector.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GithubConfig {
    /// API root: `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise
    /// Server.
    #[serde(default = "default_base_url")]
    pub base_url: Url,
    /// A classic or fine-grained token (sent as Bearer, only ever to `baseUrl`).
    pub token: Secret,
    /// Repositories as `owner/name`; each repository × resource is a stream of its own.
    #[serde(default)]
    pub repositories: Vec<String>,
    /// What to read of each repository (default `["issues"]`).
    #[serde(default = "default_resources")]
    pub resources: Resources,
    /// An organisation whose Dependabot alerts are read too (one stream).
    #[serde(default)]
    pub organization: Option<String>,
    /// Records per page.
    #[serde(default = "default_per_page")]
    #[schemars(range(min = 1, max = 100))]
    pub per_page: u32,
    /// How far before the watermark each issues read asks again (`since` is to the
    /// second, and an update can land while a read runs), in seconds.
    #[serde(default = "default_overlap")]
    #[schemars(range(min = 0, max = 86_400), extend("x-unit" = "seconds"))]
    pub overlap_seconds: u32,
    /// Label name to severity for issues (`critical`, `high`, `medium`, `low`, `info`);
    /// an issue gets its most severe label's, else `info`.
    #[serde(default)]
    pub label_severity: BTreeMap<String, Severity>,
}

fn default_base_url() -> Url {
    Url::parse("https://api.github.com").unwrap_or_else(|_| unreachable!("constant URL"))
}

fn default_per_page() -> u32 {
    100
}

fn default_overlap() -> u32 {
    60
}

/// `owner/name`, in the characters GitHub allows.
fn is_repository(name: &str) -> bool {
    let ok = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    matches!(name.split_once('/'), Some((owner, repo)) if ok(owner) && ok(repo))
}

impl GithubConfig {
    /// Every mistake, with the field it is in.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut out: Vec<FieldError> = fields::base_url("baseUrl", &self.base_url)
            .into_iter()
            .collect();
        for (i, repo) in self.repositories.iter().enumerate() {
            if !is_repository(repo) {
                out.push(FieldError::at(
                    vec![
                        PathSegment::Key("repositories".into()),
                        PathSegment::Index(i),
                    ],
                    "expected owner/name, e.g. octocat/hello-world",
                ));
            }
        }
        if self.repositories.is_empty() && self.organization.is_none() {
            out.push(FieldError::new(
                &["repositories"],
                "list at least one repository (owner/name), or set organization",
            ));
        }
        if let Some(org) = &self.organization
            && !is_repository(&format!("{org}/x"))
        {
            out.push(FieldError::new(
                &["organization"],
                "expected an organisation login, e.g. my-org",
            ));
        }
        let state = self
            .resources
            .resolved()
            .dependabot_alerts
            .and_then(|d| d.state);
        if let Err(e) = fields::known_values("state", state.as_deref(), &ALERT_STATES) {
            out.push(FieldError::new(
                &["resources", "dependabotAlerts", "state"],
                e.message,
            ));
        }
        out
    }
}

/// What one stream reads.
struct Target {
    resource: Resource,
    /// `owner/name`, or `org:<org>`.
    place: String,
    /// The first page's request, before `since`.
    request: Request,
    include_pull_requests: bool,
}

/// The `GITHUB` provider: each repository × resource is a stream of its own.
pub struct GithubProvider {
    http: HttpClient,
    streams: Streams<Target>,
    overlap_ms: i64,
    label_severity: BTreeMap<String, Severity>,
}

/// Most pages one read follows; an issues read goes on from its watermark next poll.
const MAX_PAGES: u64 = 1000;

impl GithubProvider {
    fn read(&self, target: &Target, cursor: &Cursor) -> Read<'_, Record> {
        let mut request = target.request.clone();
        let issues = target.resource == Resource::Issues;
        let watermark = cursor.watermark.as_deref().and_then(parse_millis);
        if let Some(since) = read_from(watermark, self.overlap_ms, None)
            .filter(|_| issues)
            .and_then(|ms| format_millis(ms.div_euclid(1000) * 1000, &TimeFormat::Rfc3339).ok())
        {
            request.url.query_pairs_mut().append_pair("since", &since);
        }
        let (resource, include_pull_requests) = (target.resource, target.include_pull_requests);
        Read {
            paging: Paging::link_header().stop_on_empty(false),
            records: String::new(),
            max_pages: MAX_PAGES,
            conditional: Revalidate::EachPage,
            // Issues come by `since`, ascending: each next page is asked for from the last
            // one's newest update, so an issue updated mid-read cannot shift others past it.
            anchor: issues.then(|| Anchor {
                param: "since".into(),
                format: TimeFormat::Rfc3339,
                template: None,
            }),
            watermark: Some("/updated_at".into()),
            // Issues go on from their watermark; full listings always start over (their
            // versions keep anything unchanged from being published again).
            ..Read::new(request, move |body, span, text| {
                let (id, version) = item::identity(resource, text)?;
                Ok(if !include_pull_requests && item::is_pull_request(text) {
                    Kept::Dropped("pullRequestsSkipped")
                } else {
                    Kept::Item(Record::new(body, span, &id, version))
                })
            })
        }
    }
}

/// The streams a config reads: each repository × resource, then the organisation's alerts.
fn streams(config: &GithubConfig, http: &HttpClient) -> Result<Streams<Target>, CreateError> {
    let options = config.resources.resolved();
    let alert_state = options.dependabot_alerts.as_ref().and_then(|d| {
        fields::known_values("state", d.state.as_deref(), &ALERT_STATES)
            .ok()
            .flatten()
    });
    let mut streams = Streams::default();
    let mut add = |name: String, resource, place: &str, path: String, extra: &[(&str, &str)]| {
        let mut url = http
            .url(&path)
            .map_err(|e| CreateError(format!("{path}: {e}")))?;
        url.query_pairs_mut()
            .append_pair("sort", "updated")
            .append_pair("direction", "asc")
            .append_pair("per_page", &config.per_page.to_string())
            .extend_pairs(extra);
        let (kind, ascending) = match resource {
            Resource::Issues => ("issue", true),
            Resource::SecurityAdvisories => ("security_advisory", false),
            Resource::DependabotAlerts => ("dependabot_alert", false),
        };
        let spec = StreamSpec::named(name, kind, false);
        let target = Target {
            resource,
            place: place.to_owned(),
            request: Request::get(url).with_header("x-github-api-version", "2022-11-28"),
            include_pull_requests: resource == Resource::Issues
                && options
                    .issues
                    .as_ref()
                    .is_some_and(|i| i.include_pull_requests),
        };
        streams.push(if ascending { spec.ascending() } else { spec }, target);
        Ok::<_, CreateError>(())
    };
    let alerts: Vec<(&str, &str)> = alert_state.iter().map(|s| ("state", s.as_str())).collect();
    for repo in &config.repositories {
        if let Some(issues) = &options.issues {
            let state = match issues.state {
                IssueState::All => "all",
                IssueState::Open => "open",
                IssueState::Closed => "closed",
            };
            let mut extra = vec![("state", state)];
            extra.extend(issues.labels.iter().map(|l| ("labels", l.as_str())));
            let path = format!("/repos/{repo}/issues");
            add(
                format!("{repo}/issues"),
                Resource::Issues,
                repo,
                path,
                &extra,
            )?;
        }
        if options.security_advisories.is_some() {
            let path = format!("/repos/{repo}/security-advisories");
            let name = format!("{repo}/security-advisories");
            add(name, Resource::SecurityAdvisories, repo, path, &[])?;
        }
        if options.dependabot_alerts.is_some() {
            let path = format!("/repos/{repo}/dependabot/alerts");
            let name = format!("{repo}/dependabot-alerts");
            add(name, Resource::DependabotAlerts, repo, path, &alerts)?;
        }
    }
    if let Some(org) = &config.organization {
        let path = format!("/orgs/{org}/dependabot/alerts");
        let (name, place) = (format!("org:{org}/dependabot-alerts"), format!("org:{org}"));
        add(name, Resource::DependabotAlerts, &place, path, &alerts)?;
    }
    Ok(streams)
}

impl Provider for GithubProvider {
    const TYPE: &'static str = "GITHUB";
    type Config = GithubConfig;

    fn check(config: &GithubConfig) -> Vec<FieldError> {
        config.problems()
    }

    fn new(config: GithubConfig, common: &ConnectorContext) -> Result<Self, CreateError> {
        // GitHub counts per token: connectors sharing one share its waits. The key holds a
        // hash of the token, never the token.
        let key = format!(
            "github:{}:{}",
            config.base_url.origin().ascii_serialization(),
            connector_core::detect::content_version(config.token.expose())
        );
        let http = HttpClient::builder(config.base_url.clone())
            .accept("application/vnd.github+json")
            .auth(Auth::bearer(&config.token))
            .connector_settings(common)
            .rate_limit_key(key)
            .rate_limit_phrases(&["secondary rate limit", "abuse detection"])
            .build()?;
        Ok(Self {
            streams: streams(&config, &http)?,
            http,
            overlap_ms: i64::from(config.overlap_seconds) * 1000,
            label_severity: config.label_severity,
        })
    }

    fn source(&self) -> &str {
        "github"
    }

    fn streams(&self) -> &[StreamSpec] {
        self.streams.specs()
    }

    fn pages<'a>(&'a self, stream: &'a StreamSpec, cursor: &'a Cursor) -> Pages<'a, Record> {
        match self.streams.target(stream) {
            Ok(target) => source::read(&self.http, self.read(target, cursor), cursor),
            Err(e) => single_page(async { Err(FetchError::refused(self.http.base(), e)) }),
        }
    }

    fn describe<'a>(
        &'a self,
        stream: &StreamSpec,
        record: &'a Record,
    ) -> Result<Description<'a>, ItemError> {
        let target = self.streams.target(stream)?;
        item::describe(target.resource, &target.place, &self.label_severity, record)
    }

    fn gauges(&self) -> Vec<(&'static str, f64)> {
        self.http
            .rate_limit_remaining()
            .map(|left| vec![("rate_limit_remaining", left as f64)])
            .unwrap_or_default()
    }
}

/// The connector types this crate's binary runs.
pub fn factories() -> Factories {
    let mut factories = Factories::new();
    factories.register::<GithubProvider>();
    factories
}
