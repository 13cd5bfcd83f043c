//! Server-side sessions and sign-in flows behind opaque, host-only cookies.
//!
//! A cookie carries 256 random bits; the database keeps only their SHA-256, so a leaked
//! table opens no session. Cookies have no `Domain` attribute: one tenant's cookie never
//! reaches another tenant's host.

use poem::web::cookie::{Cookie, CookieJar, SameSite};
use sha2::{Digest, Sha256};

pub const SESSION_COOKIE: &str = "portal_session";
pub const FLOW_COOKIE: &str = "portal_flow";
/// The console's session and sign-in flow: cookies of their own, sent to `/admin` only.
pub const ADMIN_SESSION_COOKIE: &str = "portal_admin";
pub const ADMIN_FLOW_COOKIE: &str = "portal_admin_flow";

/// A new random token and the hash the database keeps of it.
pub fn new_token() -> (String, String) {
    let token = crate::random_token(32);
    let hash = token_hash(&token);
    (token, hash)
}

/// Whether `token` has the shape of a token from [`new_token`] (64 hex digits): anything
/// else is refused before any look-up.
pub fn is_token_shaped(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether a session last seen at `last_seen` is marked seen again at `now`, under an idle
/// timeout of `idle_secs`: once a tenth of the timeout has passed, and at least once a
/// minute. Page views then seldom write to the database, and an idle session ends at most
/// that much before its timeout, never after it.
pub fn due_for_touch(last_seen: i64, now: i64, idle_secs: i64) -> bool {
    now - last_seen >= (idle_secs / 10).clamp(1, 60)
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

/// A host-only cookie of the console, sent to `/admin` paths only.
pub fn admin_cookie(name: &str, value: &str, secure: bool, max_age_secs: Option<i64>) -> Cookie {
    let mut c = cookie(name, value, secure, max_age_secs);
    c.set_path("/admin");
    c
}

#[cfg(test)]
mod tests {
    use super::due_for_touch;

    #[test]
    fn sessions_are_touched_a_tenth_of_their_idle_time_apart_at_most_a_minute() {
        // 30 minutes idle: once a minute.
        assert!(!due_for_touch(1_000, 1_059, 30 * 60));
        assert!(due_for_touch(1_000, 1_060, 30 * 60));
        // 5 minutes idle: every 30 seconds.
        assert!(!due_for_touch(1_000, 1_029, 5 * 60));
        assert!(due_for_touch(1_000, 1_030, 5 * 60));
        // However short the timeout, never twice in the same second.
        assert!(!due_for_touch(1_000, 1_000, 5));
        assert!(due_for_touch(1_000, 1_001, 5));
    }
}
