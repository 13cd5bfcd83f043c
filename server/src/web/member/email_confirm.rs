//! E-mail confirmation by link on first login (tenants with
//! `first_login.confirm_email_by_link`, kanekakenpo manual 【6】【7】): a single-use link is
//! mailed; the member opens it in any browser, returns and presses 「更新」.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Query};
use poem::{handler, Response};
use serde::Deserialize;

use crate::auth::session;
use crate::mail::{EmailAddress, MailError};
use crate::store::now_unix;
use crate::tenant::Tenant;
use crate::web::internal;
use crate::web::pages::render;
use crate::web::signin::{flow_at, Action};
use crate::web::{AppState, CurrentTenant, RequestMeta};

/// Mails a single-use confirmation link for `email`; the token and its mail are
/// committed together.
pub async fn send_confirmation(
    state: &AppState,
    tenant: &Tenant,
    meta: &RequestMeta,
    member_id: &str,
    email: &EmailAddress,
) -> Result<(), MailError> {
    let lifetime = i64::from(tenant.settings.links.email_verification_lifetime_minutes);
    let (token, token_hash) = session::new_token();
    let mut ctx = tera::Context::new();
    // The tenant's own address, never the Host header the request came with.
    ctx.insert(
        "link",
        &format!(
            "{}/email/confirm?token={token}",
            crate::admin::tenant_url(state, tenant)
        ),
    );
    ctx.insert("lifetime_minutes", &lifetime);
    let mut tx = state.store.begin().await?;
    tx.insert_token(
        &tenant.id,
        member_id,
        &token_hash,
        "email_confirmation",
        email.as_str(),
        now_unix() + lifetime * 60,
    )
    .await?;
    state
        .mailer
        .enqueue(&mut tx, tenant, email, "email_confirmation", ctx)
        .await?;
    tx.commit().await?;
    state.mailer.wake().notify_one();
    meta.audit(
        &state.store,
        tenant,
        Some(member_id),
        "email_confirmation_sent",
        email.as_str(),
    )
    .await;
    Ok(())
}

/// 「確認メールを送信しました」 with 「更新」 and 「再送信」.
#[handler]
pub async fn confirm_email_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    let flow = flow_at!(&state, &tenant.0, jar, Action::ConfirmEmail);
    let mut ctx = tera::Context::new();
    ctx.insert("email", &flow.who.email);
    ctx.insert("sender", &crate::mail::sender_address(&tenant.0));
    Ok(render(
        &state,
        &tenant.0,
        &meta,
        "login_email_confirm.html",
        ctx,
        StatusCode::OK,
    ))
}

/// 「再送信」: another link to the same address (rate limits of the outbox apply).
#[handler]
pub async fn resend_confirmation(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let flow = flow_at!(&state, tenant, jar, Action::ConfirmEmail);
    let sent = match EmailAddress::parse(&flow.who.email) {
        Ok(email) => send_confirmation(&state, tenant, &meta, &flow.who.id, &email)
            .await
            .is_ok(),
        Err(_) => false,
    };
    let mut ctx = tera::Context::new();
    ctx.insert("email", &flow.who.email);
    ctx.insert("sender", &crate::mail::sender_address(tenant));
    ctx.insert("notice", if sent { "resent" } else { "resend_failed" });
    Ok(render(
        &state,
        tenant,
        &meta,
        "login_email_confirm.html",
        ctx,
        StatusCode::OK,
    ))
}

#[derive(Deserialize)]
pub struct ConfirmQuery {
    #[serde(default)]
    token: String,
}

/// The link in the mail; works in any browser, signed in or not. Used, expired,
/// unknown or superseded links (the address changed since) confirm nothing.
#[handler]
pub async fn open_confirmation_link(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    query: Query<ConfirmQuery>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let token = query.token.as_str();
    let plausible = session::is_token_shaped(token);
    let confirmed = plausible
        && state
            .store
            .confirm_email_token(&tenant.id, &session::token_hash(token))
            .await
            .map_err(internal)?;
    if confirmed {
        meta.audit(&state.store, tenant, None, "email_confirmed", "")
            .await;
    }
    let mut ctx = tera::Context::new();
    ctx.insert("confirmed", &confirmed);
    let status = if confirmed {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(render(
        &state,
        tenant,
        &meta,
        "email_confirmed.html",
        ctx,
        status,
    ))
}
