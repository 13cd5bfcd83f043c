//! Authenticator apps in the sign-in flow: registering one at first login (QR code,
//! 「スキャンできませんか？」, 「デバイス名」 + code, 「実行」) and the one-time password step
//! of every later login (pick the device by name, code, 「トップページへ」).
//!
//! The handlers are written once for any [`Subject`] and mounted for members and for the
//! console by `web::factor::routes`.

use std::sync::Arc;

use poem::web::cookie::CookieJar;
use poem::web::{Data, Form};
use poem::{handler, IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::factor;
use super::signin::{flow_at, lockout_failure, step, Action, Flow, Side, Subject};
use super::{internal, AppState, CurrentTenant, RequestMeta};
use crate::mfa::totp::{self, Check};
use crate::store::{now_unix, NewDevice, StoreError};
use crate::tenant::{MfaMethod, Tenant};

#[derive(Serialize)]
struct DeviceChoice<'a> {
    id: &'a str,
    name: &'a str,
}

fn otp_context<S: Subject>(flow: &Flow<S>) -> tera::Context {
    let mut ctx = factor::context(flow, MfaMethod::Totp);
    let devices: Vec<DeviceChoice> = flow
        .factors
        .totp
        .iter()
        .map(|d| DeviceChoice {
            id: &d.id,
            name: &d.name,
        })
        .collect();
    ctx.insert("devices", &devices);
    ctx
}

#[handler]
pub async fn otp_page<S: Subject>(
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
    if !flow.factors.has(MfaMethod::Totp) {
        return Ok(factor::choose(&flow));
    }
    let ctx = otp_context(&flow);
    Ok(flow.render(state, tenant, meta, "login_otp.html", ctx))
}

#[derive(Deserialize)]
pub struct OtpForm {
    #[serde(default)]
    pub device: String,
    #[serde(default)]
    pub code: String,
}

#[handler]
pub async fn verify_otp<S: Subject>(
    _side: Side<S>,
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    Form(form): Form<OtpForm>,
) -> poem::Result<Response> {
    let state: &AppState = state.0;
    let tenant: &Tenant = &tenant.0;
    let meta = &meta;
    let flow = flow_at!(<S> state, tenant, jar, Action::SecondFactor);
    if !flow.factors.has(MfaMethod::Totp) {
        return Ok(factor::choose(&flow));
    }
    let mut ctx = otp_context(&flow);
    ctx.insert("device", &form.device);
    // With one device there is nothing to pick.
    let device = match flow.factors.totp.as_slice() {
        [only] => Some(only),
        many => many.iter().find(|d| d.id == form.device),
    };
    let Some(device) = device else {
        ctx.insert("error", "device_required");
        return Ok(flow.render(state, tenant, meta, "login_otp.html", ctx));
    };
    let policy = &tenant.settings.totp;
    let secret = state
        .secrets
        .open(&device.secret, &device.id)
        .map_err(internal)?;
    let code = totp::normalize_code(&form.code);
    let now = now_unix();
    let error = match totp::check(policy, &secret, &code, now) {
        Check::Valid { step: time_step } => {
            let first_use = state
                .store
                .use_totp_step(&tenant.id, &flow.who.owner(), &device.id, time_step, now)
                .await
                .map_err(internal)?;
            if first_use {
                flow.factor_proven(state, tenant, MfaMethod::Totp, false)
                    .await?;
                meta.audit_by(
                    &state.store,
                    tenant,
                    flow.who.owner(),
                    "totp_used",
                    &device.name,
                )
                .await;
                return Ok(flow.next());
            }
            meta.audit_by(
                &state.store,
                tenant,
                flow.who.owner(),
                "totp_replay_refused",
                &device.name,
            )
            .await;
            "otp_wrong".to_owned()
        }
        // At sign-in a code from another time is just wrong: telling how far off it was
        // would tell whoever guesses when that code will be good. Every wrong code gets the
        // same message, which carries the clock advice (FAQ Q9); the measured offset is
        // shown only while registering an app, to the member who was just shown its key.
        Check::ClockDrift { .. } | Check::Wrong => "otp_wrong".to_owned(),
    };
    lockout_failure(
        state,
        tenant,
        meta,
        &flow.who,
        "totp_failed",
        "wrong one-time password",
    )
    .await?;
    ctx.insert("error", &error);
    Ok(flow.render(state, tenant, meta, "login_otp.html", ctx))
}

// --- set-up at first login -----------------------------------------------------------------

/// The secret being registered in this flow; made on first view and kept (sealed) in the
/// flow, so reloading the page shows the same QR code.
async fn pending_secret<S: Subject>(
    state: &AppState,
    tenant: &Tenant,
    flow: &Flow<S>,
) -> poem::Result<Vec<u8>> {
    let secrets = &state.secrets;
    if let Some(sealed) = &flow.flow.pending_secret {
        if let Ok(secret) = secrets.open(sealed, &flow.token_hash) {
            return Ok(secret);
        }
    }
    let secret = totp::new_secret();
    let sealed = secrets.seal(&secret, &flow.token_hash);
    state
        .store
        .set_flow_pending_secret(&tenant.id, &flow.token_hash, &sealed)
        .await
        .map_err(internal)?;
    Ok(secret)
}

fn setup_context<S: Subject>(tenant: &Tenant, flow: &Flow<S>, secret: &[u8]) -> tera::Context {
    let mut ctx = flow.context();
    let account = flow.who.account_label();
    ctx.insert("key", &totp::base32(secret));
    ctx.insert(
        "uri",
        &totp::otpauth_uri(&tenant.settings.totp, account, secret),
    );
    ctx.insert("issuer", &tenant.settings.totp.issuer);
    ctx.insert("account", account);
    ctx
}

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
    let flow = flow_at!(<S> state, tenant, jar, Action::SetupTotp);
    let secret = pending_secret(state, tenant, &flow).await?;
    let ctx = setup_context(tenant, &flow, &secret);
    Ok(flow.render(state, tenant, meta, "login_totp.html", ctx))
}

/// The QR code of the pending secret, as a PNG. Never cached.
#[handler]
pub async fn setup_qr<S: Subject>(
    _side: Side<S>,
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    jar: &CookieJar,
) -> poem::Result<Response> {
    let state: &AppState = state.0;
    let tenant: &Tenant = &tenant.0;
    let flow = match step::<S>(state, tenant, jar, &[Action::SetupTotp]).await? {
        Ok(flow) => flow,
        Err(_) => return Err(poem::error::NotFoundError.into()),
    };
    let secret = pending_secret(state, tenant, &flow).await?;
    let uri = totp::otpauth_uri(&tenant.settings.totp, flow.who.account_label(), &secret);
    Ok(totp::qr_png(&uri)
        .with_content_type("image/png")
        .with_header("Cache-Control", "no-store")
        .into_response())
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    pub device_name: String,
    #[serde(default)]
    pub code: String,
}

#[handler]
pub async fn setup<S: Subject>(
    _side: Side<S>,
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    Form(form): Form<SetupForm>,
) -> poem::Result<Response> {
    let state: &AppState = state.0;
    let tenant: &Tenant = &tenant.0;
    let meta = &meta;
    let flow = flow_at!(<S> state, tenant, jar, Action::SetupTotp);
    let secret = pending_secret(state, tenant, &flow).await?;
    let mut ctx = setup_context(tenant, &flow, &secret);
    ctx.insert("device_name", &form.device_name);

    let name = form.device_name.trim();
    let name_error = factor::name_problem(name).map(|p| format!("device_name_{p}"));
    let code = totp::normalize_code(&form.code);
    let now = now_unix();
    let step = match totp::check(&tenant.settings.totp, &secret, &code, now) {
        Check::Valid { step } => Some(step),
        Check::ClockDrift { seconds } => {
            ctx.insert("drift_seconds", &seconds.abs());
            ctx.insert("drift_ahead", &(seconds > 0));
            ctx.insert("code_error", "clock_drift");
            None
        }
        Check::Wrong => {
            ctx.insert("code_error", "code_wrong");
            None
        }
    };
    if let Some(error) = &name_error {
        ctx.insert("name_error", error);
    }
    let (Some(step), None) = (step, name_error) else {
        return Ok(flow.render(state, tenant, meta, "login_totp.html", ctx));
    };

    flow.clear_factors_for_reset(state, tenant).await?;
    let id = crate::random_token(16);
    let sealed = state.secrets.seal(&secret, &id);
    match state
        .store
        .add_device(
            &tenant.id,
            &flow.who.owner(),
            &NewDevice {
                id: &id,
                kind: "totp",
                name,
                secret: &sealed,
                credential_id: None,
            },
        )
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            ctx.insert("name_error", "device_name_taken");
            return Ok(flow.render(state, tenant, meta, "login_totp.html", ctx));
        }
        Err(e) => return Err(internal(e)),
    }
    // The code that proved the set-up is spent, and proves the second factor of this flow.
    state
        .store
        .use_totp_step(&tenant.id, &flow.who.owner(), &id, step, now)
        .await
        .map_err(internal)?;
    factor::registered(state, tenant, meta, &flow, MfaMethod::Totp, name).await
}
