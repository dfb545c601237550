//! The command line every connector binary shares.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Polls external APIs and appends every new or changed item to a Redis Stream.
///
/// With REDIS_URL set, state, leases and metrics live in Redis and signals go to the
/// connector's output stream. Without it, everything stays in this process and signals are
/// printed to standard output as JSON lines (logs go to standard error).
#[derive(Debug, Parser)]
#[command(version, propagate_version = true)]
pub struct Cli {
    /// The connector config file (default: ./connectors.json when it exists, else the
    /// environment alone).
    #[arg(
        long,
        global = true,
        env = "CONNECTORS_CONFIG_PATH",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Embedded mode only: keep each connector's state in this folder, so a restart does
    /// not publish everything again.
    #[arg(long, global = true, env = "STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The operator commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run connectors until SIGTERM/SIGINT: the one named (or CONNECTOR_NAME), else every
    /// enabled connector of a type this binary includes, each polled only while this
    /// process holds its lease.
    Run {
        /// Run only this connector.
        #[arg(env = "CONNECTOR_NAME")]
        name: Option<String>,
    },
    /// Supervise: one child process (`run NAME`) per enabled connector this binary runs,
    /// restarted with backoff when it dies; SIGHUP reloads the file, SIGTERM is forwarded.
    /// The supervisor serves HTTP_PORT; children get HTTP_PORT+1, HTTP_PORT+2, … (or `off`
    /// when HTTP_PORT is `off`).
    All,
    /// Ask the running process on HTTP_PORT (HTTP_BIND) whether it is ready: exit 0 when
    /// `/health/ready` answers 200, 1 otherwise. The container healthcheck (the image has
    /// no curl).
    Health,
    /// Load and check the configuration and say whether it is valid (exit 1 listing every
    /// mistake, file, line and field, or when there are no connectors at all).
    Validate {
        /// Also print the resolved configuration (defaults filled in, secrets hidden) as
        /// JSON on standard output.
        #[arg(long)]
        print: bool,
    },
    /// List the configured connectors and whether this binary can run them.
    List,
    /// Poll one connector once and print the summary; with --dry-run, print the signals
    /// it would publish as JSON lines and write nothing.
    Poll {
        /// The connector.
        name: String,
        /// Fetch, detect and transform only: commit nothing, change no state.
        #[arg(long)]
        dry_run: bool,
        /// Read the first page of each stream and say, record by record, its id, version
        /// and time, whether it is new, changed or unchanged, or why it was left out or
        /// failed, and what the next request would be. Writes nothing.
        #[arg(long, conflicts_with = "dry_run")]
        explain: bool,
        /// Accepted for symmetry with the guide's `--once`; a poll is always one poll.
        #[arg(long, hide = true)]
        once: bool,
    },
    /// Show or reset a connector's stored state (cursor and item versions).
    State {
        /// show | reset
        #[command(subcommand)]
        action: StateAction,
    },
    /// Show or force-release a connector's lease.
    Lease {
        /// show | release
        #[command(subcommand)]
        action: LeaseAction,
    },
    /// Show or clear the shared rate budgets (one per credential and API, learned from the
    /// APIs' rate-limit headers and shared by every replica).
    Budget {
        /// list | clear
        #[command(subcommand)]
        action: BudgetAction,
    },
    /// Print the stored metrics of one connector, or of all.
    Metrics {
        /// The connector (default: all configured).
        name: Option<String>,
    },
    /// Print the JSON Schema of connectors.json (point your editor's `$schema` at it).
    Schema,
    /// List the catalog of ready sources, one per line: its name (for `"use"` in an
    /// HTTP_JSON providerConfig), what it publishes, its auth and its required parameters.
    /// Needs no config and no Redis.
    Catalog {
        /// show NAME: print one entry's whole definition
        #[command(subcommand)]
        action: Option<CatalogAction>,
        /// Print the catalog page (Markdown) instead of the list.
        #[arg(long)]
        markdown: bool,
    },
}

/// `catalog` sub-commands.
#[derive(Debug, Subcommand)]
pub enum CatalogAction {
    /// Print an entry's whole definition (`NAME`, or `NAME@N` for one version) as JSON.
    Show {
        /// The entry, e.g. pagerduty/incidents.
        name: String,
    },
}

/// `state` sub-commands.
#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Print each stream's watermark, resume point, validators and number of recorded
    /// item versions (--versions for every id and version).
    Show {
        /// The connector.
        name: String,
        /// Print every recorded id and version.
        #[arg(long)]
        versions: bool,
    },
    /// Forget the state (of one stream with --stream), and end the lease so a running
    /// instance re-reads it: the next poll publishes every current item. With --since, the
    /// stream is read again from that time instead (its versions are kept, so only what
    /// changed is published).
    Reset {
        /// The connector.
        name: String,
        /// Only this stream (as `state show` names it; `""` is the main one).
        #[arg(long)]
        stream: Option<String>,
        /// Re-sync from this time (RFC 3339, e.g. 2026-11-01T00:00:00Z) instead of forgetting.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
    },
}

/// `budget` sub-commands.
#[derive(Debug, Subcommand)]
pub enum BudgetAction {
    /// Print every budget: requests left, when its window ends, a hold and the header
    /// that set it. A budget is named by an HMAC of its credential, never the credential.
    List,
    /// Forget a budget (its count and hold): the next request under it goes, and learns
    /// the limit again from the API's answer.
    Clear {
        /// The budget's name, as `budget list` prints it.
        key: String,
    },
}

/// `lease` sub-commands.
#[derive(Debug, Subcommand)]
pub enum LeaseAction {
    /// Print the holder, its fencing token and the time left.
    Show {
        /// The connector.
        name: String,
    },
    /// Delete the lease whoever holds it; the holder's next commit is fenced.
    Release {
        /// The connector.
        name: String,
    },
}
