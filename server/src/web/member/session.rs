//! The signed-in member of a request, loaded from the `portal_session` cookie.

use poem::web::cookie::CookieJar;
use poem::{FromRequest, Request, RequestBody};

use crate::auth::session::{cookie_token_hash, SESSION_COOKIE};
use crate::store::{Member, MemberState, Session};
use crate::web::{internal, AppState, CurrentTenant};

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
        let found = store
            .session_with_member(&tenant.id, &token_hash)
            .await
            .map_err(internal)?;
        let Some((session, member)) = found else {
            return Ok(None);
        };
        let now = crate::store::now_unix();
        let policy = &tenant.settings.session;
        let idle_secs = i64::from(policy.idle_timeout_minutes) * 60;
        let idle = now - session.last_seen_at > idle_secs;
        let too_old = now - session.created_at > i64::from(policy.absolute_timeout_minutes) * 60;
        if idle || too_old || member.state != MemberState::Active || member.is_locked(now) {
            store
                .delete_session(&tenant.id, &token_hash)
                .await
                .map_err(internal)?;
            return Ok(None);
        }
        if crate::auth::session::due_for_touch(session.last_seen_at, now, idle_secs) {
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
}

impl<'a> FromRequest<'a> for SignedIn {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let state = req.data::<std::sync::Arc<AppState>>().expect("AppState");
        let tenant = req
            .extensions()
            .get::<CurrentTenant>()
            .ok_or(poem::error::NotFoundError)?;
        match Self::load(state, tenant, req.cookie()).await? {
            Some(signed_in) => {
                tracing::Span::current().record("member", signed_in.member.id.as_str());
                Ok(signed_in)
            }
            None => Err(poem::Error::from_status(
                poem::http::StatusCode::UNAUTHORIZED,
            )),
        }
    }
}
