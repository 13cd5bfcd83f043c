//! Platform operators' API tokens: SHA-256 only, revocable.

use super::{now_unix, on_pool, Store, StoreResult};

/// A live operator token, as its check returns it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OperatorToken {
    pub id: String,
    pub name: String,
}

impl Store {
    pub async fn create_operator_token(
        &self,
        id: &str,
        name: &str,
        token_hash: &str,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "INSERT INTO operator_tokens (id, name, token_hash, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(name)
            .bind(token_hash)
            .bind(now_unix())
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// The live token with this hash, marked as used now.
    pub async fn use_operator_token(&self, token_hash: &str) -> StoreResult<Option<OperatorToken>> {
        let token = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "UPDATE operator_tokens SET last_used_at = $2 \
                 WHERE token_hash = $1 AND revoked_at IS NULL RETURNING id, name",
            )
            .bind(token_hash)
            .bind(now_unix())
            .fetch_optional(p)
            .await
        })?;
        Ok(token)
    }

    /// Revokes the live tokens named `name`; returns how many.
    pub async fn revoke_operator_tokens(&self, name: &str) -> StoreResult<u64> {
        let n = on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE operator_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL",
            )
            .bind(name)
            .bind(now_unix())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Key and sealed value of each row of `table` matching `filter` (names from a fixed
    /// list in the code, never from input).
    pub async fn sealed_values(
        &self,
        table: &str,
        key: &str,
        column: &str,
        filter: &str,
    ) -> StoreResult<Vec<(String, String)>> {
        let sql = format!("SELECT {key}, {column} FROM {table} WHERE {filter}");
        let rows = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql).fetch_all(p).await
        })?;
        Ok(rows)
    }

    /// Replaces one sealed value if it is still `old`; false when the row changed meanwhile.
    pub async fn replace_sealed(
        &self,
        table: &str,
        key: &str,
        column: &str,
        row: &str,
        old: &str,
        new: &str,
    ) -> StoreResult<bool> {
        let sql = format!("UPDATE {table} SET {column} = $3 WHERE {key} = $1 AND {column} = $2");
        let n = on_pool!(&self.pool, p => {
            sqlx::query(&sql)
                .bind(row)
                .bind(old)
                .bind(new)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }
}
