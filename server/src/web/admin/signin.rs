//! Admins sign in through the same machine as members (`web::signin`): e-mail address and
//! password open a flow; the steps owed are computed from the admin (a second factor is
//! mandatory: an authenticator app or a passkey, the kind chosen on the invitation, is
//! registered at the first sign-in and asked for at every later one); the factor pages are
//! the members' own handlers (`web::factor::routes`), rendered with the console's
//! templates. The invitation link sets the first password and opens such a flow.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Query, Redirect};
use poem::{handler, IntoResponse, Response};
use serde::Deserialize;

use super::console::render;
use super::ConsoleAdmin;
use crate::admin::accounts::{self, admin_method, ADMIN_METHODS};
use crate::admin::ServiceError;
use crate::auth::password::HashError;
use crate::auth::session::{self, admin_cookie, ADMIN_FLOW_COOKIE, ADMIN_SESSION_COOKIE};
use crate::store::{now_unix, Admin, AdminState, LoginFlow, Owner, StoreResult};
use crate::tenant::{MfaMethod, Tenant};
use crate::web::signin::flow_at;
use crate::web::signin::{
    lockout_failure, start_flow, Action, Audience, Factors, Purpose, StartFlow, Subject,
};
use crate::web::{internal, AppState, CurrentTenant, RequestMeta};

/// How long a console sign-in may take from password to the last step.
const FLOW_SECS: i64 = 15 * 60;
const MAX_EMAIL_INPUT: usize = 254;

impl Subject for Admin {
    const AUDIENCE: Audience = Audience::Admin;

    async fn load(
        state: &AppState,
        tenant: &Tenant,
        flow: &LoginFlow,
    ) -> StoreResult<Option<Self>> {
        match &flow.admin_id {
            Some(id) => state.store.admin(&tenant.id, id).await,
            None => Ok(None),
        }
    }

    fn owner(&self) -> Owner<'_> {
        Owner::admin(&self.id)
    }

    fn account_label(&self) -> &str {
        &self.email
    }

    fn display_name(&self) -> &str {
        &self.email
    }

    fn notice_to(&self) -> (&str, &str) {
        (&self.email, &self.email)
    }

    /// The kind chosen when the invitation was accepted; an authenticator app otherwise.
    fn preferred_method(&self) -> Option<&str> {
        Some(self.mfa_method.as_deref().unwrap_or("totp"))
    }

    /// An invited admin goes on only in the sign-in their invitation link opened (the
    /// password form refuses anyone not active), and only once the link set a password.
    fn unusable(&self, now: i64) -> bool {
        self.is_locked(now)
            || match self.state {
                AdminState::Active => false,
                AdminState::Invited => self.password_hash.is_empty(),
                AdminState::Disabled => true,
            }
    }

    /// Admins may hold passkeys and authenticator apps, whatever members may use.
    fn methods(_tenant: &Tenant) -> Vec<MfaMethod> {
        ADMIN_METHODS.to_vec()
    }

    fn email_factor(&self) -> bool {
        false
    }

    /// A second factor is mandatory for admins, whatever the tenant asks of members.
    fn owed(&self, _tenant: &Tenant, flow: &LoginFlow, factors: &Factors) -> Vec<Action> {
        if factors.count() == 0 {
            vec![Action::setup(admin_method(self.mfa_method.as_deref()))]
        } else if !flow.factor_verified {
            vec![Action::SecondFactor]
        } else {
            Vec::new()
        }
    }
}

fn secure(state: &AppState) -> bool {
    state.config.secure_cookies()
}

#[derive(Deserialize)]
pub struct LoginQuery {
    expired: Option<String>,
    locked: Option<String>,
    logged_out: Option<String>,
}

#[handler]
pub async fn login_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    Query(query): Query<LoginQuery>,
) -> Response {
    let mut ctx = tera::Context::new();
    if query.expired.is_some() {
        ctx.insert("notice", "expired");
    }
    if query.logged_out.is_some() {
        ctx.insert("notice", "logged_out");
    }
    if query.locked.is_some() {
        ctx.insert("error", "locked");
    }
    render(
        &state,
        &tenant.0,
        &meta,
        None,
        "login.html",
        ctx,
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

#[handler]
pub async fn login(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    Form(form): Form<LoginForm>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let store = &state.store;
    let page = |error: &str, status| {
        let mut ctx = tera::Context::new();
        ctx.insert("error", error);
        ctx.insert("email", &form.email);
        render(&state, tenant, &meta, None, "login.html", ctx, status)
    };
    let Some(attempt) = crate::throttle::ADMIN_LOGIN
        .attempt(store, &meta.ip)
        .await
        .map_err(internal)?
    else {
        state
            .metrics
            .throttled
            .with_label_values(&["admin_login"])
            .inc();
        return Ok(page("throttled", StatusCode::TOO_MANY_REQUESTS));
    };
    let email = form.email.trim().to_lowercase();
    let plausible = !email.is_empty()
        && email.chars().count() <= MAX_EMAIL_INPUT
        && !email.chars().any(char::is_control)
        && !form.password.is_empty()
        && form.password.chars().count() <= 256
        && !form.password.chars().any(char::is_control);
    let admin = if plausible {
        store
            .admin_by_email(&tenant.id, &email)
            .await
            .map_err(internal)?
    } else {
        None
    };
    let usable = admin
        .as_ref()
        .filter(|a| a.state == AdminState::Active && !a.password_hash.is_empty());
    // Unknown, invited, disabled or locked: the same hash work runs.
    let verification = match state
        .hasher
        .verify(&form.password, usable.map(|a| a.password_hash.as_str()))
        .await
    {
        Ok(v) => v,
        Err(HashError::Busy) => {
            attempt.give_back(store).await.map_err(internal)?;
            return Ok(page("busy", StatusCode::SERVICE_UNAVAILABLE));
        }
        Err(HashError::Internal(e)) => return Err(internal(e)),
    };
    let Some(admin) = usable else {
        meta.audit(store, tenant, None, "admin_login_failed", "unknown address")
            .await;
        return Ok(page("invalid_credentials", StatusCode::OK));
    };
    if admin.is_locked(now_unix()) {
        if verification.ok {
            meta.audit_by(
                store,
                tenant,
                admin.owner(),
                "admin_login_refused_locked",
                "",
            )
            .await;
            return Ok(page("locked", StatusCode::FORBIDDEN));
        }
        meta.audit_by(store, tenant, admin.owner(), "admin_login_failed", "locked")
            .await;
        return Ok(page("invalid_credentials", StatusCode::OK));
    }
    if !verification.ok {
        lockout_failure(
            &state,
            tenant,
            &meta,
            admin,
            "admin_login_failed",
            "wrong password",
        )
        .await?;
        return Ok(page("invalid_credentials", StatusCode::OK));
    }
    attempt.give_back(store).await.map_err(internal)?;
    meta.audit_by(store, tenant, admin.owner(), "admin_login_password_ok", "")
        .await;
    start_flow(
        &state,
        tenant,
        jar,
        StartFlow {
            owner: admin.owner(),
            purpose: Purpose::Login,
            return_to: "/admin/",
            lifetime_secs: FLOW_SECS,
            factor_verified: false,
            reset_token_hash: None,
            password_outdated: false,
        },
    )
    .await
}

/// Sends the admin to the step owed now, or opens the console session.
#[handler]
pub async fn next(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let flow = match crate::web::signin::step::<Admin>(&state, tenant, jar, &[]).await? {
        Ok(flow) => flow,
        Err(redirect) => {
            // `step` with no acceptable action redirects to the owed one, or here when
            // nothing is owed; only the latter finishes the sign-in.
            if !redirect_is_next(&redirect) {
                return Ok(redirect);
            }
            return finish(&state, tenant, &meta, jar).await;
        }
    };
    Ok(flow.next())
}

fn redirect_is_next(response: &Response) -> bool {
    response
        .headers()
        .get(poem::http::header::LOCATION)
        .is_some_and(|l| l == "/admin/login/next")
}

async fn finish(
    state: &AppState,
    tenant: &Tenant,
    meta: &RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    let Some(flow_hash) = session::cookie_token_hash(jar, ADMIN_FLOW_COOKIE) else {
        return Ok(Redirect::see_other("/admin/login?expired=1").into_response());
    };
    let store = &state.store;
    let Some(flow) = store.flow(&tenant.id, &flow_hash).await.map_err(internal)? else {
        return Ok(Redirect::see_other("/admin/login?expired=1").into_response());
    };
    let Some(admin_id) = flow.admin_id.clone() else {
        return Ok(Redirect::see_other("/admin/login?expired=1").into_response());
    };
    let Some(admin) = store.admin(&tenant.id, &admin_id).await.map_err(internal)? else {
        return Ok(Redirect::see_other("/admin/login?expired=1").into_response());
    };
    // An invited admin has just registered their factor in the sign-in their invitation
    // link opened: only now are they active.
    if admin.state == AdminState::Invited
        && !store
            .activate_admin(&tenant.id, &admin.id)
            .await
            .map_err(internal)?
    {
        return Ok(Redirect::see_other("/admin/login?expired=1").into_response());
    }
    store
        .delete_flow(&tenant.id, &flow_hash)
        .await
        .map_err(internal)?;
    store
        .record_login_success(&tenant.id, &admin.owner())
        .await
        .map_err(internal)?;
    if let Some(old) = session::cookie_token_hash(jar, ADMIN_SESSION_COOKIE) {
        store
            .delete_admin_session(&tenant.id, &old)
            .await
            .map_err(internal)?;
    }
    let (token, token_hash) = session::new_token();
    let method = flow.factor_method.as_deref().unwrap_or("password");
    store
        .create_admin_session(&tenant.id, &token_hash, &admin.id, method)
        .await
        .map_err(internal)?;
    meta.audit_by(
        store,
        tenant,
        admin.owner(),
        "admin_login_succeeded",
        method,
    )
    .await;
    jar.add(admin_cookie(ADMIN_FLOW_COOKIE, "", secure(state), Some(0)));
    jar.add(admin_cookie(
        ADMIN_SESSION_COOKIE,
        &token,
        secure(state),
        None,
    ));
    Ok(Redirect::see_other("/admin/").into_response())
}

#[derive(Deserialize)]
pub struct MethodForm {
    #[serde(default)]
    mfa_method: String,
}

/// While an admin holds no second factor yet, they may set up the other kind instead (a
/// computer without a passkey, a phone without an app): the choice is recorded and the
/// flow goes on to that kind's set-up.
#[handler]
pub async fn switch_method(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    Form(form): Form<MethodForm>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let flow = flow_at!(<Admin> &state, tenant, jar, Action::SetupTotp, Action::SetupPasskey);
    let method = admin_method(Some(form.mfa_method.as_str()));
    if flow.who.mfa_method.as_deref() != Some(method.as_str()) {
        state
            .store
            .set_admin_mfa_method(&tenant.id, &flow.who.id, method.as_str())
            .await
            .map_err(internal)?;
        meta.audit_by(
            &state.store,
            tenant,
            flow.who.owner(),
            "admin_factor_kind_chosen",
            method.as_str(),
        )
        .await;
    }
    Ok(flow.next())
}

// --- invitation ----------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct InviteQuery {
    #[serde(default)]
    token: String,
}

fn plausible_token(token: &str) -> bool {
    crate::auth::session::is_token_shaped(token)
}

async fn invited(state: &AppState, tenant: &Tenant, token: &str) -> poem::Result<Option<Admin>> {
    if !plausible_token(token) {
        return Ok(None);
    }
    state
        .store
        .invitation(&tenant.id, &session::token_hash(token))
        .await
        .map_err(internal)
}

fn invite_context(tenant: &Tenant, admin: &Admin, token: &str) -> tera::Context {
    let mut ctx = tera::Context::new();
    ctx.insert("email", &admin.email);
    ctx.insert("token", token);
    ctx.insert("min_length", &accounts::password_policy(tenant).min_length);
    ctx
}

fn invalid_invitation(state: &AppState, tenant: &Tenant, meta: &RequestMeta) -> Response {
    let mut ctx = tera::Context::new();
    ctx.insert("invalid", &true);
    render(
        state,
        tenant,
        meta,
        None,
        "invite.html",
        ctx,
        StatusCode::NOT_FOUND,
    )
    .with_header("Cache-Control", "no-store")
    .into_response()
}

#[handler]
pub async fn invite_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    Query(query): Query<InviteQuery>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let Some(admin) = invited(&state, tenant, &query.token).await? else {
        return Ok(invalid_invitation(&state, tenant, &meta));
    };
    let ctx = invite_context(tenant, &admin, &query.token);
    Ok(render(
        &state,
        tenant,
        &meta,
        None,
        "invite.html",
        ctx,
        StatusCode::OK,
    )
    .with_header("Cache-Control", "no-store")
    .into_response())
}

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
    /// The form's radio buttons start on the authenticator app.
    #[serde(default = "app")]
    mfa_method: String,
}

fn app() -> String {
    MfaMethod::Totp.as_str().to_owned()
}

#[handler]
pub async fn accept_invite(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    Form(form): Form<InviteForm>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let Some(admin) = invited(&state, tenant, &form.token).await? else {
        return Ok(invalid_invitation(&state, tenant, &meta));
    };
    match accounts::accept(
        &state,
        tenant,
        &form.token,
        &form.password,
        &form.password_confirm,
        &form.mfa_method,
    )
    .await
    {
        Ok(id) => {
            meta.audit_by(
                &state.store,
                tenant,
                Owner::admin(&id),
                "admin_invitation_accepted",
                "",
            )
            .await;
            // The password was just set: the flow goes on to the second factor.
            start_flow(
                &state,
                tenant,
                jar,
                StartFlow {
                    owner: Owner::admin(&id),
                    purpose: Purpose::Login,
                    return_to: "/admin/",
                    lifetime_secs: FLOW_SECS,
                    factor_verified: false,
                    reset_token_hash: None,
                    password_outdated: false,
                },
            )
            .await
        }
        Err(ServiceError::Invalid(problems)) => {
            let mut ctx = invite_context(tenant, &admin, &form.token);
            ctx.insert("mfa_method", &form.mfa_method);
            let errors: Vec<String> = problems.iter().filter_map(|p| p.message.clone()).collect();
            ctx.insert("password_errors", &errors);
            ctx.insert(
                "method_error",
                &problems.iter().any(|p| p.field == "mfa_method"),
            );
            ctx.insert(
                "confirm_error",
                &problems.iter().any(|p| p.field == "password_confirm"),
            );
            Ok(render(
                &state,
                tenant,
                &meta,
                None,
                "invite.html",
                ctx,
                StatusCode::OK,
            )
            .with_header("Cache-Control", "no-store")
            .into_response())
        }
        Err(ServiceError::NotFound) => Ok(invalid_invitation(&state, tenant, &meta)),
        Err(ServiceError::Busy) => Err(poem::Error::from_status(StatusCode::SERVICE_UNAVAILABLE)),
        Err(e) => Err(internal(e)),
    }
}

#[handler]
pub async fn logout(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    jar: &CookieJar,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    state
        .store
        .delete_admin_session(&tenant.id, &admin.token_hash)
        .await
        .map_err(internal)?;
    admin
        .meta
        .audit_by(
            &state.store,
            tenant,
            admin.admin.owner(),
            "admin_logout",
            "",
        )
        .await;
    jar.add(admin_cookie(
        ADMIN_SESSION_COOKIE,
        "",
        secure(&state),
        Some(0),
    ));
    Ok(Redirect::see_other("/admin/login?logged_out=1").into_response())
}
