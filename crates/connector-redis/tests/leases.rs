//! Leases on the real Redis: one writer per connector, fencing tokens, expiry, release.

mod common;

use std::time::Duration;

use common::{backend, inspector, key_type, unique_prefix};
use connector_core::ports::{LeaseManager, Renewal};
use fred::prelude::KeysInterface;

const TTL: Duration = Duration::from_millis(300);

/// Waits out a lease TTL (the one kind of sleep these tests allow), with a margin.
async fn let_lapse(ttl: Duration) {
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
}

#[tokio::test]
async fn of_two_instances_racing_for_a_lease_exactly_one_wins() {
    let prefix = unique_prefix("race");
    // Two backends, two connections: two processes as far as Redis can tell.
    let (a, b) = (backend(&prefix).await, backend(&prefix).await);
    for round in 0..20 {
        let name = format!("race-{round}");
        let (got_a, got_b) = tokio::join!(
            a.acquire(&name, "instance-a", TTL),
            b.acquire(&name, "instance-b", TTL)
        );
        let (got_a, got_b) = (got_a.expect("backend a"), got_b.expect("backend b"));
        assert!(
            got_a.is_some() != got_b.is_some(),
            "round {round}: exactly one must win, got {got_a:?} and {got_b:?}"
        );
        let winner = got_a.or(got_b).expect("one winner");
        assert_eq!(winner.token, 1, "the first acquisition takes token 1");
        let holder = a.holder(&name).await.expect("holder").expect("held");
        assert_eq!(holder.instance_id, winner.instance_id);
        assert_eq!(holder.token, winner.token);
        assert!(holder.ttl_ms.is_some_and(|t| t <= 300), "{holder:?}");
    }
}

#[tokio::test]
async fn the_loser_acquires_once_the_winners_ttl_lapses_without_renewal() {
    let prefix = unique_prefix("lapse");
    let (a, b) = (backend(&prefix).await, backend(&prefix).await);
    let first = a
        .acquire("lapse", "a", TTL)
        .await
        .expect("a")
        .expect("free");
    assert_eq!(
        b.acquire("lapse", "b", TTL).await.expect("b"),
        None,
        "held by a"
    );
    let_lapse(TTL).await;
    assert_eq!(a.holder("lapse").await.expect("holder"), None, "lapsed");
    let second = b
        .acquire("lapse", "b", TTL)
        .await
        .expect("b")
        .expect("lapsed, so free");
    assert!(
        second.token > first.token,
        "tokens only grow: {first:?} then {second:?}"
    );
    assert_eq!(
        a.renew(&first, TTL).await.expect("renew"),
        Renewal::Taken,
        "a lost it"
    );
}

#[tokio::test]
async fn a_release_lets_another_instance_in_at_once() {
    let prefix = unique_prefix("release");
    let (a, b) = (backend(&prefix).await, backend(&prefix).await);
    let long = Duration::from_secs(60);
    let lease = a.acquire("rel", "a", long).await.expect("a").expect("free");
    assert!(b.acquire("rel", "b", long).await.expect("b").is_none());
    a.release(&lease).await.expect("release");
    let taken = b
        .acquire("rel", "b", long)
        .await
        .expect("b")
        .expect("released");
    assert_eq!(taken.token, lease.token + 1);
    // A late release by the old holder must not free the new holder's lease.
    a.release(&lease).await.expect("second release");
    let holder = b.holder("rel").await.expect("holder").expect("still held");
    assert_eq!(
        (holder.instance_id.as_str(), holder.token),
        ("b", taken.token)
    );
}

#[tokio::test]
async fn renewal_fails_once_another_instance_took_the_lease() {
    let prefix = unique_prefix("renew");
    let (a, b) = (backend(&prefix).await, backend(&prefix).await);
    let lease = a.acquire("ren", "a", TTL).await.expect("a").expect("free");
    assert_eq!(
        a.renew(&lease, TTL).await.expect("renew"),
        Renewal::Renewed,
        "still ours"
    );
    let_lapse(TTL).await;
    assert_eq!(
        a.renew(&lease, TTL).await.expect("renew"),
        Renewal::Vanished,
        "lapsed, and nobody holds it: not said to be another's"
    );
    let taken = b
        .acquire("ren", "b", Duration::from_secs(60))
        .await
        .expect("b")
        .expect("lapsed");
    assert_eq!(
        a.renew(&lease, TTL).await.expect("renew"),
        Renewal::Taken,
        "b holds it now"
    );
    // Same instance id, old token: still not ours.
    let same_name = connector_core::Lease {
        instance_id: "b".into(),
        ..lease.clone()
    };
    assert_eq!(
        a.renew(&same_name, TTL).await.expect("renew"),
        Renewal::Taken
    );
    assert_eq!(b.renew(&taken, TTL).await.expect("renew"), Renewal::Renewed);
}

#[tokio::test]
async fn renewal_extends_the_ttl() {
    let prefix = unique_prefix("extend");
    let a = backend(&prefix).await;
    let lease = a.acquire("ext", "a", TTL).await.expect("a").expect("free");
    assert_eq!(
        a.renew(&lease, Duration::from_secs(60))
            .await
            .expect("renew"),
        Renewal::Renewed
    );
    let holder = a.holder("ext").await.expect("holder").expect("held");
    assert!(holder.ttl_ms.is_some_and(|t| t > 50_000), "{holder:?}");
}

#[tokio::test]
async fn force_release_frees_a_stuck_lease_but_keeps_the_fence() {
    let prefix = unique_prefix("force");
    let a = backend(&prefix).await;
    let lease = a
        .acquire("stuck", "a", Duration::from_secs(60))
        .await
        .expect("a")
        .expect("free");
    assert!(a.force_release("stuck").await.expect("force"));
    assert!(
        !a.force_release("stuck").await.expect("force"),
        "nothing left"
    );
    let next = a
        .acquire("stuck", "b", Duration::from_secs(60))
        .await
        .expect("b")
        .expect("free");
    assert_eq!(
        next.token,
        lease.token + 1,
        "the counter survives a forced release"
    );
    let redis = inspector().await;
    let fence: String = redis
        .get(common::layout(&a).fence("stuck"))
        .await
        .expect("GET");
    assert_eq!(fence, "2");
    assert_eq!(
        key_type(&redis, &common::layout(&a).fence("stuck")).await,
        "string"
    );
}

#[tokio::test]
async fn a_malformed_lease_value_is_reported_not_misread() {
    let prefix = unique_prefix("malformed");
    let a = backend(&prefix).await;
    let redis = inspector().await;
    let () = redis
        .set(
            common::layout(&a).lease("odd"),
            "garbage",
            None,
            None,
            false,
        )
        .await
        .expect("SET");
    let err = a.holder("odd").await.expect_err("not a lease value");
    assert!(err.to_string().contains("force-release"), "{err}");
}
