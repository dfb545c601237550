#![doc = include_str!("../README.md")]

pub mod jql;
pub mod search;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Mutex;

use connector_core::config::fields;
use connector_core::config::{FieldError, Secret};
use connector_core::http::{Auth, HttpClient};
use connector_core::pipeline::{CreateError, FetchError, PageEvent, Pages, StreamSpec};
use connector_core::source::{self, time};
use connector_core::{
    ConnectorContext, Cursor, Description, Factories, ItemError, Provider, Record, Severity,
};
use futures_util::{StreamExt, TryStreamExt, stream};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::search::Search;

/// Which Jira answers: the product decides the search endpoint and its paging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Deployment {
    /// Jira Cloud (`*.atlassian.net`): `/rest/api/3/search/jql`, page tokens.
    #[default]
    Cloud,
    /// Jira Data Center or Server: `/rest/api/2/search`, `startAt` offsets.
    DataCenter,
}

/// `providerConfig` of a `JIRA` connector.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JiraConfig {
    /// The site, e.g. `https://your-domain.atlassian.net` (a Data Center context path such
    /// as `https://host/jira` is kept).
    pub base_url: Url,
    /// `cloud` (default) or `dataCenter`.
    #[serde(default)]
    pub deployment: Deployment,
    /// The account's e-mail, with `apiToken` (Jira Cloud, HTTP Basic).
    #[serde(default)]
    pub email: Option<String>,
    /// An API token of the `email` account (Jira Cloud).
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// A personal access token (Jira Data Center, sent as Bearer) instead of e-mail and
    /// API token.
    #[serde(default)]
    pub personal_access_token: Option<Secret>,
    /// Which issues: any bounded JQL, e.g. `project = OPS`. An `ORDER BY` is replaced by
    /// `ORDER BY updated ASC`, which the incremental sync needs.
    #[schemars(length(min = 1), extend("format" = "non-blank", "x-expected" = "a JQL query such as project = OPS"))]
    pub jql: String,
    /// Issue fields to fetch; `updated`, `summary` and `priority` are always added.
    #[serde(default = "default_fields")]
    pub fields: Vec<String>,
    /// Issues per page (Jira may send fewer when many fields are asked for).
    #[serde(default = "fields::default_u32::<100>")]
    #[schemars(range(min = 1, max = 5000))]
    pub max_results: u32,
    /// How far before the watermark each poll asks again, in seconds. JQL dates have
    /// minute precision and search is eventually consistent, so keep a few minutes.
    #[serde(default = "fields::default_u32::<180>")]
    #[schemars(range(min = 60, max = 86_400), extend("x-unit" = "seconds"))]
    pub overlap_seconds: u32,
    /// Priority name to severity (`critical`, `high`, `medium`, `low`, `info`), over the
    /// defaults: Highest/Blocker critical, High/Critical high, Medium/Major medium,
    /// Low/Minor low, anything else info.
    #[serde(default)]
    pub severity_map: BTreeMap<String, Severity>,
    /// The time zone JQL dates are read in (IANA name). By default the searching user's,
    /// from `/myself`; set it only if that answer is wrong.
    #[serde(default)]
    pub time_zone: Option<String>,
}

fn default_fields() -> Vec<String> {
    [
        "summary",
        "status",
        "updated",
        "created",
        "issuetype",
        "priority",
        "assignee",
        "reporter",
        "labels",
        "project",
    ]
    .map(String::from)
    .to_vec()
}

impl JiraConfig {
    /// The fields asked for, with those the signal needs.
    fn fields(&self) -> Vec<String> {
        let mut fields = self.fields.clone();
        let all = fields.iter().any(|f| f == "*all" || f == "*navigable");
        for needed in ["summary", "updated", "priority"] {
            if !all && !fields.iter().any(|f| f == needed) {
                fields.push(needed.to_owned());
            }
        }
        fields
    }
}

/// The `JIRA` provider: the issues a JQL query matches, as one incremental stream.
pub struct JiraProvider {
    http: HttpClient,
    search: Search,
    /// The user's JQL without its `ORDER BY`.
    clause: String,
    overlap_ms: i64,
    severity_map: BTreeMap<String, Severity>,
    time_zone: Option<String>,
    streams: [StreamSpec; 1],
    /// The zone JQL dates are read in, once `/myself` answered (or the configured one).
    zone: Mutex<Option<String>>,
}

impl JiraProvider {
    /// The zone the JQL's dates are read in. Asking `/myself` also checks the credentials,
    /// which search cannot do (a bad token may get 200 and no issues from it): before the
    /// first poll, and again when `recheck`. Never at start-up, so a Jira outage does not
    /// crash-loop the process.
    async fn zone(&self, recheck: bool) -> Result<String, FetchError> {
        let known = self.zone.lock().ok().and_then(|z| z.clone());
        if let (Some(zone), false) = (&known, recheck) {
            return Ok(zone.clone());
        }
        let version = match self.search.deployment {
            Deployment::Cloud => 3,
            Deployment::DataCenter => 2,
        };
        let url = self
            .http
            .url(&format!("/rest/api/{version}/myself"))
            .map_err(|e| FetchError::refused(self.http.base(), e))?;
        let response = self.http.get(&url).await?;
        let me: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&response.body)
            .map_err(|e| FetchError::malformed(&url, format!("not a Jira user: {e}")))?;
        let zone = match (&self.time_zone, me.get("timeZone").and_then(|z| z.as_str())) {
            (Some(configured), _) => configured.clone(),
            (None, Some(theirs)) => theirs.to_owned(),
            (None, None) => "UTC".to_owned(),
        };
        time::zone(&zone).map_err(|e| {
            FetchError::refused(
                &url,
                format!("{e}; set timeZone to the searching user's zone"),
            )
        })?;
        if let Ok(mut slot) = self.zone.lock() {
            *slot = Some(zone.clone());
        }
        Ok(zone)
    }

    fn severity(&self, priority: Option<&str>) -> Severity {
        const DEFAULTS: [(&str, Severity); 8] = [
            ("highest", Severity::Critical),
            ("blocker", Severity::Critical),
            ("high", Severity::High),
            ("critical", Severity::High),
            ("medium", Severity::Medium),
            ("major", Severity::Medium),
            ("low", Severity::Low),
            ("minor", Severity::Low),
        ];
        priority
            .and_then(|name| {
                Severity::mapped(name, &self.severity_map)
                    .or_else(|| Severity::named(name, &DEFAULTS))
            })
            .unwrap_or(Severity::Info)
    }
}

impl Provider for JiraProvider {
    const TYPE: &'static str = "JIRA";
    type Config = JiraConfig;

    /// Every mistake, with the field it is in.
    fn check(config: &JiraConfig) -> Vec<FieldError> {
        let mut out: Vec<FieldError> = fields::base_url("baseUrl", &config.base_url)
            .into_iter()
            .collect();
        match (&config.email, &config.api_token, &config.personal_access_token) {
            (Some(_), Some(_), None) | (None, None, Some(_)) => {}
            (_, _, Some(_)) => out.push(FieldError::new(
                &["personalAccessToken"],
                "use either personalAccessToken or email with apiToken, not both",
            )),
            (None, Some(_), None) => out.push(FieldError::new(
                &["email"],
                "apiToken needs the e-mail of its account in email",
            )),
            (Some(_), None, None) => out.push(FieldError::new(
                &["apiToken"],
                "email needs the account's API token in apiToken (e.g. \"${JIRA_API_TOKEN}\")",
            )),
            (None, None, None) => out.push(FieldError::new(
                &[],
                "credentials are missing: set email and apiToken (Jira Cloud) or personalAccessToken (Data Center)",
            )),
        }
        let zone = config.time_zone.as_deref().map(time::zone);
        out.extend([
            fields::header_text("email", config.email.as_deref()),
            zone.and_then(Result::err).map(|e| FieldError::new(&["timeZone"], e)),
            fields::error_if(
                jql::split_order_by(&config.jql).0.is_empty(),
                &["jql"],
                "needs a clause that bounds the search, e.g. project = OPS (Jira rejects an ORDER BY alone)",
            ),
        ].into_iter().flatten());
        out
    }

    fn new(config: JiraConfig, common: &ConnectorContext) -> Result<Self, CreateError> {
        let auth = match (
            &config.email,
            &config.api_token,
            &config.personal_access_token,
        ) {
            (_, _, Some(pat)) => Auth::bearer(pat),
            (Some(email), Some(token), None) => Auth::basic(email.clone(), token),
            _ => return Err(CreateError("no Jira credentials".into())),
        };
        let http = HttpClient::builder(config.base_url.clone())
            .auth(auth)
            .connector_settings(common)
            .build()?;
        let (clause, order) = jql::split_order_by(&config.jql);
        if let Some(order) = order.filter(|o| !jql::is_updated_ascending(o)) {
            tracing::warn!(
                connector = %common.config().name,
                %order,
                "the JQL's own order is replaced by ORDER BY updated ASC: the incremental sync saves its position page by page, which needs that order"
            );
        }
        Ok(Self {
            http,
            search: Search {
                deployment: config.deployment,
                fields: config.fields(),
                max_results: config.max_results,
            },
            clause: clause.to_owned(),
            overlap_ms: i64::from(config.overlap_seconds) * 1000,
            severity_map: config.severity_map,
            time_zone: config.time_zone,
            streams: [StreamSpec::main("issue", false).ascending()],
            zone: Mutex::new(None),
        })
    }

    fn source(&self) -> &str {
        "jira"
    }

    fn streams(&self) -> &[StreamSpec] {
        &self.streams
    }

    fn pages<'a>(&'a self, _stream: &'a StreamSpec, cursor: &'a Cursor) -> Pages<'a, Record> {
        let start = async move {
            let zone = self.zone(false).await?;
            // The core's bound (the watermark less the overlap), written inside the JQL.
            let now = self.http.context().clock().now_ms();
            let since = jql::since(&zone, self.overlap_ms);
            let base = self.http.base();
            let bound = (since.value(cursor.watermark.as_deref(), now))
                .map_err(|e| FetchError::refused(base, e))?;
            let jql = jql::query(&self.clause, bound.as_deref());
            let anchor = source::Anchor {
                template: Some(jql::anchored(&self.clause)),
                ..source::Anchor::new("jql", jql::time_format(&zone))
            };
            let read = search::read(base, &self.search, jql, Some(anchor))
                .map_err(|e| FetchError::refused(base, e))?;
            Ok::<_, FetchError>(source::read(&self.http, read, cursor))
        };
        let mut first = true;
        stream::once(start)
            .try_flatten()
            .then(move |event| {
                let first_page = std::mem::take(&mut first);
                async move {
                    match event {
                        // Nothing matched: make sure that is not a refused token in disguise.
                        Ok(PageEvent::Page(page))
                            if first_page && page.items.is_empty() && page.failed == 0 =>
                        {
                            self.zone(true).await?;
                            Ok(PageEvent::Page(page))
                        }
                        other => other,
                    }
                }
            })
            .boxed()
    }

    /// What Jira's refusals mean for the operator; credentials are never part of it.
    fn refusal(&self, status: u16, _detail: &str) -> Option<String> {
        let message = match status {
            401 => {
                "Jira refused the credentials (HTTP 401): check email and apiToken (Jira Cloud) or personalAccessToken (Data Center)"
            }
            403 => {
                "Jira denied access (HTTP 403): check the credentials and that the account may browse the projects the JQL names"
            }
            410 => {
                "this Jira has removed the search endpoint (HTTP 410, Atlassian CHANGE-2046): Jira Cloud is searched through /rest/api/3/search/jql, so set deployment to cloud"
            }
            _ => return None,
        };
        Some(message.to_owned())
    }

    fn describe<'a>(
        &'a self,
        _: &StreamSpec,
        record: &'a Record,
    ) -> Result<Description<'a>, ItemError> {
        let key = record.text("/key").unwrap_or_default();
        let base = self.http.base().as_str().trim_end_matches('/');
        let summary = record.text("/fields/summary").unwrap_or_default();
        let severity = self.severity(record.text("/fields/priority/name").as_deref());
        let url = Cow::Owned(format!("{base}/browse/{key}"));
        let described = Description::new("issue", format!("{key}: {summary}"), severity);
        Ok(described.at(record.text("/fields/updated")).link(Some(url)))
    }
}

/// The connector types this crate's binary runs.
pub fn factories() -> Factories {
    Factories::of::<JiraProvider>()
}
