#![doc = include_str!("../README.md")]

pub mod budget;
pub mod clock;
pub mod config;
pub mod context;
pub mod detect;
pub mod embedded;
pub mod http;
/// Every kind of credential (`crate::http::auth`, at the top level for providers).
pub use http::auth;
pub mod lease;
pub mod page;
pub mod pipeline;
pub mod pool;
pub mod ports;
pub mod ratelimit;
pub mod record;
pub mod redact;
pub mod registry;
pub mod retry;
pub mod signal;
pub mod source;
pub mod spec;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod webhook;

pub use config::{ConfigErrors, ConfigSource, ConnectorConfig, Environment};
pub use context::{Backends, ConnectorContext};
pub use pipeline::{
    FetchError, ItemKey, Page, PageEvent, Pages, PollError, PollingConnector, Provider, StreamSpec,
    UniversalPollingConnector,
};
pub use ports::{Cursor, Lease, PollSummary};
pub use record::Record;
pub use registry::{ConnectorRegistry, Factories};
pub use signal::{Change, Description, ItemError, RawSignal, Severity, StreamEntry};
