#![doc = include_str!("../README.md")]

mod backend;
mod budgets;
mod commit;
mod keys;
mod lease;
pub mod metrics;
mod scripts;
pub mod settings;
pub mod state;
#[cfg(feature = "testing")]
pub mod testing;
mod wakes;

pub use backend::{ConnectError, RedisBackend};
pub use keys::InvalidPrefix;
pub use lease::parse_lease_value;
pub use settings::{RedisSettings, SettingsError, Topology};
