//! Worker membership: the live count each worker's fair share is computed from.

mod common;

use std::time::Duration;

use common::{backend, unique_prefix};
use connector_core::ports::Membership;

#[tokio::test]
async fn workers_count_each_other_per_group_until_they_leave_or_lapse() {
    let prefix = unique_prefix("members");
    let redis = backend(&prefix).await;
    let ttl = Duration::from_millis(400);
    assert_eq!(redis.heartbeat("g", "w1", ttl).await.expect("redis"), 1);
    assert_eq!(redis.heartbeat("g", "w2", ttl).await.expect("redis"), 2);
    assert_eq!(
        redis.heartbeat("other", "w3", ttl).await.expect("redis"),
        1,
        "another connector set is another group"
    );
    assert_eq!(
        redis.heartbeat("g", "w1", ttl).await.expect("redis"),
        2,
        "a heartbeat is not a second member"
    );
    redis.leave("g", "w2").await.expect("redis");
    assert_eq!(
        redis.heartbeat("g", "w1", ttl).await.expect("redis"),
        1,
        "a leaver counts no more"
    );
    redis
        .heartbeat("g", "w2", Duration::from_millis(100))
        .await
        .expect("redis");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        redis.heartbeat("g", "w1", ttl).await.expect("redis"),
        1,
        "a worker that stopped heartbeating lapses after its TTL"
    );
}
