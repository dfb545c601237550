//! The mock NWS server: an axum server inside the bench's parent process, serving
//! pre-generated alert collections from memory, so the child process being measured does
//! all of the HTTP client work and none of the serving.
//!
//! - `GET /alerts/active/pipe/{n}`: the `n`-alert collection, in the variant selected with
//!   `GET /_bench/select/{n}/{variant}` (0: as issued, 1: every tenth alert updated);
//! - `GET /alerts/active/scale/{i}`: connector `i`'s ten alerts; from its 11th request on,
//!   every ten requests one alert flips between two revisions, so a poll is mostly
//!   unchanged and a change is published now and then. Arrival times are recorded per
//!   connector for the start-lag figures;
//! - `GET /_bench/stats`: requests and body bytes served so far.
//!
//! No validators (ETag, Last-Modified) are sent: every poll reads and parses the whole body,
//! which is the expensive case the repeat-poll figures are about.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::alerts::PrintedSet;

/// Alerts per connector in the scale and idle scenarios.
pub const SCALE_ITEMS: usize = 10;
/// A scale connector's served set changes once per this many of its requests.
pub const SCALE_CHANGE_EVERY: u64 = 10;

struct PipelineSet {
    bodies: [Bytes; 2],
    current: AtomicUsize,
}

/// The per-connector sets of the scale and idle scenarios.
struct ScaleSet {
    bodies: Vec<[Bytes; 2]>,
    requests: Vec<AtomicU64>,
    /// `(connector, microseconds since `epoch`)` of every request, in arrival order.
    arrivals: Mutex<Vec<(u32, u64)>>,
    epoch: Instant,
}

#[derive(Default)]
struct MockState {
    pipe: RwLock<HashMap<usize, Arc<PipelineSet>>>,
    scale: RwLock<Option<Arc<ScaleSet>>>,
    requests: AtomicU64,
    bytes: AtomicU64,
}

/// Requests and body bytes the mock has served.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Served {
    /// Alert requests answered (control requests excluded).
    pub requests: u64,
    /// Body bytes of those answers.
    pub bytes: u64,
}

/// What the scale set recorded.
#[derive(Debug, Default)]
pub struct ScaleLog {
    /// Per connector, arrival times in microseconds since the set was installed.
    pub arrivals: Vec<Vec<u64>>,
}

/// A running mock server.
pub struct Mock {
    addr: SocketAddr,
    state: Arc<MockState>,
}

impl Mock {
    /// Starts the server on a free loopback port.
    pub async fn start() -> Result<Self> {
        let state = Arc::new(MockState::default());
        let app = Router::new()
            .route("/alerts/active/pipe/{n}", get(pipe))
            .route("/alerts/active/scale/{i}", get(scale))
            .route("/_bench/select/{n}/{variant}", get(select))
            .route("/_bench/stats", get(stats))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the mock server")?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "mock server stopped");
            }
        });
        Ok(Self { addr, state })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `set` at `/alerts/active/pipe/{n}`; returns the two bodies' sizes.
    pub fn install_pipeline(&self, n: usize, set: &PrintedSet) -> (usize, usize) {
        let bodies = [
            Bytes::from(set.base_body()),
            Bytes::from(set.changed_body()),
        ];
        let sizes = (bodies[0].len(), bodies[1].len());
        let entry = Arc::new(PipelineSet {
            bodies,
            current: AtomicUsize::new(0),
        });
        write(&self.state.pipe).insert(n, entry);
        sizes
    }

    /// Stops serving the `n`-alert set and frees it.
    pub fn remove_pipeline(&self, n: usize) {
        write(&self.state.pipe).remove(&n);
    }

    /// Serves `connectors` sets of [`SCALE_ITEMS`] alerts; request counts and arrival
    /// times start from zero.
    pub fn install_scale(&self, set_name: &str, connectors: usize) {
        let bodies = (0..connectors)
            .map(|c| {
                let set = PrintedSet::new(&format!("{set_name}-{c}"), SCALE_ITEMS, SCALE_ITEMS);
                [
                    Bytes::from(set.base_body()),
                    Bytes::from(set.changed_body()),
                ]
            })
            .collect();
        let scale = ScaleSet {
            bodies,
            requests: (0..connectors).map(|_| AtomicU64::new(0)).collect(),
            arrivals: Mutex::new(Vec::with_capacity(connectors * 64)),
            epoch: Instant::now(),
        };
        *write(&self.state.scale) = Some(Arc::new(scale));
    }

    /// Microseconds since the scale set was installed (the arrival log's clock).
    pub fn scale_clock_us(&self) -> u64 {
        read(&self.state.scale)
            .as_ref()
            .map_or(0, |s| s.epoch.elapsed().as_micros() as u64)
    }

    /// Connectors of the scale set that have polled at least once.
    pub fn scale_started(&self) -> usize {
        read(&self.state.scale).as_ref().map_or(0, |s| {
            s.requests
                .iter()
                .filter(|r| r.load(Ordering::Relaxed) > 0)
                .count()
        })
    }

    /// Requests connector `i` of the scale set has made.
    pub fn scale_requests(&self, i: usize) -> u64 {
        read(&self.state.scale)
            .as_ref()
            .and_then(|s| s.requests.get(i).map(|r| r.load(Ordering::Relaxed)))
            .unwrap_or(0)
    }

    /// Takes the scale set's log and stops serving it.
    pub fn take_scale(&self) -> ScaleLog {
        let Some(scale) = write(&self.state.scale).take() else {
            return ScaleLog::default();
        };
        let mut arrivals = vec![Vec::new(); scale.bodies.len()];
        let log = scale
            .arrivals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for &(c, t) in log.iter() {
            if let Some(list) = arrivals.get_mut(c as usize) {
                list.push(t);
            }
        }
        ScaleLog { arrivals }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn served(state: &MockState) -> Served {
    Served {
        requests: state.requests.load(Ordering::Relaxed),
        bytes: state.bytes.load(Ordering::Relaxed),
    }
}

fn alerts(state: &MockState, body: Bytes) -> Response {
    state.requests.fetch_add(1, Ordering::Relaxed);
    state.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    ([(header::CONTENT_TYPE, "application/geo+json")], body).into_response()
}

async fn pipe(State(state): State<Arc<MockState>>, Path(n): Path<usize>) -> Response {
    let set = read(&state.pipe).get(&n).cloned();
    match set {
        Some(set) => {
            let variant = set.current.load(Ordering::Relaxed).min(1);
            alerts(&state, set.bodies[variant].clone())
        }
        None => (StatusCode::NOT_FOUND, "no such set").into_response(),
    }
}

async fn select(
    State(state): State<Arc<MockState>>,
    Path((n, variant)): Path<(usize, usize)>,
) -> Response {
    match read(&state.pipe).get(&n) {
        Some(set) if variant < 2 => {
            set.current.store(variant, Ordering::Relaxed);
            (StatusCode::OK, "ok").into_response()
        }
        _ => (StatusCode::NOT_FOUND, "no such set or variant").into_response(),
    }
}

async fn stats(State(state): State<Arc<MockState>>) -> Response {
    axum::Json(served(&state)).into_response()
}

async fn scale(State(state): State<Arc<MockState>>, Path(i): Path<usize>) -> Response {
    let set = read(&state.scale).clone();
    let Some(set) = set else {
        return (StatusCode::NOT_FOUND, "no scale set").into_response();
    };
    let (Some(bodies), Some(count)) = (set.bodies.get(i), set.requests.get(i)) else {
        return (StatusCode::NOT_FOUND, "no such connector").into_response();
    };
    let at = set.epoch.elapsed().as_micros() as u64;
    let k = count.fetch_add(1, Ordering::Relaxed);
    set.arrivals
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((i as u32, at));
    let variant = ((k / SCALE_CHANGE_EVERY) % 2) as usize;
    alerts(&state, bodies[variant].clone())
}
