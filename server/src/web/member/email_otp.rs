//! One-time passwords by e-mail (kanekakenpo manual 【2-6】): a code is mailed from the
//! tenant's sender through the outbox; 「再送信」 sends a new one after a cooldown; a code
//! works once, until it expires, for a limited number of tries. The same page sets the
//! factor up (the first code proves the address) and serves later logins.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Query, Redirect};
use poem::{handler, IntoResponse, Response};
use rand::Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::crypto::constant_time_eq;
use crate::mail::EmailAddress;
use crate::mfa::totp::normalize_code;
use crate::store::now_unix;
use crate::tenant::{MfaMethod, Tenant};
use crate::web::factor;
use crate::web::internal;
use crate::web::pages::render;
use crate::web::signin::{lockout_failure, Action, Flow};
use crate::web::{AppState, CurrentTenant, RequestMeta};

/// The keyed hash the flow keeps of its code: a leaked table gives no code away.
fn code_hash(state: &AppState, flow_token_hash: &str, code: &str) -> String {
    let key = state.secrets.derive_key("email-otp");
    hex::encode(
        Sha256::new()
            .chain_update(key)
            .chain_update(flow_token_hash)
            .chain_update(b"\0")
            .chain_update(code)
            .finalize(),
    )
}

/// Whether the flow's code can still be used.
fn live_code(tenant: &Tenant, flow: &Flow, now: i64) -> bool {
    let max = i64::from(tenant.settings.email_otp.max_attempts);
    flow.flow.email_code_hash.is_some()
        && flow.flow.email_code_expires_at.unwrap_or(0) > now
        && flow.flow.email_code_attempts < max
}

/// Seconds until 「再送信」 may send again (0: now).
fn cooldown_left(tenant: &Tenant, flow: &Flow, now: i64) -> i64 {
    let cooldown = i64::from(tenant.settings.email_otp.resend_cooldown_seconds);
    match flow.flow.email_code_sent_at {
        Some(sent) => (sent + cooldown - now).max(0),
        None => 0,
    }
}

/// Mails a new code for the flow; the previous one stops working.
async fn send_code(
    state: &AppState,
    tenant: &Tenant,
    meta: &RequestMeta,
    flow: &Flow,
) -> poem::Result<bool> {
    let policy = &tenant.settings.email_otp;
    let Ok(to) = EmailAddress::parse(&flow.who.email) else {
        return Ok(false);
    };
    let digits = policy.code_length.clamp(4, 10) as usize;
    let code: String = {
        let mut rng = rand::thread_rng();
        (0..digits)
            .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
            .collect()
    };
    let now = now_unix();
    let lifetime = i64::from(policy.lifetime_minutes);
    let mut ctx = tera::Context::new();
    ctx.insert("code", &code);
    ctx.insert("lifetime_minutes", &lifetime);
    let result = state
        .mailer
        .send(&state.store, tenant, &to, "email_otp", ctx)
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, "an e-mail one-time password could not be queued");
        meta.audit(
            &state.store,
            tenant,
            Some(&flow.who.id),
            "email_otp_send_failed",
            &error.to_string(),
        )
        .await;
        return Ok(false);
    }
    state
        .store
        .set_flow_email_code(
            &tenant.id,
            &flow.token_hash,
            &code_hash(state, &flow.token_hash, &code),
            now,
            now + lifetime * 60,
        )
        .await
        .map_err(internal)?;
    meta.audit(
        &state.store,
        tenant,
        Some(&flow.who.id),
        "email_otp_sent",
        to.as_str(),
    )
    .await;
    Ok(true)
}

fn masked(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let shown: String = local.chars().take(2).collect();
            format!("{shown}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

fn page_context(tenant: &Tenant, flow: &Flow, now: i64) -> tera::Context {
    let mut ctx = factor::context(flow, MfaMethod::EmailOtp);
    ctx.insert("email", &masked(&flow.who.email));
    ctx.insert("sender", &crate::mail::sender_address(tenant));
    ctx.insert("digits", &tenant.settings.email_otp.code_length);
    ctx.insert(
        "lifetime_minutes",
        &tenant.settings.email_otp.lifetime_minutes,
    );
    ctx.insert("cooldown_left", &cooldown_left(tenant, flow, now));
    ctx
}

/// The flow of this request at the e-mail code step (login or set-up).
async fn load(
    state: &AppState,
    tenant: &Tenant,
    jar: &CookieJar,
) -> poem::Result<Result<(Flow, bool), Response>> {
    let flow = match crate::web::signin::step(
        state,
        tenant,
        jar,
        &[Action::SecondFactor, Action::SetupEmailOtp],
    )
    .await?
    {
        Ok(flow) => flow,
        Err(redirect) => return Ok(Err(redirect)),
    };
    let setup = flow.owed(tenant).first() == Some(&Action::SetupEmailOtp);
    if !setup && !flow.factors.has(MfaMethod::EmailOtp) {
        return Ok(Err(factor::choose(&flow)));
    }
    Ok(Ok((flow, setup)))
}

fn show(state: &AppState, tenant: &Tenant, meta: &RequestMeta, ctx: tera::Context) -> Response {
    render(state, tenant, meta, "email_otp.html", ctx, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct PageQuery {
    notice: Option<String>,
}

/// The code page; a code is mailed when the flow has none that still works.
#[handler]
pub async fn page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    query: Query<PageQuery>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let (flow, _) = match load(&state, tenant, jar).await? {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect),
    };
    let now = now_unix();
    let mut ctx = page_context(tenant, &flow, now);
    match query.notice.as_deref() {
        Some("resent") => ctx.insert("notice", "resent"),
        Some(key @ ("cooldown" | "send_failed")) => ctx.insert("resend_error", key),
        _ => {}
    }
    if !live_code(tenant, &flow, now) && cooldown_left(tenant, &flow, now) == 0 {
        if send_code(&state, tenant, &meta, &flow).await? {
            let cooldown = i64::from(tenant.settings.email_otp.resend_cooldown_seconds);
            ctx.insert("cooldown_left", &cooldown);
        } else {
            ctx.insert("resend_error", "send_failed");
        }
    }
    Ok(show(&state, tenant, &meta, ctx))
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
}

/// The code the member typed.
#[handler]
pub async fn verify(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    Form(form): Form<CodeForm>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let (flow, setup) = match load(&state, tenant, jar).await? {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect),
    };
    let now = now_unix();
    let mut ctx = page_context(tenant, &flow, now);
    if !live_code(tenant, &flow, now) {
        ctx.insert("error", "expired");
        return Ok(show(&state, tenant, &meta, ctx));
    }
    let code = normalize_code(&form.code);
    let hash = code_hash(&state, &flow.token_hash, &code);
    let stored = flow.flow.email_code_hash.as_deref().unwrap_or("");
    let max = i64::from(tenant.settings.email_otp.max_attempts);
    let right = constant_time_eq(hash.as_bytes(), stored.as_bytes())
        && state
            .store
            .use_flow_email_code(&tenant.id, &flow.token_hash, &hash, max)
            .await
            .map_err(internal)?;
    if right {
        if setup {
            state
                .store
                .set_email_otp_enabled(&tenant.id, &flow.who.id, true)
                .await
                .map_err(internal)?;
            let theme = state.themes.get(&tenant.slug).map_err(internal)?;
            let name = theme.text("factors.email_otp");
            return factor::registered(&state, tenant, &meta, &flow, MfaMethod::EmailOtp, name)
                .await;
        }
        meta.audit(
            &state.store,
            tenant,
            Some(&flow.who.id),
            "email_otp_used",
            "",
        )
        .await;
        flow.factor_proven(&state, tenant, MfaMethod::EmailOtp, false)
            .await?;
        return Ok(Redirect::see_other("/login/next").into_response());
    }
    state
        .store
        .flow_email_code_failed(&tenant.id, &flow.token_hash)
        .await
        .map_err(internal)?;
    let locked = lockout_failure(
        &state,
        tenant,
        &meta,
        &flow.who,
        "email_otp_failed",
        "wrong e-mail one-time password",
    )
    .await?;
    if locked {
        return Ok(Redirect::see_other("/login?locked=1").into_response());
    }
    let spent = flow.flow.email_code_attempts + 1 >= max;
    ctx.insert("error", if spent { "exhausted" } else { "wrong" });
    Ok(show(&state, tenant, &meta, ctx))
}

/// 「再送信」: a new code once the cooldown has passed.
#[handler]
pub async fn resend(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let (flow, _) = match load(&state, tenant, jar).await? {
        Ok(found) => found,
        Err(redirect) => return Ok(redirect),
    };
    let now = now_unix();
    let notice = if cooldown_left(tenant, &flow, now) > 0 {
        "cooldown"
    } else if send_code(&state, tenant, &meta, &flow).await? {
        "resent"
    } else {
        "send_failed"
    };
    // Back to the code page, so that reloading it sends nothing.
    Ok(Redirect::see_other(format!("/login/email-otp?notice={notice}")).into_response())
}
