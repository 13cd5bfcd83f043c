//! Roster imports waiting for 「取り込む」, and their credentials for the mail merge.

use sqlx::FromRow;

use super::{now_unix, on_pool, on_tx, Store, StoreResult};
use crate::tenant::TenantId;

/// A checked roster, its rows sealed.
#[derive(Debug, Clone, FromRow)]
pub struct ImportRow {
    pub id: String,
    pub admin_id: String,
    pub file_name: String,
    pub encoding: String,
    pub total: i64,
    pub rows: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub committed_at: Option<i64>,
    pub created_members: Option<i64>,
    pub letter_batch: Option<String>,
    pub credentials_taken_at: Option<i64>,
}

pub struct NewImport<'a> {
    pub id: &'a str,
    pub admin_id: &'a str,
    pub file_name: &'a str,
    pub encoding: &'a str,
    pub total: i64,
    pub sealed_rows: &'a str,
    pub expires_at: i64,
}

impl Store {
    pub async fn create_import(&self, tenant: &TenantId, i: &NewImport<'_>) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "INSERT INTO member_imports (id, tenant_id, admin_id, file_name, encoding, total, \
                 rows, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(i.id)
            .bind(tenant.as_str())
            .bind(i.admin_id)
            .bind(i.file_name)
            .bind(i.encoding)
            .bind(i.total)
            .bind(i.sealed_rows)
            .bind(now_unix())
            .bind(i.expires_at)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn import(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<ImportRow>> {
        let row = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT id, admin_id, file_name, encoding, total, rows, created_at, expires_at, \
                 committed_at, created_members, letter_batch, credentials_taken_at \
                 FROM member_imports WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(p)
            .await
        })?;
        Ok(row)
    }

    /// Marks the import done, once: false if it was committed already. The sealed rows
    /// are dropped; the credentials wait for their one download.
    pub async fn finish_import(
        &self,
        tenant: &TenantId,
        id: &str,
        created: i64,
        letter_batch: &str,
        sealed_credentials: &str,
    ) -> StoreResult<bool> {
        let n = on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE member_imports SET committed_at = $3, created_members = $4, \
                 letter_batch = $5, credentials = $6, rows = '' \
                 WHERE tenant_id = $1 AND id = $2 AND committed_at IS NULL",
            )
            .bind(tenant.as_str())
            .bind(id)
            .bind(now_unix())
            .bind(created)
            .bind(letter_batch)
            .bind(sealed_credentials)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// The sealed credentials of a committed import, handed out once: the first call
    /// takes them and every later one gets `None`.
    pub async fn take_import_credentials(
        &self,
        tenant: &TenantId,
        id: &str,
        lifetime_secs: i64,
    ) -> StoreResult<Option<String>> {
        let now = now_unix();
        let mut tx = self.begin().await?;
        let taken: Option<Option<String>> = on_tx!(&mut tx, c => {
            // The claim is this one statement: on PostgreSQL a second download waits for
            // the row and then finds it taken; SQLite runs one writer at a time.
            let claimed = sqlx::query(
                "UPDATE member_imports SET credentials_taken_at = $3 \
                 WHERE tenant_id = $1 AND id = $2 AND credentials IS NOT NULL \
                 AND credentials_taken_at IS NULL AND committed_at > $4",
            )
            .bind(tenant.as_str())
            .bind(id)
            .bind(now)
            .bind(now - lifetime_secs)
            .execute(&mut *c)
            .await?
            .rows_affected();
            if claimed != 1 {
                return Ok(None);
            }
            let sealed: Option<Option<String>> = sqlx::query_scalar(
                "SELECT credentials FROM member_imports WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(&mut *c)
            .await?;
            sqlx::query(
                "UPDATE member_imports SET credentials = NULL WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(id)
            .execute(&mut *c)
            .await?;
            Ok::<_, sqlx::Error>(sealed)
        })?;
        tx.commit().await?;
        Ok(taken.flatten())
    }

    /// Removes the credentials CSVs of imports committed before `before` that were never
    /// downloaded (their hour is over); returns how many.
    pub async fn sweep_import_credentials(&self, before: i64) -> StoreResult<u64> {
        let n = on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE member_imports SET credentials = NULL \
                 WHERE credentials IS NOT NULL AND committed_at < $1",
            )
            .bind(before)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Every member's name, birth date and insurance card, to find roster rows that are
    /// members already.
    pub async fn member_identities(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Vec<(String, String, String, String)>> {
        let rows = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT display_name, birth_date, card_symbol, card_number FROM members \
                 WHERE tenant_id = $1",
            )
            .bind(tenant.as_str())
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
    }

    /// The user IDs of the society's members, to find those a roster names again.
    pub async fn member_user_ids(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<std::collections::HashSet<String>> {
        let rows: Vec<(String,)> = on_pool!(&self.pool, p => {
            sqlx::query_as("SELECT user_id FROM members WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_all(p)
                .await
        })?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}
