//! 「ログイン方法変更」: the password with its creation date and 「更新」, and under
//! 「二要素認証」 each authenticator app, passkey and the e-mail code with 「設定」 to add and
//! 「削除」 → 「削除する」/「戻る」 to remove (manual §3-6, §3-7). Both start with a step-up
//! when the last authentication is older than the tenant allows.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Path, Query, Redirect};
use poem::{handler, IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::account::{date, recent_enough, signed_in_context, step_up};
use super::session::SignedIn;
use crate::tenant::{MfaMethod, Tenant};
use crate::web::factor;
use crate::web::internal;
use crate::web::pages::render;
use crate::web::signin::{start_flow, Factors, Purpose, StartFlow};
use crate::web::{AppState, CurrentTenant, RequestMeta};

/// The pseudo device id of the e-mail code factor.
const EMAIL_ID: &str = "email";

#[derive(Serialize)]
struct DeviceView {
    id: String,
    name: String,
    created: String,
    last_used: String,
}

#[derive(Serialize)]
struct KindView {
    kind: &'static str,
    devices: Vec<DeviceView>,
}

async fn factors(state: &AppState, tenant: &Tenant, signed_in: &SignedIn) -> poem::Result<Factors> {
    let devices = state
        .store
        .devices(
            &tenant.id,
            &crate::store::Owner::member(&signed_in.member.id),
        )
        .await
        .map_err(internal)?;
    Ok(Factors::of(tenant, &signed_in.member, devices))
}

fn views(devices: &[crate::store::Device]) -> Vec<DeviceView> {
    devices
        .iter()
        .map(|d| DeviceView {
            id: d.id.clone(),
            name: d.name.clone(),
            created: date(d.created_at),
            last_used: d.last_used_at.map(date).unwrap_or_default(),
        })
        .collect()
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    updated: Option<String>,
    added: Option<String>,
    removed: Option<String>,
    ended: Option<u32>,
}

#[handler]
pub async fn page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    signed_in: SignedIn,
    query: Query<NoticeQuery>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let factors = factors(&state, tenant, &signed_in).await?;
    let mut ctx = signed_in_context(&signed_in);
    ctx.insert(
        "password_created",
        &date(signed_in.member.password_created_at),
    );
    let mut kinds = Vec::new();
    for method in &tenant.settings.mfa.methods {
        let devices = match method {
            MfaMethod::Totp => views(&factors.totp),
            MfaMethod::Passkey => views(&factors.passkeys),
            MfaMethod::EmailOtp if factors.email => vec![DeviceView {
                id: EMAIL_ID.to_owned(),
                name: signed_in.member.email.clone(),
                created: String::new(),
                last_used: String::new(),
            }],
            MfaMethod::EmailOtp => Vec::new(),
        };
        kinds.push(KindView {
            kind: method.as_str(),
            devices,
        });
    }
    ctx.insert("kinds", &kinds);
    let notice = if query.updated.is_some() {
        Some("password_changed")
    } else if query.added.is_some() {
        Some("added")
    } else if query.removed.is_some() {
        Some("removed")
    } else {
        None
    };
    if let Some(notice) = notice {
        ctx.insert("notice", notice);
        // After a change of password or factor: offer to sign out every other browser
        // (OWASP ASVS 5.0 §7.4.3).
        ctx.insert("offer_end_others", &true);
    }
    if let Some(ended) = query.ended {
        ctx.insert("ended", &ended);
    }
    super::sessions::add_to_context(&state, tenant, &signed_in, &mut ctx).await?;
    Ok(render(
        &state,
        tenant,
        &meta,
        "login_methods.html",
        ctx,
        StatusCode::OK,
    ))
}

fn method_of(tenant: &Tenant, kind: &str) -> Option<MfaMethod> {
    tenant
        .settings
        .mfa
        .methods
        .iter()
        .copied()
        .find(|m| m.as_str() == kind)
}

/// 「設定」: after a step-up if needed, a flow that registers one more factor of `kind`
/// and returns here.
#[handler]
pub async fn add(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    signed_in: SignedIn,
    Path(kind): Path<String>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    // Only the tenant's methods, whatever the page showed.
    let Some(method) = method_of(tenant, &kind) else {
        return Err(poem::error::NotFoundError.into());
    };
    if !recent_enough(tenant, &signed_in) {
        return Ok(step_up(&format!("/login-methods/add/{}", method.as_str())));
    }
    meta.audit(
        &state.store,
        tenant,
        Some(&signed_in.member.id),
        "factor_add_started",
        method.as_str(),
    )
    .await;
    // The recent authentication stands for the second factor.
    start_flow(
        &state,
        tenant,
        jar,
        StartFlow {
            owner: crate::store::Owner::member(&signed_in.member.id),
            purpose: Purpose::Add(method),
            return_to: "/login-methods?added=1",
            lifetime_secs: 15 * 60,
            factor_verified: true,
            reset_token_hash: None,
            password_outdated: false,
        },
    )
    .await
}

/// The device `id` of the member, with its kind and name.
fn find(factors: &Factors, id: &str, email_label: &str) -> Option<(MfaMethod, String)> {
    if id == EMAIL_ID {
        return factors
            .email
            .then(|| (MfaMethod::EmailOtp, email_label.to_owned()));
    }
    factors
        .totp
        .iter()
        .map(|d| (MfaMethod::Totp, d))
        .chain(factors.passkeys.iter().map(|d| (MfaMethod::Passkey, d)))
        .find(|(_, d)| d.id == id)
        .map(|(m, d)| (m, d.name.clone()))
}

/// A device the member asked to remove: its kind and name, and whether it is the last
/// factor of a society that requires one.
struct Removal {
    method: MfaMethod,
    name: String,
    last: bool,
}

/// The member's device `id`, once the last authentication is recent enough; otherwise the
/// answer instead (404 for no such device of theirs, the step-up).
async fn removal(
    state: &AppState,
    tenant: &Tenant,
    signed_in: &SignedIn,
    id: &str,
) -> poem::Result<Result<Removal, Response>> {
    let factors = factors(state, tenant, signed_in).await?;
    let theme = state.themes.get(&tenant.slug).map_err(internal)?;
    let Some((method, name)) = find(&factors, id, theme.text("factors.email_otp")) else {
        return Err(poem::error::NotFoundError.into());
    };
    if !recent_enough(tenant, signed_in) {
        return Ok(Err(step_up(&format!("/login-methods/devices/{id}/delete"))));
    }
    Ok(Ok(Removal {
        method,
        name,
        last: tenant.settings.mfa.required && factors.count() <= 1,
    }))
}

/// The confirmation page of a removal; with the refusal when it is the last factor.
fn confirm_page(
    state: &AppState,
    tenant: &Tenant,
    meta: &RequestMeta,
    signed_in: &SignedIn,
    id: &str,
    r: &Removal,
    status: StatusCode,
) -> Response {
    let mut ctx = signed_in_context(signed_in);
    ctx.insert("id", id);
    ctx.insert("name", &r.name);
    ctx.insert("kind", r.method.as_str());
    if r.last {
        ctx.insert("error", "last_factor");
    }
    render(state, tenant, meta, "device_delete.html", ctx, status)
}

/// 「削除」: the confirmation with 「削除する」 and 「戻る」.
#[handler]
pub async fn delete_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let r = match removal(&state, tenant, &signed_in, &id).await? {
        Ok(r) => r,
        Err(answer) => return Ok(answer),
    };
    Ok(confirm_page(
        &state,
        tenant,
        &meta,
        &signed_in,
        &id,
        &r,
        StatusCode::OK,
    ))
}

/// 「削除する」.
#[handler]
pub async fn delete(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let member = &signed_in.member;
    let r = match removal(&state, tenant, &signed_in, &id).await? {
        Ok(r) => r,
        Err(answer) => return Ok(answer),
    };
    if r.last {
        meta.audit(
            &state.store,
            tenant,
            Some(&member.id),
            "factor_remove_refused",
            "last second factor",
        )
        .await;
        return Ok(confirm_page(
            &state,
            tenant,
            &meta,
            &signed_in,
            &id,
            &r,
            StatusCode::CONFLICT,
        ));
    }
    let Removal { method, name, .. } = r;
    let store = &state.store;
    if method == MfaMethod::EmailOtp {
        store
            .set_email_otp_enabled(&tenant.id, &member.id, false)
            .await
            .map_err(internal)?;
    } else {
        store
            .delete_device(&tenant.id, &crate::store::Owner::member(&member.id), &id)
            .await
            .map_err(internal)?;
    }
    let detail = format!("{}: {name}", method.as_str());
    meta.audit(store, tenant, Some(&member.id), "factor_removed", &detail)
        .await;
    factor::notify(&state, tenant, &meta, member, method, &name, false).await;
    Ok(Redirect::see_other("/login-methods?removed=1").into_response())
}
