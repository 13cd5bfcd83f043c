//! What the dashboard shows: members by state, second-factor adoption, sign-ins per day
//! for 30 days, mail waiting and failed.

use super::{Ctx, ServiceError};

/// Days the sign-in figures cover.
pub const DAYS: i64 = 30;

/// Sign-ins of one day (Japan time).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Day {
    /// `MM/DD`
    pub day: String,
    pub ok: i64,
    pub failed: i64,
}

#[derive(Debug, Clone)]
pub struct Dashboard {
    /// (state, members) for active, temporary, locked, disabled.
    pub states: Vec<(&'static str, i64)>,
    pub total: i64,
    /// (kind, members holding it) for passkey, totp, email_otp.
    pub adoption: Vec<(&'static str, i64)>,
    /// Oldest first, every day of the period.
    pub signins: Vec<Day>,
    pub mail_waiting: i64,
    pub mail_failed: i64,
}

pub async fn dashboard(ctx: &Ctx<'_>) -> Result<Dashboard, ServiceError> {
    let store = &ctx.state.store;
    let id = &ctx.tenant.id;
    let counts = store.member_state_counts(id).await?;
    let count_of = |key: &str| {
        counts
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, n)| *n)
            .sum()
    };
    let states: Vec<(&'static str, i64)> = ["active", "temporary", "locked", "disabled"]
        .into_iter()
        .map(|k| (k, count_of(k)))
        .collect();
    let total = states.iter().map(|(_, n)| n).sum();
    let adopted = store.factor_adoption(id).await?;
    let adoption = ["passkey", "totp", "email_otp"]
        .into_iter()
        .map(|k| {
            let n = adopted
                .iter()
                .filter(|(kind, _)| kind == k)
                .map(|(_, n)| *n)
                .sum();
            (k, n)
        })
        .collect();
    let now = crate::store::now_unix();
    let today = (now + 9 * 3600) / 86400;
    let first = today - (DAYS - 1);
    let rows = store.signins_per_day(id, first * 86400 - 9 * 3600).await?;
    let signins = (first..=today)
        .map(|day| {
            let of = |event: &str| {
                rows.iter()
                    .filter(|(e, d, _)| e == event && *d == day)
                    .map(|(_, _, n)| *n)
                    .sum()
            };
            let date = time::OffsetDateTime::from_unix_timestamp(day * 86400)
                .map(|t| format!("{:02}/{:02}", u8::from(t.month()), t.day()))
                .unwrap_or_default();
            Day {
                day: date,
                ok: of("login_succeeded"),
                failed: of("login_failed"),
            }
        })
        .collect();
    let (mail_waiting, mail_failed) = store.tenant_mail_backlog(id).await?;
    Ok(Dashboard {
        states,
        total,
        adoption,
        signins,
        mail_waiting,
        mail_failed,
    })
}
