//! Removing what has lapsed, in small batches so no table is locked for long. Every
//! statement is idempotent, so every node may sweep at once.

use super::{on_pool, Store, StoreResult};

/// Rows removed per statement.
pub const BATCH: i64 = 1000;

impl Store {
    /// Deletes the rows of `table` (keyed by `key`) that match `filter`, in batches of
    /// [`BATCH`], until none is left; returns how many. `filter` may use `$1` for
    /// `tenant` and `$2` for `before`. Names come from a fixed list in the code.
    pub async fn delete_in_batches(
        &self,
        table: &str,
        key: &str,
        filter: &str,
        tenant: &str,
        before: i64,
    ) -> StoreResult<u64> {
        let sql = format!(
            "DELETE FROM {table} WHERE {key} IN \
             (SELECT {key} FROM {table} WHERE ({filter}) AND $1 = $1 AND $2 = $2 LIMIT {BATCH})"
        );
        let mut total = 0;
        loop {
            let n = on_pool!(&self.pool, p => {
                sqlx::query(&sql)
                    .bind(tenant)
                    .bind(before)
                    .execute(p)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            total += n;
            if n < BATCH as u64 {
                return Ok(total);
            }
            // Let other writers in between batches.
            tokio::task::yield_now().await;
        }
    }

    /// The tenants that have rows in `table` matching `filter` (`$1`: a time).
    pub async fn tenants_with(
        &self,
        table: &str,
        filter: &str,
        before: i64,
    ) -> StoreResult<Vec<String>> {
        let sql = format!("SELECT DISTINCT tenant_id FROM {table} WHERE {filter}");
        let ids: Vec<Option<String>> = on_pool!(&self.pool, p => {
            sqlx::query_scalar(&sql).bind(before).fetch_all(p).await
        })?;
        Ok(ids.into_iter().flatten().collect())
    }
}
