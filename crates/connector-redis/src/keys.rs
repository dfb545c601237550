//! The Redis key layout of DESIGN.md, in one place.
//!
//! Every key of one connector carries the connector name as a Redis Cluster hash tag
//! (`{name}`), so they all live in one slot and one Lua script may touch them together.
//! An optional prefix (namespace) comes first, so several deployments (or tests) can share
//! one server without seeing each other's keys:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}lease:{name}` | string with PX TTL | `<instance-id>:<fencing-token>` |
//! | `{prefix}lease:{name}:fence` | string (counter) | last fencing token handed out |
//! | `{prefix}connector:state:{name}` | hash | `v:<external id>` → version, `cursor:*` |
//! | `{prefix}metrics:connector:{name}` | hash | the guide's metrics fields |
//! | `{prefix}<outputStream>` | stream | the signals |
//! | `{prefix}webhook:delivery:{name}:<hash>` | string with PX TTL | a webhook delivery id seen (replays are ignored) |
//! | `{prefix}webhook-wakes` | pub/sub channel | `{"connector", "receivedMs"}`: poll now |

/// Builds the key names for one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Keys {
    prefix: String,
}

/// Why a key prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid Redis key prefix {prefix:?}: it must not contain '{{', '}}' or whitespace, since a \
     brace would replace the connector name as the Redis Cluster hash tag"
)]
pub struct InvalidPrefix {
    /// The prefix as given.
    pub prefix: String,
}

impl Keys {
    /// Keys under `prefix`. A non-empty prefix gets a `:` separator appended unless it
    /// already ends with one, so `REDIS_KEY_PREFIX=prod` and `prod:` mean the same.
    pub fn new(prefix: &str) -> Result<Self, InvalidPrefix> {
        if prefix
            .chars()
            .any(|c| c == '{' || c == '}' || c.is_whitespace())
        {
            return Err(InvalidPrefix {
                prefix: prefix.to_owned(),
            });
        }
        let prefix = if prefix.is_empty() || prefix.ends_with(':') {
            prefix.to_owned()
        } else {
            format!("{prefix}:")
        };
        Ok(Self { prefix })
    }

    /// The namespace, with its trailing `:` (empty when there is none).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{prefix}lease:{name}`: who may write the connector's output right now.
    pub fn lease(&self, connector: &str) -> String {
        format!("{}lease:{{{connector}}}", self.prefix)
    }

    /// `{prefix}lease:{name}:fence`: the fencing-token counter. It outlives leases (and is
    /// never deleted by a release), so tokens keep increasing across holders.
    pub fn fence(&self, connector: &str) -> String {
        format!("{}lease:{{{connector}}}:fence", self.prefix)
    }

    /// `{prefix}connector:state:{name}`: versions and cursor.
    pub fn state(&self, connector: &str) -> String {
        format!("{}connector:state:{{{connector}}}", self.prefix)
    }

    /// `{prefix}metrics:connector:{name}`: the guide's metrics hash.
    pub fn metrics(&self, connector: &str) -> String {
        format!("{}metrics:connector:{{{connector}}}", self.prefix)
    }

    /// `{prefix}workers:<group>`: live worker instances of one group (workers running the
    /// same connectors), a sorted set of expiry times; shared by connectors, so it has no
    /// hash tag.
    pub fn workers(&self, group: &str) -> String {
        format!("{}workers:{group}", self.prefix)
    }

    /// `{prefix}webhook:delivery:{name}:<hash>`: a webhook delivery seen lately (the id's
    /// hash: ids are the sender's text).
    pub fn delivery(&self, connector: &str, delivery: &str) -> String {
        let hash = connector_core::detect::content_version(delivery);
        format!("{}webhook:delivery:{{{connector}}}:{hash}", self.prefix)
    }

    /// `{prefix}webhook-wakes`: the channel webhook wakes go through to the lease holder.
    pub fn wake_channel(&self) -> String {
        format!("{}webhook-wakes", self.prefix)
    }

    /// `{prefix}budget:{<hmac>}`: a shared rate budget, named by an HMAC of its credential
    /// and scope (never the credential); each its own slot.
    pub fn budget(&self, key: &str) -> String {
        format!("{}budget:{{{key}}}", self.prefix)
    }

    /// The pattern every budget's key matches.
    pub fn budgets_pattern(&self) -> String {
        format!("{}budget:{{*", self.prefix)
    }

    /// `{prefix}budget-secret`: the deployment's key that names budgets, set once by the
    /// first worker (random, 32 bytes).
    pub fn budget_secret(&self) -> String {
        format!("{}budget-secret", self.prefix)
    }

    /// `{prefix}<stream>`: an output stream. Streams are shared by connectors, so they
    /// carry no hash tag and may live in any slot.
    pub fn stream(&self, stream: &str) -> String {
        format!("{}{stream}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        let k = Keys::new("ns").expect("valid");
        assert_eq!(k.prefix(), "ns:");
        assert_eq!(k.lease("noaa"), "ns:lease:{noaa}");
        assert_eq!(k.fence("noaa"), "ns:lease:{noaa}:fence");
        assert_eq!(k.state("noaa"), "ns:connector:state:{noaa}");
        assert_eq!(k.metrics("noaa"), "ns:metrics:connector:{noaa}");
        assert_eq!(k.stream("raw-input-signals"), "ns:raw-input-signals");
        assert_eq!(k.workers("0f3a"), "ns:workers:0f3a");
    }

    #[test]
    fn an_empty_prefix_adds_nothing_and_a_trailing_colon_is_kept() {
        assert_eq!(Keys::new("").expect("valid").lease("a"), "lease:{a}");
        assert_eq!(Keys::new("x:").expect("valid").prefix(), "x:");
    }

    #[test]
    fn all_keys_of_a_connector_share_one_cluster_slot() {
        let k = Keys::new("ns").expect("valid");
        let slot = fred::util::redis_keyslot(k.lease("jira-main").as_bytes());
        for key in [
            k.fence("jira-main"),
            k.state("jira-main"),
            k.metrics("jira-main"),
        ] {
            assert_eq!(fred::util::redis_keyslot(key.as_bytes()), slot, "{key}");
        }
    }

    #[test]
    fn a_prefix_with_braces_is_refused() {
        assert!(Keys::new("a{b}").is_err());
        assert!(Keys::new("a b").is_err());
    }
}
