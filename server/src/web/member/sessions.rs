//! 「ログイン中の端末」 and 「最近のログイン履歴」 under 「ログイン方法変更」: the member sees
//! the browsers signed in now and their recent sign-ins, and signs out one other browser
//! or all of them after a step-up, confirmed on a page that says what will happen.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Path, Redirect};
use poem::{handler, IntoResponse, Response};
use serde::Serialize;

use super::account::{recent_enough, signed_in_context, step_up};
use super::session::SignedIn;
use crate::member::sessions::{self, Which};
use crate::tenant::Tenant;
use crate::web::pages::{date_time, render};
use crate::web::{internal, AppState, CurrentTenant, RequestMeta};

/// The path segment that names every other session.
const OTHERS: &str = "others";

#[derive(Serialize)]
struct DeviceView {
    reference: String,
    browser: String,
    ip: String,
    since: String,
    last_seen: String,
    method: String,
    current: bool,
}

#[derive(Serialize)]
struct SignInView {
    at: String,
    event: String,
    ok: bool,
    method: String,
    browser: String,
    ip: String,
}

async fn device_views(
    state: &AppState,
    tenant: &Tenant,
    signed_in: &SignedIn,
) -> poem::Result<Vec<DeviceView>> {
    let devices = sessions::devices(state, tenant, &signed_in.member, &signed_in.token_hash)
        .await
        .map_err(internal)?;
    Ok(devices
        .into_iter()
        .map(|d| DeviceView {
            reference: d.reference,
            browser: d.browser,
            ip: d.ip,
            since: date_time(d.since),
            last_seen: date_time(d.last_seen),
            method: d.method,
            current: d.current,
        })
        .collect())
}

/// What 「ログイン方法変更」 shows of sessions and sign-ins.
pub async fn add_to_context(
    state: &AppState,
    tenant: &Tenant,
    signed_in: &SignedIn,
    ctx: &mut tera::Context,
) -> poem::Result<()> {
    let devices = device_views(state, tenant, signed_in).await?;
    let others = devices.iter().filter(|d| !d.current).count();
    ctx.insert("signed_in_devices", &devices);
    ctx.insert("other_sessions", &others);
    let history: Vec<SignInView> = sessions::history(state, tenant, &signed_in.member)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|s| SignInView {
            at: date_time(s.at),
            event: s.event,
            ok: s.ok,
            method: s.method,
            browser: s.browser,
            ip: s.ip,
        })
        .collect();
    ctx.insert("sign_ins", &history);
    Ok(())
}

/// The sessions `which` names, other than this one; None for a reference that names none.
async fn targets(
    state: &AppState,
    tenant: &Tenant,
    signed_in: &SignedIn,
    which: &str,
) -> poem::Result<Option<Vec<DeviceView>>> {
    let others: Vec<DeviceView> = device_views(state, tenant, signed_in)
        .await?
        .into_iter()
        .filter(|d| !d.current)
        .collect();
    if which == OTHERS {
        return Ok(Some(others));
    }
    let one: Vec<DeviceView> = others
        .into_iter()
        .filter(|d| d.reference == which)
        .collect();
    Ok((!one.is_empty()).then_some(one))
}

fn path_of(which: &str) -> String {
    format!("/login-methods/sessions/{which}/end")
}

fn confirm(
    state: &AppState,
    tenant: &Tenant,
    meta: &RequestMeta,
    signed_in: &SignedIn,
    which: &str,
    devices: &[DeviceView],
) -> Response {
    let mut ctx = signed_in_context(signed_in);
    ctx.insert("action", &path_of(which));
    ctx.insert("all", &(which == OTHERS));
    ctx.insert("devices", devices);
    render(
        state,
        tenant,
        meta,
        "sessions_end.html",
        ctx,
        StatusCode::OK,
    )
}

/// 「ログアウトさせる」 / 「ほかの端末をすべてログアウト」: after a step-up if needed, the
/// browsers that will be signed out and 「ログアウトさせる」 / 「戻る」.
#[handler]
pub async fn end_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    signed_in: SignedIn,
    Path(which): Path<String>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let Some(devices) = targets(&state, tenant, &signed_in, &which).await? else {
        return Ok(Redirect::see_other("/login-methods").into_response());
    };
    if !recent_enough(tenant, &signed_in) {
        return Ok(step_up(&path_of(&which)));
    }
    Ok(confirm(&state, tenant, &meta, &signed_in, &which, &devices))
}

#[handler]
pub async fn end(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    signed_in: SignedIn,
    Path(which): Path<String>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    if !recent_enough(tenant, &signed_in) {
        return Ok(step_up(&path_of(&which)));
    }
    let target = if which == OTHERS {
        Which::Others
    } else {
        Which::One(&which)
    };
    let from = meta.requester();
    let ended = sessions::end(
        &state,
        tenant,
        &signed_in.member,
        &signed_in.token_hash,
        target,
        &from,
    )
    .await
    .map_err(internal)?;
    Ok(Redirect::see_other(format!("/login-methods?ended={ended}")).into_response())
}
