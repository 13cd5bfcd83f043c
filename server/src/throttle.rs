//! Throttles per client address: sign-in failures, recovery requests, e-mail changes.
//!
//! Every attempt is counted before any work is done for it, with one atomic increment in
//! the database, so a burst sent at once is cut at the limit on every node together. The
//! count is a sliding estimate over two fixed windows: this window's attempts plus the
//! previous window's, weighted by how much of it still overlaps the last `window` seconds.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU8, Ordering};

use crate::store::{now_unix, Store, StoreResult};

/// How many leading bits of an IPv6 address name one client (`PORTAL_THROTTLE_IPV6_PREFIX`,
/// 64 by default: one customer's network, which hands its machines any address inside it).
static IPV6_PREFIX: AtomicU8 = AtomicU8::new(64);

/// Sets the IPv6 prefix length throttles key by (once, at start-up).
pub fn set_ipv6_prefix(bits: u8) {
    IPV6_PREFIX.store(bits.min(128), Ordering::Relaxed);
}

/// The client an address belongs to, as throttles count it: an IPv4 address (or an IPv6
/// address that carries one) by itself, an IPv6 address by its network of `prefix` bits,
/// so rotating addresses inside one's own /64 gains nothing.
pub fn client_key(address: &str, prefix: u8) -> String {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let bits = u32::from(prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                format!("{}/{bits}", Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
        // Not an address (a unix socket peer): counted as given.
        Err(_) => address.to_owned(),
    }
}

/// One throttle: at most `max` attempts per `window_secs` from one address.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Names the counter (`login`, `admin_login`, `reset` …); part of the key.
    pub name: &'static str,
    pub max: i64,
    pub window_secs: i64,
}

/// Failed member sign-ins one address may make in 15 minutes, over all tenants.
pub const MEMBER_LOGIN: Limit = Limit {
    name: "login",
    max: 30,
    window_secs: 15 * 60,
};

/// Failed console sign-ins one address may make in 15 minutes, over all tenants.
pub const ADMIN_LOGIN: Limit = Limit {
    name: "admin_login",
    max: 20,
    window_secs: 15 * 60,
};

/// An attempt that was let through. Give it back with [`Ticket::give_back`] when it should
/// not count (a sign-in that succeeded).
#[derive(Debug)]
#[must_use]
pub struct Ticket {
    key: String,
    window_start: i64,
}

impl Limit {
    fn key(&self, address: &str) -> String {
        let client = client_key(address, IPV6_PREFIX.load(Ordering::Relaxed));
        format!("{}:{client}", self.name)
    }

    /// Counts one attempt from `address`: `Some` if it is within the limit, `None` if the
    /// address has tried too often (a refused attempt is not counted).
    pub async fn attempt(&self, store: &Store, address: &str) -> StoreResult<Option<Ticket>> {
        self.attempt_at(store, address, now_unix()).await
    }

    async fn attempt_at(
        &self,
        store: &Store,
        address: &str,
        now: i64,
    ) -> StoreResult<Option<Ticket>> {
        let window = self.window_secs.max(1);
        let window_start = now - now.rem_euclid(window);
        let key = self.key(address);
        let (current, previous) = store
            .throttle_hit(&key, window_start, window_start - window)
            .await?;
        // The share of the previous window still inside the last `window` seconds.
        let overlap = window - (now - window_start);
        let estimate = current * window + previous * overlap;
        if estimate > self.max * window {
            store.throttle_release(&key, window_start).await?;
            return Ok(None);
        }
        Ok(Some(Ticket { key, window_start }))
    }
}

impl Ticket {
    /// Takes the attempt back.
    pub async fn give_back(self, store: &Store) -> StoreResult<()> {
        store.throttle_release(&self.key, self.window_start).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_of_one_network_are_one_client() {
        let a = client_key("2001:db8:1:2:aaaa::1", 64);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(client_key("2001:db8:1:2:ffff:ffff:ffff:fffe", 64), a);
        assert_ne!(client_key("2001:db8:1:3::1", 64), a);
        // Configurable: a /56 takes in its neighbours, a /128 is the address itself.
        assert_eq!(
            client_key("2001:db8:1:2::1", 56),
            client_key("2001:db8:1:3::1", 56)
        );
        assert_ne!(
            client_key("2001:db8:1:2::1", 128),
            client_key("2001:db8:1:2::2", 128)
        );
        // IPv4 by address, also when written as a mapped IPv6 address.
        assert_eq!(client_key("192.0.2.1", 64), "192.0.2.1");
        assert_eq!(client_key("::ffff:192.0.2.1", 64), "192.0.2.1");
        assert_ne!(client_key("192.0.2.2", 64), "192.0.2.1");
    }

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config {
            data_dir: dir.path().to_owned(),
            ..Default::default()
        };
        let store = Store::connect(&config).await.unwrap();
        store.migrate().await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn cuts_at_the_limit_and_slides() {
        let (_dir, store) = store().await;
        let limit = Limit {
            name: "t",
            max: 3,
            window_secs: 100,
        };
        let t0 = 1_000_000; // a window boundary
        for _ in 0..3 {
            assert!(limit.attempt_at(&store, "a", t0).await.unwrap().is_some());
        }
        assert!(limit
            .attempt_at(&store, "a", t0 + 1)
            .await
            .unwrap()
            .is_none());
        // Another address is not affected.
        assert!(limit
            .attempt_at(&store, "b", t0 + 1)
            .await
            .unwrap()
            .is_some());
        // Half-way through the next window, half of the previous one still counts (1.5).
        let ok = limit.attempt_at(&store, "a", t0 + 150).await.unwrap();
        assert!(ok.is_some());
        assert!(limit
            .attempt_at(&store, "a", t0 + 150)
            .await
            .unwrap()
            .is_none());
        // A given-back attempt makes room again.
        ok.unwrap().give_back(&store).await.unwrap();
        assert!(limit
            .attempt_at(&store, "a", t0 + 150)
            .await
            .unwrap()
            .is_some());
        // Once the windows it used have passed, the address starts afresh.
        for _ in 0..3 {
            assert!(limit
                .attempt_at(&store, "a", t0 + 300)
                .await
                .unwrap()
                .is_some());
        }
    }

    #[tokio::test]
    async fn concurrent_attempts_never_pass_the_limit() {
        let (_dir, store) = store().await;
        let limit = Limit {
            name: "burst",
            max: 10,
            window_secs: 900,
        };
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                limit.attempt(&store, "10.0.0.1").await.unwrap().is_some()
            }));
        }
        let mut passed = 0;
        for t in tasks {
            passed += usize::from(t.await.unwrap());
        }
        assert!(passed <= 10, "{passed} passed");
        assert!(passed >= 1);
    }
}
