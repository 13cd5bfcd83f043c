//! Members, their sessions and sign-in flows, terms acceptances and audit events. Every
//! query names the tenant: a member of one tenant is invisible from another.

use sqlx::FromRow;

use super::{now_unix, on_pool, Owner, Store, StoreError, StoreResult};
use crate::ids::MemberId;
use crate::member::search::{member_key, name_key};
use crate::tenant::TenantId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberState {
    /// Signs in with credentials from a letter (or a reset) and must replace them.
    Temporary,
    Active,
    Disabled,
}

impl MemberState {
    pub fn as_str(&self) -> &'static str {
        match self {
            MemberState::Temporary => "temporary",
            MemberState::Active => "active",
            MemberState::Disabled => "disabled",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "temporary" => MemberState::Temporary,
            "active" => MemberState::Active,
            _ => MemberState::Disabled,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Member {
    pub id: MemberId,
    pub tenant_id: TenantId,
    pub user_id: String,
    pub display_name: String,
    /// `YYYY-MM-DD`
    pub birth_date: String,
    pub email: String,
    pub password_hash: String,
    pub password_created_at: i64,
    pub state: MemberState,
    pub user_id_chosen: bool,
    pub email_reviewed: bool,
    pub email_confirmed: bool,
    pub mfa_method: Option<String>,
    /// A mailed code proved the address: e-mail one-time passwords are a factor.
    pub email_otp_enabled: bool,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
    pub terms_version: Option<String>,
    pub terms_accepted_at: Option<i64>,
    /// The insurance card's 記号 and 番号 (empty when not known).
    pub card_symbol: String,
    pub card_number: String,
    /// The name in kana (empty when not known).
    pub name_kana: String,
    pub created_at: i64,
    /// The birth date was proved since the temporary credentials were issued.
    pub birth_date_verified: bool,
    /// When the first login ended (the first session); `None` while it is under way.
    pub first_login_done_at: Option<i64>,
}

impl Member {
    pub fn is_locked(&self, now: i64) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }

    /// The state the console shows: `disabled` over `locked` over `temporary` (before the
    /// first login) over `active`.
    pub fn console_state(&self, now: i64) -> &'static str {
        match self.state {
            MemberState::Disabled => "disabled",
            _ if self.is_locked(now) => "locked",
            MemberState::Temporary => "temporary",
            MemberState::Active => "active",
        }
    }
}

/// `text` with LIKE's wildcards escaped (`\` is the escape character).
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[derive(FromRow)]
struct MemberRow {
    id: String,
    tenant_id: String,
    user_id: String,
    display_name: String,
    birth_date: String,
    email: String,
    password_hash: String,
    password_created_at: i64,
    state: String,
    user_id_chosen: bool,
    email_reviewed: bool,
    email_confirmed: bool,
    mfa_method: Option<String>,
    email_otp_enabled: bool,
    failed_logins: i64,
    locked_until: Option<i64>,
    terms_version: Option<String>,
    terms_accepted_at: Option<i64>,
    card_symbol: String,
    card_number: String,
    name_kana: String,
    created_at: i64,
    birth_date_verified: bool,
    first_login_done_at: Option<i64>,
}

impl From<MemberRow> for Member {
    fn from(r: MemberRow) -> Self {
        Member {
            id: MemberId::from_db(r.id),
            tenant_id: TenantId::from_db(r.tenant_id),
            user_id: r.user_id,
            display_name: r.display_name,
            birth_date: r.birth_date,
            email: r.email,
            password_hash: r.password_hash,
            password_created_at: r.password_created_at,
            state: MemberState::parse(&r.state),
            user_id_chosen: r.user_id_chosen,
            email_reviewed: r.email_reviewed,
            email_confirmed: r.email_confirmed,
            mfa_method: r.mfa_method,
            email_otp_enabled: r.email_otp_enabled,
            failed_logins: r.failed_logins,
            locked_until: r.locked_until,
            terms_version: r.terms_version,
            terms_accepted_at: r.terms_accepted_at,
            card_symbol: r.card_symbol,
            card_number: r.card_number,
            name_kana: r.name_kana,
            created_at: r.created_at,
            birth_date_verified: r.birth_date_verified,
            first_login_done_at: r.first_login_done_at,
        }
    }
}

const MEMBER_COLUMNS: &str = "id, tenant_id, user_id, display_name, birth_date, email, \
    password_hash, password_created_at, state, user_id_chosen, email_reviewed, email_confirmed, \
    mfa_method, email_otp_enabled, \
    failed_logins, locked_until, terms_version, terms_accepted_at, card_symbol, card_number, \
    name_kana, created_at, birth_date_verified, first_login_done_at";

/// A batch of at least this many new members (a roster) refreshes the planner's statistics.
const STATISTICS_AFTER: usize = 1000;

/// A member to create with temporary credentials.
pub struct NewMember<'a> {
    pub user_id: &'a str,
    pub display_name: &'a str,
    pub birth_date: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub card_symbol: &'a str,
    pub card_number: &'a str,
    pub name_kana: &'a str,
    /// The user ID is the member's own already (kept from the society's old system): the
    /// first login does not ask for one.
    pub user_id_chosen: bool,
}

/// What the console's member search asks for; every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct MemberSearch {
    /// Matches the start of the user ID or e-mail address, or part of the name (kanji or
    /// kana).
    pub query: Option<String>,
    /// `YYYY-MM-DD`
    pub birth_date: Option<String>,
    /// `active` | `temporary` | `locked` | `disabled`
    pub state: Option<String>,
    /// Keyset cursor: members whose user ID sorts after this one.
    pub after: Option<String>,
    pub limit: i64,
}

/// A member as lists show them: the state as the console names it.
pub type MemberSummary = Member;

/// A sign-in flow to open.
pub struct NewFlow<'a> {
    pub token_hash: &'a str,
    /// The member or admin signing in.
    pub owner: Owner<'a>,
    /// `login` | `step_up` | `add_<method>`
    pub purpose: &'a str,
    pub return_to: &'a str,
    pub expires_at: i64,
    /// A step-up or add flow started by a recently authenticated member.
    pub factor_verified: bool,
    /// A reset flow: the hash of the 「パスワードをリセット」 link's token.
    pub reset_token_hash: Option<&'a str>,
    /// The password proven does not meet the society's rules of today.
    pub password_outdated: bool,
}

/// A sign-in in progress.
#[derive(Debug, Clone, FromRow)]
pub struct LoginFlow {
    /// Exactly one of the two is set.
    pub member_id: Option<String>,
    pub admin_id: Option<String>,
    pub purpose: String,
    /// A second factor was proven in this flow.
    pub factor_verified: bool,
    /// A TOTP secret being set up, sealed with the flow's token hash as context.
    pub pending_secret: Option<String>,
    pub return_to: String,
    pub expires_at: i64,
    /// The second factor proven: `totp` | `passkey` | `email_otp`.
    pub factor_method: Option<String>,
    /// An `add_*` flow registered its device.
    pub setup_done: bool,
    /// A WebAuthn ceremony in progress (JSON) and when it expires.
    pub ceremony: Option<String>,
    pub ceremony_expires_at: Option<i64>,
    /// The e-mail code of this flow: keyed hash, when sent, until when, failed tries.
    pub email_code_hash: Option<String>,
    pub email_code_sent_at: Option<i64>,
    pub email_code_expires_at: Option<i64>,
    pub email_code_attempts: i64,
    /// A reset flow whose new password is still owed: the hash of the link's token.
    pub reset_token_hash: Option<String>,
    /// The password proven does not meet the society's rules: a new one is owed.
    pub password_outdated: bool,
}

#[derive(Debug, Clone, FromRow)]
pub struct Session {
    pub member_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub authenticated_at: i64,
    /// How the last authentication was made: `password` | `totp` | `passkey` | `email_otp`.
    pub auth_method: String,
    /// The browser and address the session was opened from ('' before they were kept).
    pub user_agent: String,
    pub ip: String,
}

/// The browser a session is opened in.
#[derive(Debug, Clone, Copy)]
pub struct SessionClient<'a> {
    pub ip: &'a str,
    pub user_agent: &'a str,
}

/// A session to store.
pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub member_id: &'a str,
    pub created_at: i64,
    pub authenticated_at: i64,
    pub auth_method: &'a str,
    pub client: &'a SessionClient<'a>,
}

impl Store {
    pub async fn member_count(&self, tenant: &TenantId) -> StoreResult<i64> {
        let n = on_pool!(&self.pool, p => {
            sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE tenant_id = $1")
                .bind(tenant.as_str())
                .fetch_one(p)
                .await
        })?;
        Ok(n)
    }

    /// Creates a member; a user ID already used in the tenant is a conflict.
    pub async fn create_member(
        &self,
        tenant: &TenantId,
        m: &NewMember<'_>,
    ) -> StoreResult<MemberId> {
        let mut ids = self.create_members(tenant, std::slice::from_ref(m)).await?;
        Ok(ids.remove(0))
    }

    /// Creates many members in one transaction (a roster import); any conflict (a user
    /// ID already in use) refuses the whole batch and changes nothing.
    pub async fn create_members(
        &self,
        tenant: &TenantId,
        members: &[NewMember<'_>],
    ) -> StoreResult<Vec<MemberId>> {
        let now = now_unix();
        let mut ids = Vec::with_capacity(members.len());
        let mut tx = self.begin().await?;
        let result = super::on_tx!(&mut tx, c => {
            for m in members {
                let id = MemberId::generate();
                sqlx::query(
                    "INSERT INTO members (id, tenant_id, user_id, display_name, birth_date, email, \
                     password_hash, password_created_at, state, user_id_chosen, email_reviewed, \
                     failed_logins, created_at, updated_at, card_symbol, card_number, name_kana, \
                     search_name) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'temporary', $13, FALSE, 0, $8, $8, \
                     $9, $10, $11, $12)",
                )
                .bind(id.as_str())
                .bind(tenant.as_str())
                .bind(m.user_id)
                .bind(m.display_name)
                .bind(m.birth_date)
                .bind(m.email)
                .bind(m.password_hash)
                .bind(now)
                .bind(m.card_symbol)
                .bind(m.card_number)
                .bind(m.name_kana)
                .bind(member_key(m.display_name, m.name_kana))
                .bind(m.user_id_chosen)
                .execute(&mut *c)
                .await?;
                ids.push(id);
            }
            Ok::<_, sqlx::Error>(())
        });
        match result {
            Ok(()) => {
                tx.commit().await?;
                if members.len() >= STATISTICS_AFTER {
                    self.refresh_statistics().await?;
                }
                Ok(ids)
            }
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Conflict("user ID already in use".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn member_by_user_id(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> StoreResult<Option<Member>> {
        let sql =
            format!("SELECT {MEMBER_COLUMNS} FROM members WHERE tenant_id = $1 AND user_id = $2");
        let row: Option<MemberRow> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql).bind(tenant.as_str()).bind(user_id).fetch_optional(p).await
        })?;
        Ok(row.map(Member::from))
    }

    pub async fn member(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<Member>> {
        let sql = format!("SELECT {MEMBER_COLUMNS} FROM members WHERE tenant_id = $1 AND id = $2");
        let row: Option<MemberRow> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql).bind(tenant.as_str()).bind(id).fetch_optional(p).await
        })?;
        Ok(row.map(Member::from))
    }

    /// Counts a failed sign-in of a member or admin; locks the account at `max_failures`
    /// until `lock_until`. Returns true if this failure locked it.
    pub async fn record_login_failure(
        &self,
        tenant: &TenantId,
        owner: &Owner<'_>,
        max_failures: i64,
        lock_until: i64,
    ) -> StoreResult<bool> {
        // A lock that has run out starts a fresh count.
        let sql = format!(
            "UPDATE {} SET \
               failed_logins = CASE WHEN locked_until <= $5 THEN 1 ELSE failed_logins + 1 END, \
               locked_until = CASE \
                 WHEN (CASE WHEN locked_until <= $5 THEN 1 ELSE failed_logins + 1 END) >= $3 THEN $4 \
                 WHEN locked_until <= $5 THEN NULL \
                 ELSE locked_until END \
             WHERE tenant_id = $1 AND id = $2 RETURNING failed_logins, locked_until",
            owner.account_table()
        );
        let (_failures, locked): (i64, Option<i64>) = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql)
            .bind(tenant.as_str())
            .bind(owner.id())
            .bind(max_failures)
            .bind(lock_until)
            .bind(now_unix())
            .fetch_one(p)
            .await
        })?;
        Ok(locked == Some(lock_until))
    }

    /// A successful sign-in: the failure count starts again; an expired lock is lifted.
    pub async fn record_login_success(
        &self,
        tenant: &TenantId,
        owner: &Owner<'_>,
    ) -> StoreResult<()> {
        let sql = format!(
            "UPDATE {} SET failed_logins = 0, locked_until = NULL WHERE tenant_id = $1 AND id = $2",
            owner.account_table()
        );
        on_pool!(&self.pool, p => {
            sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(owner.id())
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Lifts a member's lock (「ロック解除」) and clears the failure count.
    pub async fn unlock_member(&self, tenant: &TenantId, member: &MemberId) -> StoreResult<()> {
        self.record_login_success(tenant, &Owner::member(member))
            .await
    }

    pub async fn set_password_hash(
        &self,
        tenant: &TenantId,
        member_id: &str,
        hash: &str,
        make_active: bool,
    ) -> StoreResult<()> {
        let sql = if make_active {
            "UPDATE members SET password_hash = $3, password_created_at = $4, updated_at = $4, \
             state = 'active' WHERE tenant_id = $1 AND id = $2"
        } else {
            "UPDATE members SET password_hash = $3, password_created_at = $4, updated_at = $4 \
             WHERE tenant_id = $1 AND id = $2"
        };
        self.member_update(sql, tenant, member_id, hash.to_owned(), now_unix())
            .await
    }

    /// Re-hash with new parameters: the creation date of the password stays.
    pub async fn rehash_password(
        &self,
        tenant: &TenantId,
        member_id: &str,
        hash: &str,
    ) -> StoreResult<()> {
        self.member_update(
            "UPDATE members SET password_hash = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
            tenant,
            member_id,
            hash.to_owned(),
            now_unix(),
        )
        .await
    }

    /// Sets the member's own user ID (and the second-factor method chosen with it).
    pub async fn choose_user_id(
        &self,
        tenant: &TenantId,
        member_id: &str,
        user_id: &str,
        mfa_method: Option<&str>,
    ) -> StoreResult<()> {
        let now = now_unix();
        let result = on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE members SET user_id = $3, mfa_method = COALESCE($4, mfa_method), \
                 user_id_chosen = TRUE, updated_at = $5 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(member_id)
            .bind(user_id)
            .bind(mfa_method)
            .bind(now)
            .execute(p)
            .await
            .map(|_| ())
        });
        match result {
            Ok(()) => Ok(()),
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::Conflict("user ID already in use".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The method chosen on its own first-login screen (`"none"` where the society lets
    /// members go without one).
    pub async fn choose_method(
        &self,
        tenant: &TenantId,
        member_id: &str,
        method: &str,
    ) -> StoreResult<()> {
        self.member_update(
            "UPDATE members SET mfa_method = $3, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
            tenant,
            member_id,
            method.to_owned(),
            now_unix(),
        )
        .await
    }

    /// The member proved their birth date: a sign-in that resumes the first login does
    /// not ask again until new temporary credentials are issued.
    pub async fn member_birth_date_verified(
        &self,
        tenant: &TenantId,
        member_id: &str,
    ) -> StoreResult<()> {
        self.member_flag(
            "UPDATE members SET birth_date_verified = TRUE, updated_at = $3 \
             WHERE tenant_id = $1 AND id = $2",
            tenant,
            member_id,
        )
        .await
        .map(|_| ())
    }

    /// Marks the end of the first login; true the first time only.
    pub async fn first_login_done(&self, tenant: &TenantId, member_id: &str) -> StoreResult<bool> {
        self.member_flag(
            "UPDATE members SET first_login_done_at = $3, updated_at = $3 \
             WHERE tenant_id = $1 AND id = $2 AND first_login_done_at IS NULL",
            tenant,
            member_id,
        )
        .await
        .map(|n| n == 1)
    }

    /// Runs `sql` with the tenant, the member and the time now; the rows changed.
    async fn member_flag(&self, sql: &str, tenant: &TenantId, member_id: &str) -> StoreResult<u64> {
        let now = now_unix();
        let n = on_pool!(&self.pool, p => {
            sqlx::query(sql)
                .bind(tenant.as_str())
                .bind(member_id)
                .bind(now)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Confirms the address a link was sent to, if it is still the member's address.
    /// Returns false if the token is unknown, used, expired or the address changed since.
    pub async fn confirm_email_token(
        &self,
        tenant: &TenantId,
        token_hash: &str,
    ) -> StoreResult<bool> {
        let now = now_unix();
        let mut tx = self.begin().await?;
        let confirmed = super::on_tx!(&mut tx, c => {
            let row: Option<(String, String)> = sqlx::query_as(
                "UPDATE one_time_tokens SET used_at = $3 \
                 WHERE tenant_id = $1 AND token_hash = $2 AND purpose = 'email_confirmation' \
                 AND used_at IS NULL AND expires_at > $3 RETURNING member_id, payload",
            )
            .bind(tenant.as_str())
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&mut *c)
            .await?;
            match row {
                Some((member_id, email)) => {
                    let updated = sqlx::query(
                        "UPDATE members SET email_confirmed = TRUE, updated_at = $4 \
                         WHERE tenant_id = $1 AND id = $2 AND email = $3",
                    )
                    .bind(tenant.as_str())
                    .bind(&member_id)
                    .bind(&email)
                    .bind(now)
                    .execute(&mut *c)
                    .await?;
                    Ok::<_, sqlx::Error>(updated.rows_affected() == 1)
                }
                None => Ok(false),
            }
        })?;
        tx.commit().await?;
        Ok(confirmed)
    }

    pub async fn set_email(
        &self,
        tenant: &TenantId,
        member_id: &str,
        email: &str,
    ) -> StoreResult<()> {
        self.member_update(
            "UPDATE members SET email_confirmed = (email = $3 AND email_confirmed), \
             email = $3, email_reviewed = TRUE, updated_at = $4 \
             WHERE tenant_id = $1 AND id = $2",
            tenant,
            member_id,
            email.to_owned(),
            now_unix(),
        )
        .await
    }

    /// The society sets the address: reviewed and confirmed by the society, so the first
    /// login asks for neither; e-mail codes are no factor until the member proves it.
    /// A pending change of address by the member is voided.
    pub async fn correct_member_email(
        &self,
        tenant: &TenantId,
        member: &MemberId,
        email: &str,
    ) -> StoreResult<()> {
        let now = now_unix();
        let mut tx = self.begin().await?;
        super::on_tx!(&mut tx, c => {
            sqlx::query(
                "UPDATE members SET email = $3, email_reviewed = TRUE, email_confirmed = TRUE, \
                 email_otp_enabled = FALSE, updated_at = $4 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(member.as_str())
            .bind(email)
            .bind(now)
            .execute(&mut *c)
            .await?;
            sqlx::query(
                "UPDATE one_time_tokens SET used_at = $3 WHERE tenant_id = $1 AND member_id = $2 \
                 AND purpose IN ('email_change', 'email_confirmation') AND used_at IS NULL",
            )
            .bind(tenant.as_str())
            .bind(member.as_str())
            .bind(now)
            .execute(&mut *c)
            .await
            .map(|_| ())
        })?;
        tx.commit().await?;
        Ok(())
    }

    /// Records acceptance of a terms version, keeping the history.
    pub async fn accept_terms(
        &self,
        tenant: &TenantId,
        member_id: &str,
        version: &str,
        ip: &str,
    ) -> StoreResult<()> {
        let now = now_unix();
        let mut tx = self.begin().await?;
        super::on_tx!(&mut tx, c => {
            sqlx::query(
                "UPDATE members SET terms_version = $3, terms_accepted_at = $4, updated_at = $4 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(member_id)
            .bind(version)
            .bind(now)
            .execute(&mut *c)
            .await?;
            sqlx::query(
                "INSERT INTO terms_acceptances (tenant_id, member_id, version, accepted_at, ip) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(tenant.as_str())
            .bind(member_id)
            .bind(version)
            .bind(now)
            .bind(ip)
            .execute(&mut *c)
            .await?;
            Ok::<_, sqlx::Error>(())
        })?;
        tx.commit().await
    }

    /// Versions the member accepted, oldest first, with the time.
    pub async fn terms_history(
        &self,
        tenant: &TenantId,
        member_id: &str,
    ) -> StoreResult<Vec<(String, i64)>> {
        let rows = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT version, accepted_at FROM terms_acceptances \
                 WHERE tenant_id = $1 AND member_id = $2 ORDER BY accepted_at",
            )
            .bind(tenant.as_str())
            .bind(member_id)
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
    }

    async fn member_update(
        &self,
        sql: &str,
        tenant: &TenantId,
        member_id: &str,
        value: String,
        now: i64,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(sql)
                .bind(tenant.as_str())
                .bind(member_id)
                .bind(&value)
                .bind(now)
                .execute(p)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// The members of a tenant born on `birth_date` (`YYYY-MM-DD`), through the index on
    /// (tenant, birth date); the caller compares the rest.
    pub async fn members_born_on(
        &self,
        tenant: &TenantId,
        birth_date: &str,
    ) -> StoreResult<Vec<Member>> {
        let sql = format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE tenant_id = $1 AND birth_date = $2 \
             ORDER BY user_id LIMIT 100"
        );
        let rows: Vec<MemberRow> = on_pool!(&self.pool, p => {
            sqlx::query_as(&sql)
                .bind(tenant.as_str())
                .bind(birth_date)
                .fetch_all(p)
                .await
        })?;
        Ok(rows.into_iter().map(Member::from).collect())
    }

    /// Computes the search key of members written before keys existed (migration 0009),
    /// in batches; returns how many were filled in. Cheap when there are none: the rows
    /// are found through a partial index.
    pub async fn fill_search_names(&self) -> StoreResult<u64> {
        let mut filled = 0;
        loop {
            let rows: Vec<(String, String, String)> = on_pool!(&self.pool, p => {
                sqlx::query_as(
                    "SELECT id, display_name, name_kana FROM members \
                     WHERE search_name = '' LIMIT 500",
                )
                .fetch_all(p)
                .await
            })?;
            if rows.is_empty() {
                return Ok(filled);
            }
            let mut tx = self.begin().await?;
            super::on_tx!(&mut tx, c => {
                for (id, name, kana) in &rows {
                    sqlx::query("UPDATE members SET search_name = $2 WHERE id = $1")
                        .bind(id)
                        .bind(member_key(name, kana))
                        .execute(&mut *c)
                        .await?;
                }
                Ok::<_, sqlx::Error>(())
            })?;
            tx.commit().await?;
            filled += rows.len() as u64;
        }
    }

    // --- the console's member operations -------------------------------------------------

    /// One page of members matching `search`, ordered by user ID.
    pub async fn search_members(
        &self,
        tenant: &TenantId,
        search: &MemberSearch,
    ) -> StoreResult<Vec<Member>> {
        // What the clerk typed decides where to look: text with kanji or kana is part of
        // a name (kanji or kana); plain ASCII is the start of a user ID or an e-mail
        // address. Each shape reads only the columns it can match.
        let query = search
            .query
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty());
        let ascii = query.is_some_and(|q| q.is_ascii());
        // A prefix is looked up as a range of the index on (tenant, column); byte order
        // ("C" in PostgreSQL, SQLite's default) so that the range holds every match, and
        // LIKE on top so that it holds nothing else.
        let bytes = match self.pool {
            super::Pool::Sqlite(_) => "",
            super::Pool::Postgres(_) => " COLLATE \"C\"",
        };
        let text_condition = match (query, ascii) {
            (None, _) => String::new(),
            (Some(_), true) => format!(
                "AND ((user_id{bytes} >= $8 AND user_id{bytes} < $9 AND user_id LIKE $2 ESCAPE '\\') \
                 OR (email{bytes} >= $8 AND email{bytes} < $9 AND email LIKE $2 ESCAPE '\\')) "
            ),
            // A part of a name, compared as keys (see `member::search`): SQLite's plain
            // substring test is cheaper than a LIKE pattern there; PostgreSQL's LIKE is the
            // faster of its two.
            (Some(_), false) => match self.pool {
                super::Pool::Sqlite(_) => "AND instr(search_name, $3) > 0 ".to_owned(),
                super::Pool::Postgres(_) => {
                    "AND search_name LIKE '%' || $3 || '%' ESCAPE '\\' ".to_owned()
                }
            },
        };
        // The page's user IDs are found in the index `members_search` alone (every column a
        // condition reads is in it); only the rows of the page are then read whole.
        let sql = format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE tenant_id = $1 AND user_id IN (\
             SELECT user_id FROM members WHERE tenant_id = $1 \
             AND (CAST($2 AS TEXT) IS NULL OR TRUE) AND (CAST($3 AS TEXT) IS NULL OR TRUE) \
             AND (CAST($8 AS TEXT) IS NULL OR TRUE) AND (CAST($9 AS TEXT) IS NULL OR TRUE) \
             {text_condition}\
             AND ($4 IS NULL OR birth_date = $4) \
             AND ($5 IS NULL \
                  OR ($5 = 'disabled' AND state = 'disabled') \
                  OR ($5 = 'locked' AND state <> 'disabled' AND locked_until > $7) \
                  OR ($5 = 'temporary' AND state = 'temporary' \
                      AND (locked_until IS NULL OR locked_until <= $7)) \
                  OR ($5 = 'active' AND state = 'active' \
                      AND (locked_until IS NULL OR locked_until <= $7))) \
             AND ($6 IS NULL OR user_id > $6) \
             ORDER BY user_id LIMIT {}) \
             ORDER BY user_id",
            search.limit.clamp(1, 500)
        );
        let prefix = query.map(|q| format!("{}%", like_escape(&q.to_lowercase())));
        let part = query.map(|q| match self.pool {
            super::Pool::Sqlite(_) => name_key(q),
            super::Pool::Postgres(_) => like_escape(&name_key(q)),
        });
        let low = query.map(str::to_lowercase);
        let high = low.as_ref().map(|q| format!("{q}\u{10FFFF}"));
        macro_rules! bound {
            ($query:expr) => {
                $query
                    .bind(tenant.as_str())
                    .bind(prefix.as_deref())
                    .bind(part.as_deref())
                    .bind(search.birth_date.as_deref())
                    .bind(search.state.as_deref())
                    .bind(search.after.as_deref())
                    .bind(now_unix())
                    .bind(low.as_deref())
                    .bind(high.as_deref())
            };
        }
        let rows: Vec<MemberRow> = match &self.pool {
            // PostgreSQL rates a sequential scan of the (wide) member rows cheaper than a
            // walk of `members_search` alone, and is wrong by half: the name's key is the
            // last column of a long row. Within this one query it is told to keep to the
            // indexes.
            super::Pool::Postgres(p) if query.is_some() && !ascii => {
                let mut tx = p.begin().await?;
                sqlx::query("SET LOCAL enable_seqscan = off")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("SET LOCAL enable_bitmapscan = off")
                    .execute(&mut *tx)
                    .await?;
                let rows = bound!(sqlx::query_as(&sql)).fetch_all(&mut *tx).await?;
                tx.commit().await?;
                rows
            }
            _ => on_pool!(&self.pool, p => bound!(sqlx::query_as(&sql)).fetch_all(p).await)?,
        };
        Ok(rows.into_iter().map(Member::from).collect())
    }

    /// Changes a member's display name (and name in kana).
    pub async fn rename_member(
        &self,
        tenant: &TenantId,
        member: &MemberId,
        name: &str,
        kana: &str,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE members SET display_name = $3, name_kana = $4, updated_at = $5, \
                 search_name = $6 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(member.as_str())
            .bind(name)
            .bind(kana)
            .bind(now_unix())
            .bind(member_key(name, kana))
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Gives a member new temporary credentials: at the next login they prove their birth
    /// date and choose a new password. A lock is lifted; a disabled member stays disabled.
    pub async fn reset_member_password(
        &self,
        tenant: &TenantId,
        member: &MemberId,
        hash: &str,
    ) -> StoreResult<()> {
        let now = now_unix();
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE members SET password_hash = $3, password_created_at = $4, updated_at = $4, \
                 failed_logins = 0, locked_until = NULL, birth_date_verified = FALSE, \
                 state = CASE WHEN state = 'disabled' THEN 'disabled' ELSE 'temporary' END, \
                 state_before_disable = CASE WHEN state = 'disabled' THEN 'temporary' \
                   ELSE state_before_disable END \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(member.as_str())
            .bind(hash)
            .bind(now)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Removes every second factor of a member: they set one up at the next login.
    pub async fn reset_member_factors(
        &self,
        tenant: &TenantId,
        member: &MemberId,
    ) -> StoreResult<u64> {
        let n = self
            .delete_all_devices(tenant, &Owner::member(member))
            .await?;
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE members SET email_otp_enabled = FALSE, updated_at = $3 \
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(tenant.as_str())
            .bind(member.as_str())
            .bind(now_unix())
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(n)
    }

    /// Disables a member (keeping the state to restore) or enables them again.
    pub async fn set_member_disabled(
        &self,
        tenant: &TenantId,
        member: &MemberId,
        disabled: bool,
    ) -> StoreResult<()> {
        let sql = if disabled {
            "UPDATE members SET state_before_disable = state, state = 'disabled', updated_at = $3 \
             WHERE tenant_id = $1 AND id = $2 AND state <> 'disabled'"
        } else {
            "UPDATE members SET state = COALESCE(state_before_disable, 'active'), \
             state_before_disable = NULL, updated_at = $3 \
             WHERE tenant_id = $1 AND id = $2 AND state = 'disabled'"
        };
        on_pool!(&self.pool, p => {
            sqlx::query(sql)
                .bind(tenant.as_str())
                .bind(member.as_str())
                .bind(now_unix())
                .execute(p)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// The member's sessions, newest first.
    pub async fn member_sessions(
        &self,
        tenant: &TenantId,
        member: &MemberId,
    ) -> StoreResult<Vec<Session>> {
        let rows = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT member_id, created_at, last_seen_at, authenticated_at, auth_method, \
                 user_agent, ip FROM sessions WHERE tenant_id = $1 AND member_id = $2 \
                 ORDER BY created_at DESC",
            )
            .bind(tenant.as_str())
            .bind(member.as_str())
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
    }

    /// Ends every session and sign-in flow of a member; returns how many sessions ended.
    pub async fn end_member_sessions(
        &self,
        tenant: &TenantId,
        member: &MemberId,
    ) -> StoreResult<u64> {
        let n = on_pool!(&self.pool, p => {
            let n = sqlx::query("DELETE FROM sessions WHERE tenant_id = $1 AND member_id = $2")
                .bind(tenant.as_str())
                .bind(member.as_str())
                .execute(p)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM login_flows WHERE tenant_id = $1 AND member_id = $2")
                .bind(tenant.as_str())
                .bind(member.as_str())
                .execute(p)
                .await?;
            Ok::<_, sqlx::Error>(n)
        })?;
        Ok(n)
    }

    /// Members by console state, for the dashboard: (state, count).
    pub async fn member_state_counts(&self, tenant: &TenantId) -> StoreResult<Vec<(String, i64)>> {
        let rows = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT CASE WHEN state = 'disabled' THEN 'disabled' \
                   WHEN locked_until > $2 THEN 'locked' ELSE state END AS s, COUNT(*) \
                 FROM members WHERE tenant_id = $1 GROUP BY s ORDER BY s",
            )
            .bind(tenant.as_str())
            .bind(now_unix())
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
    }

    /// Members holding each kind of second factor, for the dashboard: (kind, members).
    pub async fn factor_adoption(&self, tenant: &TenantId) -> StoreResult<Vec<(String, i64)>> {
        let rows = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT kind, COUNT(DISTINCT member_id) FROM mfa_devices WHERE tenant_id = $1 \
                 GROUP BY kind \
                 UNION ALL \
                 SELECT 'email_otp', COUNT(*) FROM members \
                 WHERE tenant_id = $1 AND email_otp_enabled = TRUE",
            )
            .bind(tenant.as_str())
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
    }

    /// Every second factor held, as (member id, kind), counting a confirmed e-mail
    /// address used for codes as `email_otp`; disabled members are left out.
    pub async fn factor_kinds(&self, tenant: &TenantId) -> StoreResult<Vec<(String, String)>> {
        let rows = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT d.member_id, d.kind FROM mfa_devices d JOIN members m \
                 ON m.id = d.member_id AND m.tenant_id = d.tenant_id \
                 WHERE d.tenant_id = $1 AND m.state <> 'disabled' \
                 UNION ALL \
                 SELECT id, 'email_otp' FROM members \
                 WHERE tenant_id = $1 AND email_otp_enabled = TRUE AND state <> 'disabled'",
            )
            .bind(tenant.as_str())
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
    }

    /// The ids of the members who have finished their first login and are not disabled.
    pub async fn active_member_ids(&self, tenant: &TenantId) -> StoreResult<Vec<String>> {
        let rows = on_pool!(&self.pool, p => {
            sqlx::query_scalar("SELECT id FROM members WHERE tenant_id = $1 AND state = 'active'")
                .bind(tenant.as_str())
                .fetch_all(p)
                .await
        })?;
        Ok(rows)
    }

    // --- sign-in flows -------------------------------------------------------------------

    pub async fn create_flow(&self, tenant: &TenantId, f: &NewFlow<'_>) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO login_flows (token_hash, tenant_id, {}, purpose, \
             birth_date_verified, return_to, created_at, expires_at, factor_verified, \
             reset_token_hash, password_outdated) VALUES ($1, $2, $3, $4, FALSE, $5, $6, $7, $8, $9, $10)",
            f.owner.column()
        );
        on_pool!(&self.pool, p => {
            sqlx::query(&sql)
            .bind(f.token_hash)
            .bind(tenant.as_str())
            .bind(f.owner.id())
            .bind(f.purpose)
            .bind(f.return_to)
            .bind(now_unix())
            .bind(f.expires_at)
            .bind(f.factor_verified)
            .bind(f.reset_token_hash)
            .bind(f.password_outdated)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn flow(
        &self,
        tenant: &TenantId,
        token_hash: &str,
    ) -> StoreResult<Option<LoginFlow>> {
        let flow = on_pool!(&self.pool, p => {
            sqlx::query_as(
                "SELECT member_id, admin_id, purpose, factor_verified, pending_secret, \
                 return_to, expires_at, factor_method, setup_done, ceremony, ceremony_expires_at, \
                 email_code_hash, email_code_sent_at, email_code_expires_at, email_code_attempts, \
                 reset_token_hash, password_outdated FROM login_flows \
                 WHERE tenant_id = $1 AND token_hash = $2 AND expires_at > $3",
            )
            .bind(tenant.as_str())
            .bind(token_hash)
            .bind(now_unix())
            .fetch_optional(p)
            .await
        })?;
        Ok(flow)
    }

    /// The new password owed by an outdated one is set.
    pub async fn flow_password_updated(
        &self,
        tenant: &TenantId,
        token_hash: &str,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE login_flows SET password_outdated = FALSE \
                 WHERE tenant_id = $1 AND token_hash = $2",
            )
            .bind(tenant.as_str())
            .bind(token_hash)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// Records the second factor this flow proved; a pending set-up secret is dropped.
    pub async fn flow_factor_verified(
        &self,
        tenant: &TenantId,
        token_hash: &str,
        method: &str,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE login_flows SET factor_verified = TRUE, factor_method = $3, \
                 pending_secret = NULL, ceremony = NULL, ceremony_expires_at = NULL, \
                 email_code_hash = NULL \
                 WHERE tenant_id = $1 AND token_hash = $2",
            )
            .bind(tenant.as_str())
            .bind(token_hash)
            .bind(method)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn set_flow_pending_secret(
        &self,
        tenant: &TenantId,
        token_hash: &str,
        sealed: &str,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "UPDATE login_flows SET pending_secret = $3 WHERE tenant_id = $1 AND token_hash = $2",
            )
            .bind(tenant.as_str())
            .bind(token_hash)
            .bind(sealed)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn delete_flow(&self, tenant: &TenantId, token_hash: &str) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query("DELETE FROM login_flows WHERE tenant_id = $1 AND token_hash = $2")
                .bind(tenant.as_str())
                .bind(token_hash)
                .execute(p)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    // --- sessions ------------------------------------------------------------------------

    /// Opens a session; `client` is the browser it was opened in.
    pub async fn create_session(
        &self,
        tenant: &TenantId,
        token_hash: &str,
        member_id: &str,
        auth_method: &str,
        client: &SessionClient<'_>,
    ) -> StoreResult<()> {
        let now = now_unix();
        self.create_session_at(
            tenant,
            &NewSession {
                token_hash,
                member_id,
                created_at: now,
                authenticated_at: now,
                auth_method,
                client,
            },
        )
        .await
    }

    /// A session that continues another (rotated token): same start, given proof time.
    pub async fn create_session_at(
        &self,
        tenant: &TenantId,
        s: &NewSession<'_>,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query(
                "INSERT INTO sessions (token_hash, tenant_id, member_id, created_at, \
                 last_seen_at, authenticated_at, auth_method, user_agent, ip) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(s.token_hash)
            .bind(tenant.as_str())
            .bind(s.member_id)
            .bind(s.created_at)
            .bind(now_unix())
            .bind(s.authenticated_at)
            .bind(s.auth_method)
            .bind(s.client.user_agent)
            .bind(s.client.ip)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// The session of `token_hash` with its member, in one query (every signed-in page
    /// asks for both), each found by its key.
    pub async fn session_with_member(
        &self,
        tenant: &TenantId,
        token_hash: &str,
    ) -> StoreResult<Option<(Session, Member)>> {
        #[derive(FromRow)]
        struct Row {
            #[sqlx(flatten)]
            member: MemberRow,
            s_created_at: i64,
            s_last_seen_at: i64,
            s_authenticated_at: i64,
            s_auth_method: String,
            s_user_agent: String,
            s_ip: String,
        }
        static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let sql = SQL.get_or_init(|| {
            let member: Vec<String> = MEMBER_COLUMNS
                .split(',')
                .map(|c| format!("m.{}", c.trim()))
                .collect();
            format!(
                "SELECT {}, s.created_at AS s_created_at, s.last_seen_at AS s_last_seen_at, \
                 s.authenticated_at AS s_authenticated_at, s.auth_method AS s_auth_method, \
                 s.user_agent AS s_user_agent, s.ip AS s_ip \
                 FROM sessions s JOIN members m ON m.tenant_id = s.tenant_id AND m.id = s.member_id \
                 WHERE s.tenant_id = $1 AND s.token_hash = $2",
                member.join(", ")
            )
        });
        let row: Option<Row> = on_pool!(&self.pool, p => {
            sqlx::query_as(sql).bind(tenant.as_str()).bind(token_hash).fetch_optional(p).await
        })?;
        Ok(row.map(|r| {
            let member = Member::from(r.member);
            let session = Session {
                member_id: member.id.to_string(),
                created_at: r.s_created_at,
                last_seen_at: r.s_last_seen_at,
                authenticated_at: r.s_authenticated_at,
                auth_method: r.s_auth_method,
                user_agent: r.s_user_agent,
                ip: r.s_ip,
            };
            (session, member)
        }))
    }

    pub async fn touch_session(
        &self,
        tenant: &TenantId,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query("UPDATE sessions SET last_seen_at = $3 WHERE tenant_id = $1 AND token_hash = $2")
                .bind(tenant.as_str())
                .bind(token_hash)
                .bind(now)
                .execute(p)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn delete_session(&self, tenant: &TenantId, token_hash: &str) -> StoreResult<()> {
        on_pool!(&self.pool, p => {
            sqlx::query("DELETE FROM sessions WHERE tenant_id = $1 AND token_hash = $2")
                .bind(tenant.as_str())
                .bind(token_hash)
                .execute(p)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}
