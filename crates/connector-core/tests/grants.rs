//! The credentials cloud APIs need: the JWT-bearer grant (RFC 7523) against a token
//! endpoint that checks the assertion's RS256 signature, and AWS Signature V4 against a
//! server that checks the signature over what it received.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use connector_core::auth::{AuthSpec, SigV4};
use connector_core::context::{Context, ManualClock};
use connector_core::http::{HttpClient, HttpError};
use connector_core::redact::Redactor;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use secrecy::SecretString;
use serde_json::{Value, json};
use url::Url;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn fixture(name: &str) -> String {
    let p = format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn common() -> connector_core::ConnectorContext {
    connector_core::ConnectorContext::isolated(connector_core::ConnectorConfig::new(
        "grants",
        "HTTP_JSON",
    ))
}

/// The claims of a valid assertion from `iss`, for `aud`, checked with the public key;
/// `None` for anything else (a wrong signature, a wrong grant type).
fn verified(request: &Request, aud: &str) -> Option<Value> {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if field("grant_type")? != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        return None;
    }
    let key = DecodingKey::from_rsa_pem(fixture("test-key.pub.pem").as_bytes()).ok()?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[aud]);
    validation.set_issuer(&["reader@project.iam.gserviceaccount.com"]);
    decode::<Value>(&field("assertion")?, &key, &validation)
        .ok()
        .map(|t| t.claims)
}

fn jwt_spec(issuer: &MockServer, key: &str) -> AuthSpec {
    serde_json::from_value(json!({
        "type": "jwtBearer",
        "tokenUrl": format!("{}/token", issuer.uri()),
        "clientEmail": "reader@project.iam.gserviceaccount.com",
        "privateKey": fixture(key),
        "scopes": ["https://www.googleapis.com/auth/admin.reports.audit.readonly"],
        "subject": "admin@example.com"
    }))
    .expect("a jwtBearer spec")
}

/// The assertion is signed with the configured key and says who, for whom, what and until
/// when; its token is kept across requests and sent only to the API.
#[tokio::test]
async fn a_jwt_bearer_assertion_is_signed_checked_and_its_token_kept() {
    let api = MockServer::start().await;
    let issuer = MockServer::start().await;
    let aud = format!("{}/token", issuer.uri());
    let now = SystemTime::now();
    let expected_iat = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let checked_aud = aud.clone();
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(move |r: &Request| {
            verified(r, &checked_aud).is_some_and(|c| {
                c["scope"] == "https://www.googleapis.com/auth/admin.reports.audit.readonly"
                    && c["sub"] == "admin@example.com"
                    && c["iat"] == expected_iat
                    && c["exp"] == expected_iat + 3600
            })
        })
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "ya29.test-token", "expires_in": 3599, "token_type": "Bearer"}),
        ))
        .expect(1)
        .mount(&issuer)
        .await;
    Mock::given(path("/activities"))
        .and(header("authorization", "Bearer ya29.test-token"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .expect(2)
        .mount(&api)
        .await;
    let spec = jwt_spec(&issuer, "test-key.pem");
    assert!(spec.problems().is_empty());
    let clock = Arc::new(ManualClock::at(now));
    let process = Redactor::new();
    let context = Context::isolated()
        .with_clock(clock)
        .with_redactor(process.clone());
    let common = connector_core::ConnectorContext::new(
        Arc::new(connector_core::ConnectorConfig::new("grants", "HTTP_JSON")),
        context.clone(),
    );
    let auth = spec.auth(&common).expect("auth").expect("some");
    let c = HttpClient::builder(Url::parse(&api.uri()).expect("base"))
        .context(&context)
        .auth(auth)
        .build()
        .expect("client");
    let at = Url::parse(&format!("{}/activities", api.uri())).expect("url");
    c.get(&at).await.expect("with a new token");
    c.get(&at).await.expect("with the same token");
    assert_eq!(process.scrub("echo ya29.test-token"), "echo ****");
}

/// A key the token endpoint does not know is refused in the operator's terms, and the key
/// is in no message; a key that is not one is a config mistake.
#[tokio::test]
async fn a_refused_assertion_says_what_to_check_and_never_shows_the_key() {
    let api = MockServer::start().await;
    let issuer = MockServer::start().await;
    let aud = format!("{}/token", issuer.uri());
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(move |r: &Request| verified(r, &aud).is_none())
        .respond_with(ResponseTemplate::new(400).set_body_json(
            json!({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}),
        ))
        .mount(&issuer)
        .await;
    let spec = jwt_spec(&issuer, "other-key.pem");
    let auth = spec.auth(&common()).expect("auth").expect("some");
    let c = HttpClient::builder(Url::parse(&api.uri()).expect("base"))
        .auth(auth)
        .build()
        .expect("client");
    let err = c
        .get(&Url::parse(&format!("{}/x", api.uri())).expect("url"))
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(matches!(err, HttpError::Credentials { .. }), "{text}");
    assert!(
        text.contains("check clientEmail, privateKey and scopes"),
        "{text}"
    );
    assert!(
        !text.contains("PRIVATE KEY") && !text.contains("MII"),
        "{text}"
    );
    let broken: AuthSpec = serde_json::from_value(json!({
        "type": "jwtBearer", "tokenUrl": "https://oauth2.googleapis.com/token",
        "clientEmail": "x@y", "privateKey": "not a key MIIsecret"
    }))
    .expect("spec");
    let problems = broken.problems();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].message.contains("RSA private key in PEM"));
    assert!(!problems[0].message.contains("MIIsecret"));
}

/// Every request is signed over what is sent: the server recomputes the signature from
/// the method, URL, headers and body it received, as AWS does, at the clock's time.
#[tokio::test]
async fn aws_signature_v4_signs_every_request_over_what_is_sent() {
    let server = MockServer::start().await;
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_733_047_200);
    let checker = SigV4::new(
        "AKIDEXAMPLE".into(),
        SecretString::from("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned()),
        Some(SecretString::from("session-token-1".to_owned())),
        "us-east-1".into(),
        "health".into(),
    );
    Mock::given(method("POST"))
        .and(header("x-amz-date", "20241201T100000Z"))
        .and(header("x-amz-security-token", "session-token-1"))
        .and(move |r: &Request| connector_core::testing::aws_signature_verifies(r, &checker))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"events\": []}"))
        .expect(1)
        .mount(&server)
        .await;
    let spec: AuthSpec = serde_json::from_value(json!({
        "type": "awsSigV4", "accessKeyId": "AKIDEXAMPLE",
        "secretAccessKey": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "sessionToken": "session-token-1", "region": "us-east-1", "service": "health"
    }))
    .expect("spec");
    assert!(spec.problems().is_empty());
    let context = Context::isolated().with_clock(Arc::new(ManualClock::at(now)));
    let common = connector_core::ConnectorContext::new(
        Arc::new(connector_core::ConnectorConfig::new("grants", "HTTP_JSON")),
        context.clone(),
    );
    let auth = spec.auth(&common).expect("auth").expect("some");
    assert!(!format!("{auth:?}").contains("EXAMPLEKEY"));
    let c = HttpClient::builder(Url::parse(&server.uri()).expect("base"))
        .context(&context)
        .auth(auth)
        .build()
        .expect("client");
    let request = connector_core::http::Request::post(
        Url::parse(&format!("{}/?Action=DescribeEvents", server.uri())).expect("url"),
        json!({"filter": {"eventStatusCodes": ["open"]}}),
    );
    let sent = c
        .send(&request, &connector_core::ports::Cursor::default())
        .await;
    assert!(sent.is_ok(), "{sent:?}");
}
