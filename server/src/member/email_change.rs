//! Changing the e-mail address (manual §3-5): after a step-up the member gives a new
//! address; a single-use link goes there, and the address changes only when that link is
//! opened (in any browser). The old address is then told. Requests are throttled per
//! member and per requesting address; a newer request voids the older link.

use crate::mail::{EmailAddress, MailError};
use crate::member::recovery::Requester;
use crate::state::AppState;
use crate::store::{now_unix, Actor, AuditEvent, EmailChanged, Member, StoreResult};
use crate::tenant::Tenant;

/// The purpose of e-mail change links in `one_time_tokens`.
pub const PURPOSE: &str = "email_change";
/// Links one member may be sent in [`WINDOW_SECS`].
pub const PER_MEMBER: i64 = 5;
/// Requests one address may make in [`WINDOW_SECS`], over all members (generous: the
/// staff of one employer may share an address).
pub const PER_IP: i64 = 30;
pub const WINDOW_SECS: i64 = 60 * 60;

/// Why a request was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The new address is the one on record.
    Unchanged,
    /// Too many requests lately (from this member or this address).
    TooMany,
}

impl Refusal {
    /// The locale key of the message shown next to the field.
    pub fn text_key(self) -> &'static str {
        match self {
            Refusal::Unchanged => "email_change.unchanged",
            Refusal::TooMany => "email_change.too_many",
        }
    }
}

async fn record(
    state: &AppState,
    tenant: &Tenant,
    member: Option<&str>,
    from: &Requester,
    event: &str,
    detail: &str,
) -> StoreResult<()> {
    state
        .store
        .audit(&AuditEvent {
            tenant: Some(&tenant.id),
            member_id: member,
            actor: member.map_or(Actor::Anonymous, Actor::Member),
            event,
            ip: &from.ip,
            user_agent: &from.user_agent,
            detail,
            before: None,
            after: None,
        })
        .await
}

/// Sends a confirmation link for `new` to `new`. The member's address stays as it is
/// until the link is opened; the page shows the pending change meanwhile.
pub async fn request(
    state: &AppState,
    tenant: &Tenant,
    member: &Member,
    new: &EmailAddress,
    from: &Requester,
) -> anyhow::Result<Result<(), Refusal>> {
    if new.as_str().eq_ignore_ascii_case(&member.email) {
        return Ok(Err(Refusal::Unchanged));
    }
    let store = &state.store;
    let since = now_unix() - WINDOW_SECS;
    let by_member = store
        .tokens_since(&tenant.id, &member.id, PURPOSE, since)
        .await?;
    let limit = crate::throttle::Limit {
        name: "email_change",
        max: PER_IP,
        window_secs: WINDOW_SECS,
    };
    let by_ip = if by_member >= PER_MEMBER {
        None
    } else {
        limit.attempt(store, &from.ip).await?
    };
    if by_ip.is_none() {
        record(
            state,
            tenant,
            Some(&member.id),
            from,
            "email_change_refused",
            "too many",
        )
        .await?;
        return Ok(Err(Refusal::TooMany));
    }
    let link = crate::member::links::Link {
        purpose: PURPOSE,
        payload: new.as_str(),
        lifetime_minutes: tenant.settings.links.email_verification_lifetime_minutes,
        path: "/email/change",
        template: "email_change",
    };
    match crate::member::links::send(state, tenant, member, new, &link).await {
        Ok(()) => {}
        // The outbox's own limits per recipient: refused like too many requests.
        Err(MailError::RecipientRateLimited | MailError::TenantRateLimited) => {
            record(
                state,
                tenant,
                Some(&member.id),
                from,
                "email_change_refused",
                "too many",
            )
            .await?;
            return Ok(Err(Refusal::TooMany));
        }
        Err(e) => return Err(e.into()),
    }
    let detail = format!("{} -> {}", member.email, new.as_str());
    record(
        state,
        tenant,
        Some(&member.id),
        from,
        "email_change_requested",
        &detail,
    )
    .await?;
    Ok(Ok(()))
}

/// The link in the mail to the new address: changes the address if the link is live,
/// and tells the old address. None if the link is unknown, used, voided or expired.
pub async fn confirm(
    state: &AppState,
    tenant: &Tenant,
    token_hash: &str,
    from: &Requester,
) -> anyhow::Result<Option<EmailChanged>> {
    let Some(changed) = state
        .store
        .finish_email_change(&tenant.id, token_hash)
        .await?
    else {
        record(
            state,
            tenant,
            None,
            from,
            "email_change_link_refused",
            "not live",
        )
        .await?;
        return Ok(None);
    };
    let member = Some(changed.member_id.as_str());
    let detail = format!("{} -> {}", changed.old, changed.new);
    record(state, tenant, member, from, "email_changed", &detail).await?;
    if let Ok(old) = EmailAddress::parse(&changed.old) {
        let mut ctx = tera::Context::new();
        ctx.insert("new", &changed.new);
        ctx.insert("at", &crate::web::pages::date_time(now_unix()));
        match state
            .mailer
            .send(&state.store, tenant, &old, "email_changed", ctx)
            .await
        {
            Ok(_) => record(state, tenant, member, from, "email_change_notice_sent", "").await?,
            Err(error) => tracing::error!(%error, "queueing the old address's notice failed"),
        }
    }
    Ok(Some(changed))
}
