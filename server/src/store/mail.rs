//! The mail outbox: enqueue inside a transaction, claim with a lease, record the outcome.

use sqlx::FromRow;

use super::{on_pool, on_tx, Pool, Store, StoreResult, Tx};
use crate::tenant::TenantId;

/// A mail ready to be queued; `content` is already sealed.
#[derive(Debug, Clone)]
pub struct NewMail {
    /// Also the context the content is sealed with.
    pub id: String,
    pub tenant_id: TenantId,
    pub template: String,
    pub recipient: String,
    pub from_name: String,
    pub from_address: String,
    pub content: String,
}

/// A claimed mail, as a worker delivers it.
#[derive(Debug, Clone, FromRow)]
pub struct OutboxMail {
    pub id: String,
    pub tenant_id: String,
    pub template: String,
    pub recipient: String,
    pub from_name: String,
    pub from_address: String,
    pub content: String,
    /// Including the delivery now under way.
    pub attempts: i64,
}

/// Outbox state of one tenant, for `portal mail status` and the admin console.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailCounts {
    pub tenant: String,
    /// Waiting for their first delivery attempt.
    pub queued: i64,
    /// Waiting for another attempt after a temporary failure.
    pub retrying: i64,
    /// Claimed by a worker right now.
    pub sending: i64,
    pub sent: i64,
    /// Refused permanently or out of attempts.
    pub failed: i64,
}

const CLAIMED_COLUMNS: &str =
    "id, tenant_id, template, recipient, from_name, from_address, content, attempts";

impl Tx {
    /// Queues a mail as part of this transaction.
    pub async fn enqueue_mail(&mut self, mail: &NewMail, now_ms: i64) -> StoreResult<()> {
        on_tx!(self, c => {
            sqlx::query(
                "INSERT INTO mail_outbox (id, tenant_id, template, recipient, from_name, \
                 from_address, content, status, attempts, next_attempt_ms, created_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', 0, $8, $8)",
            )
            .bind(&mail.id)
            .bind(mail.tenant_id.as_str())
            .bind(&mail.template)
            .bind(&mail.recipient)
            .bind(&mail.from_name)
            .bind(&mail.from_address)
            .bind(&mail.content)
            .bind(now_ms)
            .execute(c)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// How many mails were queued since `since_ms`: to this recipient from the same
    /// per-recipient budget (the templates `class` if `in_class`, every other template if
    /// not), and by the tenant. The template names are the code's own (`[a-z_]`), written
    /// into the statement.
    pub async fn recent_mail(
        &mut self,
        tenant: &TenantId,
        recipient: &str,
        (class, in_class): (&[&'static str], bool),
        since_ms: i64,
    ) -> StoreResult<(i64, i64)> {
        let names: Vec<String> = class
            .iter()
            .filter(|t| t.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .map(|t| format!("'{t}'"))
            .collect();
        let in_budget = match (names.is_empty(), in_class) {
            (true, true) => "FALSE".to_owned(),
            (true, false) => "TRUE".to_owned(),
            (false, true) => format!("template IN ({})", names.join(", ")),
            (false, false) => format!("template NOT IN ({})", names.join(", ")),
        };
        let sql = format!(
            "SELECT \
               COALESCE(SUM(CASE WHEN recipient = $2 AND {in_budget} THEN 1 ELSE 0 END), 0), \
               COUNT(*) \
             FROM mail_outbox WHERE tenant_id = $1 AND created_ms >= $3"
        );
        let counts: (i64, i64) = on_tx!(self, c => {
            sqlx::query_as(&sql)
                .bind(tenant.as_str())
                .bind(recipient)
                .bind(since_ms)
                .fetch_one(c)
                .await
        })?;
        Ok(counts)
    }
}

impl Store {
    /// Claims up to `limit` due mails for `owner` until `now + lease`. Mails whose lease ran
    /// out (their worker died) are due again. Concurrent workers never claim the same mail:
    /// PostgreSQL skips rows another transaction holds; SQLite runs one writer at a time.
    pub async fn claim_mail(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMail>> {
        let lock = match self.pool {
            Pool::Sqlite(_) => "",
            Pool::Postgres(_) => "FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE mail_outbox SET status = 'sending', lease_owner = $1, lease_until_ms = $2, \
               attempts = attempts + 1 \
             WHERE id IN ( \
               SELECT id FROM mail_outbox \
               WHERE (status = 'queued' AND next_attempt_ms <= $3) \
                  OR (status = 'sending' AND lease_until_ms < $3) \
               ORDER BY next_attempt_ms LIMIT $4 {lock}) \
             RETURNING {CLAIMED_COLUMNS}"
        );
        let claimed: Vec<OutboxMail> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql)
                .bind(owner)
                .bind(now_ms + lease_ms)
                .bind(now_ms)
                .bind(limit)
                .fetch_all(p)
                .await
        })?;
        Ok(claimed)
    }

    /// Records a delivery and forgets the content. False if the claim was lost meanwhile.
    pub async fn mail_delivered(&self, id: &str, owner: &str, now_ms: i64) -> StoreResult<bool> {
        let done = on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE mail_outbox SET status = 'sent', sent_ms = $3, content = '', \
                 lease_owner = NULL, lease_until_ms = NULL, last_error = NULL \
                 WHERE id = $1 AND lease_owner = $2",
            )
            .bind(id)
            .bind(owner)
            .bind(now_ms)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(done == 1)
    }

    /// Puts a mail back in the queue after a temporary failure.
    pub async fn mail_retry_at(
        &self,
        id: &str,
        owner: &str,
        next_attempt_ms: i64,
        error: &str,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE mail_outbox SET status = 'queued', next_attempt_ms = $3, last_error = $4, \
                 lease_owner = NULL, lease_until_ms = NULL \
                 WHERE id = $1 AND lease_owner = $2",
            )
            .bind(id)
            .bind(owner)
            .bind(next_attempt_ms)
            .bind(error)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Gives a mail up: the server refused it for good, or it ran out of attempts. Its
    /// content stays, so an operator can queue it again.
    pub async fn mail_failed(&self, id: &str, owner: &str, error: &str) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE mail_outbox SET status = 'failed', last_error = $3, \
                 lease_owner = NULL, lease_until_ms = NULL \
                 WHERE id = $1 AND lease_owner = $2",
            )
            .bind(id)
            .bind(owner)
            .bind(error)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// Queues failed mails again: one by id, or all of them. Returns how many.
    pub async fn mail_requeue(&self, id: Option<&str>, now_ms: i64) -> StoreResult<u64> {
        let sql = format!(
            "UPDATE mail_outbox SET status = 'queued', attempts = 0, next_attempt_ms = $1, \
             last_error = NULL WHERE status = 'failed' {}",
            if id.is_some() { "AND id = $2" } else { "" }
        );
        let done = on_pool!(&self.pool, p => {
            let mut query = sqlx::query(&sql).bind(now_ms);
            if let Some(id) = id {
                query = query.bind(id);
            }
            query.execute(p).await.map(|r| r.rows_affected())
        })?;
        Ok(done)
    }

    /// Outbox state per tenant, every tenant listed.
    pub async fn mail_counts(&self) -> StoreResult<Vec<MailCounts>> {
        let tenants: Vec<String> = on_pool!(&self.pool, p => {
            sqlx::query_scalar("SELECT slug FROM tenants ORDER BY slug").fetch_all(p).await
        })?;
        let rows: Vec<(String, String, bool, i64)> = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT t.slug, o.status, o.attempts > 0, COUNT(*) \
                 FROM mail_outbox o JOIN tenants t ON t.id = o.tenant_id \
                 GROUP BY t.slug, o.status, o.attempts > 0",
            )
            .fetch_all(p)
            .await
        })?;
        let mut counts: Vec<MailCounts> = tenants
            .into_iter()
            .map(|tenant| MailCounts {
                tenant,
                ..Default::default()
            })
            .collect();
        for (slug, status, tried, n) in rows {
            let Some(c) = counts.iter_mut().find(|c| c.tenant == slug) else {
                continue;
            };
            match (status.as_str(), tried) {
                ("queued", false) => c.queued += n,
                ("queued", true) => c.retrying += n,
                ("sending", _) => c.sending += n,
                ("sent", _) => c.sent += n,
                ("failed", _) => c.failed += n,
                _ => {}
            }
        }
        Ok(counts)
    }

    /// Status and last error of one mail, for operators and tests.
    pub async fn mail_state(&self, id: &str) -> StoreResult<Option<(String, i64, Option<String>)>> {
        let row = on_pool!(&self.pool, p => {
            sqlx::query_as("SELECT status, attempts, last_error FROM mail_outbox WHERE id = $1")
                .bind(id)
                .fetch_optional(p)
                .await
        })?;
        Ok(row)
    }
}

impl Store {
    /// The tenant's mail still waiting for delivery and given up as failed.
    pub async fn tenant_mail_backlog(&self, tenant: &TenantId) -> StoreResult<(i64, i64)> {
        let rows: Vec<(String, i64)> = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT status, COUNT(*) FROM mail_outbox WHERE tenant_id = $1 \
                 AND status IN ('queued', 'sending', 'failed') GROUP BY status",
            )
            .bind(tenant.as_str())
            .fetch_all(p)
            .await
        })?;
        let count = |s: &str| {
            rows.iter()
                .filter(|(k, _)| k == s)
                .map(|(_, n)| n)
                .sum::<i64>()
        };
        Ok((count("queued") + count("sending"), count("failed")))
    }

    /// Mail of every tenant not yet delivered: how many, and when the oldest was queued
    /// (milliseconds since the epoch).
    pub async fn mail_queue(&self) -> StoreResult<(i64, Option<i64>)> {
        let row: (i64, Option<i64>) = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT COUNT(*), MIN(created_ms) FROM mail_outbox \
                 WHERE status IN ('queued', 'sending')",
            )
            .fetch_one(p)
            .await
        })?;
        Ok(row)
    }

    /// Puts back the mails `owner` claimed and has not finished, to be delivered by any
    /// node at once (a stopping node's claims). The attempt it counted is given back.
    pub async fn release_mail_claims(&self, owner: &str) -> StoreResult<u64> {
        let n = on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE mail_outbox SET status = 'queued', lease_owner = NULL, \
                 lease_until_ms = NULL, attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END \
                 WHERE lease_owner = $1 AND status = 'sending'",
            )
            .bind(owner)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }
}
