//! One-time tokens behind the links in mail (password reset, e-mail change): stored as
//! SHA-256 only, typed by purpose, expiring, spent by one conditional UPDATE. Every
//! statement names the tenant.

use super::{now_unix, on_pool, on_tx, Store, StoreResult, Tx};
use crate::tenant::TenantId;

/// A live token: whose it is and what it is about.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveToken {
    pub member_id: String,
    pub payload: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Tx {
    /// Voids the member's unused tokens of `purpose`: a newer link supersedes older ones.
    pub async fn void_tokens(
        &mut self,
        tenant: &TenantId,
        member_id: &str,
        purpose: &str,
    ) -> StoreResult<()> {
        on_tx!(self, c => {
            sqlx::query(
                "UPDATE one_time_tokens SET used_at = $4 \
                 WHERE tenant_id = $1 AND member_id = $2 AND purpose = $3 AND used_at IS NULL",
            )
            .bind(tenant.as_str())
            .bind(member_id)
            .bind(purpose)
            .bind(now_unix())
            .execute(c)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Spends a token of `purpose` that nothing has used or voided: true once only. The
    /// token's lifetime is checked when its link is opened, not here.
    pub async fn spend_token(
        &mut self,
        tenant: &TenantId,
        token_hash: &str,
        purpose: &str,
    ) -> StoreResult<Option<LiveToken>> {
        let row = on_tx!(self, c => {
            sqlx::query_as(
                "UPDATE one_time_tokens SET used_at = $4 \
                 WHERE tenant_id = $1 AND token_hash = $2 AND purpose = $3 AND used_at IS NULL \
                 RETURNING member_id, payload, created_at, expires_at",
            )
            .bind(tenant.as_str())
            .bind(token_hash)
            .bind(purpose)
            .bind(now_unix())
            .fetch_optional(c)
            .await
        })?;
        Ok(row)
    }
}

impl Store {
    /// The token of `purpose` behind a link, if it is unused, not voided and unexpired.
    pub async fn live_token(
        &self,
        tenant: &TenantId,
        token_hash: &str,
        purpose: &str,
    ) -> StoreResult<Option<LiveToken>> {
        let row = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT member_id, payload, created_at, expires_at FROM one_time_tokens \
                 WHERE tenant_id = $1 AND token_hash = $2 AND purpose = $3 \
                 AND used_at IS NULL AND expires_at > $4",
            )
            .bind(tenant.as_str())
            .bind(token_hash)
            .bind(purpose)
            .bind(now_unix())
            .fetch_optional(p)
            .await
        })?;
        Ok(row)
    }

    /// The member's newest live token of `purpose` (a pending e-mail change).
    pub async fn pending_token(
        &self,
        tenant: &TenantId,
        member_id: &str,
        purpose: &str,
    ) -> StoreResult<Option<LiveToken>> {
        let row = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT member_id, payload, created_at, expires_at FROM one_time_tokens \
                 WHERE tenant_id = $1 AND member_id = $2 AND purpose = $3 \
                 AND used_at IS NULL AND expires_at > $4 ORDER BY created_at DESC LIMIT 1",
            )
            .bind(tenant.as_str())
            .bind(member_id)
            .bind(purpose)
            .bind(now_unix())
            .fetch_optional(p)
            .await
        })?;
        Ok(row)
    }

    /// How many tokens of `purpose` the member was sent since `since` (a throttle).
    pub async fn tokens_since(
        &self,
        tenant: &TenantId,
        member_id: &str,
        purpose: &str,
        since: i64,
    ) -> StoreResult<i64> {
        let n: i64 = on_pool!(&self.pool, p => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM one_time_tokens \
                 WHERE tenant_id = $1 AND member_id = $2 AND purpose = $3 AND created_at >= $4",
            )
            .bind(tenant.as_str())
            .bind(member_id)
            .bind(purpose)
            .bind(since)
            .fetch_one(p)
            .await
        })?;
        Ok(n)
    }

    /// Voids the member's unused tokens of `purpose` (a sign-in voids reset links).
    pub async fn void_tokens(
        &self,
        tenant: &TenantId,
        member_id: &str,
        purpose: &str,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        tx.void_tokens(tenant, member_id, purpose).await?;
        tx.commit().await
    }
}

/// What a finished e-mail change changed.
#[derive(Debug, Clone)]
pub struct EmailChanged {
    pub member_id: String,
    pub old: String,
    pub new: String,
}

impl Store {
    /// Finishes a password reset in one transaction: spends the link's token (false if it
    /// was used or voided meanwhile, and then nothing changes), sets the new password,
    /// clears failed sign-ins, and ends every session and every other sign-in flow of the
    /// member. The flow `flow_hash` owes no password any more.
    pub async fn finish_password_reset(
        &self,
        tenant: &TenantId,
        member_id: &str,
        token_hash: &str,
        flow_hash: &str,
        password_hash: &str,
    ) -> StoreResult<bool> {
        let now = now_unix();
        let mut tx = self.begin().await?;
        let spent = tx.spend_token(tenant, token_hash, "password_reset").await?;
        if spent.is_none_or(|t| t.member_id != member_id) {
            return Ok(false);
        }
        on_tx!(&mut tx, c => {
            sqlx::query(
                "UPDATE members SET password_hash = $3, password_created_at = $4, \
                 failed_logins = 0, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(member_id)
            .bind(password_hash)
            .bind(now)
            .execute(&mut *c)
            .await?;
            sqlx::query("DELETE FROM sessions WHERE tenant_id = $1 AND member_id = $2")
                .bind(tenant.as_str())
                .bind(member_id)
                .execute(&mut *c)
                .await?;
            sqlx::query(
                "DELETE FROM login_flows WHERE tenant_id = $1 AND member_id = $2 \
                 AND token_hash <> $3",
            )
            .bind(tenant.as_str())
            .bind(member_id)
            .bind(flow_hash)
            .execute(&mut *c)
            .await?;
            sqlx::query(
                "UPDATE login_flows SET reset_token_hash = NULL \
                 WHERE tenant_id = $1 AND token_hash = $2",
            )
            .bind(tenant.as_str())
            .bind(flow_hash)
            .execute(&mut *c)
            .await
            .map(|_| ())
        })?;
        tx.commit().await?;
        Ok(true)
    }

    /// Opens an e-mail change link: spends the token if it is live and moves the member to
    /// the address it was sent to (confirmed, since the link arrived there). None if the
    /// link is unknown, used, voided or expired.
    pub async fn finish_email_change(
        &self,
        tenant: &TenantId,
        token_hash: &str,
    ) -> StoreResult<Option<EmailChanged>> {
        let now = now_unix();
        let mut tx = self.begin().await?;
        let Some(token) = tx.spend_token(tenant, token_hash, "email_change").await? else {
            return Ok(None);
        };
        if token.expires_at <= now {
            return Ok(None);
        }
        let old: Option<String> = on_tx!(&mut tx, c => {
            let old: Option<String> = sqlx::query_scalar(
                "SELECT email FROM members WHERE tenant_id = $1 AND id = $2 AND state <> 'disabled'",
            )
            .bind(tenant.as_str())
            .bind(&token.member_id)
            .fetch_optional(&mut *c)
            .await?;
            if old.is_some() {
                sqlx::query(
                    "UPDATE members SET email = $3, email_confirmed = TRUE, email_reviewed = TRUE, \
                     updated_at = $4 WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant.as_str())
                .bind(&token.member_id)
                .bind(&token.payload)
                .bind(now)
                .execute(&mut *c)
                .await?;
            }
            Ok::<_, sqlx::Error>(old)
        })?;
        let Some(old) = old else {
            return Ok(None);
        };
        tx.commit().await?;
        Ok(Some(EmailChanged {
            member_id: token.member_id,
            old,
            new: token.payload,
        }))
    }
}
