//! Attempt counters of the throttles: one row per key and fixed window, shared by every
//! node through the database.

use super::{on_pool, Store, StoreResult};

impl Store {
    /// Adds one attempt to `key` in the window starting at `window_start` and returns the
    /// attempts of that window (this one included) and of the window before it. The
    /// increment is one atomic statement, so concurrent attempts each see their own count.
    pub async fn throttle_hit(
        &self,
        key: &str,
        window_start: i64,
        previous_start: i64,
    ) -> StoreResult<(i64, i64)> {
        let current: i64 = on_pool!(&self.pool, p => {
            sqlx::query_scalar(
                "INSERT INTO throttle_counters (key, window_start, hits) VALUES ($1, $2, 1) \
                 ON CONFLICT (key, window_start) \
                 DO UPDATE SET hits = throttle_counters.hits + 1 RETURNING hits",
            )
            .bind(key)
            .bind(window_start)
            .fetch_one(p)
            .await
        })?;
        let previous: Option<i64> = on_pool!(&self.pool, p => {
            sqlx::query_scalar(
                "SELECT hits FROM throttle_counters WHERE key = $1 AND window_start = $2",
            )
            .bind(key)
            .bind(previous_start)
            .fetch_optional(p)
            .await
        })?;
        Ok((current, previous.unwrap_or(0)))
    }

    /// Takes one attempt back (a sign-in that succeeded, an attempt that was refused).
    pub async fn throttle_release(&self, key: &str, window_start: i64) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE throttle_counters SET hits = hits - 1 \
                 WHERE key = $1 AND window_start = $2 AND hits > 0",
            )
            .bind(key)
            .bind(window_start)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }
}
