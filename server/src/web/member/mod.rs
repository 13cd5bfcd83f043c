//! The member side of a tenant host: sign-in steps only members have (birth date, terms,
//! user ID, e-mail), passkeys and e-mail codes, and the signed-in pages.

pub mod account;
mod email_confirm;
mod email_otp;
mod first_login;
mod methods;
pub mod session;

use poem::{get, Route};

/// The member pages, added to the tenant host's routes.
pub fn routes(route: Route) -> Route {
    route
        .at("/", get(account::top))
        .at(
            "/login",
            get(crate::web::signin::login_page).post(crate::web::signin::login),
        )
        .at("/login/next", get(crate::web::signin::next))
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
        .at("/login/factor", get(crate::web::factor::factor_page))
        .at(
            "/login/otp",
            get(crate::web::totp::otp_page).post(crate::web::totp::verify_otp),
        )
        .at("/login/passkey", get(crate::web::passkey::login_page))
        .at(
            "/login/passkey/options",
            poem::post(crate::web::passkey::login_options),
        )
        .at(
            "/login/passkey/finish",
            poem::post(crate::web::passkey::login_finish),
        )
        .at("/login/passkey/setup", get(crate::web::passkey::setup_page))
        .at(
            "/login/passkey/setup/options",
            poem::post(crate::web::passkey::setup_options),
        )
        .at(
            "/login/passkey/setup/finish",
            poem::post(crate::web::passkey::setup_finish),
        )
        .at(
            "/login/passkey/name",
            get(crate::web::passkey::name_page).post(crate::web::passkey::save_name),
        )
        .at(
            "/login/email-otp",
            get(email_otp::page).post(email_otp::verify),
        )
        .at("/login/email-otp/resend", poem::post(email_otp::resend))
        .at(
            "/login/totp",
            get(crate::web::totp::setup_page).post(crate::web::totp::setup),
        )
        .at("/login/totp/qr.png", get(crate::web::totp::setup_qr))
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
        .at("/theme.css", get(crate::web::assets::theme_css))
        .at("/static/*path", get(crate::web::assets::static_file))
}
