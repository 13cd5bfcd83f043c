//! HTTP: the member/admin listener (tenant hosts) and the operations listener.

mod account;
mod assets;
mod csrf;
mod email_confirm;
mod email_otp;
mod factor;
mod first_login;
mod methods;
mod ops;
mod pages;
mod passkey;
mod signin;
mod tenant_host;
mod totp;

use std::sync::Arc;

use poem::middleware::{CookieJarManager, Csrf};
use poem::web::cookie::SameSite;
use poem::web::CsrfToken;
use poem::{get, EndpointExt, FromRequest, Request, RequestBody, Route};

pub use ops::ops_app;
pub use tenant_host::CurrentTenant;

use crate::auth::password::PasswordHasher;
use crate::tenant::Tenant;

use crate::config::Config;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tenant::TenantRegistry;
use crate::theme::Themes;

/// Everything a request handler may need, built once at start-up.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub tenants: Arc<TenantRegistry>,
    pub themes: Themes,
    pub mailer: Mailer,
    pub metrics: Arc<Metrics>,
    pub hasher: PasswordHasher,
    /// Seals secrets at rest (TOTP keys, pending set-ups).
    pub secrets: crate::crypto::SecretBox,
    /// Keys the CSRF tokens; derived from the installation's secret key.
    pub csrf_key: [u8; 32],
    /// The WebAuthn relying party of each tenant host.
    pub passkeys: crate::mfa::passkey::RelyingParties,
}

/// The listener that tenant hosts reach. Every route runs with its tenant resolved.
pub fn member_app(state: Arc<AppState>) -> impl poem::Endpoint {
    let csrf = Csrf::new()
        .cookie_name("portal_csrf")
        .key(state.csrf_key)
        .secure(state.config.secure_cookies())
        .same_site(SameSite::Lax);
    Route::new()
        .at("/", get(account::top))
        .at("/login", get(signin::login_page).post(signin::login))
        .at("/login/next", get(signin::next))
        .at(
            "/login/birth-date",
            get(first_login::birth_date_page).post(first_login::birth_date),
        )
        .at(
            "/login/terms",
            get(first_login::terms_page).post(first_login::accept_terms),
        )
        .at(
            "/login/user-id",
            get(first_login::user_id_page).post(first_login::choose_user_id),
        )
        .at(
            "/login/password",
            get(first_login::password_page).post(first_login::update_password),
        )
        .at(
            "/login/email",
            get(first_login::email_page).post(first_login::review_email),
        )
        .at(
            "/login/email/confirm",
            get(email_confirm::confirm_email_page),
        )
        .at(
            "/login/email/resend",
            poem::post(email_confirm::resend_confirmation),
        )
        .at("/email/confirm", get(email_confirm::open_confirmation_link))
        .at("/login/factor", get(factor::factor_page))
        .at("/login/otp", get(totp::otp_page).post(totp::verify_otp))
        .at("/login/passkey", get(passkey::login_page))
        .at("/login/passkey/options", poem::post(passkey::login_options))
        .at("/login/passkey/finish", poem::post(passkey::login_finish))
        .at("/login/passkey/setup", get(passkey::setup_page))
        .at(
            "/login/passkey/setup/options",
            poem::post(passkey::setup_options),
        )
        .at(
            "/login/passkey/setup/finish",
            poem::post(passkey::setup_finish),
        )
        .at(
            "/login/passkey/name",
            get(passkey::name_page).post(passkey::save_name),
        )
        .at(
            "/login/email-otp",
            get(email_otp::page).post(email_otp::verify),
        )
        .at("/login/email-otp/resend", poem::post(email_otp::resend))
        .at("/login/totp", get(totp::setup_page).post(totp::setup))
        .at("/login/totp/qr.png", get(totp::setup_qr))
        .at("/logout", get(account::logout_page).post(account::logout))
        .at(
            "/profile",
            get(account::profile_page).post(account::change_user_id),
        )
        .at("/login-methods", get(methods::page))
        .at("/login-methods/add/:kind", get(methods::add))
        .at(
            "/login-methods/devices/:id/delete",
            get(methods::delete_page).post(methods::delete),
        )
        .at(
            "/login-methods/password",
            get(account::password_page).post(account::change_password),
        )
        .at("/reauth", get(account::reauth_page).post(account::reauth))
        .at("/theme.css", get(assets::theme_css))
        .at("/static/*path", get(assets::static_file))
        .around(csrf::verify)
        .with(csrf)
        .around(tenant_host::resolve_tenant)
        .with(CookieJarManager::new())
        .data(state)
}

/// Where a request comes from, for the audit log, and the CSRF token for its forms.
pub struct RequestMeta {
    /// The `Host` header as sent (it selected this tenant), for links in mail.
    pub host: String,
    pub ip: String,
    pub user_agent: String,
    pub csrf_token: String,
}

impl<'a> FromRequest<'a> for RequestMeta {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let ip = match req.remote_addr().as_socket_addr() {
            Some(addr) => addr.ip().to_string(),
            None => "unknown".to_owned(),
        };
        let user_agent: String = req
            .headers()
            .get(poem::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        let csrf_token = req
            .extensions()
            .get::<CsrfToken>()
            .map(|t| t.0.clone())
            .unwrap_or_default();
        let host = req
            .headers()
            .get(poem::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .filter(|h| crate::tenant::normalize_host(h).is_some())
            .unwrap_or("")
            .to_owned();
        Ok(Self {
            host,
            ip,
            user_agent,
            csrf_token,
        })
    }
}

impl RequestMeta {
    /// Writes an audit event; a failure to do so is logged, not shown to the member.
    pub async fn audit(
        &self,
        store: &Store,
        tenant: &Tenant,
        member_id: Option<&str>,
        event: &str,
        detail: &str,
    ) {
        let e = crate::store::AuditEvent {
            tenant: Some(&tenant.id),
            member_id,
            event,
            ip: &self.ip,
            user_agent: &self.user_agent,
            detail,
        };
        if let Err(error) = store.audit(&e).await {
            tracing::error!(%error, event, "writing the audit log failed");
        }
    }
}
