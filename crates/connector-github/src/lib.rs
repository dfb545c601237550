#![doc = include_str!("../README.md")]

pub mod item;

use std::borrow::Cow;
use std::collections::BTreeMap;

use connector_core::config::fields;
use connector_core::config::{FieldError, PathSegment, Secret};
use connector_core::http::{Auth, HttpClient, Request};
use connector_core::pipeline::{CreateError, FetchError, Pages, StreamSpec, single_page};
use connector_core::source::time::{TimeFormat, format_millis, parse_millis, read_from};
use connector_core::source::{self, Anchor, Kept, Paging, Read, Revalidate};
use connector_core::{
    ConnectorContext, Cursor, Description, Factories, ItemError, Provider, Record, Severity,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::item::{Item, Resource};

/// Which resources to read: a list of names, or names with their options.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Resources {
    /// `["issues", "securityAdvisories", "dependabotAlerts"]`, each with its defaults.
    Names(Vec<ResourceName>),
    /// `{"issues": {"labels": "bug"}, "dependabotAlerts": {}}`.
    Options(ResourceOptions),
}

impl Default for Resources {
    fn default() -> Self {
        Self::Names(vec![ResourceName::Issues])
    }
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

impl Default for IssueOptions {
    fn default() -> Self {
        Self {
            state: default_state(),
            labels: None,
            include_pull_requests: false,
        }
    }
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
    #[serde(default)]
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
    /// What to read of each repository, with options.
    pub fn resolved(&self) -> ResourceOptions {
        match &self.resources {
            Resources::Options(o) => o.clone(),
            Resources::Names(names) => ResourceOptions {
                issues: names
                    .contains(&ResourceName::Issues)
                    .then(IssueOptions::default),
                security_advisories: names
                    .contains(&ResourceName::SecurityAdvisories)
                    .then(NoOptions::default),
                dependabot_alerts: names
                    .contains(&ResourceName::DependabotAlerts)
                    .then(DependabotOptions::default),
            },
        }
    }

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
        let state = self.resolved().dependabot_alerts.and_then(|d| d.state);
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
    path: String,
    query: Vec<(&'static str, String)>,
    include_pull_requests: bool,
}

/// The `GITHUB` provider: each repository × resource is a stream of its own.
pub struct GithubProvider {
    http: HttpClient,
    streams: Vec<StreamSpec>,
    targets: Vec<Target>,
    overlap_ms: i64,
    label_severity: BTreeMap<String, Severity>,
}

/// Most pages one read follows; an issues read goes on from its watermark next poll.
const MAX_PAGES: u64 = 1000;

impl GithubProvider {
    /// The target a stream reads.
    fn target(&self, stream: &StreamSpec) -> Option<&Target> {
        self.streams
            .iter()
            .position(|s| s.name == stream.name)
            .and_then(|i| self.targets.get(i))
    }

    fn read(&self, target: &Target, cursor: &Cursor) -> Result<Read<'_, Record>, FetchError> {
        let mut url = self
            .http
            .url(&target.path)
            .map_err(|e| FetchError::refused(self.http.base(), e))?;
        url.query_pairs_mut().extend_pairs(&target.query);
        let issues = target.resource == Resource::Issues;
        if issues {
            let watermark = cursor.watermark.as_deref().and_then(parse_millis);
            if let Some(since) = read_from(watermark, self.overlap_ms, None)
                .and_then(|ms| format_millis(ms.div_euclid(1000) * 1000, &TimeFormat::Rfc3339).ok())
            {
                url.query_pairs_mut().append_pair("since", &since);
            }
        }
        let request = Request::get(url).with_header("x-github-api-version", "2022-11-28");
        let (resource, place) = (target.resource, target.place.clone());
        let labels = &self.label_severity;
        let include_pull_requests = target.include_pull_requests;
        Ok(Read {
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
                let item = Item::of_text(resource, &place, labels, text)?;
                Ok(if item.is_pull_request && !include_pull_requests {
                    Kept::Dropped("pullRequestsSkipped")
                } else {
                    Kept::Item(Record::new(body, span, &item.id, item.version))
                })
            })
        })
    }
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
        let options = config.resolved();
        let per_page = config.per_page.to_string();
        let mut streams = Vec::new();
        let mut targets = Vec::new();
        let mut add = |name: String, kind: &str, ascending: bool, target: Target| {
            let spec = StreamSpec::named(name, kind, false);
            streams.push(if ascending { spec.ascending() } else { spec });
            targets.push(target);
        };
        let listing = |extra: Vec<(&'static str, String)>| {
            let mut q = vec![
                ("sort", "updated".to_owned()),
                ("direction", "asc".to_owned()),
                ("per_page", per_page.clone()),
            ];
            q.extend(extra);
            q
        };
        let alert_state = options.dependabot_alerts.as_ref().and_then(|d| {
            fields::known_values("state", d.state.as_deref(), &ALERT_STATES)
                .ok()
                .flatten()
        });
        let alert_query = || listing(alert_state.iter().map(|s| ("state", s.clone())).collect());
        for repo in &config.repositories {
            if let Some(issues) = &options.issues {
                let state = serde_json::to_value(issues.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "all".into());
                let mut extra = vec![("state", state)];
                extra.extend(issues.labels.iter().map(|l| ("labels", l.clone())));
                add(
                    format!("{repo}/issues"),
                    "issue",
                    true,
                    Target {
                        resource: Resource::Issues,
                        place: repo.clone(),
                        path: format!("/repos/{repo}/issues"),
                        query: listing(extra),
                        include_pull_requests: issues.include_pull_requests,
                    },
                );
            }
            if options.security_advisories.is_some() {
                add(
                    format!("{repo}/security-advisories"),
                    "security_advisory",
                    false,
                    Target {
                        resource: Resource::SecurityAdvisories,
                        place: repo.clone(),
                        path: format!("/repos/{repo}/security-advisories"),
                        query: listing(Vec::new()),
                        include_pull_requests: false,
                    },
                );
            }
            if options.dependabot_alerts.is_some() {
                add(
                    format!("{repo}/dependabot-alerts"),
                    "dependabot_alert",
                    false,
                    Target {
                        resource: Resource::DependabotAlerts,
                        place: repo.clone(),
                        path: format!("/repos/{repo}/dependabot/alerts"),
                        query: alert_query(),
                        include_pull_requests: false,
                    },
                );
            }
        }
        if let Some(org) = &config.organization {
            add(
                format!("org:{org}/dependabot-alerts"),
                "dependabot_alert",
                false,
                Target {
                    resource: Resource::DependabotAlerts,
                    place: format!("org:{org}"),
                    path: format!("/orgs/{org}/dependabot/alerts"),
                    query: alert_query(),
                    include_pull_requests: false,
                },
            );
        }
        Ok(Self {
            http,
            streams,
            targets,
            overlap_ms: i64::from(config.overlap_seconds) * 1000,
            label_severity: config.label_severity,
        })
    }

    fn source(&self) -> &str {
        "github"
    }

    fn streams(&self) -> &[StreamSpec] {
        &self.streams
    }

    fn pages<'a>(&'a self, stream: &'a StreamSpec, cursor: &'a Cursor) -> Pages<'a, Record> {
        let target = self.target(stream);
        let read = match target.map(|t| self.read(t, cursor)) {
            Some(Ok(read)) => read,
            Some(Err(e)) => return single_page(async { Err(e) }),
            None => {
                let e = FetchError::refused(self.http.base(), format!("no stream {}", stream.name));
                return single_page(async { Err(e) });
            }
        };
        source::read(&self.http, read, cursor)
    }

    fn describe<'a>(
        &'a self,
        stream: &StreamSpec,
        record: &'a Record,
    ) -> Result<Description<'a>, ItemError> {
        let target = self
            .target(stream)
            .ok_or_else(|| ItemError::new(format!("no stream {}", stream.name)))?;
        let item = Item::of_text(
            target.resource,
            &target.place,
            &self.label_severity,
            record.raw(),
        )?;
        Ok(Description {
            kind: Cow::Borrowed(item.kind),
            title: Cow::Owned(item.title),
            severity: item.severity,
            occurred_at: Some(item.updated),
            url: item.url,
        })
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
