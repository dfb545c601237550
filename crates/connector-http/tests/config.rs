//! HTTP_JSON's load errors, each with its exact message, and the OAuth2 client-credentials
//! flow against a mock token endpoint.

use connector_core::config::{ConfigSource, Environment};
use connector_core::testing::Harness;
use connector_core::{ConnectorConfig, ConnectorRegistry};
use connector_http::HttpJsonProvider;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A valid config with `edit` applied.
fn provider(edit: impl FnOnce(&mut Value)) -> Value {
    let mut pc = json!({
        "request": { "url": "https://api.example.test/items" },
        "records": { "path": "/data", "id": "/id" },
        "signal": { "kind": "item", "title": "{{/name}}" }
    });
    edit(&mut pc);
    pc
}

/// The problems `validate` reports for a config holding `pc`.
fn problems(pc: Value) -> Vec<String> {
    let file = json!({"connectors": [{"name": "h", "type": "HTTP_JSON", "providerConfig": pc}]});
    let source = ConfigSource::Text {
        name: "connectors.json".into(),
        text: serde_json::to_string_pretty(&file).expect("json"),
    };
    match ConnectorRegistry::load(
        &source,
        &Environment::default(),
        &connector_http::factories(),
    ) {
        Ok(_) => Vec::new(),
        Err(e) => {
            e.0.iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect()
        }
    }
}

#[test]
fn a_valid_config_loads() {
    assert_eq!(problems(provider(|_| {})), Vec::<String>::new());
}

#[test]
fn each_load_error_names_its_field() {
    let at = "connectors[0].providerConfig";
    let cases: Vec<(Value, String)> = vec![
        (
            provider(|p| {
                p["snapshot"] = json!(true);
                p["incremental"] = json!({"field": "/updated"});
            }),
            format!(
                "{at}.snapshot: a snapshot reads the whole set every poll; it cannot also be incremental"
            ),
        ),
        (
            provider(|p| p["request"]["query"] = json!({"since": "{{cursor}}"})),
            format!("{at}.request: {{{{cursor}}}} needs incremental, which gives it its value"),
        ),
        (
            provider(|p| p["request"]["query"] = json!({"q": "{{today}}"})),
            format!(
                "{at}.request.query.q: unknown placeholder {{{{today}}}}; a request may hold {{{{cursor}}}}, {{{{now}}}} and {{{{parent:/pointer}}}}"
            ),
        ),
        (
            provider(|p| p["records"]["id"] = json!("id")),
            format!(
                "{at}.records.id: \"id\" is not a JSON pointer (RFC 6901): use \"\" or a path such as /data/id"
            ),
        ),
        (
            provider(|p| {
                p["pagination"] =
                    json!({"type": "cursor", "path": "/next", "param": "/token", "in": "body"})
            }),
            format!("{at}.pagination.in: a token in the body needs method POST"),
        ),
        (
            provider(|p| {
                p["pagination"] = json!({"type": "offset", "param": "offset", "limit": 10})
            }),
            format!("{at}.pagination: missing required field \"limitParam\""),
        ),
        (
            provider(|p| {
                p["request"]["query"] = json!({"jql": "updated >= \"{{cursor}}\""});
                p["incremental"] = json!({"field": "/updated"});
            }),
            format!(
                "{at}.incremental.initial: {{{{cursor}}}} inside a longer value (a URL, a query clause) needs initial: on a first sync it has no value, and only a whole-value placeholder can be left out"
            ),
        ),
        (
            provider(|p| p["signal"]["title"] = json!("{{name}}")),
            format!(
                "{at}.signal.title: unknown placeholder {{{{name}}}}; a signal template may hold record pointers such as {{{{/title}}}}"
            ),
        ),
        (
            provider(|p| {
                p["request"]["url"] =
                    json!("https://api.example.test/projects/{{parent:/id}}/items")
            }),
            format!("{at}.request: {{{{parent:/pointer}}}} needs parent, whose records fill it"),
        ),
        (
            provider(|p| {
                p["request"]["url"] = json!("https://{{parent:/host}}/items");
                p["parent"] = json!({"request": {"url": "https://api.example.test/projects"},
                                     "records": {"path": "", "id": "/id"}});
            }),
            format!(
                "{at}.request.url: {{{{parent:/pointer}}}} may stand only in the path or the query, after the host: a parent record never chooses where the credentials go"
            ),
        ),
        (
            provider(|p| {
                p["request"]["url"] =
                    json!("https://api.example.test/projects/{{parent:/id}}/items");
                p["parent"] = json!({"request": {"url": "https://other.example.test/projects"},
                                     "records": {"path": "", "id": "/id", "version": "/v"}});
            }),
            format!(
                "{at}.parent.request.url: must be on request.url's origin: the credentials are sent only there"
            ),
        ),
        (
            provider(|p| {
                p["request"]["url"] =
                    json!("https://api.example.test/projects/{{parent:/id}}/items");
                p["parent"] = json!({"request": {"url": "https://api.example.test/projects"},
                                     "records": {"path": "", "id": "/id", "version": "/v"}});
            }),
            format!(
                "{at}.parent.records.version: not used: a parent's version is what the child request takes of it"
            ),
        ),
        (
            provider(|p| {
                p["request"]["url"] =
                    json!("https://api.example.test/projects/{{parent:id}}/items");
            }),
            format!(
                "{at}.request.url: {{{{parent:id}}}}: expected a JSON pointer into the parent record, such as {{{{parent:/id}}}}"
            ),
        ),
        (
            provider(|p| {
                p["parent"] = json!({"request": {"url": "https://api.example.test/projects",
                                                 "query": {"since": "{{cursor}}"}},
                                     "records": {"path": "", "id": "/id"}});
            }),
            format!(
                "{at}.request: a parent/child read needs {{{{parent:/pointer}}}} in request.url, request.query or request.body, such as /projects/{{{{parent:/id}}}}/issues"
            ),
        ),
        (
            provider(|p| {
                p["request"]["url"] =
                    json!("https://api.example.test/projects/{{parent:/id}}/items");
                p["parent"] = json!({"request": {"url": "https://api.example.test/projects",
                                                 "query": {"since": "{{cursor}}"}},
                                     "records": {"path": "", "id": "/id"}});
            }),
            format!(
                "{at}.parent.request: {{{{cursor}}}} needs incremental, which gives it its value"
            ),
        ),
    ];
    for (pc, expected) in cases {
        let got = problems(pc);
        assert!(
            got.contains(&expected),
            "expected {expected:?}\n got {got:?}"
        );
    }
}

/// A tag in the wrong case names the tag and what it may be, not a field of the branch the
/// checker would otherwise guess.
#[test]
fn a_wrong_auth_type_names_the_type_and_lists_the_kinds() {
    let got = problems(provider(|p| {
        p["auth"] = json!({"type": "Bearer", "token": "t0ken-value-123456"});
    }));
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with(
            "connectors[0].providerConfig.auth.type: expected one of \"none\", \"bearer\""
        ),
        "{got:?}"
    );
}

#[test]
fn a_bad_secret_value_is_never_echoed() {
    let got = problems(provider(|p| {
        p["auth"] = json!({"type": "bearer", "token": 12345678})
    }));
    assert!(!got.is_empty());
    assert!(got.iter().all(|m| !m.contains("12345678")), "{got:?}");
}

#[tokio::test]
async fn an_oauth2_token_is_fetched_cached_and_fetched_again_after_a_401() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains("client_secret=cs-SECRET"))
        .and(body_string_contains(
            "audience=https%3A%2F%2Fapi.example.test",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600}),
        ))
        .mount(&server)
        .await;
    Mock::given(path("/items"))
        .and(header("authorization", "Bearer at-1"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": [{"id": "a", "name": "A"}]})),
        )
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(path("/items"))
        .respond_with(ResponseTemplate::new(401).set_body_string("token expired"))
        .mount(&server)
        .await;
    let pc = provider(|p| {
        p["request"]["url"] = json!(format!("{}/items", server.uri()));
        p["auth"] = json!({
            "type": "oauth2ClientCredentials",
            "tokenUrl": format!("{}/oauth/token", server.uri()),
            "clientId": "ci", "clientSecret": "cs-SECRET", "audience": "https://api.example.test"
        });
    });
    let mut c = ConnectorConfig::new("oauth", "HTTP_JSON").with_provider_config(pc);
    c.max_retries = 0;
    let mut h = Harness::new::<HttpJsonProvider>(c).await;
    assert_eq!(
        h.connector.poll(&h.lease).await.expect("first").published,
        1
    );
    assert_eq!(
        h.connector
            .poll(&h.lease)
            .await
            .expect("cached token")
            .published,
        0
    );
    let tokens = |reqs: &[wiremock::Request]| {
        reqs.iter()
            .filter(|r| r.url.path() == "/oauth/token")
            .count()
    };
    let asked = server.received_requests().await.unwrap_or_default();
    assert_eq!(tokens(&asked), 1, "one token for two polls");
    // The API now refuses the token: the poll fails and the next one fetches a new one.
    let err = h
        .connector
        .poll(&h.lease)
        .await
        .expect_err("401")
        .to_string();
    assert!(!err.contains("at-1") && !err.contains("cs-SECRET"), "{err}");
    let _ = h.connector.poll(&h.lease).await;
    let asked = server.received_requests().await.unwrap_or_default();
    assert_eq!(tokens(&asked), 2, "fetched again after the 401");
}

/// Every alternative of every enum in the contract loads: the config checker picks the
/// branch the value names (a tag field, or the one key of an externally tagged enum), as
/// the JSON Schema does.
#[test]
fn every_alternative_of_every_enum_loads() {
    let variants: Vec<(&str, Value)> = vec![
        (
            "skip present",
            json!({"records": {"path": "/data", "id": "/id", "skip": [{"present": "/pr"}]}}),
        ),
        (
            "skip absent",
            json!({"records": {"path": "/data", "id": "/id", "skip": [{"absent": "/pr"}]}}),
        ),
        (
            "skip equals",
            json!({"records": {"path": "/data", "id": "/id", "skip": [{"equals": {"pointer": "/state", "value": "closed"}}]}}),
        ),
        ("fail present", json!({"fail": [{"present": "/error"}]})),
        ("fail absent", json!({"fail": [{"absent": "/data"}]})),
        (
            "fail equals",
            json!({"fail": [{"equals": {"pointer": "/ok", "value": false}}]}),
        ),
        (
            "records as values",
            json!({"records": {"path": "/data", "id": "/id", "recordsAs": "values"}}),
        ),
        ("pagination none", json!({"pagination": {"type": "none"}})),
        (
            "pagination linkHeader",
            json!({"pagination": {"type": "linkHeader", "linkBase": "https://api.example.test/rest", "stopPath": "/last", "morePath": "/more", "pageSize": 100}}),
        ),
        (
            "pagination nextUrl",
            json!({"pagination": {"type": "nextUrl", "path": "/next", "linkBase": "https://api.example.test/rest"}}),
        ),
        (
            "pagination cursor query",
            json!({"pagination": {"type": "cursor", "path": "/next", "param": "after", "in": "query", "morePath": "/more"}}),
        ),
        (
            "pagination offset",
            json!({"pagination": {"type": "offset", "param": "offset", "limit": 50, "limitParam": "limit", "stopPath": "/done"}}),
        ),
        (
            "pagination page",
            json!({"pagination": {"type": "page", "param": "page", "size": 50, "stopPath": "/done"}}),
        ),
        (
            "order desc",
            json!({"order": "desc", "incremental": {"field": "/updated"}}),
        ),
        (
            "auth bearer",
            json!({"auth": {"type": "bearer", "token": "t0ken-value-1"}}),
        ),
        (
            "auth basic",
            json!({"auth": {"type": "basic", "username": "u", "password": "passw0rd-1"}}),
        ),
        (
            "auth headers",
            json!({"auth": {"type": "headers", "headers": {"X-Api-Key": "k3y-value-1"}}}),
        ),
        (
            "auth query",
            json!({"auth": {"type": "query", "name": "api_key", "value": "k3y-value-1"}}),
        ),
        (
            "auth oauth2",
            json!({"auth": {"type": "oauth2ClientCredentials", "tokenUrl": "https://api.example.test/token", "clientId": "c", "clientSecret": "s3cret-value-1"}}),
        ),
        (
            "format epochSeconds",
            json!({"incremental": {"field": "/t", "format": "epochSeconds"}}),
        ),
        (
            "format epochMillis",
            json!({"incremental": {"field": "/t", "format": "epochMillis"}}),
        ),
        (
            "format rfc3339",
            json!({"incremental": {"field": "/t", "format": "rfc3339"}}),
        ),
    ];
    for (what, extra) in variants {
        let pc = provider(|p| {
            if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
                p.extend(e.clone());
            }
        });
        assert_eq!(problems(pc), Vec::<String>::new(), "{what}");
    }
}
