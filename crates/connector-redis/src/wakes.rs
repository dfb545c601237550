//! Webhook wakes through Redis: the process that receives a webhook may not hold the
//! connector's lease (a Service balances across replicas), so it publishes the wake on one
//! channel and every process listens on one subscription (not one per connector: a worker
//! may run ten thousand). The holder polls; the others ignore it.
//!
//! Pub/sub rather than a key the holder watches: a wake arrives in about a round trip and
//! costs no polling of Redis, but one published while a process is disconnected is not
//! delivered to it. A wake is a hint, so that loss costs latency only: the scheduled poll
//! still comes. Delivery ids are `SET NX PX` keys, so a replay is recognised by whichever
//! replica receives it.

use std::time::Duration;

use connector_core::ports::{BackendError, BoxFuture, WAKE_QUEUE, Wake, Wakes};
use fred::interfaces::{ClientLike, EventInterface, KeysInterface, PubsubInterface};
use fred::types::{Expiration, SetOptions};

use crate::backend::{RedisBackend, fail};

impl Wakes for RedisBackend {
    fn first_delivery<'a>(
        &'a self,
        connector: &'a str,
        delivery: &'a str,
        window: Duration,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let key = self.keys.delivery(connector, delivery);
            let ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1);
            let set: Option<String> = self
                .client
                .set(
                    key,
                    "1",
                    Some(Expiration::PX(ms)),
                    Some(SetOptions::NX),
                    false,
                )
                .await
                .map_err(fail("webhook delivery check"))?;
            Ok(set.is_some())
        })
    }

    fn forget_delivery<'a>(
        &'a self,
        connector: &'a str,
        delivery: &'a str,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            self.client
                .del::<(), _>(self.keys.delivery(connector, delivery))
                .await
                .map_err(fail("webhook delivery check"))
        })
    }

    fn wake<'a>(&'a self, wake: &'a Wake) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let message = serde_json::to_string(wake).unwrap_or_default();
            self.client
                .publish::<(), _, _>(self.keys.wake_channel(), message)
                .await
                .map_err(fail("webhook wake"))
        })
    }

    fn listen(&self) -> BoxFuture<'_, Result<tokio::sync::mpsc::Receiver<Wake>, BackendError>> {
        Box::pin(async move {
            let subscriber = &self.subscriber;
            if !self
                .listening
                .swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                if let Err(e) = subscriber.init().await {
                    self.listening
                        .store(false, std::sync::atomic::Ordering::SeqCst);
                    let _ = subscriber.quit().await;
                    return Err(fail("webhook subscription")(e));
                }
                // Subscribed again after every reconnection.
                // Detached: it ends with the client.
                drop(subscriber.manage_subscriptions());
            }
            let (tx, rx) = tokio::sync::mpsc::channel(WAKE_QUEUE);
            let mut messages = subscriber.message_rx();
            tokio::spawn(async move {
                loop {
                    match messages.recv().await {
                        Ok(message) => {
                            let Some(text) = message.value.as_str() else {
                                continue;
                            };
                            let Ok(wake) = serde_json::from_str::<Wake>(&text) else {
                                tracing::debug!(
                                    "ignored a message on the wake channel that is not a wake"
                                );
                                continue;
                            };
                            if tx.try_send(wake).is_err() && tx.is_closed() {
                                return;
                            }
                        }
                        // Behind by some messages: they only asked for polls now, which the
                        // ones that follow ask too.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
            subscriber
                .subscribe(self.keys.wake_channel())
                .await
                .map_err(fail("webhook subscription"))?;
            Ok(rx)
        })
    }
}
