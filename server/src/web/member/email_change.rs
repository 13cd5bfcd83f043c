//! 「プロフィール変更」 → 「Eメール変更」 (manual §3-5): step-up, the current address
//! shown, a new one → 「実行」 → a link to the new address; the link in the mail changes
//! the address and the profile shows the new one.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Form, Query, Redirect};
use poem::{handler, IntoResponse, Response};
use serde::Deserialize;

use super::account::{recent_enough, signed_in_context, step_up};
use super::session::SignedIn;
use crate::auth::session;
use crate::mail::EmailAddress;
use crate::member::email_change;
use crate::web::pages::render;
use crate::web::{internal, AppState, CurrentTenant, RequestMeta};

const PAGE: &str = "/profile/email";
/// Longest address echoed back into the form.
const MAX_EMAIL: usize = 254;

/// ⑥ メールアドレス更新: the current address in the field, 「実行」.
#[handler]
pub async fn page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    signed_in: SignedIn,
) -> Response {
    if !recent_enough(&tenant.0, &signed_in) {
        return step_up(PAGE);
    }
    let mut ctx = signed_in_context(&signed_in);
    ctx.insert("current", &signed_in.member.email);
    ctx.insert("email", &signed_in.member.email);
    render(
        &state,
        &tenant.0,
        &meta,
        "email_change.html",
        ctx,
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    email: String,
}

#[handler]
pub async fn request(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    signed_in: SignedIn,
    Form(form): Form<EmailForm>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    if !recent_enough(tenant, &signed_in) {
        return Ok(step_up(PAGE));
    }
    let member = &signed_in.member;
    let theme = state.themes.get(&tenant.slug).map_err(internal)?;
    let refused = |key: &str| {
        let mut ctx = signed_in_context(&signed_in);
        ctx.insert("current", &member.email);
        let echo =
            form.email.chars().count() <= MAX_EMAIL && !form.email.chars().any(char::is_control);
        ctx.insert("email", if echo { form.email.as_str() } else { "" });
        ctx.insert("email_errors", &[theme.text(key)]);
        render(
            &state,
            tenant,
            &meta,
            "email_change.html",
            ctx,
            StatusCode::OK,
        )
    };
    let email = match EmailAddress::parse(&form.email) {
        Ok(email) => email,
        Err(e) => return Ok(refused(e.text_key())),
    };
    let outcome = email_change::request(&state, tenant, member, &email, &meta.requester())
        .await
        .map_err(internal)?;
    match outcome {
        Ok(()) => Ok(Redirect::see_other("/profile?email=sent").into_response()),
        Err(refusal) => Ok(refused(refusal.text_key())),
    }
}

#[derive(Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    token: String,
}

fn plausible(token: &str) -> bool {
    session::is_token_shaped(token)
}

fn link_page(
    state: &AppState,
    tenant: &crate::tenant::Tenant,
    meta: &RequestMeta,
    ctx: tera::Context,
    status: StatusCode,
) -> Response {
    let mut ctx = ctx;
    ctx.insert(
        "lifetime_minutes",
        &tenant.settings.links.email_verification_lifetime_minutes,
    );
    render(state, tenant, meta, "email_changed.html", ctx, status)
}

/// The link in the mail to the new address, in any browser, signed in or not: a live
/// link shows the new address and 「メールアドレスを変更する」; opening it changes nothing,
/// so a mail scanner that follows links first cannot use it up.
#[handler]
pub async fn open_link(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    query: Query<LinkQuery>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let token = query.token.as_str();
    let live = if plausible(token) {
        state
            .store
            .live_token(
                &tenant.id,
                &session::token_hash(token),
                email_change::PURPOSE,
            )
            .await
            .map_err(internal)?
    } else {
        None
    };
    let mut ctx = tera::Context::new();
    let status = match live {
        Some(live) => {
            ctx.insert("confirm", &true);
            ctx.insert("new", &live.payload);
            ctx.insert("token", token);
            StatusCode::OK
        }
        None => {
            ctx.insert("changed", &false);
            StatusCode::BAD_REQUEST
        }
    };
    Ok(link_page(&state, tenant, &meta, ctx, status))
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    #[serde(default)]
    token: String,
}

/// 「メールアドレスを変更する」: the address changes and the old one is told.
#[handler]
pub async fn confirm(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    Form(form): Form<ConfirmForm>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let changed = if plausible(&form.token) {
        let hash = session::token_hash(&form.token);
        email_change::confirm(&state, tenant, &hash, &meta.requester())
            .await
            .map_err(internal)?
    } else {
        None
    };
    let mut ctx = tera::Context::new();
    let status = match &changed {
        Some(changed) => {
            ctx.insert("new", &changed.new);
            StatusCode::OK
        }
        None => StatusCode::BAD_REQUEST,
    };
    ctx.insert("changed", &changed.is_some());
    Ok(link_page(&state, tenant, &meta, ctx, status))
}
