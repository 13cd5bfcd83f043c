//! The pages of a member who cannot sign in:
//!
//! - 「ユーザ IDを忘れた方はこちら」 (manual §3-4): 「生年月日」 and 「メールアドレス」 →
//!   「実行」 → the same page whatever was found.
//! - 「パスワードを忘れた方はこちら」 (manual §3-3): 「ユーザ ID」 → 「実行」 → the same page
//!   whatever was found; the mail's 「パスワードをリセット」 link opens a reset flow: the
//!   second factor (or a new authenticator app where the society resets factors with the
//!   password), then the new password 「実行」, then the top page.
//!
//! The look-ups and the mails run after the answer (see `member::recovery`).

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Query, Redirect};
use poem::{handler, IntoResponse, Response};
use serde::Deserialize;

use crate::auth::session;
use crate::mail::EmailAddress;
use crate::member::recovery::{self, Job, RESET_PURPOSE};
use crate::store::{now_unix, MemberState, Owner};
use crate::tenant::Tenant;
use crate::web::member::first_login::{new_password_errors, NewPasswordForm};
use crate::web::pages::render;
use crate::web::signin::{flow_at, start_flow, Action, Purpose, StartFlow};
use crate::web::{hash_error, internal, AppState, CurrentTenant, RequestMeta};

/// Longest input looked at; anything longer is refused before any work.
const MAX_FIELD: usize = 254;
/// Longest user ID anyone may type (as on the login page).
const MAX_USER_ID: usize = 64;
/// How long a reset may take once its link is opened.
const RESET_FLOW_SECS: i64 = 15 * 60;

fn page(
    state: &AppState,
    tenant: &Tenant,
    meta: &RequestMeta,
    template: &str,
    ctx: tera::Context,
) -> Response {
    render(state, tenant, meta, template, ctx, StatusCode::OK)
}

// --- forgotten user ID ---------------------------------------------------------------------

#[handler]
pub async fn user_id_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
) -> Response {
    page(
        &state,
        &tenant.0,
        &meta,
        "forgot_user_id.html",
        tera::Context::new(),
    )
}

#[derive(Deserialize)]
pub struct UserIdForm {
    #[serde(default)]
    birth_date: String,
    #[serde(default)]
    email: String,
}

#[handler]
pub async fn request_user_id(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    Form(form): Form<UserIdForm>,
) -> poem::Result<Response> {
    let birth_date = if form.birth_date.chars().count() > MAX_FIELD {
        Err("birth_date_format")
    } else {
        crate::member::policy::parse_birth_date(&form.birth_date)
    };
    let email = if form.email.chars().count() > MAX_FIELD {
        None
    } else {
        EmailAddress::parse(&form.email).ok()
    };
    let (Ok(birth_date), Some(email)) = (birth_date.clone(), email.clone()) else {
        let mut ctx = tera::Context::new();
        if let Err(code) = birth_date {
            ctx.insert("birth_date_error", code);
        }
        if email.is_none() {
            ctx.insert("email_error", &true);
        }
        if form.email.chars().count() <= MAX_FIELD && !form.email.chars().any(char::is_control) {
            ctx.insert("email", &form.email);
        }
        return Ok(page(&state, &tenant.0, &meta, "forgot_user_id.html", ctx));
    };
    let job = Job::RemindUserIds {
        tenant: Arc::clone(&tenant.0),
        birth_date,
        email,
        from: meta.requester(),
    };
    recovery::submit(&state, job).await.map_err(internal)?;
    Ok(Redirect::see_other("/forgot-user-id/sent").into_response())
}

#[handler]
pub async fn user_id_sent(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
) -> Response {
    let mut ctx = tera::Context::new();
    ctx.insert("sent", &true);
    page(&state, &tenant.0, &meta, "forgot_user_id.html", ctx)
}

// --- forgotten password --------------------------------------------------------------------

#[handler]
pub async fn password_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
) -> Response {
    page(
        &state,
        &tenant.0,
        &meta,
        "forgot_password.html",
        tera::Context::new(),
    )
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    user_id: String,
}

/// 「ユーザ ID」 → 「実行」: a user ID of plausible form is counted and queued; the answer
/// is the same redirect whether or not it names anyone.
#[handler]
pub async fn request_password_reset(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    Form(form): Form<PasswordForm>,
) -> poem::Result<Response> {
    let user_id = form.user_id.trim().to_ascii_lowercase();
    let length = user_id.chars().count();
    let problem = if user_id.is_empty() {
        Some("user_id_required")
    } else if length > MAX_USER_ID || user_id.chars().any(char::is_control) {
        Some("user_id_invalid")
    } else {
        None
    };
    if let Some(problem) = problem {
        let mut ctx = tera::Context::new();
        ctx.insert("user_id_error", problem);
        if form.user_id.chars().count() <= MAX_USER_ID
            && !form.user_id.chars().any(char::is_control)
        {
            ctx.insert("user_id", &form.user_id);
        }
        return Ok(page(&state, &tenant.0, &meta, "forgot_password.html", ctx));
    }
    let job = Job::SendResetLink {
        tenant: Arc::clone(&tenant.0),
        user_id,
        from: meta.requester(),
    };
    recovery::submit(&state, job).await.map_err(internal)?;
    Ok(Redirect::see_other("/forgot-password/sent").into_response())
}

#[handler]
pub async fn password_sent(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
) -> Response {
    let mut ctx = tera::Context::new();
    ctx.insert("sent", &true);
    ctx.insert(
        "lifetime_minutes",
        &tenant.0.settings.links.reset_lifetime_minutes,
    );
    page(&state, &tenant.0, &meta, "forgot_password.html", ctx)
}

#[derive(Deserialize)]
pub struct ResetQuery {
    #[serde(default)]
    token: String,
}

/// The page of a link that does not work (any more): start again from 「パスワードを忘れた
/// 方はこちら」.
fn link_invalid(state: &AppState, tenant: &Tenant, meta: &RequestMeta) -> Response {
    let mut ctx = tera::Context::new();
    ctx.insert(
        "lifetime_minutes",
        &tenant.settings.links.reset_lifetime_minutes,
    );
    render(
        state,
        tenant,
        meta,
        "password_reset_invalid.html",
        ctx,
        StatusCode::BAD_REQUEST,
    )
}

/// 「パスワードをリセット」 in the mail. A live link of this tenant opens a reset flow (in a
/// cookie; the token leaves the address bar); the token itself is spent with the new
/// password, so a mail scanner that opens the link first takes nothing away.
#[handler]
pub async fn open_reset_link(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    query: Query<ResetQuery>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let token = query.token.as_str();
    let plausible = session::is_token_shaped(token);
    if !plausible {
        meta.audit(
            &state.store,
            tenant,
            None,
            "password_reset_link_refused",
            "malformed",
        )
        .await;
        return Ok(link_invalid(&state, tenant, &meta));
    }
    let token_hash = session::token_hash(token);
    let live = state
        .store
        .live_token(&tenant.id, &token_hash, RESET_PURPOSE)
        .await
        .map_err(internal)?;
    let member = match live {
        Some(t) => state
            .store
            .member(&tenant.id, &t.member_id)
            .await
            .map_err(internal)?,
        None => None,
    };
    let Some(member) =
        member.filter(|m| m.state == MemberState::Active && !m.is_locked(now_unix()))
    else {
        meta.audit(
            &state.store,
            tenant,
            None,
            "password_reset_link_refused",
            "not live",
        )
        .await;
        return Ok(link_invalid(&state, tenant, &meta));
    };
    meta.audit(
        &state.store,
        tenant,
        Some(&member.id),
        "password_reset_link_opened",
        "",
    )
    .await;
    start_flow(
        &state,
        tenant,
        jar,
        StartFlow {
            owner: Owner::member(&member.id),
            purpose: Purpose::Reset,
            return_to: "/",
            lifetime_secs: RESET_FLOW_SECS,
            factor_verified: false,
            reset_token_hash: Some(&token_hash),
            password_outdated: false,
        },
    )
    .await
}

/// ⑩ パスワード更新: 「パスワード」, 「パスワード確認用」, 「実行」.
#[handler]
pub async fn new_password_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let _flow = flow_at!(&state, tenant, jar, Action::ResetPassword);
    let mut ctx = tera::Context::new();
    ctx.insert("password_policy", &tenant.settings.password);
    Ok(page(&state, tenant, &meta, "password_reset.html", ctx))
}

#[handler]
pub async fn set_new_password(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    Form(form): Form<NewPasswordForm>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let flow = flow_at!(&state, tenant, jar, Action::ResetPassword);
    let errors = new_password_errors(
        &state,
        tenant,
        &flow.who,
        &form.password,
        &form.password_confirm,
    )
    .await?;
    if !errors.is_empty() {
        let mut ctx = tera::Context::new();
        ctx.insert("password_policy", &tenant.settings.password);
        ctx.insert("password_errors", &errors);
        return Ok(page(&state, tenant, &meta, "password_reset.html", ctx));
    }
    let Some(token_hash) = flow.flow.reset_token_hash.as_deref() else {
        return Ok(flow.next());
    };
    let hash = state
        .hasher
        .hash(&form.password)
        .await
        .map_err(hash_error)?;
    let replaced = flow.replaces_factors(tenant);
    let done = recovery::finish_reset(
        &state,
        tenant,
        &flow.who,
        token_hash,
        &flow.token_hash,
        &hash,
        replaced,
    )
    .await
    .map_err(internal)?;
    if !done {
        // A newer link was requested (or this one used elsewhere) meanwhile.
        state
            .store
            .delete_flow(&tenant.id, &flow.token_hash)
            .await
            .map_err(internal)?;
        session::remove_cookie(jar, session::FLOW_COOKIE, state.config.secure_cookies());
        meta.audit(
            &state.store,
            tenant,
            Some(&flow.who.id),
            "password_reset_link_refused",
            "spent",
        )
        .await;
        return Ok(link_invalid(&state, tenant, &meta));
    }
    let detail = if replaced { "factors replaced" } else { "" };
    meta.audit(
        &state.store,
        tenant,
        Some(&flow.who.id),
        "password_reset_finished",
        detail,
    )
    .await;
    Ok(flow.next())
}
