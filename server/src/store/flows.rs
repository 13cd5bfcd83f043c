//! The second-factor state of sign-in flows: WebAuthn ceremonies, e-mail codes, devices
//! added. Every statement names the tenant and the flow's token hash.

use super::{now_unix, on_pool, Store, StoreResult};
use crate::tenant::TenantId;

impl Store {
    /// Keeps a WebAuthn ceremony (JSON) in the flow until `expires_at`; replaces any other.
    pub async fn set_flow_ceremony(
        &self,
        tenant: &TenantId,
        token_hash: &str,
        ceremony: Option<&str>,
        expires_at: i64,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE login_flows SET ceremony = $3, ceremony_expires_at = $4 \
                 WHERE tenant_id = $1 AND token_hash = $2",
            )
            .bind(tenant.as_str())
            .bind(token_hash)
            .bind(ceremony)
            .bind(expires_at)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Takes the flow's ceremony if it is still `expected` (JSON) and unexpired: one atomic
    /// UPDATE, so a ceremony is finished at most once. Returns whether it was taken.
    pub async fn take_flow_ceremony(
        &self,
        tenant: &TenantId,
        token_hash: &str,
        expected: &str,
    ) -> StoreResult<bool> {
        let n = on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE login_flows SET ceremony = NULL, ceremony_expires_at = NULL \
                 WHERE tenant_id = $1 AND token_hash = $2 AND ceremony = $3 \
                 AND ceremony_expires_at > $4",
            )
            .bind(tenant.as_str())
            .bind(token_hash)
            .bind(expected)
            .bind(now_unix())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// The device an `add_*` flow set out to register is registered.
    pub async fn flow_setup_done(&self, tenant: &TenantId, token_hash: &str) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE login_flows SET setup_done = TRUE, pending_secret = NULL, \
                 ceremony = NULL, ceremony_expires_at = NULL \
                 WHERE tenant_id = $1 AND token_hash = $2",
            )
            .bind(tenant.as_str())
            .bind(token_hash)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// A new e-mail code for the flow (its keyed hash); the previous one stops working and
    /// the attempt count starts again.
    pub async fn set_flow_email_code(
        &self,
        tenant: &TenantId,
        token_hash: &str,
        code_hash: &str,
        sent_at: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE login_flows SET email_code_hash = $3, email_code_sent_at = $4, \
                 email_code_expires_at = $5, email_code_attempts = 0 \
                 WHERE tenant_id = $1 AND token_hash = $2",
            )
            .bind(tenant.as_str())
            .bind(token_hash)
            .bind(code_hash)
            .bind(sent_at)
            .bind(expires_at)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Spends the flow's e-mail code if it is still `code_hash`, unexpired and under
    /// `max_attempts` failures: one conditional UPDATE, so a code works once only.
    pub async fn use_flow_email_code(
        &self,
        tenant: &TenantId,
        token_hash: &str,
        code_hash: &str,
        max_attempts: i64,
    ) -> StoreResult<bool> {
        let n = on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE login_flows SET email_code_hash = NULL \
                 WHERE tenant_id = $1 AND token_hash = $2 AND email_code_hash = $3 \
                 AND email_code_expires_at > $4 AND email_code_attempts < $5",
            )
            .bind(tenant.as_str())
            .bind(token_hash)
            .bind(code_hash)
            .bind(now_unix())
            .bind(max_attempts)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Counts a wrong e-mail code against the flow's current code.
    pub async fn flow_email_code_failed(
        &self,
        tenant: &TenantId,
        token_hash: &str,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE login_flows SET email_code_attempts = email_code_attempts + 1 \
                 WHERE tenant_id = $1 AND token_hash = $2",
            )
            .bind(tenant.as_str())
            .bind(token_hash)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Turns e-mail one-time passwords on or off as a factor of the member.
    pub async fn set_email_otp_enabled(
        &self,
        tenant: &TenantId,
        member_id: &str,
        enabled: bool,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE members SET email_otp_enabled = $3, updated_at = $4 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(member_id)
            .bind(enabled)
            .bind(now_unix())
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }
}
