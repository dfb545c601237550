//! The supervisor's HTTP API under `connectors all`: the one port probes know (the
//! process's `HTTP_PORT`), answering for every child, each of which serves its own API on a
//! port above it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

/// How long the supervisor waits for a child's answer: inside a one-second probe, and
/// longer than the 0.8 s a child itself gives Redis (so a child that answers "Redis did
/// not answer" at its own deadline is heard).
const CHILD_TIMEOUT: Duration = Duration::from_millis(950);

/// How the supervisor reaches one running child.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Member {
    /// The child's API port.
    pub port: u16,
    /// Its connector's `webhook.maxBodyBytes`, when it takes webhooks.
    pub webhook_cap: Option<u64>,
}

/// The running children by connector, kept by the supervisor as they start and stop.
pub(crate) type Members = Arc<RwLock<BTreeMap<String, Member>>>;

/// The running children's API ports, by connector, and how to reach them.
#[derive(Clone)]
pub(crate) struct Fleet {
    /// Each running child.
    pub members: Members,
    /// Where the children listen (`HTTP_BIND`, or loopback when that is every address).
    pub host: IpAddr,
    pub client: reqwest::Client,
}

impl Fleet {
    fn children(&self) -> Vec<(String, u16)> {
        let members = self
            .members
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        members.iter().map(|(n, m)| (n.clone(), m.port)).collect()
    }

    fn member(&self, name: &str) -> Option<Member> {
        let members = self
            .members
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        members.get(name).copied()
    }

    /// Every child's answer on `path` as JSON, in connector order.
    async fn ask_all(&self, path: &'static str) -> Vec<(String, u16, Answer)> {
        let answers = self.ask_all_raw(path).await.into_iter();
        answers
            .map(|(name, port, raw)| {
                let json = raw.map(|(status, body)| {
                    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
                });
                (name, port, json)
            })
            .collect()
    }

    /// Every child's body on `path` as sent (or why there was none), asked at once (a
    /// probe waits for the slowest child, not for the sum of them), in connector order.
    async fn ask_all_raw(&self, path: &'static str) -> Vec<(String, u16, Raw)> {
        let mut asked = tokio::task::JoinSet::new();
        for (name, port) in self.children() {
            let fleet = self.clone();
            asked.spawn(async move { (name, port, fleet.ask(port, path).await) });
        }
        let mut answers: Vec<_> = asked.join_all().await;
        answers.sort_by(|a, b| a.0.cmp(&b.0));
        answers
    }

    /// A child's answer on `path`: its status and body as sent, or why there was none.
    async fn ask(&self, port: u16, path: &str) -> Raw {
        let url = format!(
            "http://{}{path}",
            std::net::SocketAddr::new(self.host, port)
        );
        let answer = async {
            let response = self
                .client
                .get(&url)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body = response.bytes().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((status, body))
        };
        tokio::time::timeout(CHILD_TIMEOUT, answer)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", CHILD_TIMEOUT.as_millis())))
    }
}

/// A child's status and JSON body, or why it gave none.
type Answer = Result<(u16, Value), String>;

/// A child's status and body as sent, or why it gave none.
type Raw = Result<(u16, Bytes), String>;

/// The address a process's API is reached at: its bind address, or loopback when it binds
/// every address (what `connectors health` and the supervisor ask).
pub(crate) fn reachable(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    match addr.ip() {
        ip if ip.is_unspecified() => std::net::SocketAddr::from(([127, 0, 0, 1], addr.port())),
        _ => addr,
    }
}

/// The supervisor's routes: `/health/live` (the supervisor runs), `/health/ready` (every
/// child ready), `/health/connectors` (every child's connectors, merged) and `/metrics`
/// (every child's Prometheus metrics in one exposition) and `/webhooks/{name}` (passed to
/// the child running that connector).
pub(crate) fn router(fleet: Fleet) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health/connectors", get(connectors))
        .route("/metrics", get(metrics))
        .route("/webhooks/{name}", axum::routing::post(webhook))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(fleet)
}

async fn live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when every child answers its own `/health/ready` with 200.
async fn ready(State(fleet): State<Fleet>) -> Response {
    let mut children = serde_json::Map::new();
    let mut all = true;
    for (name, port, answer) in fleet.ask_all("/health/ready").await {
        let entry = match answer {
            Ok((status, body)) => {
                all &= status == 200;
                json!({ "ready": status == 200, "port": port, "answer": body })
            }
            Err(e) => {
                all = false;
                json!({ "ready": false, "port": port, "error": e })
            }
        };
        children.insert(name, entry);
    }
    let all = all && !children.is_empty();
    let code = if all {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({ "ready": all, "children": children }))).into_response()
}

/// Each child's own connector from its `/health/connectors`, in one answer of the same
/// shape; 503 when any is unhealthy or its child does not answer (listed with the error).
async fn connectors(State(fleet): State<Fleet>) -> Response {
    let mut merged = serde_json::Map::new();
    let mut all = true;
    for (name, _, answer) in fleet.ask_all("/health/connectors").await {
        let entry = match answer {
            // Only the child's own connector: the others it lists are another child's.
            Ok((status, body)) => match body.pointer(&format!("/connectors/{name}")) {
                Some(entry) => entry.clone(),
                None => {
                    json!({ "healthy": false, "error": format!("HTTP {status} without this connector") })
                }
            },
            Err(e) => json!({ "healthy": false, "error": e }),
        };
        all &= entry["healthy"] == json!(true);
        merged.insert(name, entry);
    }
    let code = if all {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({ "healthy": all, "connectors": merged }))).into_response()
}

/// Every child's `/metrics`, merged into one OpenMetrics exposition (each family once), and
/// `connectors_child_up{connector}`: 1 for a child that answered, 0 for one that did not (its
/// series are then missing from this scrape).
async fn metrics(State(fleet): State<Fleet>) -> Response {
    let mut merged = crate::exposition::Merged::default();
    let mut up = Vec::new();
    for (name, _, answer) in fleet.ask_all_raw("/metrics").await {
        let text = match answer {
            Ok((200, body)) => String::from_utf8(body.to_vec()).ok(),
            _ => None,
        };
        if let Some(text) = &text {
            merged.add(&name, text);
        }
        up.push((name, u8::from(text.is_some())));
    }
    for (name, value) in up {
        merged.gauge(
            "connectors_child_up",
            "Whether the child running this connector answered the scrape.",
            &name,
            value,
        );
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        merged.render(),
    )
        .into_response()
}

/// A webhook, passed as received to the child running its connector, which verifies it
/// with the connector's config and wakes the lease holder through the backend (the
/// supervisor has no connection of its own to Redis). 404 at once for a connector without
/// a child or a `webhook` block; a body over the connector's `maxBodyBytes` is refused
/// unread.
async fn webhook(
    State(fleet): State<Fleet>,
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> Response {
    let Some((port, cap)) = fleet
        .member(&name)
        .and_then(|m| Some((m.port, m.webhook_cap?)))
    else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no connector with a webhook by that name" })),
        )
            .into_response();
    };
    let body = match crate::webhooks::read_body(&headers, body, cap).await {
        Ok(body) => body,
        Err((_, code)) => return code.into_response(),
    };
    let url = format!(
        "http://{}/webhooks/{name}",
        std::net::SocketAddr::new(fleet.host, port)
    );
    let mut forwarded = headers;
    for hop in [
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
    ] {
        forwarded.remove(hop);
    }
    let sent = fleet.client.post(url).headers(forwarded).body(body).send();
    let answer = async {
        let response = sent.await?;
        let status = response.status();
        let body = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, body))
    };
    match tokio::time::timeout(CHILD_TIMEOUT * 5, answer).await {
        Ok(Ok((status, body))) => (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": "the connector's process did not answer; retry" })),
        )
            .into_response(),
    }
}
