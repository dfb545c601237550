#![doc = include_str!("../README.md")]

pub mod auth;
pub mod budget;
pub mod config;
pub mod context;
pub mod detect;
pub mod embedded;
pub mod http;
pub mod lease;
pub mod page;
pub mod pipeline;
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
pub use context::ConnectorContext;
pub use pipeline::{
    FetchError, ItemKey, Page, PageEvent, Pages, PollError, PollingConnector, Provider, StreamSpec,
    UniversalPollingConnector,
};
pub use ports::{Backends, Cursor, Lease, PollSummary};
pub use record::Record;
pub use registry::{ConnectorRegistry, Factories};
pub use signal::{Change, Description, ItemError, RawSignal, Severity, StreamEntry};
