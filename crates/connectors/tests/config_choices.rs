//! Every choice in every provider's config (each enum, tagged and untagged type), given a
//! wrong value: the error names the field, quotes what was written (never a secret: a
//! value from `${VAR}` shows as the reference) and lists what is allowed.

use connector_core::ConnectorRegistry;
use connector_core::config::{ConfigSource, Environment};
use serde_json::{Value, json};

/// A minimal valid `providerConfig` of each type.
fn base(ty: &str) -> Value {
    match ty {
        "DATADOG" => json!({"apiKey": "k", "appKey": "k"}),
        "GITHUB" => json!({"token": "t", "repositories": ["octo/hello"]}),
        "JIRA" => {
            json!({"baseUrl": "https://acme.atlassian.net", "email": "ops@example.com", "apiToken": "t", "jql": "project = OPS"})
        }
        _ => json!({
            "request": {"url": "https://api.example.com/items"},
            "records": {"path": "/items", "id": "/id"},
            "signal": {"kind": "item", "title": "{{/name}}"}
        }),
    }
}

/// The errors of one connector of `ty` whose `providerConfig` is `base` patched by
/// `patch` (a JSON Merge Patch), loaded with `env`.
fn errors(ty: &str, patch: Value, env: &[(&str, &str)]) -> String {
    let mut settings = base(ty);
    connector_core::spec::catalog::merge_patch(&mut settings, &patch);
    let file = json!({"connectors": [{"name": "c", "type": ty, "providerConfig": settings}]});
    let source = ConfigSource::Text {
        name: "choices.json".into(),
        text: serde_json::to_string_pretty(&file).expect("JSON"),
    };
    let env = Environment::from_pairs(env.iter().copied());
    match ConnectorRegistry::load(&source, &env, &connectors::factories()) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_wrong_choice_names_the_field_quotes_the_value_and_lists_the_choices() {
    // (type, patch, field as reported, what the message must also hold)
    let cases: Vec<(&str, Value, &str, Vec<&str>)> = vec![
        (
            "DATADOG",
            json!({"site": "datadoghq.xx"}),
            "providerConfig.site",
            vec!["(got \"datadoghq.xx\")", "\"datadoghq.eu\""],
        ),
        (
            "DATADOG",
            json!({"resources": ["event"]}),
            "providerConfig.resources[0]",
            vec!["(got \"event\")", "\"events\""],
        ),
        (
            "DATADOG",
            json!({"resources": {"monitor": {}}}),
            "providerConfig.resources",
            vec!["monitor"],
        ),
        (
            "GITHUB",
            json!({"resources": ["issuez"]}),
            "providerConfig.resources[0]",
            vec!["(got \"issuez\")", "\"dependabotAlerts\""],
        ),
        (
            "GITHUB",
            json!({"resources": {"issues": {"state": "opened"}}}),
            "providerConfig.resources.issues.state",
            vec!["(got \"opened\")", "\"closed\""],
        ),
        (
            "GITHUB",
            json!({"labelSeverity": {"bug": "severe"}}),
            "providerConfig.labelSeverity.bug",
            vec!["(got \"severe\")", "\"critical\""],
        ),
        (
            "JIRA",
            json!({"deployment": "server"}),
            "providerConfig.deployment",
            vec!["(got \"server\")", "\"dataCenter\""],
        ),
        (
            "JIRA",
            json!({"severityMap": {"Blocker": "urgent"}}),
            "providerConfig.severityMap.Blocker",
            vec!["(got \"urgent\")", "\"high\""],
        ),
        (
            "HTTP_JSON",
            json!({"request": {"method": "PUT"}}),
            "providerConfig.request.method",
            vec!["(got \"PUT\")", "\"POST\""],
        ),
        (
            "HTTP_JSON",
            json!({"records": {"recordsAs": "list"}}),
            "providerConfig.records.recordsAs",
            vec!["(got \"list\")", "\"values\""],
        ),
        (
            "HTTP_JSON",
            json!({"records": {"absentMeans": "nothing"}}),
            "providerConfig.records.absentMeans",
            vec!["(got \"nothing\")", "\"empty\""],
        ),
        (
            "HTTP_JSON",
            json!({"order": "up"}),
            "providerConfig.order",
            vec!["(got \"up\")", "\"desc\""],
        ),
        (
            "HTTP_JSON",
            json!({"pagination": {"type": "pages"}}),
            "providerConfig.pagination.type",
            vec!["(got \"pages\")", "\"nextUrl\""],
        ),
        (
            "HTTP_JSON",
            json!({"pagination": {"type": "cursor", "path": "/next", "param": "c", "in": "header"}}),
            "providerConfig.pagination.in",
            vec!["(got \"header\")", "\"body\""],
        ),
        (
            "HTTP_JSON",
            json!({"auth": {"type": "Bearer", "token": "t"}}),
            "providerConfig.auth.type",
            vec!["(got \"Bearer\")", "\"bearer\"", "\"awsSigV4\""],
        ),
        (
            "HTTP_JSON",
            json!({"signal": {"severity": {"path": "/p", "default": "severe"}}}),
            "providerConfig.signal.severity.default",
            vec!["(got \"severe\")", "\"critical\""],
        ),
        (
            "HTTP_JSON",
            json!({"records": {"skip": [{"presnt": "/x"}]}}),
            "providerConfig.records.skip[0]",
            vec!["presnt", "present"],
        ),
    ];
    for (ty, patch, field, holds) in cases {
        let said = errors(ty, patch.clone(), &[]);
        let line = said
            .lines()
            .find(|l| l.contains(&format!("connectors[0].{field}")))
            .unwrap_or_else(|| panic!("{ty} {patch}: no error at {field}:\n{said}"));
        for h in holds {
            assert!(line.contains(h), "{ty} {patch}: {h:?} in {line}");
        }
    }
}

#[test]
fn a_wrong_choice_from_the_environment_shows_the_reference_not_the_value() {
    let said = errors(
        "DATADOG",
        json!({"site": "${DD_SITE}"}),
        &[("DD_SITE", "datadoghq.xx")],
    );
    let line = said
        .lines()
        .find(|l| l.contains("providerConfig.site"))
        .unwrap_or_else(|| panic!("no error at site:\n{said}"));
    assert!(
        line.contains("${DD_SITE}") && !line.contains("datadoghq.xx"),
        "{line}"
    );
}
