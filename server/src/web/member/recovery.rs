//! 「ユーザ IDを忘れた方はこちら」 (manual §3-4): 「生年月日」 and 「メールアドレス」 →
//! 「実行」 → the same page whatever was found; the mail goes out after the answer.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Form, Redirect};
use poem::{handler, IntoResponse, Response};
use serde::Deserialize;

use crate::mail::EmailAddress;
use crate::member::recovery::{self, Requester};
use crate::web::pages::render;
use crate::web::{internal, AppState, CurrentTenant, RequestMeta};

/// Longest input looked at; anything longer is refused before any work.
const MAX_FIELD: usize = 254;

#[handler]
pub async fn user_id_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
) -> Response {
    render(
        &state,
        &tenant.0,
        &meta,
        "forgot_user_id.html",
        tera::Context::new(),
        StatusCode::OK,
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
        crate::admin::members::parse_birth_date(&form.birth_date)
    };
    let email = if form.email.chars().count() > MAX_FIELD {
        None
    } else {
        EmailAddress::parse(&form.email).ok()
    };
    let (Ok(birth_date), Some(email)) = (&birth_date, &email) else {
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
        return Ok(render(
            &state,
            &tenant.0,
            &meta,
            "forgot_user_id.html",
            ctx,
            StatusCode::OK,
        ));
    };
    let from = Requester {
        ip: &meta.ip,
        user_agent: &meta.user_agent,
    };
    let accepted = recovery::accept_request(&state, &tenant.0, &from)
        .await
        .map_err(internal)?;
    if accepted {
        // The look-up and the mail run after the answer: its timing tells nothing.
        let (state, tenant) = (Arc::clone(&state), Arc::clone(&tenant.0));
        let (birth_date, email) = (birth_date.clone(), email.clone());
        let (ip, user_agent) = (meta.ip.clone(), meta.user_agent.clone());
        tokio::spawn(async move {
            let from = Requester {
                ip: &ip,
                user_agent: &user_agent,
            };
            if let Err(error) =
                recovery::remind_user_ids(&state, &tenant, &birth_date, &email, &from).await
            {
                tracing::error!(%error, "user ID reminder failed");
            }
        });
    }
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
    render(
        &state,
        &tenant.0,
        &meta,
        "forgot_user_id.html",
        ctx,
        StatusCode::OK,
    )
}
