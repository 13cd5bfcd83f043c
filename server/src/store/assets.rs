//! Uploaded images of a tenant, by their content-derived path.

use base64::Engine;

use super::{now_unix, on_pool, Store, StoreError, StoreResult};
use crate::tenant::TenantId;

impl Store {
    /// Stores an image under `path`; the same path again (the same content) changes nothing.
    pub async fn put_asset(
        &self,
        tenant: &TenantId,
        path: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> StoreResult<()> {
        let body = base64::engine::general_purpose::STANDARD.encode(bytes);
        on_pool!(&self.pool, p => {
            sqlx::query(
                "INSERT INTO tenant_assets (tenant_id, path, content_type, body, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, path) DO NOTHING",
            )
            .bind(tenant.as_str())
            .bind(path)
            .bind(content_type)
            .bind(&body)
            .bind(now_unix())
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// An uploaded image: its content type and bytes.
    pub async fn asset(
        &self,
        tenant: &TenantId,
        path: &str,
    ) -> StoreResult<Option<(String, Vec<u8>)>> {
        let row: Option<(String, String)> = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT content_type, body FROM tenant_assets WHERE tenant_id = $1 AND path = $2",
            )
            .bind(tenant.as_str())
            .bind(path)
            .fetch_optional(p)
            .await
        })?;
        row.map(|(ct, body)| {
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .map(|b| (ct, b))
                .map_err(|e| StoreError::Corrupt(format!("asset {path}: {e}")))
        })
        .transpose()
    }
}
