//! Pages of a signed-in member: the top page with the society's services, logout,
//! profile (user ID) and login methods (password, with step-up).

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Query, Redirect};
use poem::{handler, IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::first_login::{new_password_errors, NewPasswordForm};
use super::session::SignedIn;
use crate::auth::password::HashError;
use crate::auth::session::{self, SESSION_COOKIE};
use crate::member::policy::UserId;
use crate::store::{now_unix, Owner, StoreError};
use crate::tenant::{FactorSetup, MfaMethod, Tenant};
use crate::web::pages::{render, render_cached, render_static};
use crate::web::signin::{lockout_failure, member_view, start_flow, Factors, Purpose, StartFlow};
use crate::web::{hash_error, internal};
use crate::web::{AppState, CurrentTenant, RequestMeta};

pub(super) fn signed_in_context(signed_in: &SignedIn) -> tera::Context {
    let mut ctx = tera::Context::new();
    ctx.insert("member", &member_view(&signed_in.member));
    ctx
}

#[derive(Serialize)]
pub(crate) struct ServiceView<'a> {
    title: &'a str,
    url: &'a str,
    image_url: String,
}

/// The visible services of the member's top page, in the society's order.
pub(crate) fn service_views(tenant: &crate::tenant::Tenant) -> Vec<ServiceView<'_>> {
    tenant
        .services
        .iter()
        .filter(|s| s.visible)
        .map(|s| ServiceView {
            title: &s.title,
            url: &s.url,
            image_url: if s.image.starts_with("https://") {
                s.image.clone()
            } else {
                format!("/static/{}", s.image)
            },
        })
        .collect()
}

/// The public top page, or the member's top page with the society's services.
#[handler]
pub async fn top(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let Some(signed_in) = SignedIn::load(&state, &CurrentTenant(Arc::clone(tenant)), jar).await?
    else {
        return Ok(render_static(&state, tenant, &meta, "top.html"));
    };
    let mut ctx = signed_in_context(&signed_in);
    let services = service_views(tenant);
    ctx.insert("services", &services);
    let pending = setup_pending(&state, tenant, &signed_in).await?;
    ctx.insert("setup_pending", &pending.is_some());
    ctx.insert("setup_method", &pending.map_or("", MfaMethod::as_str));
    Ok(render_cached(&state, tenant, &meta, "member_top.html", ctx))
}

/// The method still to be set up after a first login that ends on the top page (both
/// guides: 「初回ログインが完了しました」, then log out and set it up at the next login).
async fn setup_pending(
    state: &AppState,
    tenant: &crate::tenant::Tenant,
    signed_in: &SignedIn,
) -> poem::Result<Option<MfaMethod>> {
    // Only a session begun without a factor can be one; the devices are read only then.
    if signed_in.session.auth_method != "password"
        || tenant.settings.first_login.factor_setup != FactorSetup::NextLogin
    {
        return Ok(None);
    }
    let Some(method) = crate::web::signin::method_to_set_up(&signed_in.member, tenant) else {
        return Ok(None);
    };
    let devices = state
        .store
        .devices(&tenant.id, &Owner::member(&signed_in.member.id))
        .await
        .map_err(internal)?;
    let factors = Factors::of(tenant, &signed_in.member, devices);
    Ok((factors.count() == 0).then_some(method))
}

#[handler]
pub async fn logout_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    signed_in: SignedIn,
) -> Response {
    render(
        &state,
        &tenant.0,
        &meta,
        "logout.html",
        signed_in_context(&signed_in),
        StatusCode::OK,
    )
}

#[handler]
pub async fn logout(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    signed_in: SignedIn,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    state
        .store
        .delete_session(&tenant.id, &signed_in.token_hash)
        .await
        .map_err(internal)?;
    session::remove_cookie(jar, SESSION_COOKIE, state.config.secure_cookies());
    meta.audit(
        &state.store,
        tenant,
        Some(&signed_in.member.id),
        "logout",
        "",
    )
    .await;
    Ok(Redirect::see_other("/").into_response())
}

// --- profile: user ID ----------------------------------------------------------------------

/// The profile page's context: the member, their address and a change waiting for its
/// confirmation link (manual §3-5).
async fn profile_context(
    state: &AppState,
    tenant: &Tenant,
    signed_in: &SignedIn,
) -> poem::Result<tera::Context> {
    let mut ctx = signed_in_context(signed_in);
    ctx.insert("user_id", &signed_in.member.user_id);
    ctx.insert("email", &signed_in.member.email);
    let pending = state
        .store
        .pending_token(
            &tenant.id,
            &signed_in.member.id,
            crate::member::email_change::PURPOSE,
        )
        .await
        .map_err(internal)?;
    if let Some(pending) = pending {
        ctx.insert("pending_email", &pending.payload);
        ctx.insert("pending_until", &date_time(pending.expires_at));
    }
    Ok(ctx)
}

#[derive(Deserialize)]
pub struct ProfileQuery {
    #[serde(default)]
    email: String,
}

#[handler]
pub async fn profile_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    signed_in: SignedIn,
    query: Query<ProfileQuery>,
) -> poem::Result<Response> {
    let mut ctx = profile_context(&state, &tenant.0, &signed_in).await?;
    if query.email == "sent" {
        ctx.insert("notice", "email_sent");
    }
    Ok(render(
        &state,
        &tenant.0,
        &meta,
        "profile.html",
        ctx,
        StatusCode::OK,
    ))
}

#[derive(Deserialize)]
pub struct UserIdForm {
    #[serde(default)]
    user_id: String,
}

#[handler]
pub async fn change_user_id(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    signed_in: SignedIn,
    Form(form): Form<UserIdForm>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let member = &signed_in.member;
    let mut ctx = profile_context(&state, tenant, &signed_in).await?;
    ctx.insert("user_id", &form.user_id);
    let user_id = match UserId::parse(&tenant.settings.user_id, &form.user_id) {
        Ok(user_id) => user_id,
        Err(rules) => {
            let theme = state.themes.get(&tenant.slug).map_err(internal)?;
            let errors: Vec<String> = rules.iter().map(|r| theme.worded(&r.message())).collect();
            ctx.insert("user_id_errors", &errors);
            return Ok(render(
                &state,
                tenant,
                &meta,
                "profile.html",
                ctx,
                StatusCode::OK,
            ));
        }
    };
    if user_id.as_str() != member.user_id {
        match state
            .store
            .choose_user_id(&tenant.id, &member.id, user_id.as_str(), None)
            .await
        {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                let text = state
                    .themes
                    .get(&tenant.slug)
                    .map_err(internal)?
                    .text("login.user_id_taken")
                    .to_owned();
                ctx.insert("user_id_errors", &[text]);
                return Ok(render(
                    &state,
                    tenant,
                    &meta,
                    "profile.html",
                    ctx,
                    StatusCode::OK,
                ));
            }
            Err(e) => return Err(internal(e)),
        }
        let detail = format!("{} -> {}", member.user_id, user_id);
        meta.audit(
            &state.store,
            tenant,
            Some(&member.id),
            "user_id_changed",
            &detail,
        )
        .await;
    }
    ctx.insert("user_id", user_id.as_str());
    ctx.insert("notice", "user_id_changed");
    Ok(render(
        &state,
        tenant,
        &meta,
        "profile.html",
        ctx,
        StatusCode::OK,
    ))
}

// --- login methods: password ---------------------------------------------------------------

pub use crate::web::pages::{date, date_time};

/// Whether the member proved who they are recently enough for a sensitive change.
pub(super) fn recent_enough(tenant: &Tenant, signed_in: &SignedIn) -> bool {
    let max_age = i64::from(tenant.settings.session.step_up_max_age_minutes) * 60;
    now_unix() - signed_in.session.authenticated_at <= max_age
}

pub(super) fn step_up(return_to: &str) -> Response {
    Redirect::see_other(format!("/reauth?return_to={return_to}")).into_response()
}

#[handler]
pub async fn password_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    signed_in: SignedIn,
) -> Response {
    if !recent_enough(&tenant.0, &signed_in) {
        return step_up("/login-methods/password");
    }
    let mut ctx = signed_in_context(&signed_in);
    ctx.insert("password_policy", &tenant.0.settings.password);
    render(
        &state,
        &tenant.0,
        &meta,
        "change_password.html",
        ctx,
        StatusCode::OK,
    )
}

#[handler]
pub async fn change_password(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    signed_in: SignedIn,
    Form(form): Form<NewPasswordForm>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    if !recent_enough(tenant, &signed_in) {
        return Ok(step_up("/login-methods/password"));
    }
    let member = &signed_in.member;
    let errors = new_password_errors(
        &state,
        tenant,
        member,
        &form.password,
        &form.password_confirm,
    )
    .await?;
    if !errors.is_empty() {
        let mut ctx = signed_in_context(&signed_in);
        ctx.insert("password_policy", &tenant.settings.password);
        ctx.insert("password_errors", &errors);
        return Ok(render(
            &state,
            tenant,
            &meta,
            "change_password.html",
            ctx,
            StatusCode::OK,
        ));
    }
    let hash = state
        .hasher
        .hash(&form.password)
        .await
        .map_err(hash_error)?;
    let store = &state.store;
    store
        .set_password_hash(&tenant.id, &member.id, &hash, false)
        .await
        .map_err(internal)?;
    meta.audit(store, tenant, Some(&member.id), "password_changed", "")
        .await;
    rotate_session(
        &state,
        tenant,
        jar,
        &signed_in,
        signed_in.session.authenticated_at,
        &signed_in.session.auth_method,
    )
    .await?;
    Ok(Redirect::see_other("/login-methods?updated=1").into_response())
}

/// A privilege change gets a new session token; the old one stops working at once.
async fn rotate_session(
    state: &AppState,
    tenant: &Tenant,
    jar: &CookieJar,
    signed_in: &SignedIn,
    authenticated_at: i64,
    auth_method: &str,
) -> poem::Result<()> {
    let store = &state.store;
    store
        .delete_session(&tenant.id, &signed_in.token_hash)
        .await
        .map_err(internal)?;
    let (token, token_hash) = session::new_token();
    // The same browser goes on: it keeps what the list of signed-in browsers shows.
    let client = crate::store::SessionClient {
        ip: &signed_in.session.ip,
        user_agent: &signed_in.session.user_agent,
    };
    store
        .create_session_at(
            &tenant.id,
            &crate::store::NewSession {
                token_hash: &token_hash,
                member_id: &signed_in.member.id,
                created_at: signed_in.session.created_at,
                authenticated_at,
                auth_method,
                client: &client,
            },
        )
        .await
        .map_err(internal)?;
    jar.add(session::cookie(
        SESSION_COOKIE,
        &token,
        state.config.secure_cookies(),
        None,
    ));
    Ok(())
}

// --- step-up -------------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct ReauthQuery {
    #[serde(default)]
    return_to: String,
}

/// Only paths of this site: never another host.
pub(super) fn safe_return(path: &str) -> &str {
    if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') {
        path
    } else {
        "/"
    }
}

#[handler]
pub async fn reauth_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    signed_in: SignedIn,
    query: Query<ReauthQuery>,
) -> Response {
    let mut ctx = signed_in_context(&signed_in);
    ctx.insert("return_to", safe_return(&query.return_to));
    render(&state, &tenant.0, &meta, "reauth.html", ctx, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct ReauthForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    return_to: String,
}

#[handler]
pub async fn reauth(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    signed_in: SignedIn,
    Form(form): Form<ReauthForm>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let member = &signed_in.member;
    let return_to = safe_return(&form.return_to).to_owned();
    // The same per-address throttle as the sign-in form: a stolen session cannot try
    // passwords here any faster than at 「ログイン」.
    let Some(attempt) = crate::throttle::MEMBER_LOGIN
        .attempt(&state.store, &meta.ip)
        .await
        .map_err(internal)?
    else {
        state.metrics.throttled.with_label_values(&["reauth"]).inc();
        let mut ctx = signed_in_context(&signed_in);
        ctx.insert("return_to", &return_to);
        ctx.insert("error", "throttled");
        return Ok(render(
            &state,
            tenant,
            &meta,
            "reauth.html",
            ctx,
            StatusCode::TOO_MANY_REQUESTS,
        ));
    };
    let too_long = form.password.chars().count() > tenant.settings.password.max_length as usize;
    let verification = if too_long || form.password.is_empty() {
        None
    } else {
        match state
            .hasher
            .verify(&form.password, Some(&member.password_hash))
            .await
        {
            Ok(v) => Some(v),
            Err(HashError::Busy) => {
                attempt.give_back(&state.store).await.map_err(internal)?;
                let mut ctx = signed_in_context(&signed_in);
                ctx.insert("return_to", &return_to);
                ctx.insert("error", "busy");
                return Ok(render(
                    &state,
                    tenant,
                    &meta,
                    "reauth.html",
                    ctx,
                    StatusCode::SERVICE_UNAVAILABLE,
                ));
            }
            Err(HashError::Internal(e)) => return Err(internal(e)),
        }
    };
    if !verification.is_some_and(|v| v.ok) {
        let locked =
            lockout_failure(&state, tenant, &meta, member, "step_up_failed", "step-up").await?;
        if locked {
            return Ok(Redirect::see_other("/").into_response());
        }
        let mut ctx = signed_in_context(&signed_in);
        ctx.insert("return_to", &return_to);
        ctx.insert("error", "invalid_credentials");
        return Ok(render(
            &state,
            tenant,
            &meta,
            "reauth.html",
            ctx,
            StatusCode::OK,
        ));
    }
    attempt.give_back(&state.store).await.map_err(internal)?;
    // The password is proven. A member with a second factor proves it too, unless this
    // session was opened with a passkey (which already verified the member). Failed
    // sign-ins are cleared only when the whole step-up succeeds: here for a password-only
    // step-up, at the end of the step-up flow otherwise (its wrong codes count toward the
    // same lockout as at sign-in).
    let devices = state
        .store
        .devices(&tenant.id, &crate::store::Owner::member(&member.id))
        .await
        .map_err(internal)?;
    let factors = Factors::of(tenant, member, devices);
    if factors.count() > 0 && signed_in.session.auth_method != "passkey" {
        meta.audit(
            &state.store,
            tenant,
            Some(&member.id),
            "step_up_password_ok",
            "",
        )
        .await;
        return start_flow(
            &state,
            tenant,
            jar,
            StartFlow {
                owner: crate::store::Owner::member(&member.id),
                purpose: Purpose::StepUp,
                return_to: &return_to,
                lifetime_secs: 10 * 60,
                factor_verified: false,
                reset_token_hash: None,
                password_outdated: false,
            },
        )
        .await;
    }
    state
        .store
        .record_login_success(&tenant.id, &crate::store::Owner::member(&member.id))
        .await
        .map_err(internal)?;
    meta.audit(
        &state.store,
        tenant,
        Some(&member.id),
        "step_up_succeeded",
        "password",
    )
    .await;
    rotate_session(
        &state,
        tenant,
        jar,
        &signed_in,
        now_unix(),
        &signed_in.session.auth_method,
    )
    .await?;
    Ok(Redirect::see_other(return_to).into_response())
}
