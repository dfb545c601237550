//! The Lua scripts, compiled into the binary from `lua/*.lua` and run by SHA.
//!
//! Each script is hashed once at start-up ([`Script::from_lua`]), loaded on connect, and
//! called with `evalsha_with_reload`: after a `SCRIPT FLUSH`, a restart or a failover to a
//! replica whose script cache is empty, the first call gets `NOSCRIPT`, loads the script
//! and runs it again, so callers never see that error.

use fred::clients::Client;
use fred::types::scripts::Script;

/// The scripts this backend runs.
#[derive(Debug, Clone)]
pub(crate) struct Scripts {
    /// INCR the fence, SET the lease NX PX.
    pub acquire: Script,
    /// Compare-and-PEXPIRE.
    pub renew: Script,
    /// Compare-and-DEL.
    pub release: Script,
    /// GET + PTTL.
    pub holder: Script,
    /// The fenced commit of one chunk.
    pub commit: Script,
    /// Folds one poll into the metrics hash.
    pub record_metrics: Script,
    /// Marks a worker alive and counts the live ones.
    pub heartbeat: Script,
    /// An operator's reset or change of state, advancing its write count.
    pub state_change: Script,
    /// Takes one request from a shared rate budget.
    pub budget_take: Script,
    /// Takes in what a response said of a rate limit.
    pub budget_learn: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            acquire: Script::from_lua(include_str!("../lua/lease_acquire.lua")),
            renew: Script::from_lua(include_str!("../lua/lease_renew.lua")),
            release: Script::from_lua(include_str!("../lua/lease_release.lua")),
            holder: Script::from_lua(include_str!("../lua/lease_holder.lua")),
            commit: Script::from_lua(include_str!("../lua/commit.lua")),
            record_metrics: Script::from_lua(include_str!("../lua/metrics_record.lua")),
            heartbeat: Script::from_lua(include_str!("../lua/workers_heartbeat.lua")),
            state_change: Script::from_lua(include_str!("../lua/state_change.lua")),
            budget_take: Script::from_lua(include_str!("../lua/budget_take.lua")),
            budget_learn: Script::from_lua(include_str!("../lua/budget_learn.lua")),
        }
    }

    /// `SCRIPT LOAD`s every script (on every primary of a cluster), so the first calls
    /// need no reload round trip.
    pub(crate) async fn load(&self, client: &Client) -> Result<(), fred::error::Error> {
        for script in [
            &self.acquire,
            &self.renew,
            &self.release,
            &self.holder,
            &self.commit,
            &self.record_metrics,
            &self.heartbeat,
            &self.state_change,
            &self.budget_take,
            &self.budget_learn,
        ] {
            script.load(client).await?;
        }
        Ok(())
    }
}
