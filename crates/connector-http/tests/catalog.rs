//! The catalog: every entry against a mock serving its API's documented responses, through
//! the contract harness and a restart between pages; each shipped version's identity
//! frozen; every file listed; the catalog page current.
//!
//! A case (`tests/catalog/VENDOR/STREAM.json`) says what the mock serves (pages matched by
//! path, query and body, each only with the entry's credentials), how many records the
//! pages hold, the edit that changes one record and, for snapshots, the one that removes
//! one. `{{server}}` in a case is the mock's URL. Where the responses come from is in
//! `tests/catalog/SOURCES.md`.

use std::collections::BTreeMap;
use std::sync::Arc;

use connector_core::ConnectorConfig;
use connector_core::embedded::EmbeddedBackend;
use connector_core::spec::catalog::{Entry, placeholders};
use connector_core::testing::{Harness, Scenario, run_contract};
use connector_http::HttpJsonProvider;
use connector_http::catalog::{FILES, catalog};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// The entry's parameters (`{{server}}` for a base URL).
    with: Map<String, Value>,
    /// Request headers the API requires: the credentials, checked on every API request.
    auth: BTreeMap<String, String>,
    /// The token endpoint of an OAuth2 or JWT-bearer entry.
    #[serde(default)]
    token: Option<TokenCase>,
    /// An AWS entry's credentials: the mock recomputes each request's signature.
    #[serde(default)]
    sigv4: Option<SigV4Case>,
    /// The pages, in order.
    pages: Vec<PageCase>,
    /// Records the pages hold (after `skip`).
    records: usize,
    /// Edits that change one record in a way its version reflects.
    change: Vec<Edit>,
    /// For a snapshot: the edit that removes one record.
    #[serde(default)]
    remove: Option<Edit>,
    /// Other providerConfig keys (a merge patch), e.g. a page size the recorded pages hold.
    #[serde(default, rename = "override")]
    overrides: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenCase {
    path: String,
    /// Form fields the token request must carry.
    form: BTreeMap<String, String>,
    /// For the JWT-bearer grant: the public key (under `tests/fixtures`) the assertion's
    /// RS256 signature must verify with.
    #[serde(default, rename = "jwtPublicKey")]
    jwt_public_key: Option<String>,
    response: Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SigV4Case {
    access_key_id: String,
    secret_access_key: String,
    #[serde(default)]
    session_token: Option<String>,
    region: String,
    service: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageCase {
    #[serde(default = "get")]
    method: String,
    path: String,
    /// Query parameters the request must carry.
    #[serde(default)]
    query: BTreeMap<String, String>,
    /// Query parameters it must not carry (the first page of a cursor read).
    #[serde(default)]
    without: Vec<String>,
    /// Body pointers and the values the request body must hold there (`null`: absent).
    #[serde(default)]
    body: BTreeMap<String, Value>,
    /// Response headers.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Which of several matching pages answers: the lowest number (wiremock's; default 5).
    /// A page that answers a re-anchored request (`since` set to a time) comes before the
    /// page that answers any other.
    #[serde(default = "five")]
    priority: u8,
    /// The body, or `responseFile`: a recorded one under `tests/fixtures`.
    #[serde(default)]
    response: Value,
    #[serde(default, rename = "responseFile")]
    response_file: Option<String>,
}

fn five() -> u8 {
    5
}

fn get() -> String {
    "GET".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Edit {
    page: usize,
    pointer: String,
    #[serde(default)]
    value: Value,
}

fn case_path(entry: &Entry) -> String {
    format!(
        "{}/tests/catalog/{}.json",
        env!("CARGO_MANIFEST_DIR"),
        entry.name
    )
}

fn load_case(entry: &Entry, server: &str) -> Case {
    let p = case_path(entry);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    let mut case: Case = serde_json::from_str(&with_fixtures(&text.replace("{{server}}", server)))
        .unwrap_or_else(|e| panic!("{p}: {e}"));
    for page in &mut case.pages {
        if let Some(file) = &page.response_file {
            let f = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{f}: {e}"));
            page.response = serde_json::from_str(&text.replace("{{server}}", server))
                .unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }
    case
}

/// `text` with each `{{fixture:PATH}}` replaced by that file's text, JSON-escaped (a
/// private key a case gives as a parameter).
fn with_fixtures(text: &str) -> String {
    let mut out = text.to_owned();
    while let Some(at) = out.find("{{fixture:") {
        let end = out[at..].find("}}").map_or(out.len(), |e| at + e);
        let name = out[at + "{{fixture:".len()..end].to_owned();
        let f = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let content = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{f}: {e}"));
        let escaped = serde_json::to_string(&content).expect("a string");
        out.replace_range(at..end + 2, &escaped[1..escaped.len() - 1]);
    }
    out
}

fn fixture_text(name: &str) -> String {
    let f = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{f}: {e}"))
}

/// Whether the token request's JWT-bearer assertion verifies with `public_key`.
fn assertion_verifies(request: &Request, public_key: &str) -> bool {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    let Some(assertion) = url::form_urlencoded::parse(&request.body)
        .find(|(k, _)| k == "assertion")
        .map(|(_, v)| v.into_owned())
    else {
        return false;
    };
    let Ok(key) = DecodingKey::from_rsa_pem(fixture_text(public_key).as_bytes()) else {
        return false;
    };
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    decode::<Value>(&assertion, &key, &validation).is_ok()
}

/// Whether a request carries the AWS Signature V4 `creds` give for what was received.
fn signature_verifies(request: &Request, creds: &SigV4Case) -> bool {
    use secrecy::SecretString;
    let signer = connector_core::auth::SigV4::new(
        creds.access_key_id.clone(),
        SecretString::from(creds.secret_access_key.clone()),
        creds.session_token.clone().map(SecretString::from),
        creds.region.clone(),
        creds.service.clone(),
    );
    connector_core::testing::aws_signature_verifies(request, &signer)
}

/// What a scenario serves.
#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Baseline,
    Changed,
    Removed,
}

struct Served<'a>(&'a Case);

impl Served<'_> {
    async fn mount(&self, server: &MockServer, variant: Variant) -> usize {
        server.reset().await;
        let case = self.0;
        let mut pages: Vec<Value> = case.pages.iter().map(|p| p.response.clone()).collect();
        let mut edits: Vec<&Edit> = Vec::new();
        if variant != Variant::Baseline {
            edits.extend(&case.change);
        }
        for e in edits {
            let target = pages[e.page]
                .pointer_mut(&e.pointer)
                .unwrap_or_else(|| panic!("change: nothing at {}", e.pointer));
            *target = e.value.clone();
        }
        if variant == Variant::Removed {
            let r = case
                .remove
                .as_ref()
                .expect("a snapshot case says what to remove");
            let (parent, last) = r.pointer.rsplit_once('/').expect("a pointer");
            match pages[r.page].pointer_mut(parent) {
                Some(Value::Array(items)) => {
                    items.remove(last.parse::<usize>().expect("an index"));
                }
                Some(Value::Object(map)) => {
                    map.remove(last);
                }
                _ => panic!("remove: nothing at {parent}"),
            }
        }
        if let Some(t) = &case.token {
            let mut m = Mock::given(method("POST")).and(path(t.path.as_str()));
            if let Some(key) = t.jwt_public_key.clone() {
                m = m.and(move |r: &Request| assertion_verifies(r, &key));
            }
            for (k, v) in t.form.clone() {
                m = m.and(move |r: &Request| {
                    url::form_urlencoded::parse(&r.body).any(|(fk, fv)| fk == k && fv == v)
                });
            }
            m.respond_with(ResponseTemplate::new(200).set_body_json(&t.response))
                .mount(server)
                .await;
        }
        for (page, response) in case.pages.iter().zip(pages) {
            mount_page(server, case, page, response).await;
        }
        case.records
    }
}

async fn mount_page(server: &MockServer, case: &Case, page: &PageCase, response: Value) {
    let mut m = Mock::given(method(page.method.as_str())).and(path(page.path.as_str()));
    for (k, v) in &case.auth {
        m = m.and(header(k.as_str(), v.as_str()));
    }
    if let Some(creds) = case.sigv4.clone() {
        m = m.and(move |r: &Request| signature_verifies(r, &creds));
    }
    for (k, v) in &page.query {
        m = m.and(query_param(k.as_str(), v.as_str()));
    }
    let without = page.without.clone();
    m = m.and(move |r: &Request| {
        !r.url
            .query_pairs()
            .any(|(k, _)| without.contains(&k.to_string()))
    });
    let body = page.body.clone();
    m = m.and(move |r: &Request| {
        let sent: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        body.iter()
            .all(|(p, want)| sent.pointer(p).unwrap_or(&Value::Null) == want)
    });
    let mut reply = ResponseTemplate::new(200).set_body_json(response);
    for (k, v) in &page.headers {
        reply = reply.insert_header(k.as_str(), v.as_str());
    }
    m.respond_with(reply)
        .with_priority(page.priority)
        .mount(server)
        .await;
}

impl Scenario for Served<'_> {
    async fn serve_baseline(&self, server: &MockServer) -> usize {
        self.mount(server, Variant::Baseline).await
    }
    async fn serve_one_changed(&self, server: &MockServer) {
        self.mount(server, Variant::Changed).await;
    }
    async fn serve_failure(&self, server: &MockServer) {
        server.reset().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(503).set_body_string("<html>unavailable</html>"))
            .mount(server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503).set_body_string("<html>unavailable</html>"))
            .mount(server)
            .await;
    }
    async fn serve_one_removed(&self, server: &MockServer) {
        self.mount(server, Variant::Removed).await;
    }
}

/// The connector a user writes for `entry` with the case's parameters.
fn config_for(entry: &Entry, case: &Case) -> ConnectorConfig {
    let mut settings = case.overrides.clone();
    settings.insert("use".into(), json!(entry.pinned()));
    settings.insert("with".into(), Value::Object(case.with.clone()));
    let mut c = ConnectorConfig::new(entry.name.replace('/', "-"), "HTTP_JSON")
        .with_provider_config(Value::Object(settings));
    c.retry_config.base_delay_ms = 10;
    c.retry_config.max_delay_ms = 50;
    c
}

/// A process stopped after its first page commits, then the next one: every record once.
async fn restart_between_pages(entry: &Entry, case: &Case, server: &MockServer) {
    let served = Served(case);
    let n = served.mount(server, Variant::Baseline).await;
    let backend = Arc::new(EmbeddedBackend::in_memory());
    let config = config_for(entry, case);
    let mut first = Harness::on::<HttpJsonProvider>(config.clone(), backend.clone(), Some(1)).await;
    let stopped = first.connector.poll(&first.lease).await;
    drop(first);
    let mut next = Harness::on::<HttpJsonProvider>(config, backend, None).await;
    let resumed = next.connector.poll(&next.lease).await;
    let mut ids: Vec<String> = next
        .published()
        .into_iter()
        .map(|e| e.external_id)
        .collect();
    let total = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        (ids.len(), total),
        (n, n),
        "{}: stopped after one page ({stopped:?}), resumed ({resumed:?}): every record once",
        entry.name
    );
}

/// Runs one entry's case: the contract, then the restart when it has several pages.
async fn check_entry(entry: &Entry) {
    let server = MockServer::start().await;
    let case = load_case(entry, &server.uri());
    run_contract::<HttpJsonProvider>(config_for(entry, &case), &server, &Served(&case)).await;
    if case.pages.len() > 1 {
        restart_between_pages(entry, &case, &server).await;
    }
}

#[tokio::test]
async fn every_entry_meets_the_contract_against_its_apis_documented_responses() {
    for entry in catalog().latest() {
        eprintln!("catalog entry {}", entry.pinned());
        check_entry(entry).await;
    }
}

#[test]
fn every_file_under_catalog_is_shipped() {
    let root = format!("{}/catalog", env!("CARGO_MANIFEST_DIR"));
    let mut on_disk = Vec::new();
    for vendor in std::fs::read_dir(&root).expect("catalog/") {
        let vendor = vendor.expect("entry").path();
        if !vendor.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&vendor).expect("vendor dir") {
            let file = file.expect("file").path();
            let rel = file.strip_prefix(&root).expect("under root");
            on_disk.push(rel.to_string_lossy().into_owned());
        }
    }
    on_disk.sort();
    let mut listed: Vec<String> = FILES.iter().map(|(f, _)| (*f).to_owned()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "src/catalog.rs lists every file under catalog/"
    );
}

#[test]
fn every_entry_is_complete() {
    let listed: Vec<String> = FILES.iter().map(|(f, _)| (*f).to_owned()).collect();
    let catalog = catalog();
    assert_eq!(catalog.entries().len(), FILES.len(), "every file parses");
    for e in catalog.entries() {
        let file = format!("{}@{}.json", e.name, e.version);
        assert!(
            listed.contains(&file),
            "{file}: the file is named NAME@VERSION.json"
        );
        let name_ok = e.name.split_once('/').is_some_and(|(v, s)| {
            [v, s].iter().all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
        });
        assert!(name_ok, "{}: lowercase vendor/stream", e.name);
        let mut used = Vec::new();
        placeholders(&e.read, &mut used);
        for u in &used {
            assert!(
                e.parameters.iter().any(|p| &p.name == u),
                "{}: {{{{param:{u}}}}} is declared",
                e.name
            );
        }
        for p in &e.parameters {
            assert!(
                used.contains(&p.name),
                "{}: parameter {} is used",
                e.name,
                p.name
            );
            assert!(
                !(p.required && p.default.is_some()),
                "{}: {} is required or has a default",
                e.name,
                p.name
            );
            if p.required && !p.secret {
                assert!(
                    p.example.is_some(),
                    "{}: required {} has an example",
                    e.name,
                    p.name
                );
            }
        }
        assert!(
            e.docs.starts_with("https://"),
            "{}: names its vendor doc",
            e.name
        );
        assert!(
            include_str!("../catalog/PAGE.md").contains(&format!("`{}`", e.name)),
            "{}: catalog/PAGE.md says what need it covers",
            e.name
        );
        assert!(
            std::path::Path::new(&case_path(e)).exists()
                || catalog.latest().iter().all(|l| l.pinned() != e.pinned()),
            "{}: has a test case",
            e.name
        );
    }
}

/// Each shipped version's identity: what says which record a published entry was, and
/// which version of it. A change here republishes everything on upgrade: make a new
/// version of the entry instead.
fn identity(e: &Entry) -> Value {
    let r = &e.read;
    let mut identity = json!({
        "source": r.pointer("/source").cloned().unwrap_or(json!("http")),
        "kind": r.pointer("/signal/kind"),
        "id": r.pointer("/records/id"),
        "version": r.pointer("/records/version"),
        "snapshot": r.pointer("/snapshot").cloned().unwrap_or(json!(false)),
    });
    // A parent/child read's partitions are keyed by the parent's id.
    if let Some(parent) = r.pointer("/parent/records/id") {
        identity["parentId"] = parent.clone();
    }
    identity
}

#[test]
fn every_shipped_version_keeps_its_identity() {
    let p = format!("{}/catalog/identities.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    let frozen: BTreeMap<String, Value> = serde_json::from_str(&text).expect("identities.json");
    let catalog = catalog();
    let now: BTreeMap<String, Value> = catalog
        .entries()
        .iter()
        .map(|e| (e.pinned(), identity(e)))
        .collect();
    for (name, was) in &frozen {
        let is = now
            .get(name)
            .unwrap_or_else(|| panic!("{name} was shipped: keep its file"));
        assert_eq!(
            is, was,
            "{name}: a shipped version's identity never changes; add {name} + 1 instead"
        );
    }
    let new: Vec<String> = now
        .iter()
        .filter(|(k, _)| !frozen.contains_key(*k))
        .map(|(k, v)| format!("  \"{k}\": {v},"))
        .collect();
    assert!(
        new.is_empty(),
        "freeze the new entries in catalog/identities.json:\n{}",
        new.join("\n")
    );
}

#[test]
fn the_catalog_page_is_current() {
    let p = format!("{}/CATALOG.md", env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(&p).unwrap_or_default();
    assert!(
        page == catalog().markdown(),
        "{p} is stale: regenerate it with `cargo run -q -p connectors -- catalog --markdown > crates/connector-http/CATALOG.md`"
    );
}
