//! Leases with fencing tokens, each operation one Lua script (or one command).
//!
//! The lease key holds `<instance-id>:<token>` with a PX TTL. Every check compares that
//! whole value, not just the instance id: a restarted process that kept its id but took a
//! new token must not renew, release or write under the old one.

use std::time::Duration;

use connector_core::ports::{BackendError, BoxFuture, Lease, LeaseInfo, LeaseManager, Renewal};
use fred::interfaces::KeysInterface;

use crate::backend::{RedisBackend, fail};

/// The lease key's value for a holder (the backend's own business: the commit script and
/// the lease scripts compare it whole).
pub(crate) fn lease_value(instance_id: &str, token: u64) -> String {
    format!("{instance_id}:{token}")
}

/// Splits a lease value at its last `:` (instance ids may contain colons themselves).
pub fn parse_lease_value(value: &str) -> Option<(&str, u64)> {
    let (instance, token) = value.rsplit_once(':')?;
    Some((instance, token.parse().ok()?))
}

/// A TTL as `PX` wants it: whole milliseconds, at least one (`PX 0` is an error).
fn ttl_millis(ttl: Duration) -> String {
    ttl.as_millis().clamp(1, u128::from(u64::MAX)).to_string()
}

impl LeaseManager for RedisBackend {
    fn acquire<'a>(
        &'a self,
        connector: &'a str,
        instance_id: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Option<Lease>, BackendError>> {
        Box::pin(async move {
            let keys = vec![self.keys.lease(connector), self.keys.fence(connector)];
            let token: Option<u64> = self
                .scripts
                .acquire
                .evalsha_with_reload(
                    &self.client,
                    keys,
                    vec![instance_id.to_owned(), ttl_millis(ttl)],
                )
                .await
                .map_err(fail("acquire lease"))?;
            Ok(token.map(|token| Lease {
                connector: connector.to_owned(),
                instance_id: instance_id.to_owned(),
                token,
            }))
        })
    }

    fn renew<'a>(
        &'a self,
        lease: &'a Lease,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Renewal, BackendError>> {
        Box::pin(async move {
            let renewed: i64 = self
                .scripts
                .renew
                .evalsha_with_reload(
                    &self.client,
                    self.keys.lease(&lease.connector),
                    vec![
                        lease_value(&lease.instance_id, lease.token),
                        ttl_millis(ttl),
                    ],
                )
                .await
                .map_err(fail("renew lease"))?;
            Ok(match renewed {
                1 => Renewal::Renewed,
                -1 => Renewal::Vanished,
                _ => Renewal::Taken,
            })
        })
    }

    fn release<'a>(&'a self, lease: &'a Lease) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let _released: i64 = self
                .scripts
                .release
                .evalsha_with_reload(
                    &self.client,
                    self.keys.lease(&lease.connector),
                    lease_value(&lease.instance_id, lease.token),
                )
                .await
                .map_err(fail("release lease"))?;
            Ok(())
        })
    }

    fn holder<'a>(
        &'a self,
        connector: &'a str,
    ) -> BoxFuture<'a, Result<Option<LeaseInfo>, BackendError>> {
        Box::pin(async move {
            let held: Option<(String, i64)> = self
                .scripts
                .holder
                .evalsha_with_reload(&self.client, self.keys.lease(connector), ())
                .await
                .map_err(fail("read lease"))?;
            let Some((value, pttl)) = held else {
                return Ok(None);
            };
            let (instance_id, token) = parse_lease_value(&value).ok_or_else(|| {
                BackendError::new(
                    "read lease",
                    format!(
                        "{} holds {value:?}, not \"<instance-id>:<token>\"; \
                         force-release it to recover",
                        self.keys.lease(connector)
                    ),
                )
            })?;
            Ok(Some(LeaseInfo {
                instance_id: instance_id.to_owned(),
                token,
                ttl_ms: u64::try_from(pttl).ok(),
            }))
        })
    }

    fn force_release<'a>(
        &'a self,
        connector: &'a str,
    ) -> BoxFuture<'a, Result<bool, BackendError>> {
        Box::pin(async move {
            let deleted: i64 = self
                .client
                .del(self.keys.lease(connector))
                .await
                .map_err(fail("force-release lease"))?;
            Ok(deleted > 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_values_round_trip_even_with_colons_in_the_instance_id() {
        let v = lease_value("host:1234:abcd", 42);
        assert_eq!(v, "host:1234:abcd:42");
        assert_eq!(parse_lease_value(&v), Some(("host:1234:abcd", 42)));
        assert_eq!(parse_lease_value("no-token"), None);
        assert_eq!(parse_lease_value("a:b"), None);
    }

    #[test]
    fn ttls_are_whole_positive_milliseconds() {
        assert_eq!(ttl_millis(Duration::from_micros(10)), "1");
        assert_eq!(ttl_millis(Duration::from_secs(30)), "30000");
    }
}
