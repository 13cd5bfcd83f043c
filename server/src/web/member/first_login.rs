//! The first-login steps after the password, in the order of the manuals: 「生年月日」,
//! 利用規約 「同意する」, user ID and method, new password, e-mail address. Each handler
//! serves exactly one [`Action`] of the flow (see [`super::signin`]).

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Redirect};
use poem::{handler, IntoResponse, Response};
use serde::Deserialize;

use crate::mail::EmailAddress;
use crate::member::policy::{check_password, forbidden_user_id_characters, PasswordRule, UserId};
use crate::store::{Member, StoreError};
use crate::tenant::{FirstLoginStep, MfaMethod, Tenant};
use crate::web::pages::render;
use crate::web::signin::{flow_at, lockout_failure, step, Action};
use crate::web::{hash_error, internal};
use crate::web::{AppState, CurrentTenant, RequestMeta};

// --- birth date --------------------------------------------------------------------------

#[handler]
pub async fn birth_date_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    if let Err(redirect) =
        step::<crate::store::Member>(&state, &tenant.0, jar, &[Action::VerifyBirthDate]).await?
    {
        return Ok(redirect);
    }
    Ok(render(
        &state,
        &tenant.0,
        &meta,
        "login_birth_date.html",
        tera::Context::new(),
        StatusCode::OK,
    ))
}

#[derive(Deserialize)]
pub struct BirthDateForm {
    #[serde(default)]
    birth_date: String,
}

#[handler]
pub async fn birth_date(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    Form(form): Form<BirthDateForm>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let flow = flow_at!(&state, tenant, jar, Action::VerifyBirthDate);
    let given = form.birth_date.trim();
    let valid_date = given.len() == 10 && is_date(given);
    if valid_date
        && crate::crypto::constant_time_eq(given.as_bytes(), flow.who.birth_date.as_bytes())
    {
        state
            .store
            .member_birth_date_verified(&tenant.id, &flow.who.id)
            .await
            .map_err(internal)?;
        meta.audit(
            &state.store,
            tenant,
            Some(&flow.who.id),
            "birth_date_verified",
            "",
        )
        .await;
        return Ok(Redirect::see_other("/login/next").into_response());
    }
    let mut ctx = tera::Context::new();
    if valid_date {
        lockout_failure(
            &state,
            tenant,
            &meta,
            &flow.who,
            "login_failed",
            "wrong birth date",
        )
        .await?;
        ctx.insert("error", "birth_date_wrong");
    } else {
        ctx.insert("error", "birth_date_format");
    }
    // A lock ends the flow: the next page load sends the member back to the login page.
    Ok(render(
        &state,
        tenant,
        &meta,
        "login_birth_date.html",
        ctx,
        StatusCode::OK,
    ))
}

fn is_date(s: &str) -> bool {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &format).is_ok()
}

// --- terms -------------------------------------------------------------------------------

#[handler]
pub async fn terms_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    if let Err(redirect) =
        step::<crate::store::Member>(&state, &tenant.0, jar, &[Action::AcceptTerms]).await?
    {
        return Ok(redirect);
    }
    let mut ctx = tera::Context::new();
    let terms = &tenant.0.terms;
    if let Some(current) = terms.versions.iter().find(|v| v.version == terms.current) {
        ctx.insert("terms", current);
        // Dates read alike on every member page: 2026/11/01.
        ctx.insert("published_on", &current.published_at.replace('-', "/"));
    }
    Ok(render(
        &state,
        &tenant.0,
        &meta,
        "login_terms.html",
        ctx,
        StatusCode::OK,
    ))
}

#[derive(Deserialize)]
pub struct TermsForm {
    #[serde(default)]
    version: String,
}

#[handler]
pub async fn accept_terms(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    Form(form): Form<TermsForm>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let flow = flow_at!(&state, tenant, jar, Action::AcceptTerms);
    // The version shown is the version accepted; if it changed meanwhile, show the new one.
    if form.version != tenant.terms.current {
        return Ok(Redirect::see_other(Action::AcceptTerms.path()).into_response());
    }
    state
        .store
        .accept_terms(&tenant.id, &flow.who.id, &tenant.terms.current, &meta.ip)
        .await
        .map_err(internal)?;
    meta.audit(
        &state.store,
        tenant,
        Some(&flow.who.id),
        "terms_accepted",
        &tenant.terms.current,
    )
    .await;
    Ok(Redirect::see_other("/login/next").into_response())
}

// --- user ID and second factor -------------------------------------------------------------

fn user_id_context(tenant: &Tenant) -> tera::Context {
    let mut ctx = method_context(tenant);
    ctx.insert(
        "with_method",
        &tenant.settings.first_login.method_with_user_id(),
    );
    ctx.insert(
        "forbidden",
        &forbidden_user_id_characters(&tenant.settings.user_id),
    );
    ctx.insert("policy", &tenant.settings.user_id);
    ctx
}

/// The methods a member may choose, for the method fieldset.
fn method_context(tenant: &Tenant) -> tera::Context {
    let mut ctx = tera::Context::new();
    let methods: Vec<&str> = tenant
        .settings
        .mfa
        .methods
        .iter()
        .map(|m| m.as_str())
        .collect();
    ctx.insert("methods", &methods);
    ctx.insert("mfa_required", &tenant.settings.mfa.required);
    ctx
}

/// The method the form names, if the tenant allows it; `Err` if the choice is missing
/// where one is required (checked here, not only by what the page offers).
fn chosen_method(tenant: &Tenant, given: &str) -> Result<Option<MfaMethod>, &'static str> {
    let method = tenant
        .settings
        .mfa
        .methods
        .iter()
        .copied()
        .find(|m| m.as_str() == given);
    match method {
        None if tenant.settings.mfa.required || !given.is_empty() => Err("method_required"),
        m => Ok(m),
    }
}

#[handler]
pub async fn user_id_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    if let Err(redirect) =
        step::<crate::store::Member>(&state, &tenant.0, jar, &[Action::ChooseUserId]).await?
    {
        return Ok(redirect);
    }
    Ok(render(
        &state,
        &tenant.0,
        &meta,
        "login_user_id.html",
        user_id_context(&tenant.0),
        StatusCode::OK,
    ))
}

#[derive(Deserialize)]
pub struct UserIdForm {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    method: String,
}

#[handler]
pub async fn choose_user_id(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    Form(form): Form<UserIdForm>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let flow = flow_at!(&state, tenant, jar, Action::ChooseUserId);
    let mut ctx = user_id_context(tenant);
    ctx.insert("user_id", &form.user_id);
    ctx.insert("method", &form.method);

    // The method is asked here only where the guide has it on this screen (⑦).
    let (method, method_error) = if tenant.settings.first_login.method_with_user_id() {
        match chosen_method(tenant, &form.method) {
            Ok(m) => (m, None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    let user_id = UserId::parse(&tenant.settings.user_id, &form.user_id);
    let theme = state.themes.get(&tenant.slug).map_err(internal)?;
    let user_id_errors: Vec<String> = match &user_id {
        Ok(_) => Vec::new(),
        Err(rules) => rules.iter().map(|r| theme.worded(&r.message())).collect(),
    };
    if method_error.is_some() || !user_id_errors.is_empty() {
        ctx.insert("user_id_errors", &user_id_errors);
        ctx.insert("method_error", &method_error);
        return Ok(render(
            &state,
            tenant,
            &meta,
            "login_user_id.html",
            ctx,
            StatusCode::OK,
        ));
    }
    let user_id = user_id.expect("checked above");
    match state
        .store
        .choose_user_id(
            &tenant.id,
            &flow.who.id,
            user_id.as_str(),
            // On this screen the method is answered, with 「設定しない」 as "none".
            tenant
                .settings
                .first_login
                .method_with_user_id()
                .then(|| method.map_or("none", MfaMethod::as_str)),
        )
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            ctx.insert(
                "user_id_errors",
                &[state
                    .themes
                    .get(&tenant.slug)
                    .map_err(internal)?
                    .text("login.user_id_taken")],
            );
            return Ok(render(
                &state,
                tenant,
                &meta,
                "login_user_id.html",
                ctx,
                StatusCode::OK,
            ));
        }
        Err(e) => return Err(internal(e)),
    }
    let detail = format!("{} -> {}", flow.who.user_id, user_id);
    meta.audit(
        &state.store,
        tenant,
        Some(&flow.who.id),
        "user_id_changed",
        &detail,
    )
    .await;
    Ok(Redirect::see_other("/login/next").into_response())
}

// --- method on its own screen ----------------------------------------------------------------

#[handler]
pub async fn method_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    if let Err(redirect) =
        step::<crate::store::Member>(&state, &tenant.0, jar, &[Action::ChooseMethod]).await?
    {
        return Ok(redirect);
    }
    Ok(render(
        &state,
        &tenant.0,
        &meta,
        "login_method.html",
        method_context(&tenant.0),
        StatusCode::OK,
    ))
}

#[derive(Deserialize)]
pub struct MethodForm {
    #[serde(default)]
    method: String,
}

#[handler]
pub async fn choose_method(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    Form(form): Form<MethodForm>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let flow = flow_at!(&state, tenant, jar, Action::ChooseMethod);
    let method = match chosen_method(tenant, &form.method) {
        Ok(method) => method,
        Err(error) => {
            let mut ctx = method_context(tenant);
            ctx.insert("method", &form.method);
            ctx.insert("method_error", error);
            return Ok(render(
                &state,
                tenant,
                &meta,
                "login_method.html",
                ctx,
                StatusCode::OK,
            ));
        }
    };
    let chosen = method.map_or("none", MfaMethod::as_str);
    state
        .store
        .choose_method(&tenant.id, &flow.who.id, chosen)
        .await
        .map_err(internal)?;
    meta.audit(
        &state.store,
        tenant,
        Some(&flow.who.id),
        "method_chosen",
        chosen,
    )
    .await;
    Ok(Redirect::see_other("/login/next").into_response())
}

// --- new password --------------------------------------------------------------------------

#[handler]
pub async fn password_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    let flow = match step::<crate::store::Member>(&state, &tenant.0, jar, &[Action::UpdatePassword])
        .await?
    {
        Ok(flow) => flow,
        Err(redirect) => return Ok(redirect),
    };
    let mut ctx = tera::Context::new();
    ctx.insert("password_policy", &tenant.0.settings.password);
    ctx.insert("outdated", &flow.flow.password_outdated);
    Ok(render(
        &state,
        &tenant.0,
        &meta,
        "login_password.html",
        ctx,
        StatusCode::OK,
    ))
}

#[derive(Deserialize)]
pub struct NewPasswordForm {
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub password_confirm: String,
}

/// Checks a new password against the policy, its confirmation and the current one.
/// Returns the Japanese messages of every broken rule.
pub async fn new_password_errors(
    state: &AppState,
    tenant: &Tenant,
    member: &Member,
    password: &str,
    confirm: &str,
) -> poem::Result<Vec<String>> {
    let policy = &tenant.settings.password;
    let theme = state.themes.get(&tenant.slug).map_err(internal)?;
    let mut errors: Vec<String> = match check_password(policy, password, Some(&member.user_id)) {
        Ok(()) => Vec::new(),
        Err(rules) => rules.iter().map(|r| theme.worded(&r.message())).collect(),
    };
    if password != confirm {
        errors.push(theme.text("password.mismatch").to_owned());
    }
    if errors.is_empty() && policy.differ_from_current {
        let same = state
            .hasher
            .verify(password, Some(&member.password_hash))
            .await
            .map_err(hash_error)?;
        if same.ok {
            errors.push(PasswordRule::SameAsCurrent.message());
        }
    }
    Ok(errors)
}

#[handler]
pub async fn update_password(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    Form(form): Form<NewPasswordForm>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let flow = flow_at!(&state, tenant, jar, Action::UpdatePassword);
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
        ctx.insert("outdated", &flow.flow.password_outdated);
        return Ok(render(
            &state,
            tenant,
            &meta,
            "login_password.html",
            ctx,
            StatusCode::OK,
        ));
    }
    let hash = state
        .hasher
        .hash(&form.password)
        .await
        .map_err(hash_error)?;
    state
        .store
        .set_password_hash(&tenant.id, &flow.who.id, &hash, true)
        .await
        .map_err(internal)?;
    state
        .store
        .flow_password_updated(&tenant.id, &flow.token_hash)
        .await
        .map_err(internal)?;
    meta.audit(
        &state.store,
        tenant,
        Some(&flow.who.id),
        "password_changed",
        if flow.flow.password_outdated {
            "rules changed"
        } else {
            "first login"
        },
    )
    .await;
    Ok(Redirect::see_other("/login/next").into_response())
}

// --- e-mail --------------------------------------------------------------------------------

#[handler]
pub async fn email_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    let flow = flow_at!(&state, &tenant.0, jar, Action::ReviewEmail);
    let mut ctx = tera::Context::new();
    ctx.insert("email", &flow.who.email);
    Ok(render(
        &state,
        &tenant.0,
        &meta,
        "login_email.html",
        ctx,
        StatusCode::OK,
    ))
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    email: String,
}

#[handler]
pub async fn review_email(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    Form(form): Form<EmailForm>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let flow = flow_at!(&state, tenant, jar, Action::ReviewEmail);
    let email = match EmailAddress::parse(&form.email) {
        Ok(email) => email,
        Err(e) => {
            let mut ctx = tera::Context::new();
            ctx.insert("email", &form.email);
            ctx.insert(
                "email_error",
                e.text_key().rsplit('.').next().unwrap_or("invalid"),
            );
            return Ok(render(
                &state,
                tenant,
                &meta,
                "login_email.html",
                ctx,
                StatusCode::OK,
            ));
        }
    };
    state
        .store
        .set_email(&tenant.id, &flow.who.id, email.as_str())
        .await
        .map_err(internal)?;
    if email.as_str() != flow.who.email {
        meta.audit(
            &state.store,
            tenant,
            Some(&flow.who.id),
            "email_changed",
            "first login",
        )
        .await;
    }
    let needs_link = tenant.settings.first_login.has(FirstLoginStep::EmailLink)
        && !(flow.who.email_confirmed && email.as_str() == flow.who.email);
    if needs_link {
        // Whether or not the mail could be queued, the next page offers 「再送信」.
        if let Err(e) =
            super::email_confirm::send_confirmation(&state, tenant, &meta, &flow.who.id, &email)
                .await
        {
            tracing::warn!(error = %e, "queueing the confirmation mail failed");
        }
    }
    Ok(Redirect::see_other("/login/next").into_response())
}
