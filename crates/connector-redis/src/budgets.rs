//! Shared rate budgets in Redis: one hash per budget (`{prefix}budget:{<hmac>}`), taken
//! from and taught by one script each, so every replica sending under one credential
//! paces by the same count; and the deployment's key that names the budgets.

use std::time::Duration;

use connector_core::budget::{BURST, Budget, Ceiling, Learned, MAX_HOLD_MS, SharedBudgets};
use connector_core::ports::{BackendError, BoxFuture};
use fred::interfaces::{HashesInterface, KeysInterface};
use fred::types::SetOptions;
use futures_util::StreamExt;

use crate::backend::{RedisBackend, fail};
use crate::settings::Topology;

impl RedisBackend {
    /// The deployment's key that names budgets: set once, by whichever worker comes
    /// first, and read by every other (so replicas name a credential's budget alike).
    pub async fn budget_secret(&self) -> Result<Vec<u8>, BackendError> {
        let key = self.keys.budget_secret();
        let fresh = connector_core::budget::new_secret();
        let _: Option<String> = self
            .client
            .set(&key, fresh.as_str(), None, Some(SetOptions::NX), false)
            .await
            .map_err(fail("budget secret"))?;
        let stored: Option<String> = self.client.get(&key).await.map_err(fail("budget secret"))?;
        stored
            .map(String::into_bytes)
            .ok_or_else(|| BackendError::new("budget secret", "the key vanished after it was set"))
    }

    /// Every budget key stored (its hmac).
    async fn budget_keys(&self) -> Result<Vec<String>, BackendError> {
        let pattern = self.keys.budgets_pattern();
        let stream = match self.topology {
            Topology::Cluster => self
                .client
                .scan_cluster_buffered(pattern, Some(1000), None)
                .boxed(),
            _ => self.client.scan_buffered(pattern, Some(1000), None).boxed(),
        };
        let keys: Vec<_> = stream.collect().await;
        let mut out = Vec::new();
        for key in keys {
            let key = key.map_err(fail("budget list"))?;
            let Some(text) = key.as_str() else { continue };
            if let Some(name) = text
                .rsplit_once("budget:{")
                .and_then(|(_, rest)| rest.strip_suffix('}'))
            {
                out.push(name.to_owned());
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

fn field<T: std::str::FromStr>(
    fields: &std::collections::HashMap<String, String>,
    name: &str,
) -> Option<T> {
    fields.get(name).and_then(|v| v.parse().ok())
}

fn budget_of(fields: &std::collections::HashMap<String, String>) -> Budget {
    Budget {
        remaining: field(fields, "rem"),
        reset_ms: field(fields, "reset"),
        hold_until_ms: field(fields, "hold"),
        tat_ms: field(fields, "tat").unwrap_or(0),
        interval_ms: field(fields, "interval").unwrap_or(0),
        burst_ms: field(fields, "ahead").unwrap_or(0),
        source: fields.get("src").cloned(),
        // Redis forgets it by itself (PEXPIREAT).
        expires_ms: 0,
        configured: field(fields, "ceil") == Some(1),
        unsynced: false,
    }
}

impl SharedBudgets for RedisBackend {
    fn take<'a>(
        &'a self,
        key: &'a str,
        now_ms: i64,
        ceiling: Option<Ceiling>,
    ) -> BoxFuture<'a, Result<Option<Duration>, BackendError>> {
        Box::pin(async move {
            let (requests, window) = match ceiling {
                Some(c) => (c.requests.to_string(), c.window_ms.to_string()),
                None => (String::new(), String::new()),
            };
            let wait: i64 = self
                .scripts
                .budget_take
                .evalsha_with_reload(
                    &self.client,
                    self.keys.budget(key),
                    vec![now_ms.to_string(), BURST.to_string(), requests, window],
                )
                .await
                .map_err(fail("budget take"))?;
            // -1: nothing stored for this budget.
            Ok(u64::try_from(wait).ok().map(Duration::from_millis))
        })
    }

    fn learn<'a>(
        &'a self,
        key: &'a str,
        learned: &'a Learned,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let text = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
            let (left, reset) = match learned.remaining {
                Some((left, reset)) => (left.to_string(), reset.to_string()),
                None => (String::new(), String::new()),
            };
            let _: i64 = self
                .scripts
                .budget_learn
                .evalsha_with_reload(
                    &self.client,
                    self.keys.budget(key),
                    vec![
                        now_ms.to_string(),
                        left,
                        reset,
                        text(learned.hold_until_ms),
                        learned.source.clone(),
                        MAX_HOLD_MS.to_string(),
                        BURST.to_string(),
                    ],
                )
                .await
                .map_err(fail("budget learn"))?;
            Ok(())
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<(String, Budget)>, BackendError>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for name in self.budget_keys().await? {
                let fields: std::collections::HashMap<String, String> = self
                    .client
                    .hgetall(self.keys.budget(&name))
                    .await
                    .map_err(fail("budget list"))?;
                if !fields.is_empty() {
                    out.push((name, budget_of(&fields)));
                }
            }
            Ok(out)
        })
    }

    fn clear<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let removed: i64 = self
                .client
                .del(self.keys.budget(key))
                .await
                .map_err(fail("budget clear"))?;
            Ok(removed > 0)
        })
    }
}
