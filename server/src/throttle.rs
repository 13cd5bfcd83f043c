//! Throttles per client address: sign-in failures, recovery requests, e-mail changes.
//!
//! Every attempt is counted before any work is done for it, with one atomic increment in
//! the database, so a burst sent at once is cut at the limit on every node together. The
//! count is a sliding estimate over two fixed windows: this window's attempts plus the
//! previous window's, weighted by how much of it still overlaps the last `window` seconds.

use crate::store::{now_unix, Store, StoreResult};

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
        format!("{}:{address}", self.name)
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
