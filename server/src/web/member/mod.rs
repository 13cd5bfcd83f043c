//! The member side of a tenant host: sign-in steps only members have (birth date, terms,
//! user ID, e-mail), e-mail codes, and the signed-in pages. The second-factor pages they
//! share with the console come from `web::factor::routes`.

pub mod account;
mod email_change;
mod email_confirm;
mod email_otp;
mod first_login;
mod methods;
mod recovery;
pub mod session;
mod sessions;

use poem::{get, Route};

/// The member pages, added to the tenant host's routes.
pub fn routes(route: Route) -> Route {
    crate::web::factor::routes::<crate::store::Member>(route)
        .at("/", get(account::top))
        .at(
            "/login",
            get(crate::web::signin::login_page).post(crate::web::signin::login),
        )
        .at("/login/next", get(crate::web::signin::next))
        .at(
            "/forgot-user-id",
            get(recovery::user_id_page).post(recovery::request_user_id),
        )
        .at("/forgot-user-id/sent", get(recovery::user_id_sent))
        .at(
            "/forgot-password",
            get(recovery::password_page).post(recovery::request_password_reset),
        )
        .at("/forgot-password/sent", get(recovery::password_sent))
        .at("/password-reset", get(recovery::open_reset_link))
        .at(
            "/password-reset/new",
            get(recovery::new_password_page).post(recovery::set_new_password),
        )
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
            "/login/method",
            get(first_login::method_page).post(first_login::choose_method),
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
        .at(
            "/login/email-otp",
            get(email_otp::page).post(email_otp::verify),
        )
        .at("/login/email-otp/resend", poem::post(email_otp::resend))
        .at("/logout", get(account::logout_page).post(account::logout))
        .at(
            "/profile",
            get(account::profile_page).post(account::change_user_id),
        )
        .at(
            "/profile/email",
            get(email_change::page).post(email_change::request),
        )
        .at(
            "/email/change",
            get(email_change::open_link).post(email_change::confirm),
        )
        .at("/login-methods", get(methods::page))
        .at("/login-methods/add/:kind", get(methods::add))
        .at(
            "/login-methods/devices/:id/delete",
            get(methods::delete_page).post(methods::delete),
        )
        .at(
            "/login-methods/sessions/:which/end",
            get(sessions::end_page).post(sessions::end),
        )
        .at(
            "/login-methods/password",
            get(account::password_page).post(account::change_password),
        )
        .at("/reauth", get(account::reauth_page).post(account::reauth))
        .at("/theme.css", get(crate::web::assets::theme_css))
        .at("/static/*path", get(crate::web::assets::static_file))
}
