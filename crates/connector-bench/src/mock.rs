//! The mock server: an axum server inside the bench's parent process, serving
//! pre-generated data from memory, so the child process being measured does all of the
//! HTTP client work and none of the serving.
//!
//! - `GET /alerts/active/pipe/{n}`: the `n`-alert NWS collection, in the variant selected
//!   with `GET /_bench/select/{n}/{variant}` (0: as issued, 1: every tenth alert updated);
//! - `GET /alerts/active/scale/{i}`: connector `i`'s ten alerts; from its 11th request on,
//!   every ten requests one alert flips between two revisions, so a poll is mostly
//!   unchanged and a change is published now and then. Arrival times are recorded per
//!   connector for the start-lag figures;
//! - `GET /records?since=&limit=&cursor=`: the paged first-sync records, in the shape the
//!   core's `TEST_PAGED` provider reads (`connector_core::testing::paged`):
//!   `{"records":[{"id","updated","title"}...],"next":"o<offset>"|null}`, ascending by
//!   `updated`, each answer held back by the latency set with
//!   `GET /_bench/paged/setup/{page}/{latency_ms}` (`page` 0: pages of `limit`; otherwise
//!   pages of `page` records whatever `limit` asks, as a server with a larger page size);
//! - `GET /_bench/stats`: requests and body bytes served so far, and each `/records`
//!   request's `[arrival, answered]` interval (UNIX microseconds) since the last setup.
//!
//! No validators (ETag, Last-Modified) are sent: every poll reads and parses the whole body,
//! which is the expensive case the repeat-poll figures are about.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
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

/// The records of the paged first sync, and how they are served.
struct PagedSet {
    /// Each record's JSON, ascending by `updated`.
    records: Vec<String>,
    /// Each record's `updated`, UNIX milliseconds (for `since`).
    updated_ms: Vec<i64>,
    /// Records per answer; 0: as many as the request's `limit`.
    page: AtomicUsize,
    /// How long each answer is held back: the simulated network, milliseconds.
    latency_ms: AtomicU64,
    /// `[arrival, answered]` of each request since the last setup, UNIX microseconds.
    fetches: Mutex<Vec<[u64; 2]>>,
}

#[derive(Default)]
struct MockState {
    pipe: RwLock<HashMap<usize, Arc<PipelineSet>>>,
    scale: RwLock<Option<Arc<ScaleSet>>>,
    paged: RwLock<Option<Arc<PagedSet>>>,
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

/// What `GET /_bench/stats` answers: [`Served`] and the paged set's request intervals.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Requests and bytes served.
    #[serde(flatten)]
    pub served: Served,
    /// `[arrival, answered]` of each `/records` request since the last paged setup, UNIX
    /// microseconds (the clock the child's commit intervals are taken on).
    #[serde(default)]
    pub paged_fetches: Vec<[u64; 2]>,
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
            .route("/records", get(records))
            .route("/_bench/paged/setup/{page}/{latency_ms}", get(paged_setup))
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

    /// Serves `records` (each record's JSON and `updated` in UNIX milliseconds, ascending)
    /// at `/records`, in pages of the request's `limit` and without latency until a setup
    /// call says otherwise; returns the bytes of all records.
    pub fn install_paged(&self, records: Vec<(String, i64)>) -> usize {
        let bytes = records.iter().map(|(r, _)| r.len()).sum();
        let (records, updated_ms) = records.into_iter().unzip();
        *write(&self.state.paged) = Some(Arc::new(PagedSet {
            records,
            updated_ms,
            page: AtomicUsize::new(0),
            latency_ms: AtomicU64::new(0),
            fetches: Mutex::new(Vec::new()),
        }));
        bytes
    }

    /// Stops serving the paged records and frees them.
    pub fn remove_paged(&self) {
        *write(&self.state.paged) = None;
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
    let paged_fetches = read(&state.paged).as_ref().map_or_else(Vec::new, |p| {
        p.fetches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    });
    axum::Json(Stats {
        served: served(&state),
        paged_fetches,
    })
    .into_response()
}

/// UNIX time in microseconds: the clock both the mock's request intervals and the child's
/// commit intervals are read on (two processes, one machine).
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

async fn paged_setup(
    State(state): State<Arc<MockState>>,
    Path((page, latency_ms)): Path<(usize, u64)>,
) -> Response {
    match read(&state.paged).as_ref() {
        Some(set) => {
            set.page.store(page, Ordering::Relaxed);
            set.latency_ms.store(latency_ms, Ordering::Relaxed);
            set.fetches
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clear();
            (StatusCode::OK, "ok").into_response()
        }
        None => (StatusCode::NOT_FOUND, "no paged set").into_response(),
    }
}

/// One page of the paged records: `since` (RFC 3339, inclusive) picks the records updated
/// at or after it, `cursor=o<offset>` where the previous page ended, `limit` how many.
async fn records(
    State(state): State<Arc<MockState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let arrived = unix_micros();
    let Some(set) = read(&state.paged).clone() else {
        return (StatusCode::NOT_FOUND, "no paged set").into_response();
    };
    let bad = |what: &str| (StatusCode::BAD_REQUEST, what.to_owned()).into_response();
    let from = match query.get("since") {
        None => 0,
        Some(t) => match connector_core::source::time::parse_millis(t) {
            Some(ms) => set.updated_ms.partition_point(|&u| u < ms),
            None => return bad("since is not a time"),
        },
    };
    let Some(limit) = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|&l| l > 0)
    else {
        return bad("limit must be a whole number greater than 0");
    };
    let offset = match query.get("cursor") {
        None => 0,
        Some(c) => match c.strip_prefix('o').and_then(|o| o.parse::<usize>().ok()) {
            Some(o) => o,
            None => return bad("unknown cursor"),
        },
    };
    let page = match set.page.load(Ordering::Relaxed) {
        0 => limit,
        page => page,
    };
    tokio::time::sleep(Duration::from_millis(
        set.latency_ms.load(Ordering::Relaxed),
    ))
    .await;
    let matching = set.records.get(from..).unwrap_or_default();
    let start = offset.min(matching.len());
    let end = offset.saturating_add(page).min(matching.len());
    let next = if end < matching.len() {
        format!("\"o{end}\"")
    } else {
        "null".to_owned()
    };
    let body = format!(
        "{{\"records\":[{}],\"next\":{next}}}",
        matching[start..end].join(",")
    );
    state.requests.fetch_add(1, Ordering::Relaxed);
    state.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    set.fetches
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push([arrived, unix_micros()]);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
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
