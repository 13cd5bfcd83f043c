//! Terms of use published from the console: the draft of a new version, publishing it,
//! who published each version, and acceptances per version with their evidence.

use sqlx::FromRow;

use super::{now_unix, on_pool, on_tx, Store, StoreError, StoreResult};
use crate::tenant::{TenantId, TermsVersion};

/// The draft of a new terms version.
#[derive(Debug, Clone, FromRow)]
pub struct TermsDraft {
    pub version: String,
    pub title: String,
    pub body: String,
    pub published_at: String,
    pub updated_at: i64,
    pub updated_by: String,
}

/// Who published a version and when it went live (`None`: from a tenant file before this
/// was kept).
#[derive(Debug, Clone, FromRow)]
pub struct TermsPublication {
    pub version: String,
    pub published_by: String,
    pub published_unix: Option<i64>,
}

/// One acceptance, as the evidence lists it.
#[derive(Debug, Clone, FromRow)]
pub struct TermsEvidence {
    pub user_id: String,
    pub display_name: String,
    pub version: String,
    pub accepted_at: i64,
    pub ip: String,
}

impl Store {
    pub async fn terms_draft(&self, tenant: &TenantId) -> StoreResult<Option<TermsDraft>> {
        let row = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT version, title, body, published_at, updated_at, updated_by \
                 FROM terms_drafts WHERE tenant_id = $1",
            )
            .bind(tenant.as_str())
            .fetch_optional(p)
            .await
        })?;
        Ok(row)
    }

    pub async fn save_terms_draft(
        &self,
        tenant: &TenantId,
        t: &TermsVersion,
        by: &str,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "INSERT INTO terms_drafts (tenant_id, version, title, body, published_at, \
                 updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (tenant_id) DO UPDATE SET version = excluded.version, \
                 title = excluded.title, body = excluded.body, \
                 published_at = excluded.published_at, updated_at = excluded.updated_at, \
                 updated_by = excluded.updated_by",
            )
            .bind(tenant.as_str())
            .bind(&t.version)
            .bind(&t.title)
            .bind(&t.body)
            .bind(&t.published_at)
            .bind(now_unix())
            .bind(by)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn discard_terms_draft(&self, tenant: &TenantId) -> StoreResult<bool> {
        let n = on_pool!(&self.pool, p => {
            sqlx::query("DELETE FROM terms_drafts WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n > 0)
    }

    /// Publishes `t` as the version members must accept, in one transaction with the end of
    /// the draft; a version name already used is a conflict.
    pub async fn publish_terms(
        &self,
        tenant: &TenantId,
        t: &TermsVersion,
        by: &str,
    ) -> StoreResult<()> {
        let now = now_unix();
        let id = tenant.as_str();
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, c => {
            let taken: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM terms_versions WHERE tenant_id = $1 AND version = $2",
            )
            .bind(id)
            .bind(&t.version)
            .fetch_one(&mut *c)
            .await?;
            if taken > 0 {
                return Err(StoreError::Conflict("terms version already published".into()));
            }
            let last: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(position) FROM terms_versions WHERE tenant_id = $1",
            )
            .bind(id)
            .fetch_one(&mut *c)
            .await?;
            sqlx::query(
                "INSERT INTO terms_versions (tenant_id, version, position, published_at, title, \
                 body, published_by, published_unix) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id)
            .bind(&t.version)
            .bind(last.map_or(0, |p| p + 1))
            .bind(&t.published_at)
            .bind(&t.title)
            .bind(&t.body)
            .bind(by)
            .bind(now)
            .execute(&mut *c)
            .await?;
            sqlx::query(
                "UPDATE tenants SET current_terms_version = $2, revision = revision + 1, \
                 updated_at = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(&t.version)
            .bind(now)
            .execute(&mut *c)
            .await?;
            sqlx::query("DELETE FROM terms_drafts WHERE tenant_id = $1")
                .bind(id)
                .execute(&mut *c)
                .await?;
            super::tenants::tenant_changed!(c, id);
            Ok::<_, StoreError>(())
        })?;
        tx.commit().await?;
        self.notify_tenant_changed(id).await;
        Ok(())
    }

    pub async fn terms_publications(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Vec<TermsPublication>> {
        let rows = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT version, published_by, published_unix FROM terms_versions \
                 WHERE tenant_id = $1",
            )
            .bind(tenant.as_str())
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
    }

    /// Members who accepted each version: (version, members).
    pub async fn terms_acceptance_counts(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Vec<(String, i64)>> {
        let rows = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT version, COUNT(DISTINCT member_id) FROM terms_acceptances \
                 WHERE tenant_id = $1 GROUP BY version",
            )
            .bind(tenant.as_str())
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
    }

    /// Every acceptance of `version`, oldest first.
    pub async fn terms_evidence(
        &self,
        tenant: &TenantId,
        version: &str,
    ) -> StoreResult<Vec<TermsEvidence>> {
        let rows = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT m.user_id, m.display_name, a.version, a.accepted_at, a.ip \
                 FROM terms_acceptances a JOIN members m \
                 ON m.id = a.member_id AND m.tenant_id = a.tenant_id \
                 WHERE a.tenant_id = $1 AND a.version = $2 ORDER BY a.accepted_at, m.user_id",
            )
            .bind(tenant.as_str())
            .bind(version)
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
    }
}
