//! Connections a commit holds alone, from its `WATCH` to its `EXEC`.
//!
//! `WATCH` is a property of a connection: on the shared, multiplexed client another task's
//! `EXEC` would clear it. So a large commit borrows one of a few dedicated connections for
//! its two round trips and gives it back afterwards.
//!
//! These clients never reconnect. If a connection drops between the `WATCH` and the
//! `EXEC`, the commands still queued must fail rather than go out on a fresh connection,
//! where no `WATCH` would guard them: a client that saw any error is closed, never reused,
//! and the next commit opens a new one.

use std::sync::Mutex;

use fred::clients::Client;
use fred::interfaces::ClientLike;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::backend::build_client;
use crate::settings::RedisSettings;

/// Large commits in flight at once, per backend. More would only queue in Redis, which
/// runs one command at a time, while holding connections.
const MAX_CONNECTIONS: usize = 4;

pub(crate) struct Exclusive {
    settings: RedisSettings,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
}

impl Exclusive {
    pub(crate) fn new(settings: RedisSettings) -> Self {
        Self {
            settings,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(MAX_CONNECTIONS),
        }
    }

    /// A connected client for this caller alone, opened if none is idle.
    pub(crate) async fn take(&self) -> Result<Held<'_>, fred::error::Error> {
        let permit = self.permits.acquire().await.map_err(|_| {
            fred::error::Error::new(fred::error::ErrorKind::Canceled, "the backend is closing")
        })?;
        let reused = self.lock().pop().filter(Client::is_connected);
        let client = match reused {
            Some(client) => client,
            None => {
                let client = build_client(&self.settings, None)?;
                client.init().await?;
                client
            }
        };
        Ok(Held {
            pool: self,
            client: Some(client),
            reusable: false,
            _permit: permit,
        })
    }

    /// Closes the idle connections and refuses new commits.
    pub(crate) async fn close(&self) {
        self.permits.close();
        let idle = std::mem::take(&mut *self.lock());
        for client in idle {
            let _ = client.quit().await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Client>> {
        // A panic while holding the lock cannot leave the list half-changed.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A borrowed connection. Dropped without [`Held::reusable`], it is closed.
pub(crate) struct Held<'a> {
    pool: &'a Exclusive,
    client: Option<Client>,
    reusable: bool,
    _permit: SemaphorePermit<'a>,
}

impl Held<'_> {
    pub(crate) fn client(&self) -> &Client {
        // Only `Drop` takes the client out.
        self.client.as_ref().unwrap_or_else(|| unreachable!())
    }

    /// The exchange ended cleanly (no error, no `WATCH` left): the connection may serve
    /// the next commit.
    pub(crate) fn reusable(&mut self) {
        self.reusable = true;
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        if self.reusable && client.is_connected() && !self.pool.permits.is_closed() {
            self.pool.lock().push(client);
        } else if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = client.quit().await;
            });
        }
    }
}
