//! The audit log: one log for member and admin events. Each row names the tenant, who
//! acted, the member concerned (if any), the event, where it came from and, for changes,
//! the values before and after. Rows are only ever added.

use sqlx::FromRow;

use super::{now_unix, on_pool, Store, StoreResult};
use crate::tenant::TenantId;

/// A new event id: the time in milliseconds (12 hex digits) and 64 random bits, so events
/// of the same second still list in the order they happened.
fn event_id() -> String {
    format!("{:012x}{}", super::now_ms(), crate::random_token(8))
}

/// Who caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor<'a> {
    Member(&'a str),
    Admin(&'a str),
    /// The platform itself (start-up, the command line).
    System,
    /// Someone not known to the tenant, e.g. a failed login of an unknown user ID.
    Anonymous,
}

impl<'a> Actor<'a> {
    fn kind(&self) -> &'static str {
        match self {
            Actor::Member(_) => "member",
            Actor::Admin(_) => "admin",
            Actor::System => "system",
            Actor::Anonymous => "anonymous",
        }
    }

    fn id(&self) -> Option<&'a str> {
        match self {
            Actor::Member(id) | Actor::Admin(id) => Some(id),
            Actor::System | Actor::Anonymous => None,
        }
    }
}

/// Who did what, from where: one line of the audit log.
pub struct AuditEvent<'a> {
    pub tenant: Option<&'a TenantId>,
    /// The member the event is about (the actor too, for a member's own actions).
    pub member_id: Option<&'a str>,
    pub actor: Actor<'a>,
    pub event: &'a str,
    pub ip: &'a str,
    pub user_agent: &'a str,
    pub detail: &'a str,
    /// For changes: the value before and after (never a secret).
    pub before: Option<&'a str>,
    pub after: Option<&'a str>,
}

/// One row of the audit log as the console and the API show it.
#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct AuditRow {
    pub id: String,
    pub created_at: i64,
    pub actor_type: String,
    pub actor_id: Option<String>,
    /// The actor's readable name: a member's user ID or an admin's e-mail address.
    pub actor_name: Option<String>,
    pub member_id: Option<String>,
    /// The member's user ID, when the event concerns a member.
    pub member_user_id: Option<String>,
    pub event: String,
    pub ip: String,
    pub user_agent: String,
    pub detail: String,
    pub before_value: Option<String>,
    pub after_value: Option<String>,
}

/// One event of a member's own history.
#[derive(Debug, Clone, FromRow)]
pub struct MemberEvent {
    pub created_at: i64,
    pub event: String,
    pub detail: String,
    pub ip: String,
    pub user_agent: String,
}

/// Which rows to list: every field narrows the result; `before` pages back in time.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub member_id: Option<String>,
    /// `member` | `admin` | `system` | `anonymous`
    pub actor_type: Option<String>,
    pub actor_id: Option<String>,
    pub event: Option<String>,
    /// Unix seconds, inclusive.
    pub from: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
    /// Keyset cursor: rows strictly older than this (created_at, id).
    pub before: Option<(i64, String)>,
}

const AUDIT_SELECT: &str = "SELECT a.id, a.created_at, a.actor_type, a.actor_id, \
    COALESCE(am.user_id, ad.email) AS actor_name, a.member_id, m.user_id AS member_user_id, \
    a.event, a.ip, a.user_agent, a.detail, a.before_value, a.after_value \
    FROM audit_events a \
    LEFT JOIN members m ON m.tenant_id = a.tenant_id AND m.id = a.member_id \
    LEFT JOIN members am ON a.actor_type = 'member' AND am.tenant_id = a.tenant_id AND am.id = a.actor_id \
    LEFT JOIN admins ad ON a.actor_type = 'admin' AND ad.tenant_id = a.tenant_id AND ad.id = a.actor_id \
    WHERE a.tenant_id = $1 \
    AND ($2 IS NULL OR a.member_id = $2) \
    AND ($3 IS NULL OR a.actor_type = $3) \
    AND ($4 IS NULL OR a.actor_id = $4) \
    AND ($5 IS NULL OR a.event = $5) \
    AND ($6 IS NULL OR a.created_at >= $6) \
    AND ($7 IS NULL OR a.created_at < $7) \
    AND ($8 IS NULL OR a.created_at < $8 OR (a.created_at = $8 AND a.id < $9)) \
    ORDER BY a.created_at DESC, a.id DESC";

impl Store {
    pub async fn audit(&self, e: &AuditEvent<'_>) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "INSERT INTO audit_events (id, tenant_id, member_id, event, ip, user_agent, \
                 detail, created_at, actor_type, actor_id, before_value, after_value) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(event_id())
            .bind(e.tenant.map(TenantId::as_str))
            .bind(e.member_id)
            .bind(e.event)
            .bind(e.ip)
            .bind(e.user_agent)
            .bind(e.detail)
            .bind(now_unix())
            .bind(e.actor.kind())
            .bind(e.actor.id())
            .bind(e.before)
            .bind(e.after)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// The member's most recent events of the kinds in `events`, newest first (their
    /// sign-in history).
    pub async fn member_events(
        &self,
        tenant: &TenantId,
        member_id: &str,
        events: &[&str],
        limit: i64,
    ) -> StoreResult<Vec<MemberEvent>> {
        let placeholders: Vec<String> = (0..events.len()).map(|i| format!("${}", i + 4)).collect();
        let sql = format!(
            "SELECT created_at, event, detail, ip, user_agent FROM audit_events \
             WHERE tenant_id = $1 AND member_id = $2 AND event IN ({}) \
             ORDER BY created_at DESC, id DESC LIMIT $3",
            placeholders.join(", ")
        );
        let rows = on_pool!(&self.pool, p => {
            let mut q = sqlx::query_as(&sql)
                .bind(tenant.as_str())
                .bind(member_id)
                .bind(limit);
            for event in events {
                q = q.bind(*event);
            }
            q.fetch_all(p).await
        })?;
        Ok(rows)
    }

    /// One page of the tenant's audit log, newest first.
    pub async fn audit_page(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
        limit: i64,
    ) -> StoreResult<Vec<AuditRow>> {
        let sql = format!("{AUDIT_SELECT} LIMIT {}", limit.clamp(1, 1000));
        let (before_at, before_id) = match &filter.before {
            Some((at, id)) => (Some(*at), Some(id.as_str())),
            None => (None, None),
        };
        let rows = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql)
                .bind(tenant.as_str())
                .bind(filter.member_id.as_deref())
                .bind(filter.actor_type.as_deref())
                .bind(filter.actor_id.as_deref())
                .bind(filter.event.as_deref())
                .bind(filter.from)
                .bind(filter.until)
                .bind(before_at)
                .bind(before_id)
                .fetch_all(p)
                .await
        })?;
        Ok(rows)
    }

    /// Every row the filter selects, newest first, as a stream: an export of a million
    /// rows never sits in memory.
    pub fn audit_stream<'a>(
        &'a self,
        tenant: &'a TenantId,
        filter: &'a AuditFilter,
    ) -> futures_util::stream::BoxStream<'a, StoreResult<AuditRow>> {
        use futures_util::StreamExt;
        match &self.pool {
            super::Pool::Sqlite(p) => sqlx::query_as::<_, AuditRow>(AUDIT_SELECT)
                .bind(tenant.as_str())
                .bind(filter.member_id.as_deref())
                .bind(filter.actor_type.as_deref())
                .bind(filter.actor_id.as_deref())
                .bind(filter.event.as_deref())
                .bind(filter.from)
                .bind(filter.until)
                .bind(None::<i64>)
                .bind(None::<&str>)
                .fetch(p)
                .map(|r| r.map_err(Into::into))
                .boxed(),
            super::Pool::Postgres(p) => sqlx::query_as::<_, AuditRow>(AUDIT_SELECT)
                .bind(tenant.as_str())
                .bind(filter.member_id.as_deref())
                .bind(filter.actor_type.as_deref())
                .bind(filter.actor_id.as_deref())
                .bind(filter.event.as_deref())
                .bind(filter.from)
                .bind(filter.until)
                .bind(None::<i64>)
                .bind(None::<&str>)
                .fetch(p)
                .map(|r| r.map_err(Into::into))
                .boxed(),
        }
    }
}

impl Store {
    /// Sign-ins of the tenant's members per day in Japan since `since`:
    /// (event, day number since the epoch in Japan time, count), for `login_succeeded` and
    /// `login_failed`.
    pub async fn signins_per_day(
        &self,
        tenant: &TenantId,
        since: i64,
    ) -> StoreResult<Vec<(String, i64, i64)>> {
        let rows = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT event, (created_at + 32400) / 86400 AS day, COUNT(*) FROM audit_events \
                 WHERE tenant_id = $1 AND event IN ('login_succeeded', 'login_failed') \
                 AND created_at >= $2 GROUP BY event, (created_at + 32400) / 86400",
            )
            .bind(tenant.as_str())
            .bind(since)
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
    }
}
