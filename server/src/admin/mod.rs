//! What society admins do, one service function per action. The console pages and the
//! JSON API parse their input, call these and render the outcome; no rule lives in a
//! handler. Every function takes the acting admin ([`Acting`]) and writes the audit log.

pub mod accounts;
pub mod bulk_reset;
pub mod images;
pub mod import;
pub mod look;
pub mod members;
pub mod roster;
pub mod settings;
pub mod stats;
pub mod terms;
pub mod tokens;

use crate::ids::{AdminId, MemberId};
use crate::state::AppState;
use crate::store::{Actor, AdminRole, AuditEvent};
use crate::tenant::Tenant;

/// The admin an action is done by, and from where.
#[derive(Debug, Clone)]
pub struct Acting {
    pub admin: AdminId,
    pub role: AdminRole,
    pub ip: String,
    pub user_agent: String,
}

/// An [`Acting`] admin whose role is `admin`. Only [`Acting::require_admin`] makes one, so a
/// function that takes it cannot be reached by an operator.
#[derive(Debug, Clone)]
pub struct FullAdmin(Acting);

impl FullAdmin {
    pub fn acting(&self) -> &Acting {
        &self.0
    }
}

impl Acting {
    pub fn require_admin(&self) -> Result<FullAdmin, ServiceError> {
        match self.role {
            AdminRole::Admin => Ok(FullAdmin(self.clone())),
            AdminRole::Operator => Err(ServiceError::Forbidden),
        }
    }
}

/// Everything a service function needs.
pub struct Ctx<'a> {
    pub state: &'a AppState,
    pub tenant: &'a Tenant,
    pub acting: &'a Acting,
}

impl Ctx<'_> {
    /// Writes one audit event done by the acting admin; a failure is logged.
    pub async fn audit(
        &self,
        event: &str,
        member: Option<&MemberId>,
        detail: &str,
        change: Option<(&str, &str)>,
    ) {
        let e = AuditEvent {
            tenant: Some(&self.tenant.id),
            member_id: member.map(MemberId::as_str),
            actor: Actor::Admin(&self.acting.admin),
            event,
            ip: &self.acting.ip,
            user_agent: &self.acting.user_agent,
            detail,
            before: change.map(|c| c.0),
            after: change.map(|c| c.1),
        };
        if let Err(error) = self.state.store.audit(&e).await {
            tracing::error!(%error, event, "writing the audit log failed");
        }
    }
}

/// One field of the input that is wrong: the field's name and the key of its message
/// under `errors.` in the console's texts, or a message already written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: &'static str,
    pub code: &'static str,
    /// A message built by a policy (passwords); shown instead of the code's text.
    pub message: Option<String>,
}

impl FieldProblem {
    pub fn new(field: &'static str, code: &'static str) -> Self {
        Self {
            field,
            code,
            message: None,
        }
    }
}

/// Why an action did not happen. Nothing changed in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid input")]
    Invalid(Vec<FieldProblem>),
    #[error("not found")]
    NotFound,
    #[error("forbidden for this role")]
    Forbidden,
    /// The action conflicts with the data (key of the message under `errors.`).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("every password hasher is busy")]
    Busy,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for ServiceError {
    fn from(e: crate::store::StoreError) -> Self {
        ServiceError::Internal(e.into())
    }
}

impl From<crate::auth::password::HashError> for ServiceError {
    fn from(e: crate::auth::password::HashError) -> Self {
        match e {
            crate::auth::password::HashError::Busy => ServiceError::Busy,
            crate::auth::password::HashError::Internal(e) => {
                ServiceError::Internal(anyhow::anyhow!("{e}"))
            }
        }
    }
}

/// The public address of a tenant, from its own configured host (never from a request).
pub fn tenant_url(state: &AppState, tenant: &Tenant) -> String {
    let scheme = if state.config.secure_cookies() {
        "https"
    } else {
        "http"
    };
    let port = match (scheme, state.config.public_port()) {
        (_, None) => String::new(),
        ("https", Some(443)) | ("http", Some(80)) => String::new(),
        (_, Some(port)) => format!(":{port}"),
    };
    format!(
        "{scheme}://{}.{}{port}",
        tenant.slug, state.config.base_domain
    )
}
