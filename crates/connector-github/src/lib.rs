#![doc = include_str!("../README.md")]

pub mod item;

use std::collections::BTreeMap;

use connector_core::config::fields;
use connector_core::config::{FieldError, PathSegment, Secret};
use connector_core::http::{Auth, HttpClient, Request};
use connector_core::pipeline::{CreateError, FetchError, StreamSpec, Streams};
use connector_core::source::time::TimeFormat;
use connector_core::source::{Anchor, Kept, Paging, Read, Revalidate, Since};
use connector_core::{
    ConnectorContext, Cursor, Description, Factories, ItemError, Provider, Record, Severity,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

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
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ResourceOptions {
    /// Issues, read incrementally by `since`.
    pub issues: Option<IssueOptions>,
    /// Repository security advisories (no options).
    pub security_advisories: Option<NoOptions>,
    /// Dependabot alerts.
    pub dependabot_alerts: Option<DependabotOptions>,
}

/// A resource without options: `{}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// Options of the `issues` resource.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct IssueOptions {
    /// `all` (default: closing an issue is then seen as an update), `open` or `closed`.
    pub state: IssueState,
    /// Only issues with all of these labels (comma list, as GitHub takes it).
    pub labels: Option<String>,
    /// Publish pull requests too (kind `pull_request`); by default they are skipped.
    pub include_pull_requests: bool,
}

/// Issue states GitHub filters on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IssueState {
    /// Open and closed.
    #[default]
    All,
    /// Open only.
    Open,
    /// Closed only.
    Closed,
}

impl IssueState {
    /// The value GitHub's `state` takes.
    fn as_str(self) -> &'static str {
        match self {
            IssueState::All => "all",
            IssueState::Open => "open",
            IssueState::Closed => "closed",
        }
    }
}

/// Options of the `dependabotAlerts` resource.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DependabotOptions {
    /// Comma list of `auto_dismissed`, `dismissed`, `fixed`, `open`; all by default, so
    /// a fix or a dismissal is published as an update.
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
    #[serde(default = "fields::default_u32::<100>")]
    #[schemars(range(min = 1, max = 100))]
    pub per_page: u32,
    /// How far before the watermark each issues read asks again (`since` is to the
    /// second, and an update can land while a read runs), in seconds.
    #[serde(default = "fields::default_u32::<60>")]
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

/// What one stream reads.
struct Target {
    resource: ResourceName,
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

/// The streams a config reads: each repository × resource, then the organisation's alerts.
fn streams(config: &GithubConfig, http: &HttpClient) -> Result<Streams<Target>, CreateError> {
    let options = config.resources.resolved();
    let alert_state = options.dependabot_alerts.as_ref().and_then(|d| {
        let state = fields::known_values("state", d.state.as_deref(), &ALERT_STATES);
        state.ok().flatten()
    });
    let alerts: Vec<(&str, &str)> = alert_state.iter().map(|s| ("state", s.as_str())).collect();
    let mut each_repo = Vec::new();
    if let Some(issues) = &options.issues {
        let mut query = vec![("state", issues.state.as_str())];
        query.extend(issues.labels.iter().map(|l| ("labels", l.as_str())));
        each_repo.push((ResourceName::Issues, query));
    }
    if options.security_advisories.is_some() {
        each_repo.push((ResourceName::SecurityAdvisories, vec![]));
    }
    if options.dependabot_alerts.is_some() {
        each_repo.push((ResourceName::DependabotAlerts, alerts.clone()));
    }
    let org_alerts = [(ResourceName::DependabotAlerts, alerts)];
    let org = config.organization.iter();
    let places = (config.repositories.iter())
        .map(|r| (r.clone(), format!("/repos/{r}"), &each_repo[..]))
        .chain(org.map(|o| (format!("org:{o}"), format!("/orgs/{o}"), &org_alerts[..])));
    let pull_requests = options
        .issues
        .as_ref()
        .is_some_and(|i| i.include_pull_requests);
    let mut streams = Streams::default();
    for (place, root, wanted) in places {
        for (resource, query) in wanted {
            let (kind, name, endpoint) = resource.api();
            let path = format!("{root}/{endpoint}");
            let mut url = http
                .url(&path)
                .map_err(|e| CreateError(format!("{path}: {e}")))?;
            url.query_pairs_mut()
                .append_pair("sort", "updated")
                .append_pair("direction", "asc")
                .append_pair("per_page", &config.per_page.to_string())
                .extend_pairs(query);
            let issues = *resource == ResourceName::Issues;
            let spec = StreamSpec::named(format!("{place}/{name}"), kind, false);
            let target = Target {
                resource: *resource,
                place: place.clone(),
                request: Request::get(url).with_header("x-github-api-version", "2022-11-28"),
                include_pull_requests: issues && pull_requests,
            };
            streams.push(if issues { spec.ascending() } else { spec }, target);
        }
    }
    Ok(streams)
}

impl Provider for GithubProvider {
    const TYPE: &'static str = "GITHUB";
    type Config = GithubConfig;

    /// Every mistake, with the field it is in.
    fn check(config: &GithubConfig) -> Vec<FieldError> {
        let mut out: Vec<FieldError> = fields::base_url("baseUrl", &config.base_url)
            .into_iter()
            .collect();
        for (i, _) in (config.repositories.iter().enumerate()).filter(|(_, r)| !is_repository(r)) {
            let at = vec![
                PathSegment::Key("repositories".into()),
                PathSegment::Index(i),
            ];
            out.push(FieldError::at(
                at,
                "expected owner/name, e.g. octocat/hello-world",
            ));
        }
        let org = config.organization.as_deref();
        let state = (config.resources.resolved().dependabot_alerts).and_then(|d| d.state);
        let state = fields::known_values("state", state.as_deref(), &ALERT_STATES).err();
        out.extend(
            [
                fields::error_if(
                    config.repositories.is_empty() && org.is_none(),
                    &["repositories"],
                    "list at least one repository (owner/name), or set organization",
                ),
                fields::error_if(
                    org.is_some_and(|o| !is_repository(&format!("{o}/x"))),
                    &["organization"],
                    "expected an organisation login, e.g. my-org",
                ),
                state.map(|e| {
                    FieldError::new(&["resources", "dependabotAlerts", "state"], e.message)
                }),
            ]
            .into_iter()
            .flatten(),
        );
        out
    }

    fn new(config: GithubConfig, common: &ConnectorContext) -> Result<Self, CreateError> {
        // GitHub counts per token: connectors sharing one share its waits.
        let http = HttpClient::builder(config.base_url.clone())
            .accept("application/vnd.github+json")
            .auth(Auth::bearer(&config.token))
            .connector_settings(common)
            .rate_limit_per_credential("github", &config.token, None)
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

    fn read<'a>(
        &'a self,
        stream: &'a StreamSpec,
        _: &'a Cursor,
    ) -> Result<(&'a HttpClient, Read<'a, Record>), FetchError> {
        let target = self.streams.target(stream)?;
        let (resource, include_pull_requests) = (target.resource, target.include_pull_requests);
        let issues = resource == ResourceName::Issues;
        let read = Read {
            paging: Paging::link_header().stop_on_empty(false),
            conditional: Revalidate::EachPage,
            // `since` is to the second, and an update can land while a read runs.
            since: issues.then(|| Since::new("since", TimeFormat::Rfc3339, self.overlap_ms)),
            // Issues come by `since`, ascending: each next page is asked for from the last
            // one's newest update, so an issue updated mid-read cannot shift others past it.
            anchor: issues.then(|| Anchor::new("since", TimeFormat::Rfc3339)),
            watermark: Some("/updated_at".into()),
            // Issues go on from their watermark; full listings always start over (their
            // versions keep anything unchanged from being published again).
            ..Read::new(target.request.clone(), move |body, span, text| {
                let (id, version) = item::identity(resource, text)?;
                Ok(if !include_pull_requests && item::is_pull_request(text) {
                    Kept::Dropped("pullRequestsSkipped")
                } else {
                    Kept::Item(Record::new(body, span, &id, version))
                })
            })
        };
        Ok((&self.http, read))
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
    Factories::of::<GithubProvider>()
}
