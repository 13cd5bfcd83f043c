//! Passkeys in the sign-in flow. Registration: 「セキュリティキー登録」 → 「登録」 → the
//! browser's ceremony → a name (default 「パスキー」) → 「ＯＫ」. Login: 「次へ」 → ceremony.
//! The page's script fetches the options and posts the browser's answer as JSON; the
//! ceremony state lives in the flow, expires, and is taken once. (Bodies are capped by the
//! CSRF layer, which reads every POST before the handler.)
//!
//! The handlers are written once for any [`Subject`] and mounted for members and for the
//! console by `web::factor::routes`.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Json, Redirect};
use poem::{handler, Body, IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use webauthn_rs::prelude::Passkey;

use super::factor;
use super::signin::{flow_at, lockout_failure, step, Action, Flow, Side, Subject};
use super::{internal, AppState, CurrentTenant, RequestMeta};
use crate::mfa::passkey::{self, Ceremony, Refused, CEREMONY_SECS};
use crate::store::{now_unix, Device, NewDevice, StoreError};
use crate::tenant::{MfaMethod, Tenant};

fn json_error(status: StatusCode, key: &str) -> Response {
    Json(json!({ "error": key }))
        .with_status(status)
        .into_response()
}

fn stored_passkeys(devices: &[Device]) -> Vec<Passkey> {
    devices
        .iter()
        .filter_map(|d| serde_json::from_str(&d.secret).ok())
        .collect()
}

fn relying_party(
    state: &AppState,
    tenant: &Tenant,
    meta: &RequestMeta,
) -> poem::Result<Arc<webauthn_rs::Webauthn>> {
    state.passkeys.get(tenant, &meta.host).map_err(internal)
}

/// The flow of a script's request at `action` (the login step only for an account holding
/// a passkey); otherwise the JSON answer that the page is out of date.
async fn json_flow<S: Subject>(
    state: &AppState,
    tenant: &Tenant,
    jar: &CookieJar,
    action: Action,
) -> poem::Result<Result<Flow<S>, Response>> {
    match step::<S>(state, tenant, jar, &[action]).await? {
        Ok(flow) if action != Action::SecondFactor || flow.factors.has(MfaMethod::Passkey) => {
            Ok(Ok(flow))
        }
        _ => Ok(Err(json_error(StatusCode::CONFLICT, "expired"))),
    }
}

/// Keeps `ceremony` in the flow for [`CEREMONY_SECS`], replacing any other.
async fn keep_ceremony<S: Subject>(
    state: &AppState,
    tenant: &Tenant,
    flow: &Flow<S>,
    ceremony: &Ceremony,
) -> poem::Result<()> {
    state
        .store
        .set_flow_ceremony(
            &tenant.id,
            &flow.token_hash,
            Some(&ceremony.to_json()),
            now_unix() + CEREMONY_SECS,
        )
        .await
        .map_err(internal)
}

/// The ceremony kept in the flow, if unexpired.
fn ceremony<S: Subject>(flow: &Flow<S>) -> Option<(String, Ceremony)> {
    let json = flow.flow.ceremony.clone()?;
    if flow.flow.ceremony_expires_at.unwrap_or(0) <= now_unix() {
        return None;
    }
    let ceremony = Ceremony::from_json(&json)?;
    Some((json, ceremony))
}

fn redirect<S: Subject>(flow: &Flow<S>, path: &str) -> Response {
    Redirect::see_other(flow.path(path)).into_response()
}

/// The context of a passkey page: where its script fetches and posts, and where a locked
/// account is sent.
fn page_context<S: Subject>(flow: &Flow<S>, ctx: &mut tera::Context) {
    ctx.insert("passkey_base", &flow.path("/login/passkey"));
    ctx.insert("locked_to", &flow.path("/login?locked=1"));
}

// --- registration --------------------------------------------------------------------------

/// 「セキュリティキー登録」 with 「登録」.
#[handler]
pub async fn setup_page<S: Subject>(
    _side: Side<S>,
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    let state: &AppState = state.0;
    let tenant: &Tenant = &tenant.0;
    let meta = &meta;
    let flow = flow_at!(<S> state, tenant, jar, Action::SetupPasskey);
    if let Some((_, Ceremony::Registered { .. })) = ceremony(&flow) {
        return Ok(redirect(&flow, "/login/passkey/name"));
    }
    let mut ctx = flow.context();
    page_context(&flow, &mut ctx);
    Ok(flow.render(state, tenant, meta, "passkey_setup.html", ctx))
}

/// The options for `navigator.credentials.create`.
#[handler]
pub async fn setup_options<S: Subject>(
    _side: Side<S>,
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    let state: &AppState = state.0;
    let tenant: &Tenant = &tenant.0;
    let meta = &meta;
    let flow = match json_flow::<S>(state, tenant, jar, Action::SetupPasskey).await? {
        Ok(flow) => flow,
        Err(expired) => return Ok(expired),
    };
    let webauthn = relying_party(state, tenant, meta)?;
    let existing = stored_passkeys(&flow.factors.passkeys);
    let (options, ceremony) = passkey::start_registration(
        &webauthn,
        tenant,
        flow.who.owner().id(),
        flow.who.account_label(),
        flow.who.display_name(),
        &existing,
    )
    .map_err(internal)?;
    keep_ceremony(state, tenant, &flow, &ceremony).await?;
    Ok(Json(options).into_response())
}

/// The browser's new credential: verified, then kept until the member names it.
#[handler]
pub async fn setup_finish<S: Subject>(
    _side: Side<S>,
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    body: Body,
) -> poem::Result<Response> {
    let state: &AppState = state.0;
    let tenant: &Tenant = &tenant.0;
    let meta = &meta;
    let flow = match json_flow::<S>(state, tenant, jar, Action::SetupPasskey).await? {
        Ok(flow) => flow,
        Err(expired) => return Ok(expired),
    };
    let Ok(body) = body.into_string().await else {
        return Ok(json_error(StatusCode::BAD_REQUEST, "failed"));
    };
    let Some((json, Ceremony::Register { state: reg })) = ceremony(&flow) else {
        return Ok(json_error(StatusCode::CONFLICT, "expired"));
    };
    let webauthn = relying_party(state, tenant, meta)?;
    let refused = match passkey::finish_registration(&webauthn, &reg, &body) {
        Ok(new) => {
            // The same credential may not be registered twice in the tenant.
            let credential = passkey::credential_id(new.cred_id());
            let owner = state
                .store
                .passkey_owner(&tenant.id, &flow.who.owner(), &credential)
                .await
                .map_err(internal)?;
            if owner.is_some() {
                meta.audit_by(
                    &state.store,
                    tenant,
                    flow.who.owner(),
                    "passkey_register_refused",
                    "credential already registered",
                )
                .await;
                return Ok(json_error(StatusCode::BAD_REQUEST, "duplicate"));
            }
            if !state
                .store
                .take_flow_ceremony(&tenant.id, &flow.token_hash, &json)
                .await
                .map_err(internal)?
            {
                return Ok(json_error(StatusCode::CONFLICT, "expired"));
            }
            let pending = Ceremony::Registered { passkey: new };
            keep_ceremony(state, tenant, &flow, &pending).await?;
            let next = flow.path("/login/passkey/name");
            return Ok(Json(json!({ "next": next })).into_response());
        }
        Err(refused) => refused,
    };
    meta.audit_by(
        &state.store,
        tenant,
        flow.who.owner(),
        "passkey_register_refused",
        &refused.to_string(),
    )
    .await;
    Ok(json_error(StatusCode::BAD_REQUEST, "failed"))
}

fn name_context<S: Subject>(flow: &Flow<S>, name: &str) -> tera::Context {
    let mut ctx = flow.context();
    ctx.insert("name", name);
    ctx
}

/// Naming the new passkey (default 「パスキー」).
#[handler]
pub async fn name_page<S: Subject>(
    _side: Side<S>,
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    let state: &AppState = state.0;
    let tenant: &Tenant = &tenant.0;
    let meta = &meta;
    let flow = flow_at!(<S> state, tenant, jar, Action::SetupPasskey);
    let Some((_, Ceremony::Registered { .. })) = ceremony(&flow) else {
        return Ok(redirect(&flow, "/login/passkey/setup"));
    };
    let theme = state.themes.get(&tenant.slug).map_err(internal)?;
    let ctx = name_context(&flow, theme.text("passkey.default_name"));
    Ok(flow.render(state, tenant, meta, "passkey_name.html", ctx))
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    name: String,
}

/// 「ＯＫ」: the passkey is registered under its name.
#[handler]
pub async fn save_name<S: Subject>(
    _side: Side<S>,
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    Form(form): Form<NameForm>,
) -> poem::Result<Response> {
    let state: &AppState = state.0;
    let tenant: &Tenant = &tenant.0;
    let meta = &meta;
    let flow = flow_at!(<S> state, tenant, jar, Action::SetupPasskey);
    let Some((json, Ceremony::Registered { passkey: new })) = ceremony(&flow) else {
        return Ok(redirect(&flow, "/login/passkey/setup"));
    };
    let mut ctx = name_context(&flow, &form.name);
    let name = form.name.trim();
    if let Some(problem) = factor::name_problem(name) {
        ctx.insert("error", &format!("name_{problem}"));
        return Ok(flow.render(state, tenant, meta, "passkey_name.html", ctx));
    }
    flow.clear_factors_for_reset(state, tenant).await?;
    let id = crate::random_token(16);
    let credential = passkey::credential_id(new.cred_id());
    let passkey_json = serde_json::to_string(&new).map_err(internal)?;
    match state
        .store
        .add_device(
            &tenant.id,
            &flow.who.owner(),
            &NewDevice {
                id: &id,
                kind: "passkey",
                name,
                secret: &passkey_json,
                credential_id: Some(&credential),
            },
        )
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            ctx.insert("error", "name_taken");
            return Ok(flow.render(state, tenant, meta, "passkey_name.html", ctx));
        }
        Err(e) => return Err(internal(e)),
    }
    state
        .store
        .take_flow_ceremony(&tenant.id, &flow.token_hash, &json)
        .await
        .map_err(internal)?;
    factor::registered(state, tenant, meta, &flow, MfaMethod::Passkey, name).await
}

// --- login ---------------------------------------------------------------------------------

/// 「生体認証」 with 「次へ」.
#[handler]
pub async fn login_page<S: Subject>(
    _side: Side<S>,
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    let state: &AppState = state.0;
    let tenant: &Tenant = &tenant.0;
    let meta = &meta;
    let flow = flow_at!(<S> state, tenant, jar, Action::SecondFactor);
    if !flow.factors.has(MfaMethod::Passkey) {
        return Ok(factor::choose(&flow));
    }
    let mut ctx = factor::context(&flow, MfaMethod::Passkey);
    page_context(&flow, &mut ctx);
    Ok(flow.render(state, tenant, meta, "passkey_login.html", ctx))
}

/// The options for `navigator.credentials.get`, over the member's passkeys.
#[handler]
pub async fn login_options<S: Subject>(
    _side: Side<S>,
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    let state: &AppState = state.0;
    let tenant: &Tenant = &tenant.0;
    let meta = &meta;
    let flow = match json_flow::<S>(state, tenant, jar, Action::SecondFactor).await? {
        Ok(flow) => flow,
        Err(expired) => return Ok(expired),
    };
    let webauthn = relying_party(state, tenant, meta)?;
    let passkeys = stored_passkeys(&flow.factors.passkeys);
    let (options, ceremony) =
        passkey::start_authentication(&webauthn, &passkeys).map_err(internal)?;
    keep_ceremony(state, tenant, &flow, &ceremony).await?;
    Ok(Json(options).into_response())
}

/// The browser's assertion: verified against the ceremony and the member's own passkey.
#[handler]
pub async fn login_finish<S: Subject>(
    _side: Side<S>,
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    body: Body,
) -> poem::Result<Response> {
    let state: &AppState = state.0;
    let tenant: &Tenant = &tenant.0;
    let meta = &meta;
    let flow = match json_flow::<S>(state, tenant, jar, Action::SecondFactor).await? {
        Ok(flow) => flow,
        Err(expired) => return Ok(expired),
    };
    let Ok(body) = body.into_string().await else {
        return Ok(json_error(StatusCode::BAD_REQUEST, "failed"));
    };
    let Some((json, Ceremony::Authenticate { state: auth })) = ceremony(&flow) else {
        return Ok(json_error(StatusCode::CONFLICT, "expired"));
    };
    // A ceremony answers once, right or wrong.
    if !state
        .store
        .take_flow_ceremony(&tenant.id, &flow.token_hash, &json)
        .await
        .map_err(internal)?
    {
        return Ok(json_error(StatusCode::CONFLICT, "expired"));
    }
    let refused = match verify_assertion(state, tenant, meta, &flow, &auth, &body).await? {
        Ok(device) => {
            flow.factor_proven(state, tenant, MfaMethod::Passkey, false)
                .await?;
            meta.audit_by(
                &state.store,
                tenant,
                flow.who.owner(),
                "passkey_used",
                &device,
            )
            .await;
            let next = flow.path("/login/next");
            return Ok(Json(json!({ "next": next })).into_response());
        }
        Err(refused) => refused,
    };
    let event = match refused {
        Refused::CounterRegression => "passkey_counter_regression",
        Refused::NotThisMembers => "passkey_foreign_refused",
        _ => "passkey_failed",
    };
    let locked =
        lockout_failure(state, tenant, meta, &flow.who, event, &refused.to_string()).await?;
    let key = if locked { "locked" } else { "failed" };
    Ok(json_error(StatusCode::BAD_REQUEST, key))
}

/// Checks an assertion; on success stores the passkey's new counter and returns its name.
async fn verify_assertion<S: Subject>(
    state: &AppState,
    tenant: &Tenant,
    meta: &RequestMeta,
    flow: &Flow<S>,
    auth: &webauthn_rs::prelude::PasskeyAuthentication,
    body: &str,
) -> poem::Result<Result<String, Refused>> {
    let Some((credential, credential_id)) = passkey::asserted_credential(body) else {
        return Ok(Err(Refused::Malformed));
    };
    let own = flow
        .factors
        .passkeys
        .iter()
        .find(|d| d.credential_id.as_deref() == Some(credential_id.as_str()));
    let Some(device) = own else {
        // Another account's passkey, or one unknown to this tenant (another host's).
        let owner = state
            .store
            .passkey_owner(&tenant.id, &flow.who.owner(), &credential_id)
            .await
            .map_err(internal)?;
        let detail = match owner {
            Some(_) => "credential of another account",
            None => "credential unknown to this tenant",
        };
        meta.audit_by(
            &state.store,
            tenant,
            flow.who.owner(),
            "passkey_credential_refused",
            detail,
        )
        .await;
        return Ok(Err(Refused::NotThisMembers));
    };
    let stored: Passkey = serde_json::from_str(&device.secret).map_err(internal)?;
    let webauthn = relying_party(state, tenant, meta)?;
    match passkey::finish_authentication(&webauthn, auth, &credential, stored) {
        Ok(updated) => {
            let json = serde_json::to_string(&updated).map_err(internal)?;
            state
                .store
                .passkey_used(&tenant.id, &flow.who.owner(), &device.id, &json, now_unix())
                .await
                .map_err(internal)?;
            Ok(Ok(device.name.clone()))
        }
        Err(refused) => Ok(Err(refused)),
    }
}
