//! The HTTP API: health for probes, metrics for people and Prometheus.
//!
//! `/metrics/connectors` reads the shared metrics store (Redis in production), so any
//! instance answers for every connector, whichever instance polls it.

use std::sync::{Arc, RwLock};

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use connector_core::Backends;
use connector_core::pipeline::health_max_age;
use serde_json::{Value, json};

use crate::manager::Status;
use crate::telemetry::Metrics;

#[derive(Clone)]
struct Api {
    backends: Backends,
    metrics: Arc<Metrics>,
    status: Arc<RwLock<Status>>,
}

/// The router, ready to serve. Every answer passes the process's redactor (the context's):
/// an error text the API shows may quote what a provider echoed.
pub fn router(backends: Backends, metrics: Arc<Metrics>, status: Arc<RwLock<Status>>) -> Router {
    let redactor = backends.context.redactor().clone();
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health/connectors", get(connectors_health))
        .route("/metrics/connectors", get(all_metrics))
        .route("/metrics/connectors/{name}", get(one_metrics))
        .route("/metrics", get(prometheus))
        .with_state(Api {
            backends: backends.clone(),
            metrics: metrics.clone(),
            status: status.clone(),
        })
        .merge(
            Router::new()
                .route(
                    "/webhooks/{name}",
                    axum::routing::post(crate::webhooks::receive),
                )
                // Each connector's own cap applies; this only lifts axum's default.
                .layer(axum::extract::DefaultBodyLimit::disable())
                .with_state(crate::webhooks::Hooks {
                    backends,
                    metrics,
                    status,
                }),
        )
        .layer(axum::middleware::map_response(move |response: Response| {
            let redactor = redactor.clone();
            async move { scrubbed(&redactor, response).await }
        }))
}

/// `response` with every credential in its body masked (bodies here are small JSON or
/// Prometheus text).
async fn scrubbed(redactor: &connector_core::redact::Redactor, response: Response) -> Response {
    if redactor.is_empty() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "response too large").into_response();
    };
    let text = redactor.scrub_bytes(&bytes);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(text))
}

fn snapshot(api: &Api) -> Status {
    api.status
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Alive unless the backend connection is wedged ([`connector_core::ports::Membership::wedged`]):
/// a restart helps then, while an unreachable Redis only makes the process not ready (a
/// restart there would restart-loop the fleet).
async fn live(State(api): State<Api>) -> Response {
    match api.backends.membership.wedged().await {
        None => Json(json!({ "status": "ok" })).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "wedged", "reason": reason })),
        )
            .into_response(),
    }
}

/// How long readiness waits for the backend: well inside a one-second probe timeout, so a
/// stalled Redis gives a prompt "not ready" rather than no answer for the full command
/// timeout.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(800);

/// Ready when a config is loaded and the backend answers within [`READY_TIMEOUT`].
async fn ready(State(api): State<Api>) -> Response {
    let status = snapshot(&api);
    let backend = match tokio::time::timeout(
        READY_TIMEOUT,
        api.backends.metrics.get("readiness-probe"),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "the backend did not answer within {} ms",
            READY_TIMEOUT.as_millis()
        )),
    };
    let ok = !status.registry.all().is_empty() && backend.is_ok();
    let mut body = json!({
        "ready": ok,
        "backend": match &backend { Ok(()) => "ok".to_owned(), Err(e) => e.clone() },
        "connectors": status.registry.enabled().count(),
        "configured": status.registry.all().len(),
        "running": status.running,
        "reloads": status.reloads,
        "lastReload": status.last_reload,
    });
    if let Some(lost) = api.metrics.data_loss() {
        // Not a readiness failure (the process works, and a restart would not help), but
        // where an operator looking at the pod sees it.
        body["redisDataLoss"] = json!(lost);
    }
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// The rate budgets `connector`'s requests take from (shared with whoever else sends under
/// the same credential), as this process saw them.
fn budgets_of(context: &connector_core::context::Context, connector: &str) -> Option<Value> {
    let budgets = context.budgets().stats_of(connector);
    (!budgets.is_empty()).then(|| json!(budgets))
}

/// Healthy per connector when its last success is younger than three poll intervals
/// (at least a minute); 503 when any enabled connector is not.
async fn connectors_health(State(api): State<Api>) -> Response {
    let status = snapshot(&api);
    let now = crate::now_ms(&api.backends.context);
    let mut out = serde_json::Map::new();
    let mut all_ok = true;
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    for c in status.registry.enabled() {
        let max_age = health_max_age(c);
        // A rate-limit wait this process keeps (the server asked; no request goes out
        // before its end).
        let context = &api.backends.context;
        let held = context
            .holds()
            .held_for(&c.name, context.clock().now())
            .map(httpdate::fmt_http_date);
        // One deadline for all: a stalled Redis gets a prompt answer, as readiness does.
        let stored = tokio::time::timeout_at(deadline, api.backends.metrics.get(&c.name))
            .await
            .unwrap_or_else(|_| {
                Err(connector_core::ports::BackendError::new(
                    "metrics",
                    format!(
                        "the backend did not answer within {} ms",
                        READY_TIMEOUT.as_millis()
                    ),
                ))
            });
        let mut entry = match stored {
            Ok(m) => {
                let last = m.as_ref().and_then(|m| m.last_success_time);
                let healthy = m.as_ref().is_some_and(|m| m.is_healthy(now, max_age));
                all_ok &= healthy;
                json!({
                    "healthy": healthy,
                    "lastSuccessTime": last.map(connector_core::signal::rfc3339_millis),
                    "ageMs": last.map(|t| now.saturating_sub(t)),
                    "maxAgeMs": max_age.as_millis() as u64,
                })
            }
            Err(e) => {
                all_ok = false;
                json!({ "healthy": false, "error": e.to_string() })
            }
        };
        if let Some(until) = held {
            entry["rateLimitedUntil"] = json!(until);
        }
        if let Some(budgets) = budgets_of(context, &c.name) {
            entry["rateBudgets"] = budgets;
        }
        if let Some(at) = api.metrics.webhooks.last(&c.name) {
            // The last verified webhook, whichever process received it.
            entry["lastWebhookTime"] = json!(connector_core::signal::rfc3339_millis(at));
        }
        if let Some(reads) = api.metrics.read_health(&c.name) {
            if reads.stalled_polls >= crate::telemetry::STALLED_PARTIAL_POLLS {
                // Reads that keep ending early without getting anywhere.
                entry["healthy"] = json!(false);
                all_ok = false;
            }
            if let (Value::Object(entry), Ok(Value::Object(reads))) =
                (&mut entry, serde_json::to_value(&reads))
            {
                entry.extend(reads);
            }
        }
        out.insert(c.name.clone(), entry);
    }
    let code = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(json!({ "healthy": all_ok, "connectors": out }))).into_response()
}

async fn all_metrics(State(api): State<Api>) -> Response {
    let status = snapshot(&api);
    let mut out = serde_json::Map::new();
    for c in status.registry.all() {
        match api.backends.metrics.get(&c.name).await {
            Ok(m) => {
                out.insert(
                    c.name.clone(),
                    m.as_ref().map_or(Value::Null, crate::metrics_json),
                );
            }
            Err(e) => return backend_error(&e),
        }
    }
    Json(Value::Object(out)).into_response()
}

async fn one_metrics(State(api): State<Api>, Path(name): Path<String>) -> Response {
    let status = snapshot(&api);
    if status.registry.get(&name).is_none() {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no connector named \"{name}\"") })),
        )
            .into_response();
    }
    match api.backends.metrics.get(&name).await {
        Ok(Some(m)) => Json(crate::metrics_json(&m)).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("\"{name}\" has no metrics yet: it has not been polled") })),
        )
            .into_response(),
        Err(e) => backend_error(&e),
    }
}

fn backend_error(e: &dyn std::fmt::Display) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": e.to_string() })),
    )
        .into_response()
}

async fn prometheus(State(api): State<Api>) -> Response {
    api.metrics.budgets(&api.backends.context.budgets().stats());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        api.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod scrub_tests {
    use super::*;

    #[tokio::test]
    async fn every_api_answer_is_masked() {
        let redactor = connector_core::redact::Redactor::new();
        redactor.add("api-s3cret-0011");
        let answer = (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "HTTP 401: bad token api-s3cret-0011"})),
        )
            .into_response();
        let shown = scrubbed(&redactor, answer).await;
        assert_eq!(shown.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(shown.into_body(), 1 << 20)
            .await
            .expect("body");
        assert_eq!(
            String::from_utf8_lossy(&body),
            r#"{"error":"HTTP 401: bad token ****"}"#
        );
    }
}
