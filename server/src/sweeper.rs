//! Retention: one sweeper per node removes what has lapsed.
//!
//! - sign-in flows past their expiry, sessions past their tenant's idle or absolute
//!   time-out, console sessions past the console's, one-time tokens a day after they
//!   expired (the per-member limits count them that long), expired invitations, roster
//!   imports never committed, letters past their hour, the credentials CSVs of imports
//!   whose hour is over (the sealed CSV only), and throttle windows no throttle reads any
//!   more;
//! - audit events older than the tenant's `retention.audit_days` and delivered or given-up
//!   mail older than its `retention.mail_days`.
//!
//! Deletes run in batches of [`crate::store::sweep::BATCH`] rows; running on every node at
//! once is safe. The counts go to `portal_sweep_deleted_total{kind}`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::state::AppState;
use crate::store::{now_ms, now_unix, StoreResult};

const DAY: i64 = 24 * 60 * 60;
/// Throttle windows are at most an hour; two windows are read.
const THROTTLE_KEEP_SECS: i64 = 3 * 60 * 60;

pub fn spawn(
    state: Arc<AppState>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let every = Duration::from_millis(state.config.sweep_interval_ms);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            match sweep(&state).await {
                Ok(counts) => {
                    let total: u64 = counts.values().sum();
                    if total > 0 {
                        tracing::info!(?counts, "swept lapsed records");
                    }
                }
                Err(error) => tracing::warn!(%error, "sweeping lapsed records failed"),
            }
        }
    })
}

/// One sweep; returns the rows removed by kind.
pub async fn sweep(state: &AppState) -> StoreResult<HashMap<&'static str, u64>> {
    let store = &state.store;
    let now = now_unix();
    let mut counts = HashMap::new();
    let global: [(&'static str, &str, &str, &str, i64); 7] = [
        (
            "login_flows",
            "login_flows",
            "token_hash",
            "expires_at < $2",
            now,
        ),
        (
            "one_time_tokens",
            "one_time_tokens",
            "token_hash",
            "expires_at < $2",
            now - DAY,
        ),
        (
            "admin_invitations",
            "admin_invitations",
            "token_hash",
            "expires_at < $2",
            now - DAY,
        ),
        (
            "member_imports",
            "member_imports",
            "id",
            "expires_at < $2 AND committed_at IS NULL",
            now,
        ),
        (
            "member_letters",
            "member_letters",
            "id",
            "expires_at < $2",
            now,
        ),
        (
            "throttle_counters",
            "throttle_counters",
            "key || ':' || window_start",
            "window_start < $2",
            now - THROTTLE_KEEP_SECS,
        ),
        (
            "admin_sessions",
            "admin_sessions",
            "token_hash",
            &ADMIN_SESSIONS_LAPSED,
            now,
        ),
    ];
    for (kind, table, key, filter, before) in global {
        let n = store
            .delete_in_batches(table, key, filter, "", before)
            .await?;
        *counts.entry(kind).or_default() += n;
    }
    // Credentials CSVs nobody downloaded within their hour: the secrets go, the import's
    // record stays.
    let n = store
        .sweep_import_credentials(now - crate::admin::members::LETTER_SECS)
        .await?;
    *counts.entry("import_credentials").or_default() += n;

    // Per tenant, by its own rules; only tenants that have something to remove are read.
    let tenants = state.store.tenants().await?;
    let by_id: HashMap<&str, &crate::tenant::Tenant> =
        tenants.iter().map(|t| (t.id.as_str(), t)).collect();
    let shortest_idle = tenants
        .iter()
        .map(|t| i64::from(t.settings.session.idle_timeout_minutes) * 60)
        .min()
        .unwrap_or(0);
    for id in store
        .tenants_with("sessions", "last_seen_at < $1", now - shortest_idle)
        .await?
    {
        let Some(t) = by_id.get(id.as_str()) else {
            continue;
        };
        let s = &t.settings.session;
        let idle = now - i64::from(s.idle_timeout_minutes) * 60;
        let absolute = now - i64::from(s.absolute_timeout_minutes) * 60;
        let filter = format!("tenant_id = $1 AND (last_seen_at < $2 OR created_at < {absolute})");
        let n = store
            .delete_in_batches("sessions", "token_hash", &filter, &id, idle)
            .await?;
        *counts.entry("sessions").or_default() += n;
    }
    let shortest_audit = tenants
        .iter()
        .map(|t| i64::from(t.settings.retention.audit_days) * DAY)
        .min()
        .unwrap_or(0);
    for id in store
        .tenants_with("audit_events", "created_at < $1", now - shortest_audit)
        .await?
    {
        let Some(t) = by_id.get(id.as_str()) else {
            continue;
        };
        let before = now - i64::from(t.settings.retention.audit_days) * DAY;
        let n = store
            .delete_in_batches(
                "audit_events",
                "id",
                "tenant_id = $1 AND created_at < $2",
                &id,
                before,
            )
            .await?;
        *counts.entry("audit_events").or_default() += n;
    }
    let now_ms = now_ms();
    let shortest_mail = tenants
        .iter()
        .map(|t| i64::from(t.settings.retention.mail_days) * DAY * 1000)
        .min()
        .unwrap_or(0);
    for id in store
        .tenants_with(
            "mail_outbox",
            "status IN ('sent', 'failed') AND created_ms < $1",
            now_ms - shortest_mail,
        )
        .await?
    {
        let Some(t) = by_id.get(id.as_str()) else {
            continue;
        };
        let before = now_ms - i64::from(t.settings.retention.mail_days) * DAY * 1000;
        let n = store
            .delete_in_batches(
                "mail_outbox",
                "id",
                "tenant_id = $1 AND status IN ('sent', 'failed') AND created_ms < $2",
                &id,
                before,
            )
            .await?;
        *counts.entry("mail_outbox").or_default() += n;
    }
    for (kind, n) in &counts {
        state.metrics.swept.with_label_values(&[kind]).inc_by(*n);
    }
    Ok(counts)
}

/// Console sessions past the console's idle or absolute time-out.
static ADMIN_SESSIONS_LAPSED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "last_seen_at < $2 - {} OR created_at < $2 - {}",
        crate::web::admin::IDLE_SECS,
        crate::web::admin::ABSOLUTE_SECS
    )
});
