//! HTTP, split by who is served: `member/` (the member pages of a tenant host), `admin/`
//! (the society admin console and its JSON API, under `/admin` of the same host) and
//! `ops` (the operations listener). The sign-in machine (`signin`, `factor`, `totp`) is
//! shared by members and admins.

pub mod admin;
pub mod assets;
mod csrf;
pub mod edge;
pub mod factor;
pub mod member;
mod ops;
pub mod ops_api;
pub mod pages;
pub mod passkey;
pub mod signin;
mod tenant_host;
pub mod totp;

use std::sync::Arc;

use poem::middleware::CookieJarManager;
use poem::{EndpointExt, FromRequest, Request, RequestBody, Route};

pub use crate::state::AppState;
pub use ops::ops_app;
pub use tenant_host::CurrentTenant;

use crate::store::{Actor, Owner, Store};
use crate::tenant::Tenant;

/// The listener that tenant hosts reach. Every route runs with its tenant resolved.
pub fn member_app(state: Arc<AppState>) -> impl poem::Endpoint {
    let guard = Arc::new(csrf::Guard::new(
        state.csrf_key,
        state.config.secure_cookies(),
    ));
    let route = Route::new().nest("/admin", admin::routes(&state));
    member::routes(route)
        .around(move |next, req| csrf::verify(next, req, Arc::clone(&guard)))
        .around(tenant_host::resolve_tenant)
        .with(CookieJarManager::new())
        .around(edge::edge)
        .data(state)
}

/// Where a request comes from, for the audit log, and the CSRF token for its forms.
pub struct RequestMeta {
    /// The `Host` header as sent (it selected this tenant), for links in mail.
    pub host: String,
    pub ip: String,
    pub user_agent: String,
    /// The token for the page's forms, made only if the page has one.
    csrf: Option<csrf::FormToken>,
}

impl<'a> FromRequest<'a> for RequestMeta {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        Self::from_request_without_body(req).await
    }
}

impl RequestMeta {
    /// Where the request came from, as the service functions record it.
    pub fn requester(&self) -> crate::member::recovery::Requester {
        crate::member::recovery::Requester {
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
        }
    }

    /// The same, for code that holds the request but not its body.
    pub async fn from_request_without_body(req: &Request) -> poem::Result<Self> {
        let ip = match req.extensions().get::<edge::ClientIp>() {
            Some(client) => client.0.to_string(),
            None => match req.remote_addr().as_socket_addr() {
                Some(addr) => addr.ip().to_string(),
                None => "unknown".to_owned(),
            },
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
        let csrf = req.extensions().get::<csrf::FormToken>().cloned();
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
            csrf,
        })
    }

    /// The CSRF token every form of the page carries; the first call makes it (and the
    /// cookie it goes with). Empty outside the member listener (no form posts there).
    pub fn csrf_token(&self) -> &str {
        self.csrf.as_ref().map_or("", csrf::FormToken::get)
    }

    /// Writes an audit event of a member's own doing (or of nobody known, without a
    /// member); a failure to do so is logged, not shown to the member.
    pub async fn audit(
        &self,
        store: &Store,
        tenant: &Tenant,
        member_id: Option<&str>,
        event: &str,
        detail: &str,
    ) {
        let actor = match member_id {
            Some(id) => Actor::Member(id),
            None => Actor::Anonymous,
        };
        self.record(store, tenant, actor, member_id, event, detail, None)
            .await
    }

    /// Writes an audit event of a member's or an admin's own doing.
    pub async fn audit_by(
        &self,
        store: &Store,
        tenant: &Tenant,
        who: Owner<'_>,
        event: &str,
        detail: &str,
    ) {
        let (actor, member) = match who {
            Owner::Member(id) => (Actor::Member(id), Some(id)),
            Owner::Admin(id) => (Actor::Admin(id), None),
        };
        self.record(store, tenant, actor, member, event, detail, None)
            .await
    }

    /// Writes one audit event; `change` is the value before and after.
    #[allow(clippy::too_many_arguments)]
    pub async fn record(
        &self,
        store: &Store,
        tenant: &Tenant,
        actor: Actor<'_>,
        member_id: Option<&str>,
        event: &str,
        detail: &str,
        change: Option<(&str, &str)>,
    ) {
        let e = crate::store::AuditEvent {
            tenant: Some(&tenant.id),
            member_id,
            actor,
            event,
            ip: &self.ip,
            user_agent: &self.user_agent,
            detail,
            before: change.map(|c| c.0),
            after: change.map(|c| c.1),
        };
        if let Err(error) = store.audit(&e).await {
            tracing::error!(%error, event, "writing the audit log failed");
        }
    }
}

pub fn internal(e: impl std::fmt::Display) -> poem::Error {
    tracing::error!(error = %e, "request failed");
    poem::Error::from_status(poem::http::StatusCode::INTERNAL_SERVER_ERROR)
}

/// A hashing error as an HTTP error: "busy" becomes 503, which the tenant host shows as
/// 「ただいま混み合っています」; anything else is an internal error.
pub fn hash_error(e: crate::auth::password::HashError) -> poem::Error {
    match e {
        crate::auth::password::HashError::Busy => {
            poem::Error::from_status(poem::http::StatusCode::SERVICE_UNAVAILABLE)
        }
        crate::auth::password::HashError::Internal(e) => internal(e),
    }
}
