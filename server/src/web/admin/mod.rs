//! The society admin console (`console`, server-rendered from `admin-ui/`) and its JSON
//! API (`api`), under `/admin` of each tenant host. Admins sign in through the shared
//! sign-in machine (`signin`). Their session is a cookie of its own, sent to `/admin` only:
//! a member session never opens a console page and an admin session never a member page.

pub mod accounts;
pub mod api;
mod api_bulk;
mod api_settings;
pub mod bulk_reset;
pub mod charts;
pub mod console;
mod import;
mod look;
pub mod settings;
pub mod signin;
mod terms;

use std::sync::Arc;

use poem::{get, post, FromRequest, Request, RequestBody, Route};

use super::{internal, AppState, CurrentTenant, RequestMeta};
use crate::admin::{Acting, FullAdmin};
use crate::auth::session::{cookie_token_hash, ADMIN_SESSION_COOKIE};
use crate::store::{now_unix, Admin, AdminState};

/// Console sessions end after this long without a request …
pub const IDLE_SECS: i64 = 15 * 60;
/// … and after this long in any case.
pub const ABSOLUTE_SECS: i64 = 8 * 60 * 60;

pub fn routes(state: &Arc<AppState>) -> Route {
    crate::web::factor::routes::<Admin>(Route::new())
        .at("/", get(console::dashboard))
        .at("/login", get(signin::login_page).post(signin::login))
        .at("/login/next", get(signin::next))
        .at("/login/method", post(signin::switch_method))
        .at(
            "/invite",
            get(signin::invite_page).post(signin::accept_invite),
        )
        .at("/logout", post(signin::logout))
        .at("/members", get(console::members))
        .at(
            "/members/new",
            get(console::new_member_page).post(console::create_member),
        )
        .at("/members/:id", get(console::member))
        .at(
            "/members/:id/email",
            get(console::email_page).post(console::change_email),
        )
        .at(
            "/members/:id/name",
            get(console::rename_page).post(console::rename),
        )
        .at(
            "/members/:id/:action",
            get(console::confirm_page).post(console::act),
        )
        .at("/batch/reset-password", post(console::batch_confirm))
        .at("/letters/:batch", get(console::letters))
        .at("/admins", get(accounts::admins_list).post(accounts::invite))
        .at("/admins/:id", post(accounts::update))
        .at(
            "/admins/:id/:action",
            get(accounts::admin_confirm_page).post(accounts::admin_act),
        )
        .at(
            "/tokens",
            get(accounts::token_list).post(accounts::token_create),
        )
        .at(
            "/tokens/:id/revoke",
            get(accounts::token_revoke_page).post(accounts::token_revoke),
        )
        .at(
            "/bulk-reset",
            get(bulk_reset::form_get).post(bulk_reset::apply),
        )
        .at("/bulk-reset/preview", post(bulk_reset::preview))
        .at("/look", get(look::look_page).post(look::save_look))
        .at("/services", get(look::services_page))
        .at(
            "/services/new",
            get(look::new_service_page).post(look::create_service),
        )
        .at(
            "/services/:id",
            get(look::edit_service_page).post(look::update_service),
        )
        .at("/services/:id/arrange", post(look::arrange))
        .at("/services/:id/delete", get(look::delete_page))
        .at("/terms", get(terms::list))
        .at(
            "/terms/draft",
            get(terms::draft_form).post(terms::save_draft),
        )
        .at("/terms/draft/review", get(terms::review))
        .at("/terms/draft/frame", get(terms::frame))
        .at("/terms/publish", post(terms::publish))
        .at("/terms/discard", post(terms::discard))
        .at("/terms/:version/evidence.csv", get(terms::evidence))
        .at("/import", get(import::form_get).post(import::check))
        .at("/import/:id", post(import::commit))
        .at("/import/:id/done", get(import::done))
        .at("/import/:id/letters", get(import::letters))
        .at("/import/:id/credentials.csv", get(import::credentials))
        .at("/settings", get(settings::form).post(settings::save))
        .at("/settings/review", get(settings::review_page))
        .at("/settings/publish", post(settings::publish))
        .at("/settings/discard", post(settings::discard))
        .at("/settings/preview", get(settings::preview_frames))
        .at("/settings/preview/theme.css", get(settings::preview_css))
        .at("/settings/preview/:page", get(settings::preview_page))
        .at("/settings/history", get(settings::history_page))
        .at(
            "/settings/history/:number",
            get(settings::restore_page).post(settings::restore),
        )
        .at("/charts/:name", get(charts::image))
        .at("/audit", get(console::audit))
        .at("/audit.csv", get(console::audit_csv))
        .at("/static/*path", get(console::static_file))
        .nest("/api", api::routes(state))
}

/// A signed-in admin of the request's tenant, loaded from the console cookie. Handlers
/// that take it run only for one; others are sent to the console's login page.
pub struct ConsoleAdmin {
    pub admin: Admin,
    pub token_hash: String,
    pub meta: RequestMeta,
}

impl ConsoleAdmin {
    /// The acting admin for service functions.
    pub fn acting(&self) -> Acting {
        Acting {
            admin: self.admin.id.clone(),
            role: self.admin.role,
            ip: self.meta.ip.clone(),
            user_agent: self.meta.user_agent.clone(),
        }
    }
}

impl<'a> FromRequest<'a> for ConsoleAdmin {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let state = req.data::<Arc<AppState>>().expect("AppState");
        let tenant = CurrentTenant::from_request(req, body).await?;
        let tenant = &tenant.0;
        let unauthorized = || poem::Error::from_status(poem::http::StatusCode::UNAUTHORIZED);
        let Some(token_hash) = cookie_token_hash(req.cookie(), ADMIN_SESSION_COOKIE) else {
            return Err(unauthorized());
        };
        let store = &state.store;
        let Some(session) = store
            .admin_session(&tenant.id, &token_hash)
            .await
            .map_err(internal)?
        else {
            return Err(unauthorized());
        };
        let now = now_unix();
        let admin = store
            .admin(&tenant.id, &session.admin_id)
            .await
            .map_err(internal)?;
        let fresh =
            now - session.last_seen_at <= IDLE_SECS && now - session.created_at <= ABSOLUTE_SECS;
        match admin {
            Some(admin) if fresh && admin.state == AdminState::Active && !admin.is_locked(now) => {
                if crate::auth::session::due_for_touch(session.last_seen_at, now, IDLE_SECS) {
                    store
                        .touch_admin_session(&tenant.id, &token_hash, now)
                        .await
                        .map_err(internal)?;
                }
                let meta = RequestMeta::from_request(req, body).await?;
                tracing::Span::current().record("admin", admin.id.as_str());
                Ok(Self {
                    admin,
                    token_hash,
                    meta,
                })
            }
            _ => {
                store
                    .delete_admin_session(&tenant.id, &token_hash)
                    .await
                    .map_err(internal)?;
                Err(unauthorized())
            }
        }
    }
}

/// A signed-in admin whose role is `admin`; an operator gets the 403 page.
pub struct ConsoleFullAdmin(pub ConsoleAdmin, pub FullAdmin);

impl<'a> FromRequest<'a> for ConsoleFullAdmin {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let admin = ConsoleAdmin::from_request(req, body).await?;
        match admin.acting().require_admin() {
            Ok(full) => Ok(Self(admin, full)),
            Err(_) => Err(poem::Error::from_status(poem::http::StatusCode::FORBIDDEN)),
        }
    }
}
