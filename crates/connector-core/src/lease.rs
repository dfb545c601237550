//! Keeping a lease: renewal every TTL/3 and an immediate signal when it is lost.
//!
//! Whoever polls under a lease must stop the moment the lease is gone, or it becomes the
//! zombie the fencing token exists to stop. [`LeaseKeeper`] renews in the background and
//! cancels [`LeaseKeeper::lost`] when a renewal is refused, or when renewals have failed
//! (backend unreachable) for longer than the TTL, since by then the lease has lapsed
//! whatever the backend says later.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ports::{Lease, LeaseManager, Renewal};

/// A held lease with its renewal task.
pub struct LeaseKeeper {
    lease: Lease,
    lost: CancellationToken,
    stop: CancellationToken,
    task: JoinHandle<()>,
    leases: Arc<dyn LeaseManager>,
}

impl LeaseKeeper {
    /// Starts renewing `lease` every `ttl / 3`.
    pub fn start(leases: Arc<dyn LeaseManager>, lease: Lease, ttl: Duration) -> Self {
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        let task = tokio::spawn(renew_loop(
            leases.clone(),
            lease.clone(),
            ttl,
            lost.clone(),
            stop.clone(),
        ));
        Self {
            lease,
            lost,
            stop,
            task,
            leases,
        }
    }

    /// The lease, to pass to polls.
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Cancelled when the lease is lost; polling must stop at once.
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// [`LeaseKeeper::release`] through a borrow, for a holder that ends its task while the
    /// keeper is still lent out: renewals stop and the lease is given up (if still ours).
    pub async fn release_now(&self) {
        self.stop.cancel();
        if !self.lost.is_cancelled()
            && let Err(e) = self.leases.release(&self.lease).await
        {
            tracing::warn!(connector = %self.lease.connector, error = %e, "could not release lease; it will lapse after its TTL");
        }
    }

    /// Stops renewing and gives the lease up (if still ours) so another instance can take
    /// over without waiting for the TTL.
    pub async fn release(self) {
        self.stop.cancel();
        let _ = self.task.await;
        if !self.lost.is_cancelled()
            && let Err(e) = self.leases.release(&self.lease).await
        {
            tracing::warn!(connector = %self.lease.connector, error = %e, "could not release lease; it will lapse after its TTL");
        }
    }
}

async fn renew_loop(
    leases: Arc<dyn LeaseManager>,
    lease: Lease,
    ttl: Duration,
    lost: CancellationToken,
    stop: CancellationToken,
) {
    let every = (ttl / 3).max(Duration::from_millis(10));
    let mut last_ok = Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match leases.renew(&lease, ttl).await {
            Ok(Renewal::Renewed) => last_ok = Instant::now(),
            Ok(Renewal::Taken) => {
                tracing::warn!(connector = %lease.connector, token = lease.token, "lease lost to another instance");
                lost.cancel();
                return;
            }
            Ok(Renewal::Vanished) => {
                tracing::warn!(
                    connector = %lease.connector,
                    token = lease.token,
                    "lease gone: it lapsed (this process stalled past its TTL) or Redis lost it; \
                     polling stops and the lease is taken again"
                );
                lost.cancel();
                return;
            }
            Err(e) if last_ok.elapsed() >= ttl => {
                tracing::warn!(connector = %lease.connector, error = %e, "lease renewals failed for a whole TTL; treating it as lost");
                lost.cancel();
                return;
            }
            Err(e) => {
                tracing::warn!(connector = %lease.connector, error = %e, "lease renewal failed; retrying");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::EmbeddedBackend;

    #[tokio::test(start_paused = true)]
    async fn renewal_keeps_the_lease_and_a_takeover_is_noticed() {
        let backend = Arc::new(EmbeddedBackend::in_memory());
        let ttl = Duration::from_secs(3);
        let lease = backend
            .acquire("c", "a", ttl)
            .await
            .expect("backend")
            .expect("free");
        let keeper = LeaseKeeper::start(backend.clone(), lease, ttl);
        // Several TTLs pass; renewals keep it.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!keeper.lost().is_cancelled());
        let holder = backend.holder("c").await.expect("backend").expect("held");
        assert_eq!(holder.instance_id, "a");
        // Another instance takes it (as after a long pause): the keeper notices.
        backend.steal_lease("c", "b", ttl);
        tokio::time::timeout(Duration::from_secs(2), keeper.lost().cancelled())
            .await
            .expect("loss noticed within one renewal period");
        keeper.release().await;
        let holder = backend.holder("c").await.expect("backend").expect("held");
        assert_eq!(
            holder.instance_id, "b",
            "release never removes another's lease"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn release_frees_the_lease_at_once() {
        let backend = Arc::new(EmbeddedBackend::in_memory());
        let ttl = Duration::from_secs(30);
        let lease = backend
            .acquire("c", "a", ttl)
            .await
            .expect("ok")
            .expect("free");
        LeaseKeeper::start(backend.clone(), lease, ttl)
            .release()
            .await;
        assert!(backend.acquire("c", "b", ttl).await.expect("ok").is_some());
    }
}
