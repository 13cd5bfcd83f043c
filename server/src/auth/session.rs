//! Server-side sessions and sign-in flows behind opaque, host-only cookies.
//!
//! A cookie carries 256 random bits; the database keeps only their SHA-256, so a leaked
//! table opens no session. Cookies have no `Domain` attribute: one tenant's cookie never
//! reaches another tenant's host.

use poem::web::cookie::{Cookie, CookieJar, SameSite};
use poem::{FromRequest, Request, RequestBody};
use sha2::{Digest, Sha256};

use crate::store::{Member, MemberState, Session};
use crate::web::{AppState, CurrentTenant};

pub const SESSION_COOKIE: &str = "portal_session";
pub const FLOW_COOKIE: &str = "portal_flow";

/// A new random token and the hash the database keeps of it.
pub fn new_token() -> (String, String) {
    let token = crate::random_token(32);
    let hash = token_hash(&token);
    (token, hash)
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A host-only cookie: `HttpOnly`, `SameSite=Lax`, `Secure` when served over https.
pub fn cookie(name: &str, value: &str, secure: bool, max_age_secs: Option<i64>) -> Cookie {
    let mut c = Cookie::new_with_str(name, value);
    c.set_http_only(true);
    c.set_same_site(SameSite::Lax);
    c.set_secure(secure);
    c.set_path("/");
    if let Some(secs) = max_age_secs {
        c.set_max_age(std::time::Duration::from_secs(secs.max(0) as u64));
    }
    c
}

/// Asks the browser to forget a cookie.
pub fn remove_cookie(jar: &CookieJar, name: &str, secure: bool) {
    jar.add(cookie(name, "", secure, Some(0)));
}

/// The token hash of a cookie, if the request has one that looks like ours.
pub fn cookie_token_hash(jar: &CookieJar, name: &str) -> Option<String> {
    let cookie = jar.get(name)?;
    let value = cookie.value_str();
    (value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())).then(|| token_hash(value))
}

/// A signed-in member of the request's tenant. Handlers that take it only run for one;
/// others get a redirect to the login page (see [`crate::web`]).
pub struct SignedIn {
    pub member: Member,
    pub session: Session,
    pub token_hash: String,
}

/// Why a request carries no usable session.
#[derive(Debug)]
pub struct NotSignedIn;

impl SignedIn {
    /// Loads and checks the session: same tenant, not idle or older than the tenant
    /// allows, member still active. An expired session is deleted.
    pub async fn load(
        state: &AppState,
        tenant: &CurrentTenant,
        jar: &CookieJar,
    ) -> poem::Result<Option<Self>> {
        let Some(token_hash) = cookie_token_hash(jar, SESSION_COOKIE) else {
            return Ok(None);
        };
        let tenant = &tenant.0;
        let store = &state.store;
        let Some(session) = store
            .session(&tenant.id, &token_hash)
            .await
            .map_err(internal)?
        else {
            return Ok(None);
        };
        let now = crate::store::now_unix();
        let policy = &tenant.settings.session;
        let idle = now - session.last_seen_at > i64::from(policy.idle_timeout_minutes) * 60;
        let too_old = now - session.created_at > i64::from(policy.absolute_timeout_minutes) * 60;
        let member = store
            .member(&tenant.id, &session.member_id)
            .await
            .map_err(internal)?;
        match member {
            Some(member)
                if !idle
                    && !too_old
                    && member.state == MemberState::Active
                    && !member.is_locked(now) =>
            {
                if now > session.last_seen_at {
                    store
                        .touch_session(&tenant.id, &token_hash, now)
                        .await
                        .map_err(internal)?;
                }
                Ok(Some(Self {
                    member,
                    session,
                    token_hash,
                }))
            }
            _ => {
                store
                    .delete_session(&tenant.id, &token_hash)
                    .await
                    .map_err(internal)?;
                Ok(None)
            }
        }
    }
}

impl<'a> FromRequest<'a> for SignedIn {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let state = req.data::<std::sync::Arc<AppState>>().expect("AppState");
        let tenant = req
            .extensions()
            .get::<CurrentTenant>()
            .ok_or(poem::error::NotFoundError)?;
        match Self::load(state, tenant, req.cookie()).await? {
            Some(signed_in) => Ok(signed_in),
            None => Err(poem::Error::from_status(
                poem::http::StatusCode::UNAUTHORIZED,
            )),
        }
    }
}

pub fn internal(e: impl std::fmt::Display) -> poem::Error {
    tracing::error!(error = %e, "request failed");
    poem::Error::from_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR)
}

/// A hashing error as an HTTP error: "busy" becomes 503, which the member listener shows as
/// 「ただいま混み合っています」; anything else is an internal error.
pub fn hash_error(e: crate::auth::password::HashError) -> poem::Error {
    match e {
        crate::auth::password::HashError::Busy => {
            poem::Error::from_status(poem::http::StatusCode::SERVICE_UNAVAILABLE)
        }
        crate::auth::password::HashError::Internal(e) => internal(e),
    }
}
