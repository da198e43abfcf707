//! Leases: a claim on a handler's name for a while, so that one process at a time runs it.

use std::time::Duration;

/// A process's claim on a handler (or one of its partitions) until `expires_at`. Handlers
/// take and renew theirs by themselves; this is what providers store.
///
/// ```
/// # use std::time::Duration;
/// use evtstore_core::Lease;
/// let lease = Lease::granted(None, "orders", "pid42", Duration::from_secs(4), 1_000).unwrap();
/// assert_eq!((lease.token, lease.expires_at), (1, 5_000));
/// ```
///
/// Only the holder runs the handler; its bookmark saves go through
/// [`Provider::set_bookmark_leased`](crate::Provider::set_bookmark_leased), which refuses them
/// once the lease has expired or passed to another holder. Each new holder gets a higher
/// `token`, so a holder that slept past its lease can never write after its successor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The handler's (or partition's) name: the name of its bookmark.
    pub name: String,
    /// Who holds it: a name unique to the process.
    pub owner: String,
    /// Raised each time the lease changes hands (or is taken again after it expired).
    pub token: u64,
    /// When it ends unless renewed, in milliseconds since the Unix epoch, by the store's clock.
    pub expires_at: i64,
}

impl Lease {
    /// The lease a provider grants at `now` (milliseconds, its clock) to `owner` for `ttl`,
    /// given the lease it has stored for the name, if any: `None` while another owner holds an
    /// unexpired one. The rule every provider follows, in SQL or in memory.
    pub fn granted(
        stored: Option<&Lease>,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: i64,
    ) -> Option<Lease> {
        let token = match stored {
            Some(held) if held.expires_at > now && held.owner != owner => return None,
            Some(held) if held.expires_at > now => held.token,
            Some(expired) => expired.token + 1,
            None => 1,
        };
        Some(Lease {
            name: name.to_owned(),
            owner: owner.to_owned(),
            token,
            expires_at: now.saturating_add(ttl_millis(ttl)),
        })
    }

    /// True when `stored` is this very lease (same owner and token) and has not expired.
    pub fn is_held(&self, stored: Option<&Lease>, now: i64) -> bool {
        stored.is_some_and(|s| s.owner == self.owner && s.token == self.token && s.expires_at > now)
    }
}

/// A lease time in milliseconds, for a store's clock arithmetic: at most 100 years, so that
/// adding it to the time now never overflows.
pub fn ttl_millis(ttl: Duration) -> i64 {
    const MAX: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    ttl.min(MAX).as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_millis(100);

    #[test]
    fn a_lease_passes_only_when_free_or_expired_and_each_new_holder_gets_a_higher_token() {
        let a = Lease::granted(None, "h", "a", TTL, 1_000).unwrap();
        assert_eq!((a.token, a.expires_at), (1, 1_100));
        assert_eq!(
            Lease::granted(Some(&a), "h", "b", TTL, 1_050),
            None,
            "held by a"
        );
        let renewed = Lease::granted(Some(&a), "h", "a", TTL, 1_050).unwrap();
        assert_eq!(
            (renewed.token, renewed.expires_at),
            (1, 1_150),
            "renewed: same token"
        );
        let b = Lease::granted(Some(&renewed), "h", "b", TTL, 1_150).unwrap();
        assert_eq!(b.token, 2, "expired: b takes it with a higher token");
        assert!(!renewed.is_held(Some(&b), 1_160), "a's lease is gone");
        assert!(b.is_held(Some(&b), 1_160));
        let back = Lease::granted(Some(&b), "h", "a", TTL, 1_300).unwrap();
        assert_eq!(back.token, 3, "a after b's expiry: higher again");
    }

    #[test]
    fn a_huge_lease_time_is_capped_at_a_century_rather_than_wrapped_into_the_past() {
        let forever = Lease::granted(None, "h", "a", Duration::MAX, 1_000).unwrap();
        assert_eq!(forever.expires_at, 1_000 + 100 * 365 * 24 * 3600 * 1000);
        let late = Lease::granted(None, "h", "a", Duration::MAX, i64::MAX - 5).unwrap();
        assert_eq!(
            late.expires_at,
            i64::MAX,
            "and saturates at the end of time"
        );
    }
}
