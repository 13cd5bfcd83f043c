//! API tokens for scripts: shown once, stored as SHA-256, expiring within a year, with the
//! creator's role or a narrower one, revocable.

use serde::Serialize;

use super::{FieldProblem, ServiceError};
use crate::auth::session::new_token;
use crate::ids::AdminId;
use crate::state::AppState;
use crate::store::{Actor, AdminRole, AuditEvent, NewApiToken};
use crate::tenant::Tenant;

/// The longest a token may live.
pub const MAX_DAYS: i64 = 365;
const MAX_NAME: usize = 50;

/// A new token: the secret is shown this once.
#[derive(Debug, Clone, Serialize)]
pub struct NewToken {
    pub id: String,
    pub token: String,
    pub expires_at: i64,
}

/// Creates a token for `admin` (whose role is `creator_role`) with `role` at most theirs.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    state: &AppState,
    tenant: &Tenant,
    admin: &AdminId,
    creator_role: AdminRole,
    name: &str,
    role: AdminRole,
    days: i64,
    from: (&str, &str),
) -> Result<NewToken, ServiceError> {
    let name = name.trim();
    let mut problems = Vec::new();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        problems.push(FieldProblem::new("name", "token_name"));
    }
    if !(1..=MAX_DAYS).contains(&days) {
        problems.push(FieldProblem::new("days", "token_days"));
    }
    if role > creator_role {
        problems.push(FieldProblem::new("role", "token_role"));
    }
    if !problems.is_empty() {
        return Err(ServiceError::Invalid(problems));
    }
    let (token, hash) = new_token();
    let expires_at = crate::store::now_unix() + days * 24 * 60 * 60;
    let id = state
        .store
        .create_api_token(
            &tenant.id,
            &NewApiToken {
                admin,
                name,
                token_hash: &hash,
                role,
                expires_at,
            },
        )
        .await?;
    state
        .store
        .audit(&AuditEvent {
            tenant: Some(&tenant.id),
            member_id: None,
            actor: Actor::Admin(admin),
            event: "api_token_created",
            ip: from.0,
            user_agent: from.1,
            detail: &format!("{name} ({})", role.as_str()),
            before: None,
            after: None,
        })
        .await?;
    Ok(NewToken {
        id,
        token: format!("pat_{token}"),
        expires_at,
    })
}

/// The society's tokens, newest first (role `admin` only).
pub async fn list(
    state: &AppState,
    tenant: &Tenant,
    by: &super::FullAdmin,
) -> Result<Vec<crate::store::ApiToken>, ServiceError> {
    let _ = by;
    Ok(state.store.api_tokens(&tenant.id).await?)
}

/// Revokes a token at once (role `admin` only).
pub async fn revoke(
    state: &AppState,
    tenant: &Tenant,
    by: &super::FullAdmin,
    id: &str,
) -> Result<(), ServiceError> {
    if !state.store.revoke_api_token(&tenant.id, id).await? {
        return Err(ServiceError::NotFound);
    }
    let acting = by.acting();
    state
        .store
        .audit(&AuditEvent {
            tenant: Some(&tenant.id),
            member_id: None,
            actor: Actor::Admin(&acting.admin),
            event: "api_token_revoked",
            ip: &acting.ip,
            user_agent: &acting.user_agent,
            detail: id,
            before: None,
            after: None,
        })
        .await?;
    Ok(())
}
