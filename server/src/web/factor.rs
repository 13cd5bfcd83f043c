//! The second-factor step shared by every kind: which page a member lands on, the links to
//! the other kinds they hold, and the notice mail when a factor is added or removed.

use std::sync::Arc;

use poem::web::cookie::CookieJar;
use poem::web::{Data, Redirect};
use poem::{get, handler, post, IntoResponse, Response, Route};
use serde::Serialize;

use super::signin::{flow_at, Action, Flow, Side, Subject};
use super::{AppState, CurrentTenant, RequestMeta};
use crate::mail::EmailAddress;
use crate::tenant::{MfaMethod, Tenant};

/// The second-factor pages of the sign-in machine for accounts of kind `S`, at the same
/// paths on either side (the console's routes are nested under `/admin`): one code for
/// members and admins.
pub fn routes<S: Subject + 'static>(route: Route) -> Route {
    use super::{passkey, totp};
    route
        .at("/login/factor", get(factor_page::<S>::default()))
        .at(
            "/login/otp",
            get(totp::otp_page::<S>::default()).post(totp::verify_otp::<S>::default()),
        )
        .at(
            "/login/totp",
            get(totp::setup_page::<S>::default()).post(totp::setup::<S>::default()),
        )
        .at("/login/totp/qr.png", get(totp::setup_qr::<S>::default()))
        .at("/login/passkey", get(passkey::login_page::<S>::default()))
        .at(
            "/login/passkey/options",
            post(passkey::login_options::<S>::default()),
        )
        .at(
            "/login/passkey/finish",
            post(passkey::login_finish::<S>::default()),
        )
        .at(
            "/login/passkey/setup",
            get(passkey::setup_page::<S>::default()),
        )
        .at(
            "/login/passkey/setup/options",
            post(passkey::setup_options::<S>::default()),
        )
        .at(
            "/login/passkey/setup/finish",
            post(passkey::setup_finish::<S>::default()),
        )
        .at(
            "/login/passkey/name",
            get(passkey::name_page::<S>::default()).post(passkey::save_name::<S>::default()),
        )
}

/// The page of one kind of second factor in a sign-in flow.
pub fn path(method: MfaMethod) -> &'static str {
    match method {
        MfaMethod::Passkey => "/login/passkey",
        MfaMethod::Totp => "/login/otp",
        MfaMethod::EmailOtp => "/login/email-otp",
    }
}

/// The locale key naming a kind of factor (`factors.<kind>`).
pub fn label_key(method: MfaMethod) -> &'static str {
    method.as_str()
}

#[derive(Serialize)]
struct Other {
    path: String,
    kind: &'static str,
}

/// The context of a factor page: the other kinds the member may switch to.
pub fn context<S: Subject>(flow: &Flow<S>, current: MfaMethod) -> tera::Context {
    let others: Vec<Other> = flow
        .factors
        .methods()
        .into_iter()
        .filter(|m| *m != current)
        .map(|m| Other {
            path: flow.path(path(m)),
            kind: label_key(m),
        })
        .collect();
    let mut ctx = flow.context();
    ctx.insert("other_factors", &others);
    ctx
}

/// Sends the member to their preferred factor: the kind chosen at first login if they hold
/// it, else the first they hold.
pub fn choose<S: Subject>(flow: &Flow<S>) -> Response {
    let held = flow.factors.methods();
    let preferred = held
        .iter()
        .copied()
        .find(|m| flow.who.preferred_method() == Some(m.as_str()))
        .or_else(|| held.first().copied());
    match preferred {
        Some(method) => Redirect::see_other(flow.path(path(method))).into_response(),
        None => flow.next(),
    }
}

/// The second-factor step of any kind of account: on to its preferred kind.
#[handler]
pub async fn factor_page<S: Subject>(
    _side: Side<S>,
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    jar: &CookieJar,
) -> poem::Result<Response> {
    let state: &AppState = state.0;
    let tenant: &Tenant = &tenant.0;
    let flow = flow_at!(<S> state, tenant, jar, Action::SecondFactor);
    Ok(choose(&flow))
}

/// Longest name a member may give a device (「デバイス名」, a passkey's name).
const NAME_MAX: usize = 30;

/// What is wrong with a device name the member typed (already trimmed): `required` or
/// `invalid` (too long, control characters); the page prefixes its own message key.
pub fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("required")
    } else if name.chars().count() > NAME_MAX || name.chars().any(char::is_control) {
        Some("invalid")
    } else {
        None
    }
}

/// A factor was registered in this flow: it proves the flow's second factor, is audited
/// (`<method>_registered`) and the member gets a notice mail. Goes on with the flow.
pub async fn registered<S: Subject>(
    state: &AppState,
    tenant: &Tenant,
    meta: &RequestMeta,
    flow: &Flow<S>,
    method: MfaMethod,
    name: &str,
) -> poem::Result<Response> {
    flow.factor_proven(state, tenant, method, true).await?;
    let event = format!("{}_registered", method.as_str());
    meta.audit_by(&state.store, tenant, flow.who.owner(), &event, name)
        .await;
    notify(state, tenant, meta, &flow.who, method, name, true).await;
    Ok(flow.next())
}

/// Tells the member by mail that a factor was added or removed, so an unexpected change
/// does not go unnoticed. A failure is logged; the change itself stands.
pub async fn notify<S: Subject>(
    state: &AppState,
    tenant: &Tenant,
    meta: &RequestMeta,
    who: &S,
    method: MfaMethod,
    name: &str,
    added: bool,
) {
    let (address, greeting) = who.notice_to();
    let Ok(to) = EmailAddress::parse(address) else {
        return;
    };
    let themes = match state.themes.get(&tenant.slug) {
        Ok(theme) => theme,
        Err(error) => {
            tracing::error!(%error, "theme for a notice mail");
            return;
        }
    };
    let mut ctx = tera::Context::new();
    ctx.insert("name", greeting);
    let kind_key = format!("factors.{}", label_key(method));
    ctx.insert("kind", themes.text(&kind_key));
    ctx.insert("device", name);
    ctx.insert("added", &added);
    ctx.insert("at", &super::pages::date_time(crate::store::now_unix()));
    let result = state
        .mailer
        .send(&state.store, tenant, &to, "factor_changed", ctx)
        .await;
    match result {
        Ok(_) => {
            let event = if added {
                "factor_added_notice_sent"
            } else {
                "factor_removed_notice_sent"
            };
            meta.audit_by(&state.store, tenant, who.owner(), event, name)
                .await;
        }
        Err(error) => tracing::error!(%error, "queueing a factor notice mail failed"),
    }
}
