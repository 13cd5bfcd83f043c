//! Self-service recovery for members who cannot sign in. A forgotten user ID (manual
//! §3-4): the birth date and the e-mail address on record are given; when both match
//! members of the society, one mail lists their user IDs (a household may share an
//! address). The answer never tells whether anything matched, so the work that differs
//! runs after the answer has gone.

use crate::mail::EmailAddress;
use crate::state::AppState;
use crate::store::{Actor, AuditEvent, MemberState, StoreResult};
use crate::tenant::Tenant;

/// Requests one address may make in [`THROTTLE_WINDOW_SECS`]; past that, a request is
/// answered as usual and nothing is done.
pub const THROTTLE_REQUESTS: i64 = 10;
pub const THROTTLE_WINDOW_SECS: i64 = 15 * 60;

/// Where a request comes from, for the audit log.
pub struct Requester<'a> {
    pub ip: &'a str,
    pub user_agent: &'a str,
}

/// Writes one audit event of an anonymous requester, about `member` if given.
async fn record(
    state: &AppState,
    tenant: &Tenant,
    from: &Requester<'_>,
    event: &str,
    member: Option<&str>,
) -> StoreResult<()> {
    state
        .store
        .audit(&AuditEvent {
            tenant: Some(&tenant.id),
            member_id: member,
            actor: Actor::Anonymous,
            event,
            ip: from.ip,
            user_agent: from.user_agent,
            detail: "",
            before: None,
            after: None,
        })
        .await
}

/// Records a user-ID reminder request; false when the address has asked too often and the
/// request is to be dropped.
pub async fn accept_request(
    state: &AppState,
    tenant: &Tenant,
    from: &Requester<'_>,
) -> StoreResult<bool> {
    let since = crate::store::now_unix() - THROTTLE_WINDOW_SECS;
    let recent = state
        .store
        .events_from_ip(from.ip, "user_id_reminder_requested", since)
        .await?;
    let accepted = recent < THROTTLE_REQUESTS;
    let event = if accepted {
        "user_id_reminder_requested"
    } else {
        "user_id_reminder_throttled"
    };
    record(state, tenant, from, event, None).await?;
    Ok(accepted)
}

/// Mails the user IDs of the society's members born on `birth_date` whose address is
/// `email` (compared without regard to case), if there are any; disabled members are left
/// out. Returns how many user IDs were sent.
pub async fn remind_user_ids(
    state: &AppState,
    tenant: &Tenant,
    birth_date: &str,
    email: &EmailAddress,
    from: &Requester<'_>,
) -> anyhow::Result<usize> {
    let wanted = email.as_str().to_lowercase();
    let members: Vec<_> = state
        .store
        .members_born_on(&tenant.id, birth_date)
        .await?
        .into_iter()
        .filter(|m| m.state != MemberState::Disabled && m.email.to_lowercase() == wanted)
        .collect();
    if members.is_empty() {
        // Recorded like a match is, so that the work after the answer is alike too.
        record(state, tenant, from, "user_id_reminder_unmatched", None).await?;
        return Ok(0);
    }
    let user_ids: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
    let mut ctx = tera::Context::new();
    ctx.insert("user_ids", &user_ids);
    ctx.insert(
        "login_url",
        &format!("{}/login", crate::admin::tenant_url(state, tenant)),
    );
    state
        .mailer
        .send(&state.store, tenant, email, "user_id_reminder", ctx)
        .await?;
    for m in &members {
        record(
            state,
            tenant,
            from,
            "user_id_reminder_sent",
            Some(m.id.as_str()),
        )
        .await?;
    }
    Ok(members.len())
}
