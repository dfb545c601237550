//! AWS Signature V4 against the published AWS signing test suite: each case's request,
//! signed by the core's signer with the case's credentials, region, service and time,
//! carries exactly the headers the suite's signed request shows.

use std::time::SystemTime;

use connector_core::auth::SigV4;
use secrecy::SecretString;
use serde_json::Value;

const CASES: [&str; 16] = [
    "get-vanilla",
    "get-vanilla-query",
    "get-vanilla-query-order-key-case",
    "get-vanilla-query-unreserved",
    "get-vanilla-utf8-query",
    "get-vanilla-with-session-token",
    "get-unreserved",
    "get-utf8",
    "get-header-value-trim",
    "get-header-key-duplicate",
    "post-vanilla",
    "post-vanilla-query",
    "post-header-key-sort",
    "post-header-value-case",
    "post-x-www-form-urlencoded",
    "post-x-www-form-urlencoded-parameters",
];

fn read(case: &str, file: &str) -> String {
    let p = format!(
        "{}/tests/fixtures/sigv4/{case}/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// A request in the suite's HTTP/1.1 form: method, path and query, headers, body.
struct Http {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

fn parse(text: &str) -> Http {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let first = lines.next().expect("a request line");
    let mut parts = first.split(' ');
    let method = parts.next().expect("method").to_owned();
    let target = parts.next().expect("target").to_owned();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        match line.split_once(':') {
            Some((k, v)) => headers.push((k.to_owned(), v.to_owned())),
            // A folded continuation of the previous header's value.
            None => {
                if let Some(last) = headers.last_mut() {
                    last.1.push('\n');
                    last.1.push_str(line);
                }
            }
        }
    }
    Http {
        method,
        target,
        headers,
        body: body.to_owned(),
    }
}

fn timestamp(text: &str) -> SystemTime {
    let ts: jiff::Timestamp = text.parse().expect("an RFC 3339 time");
    let secs = u64::try_from(ts.as_second()).expect("after 1970");
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

#[test]
fn the_signer_matches_the_aws_signing_test_suite() {
    for case in CASES {
        let context: Value = serde_json::from_str(&read(case, "context.json")).expect("JSON");
        let request = parse(&read(case, "request.txt"));
        let expected = parse(&read(case, "header-signed-request.txt"));
        let creds = &context["credentials"];
        let signer = SigV4::new(
            creds["access_key_id"].as_str().expect("key id").to_owned(),
            SecretString::from(
                creds["secret_access_key"]
                    .as_str()
                    .expect("secret")
                    .to_owned(),
            ),
            creds["token"]
                .as_str()
                .map(|t| SecretString::from(t.to_owned())),
            context["region"].as_str().expect("region").to_owned(),
            context["service"].as_str().expect("service").to_owned(),
        )
        .signing_body(context["sign_body"] == true);
        let host = request
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.clone())
            .expect("a Host header");
        let url = format!("https://{host}{}", request.target);
        let headers: Vec<(&str, &str)> = request
            .headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let time = timestamp(context["timestamp"].as_str().expect("timestamp"));
        let signed = signer
            .headers(
                &request.method,
                &url,
                &headers,
                request.body.as_bytes(),
                time,
            )
            .unwrap_or_else(|e| panic!("{case}: {}", e.0));
        for name in [
            "authorization",
            "x-amz-date",
            "x-amz-security-token",
            "x-amz-content-sha256",
        ] {
            let want = expected
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str());
            let got = signed
                .iter()
                .find(|(k, _)| k.as_str() == name)
                .and_then(|(_, v)| v.to_str().ok());
            assert_eq!(got, want, "{case}: {name}");
        }
    }
}
