//! The console's 「管理者」 page (invite, change the role of, disable and enable the
//! society's admins) and 「APIトークン」 page (create, list, revoke tokens for scripts).
//! Both are for role `admin` only; an operator gets the 403 page.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Form, Path};
use poem::{handler, Response};
use serde::{Deserialize, Serialize};

use super::console::{date_or_empty, field_errors, text, Page};
use super::ConsoleAdmin;
use crate::admin::{accounts, tokens, FullAdmin, ServiceError};
use crate::ids::AdminId;
use crate::store::{AdminRole, AdminState};
use crate::web::pages::date_time;
use crate::web::{AppState, CurrentTenant};

#[derive(Serialize)]
struct AdminView {
    id: String,
    email: String,
    role: &'static str,
    state: &'static str,
    created_at: String,
    is_self: bool,
    locked: bool,
    has_factors: bool,
}

fn full(page: &Page<'_>) -> Result<FullAdmin, ServiceError> {
    page.admin.acting().require_admin()
}

async fn admins_page(
    page: &Page<'_>,
    by: &FullAdmin,
    mut ctx: tera::Context,
    status: StatusCode,
) -> Response {
    let listed = match accounts::list(page.state, page.tenant, by).await {
        Ok(admins) => accounts::with_factors(page.state, page.tenant, admins).await,
        Err(e) => Err(e),
    };
    let now = crate::store::now_unix();
    match listed {
        Ok(admins) => {
            let views: Vec<AdminView> = admins
                .iter()
                .map(|(a, has_factors)| AdminView {
                    id: a.id.to_string(),
                    email: a.email.clone(),
                    role: a.role.as_str(),
                    state: a.state.as_str(),
                    created_at: date_time(a.created_at),
                    is_self: a.id == page.admin.admin.id,
                    locked: a.is_locked(now),
                    has_factors: *has_factors,
                })
                .collect();
            ctx.insert("admins", &views);
            page.render("admins", "admins.html", ctx, status)
        }
        Err(e) => page.failure(e),
    }
}

#[handler]
pub async fn admins_list(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let by = match full(&page) {
        Ok(by) => by,
        Err(e) => return page.failure(e),
    };
    admins_page(&page, &by, tera::Context::new(), StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

#[handler]
pub async fn invite(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Form(form): Form<InviteForm>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let by = match full(&page) {
        Ok(by) => by,
        Err(e) => return page.failure(e),
    };
    let mut ctx = tera::Context::new();
    let Some(role) = AdminRole::parse(&form.role) else {
        ctx.insert("invite_email", &form.email);
        ctx.insert(
            "errors",
            &field_errors(
                &state,
                &[crate::admin::FieldProblem::new("role", "role_unknown")],
            ),
        );
        return admins_page(&page, &by, ctx, StatusCode::BAD_REQUEST).await;
    };
    match accounts::invite(&state, &tenant.0, &form.email, role, Some(&by)).await {
        Ok(_) => {
            let notice = text(&state, "admins.invited").replace("{email}", form.email.trim());
            ctx.insert("notice", &notice);
            admins_page(&page, &by, ctx, StatusCode::OK).await
        }
        Err(ServiceError::Invalid(problems)) => {
            ctx.insert("invite_email", &form.email);
            ctx.insert("invite_role", &form.role);
            ctx.insert("errors", &field_errors(&state, &problems));
            admins_page(&page, &by, ctx, StatusCode::BAD_REQUEST).await
        }
        Err(ServiceError::Conflict(key)) => {
            ctx.insert("invite_email", &form.email);
            ctx.insert("invite_role", &form.role);
            let mut errors = std::collections::HashMap::new();
            errors.insert("email", vec![text(&state, &format!("errors.{key}"))]);
            ctx.insert("errors", &errors);
            admins_page(&page, &by, ctx, StatusCode::CONFLICT).await
        }
        Err(e) => page.failure(e),
    }
}

#[derive(Deserialize)]
pub struct UpdateForm {
    #[serde(default)]
    role: String,
    #[serde(default)]
    state: String,
}

#[handler]
pub async fn update(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    Form(form): Form<UpdateForm>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let by = match full(&page) {
        Ok(by) => by,
        Err(e) => return page.failure(e),
    };
    let (Some(role), Some(disabled)) = (
        AdminRole::parse(&form.role),
        match form.state.as_str() {
            "active" => Some(false),
            "disabled" => Some(true),
            _ => None,
        },
    ) else {
        return page.failure(ServiceError::NotFound);
    };
    let id = AdminId::from_db(id);
    let mut ctx = tera::Context::new();
    match accounts::update(&state, &tenant.0, &by, &id, role, disabled).await {
        Ok(updated) => {
            let key = if updated.state == AdminState::Disabled {
                "admins.disabled_done"
            } else {
                "admins.updated"
            };
            ctx.insert(
                "notice",
                &text(&state, key).replace("{email}", &updated.email),
            );
            admins_page(&page, &by, ctx, StatusCode::OK).await
        }
        Err(ServiceError::Conflict(key)) => {
            ctx.insert("error", &text(&state, &format!("errors.{key}")));
            admins_page(&page, &by, ctx, StatusCode::CONFLICT).await
        }
        Err(e) => page.failure(e),
    }
}

/// What another admin may do to an admin's account from 「管理者」, each behind a
/// confirmation page.
#[derive(Clone, Copy)]
enum AdminAction {
    Unlock,
    ResetFactors,
}

impl AdminAction {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "unlock" => Some(Self::Unlock),
            "reset-factors" => Some(Self::ResetFactors),
            _ => None,
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Self::Unlock => "unlock",
            Self::ResetFactors => "reset-factors",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Unlock => "unlock",
            Self::ResetFactors => "reset_factors",
        }
    }
}

#[handler]
pub async fn admin_confirm_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let by = match full(&page) {
        Ok(by) => by,
        Err(e) => return page.failure(e),
    };
    let Some(action) = AdminAction::parse(&action) else {
        return page.failure(ServiceError::NotFound);
    };
    let target = match accounts::list(&state, &tenant.0, &by).await {
        Ok(list) => list.into_iter().find(|a| a.id.as_str() == id),
        Err(e) => return page.failure(e),
    };
    let Some(target) = target else {
        return page.failure(ServiceError::NotFound);
    };
    if target.id == admin.admin.id {
        return page.failure(ServiceError::Conflict("admin_self"));
    }
    let key = action.key();
    let mut ctx = tera::Context::new();
    ctx.insert(
        "target",
        &serde_json::json!({
            "id": target.id.as_str(),
            "email": target.email,
            "role": target.role.as_str(),
            "state": target.state.as_str(),
        }),
    );
    ctx.insert("action", action.slug());
    ctx.insert("title", &text(&state, &format!("admins.{key}_title")));
    ctx.insert(
        "explanation",
        &text(&state, &format!("admins.{key}_explanation")),
    );
    ctx.insert("button", &text(&state, &format!("admins.{key}_button")));
    page.render("admins", "admin_confirm.html", ctx, StatusCode::OK)
}

#[handler]
pub async fn admin_act(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let by = match full(&page) {
        Ok(by) => by,
        Err(e) => return page.failure(e),
    };
    let Some(action) = AdminAction::parse(&action) else {
        return page.failure(ServiceError::NotFound);
    };
    let id = AdminId::from_db(id);
    let done = match action {
        AdminAction::Unlock => accounts::unlock(&state, &tenant.0, Some(&by), &id)
            .await
            .map(|a| (a.email, "admins.unlocked_done")),
        AdminAction::ResetFactors => accounts::reset_factors(&state, &tenant.0, Some(&by), &id)
            .await
            .map(|r| (r.admin.email, "admins.reset_factors_done")),
    };
    match done {
        Ok((email, key)) => {
            let mut ctx = tera::Context::new();
            ctx.insert("notice", &text(&state, key).replace("{email}", &email));
            admins_page(&page, &by, ctx, StatusCode::OK).await
        }
        Err(e) => page.failure(e),
    }
}

// --- API tokens ----------------------------------------------------------------------------

#[derive(Serialize)]
struct TokenView {
    id: String,
    name: String,
    role: String,
    owner: String,
    created_at: String,
    expires_at: String,
    last_used_at: String,
    state: &'static str,
}

async fn tokens_page(
    page: &Page<'_>,
    by: &FullAdmin,
    mut ctx: tera::Context,
    status: StatusCode,
) -> Response {
    let (list, admins) = match (
        tokens::list(page.state, page.tenant, by).await,
        accounts::list(page.state, page.tenant, by).await,
    ) {
        (Ok(l), Ok(a)) => (l, a),
        (Err(e), _) | (_, Err(e)) => return page.failure(e),
    };
    let now = crate::store::now_unix();
    let views: Vec<TokenView> = list
        .iter()
        .map(|t| TokenView {
            id: t.id.clone(),
            name: t.name.clone(),
            role: t.role.clone(),
            owner: admins
                .iter()
                .find(|a| a.id.as_str() == t.admin_id)
                .map(|a| a.email.clone())
                .unwrap_or_default(),
            created_at: date_time(t.created_at),
            expires_at: date_time(t.expires_at),
            last_used_at: date_or_empty(t.last_used_at),
            state: if t.revoked_at.is_some() {
                "revoked"
            } else if t.expires_at <= now {
                "expired"
            } else {
                "active"
            },
        })
        .collect();
    ctx.insert("tokens", &views);
    ctx.insert("max_days", &tokens::MAX_DAYS);
    page.render("tokens", "tokens.html", ctx, status)
}

#[handler]
pub async fn token_list(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let by = match full(&page) {
        Ok(by) => by,
        Err(e) => return page.failure(e),
    };
    tokens_page(&page, &by, tera::Context::new(), StatusCode::OK).await
}

#[derive(Deserialize, Serialize)]
pub struct TokenForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    days: String,
}

#[handler]
pub async fn token_create(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Form(form): Form<TokenForm>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let by = match full(&page) {
        Ok(by) => by,
        Err(e) => return page.failure(e),
    };
    let role = AdminRole::parse(&form.role).unwrap_or(AdminRole::Operator);
    let days = form.days.trim().parse::<i64>().unwrap_or(0);
    let acting = by.acting();
    match tokens::create(
        &state,
        &tenant.0,
        &acting.admin,
        acting.role,
        &form.name,
        role,
        days,
        (&acting.ip, &acting.user_agent),
    )
    .await
    {
        Ok(created) => {
            let mut ctx = tera::Context::new();
            ctx.insert("name", form.name.trim());
            ctx.insert("token", &created.token);
            ctx.insert("expires_at", &date_time(created.expires_at));
            page.render("tokens", "token_created.html", ctx, StatusCode::OK)
        }
        Err(ServiceError::Invalid(problems)) => {
            let mut ctx = tera::Context::new();
            ctx.insert("form", &form);
            ctx.insert("errors", &field_errors(&state, &problems));
            tokens_page(&page, &by, ctx, StatusCode::BAD_REQUEST).await
        }
        Err(e) => page.failure(e),
    }
}

#[handler]
pub async fn token_revoke_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let by = match full(&page) {
        Ok(by) => by,
        Err(e) => return page.failure(e),
    };
    let (list, admins) = match (
        tokens::list(&state, &tenant.0, &by).await,
        accounts::list(&state, &tenant.0, &by).await,
    ) {
        (Ok(l), Ok(a)) => (l, a),
        (Err(e), _) | (_, Err(e)) => return page.failure(e),
    };
    let Some(token) = list.iter().find(|t| t.id == id && t.revoked_at.is_none()) else {
        return page.failure(ServiceError::NotFound);
    };
    let mut ctx = tera::Context::new();
    ctx.insert(
        "token",
        &serde_json::json!({
            "id": token.id,
            "name": token.name,
            "owner": admins.iter().find(|a| a.id.as_str() == token.admin_id).map(|a| a.email.clone()),
            "last_used_at": date_or_empty(token.last_used_at),
        }),
    );
    page.render("tokens", "token_revoke.html", ctx, StatusCode::OK)
}

#[handler]
pub async fn token_revoke(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let by = match full(&page) {
        Ok(by) => by,
        Err(e) => return page.failure(e),
    };
    match tokens::revoke(&state, &tenant.0, &by, &id).await {
        Ok(()) => {
            let mut ctx = tera::Context::new();
            ctx.insert("notice", &text(&state, "tokens.revoked"));
            tokens_page(&page, &by, ctx, StatusCode::OK).await
        }
        Err(e) => page.failure(e),
    }
}
