//! `POST /webhooks/{connector}`: a verified delivery asks for a poll now, through the
//! backend's wake channel, so whichever process holds the lease polls (see `wake.rs`).
//!
//! Answers: 202 when a wake was sent, 200 for a replayed delivery id (nothing done), 401
//! with no detail for anything unverified, 413 for a body over `maxBodyBytes` (not read
//! past the cap), 404 for a connector without a `webhook` block (or unknown, or disabled:
//! which names have webhooks can be learnt this way), 503 when the backend cannot take
//! the wake (the sender may retry).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use connector_core::Backends;
use connector_core::ports::Wake;
use connector_core::webhook::WebhookConfig;
use serde_json::json;

use crate::manager::Status;
use crate::telemetry::Metrics;

/// How long a body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a delivery id is remembered: a repeat within it is a replay.
pub(crate) const REPLAY_WINDOW: Duration = Duration::from_secs(600);

/// What the webhook route needs.
#[derive(Clone)]
pub(crate) struct Hooks {
    pub backends: Backends,
    pub metrics: Arc<Metrics>,
    pub status: Arc<RwLock<Status>>,
}

impl Hooks {
    /// The webhook block of enabled connector `name`, if it has one.
    fn config(&self, name: &str) -> Option<WebhookConfig> {
        let status = self
            .status
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        status
            .registry
            .enabled()
            .find(|c| c.name == name)
            .and_then(|c| c.webhook.clone())
            // A secret this process could not resolve (it does not run the connector)
            // would be the reference's own text: such a block verifies nothing here.
            .filter(|w| !w.unresolved())
    }
}

/// One delivery: verified on its raw bytes, checked for a replay, then a wake.
pub(crate) async fn receive(
    State(hooks): State<Hooks>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(webhook) = hooks.config(&name) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no connector with a webhook by that name" })),
        )
            .into_response();
    };
    let received_ms = crate::now_ms(&hooks.backends.context);
    let bytes = match read_body(&headers, body, webhook.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err((reason, code)) => return refused(&hooks, &name, reason, code),
    };
    let now = hooks.backends.context.clock().now();
    let delivery = match webhook.verify(&headers, &bytes, now) {
        Ok(delivery) => delivery,
        Err(why) => return refused(&hooks, &name, why.as_str(), StatusCode::UNAUTHORIZED),
    };
    if let Some(id) = &delivery {
        match hooks
            .backends
            .wakes
            .first_delivery(&name, id, REPLAY_WINDOW)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                hooks.metrics.webhooks.received(&name, "replayed");
                tracing::info!(connector = %name, "webhook delivery seen before: ignored");
                return Json(json!({ "replayed": true })).into_response();
            }
            Err(e) => return unavailable(&hooks, &name, &e),
        }
    }
    let wake = Wake {
        connector: name.clone(),
        received_ms,
    };
    if let Err(e) = hooks.backends.wakes.wake(&wake).await {
        // The sender retries with the same id: that retry is not a replay.
        if let Some(id) = &delivery {
            let _ = hooks.backends.wakes.forget_delivery(&name, id).await;
        }
        return unavailable(&hooks, &name, &e);
    }
    hooks.metrics.webhooks.received(&name, "accepted");
    tracing::info!(connector = %name, "webhook verified: the lease holder polls now");
    (StatusCode::ACCEPTED, Json(json!({ "accepted": true }))).into_response()
}

/// A webhook's body, read to at most `cap` bytes within [`BODY_TIMEOUT`] (a declared
/// larger one is refused unread), or the reason and status of a refusal: `too_large`
/// (413), or `unread` (400: cut off or too slow). The route and the supervisor read alike.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    cap: u64,
) -> Result<axum::body::Bytes, (&'static str, StatusCode)> {
    const TOO_LARGE: (&str, StatusCode) = ("too_large", StatusCode::PAYLOAD_TOO_LARGE);
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(TOO_LARGE);
    }
    let limit = usize::try_from(cap).unwrap_or(usize::MAX);
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if e.to_string().contains("length limit") => Err(TOO_LARGE),
        _ => Err(("unread", StatusCode::BAD_REQUEST)),
    }
}

/// A refused delivery: counted and logged by reason, without its body or signature; the
/// sender learns nothing but the status.
fn refused(hooks: &Hooks, name: &str, reason: &'static str, code: StatusCode) -> Response {
    hooks.metrics.webhooks.received(name, reason);
    tracing::warn!(connector = %name, reason, "webhook refused");
    code.into_response()
}

fn unavailable(hooks: &Hooks, name: &str, e: &dyn std::fmt::Display) -> Response {
    hooks.metrics.webhooks.received(name, "unavailable");
    tracing::warn!(connector = %name, error = %e, "webhook not taken: the backend failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": "the backend cannot take the wake now; retry" })),
    )
        .into_response()
}
