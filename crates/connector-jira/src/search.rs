//! Jira's issue search as a read of the core's toolkit, and one issue as an item.
//!
//! Cloud: `/rest/api/3/search/jql`, paged by `nextPageToken` until a page comes without
//! one (`isLast`); the token goes back with the same JQL, fields and page size, as a query
//! parameter or, when the JQL is too long for a URL, in a POST body. Data Center:
//! `/rest/api/2/search` with `startAt` until `total`. Either way the records are
//! `/issues`, and each issue's `fields.updated` is the watermark's time.

use std::borrow::Cow;

use connector_core::http::Request;
use connector_core::source::records::{required_string, required_time, string_at};
use connector_core::source::{Paging, Read, TokenPlace};
use connector_core::{ItemError, Record};
use url::Url;

use crate::Deployment;

/// Past this many bytes of query string a GET risks a 414 at a proxy: the search is a POST.
const LONGEST_GET_QUERY: usize = 4000;

/// What a search asks, besides its JQL.
pub struct Search {
    /// Cloud or Data Center.
    pub deployment: Deployment,
    /// The fields asked for.
    pub fields: Vec<String>,
    /// Page size.
    pub max_results: u32,
}

/// An issue's id (stable when the issue moves project, unlike its key) and version
/// (`fields.updated` as Jira wrote it); one without a readable `fields.updated` fails
/// alone.
pub fn identity(text: &str) -> Result<(Cow<'_, str>, String), ItemError> {
    let json = text.as_bytes();
    let updated = required_time(json, "/fields/updated").map_err(|_| {
        ItemError::new("the issue has no fields.updated time (keep `updated` in `fields`)")
    })?;
    match string_at(json, "/key") {
        Some(_) => Ok((required_string(json, &["/id"])?, updated.into_owned())),
        None => Err(ItemError::new("the issue has no key")),
    }
}

/// The read of one poll's search for `jql`, below the API root `base`. `anchor` re-anchors
/// a Data Center (`startAt`) read page by page on the last page's newest update.
pub fn read(
    base: &Url,
    search: &Search,
    jql: String,
    anchor: Option<connector_core::source::Anchor>,
) -> Result<Read<'static, Record>, String> {
    let root = base.as_str().trim_end_matches('/');
    let fields = search.fields.join(",");
    let limit = search.max_results.to_string();
    let (request, paging) = match search.deployment {
        Deployment::DataCenter => {
            let mut url =
                Url::parse(&format!("{root}/rest/api/2/search")).map_err(|e| e.to_string())?;
            url.query_pairs_mut()
                .append_pair("jql", &jql)
                .append_pair("fields", &fields)
                .append_pair("maxResults", &limit)
                .append_pair("startAt", "0");
            let paging = Paging::offset("startAt", "maxResults", u64::from(search.max_results))
                .total_path("/total");
            (Request::get(url), paging)
        }
        Deployment::Cloud => {
            let mut url =
                Url::parse(&format!("{root}/rest/api/3/search/jql")).map_err(|e| e.to_string())?;
            let mut get = url.clone();
            get.query_pairs_mut()
                .append_pair("jql", &jql)
                .append_pair("fields", &fields)
                .append_pair("maxResults", &limit);
            if get.query().map_or(0, str::len) <= LONGEST_GET_QUERY {
                let paging = Paging::cursor("/nextPageToken", TokenPlace::Query, "nextPageToken")
                    .stop_on_empty(false)
                    .stop_path("/isLast");
                (Request::get(get), paging)
            } else {
                url.set_query(None);
                let body = serde_json::json!({
                    "jql": jql,
                    "fields": search.fields,
                    "maxResults": search.max_results,
                });
                let paging = Paging::cursor("/nextPageToken", TokenPlace::Body, "/nextPageToken")
                    .stop_on_empty(false)
                    .stop_path("/isLast");
                (Request::post(url, body), paging)
            }
        }
    };
    Ok(Read {
        paging,
        records: "/issues".into(),
        // Search answers carry no validators.
        // Offsets over a set ordered by `updated` shift when an issue is updated mid-read
        // (it jumps to the end): each page is asked for from the last one's newest time.
        anchor: anchor.filter(|_| search.deployment == Deployment::DataCenter),
        watermark: Some("/fields/updated".into()),
        // Ascending: a stopped read goes on from its watermark, saved with each page.
        // Cloud marks its last page (`/isLast`); Data Center ends at its total.
        ..Read::identified(request, identity)
    })
}
