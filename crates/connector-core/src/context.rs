//! What the connectors of one process share, handed to each explicitly: the HTTP
//! connection pool, the rate-limit holds, the hook told of every response, the stop
//! signal and the clock. Nothing of it is a process global, so two tests (or two
//! embedded uses in one program) share nothing unless they share a [`Context`].

use std::sync::Arc;

pub use crate::clock::{Clock, ManualClock, Stop, SystemClock};
use crate::config::ConnectorConfig;
use crate::pool::ClientSettings;
use crate::ports::{
    LeaseManager, LocalWakes, Membership, MetricsStore, Publisher, StateStore, Wakes,
};
use crate::ratelimit::Holds;
use crate::redact::Redactor;

/// A hook told of every HTTP attempt: the connector's name and the status (`None` for a
/// timeout or connection error). The runtime counts requests by status with it. (A trait
/// rather than `dyn Fn(&str, ..)`: a higher-ranked closure type inside the client would
/// keep the compiler from proving a request's future `Send`.)
pub trait ResponseObserver: Send + Sync {
    /// One attempt of `connector`'s ended with `status`.
    fn observe(&self, connector: &str, status: Option<u16>);
}

impl<F: Fn(&str, Option<u16>) + Send + Sync> ResponseObserver for F {
    fn observe(&self, connector: &str, status: Option<u16>) {
        self(connector, status);
    }
}

/// What the connectors of one process share. Cloning shares it.
#[derive(Clone)]
pub struct Context {
    client: reqwest::Client,
    holds: Arc<Holds>,
    observer: Option<Arc<dyn ResponseObserver>>,
    stop: Arc<Stop>,
    clock: Arc<dyn Clock>,
    redactor: Redactor,
    /// Reads note each record's fate in their pages (`poll --explain`).
    explaining: bool,
    /// Polls in flight at once: each holds its pages, requests and commits, so a worker
    /// with ten thousand connectors started together would otherwise hold ten thousand
    /// polls' worth at its peak.
    polls: Arc<tokio::sync::Semaphore>,
    /// The rate budgets its requests take from: this process's, or shared through a
    /// backend (Redis) across replicas.
    budgets: Arc<crate::budget::Budgets>,
}

/// Polls a process runs at once unless told otherwise (`MAX_CONCURRENT_POLLS`): enough
/// for 10,000 connectors at a 10 s interval against APIs answering in a quarter second.
pub const DEFAULT_CONCURRENT_POLLS: usize = 256;

impl Context {
    /// A context whose connections follow `settings` (proxies, extra CA certificates):
    /// one pool and one TLS configuration for every connector of the process (a worker
    /// with 1,000 connectors would otherwise load the roots 1,000 times).
    pub fn new(settings: &ClientSettings) -> Result<Self, String> {
        Ok(Self {
            client: settings.build_client()?,
            holds: Arc::default(),
            observer: None,
            stop: Arc::default(),
            clock: Arc::new(SystemClock),
            redactor: Redactor::new(),
            explaining: false,
            polls: Arc::new(tokio::sync::Semaphore::new(DEFAULT_CONCURRENT_POLLS)),
            budgets: Arc::new(crate::budget::Budgets::local()),
        })
    }

    /// The same, with at most `polls` polls in flight at once (at least one).
    pub fn with_concurrent_polls(mut self, polls: usize) -> Self {
        self.polls = Arc::new(tokio::sync::Semaphore::new(polls.max(1)));
        self
    }

    /// A turn to poll: waits while the process's polls in flight are at their limit; the
    /// poll ends its turn by dropping it.
    pub async fn poll_turn(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.polls.clone().acquire_owned().await.ok()
    }

    /// A context of its own, without proxies and with the system's roots (tests, library
    /// use).
    ///
    /// # Panics
    ///
    /// When the TLS provider cannot be set up at all (no client with this framework's
    /// redirect and credential rules could be built; a client without them is never handed
    /// out).
    pub fn isolated() -> Self {
        Self::new(&ClientSettings::default())
            .unwrap_or_else(|e| panic!("cannot build the HTTP client: {e}"))
    }

    /// The same, masking every credential learnt at run time (an OAuth access token) in
    /// `redactor` too: the process's log writer's.
    pub fn with_redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = redactor;
        self
    }

    /// The same, for `poll --explain`: each page a read returns notes what became of its
    /// records and the request it came from.
    pub fn explaining(mut self) -> Self {
        self.explaining = true;
        self
    }

    /// Whether reads note what became of each record ([`Context::explaining`]).
    pub fn explains(&self) -> bool {
        self.explaining
    }

    /// The process's redactor, which every token a connector obtains joins.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// The same, telling `hook` of every response.
    pub fn observing(mut self, hook: impl Fn(&str, Option<u16>) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(hook));
        self
    }

    /// The same, on `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Shares `budgets` (a backend's, across replicas) with this context's requests.
    pub fn with_budgets(mut self, budgets: Arc<crate::budget::Budgets>) -> Self {
        self.budgets = budgets;
        self
    }

    /// The rate budgets requests take from.
    pub fn budgets(&self) -> &crate::budget::Budgets {
        &self.budgets
    }

    /// The same budgets, to share with another context.
    pub fn shared_budgets(&self) -> Arc<crate::budget::Budgets> {
        Arc::clone(&self.budgets)
    }

    /// The connection pool.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The rate-limit holds.
    pub fn holds(&self) -> &Holds {
        &self.holds
    }

    /// The stop signal.
    pub fn stop(&self) -> &Stop {
        &self.stop
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// The stop signal and the clock, owned (for waits that outlive a borrow).
    pub(crate) fn shared_stop_and_clock(&self) -> (Arc<Stop>, Arc<dyn Clock>) {
        (self.stop.clone(), self.clock.clone())
    }

    /// Tells the observer of one response.
    pub fn observe(&self, connector: &str, status: Option<u16>) {
        if let Some(hook) = &self.observer {
            hook.observe(connector, status);
        }
    }
}

impl Default for Context {
    fn default() -> Self {
        Self::isolated()
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("stopping", &self.stop.stopping())
            .finish_non_exhaustive()
    }
}

/// One connector's config with the process's context: what a provider is built from.
#[derive(Debug, Clone)]
pub struct ConnectorContext {
    config: Arc<ConnectorConfig>,
    context: Context,
}

impl ConnectorContext {
    /// Connector `config` in `context`.
    pub fn new(config: Arc<ConnectorConfig>, context: Context) -> Self {
        Self { config, context }
    }

    /// Connector `config` in a context of its own (tests, tools).
    pub fn isolated(config: ConnectorConfig) -> Self {
        Self::new(Arc::new(config), Context::isolated())
    }

    /// The connector's universal settings.
    pub fn config(&self) -> &ConnectorConfig {
        &self.config
    }

    /// What it shares with the process's other connectors.
    pub fn context(&self) -> &Context {
        &self.context
    }
}

/// The ports together, as a connector and the runtime use them.
#[derive(Clone)]
pub struct Backends {
    /// Leases.
    pub leases: Arc<dyn LeaseManager>,
    /// State.
    pub state: Arc<dyn StateStore>,
    /// The fenced commit.
    pub publisher: Arc<dyn Publisher>,
    /// Metrics.
    pub metrics: Arc<dyn MetricsStore>,
    /// Live workers.
    pub membership: Arc<dyn Membership>,
    /// Webhook wakes and delivery ids.
    pub wakes: Arc<dyn Wakes>,
    /// What the process's connectors share (connection pool, rate-limit holds, response
    /// hook, stop signal, clock).
    pub context: Context,
}

impl Backends {
    /// Every port from one backend object that implements them all.
    pub fn from_one<B>(backend: Arc<B>) -> Self
    where
        B: LeaseManager + StateStore + Publisher + MetricsStore + Membership + 'static,
    {
        Self {
            leases: backend.clone(),
            state: backend.clone(),
            publisher: backend.clone(),
            metrics: backend.clone(),
            membership: backend,
            wakes: Arc::new(LocalWakes::default()),
            context: Context::isolated(),
        }
    }
}

#[cfg(test)]
mod poll_turn_tests {
    use super::*;
    use futures_util::FutureExt;

    #[tokio::test]
    async fn a_poll_waits_for_its_turn_while_the_limit_is_in_flight() {
        let context = Context::isolated().with_concurrent_polls(2);
        let first = context.poll_turn().await;
        let second = context.poll_turn().await;
        assert!(first.is_some() && second.is_some());
        assert!(
            context.poll_turn().now_or_never().is_none(),
            "a third waits while two are in flight"
        );
        drop(first);
        assert!(
            context.poll_turn().now_or_never().flatten().is_some(),
            "a turn given back is taken at once"
        );
    }
}
