//! Society admins: accounts, invitations, console sessions and API tokens. Every query
//! names the tenant: an admin of one society does not exist for another.

use sqlx::FromRow;

use super::{now_unix, on_pool, on_tx, Store, StoreError, StoreResult};
use crate::ids::AdminId;
use crate::tenant::TenantId;

/// What an admin may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminRole {
    /// Members and the audit log only.
    Operator,
    /// Everything, including settings and other admins.
    Admin,
}

impl AdminRole {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(AdminRole::Admin),
            "operator" => Some(AdminRole::Operator),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::Admin => "admin",
            AdminRole::Operator => "operator",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    /// Invited: no password yet, or no second factor yet. Only the sign-in opened by an
    /// invitation link goes on from here.
    Invited,
    Active,
    Disabled,
}

impl AdminState {
    fn parse(s: &str) -> Self {
        match s {
            "invited" => AdminState::Invited,
            "active" => AdminState::Active,
            _ => AdminState::Disabled,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AdminState::Invited => "invited",
            AdminState::Active => "active",
            AdminState::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub id: AdminId,
    pub tenant_id: TenantId,
    pub email: String,
    pub role: AdminRole,
    pub state: AdminState,
    pub password_hash: String,
    pub password_created_at: i64,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
    pub created_at: i64,
    /// The kind of second factor chosen when the invitation was accepted (`totp` or
    /// `passkey`).
    pub mfa_method: Option<String>,
}

impl Admin {
    pub fn is_locked(&self, now: i64) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }
}

#[derive(FromRow)]
struct AdminRow {
    id: String,
    tenant_id: String,
    email: String,
    role: String,
    state: String,
    password_hash: String,
    password_created_at: i64,
    failed_logins: i64,
    locked_until: Option<i64>,
    created_at: i64,
    mfa_method: Option<String>,
}

impl From<AdminRow> for Admin {
    fn from(r: AdminRow) -> Self {
        Admin {
            id: AdminId::from_db(r.id),
            tenant_id: TenantId::from_db(r.tenant_id),
            email: r.email,
            // An unknown role in the database grants the least.
            role: AdminRole::parse(&r.role).unwrap_or(AdminRole::Operator),
            state: AdminState::parse(&r.state),
            password_hash: r.password_hash,
            password_created_at: r.password_created_at,
            failed_logins: r.failed_logins,
            locked_until: r.locked_until,
            created_at: r.created_at,
            mfa_method: r.mfa_method,
        }
    }
}

const ADMIN_COLUMNS: &str = "id, tenant_id, email, role, state, password_hash, \
    password_created_at, failed_logins, locked_until, created_at, mfa_method";

/// A console session.
#[derive(Debug, Clone, FromRow)]
pub struct AdminSession {
    pub admin_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub authenticated_at: i64,
    pub auth_method: String,
}

/// An API token as lists show it (never the token itself).
#[derive(Debug, Clone, FromRow)]
pub struct ApiToken {
    pub id: String,
    pub admin_id: String,
    pub name: String,
    pub role: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

pub struct NewApiToken<'a> {
    pub admin: &'a AdminId,
    pub name: &'a str,
    pub token_hash: &'a str,
    pub role: AdminRole,
    pub expires_at: i64,
}

impl Store {
    /// Creates an invited admin; an address already used in the tenant is a conflict.
    pub async fn create_admin(
        &self,
        tenant: &TenantId,
        email: &str,
        role: AdminRole,
    ) -> StoreResult<AdminId> {
        let id = AdminId::generate();
        let now = now_unix();
        let result = on_pool!(&self.pool, p => {
            sqlx::query(
                "INSERT INTO admins (id, tenant_id, email, role, state, password_hash, \
                 password_created_at, failed_logins, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 'invited', '', $5, 0, $5, $5)",
            )
            .bind(id.as_str())
            .bind(tenant.as_str())
            .bind(email)
            .bind(role.as_str())
            .bind(now)
            .execute(p)
            .await
            .map(|_| ())
        });
        match result {
            Ok(()) => Ok(id),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => Err(
                StoreError::Conflict("an admin with this address exists".into()),
            ),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn admin(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<Admin>> {
        let sql = format!("SELECT {ADMIN_COLUMNS} FROM admins WHERE tenant_id = $1 AND id = $2");
        let row: Option<AdminRow> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql).bind(tenant.as_str()).bind(id).fetch_optional(p).await
        })?;
        Ok(row.map(Admin::from))
    }

    pub async fn admin_by_email(
        &self,
        tenant: &TenantId,
        email: &str,
    ) -> StoreResult<Option<Admin>> {
        let sql = format!("SELECT {ADMIN_COLUMNS} FROM admins WHERE tenant_id = $1 AND email = $2");
        let row: Option<AdminRow> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql).bind(tenant.as_str()).bind(email).fetch_optional(p).await
        })?;
        Ok(row.map(Admin::from))
    }

    /// The tenant's admins, by address.
    pub async fn admins(&self, tenant: &TenantId) -> StoreResult<Vec<Admin>> {
        let sql = format!("SELECT {ADMIN_COLUMNS} FROM admins WHERE tenant_id = $1 ORDER BY email");
        let rows: Vec<AdminRow> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql).bind(tenant.as_str()).fetch_all(p).await
        })?;
        Ok(rows.into_iter().map(Admin::from).collect())
    }

    /// The ids of the tenant's admins that hold a second factor.
    pub async fn admins_with_factors(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<std::collections::HashSet<String>> {
        let rows: Vec<(String,)> = on_pool!(&self.pool, p => {
            sqlx::query_as("SELECT DISTINCT admin_id FROM admin_devices WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_all(p)
                .await
        })?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Stores a new invitation link (its hash); earlier unused links of the admin are void.
    pub async fn create_invitation(
        &self,
        tenant: &TenantId,
        admin: &AdminId,
        token_hash: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        let now = now_unix();
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, c => {
            sqlx::query(
                "UPDATE admin_invitations SET used_at = $3 \
                 WHERE tenant_id = $1 AND admin_id = $2 AND used_at IS NULL",
            )
            .bind(tenant.as_str())
            .bind(admin.as_str())
            .bind(now)
            .execute(&mut *c)
            .await?;
            sqlx::query(
                "INSERT INTO admin_invitations (token_hash, tenant_id, admin_id, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token_hash)
            .bind(tenant.as_str())
            .bind(admin.as_str())
            .bind(now)
            .bind(expires_at)
            .execute(&mut *c)
            .await?;
            Ok::<_, sqlx::Error>(())
        })?;
        tx.commit().await
    }

    /// The invited admin of a link that is unused and unexpired.
    pub async fn invitation(
        &self,
        tenant: &TenantId,
        token_hash: &str,
    ) -> StoreResult<Option<Admin>> {
        let id: Option<(String,)> = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT i.admin_id FROM admin_invitations i JOIN admins a ON a.id = i.admin_id \
                 WHERE i.tenant_id = $1 AND i.token_hash = $2 AND i.used_at IS NULL \
                 AND i.expires_at > $3 AND a.tenant_id = $1 AND a.state = 'invited'",
            )
            .bind(tenant.as_str())
            .bind(token_hash)
            .bind(now_unix())
            .fetch_optional(p)
            .await
        })?;
        match id {
            Some((id,)) => self.admin(tenant, &id).await,
            None => Ok(None),
        }
    }

    /// Spends an invitation link and sets the admin's first password and the kind of
    /// second factor they will register, in one transaction: of two tabs submitting one
    /// link, one wins. Returns the admin, or None if the link is no longer valid. The
    /// admin stays `invited` until the sign-in this link opened has registered a factor
    /// ([`Store::activate_admin`]): a password alone never makes an admin.
    pub async fn accept_invitation(
        &self,
        tenant: &TenantId,
        token_hash: &str,
        password_hash: &str,
        mfa_method: &str,
    ) -> StoreResult<Option<AdminId>> {
        let now = now_unix();
        let mut tx = self.begin().await?;
        let id = on_tx!(&mut tx, c => {
            let row: Option<(String,)> = sqlx::query_as(
                "UPDATE admin_invitations SET used_at = $3 \
                 WHERE tenant_id = $1 AND token_hash = $2 AND used_at IS NULL AND expires_at > $3 \
                 RETURNING admin_id",
            )
            .bind(tenant.as_str())
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&mut *c)
            .await?;
            match row {
                Some((id,)) => {
                    let n = sqlx::query(
                        "UPDATE admins SET password_hash = $3, password_created_at = $4, \
                         updated_at = $4, mfa_method = $5 \
                         WHERE tenant_id = $1 AND id = $2 AND state = 'invited'",
                    )
                    .bind(tenant.as_str())
                    .bind(&id)
                    .bind(password_hash)
                    .bind(now)
                    .bind(mfa_method)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                    Ok::<_, sqlx::Error>((n == 1).then(|| AdminId::from_db(id)))
                }
                None => Ok(None),
            }
        })?;
        tx.commit().await?;
        Ok(id)
    }

    /// An invited admin who now holds a second factor becomes active (the end of the
    /// sign-in their invitation link opened). True if they are active now.
    pub async fn activate_admin(&self, tenant: &TenantId, id: &AdminId) -> StoreResult<bool> {
        let now = now_unix();
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE admins SET state = 'active', updated_at = $3 \
                 WHERE tenant_id = $1 AND id = $2 AND state = 'invited' AND password_hash <> '' \
                 AND EXISTS (SELECT 1 FROM admin_devices d WHERE d.tenant_id = $1 AND d.admin_id = $2)",
            )
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(now)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(self
            .admin(tenant, id.as_str())
            .await?
            .is_some_and(|a| a.state == AdminState::Active))
    }

    /// Changes the role an invited admin is invited with (a fresh invitation).
    pub async fn set_invited_admin_role(
        &self,
        tenant: &TenantId,
        id: &AdminId,
        role: AdminRole,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE admins SET role = $3, updated_at = $4 \
                 WHERE tenant_id = $1 AND id = $2 AND state = 'invited'",
            )
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(role.as_str())
            .bind(now_unix())
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Lifts an admin's lock; the failure count starts again.
    pub async fn unlock_admin(&self, tenant: &TenantId, id: &AdminId) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE admins SET failed_logins = 0, locked_until = NULL, updated_at = $3 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(now_unix())
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Removes every second factor of an admin in one transaction, ends their console
    /// sessions and sign-ins in progress, voids their invitation links and makes them
    /// `invited` again (a disabled admin stays disabled). The lock is lifted too: the
    /// fresh invitation is how they get back in.
    pub async fn reset_admin_factors(&self, tenant: &TenantId, id: &AdminId) -> StoreResult<()> {
        let now = now_unix();
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, c => {
            for sql in [
                "DELETE FROM admin_devices WHERE tenant_id = $1 AND admin_id = $2",
                "DELETE FROM admin_sessions WHERE tenant_id = $1 AND admin_id = $2",
                "DELETE FROM login_flows WHERE tenant_id = $1 AND admin_id = $2",
            ] {
                sqlx::query(sql)
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .execute(&mut *c)
                    .await?;
            }
            sqlx::query(
                "UPDATE admins SET state = CASE WHEN state = 'disabled' THEN 'disabled' \
                 ELSE 'invited' END, failed_logins = 0, locked_until = NULL, updated_at = $3 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(now)
            .execute(&mut *c)
            .await?;
            Ok::<_, sqlx::Error>(())
        })?;
        tx.commit().await
    }

    /// Changes the kind of second factor an admin will set up (before they hold one).
    pub async fn set_admin_mfa_method(
        &self,
        tenant: &TenantId,
        id: &AdminId,
        mfa_method: &str,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE admins SET mfa_method = $3, updated_at = $4 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(mfa_method)
            .bind(now_unix())
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Changes an admin's role or disables/enables them, refusing to leave the tenant
    /// without an active `admin`. Returns false (and changes nothing) when it would.
    pub async fn update_admin(
        &self,
        tenant: &TenantId,
        admin: &AdminId,
        role: AdminRole,
        disabled: bool,
    ) -> StoreResult<bool> {
        let now = now_unix();
        let mut tx = self.begin().await?;
        let ok = on_tx!(&mut tx, c => {
            sqlx::query(
                "UPDATE admins SET role = $3, \
                 state = CASE WHEN $4 THEN 'disabled' \
                   WHEN state = 'disabled' THEN CASE WHEN EXISTS (SELECT 1 FROM admin_devices d \
                     WHERE d.tenant_id = $1 AND d.admin_id = $2) THEN 'active' ELSE 'invited' END \
                   ELSE state END, updated_at = $5 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(admin.as_str())
            .bind(role.as_str())
            .bind(disabled)
            .bind(now)
            .execute(&mut *c)
            .await?;
            let left: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM admins WHERE tenant_id = $1 AND role = 'admin' \
                 AND state = 'active'",
            )
            .bind(tenant.as_str())
            .fetch_one(&mut *c)
            .await?;
            if disabled {
                // Disabled means every grant ends: console sessions and API tokens, for
                // good (enabling the admin again does not bring a token back).
                sqlx::query("DELETE FROM admin_sessions WHERE tenant_id = $1 AND admin_id = $2")
                    .bind(tenant.as_str())
                    .bind(admin.as_str())
                    .execute(&mut *c)
                    .await?;
                sqlx::query(
                    "UPDATE admin_api_tokens SET revoked_at = $3 \
                     WHERE tenant_id = $1 AND admin_id = $2 AND revoked_at IS NULL",
                )
                .bind(tenant.as_str())
                .bind(admin.as_str())
                .bind(now)
                .execute(&mut *c)
                .await?;
            }
            Ok::<_, sqlx::Error>(left > 0)
        })?;
        if ok {
            tx.commit().await?;
        }
        // Dropped without commit: rolled back.
        Ok(ok)
    }

    // --- console sessions ----------------------------------------------------------------

    pub async fn create_admin_session(
        &self,
        tenant: &TenantId,
        token_hash: &str,
        admin: &AdminId,
        auth_method: &str,
    ) -> StoreResult<()> {
        let now = now_unix();
        on_pool!(&self.pool, p => {
            sqlx::query(
                "INSERT INTO admin_sessions (token_hash, tenant_id, admin_id, created_at, \
                 last_seen_at, authenticated_at, auth_method) VALUES ($1, $2, $3, $4, $4, $4, $5)",
            )
            .bind(token_hash)
            .bind(tenant.as_str())
            .bind(admin.as_str())
            .bind(now)
            .bind(auth_method)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn admin_session(
        &self,
        tenant: &TenantId,
        token_hash: &str,
    ) -> StoreResult<Option<AdminSession>> {
        let row = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT admin_id, created_at, last_seen_at, authenticated_at, auth_method \
                 FROM admin_sessions WHERE tenant_id = $1 AND token_hash = $2",
            )
            .bind(tenant.as_str())
            .bind(token_hash)
            .fetch_optional(p)
            .await
        })?;
        Ok(row)
    }

    pub async fn touch_admin_session(
        &self,
        tenant: &TenantId,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE admin_sessions SET last_seen_at = $3 WHERE tenant_id = $1 AND token_hash = $2",
            )
            .bind(tenant.as_str())
            .bind(token_hash)
            .bind(now)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn delete_admin_session(
        &self,
        tenant: &TenantId,
        token_hash: &str,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query("DELETE FROM admin_sessions WHERE tenant_id = $1 AND token_hash = $2")
                .bind(tenant.as_str())
                .bind(token_hash)
                .execute(p)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    // --- API tokens ----------------------------------------------------------------------

    pub async fn create_api_token(
        &self,
        tenant: &TenantId,
        t: &NewApiToken<'_>,
    ) -> StoreResult<String> {
        let id = crate::random_token(16);
        on_pool!(&self.pool, p => {
            sqlx::query(
                "INSERT INTO admin_api_tokens (id, tenant_id, admin_id, name, token_hash, role, \
                 created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&id)
            .bind(tenant.as_str())
            .bind(t.admin.as_str())
            .bind(t.name)
            .bind(t.token_hash)
            .bind(t.role.as_str())
            .bind(now_unix())
            .bind(t.expires_at)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(id)
    }

    /// The token with this hash in this tenant, if it is neither revoked nor expired and
    /// its admin is active; its last use is recorded. Its `role` is the one it acts with
    /// now: the narrower of the token's own role and its admin's current role, so a token
    /// never outlasts a demotion.
    pub async fn use_api_token(
        &self,
        tenant: &TenantId,
        token_hash: &str,
    ) -> StoreResult<Option<ApiToken>> {
        let now = now_unix();
        let row: Option<ApiToken> = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT t.id, t.admin_id, t.name, \
                 CASE WHEN t.role = 'admin' AND a.role = 'admin' THEN 'admin' ELSE 'operator' END \
                 AS role, t.created_at, t.expires_at, \
                 t.last_used_at, t.revoked_at FROM admin_api_tokens t \
                 JOIN admins a ON a.id = t.admin_id AND a.tenant_id = t.tenant_id \
                 WHERE t.tenant_id = $1 AND t.token_hash = $2 AND t.revoked_at IS NULL \
                 AND t.expires_at > $3 AND a.state = 'active'",
            )
            .bind(tenant.as_str())
            .bind(token_hash)
            .bind(now)
            .fetch_optional(p)
            .await
        })?;
        if let Some(token) = &row {
            // At most once a minute, so that a busy script does not write on every call.
            if token.last_used_at.is_none_or(|at| now - at >= 60) {
                on_pool!(&self.pool, p => {
                    sqlx::query(
                        "UPDATE admin_api_tokens SET last_used_at = $3 WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant.as_str())
                    .bind(&token.id)
                    .bind(now)
                    .execute(p)
                    .await
                    .map(|_| ())
                })?;
            }
        }
        Ok(row)
    }

    /// The tenant's tokens, newest first.
    pub async fn api_tokens(&self, tenant: &TenantId) -> StoreResult<Vec<ApiToken>> {
        let rows = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT id, admin_id, name, role, created_at, expires_at, last_used_at, revoked_at \
                 FROM admin_api_tokens WHERE tenant_id = $1 ORDER BY created_at DESC, id",
            )
            .bind(tenant.as_str())
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
    }

    /// Revokes a token; false if the tenant has no such unrevoked token.
    pub async fn revoke_api_token(&self, tenant: &TenantId, id: &str) -> StoreResult<bool> {
        let n = on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE admin_api_tokens SET revoked_at = $3 \
                 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL",
            )
            .bind(tenant.as_str())
            .bind(id)
            .bind(now_unix())
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }
}

/// A sealed letter waiting to be printed.
#[derive(Debug, Clone, FromRow)]
pub struct StoredLetter {
    pub id: String,
    pub member_id: String,
    pub sealed: String,
}

impl Store {
    /// Keeps sealed letters (one per member, in order) under one batch id until
    /// `expires_at`, for the admin who issued them.
    pub async fn store_letters(
        &self,
        tenant: &TenantId,
        admin: &AdminId,
        batch_id: &str,
        letters: &[(String, String, String)],
        expires_at: i64,
    ) -> StoreResult<()> {
        let now = now_unix();
        let mut tx = self.begin().await?;
        on_tx!(&mut tx, c => {
            for (position, (id, member_id, sealed)) in letters.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO member_letters (id, tenant_id, batch_id, member_id, position, \
                     sealed, created_at, expires_at, admin_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(id)
                .bind(tenant.as_str())
                .bind(batch_id)
                .bind(member_id)
                .bind(position as i64)
                .bind(sealed)
                .bind(now)
                .bind(expires_at)
                .bind(admin.as_str())
                .execute(&mut *c)
                .await?;
            }
            // Letters past their time are forgotten whenever new ones are made.
            sqlx::query("DELETE FROM member_letters WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *c)
                .await?;
            Ok::<_, sqlx::Error>(())
        })?;
        tx.commit().await
    }

    /// Hands out the unexpired letters of a batch once, to the admin who issued them: one
    /// statement removes and returns them, so of two requests at once only one gets them.
    /// In order. `Err(Forbidden)`-worthy cases (another admin's batch) come back as
    /// `Ok(None)`.
    pub async fn take_letters(
        &self,
        tenant: &TenantId,
        admin: &AdminId,
        batch_id: &str,
    ) -> StoreResult<Option<Vec<StoredLetter>>> {
        let theirs: i64 = on_pool!(&self.pool, p => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM member_letters WHERE tenant_id = $1 AND batch_id = $2 \
                 AND (admin_id IS NULL OR admin_id <> $3)",
            )
            .bind(tenant.as_str())
            .bind(batch_id)
            .bind(admin.as_str())
            .fetch_one(p)
            .await
        })?;
        if theirs > 0 {
            return Ok(None);
        }
        let mut rows: Vec<(String, String, String, i64)> = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "DELETE FROM member_letters \
                 WHERE tenant_id = $1 AND batch_id = $2 AND expires_at > $3 AND admin_id = $4 \
                 RETURNING id, member_id, sealed, position",
            )
            .bind(tenant.as_str())
            .bind(batch_id)
            .bind(now_unix())
            .bind(admin.as_str())
            .fetch_all(p)
            .await
        })?;
        rows.sort_by_key(|r| r.3);
        Ok(Some(
            rows.into_iter()
                .map(|(id, member_id, sealed, _)| StoredLetter {
                    id,
                    member_id,
                    sealed,
                })
                .collect(),
        ))
    }
}
