//! A member's own view of their sessions (「ログイン中の端末」) and ending them. Every
//! statement names the tenant and the member.

use super::{on_pool, Store, StoreResult};
use crate::tenant::TenantId;

/// One signed-in browser of a member.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionEntry {
    pub token_hash: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub auth_method: String,
    pub user_agent: String,
    pub ip: String,
}

impl Store {
    /// The member's sessions, most recently used first.
    pub async fn session_entries(
        &self,
        tenant: &TenantId,
        member_id: &str,
    ) -> StoreResult<Vec<SessionEntry>> {
        let rows = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT token_hash, created_at, last_seen_at, auth_method, user_agent, ip \
                 FROM sessions WHERE tenant_id = $1 AND member_id = $2 \
                 ORDER BY last_seen_at DESC, created_at DESC LIMIT 50",
            )
            .bind(tenant.as_str())
            .bind(member_id)
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
    }

    /// Ends the member's sessions in `token_hashes` (never another member's). Returns how
    /// many ended.
    pub async fn end_sessions(
        &self,
        tenant: &TenantId,
        member_id: &str,
        token_hashes: &[String],
    ) -> StoreResult<u64> {
        let mut ended = 0;
        for hash in token_hashes {
            ended += on_pool!(&self.pool, p => {
                sqlx::query(
                    "DELETE FROM sessions WHERE tenant_id = $1 AND member_id = $2 AND token_hash = $3",
                )
                .bind(tenant.as_str())
                .bind(member_id)
                .bind(hash)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
            })?;
        }
        // Sign-ins still in progress elsewhere end too: they would become sessions.
        if ended > 0 {
            on_pool!(&self.pool, p => {
                sqlx::query(
                    "DELETE FROM login_flows WHERE tenant_id = $1 AND member_id = $2 \
                     AND purpose = 'login'",
                )
                .bind(tenant.as_str())
                .bind(member_id)
                .execute(p)
                .await
                .map(|_| ())
            })?;
        }
        Ok(ended)
    }
}
