//! Single-use links in mail (a password reset, an e-mail change): a 256-bit token whose
//! SHA-256 is stored with its purpose, the member, a payload and an expiry; a newer link of
//! the same purpose voids the older ones. The link is built from the tenant's own host,
//! never from a header of the request.

use crate::mail::{EmailAddress, MailError};
use crate::state::AppState;
use crate::store::{now_unix, Member};
use crate::tenant::Tenant;

/// A link to mail.
pub struct Link<'a> {
    /// `one_time_tokens.purpose`.
    pub purpose: &'a str,
    /// What the token is about (the new address of an e-mail change).
    pub payload: &'a str,
    pub lifetime_minutes: u32,
    /// The page the link opens, e.g. `/password-reset`.
    pub path: &'a str,
    /// The mail template; it gets `name`, `link` and `lifetime_minutes`.
    pub template: &'a str,
}

/// Voids the member's older links of this purpose, stores the new token and queues its
/// mail to `to`, all in one transaction: either the mail goes with a live token, or
/// nothing changed.
pub async fn send(
    state: &AppState,
    tenant: &Tenant,
    member: &Member,
    to: &EmailAddress,
    link: &Link<'_>,
) -> Result<(), MailError> {
    let lifetime = i64::from(link.lifetime_minutes);
    let (token, token_hash) = crate::auth::session::new_token();
    let mut ctx = tera::Context::new();
    ctx.insert("name", &member.display_name);
    ctx.insert(
        "link",
        &format!(
            "{}{}?token={token}",
            crate::admin::tenant_url(state, tenant),
            link.path
        ),
    );
    ctx.insert("lifetime_minutes", &lifetime);
    let mut tx = state.store.begin().await?;
    tx.void_tokens(&tenant.id, &member.id, link.purpose).await?;
    tx.insert_token(
        &tenant.id,
        &member.id,
        &token_hash,
        link.purpose,
        link.payload,
        now_unix() + lifetime * 60,
    )
    .await?;
    state
        .mailer
        .enqueue(&mut tx, tenant, to, link.template, ctx)
        .await?;
    tx.commit().await?;
    state.mailer.wake().notify_one();
    Ok(())
}
