//! Admin accounts: invitations (a one-time link, 24 hours, stored hashed) and accepting
//! one by setting the first password. Signing in is the shared sign-in machine (see
//! `web::admin::signin`).

use serde::Serialize;

use super::{tenant_url, FieldProblem, ServiceError};
use crate::auth::session::{new_token, token_hash};
use crate::ids::AdminId;
use crate::mail::EmailAddress;
use crate::member::policy::check_password;
use crate::state::AppState;
use crate::store::{Actor, AdminRole, AdminState, AuditEvent, StoreError};
use crate::tenant::settings::PasswordPolicy;
use crate::tenant::{MfaMethod, Tenant};

/// How long an invitation link works.
pub const INVITATION_SECS: i64 = 24 * 60 * 60;
/// Admins' passwords are at least this long, whatever the tenant allows members.
pub const ADMIN_MIN_PASSWORD: u32 = 12;

/// The second factors an admin may register: never e-mail codes.
pub const ADMIN_METHODS: [MfaMethod; 2] = [MfaMethod::Passkey, MfaMethod::Totp];

/// The kind of factor an admin sets up: the one chosen, if admins may hold it; else an
/// authenticator app.
pub fn admin_method(chosen: Option<&str>) -> MfaMethod {
    ADMIN_METHODS
        .into_iter()
        .find(|m| chosen == Some(m.as_str()))
        .unwrap_or(MfaMethod::Totp)
}

/// An admin invited: who, and the link that sets their account up (shown once).
#[derive(Debug, Clone, Serialize)]
pub struct Invitation {
    pub admin_id: AdminId,
    pub setup_url: String,
}

/// The tenant's password rules with the admins' minimum length.
pub fn password_policy(tenant: &Tenant) -> PasswordPolicy {
    let mut policy = tenant.settings.password.clone();
    policy.min_length = policy.min_length.max(ADMIN_MIN_PASSWORD);
    policy.max_length = policy.max_length.max(policy.min_length);
    policy
}

/// Who acts on an admin account: another admin, or the platform (command line, demo).
fn actor<'a>(by: Option<&'a super::FullAdmin>) -> (Actor<'a>, &'a str, &'a str) {
    match by {
        Some(by) => (
            Actor::Admin(&by.acting().admin),
            by.acting().ip.as_str(),
            by.acting().user_agent.as_str(),
        ),
        None => (Actor::System, "", ""),
    }
}

/// An admin acts on another admin's account only: their own role, state and factors are
/// changed by someone else, so no one widens or keeps their own grant.
fn not_self(by: Option<&super::FullAdmin>, id: &AdminId) -> Result<(), ServiceError> {
    match by {
        Some(by) if by.acting().admin == *id => Err(ServiceError::Conflict("admin_self")),
        _ => Ok(()),
    }
}

/// Stores a fresh invitation link for `admin` (earlier ones are void) and returns it.
async fn new_invitation_link(
    state: &AppState,
    tenant: &Tenant,
    admin: &AdminId,
) -> Result<String, ServiceError> {
    let (token, hash) = new_token();
    let expires = crate::store::now_unix() + INVITATION_SECS;
    state
        .store
        .create_invitation(&tenant.id, admin, &hash, expires)
        .await?;
    Ok(format!(
        "{}/admin/invite?token={token}",
        tenant_url(state, tenant)
    ))
}

/// Creates an invited admin and mails the invitation link. `by` is the admin who invites,
/// or None for the platform (command line, demo set-up). An address that is still
/// invited (the link expired, or the factor was never registered) is invited afresh: the
/// earlier links stop working. An address of an active or disabled admin is a conflict.
pub async fn invite(
    state: &AppState,
    tenant: &Tenant,
    email: &str,
    role: AdminRole,
    by: Option<&super::FullAdmin>,
) -> Result<Invitation, ServiceError> {
    let address = EmailAddress::parse(email.trim())
        .map_err(|_| ServiceError::Invalid(vec![FieldProblem::new("email", "email_invalid")]))?;
    let email = address.as_str().to_lowercase();
    let admin_id = match state.store.create_admin(&tenant.id, &email, role).await {
        Ok(id) => id,
        Err(StoreError::Conflict(_)) => {
            match state.store.admin_by_email(&tenant.id, &email).await? {
                Some(a) if a.state == AdminState::Invited => {
                    state
                        .store
                        .set_invited_admin_role(&tenant.id, &a.id, role)
                        .await?;
                    a.id
                }
                _ => return Err(ServiceError::Conflict("conflict_email")),
            }
        }
        Err(e) => return Err(e.into()),
    };
    let setup_url = new_invitation_link(state, tenant, &admin_id).await?;
    let mut mail = tera::Context::new();
    mail.insert("url", &setup_url);
    mail.insert("role", role.as_str());
    if let Err(error) = state
        .mailer
        .send(&state.store, tenant, &address, "admin_invitation", mail)
        .await
    {
        tracing::error!(%error, "queueing an admin invitation failed");
    }
    let (actor, ip, ua) = actor(by);
    let event = AuditEvent {
        tenant: Some(&tenant.id),
        member_id: None,
        actor,
        event: "admin_invited",
        ip,
        user_agent: ua,
        detail: &format!("{email} ({})", role.as_str()),
        before: None,
        after: None,
    };
    state.store.audit(&event).await?;
    Ok(Invitation {
        admin_id,
        setup_url,
    })
}

/// The problems of a first password: the tenant's rules with the admins' minimum length,
/// and the confirmation.
pub fn password_problems(
    tenant: &Tenant,
    email: &str,
    password: &str,
    confirm: &str,
) -> Vec<FieldProblem> {
    let mut problems: Vec<FieldProblem> =
        match check_password(&password_policy(tenant), password, Some(email)) {
            Ok(()) => Vec::new(),
            Err(rules) => rules
                .iter()
                .map(|r| FieldProblem {
                    field: "password",
                    code: "password",
                    message: Some(r.message()),
                })
                .collect(),
        };
    if password != confirm {
        problems.push(FieldProblem::new("password_confirm", "password_mismatch"));
    }
    problems
}

/// Accepts an invitation: the link is spent, the first password set and the kind of second
/// factor (`totp` or `passkey`) chosen, at once. Returns the admin, who goes on to register
/// that factor.
pub async fn accept(
    state: &AppState,
    tenant: &Tenant,
    token: &str,
    password: &str,
    confirm: &str,
    method: &str,
) -> Result<AdminId, ServiceError> {
    let hash_of_token = token_hash(token);
    let Some(admin) = state.store.invitation(&tenant.id, &hash_of_token).await? else {
        return Err(ServiceError::NotFound);
    };
    let mut problems = password_problems(tenant, &admin.email, password, confirm);
    if !ADMIN_METHODS.iter().any(|m| m.as_str() == method) {
        problems.push(FieldProblem::new("mfa_method", "mfa_method_invalid"));
    }
    if !problems.is_empty() {
        return Err(ServiceError::Invalid(problems));
    }
    let hash = state.hasher.hash(password).await?;
    state
        .store
        .accept_invitation(&tenant.id, &hash_of_token, &hash, method)
        .await?
        .ok_or(ServiceError::NotFound)
}

/// The society's admins, by address (role `admin` only).
pub async fn list(
    state: &AppState,
    tenant: &Tenant,
    by: &super::FullAdmin,
) -> Result<Vec<crate::store::Admin>, ServiceError> {
    let _ = by;
    Ok(state.store.admins(&tenant.id).await?)
}

/// Each admin with whether they hold a second factor (what 「二要素認証リセット」 needs).
pub async fn with_factors(
    state: &AppState,
    tenant: &Tenant,
    admins: Vec<crate::store::Admin>,
) -> Result<Vec<(crate::store::Admin, bool)>, ServiceError> {
    let held = state.store.admins_with_factors(&tenant.id).await?;
    Ok(admins
        .into_iter()
        .map(|a| {
            let has = held.contains(a.id.as_str());
            (a, has)
        })
        .collect())
}

/// Changes another admin's role, or disables or enables them. An admin's own account is
/// changed by another admin only. The society always keeps one active `admin`: a change
/// that would leave none is refused and changes nothing. A disabled admin's console
/// sessions end and their API tokens are revoked at once; enabling them again brings
/// neither back.
pub async fn update(
    state: &AppState,
    tenant: &Tenant,
    by: &super::FullAdmin,
    id: &AdminId,
    role: AdminRole,
    disabled: bool,
) -> Result<crate::store::Admin, ServiceError> {
    let Some(before) = state.store.admin(&tenant.id, id).await? else {
        return Err(ServiceError::NotFound);
    };
    not_self(Some(by), id)?;
    if !state
        .store
        .update_admin(&tenant.id, id, role, disabled)
        .await?
    {
        return Err(ServiceError::Conflict("last_admin"));
    }
    let after = state
        .store
        .admin(&tenant.id, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let acting = by.acting();
    let describe = |a: &crate::store::Admin| format!("{} {}", a.role.as_str(), a.state.as_str());
    let (was, now) = (describe(&before), describe(&after));
    if was != now {
        state
            .store
            .audit(&AuditEvent {
                tenant: Some(&tenant.id),
                member_id: None,
                actor: Actor::Admin(&acting.admin),
                event: "admin_updated",
                ip: &acting.ip,
                user_agent: &acting.user_agent,
                detail: &after.email,
                before: Some(&was),
                after: Some(&now),
            })
            .await?;
    }
    Ok(after)
}

/// Mails an admin that another admin (or the platform) changed how they sign in.
async fn notify_admin(
    state: &AppState,
    tenant: &Tenant,
    admin: &crate::store::Admin,
    what: &str,
    url: Option<&str>,
    by: &str,
) {
    let Ok(to) = EmailAddress::parse(&admin.email) else {
        return;
    };
    let mut mail = tera::Context::new();
    mail.insert("what", what);
    mail.insert("url", url.unwrap_or(""));
    mail.insert("by", by);
    mail.insert(
        "at",
        &crate::web::pages::date_time(crate::store::now_unix()),
    );
    if let Err(error) = state
        .mailer
        .send(&state.store, tenant, &to, "admin_notice", mail)
        .await
    {
        tracing::error!(%error, "queueing an admin notice failed");
    }
}

/// The address of the acting admin, as notices name them.
async fn acting_name(
    state: &AppState,
    tenant: &Tenant,
    by: Option<&super::FullAdmin>,
) -> Result<String, ServiceError> {
    Ok(match by {
        Some(by) => state
            .store
            .admin(&tenant.id, by.acting().admin.as_str())
            .await?
            .map(|a| a.email)
            .unwrap_or_default(),
        None => "システム管理者".to_owned(),
    })
}

async fn audit_admin_action(
    state: &AppState,
    tenant: &Tenant,
    by: Option<&super::FullAdmin>,
    event: &str,
    admin: &crate::store::Admin,
) -> Result<(), ServiceError> {
    let (actor, ip, ua) = actor(by);
    state
        .store
        .audit(&AuditEvent {
            tenant: Some(&tenant.id),
            member_id: None,
            actor,
            event,
            ip,
            user_agent: ua,
            detail: &admin.email,
            before: None,
            after: None,
        })
        .await?;
    Ok(())
}

/// 「ロック解除」 of another admin: the lock is lifted and the failure count starts again;
/// the admin is told by mail. `by` None is the platform (`portal admin unlock`).
pub async fn unlock(
    state: &AppState,
    tenant: &Tenant,
    by: Option<&super::FullAdmin>,
    id: &AdminId,
) -> Result<crate::store::Admin, ServiceError> {
    let Some(admin) = state.store.admin(&tenant.id, id).await? else {
        return Err(ServiceError::NotFound);
    };
    not_self(by, id)?;
    state.store.unlock_admin(&tenant.id, id).await?;
    audit_admin_action(state, tenant, by, "admin_unlocked", &admin).await?;
    let name = acting_name(state, tenant, by).await?;
    notify_admin(state, tenant, &admin, "unlocked", None, &name).await;
    state
        .store
        .admin(&tenant.id, id)
        .await?
        .ok_or(ServiceError::NotFound)
}

/// What a factor reset hands back: the admin as they are now and their new link.
#[derive(Debug, Clone)]
pub struct FactorsReset {
    pub admin: crate::store::Admin,
    pub setup_url: String,
}

/// 「二要素認証リセット」 of another admin: their authenticator apps and passkeys are
/// removed, their console sessions and sign-ins in progress end, and they are `invited`
/// again: the password alone opens nothing, and a fresh invitation link (mailed to them)
/// sets a new password and a new factor. `by` None is the platform
/// (`portal admin reset-factors`). A disabled admin stays disabled.
pub async fn reset_factors(
    state: &AppState,
    tenant: &Tenant,
    by: Option<&super::FullAdmin>,
    id: &AdminId,
) -> Result<FactorsReset, ServiceError> {
    let Some(admin) = state.store.admin(&tenant.id, id).await? else {
        return Err(ServiceError::NotFound);
    };
    not_self(by, id)?;
    state.store.reset_admin_factors(&tenant.id, id).await?;
    // A disabled admin gets no link now: enabled again, they are invited afresh.
    let setup_url = if admin.state == AdminState::Disabled {
        String::new()
    } else {
        new_invitation_link(state, tenant, id).await?
    };
    audit_admin_action(state, tenant, by, "admin_factors_reset", &admin).await?;
    let name = acting_name(state, tenant, by).await?;
    if !setup_url.is_empty() {
        notify_admin(
            state,
            tenant,
            &admin,
            "factors_reset",
            Some(&setup_url),
            &name,
        )
        .await;
    }
    let admin = state
        .store
        .admin(&tenant.id, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    Ok(FactorsReset { admin, setup_url })
}
