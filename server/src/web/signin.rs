//! Sign-in as one state machine (SPEC §6.1): a password login opens a flow bound to a
//! pre-session cookie; the actions still owed are computed from the member and the
//! tenant's policy; each page handles exactly one action and any other page of the flow
//! redirects to the action owed now. A session is issued only when nothing is owed.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Redirect};
use poem::{handler, IntoResponse, Response};
use serde::Deserialize;

use super::pages::{render, MemberView};
use super::{AppState, CurrentTenant, RequestMeta};
use crate::auth::password::HashError;
use crate::auth::session::{self, internal, FLOW_COOKIE, SESSION_COOKIE};
use crate::store::{now_unix, Device, LoginFlow, Member, MemberState};
use crate::tenant::{MfaMethod, Tenant};

/// How long a sign-in may take from password to the last step.
const FLOW_SECS: i64 = 30 * 60;
/// Failed logins one address may make in `THROTTLE_WINDOW_SECS`, over all tenants.
const THROTTLE_FAILURES: i64 = 30;
const THROTTLE_WINDOW_SECS: i64 = 15 * 60;
/// Longest user ID anyone may type; longer input is refused without a look-up.
const MAX_USER_ID_INPUT: usize = 64;

/// One step of a sign-in, in the order of the manuals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    VerifyBirthDate,
    AcceptTerms,
    ChooseUserId,
    UpdatePassword,
    ReviewEmail,
    ConfirmEmail,
    /// A second factor the member holds: a passkey, an authenticator app code or a mailed
    /// code, whichever they choose.
    SecondFactor,
    /// Register an authenticator app (chosen at first login, or added later).
    SetupTotp,
    /// Register a passkey.
    SetupPasskey,
    /// Prove the e-mail address with a mailed code, making it a factor.
    SetupEmailOtp,
}

impl Action {
    pub fn path(self) -> &'static str {
        match self {
            Action::VerifyBirthDate => "/login/birth-date",
            Action::AcceptTerms => "/login/terms",
            Action::ChooseUserId => "/login/user-id",
            Action::UpdatePassword => "/login/password",
            Action::ReviewEmail => "/login/email",
            Action::ConfirmEmail => "/login/email/confirm",
            Action::SecondFactor => "/login/factor",
            Action::SetupTotp => "/login/totp",
            Action::SetupPasskey => "/login/passkey/setup",
            Action::SetupEmailOtp => "/login/email-otp",
        }
    }

    fn setup(method: MfaMethod) -> Self {
        match method {
            MfaMethod::Passkey => Action::SetupPasskey,
            MfaMethod::Totp => Action::SetupTotp,
            MfaMethod::EmailOtp => Action::SetupEmailOtp,
        }
    }
}

/// Why a flow exists; `add_*` flows register one more factor from 「ログイン方法変更」.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Login,
    StepUp,
    Add(MfaMethod),
}

impl Purpose {
    pub fn parse(s: &str) -> Self {
        match s {
            "step_up" => Purpose::StepUp,
            "add_totp" => Purpose::Add(MfaMethod::Totp),
            "add_passkey" => Purpose::Add(MfaMethod::Passkey),
            "add_email_otp" => Purpose::Add(MfaMethod::EmailOtp),
            _ => Purpose::Login,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Login => "login",
            Purpose::StepUp => "step_up",
            Purpose::Add(MfaMethod::Totp) => "add_totp",
            Purpose::Add(MfaMethod::Passkey) => "add_passkey",
            Purpose::Add(MfaMethod::EmailOtp) => "add_email_otp",
        }
    }
}

/// The second factors a member holds, counting only the kinds the tenant allows now.
#[derive(Debug, Clone, Default)]
pub struct Factors {
    pub totp: Vec<Device>,
    pub passkeys: Vec<Device>,
    pub email: bool,
}

impl Factors {
    pub fn of(tenant: &Tenant, member: &Member, devices: Vec<Device>) -> Self {
        let allowed = |m: MfaMethod| tenant.settings.mfa.methods.contains(&m);
        let (mut totp, mut passkeys) = (Vec::new(), Vec::new());
        for d in devices {
            match d.kind.as_str() {
                "totp" if allowed(MfaMethod::Totp) => totp.push(d),
                "passkey" if allowed(MfaMethod::Passkey) => passkeys.push(d),
                _ => {}
            }
        }
        Self {
            totp,
            passkeys,
            email: member.email_otp_enabled && allowed(MfaMethod::EmailOtp),
        }
    }

    pub fn has(&self, method: MfaMethod) -> bool {
        match method {
            MfaMethod::Passkey => !self.passkeys.is_empty(),
            MfaMethod::Totp => !self.totp.is_empty(),
            MfaMethod::EmailOtp => self.email,
        }
    }

    /// The kinds held, passkeys first.
    pub fn methods(&self) -> Vec<MfaMethod> {
        [MfaMethod::Passkey, MfaMethod::Totp, MfaMethod::EmailOtp]
            .into_iter()
            .filter(|m| self.has(*m))
            .collect()
    }

    pub fn count(&self) -> usize {
        self.totp.len() + self.passkeys.len() + usize::from(self.email)
    }
}

/// What `member` still owes in this flow before a session may be issued.
pub fn owed(member: &Member, tenant: &Tenant, flow: &LoginFlow, factors: &Factors) -> Vec<Action> {
    let mut actions = Vec::new();
    let purpose = Purpose::parse(&flow.purpose);
    let second_factor = factors.count() > 0 && !flow.factor_verified;
    match purpose {
        Purpose::StepUp => {
            if second_factor {
                actions.push(Action::SecondFactor);
            }
            return actions;
        }
        Purpose::Add(method) => {
            if second_factor {
                actions.push(Action::SecondFactor);
            }
            if !flow.setup_done {
                actions.push(Action::setup(method));
            }
            return actions;
        }
        Purpose::Login => {}
    }
    let temporary = member.state == MemberState::Temporary;
    if temporary && !flow.birth_date_verified {
        actions.push(Action::VerifyBirthDate);
    }
    if second_factor {
        actions.push(Action::SecondFactor);
    }
    let current = &tenant.terms.current;
    if !current.is_empty() && member.terms_version.as_deref() != Some(current.as_str()) {
        actions.push(Action::AcceptTerms);
    }
    if !member.user_id_chosen {
        actions.push(Action::ChooseUserId);
    }
    if temporary {
        actions.push(Action::UpdatePassword);
    }
    if !member.email_reviewed {
        actions.push(Action::ReviewEmail);
    }
    if tenant.settings.first_login.confirm_email_by_link && !member.email_confirmed {
        actions.push(Action::ConfirmEmail);
    }
    // A member without any factor sets up the one chosen at first login; where the society
    // requires a second factor and none was chosen, its first method.
    if factors.count() == 0 && member.user_id_chosen {
        let allowed = &tenant.settings.mfa.methods;
        let chosen = allowed
            .iter()
            .copied()
            .find(|m| member.mfa_method.as_deref() == Some(m.as_str()));
        let method = match chosen {
            Some(m) => Some(m),
            None if tenant.settings.mfa.required => allowed.first().copied(),
            None => None,
        };
        if let Some(method) = method {
            actions.push(Action::setup(method));
        }
    }
    actions
}

/// The flow of this request with its member, or a redirect to the login page.
pub(super) struct Flow {
    pub token_hash: String,
    pub flow: LoginFlow,
    pub member: Member,
    /// The second factors the member holds.
    pub factors: Factors,
}

/// Where a member goes when their flow is gone.
const EXPIRED: &str = "/login?expired=1";
const LOCKED: &str = "/login?locked=1";

impl Flow {
    async fn load(
        state: &AppState,
        tenant: &Tenant,
        jar: &CookieJar,
    ) -> poem::Result<Result<Self, &'static str>> {
        let Some(token_hash) = session::cookie_token_hash(jar, FLOW_COOKIE) else {
            return Ok(Err(EXPIRED));
        };
        let Some(flow) = state
            .store
            .flow(&tenant.id, &token_hash)
            .await
            .map_err(internal)?
        else {
            return Ok(Err(EXPIRED));
        };
        let Some(member) = state
            .store
            .member(&tenant.id, &flow.member_id)
            .await
            .map_err(internal)?
        else {
            return Ok(Err(EXPIRED));
        };
        if member.is_locked(now_unix()) || member.state == MemberState::Disabled {
            state
                .store
                .delete_flow(&tenant.id, &token_hash)
                .await
                .map_err(internal)?;
            // The member proved the password in this flow: they may know why it ended.
            return Ok(Err(LOCKED));
        }
        let devices = state
            .store
            .devices(&tenant.id, &member.id)
            .await
            .map_err(internal)?;
        let factors = Factors::of(tenant, &member, devices);
        Ok(Ok(Self {
            token_hash,
            flow,
            member,
            factors,
        }))
    }

    pub fn owed(&self, tenant: &Tenant) -> Vec<Action> {
        owed(&self.member, tenant, &self.flow, &self.factors)
    }

    pub fn purpose(&self) -> Purpose {
        Purpose::parse(&self.flow.purpose)
    }

    /// The context every page of the flow starts from: a signed-in member adding a factor
    /// or stepping up may go back to 「ログイン方法変更」 (their session is untouched).
    pub fn context(&self) -> tera::Context {
        let mut ctx = tera::Context::new();
        if self.purpose() != Purpose::Login {
            ctx.insert("cancel_to", "/login-methods");
        }
        ctx
    }

    /// Records that this flow proved `method` and, if it registered a device, that too.
    pub async fn factor_proven(
        &self,
        state: &AppState,
        tenant: &Tenant,
        method: MfaMethod,
        registered: bool,
    ) -> poem::Result<()> {
        let store = &state.store;
        store
            .flow_factor_verified(&tenant.id, &self.token_hash, method.as_str())
            .await
            .map_err(internal)?;
        if registered {
            store
                .flow_setup_done(&tenant.id, &self.token_hash)
                .await
                .map_err(internal)?;
        }
        Ok(())
    }
}

/// The flow of this request at one of `$action`s; otherwise the handler returns the
/// redirect to where the member has to be (see [`step`]).
macro_rules! flow_at {
    ($state:expr, $tenant:expr, $jar:expr, $($action:expr),+) => {
        match $crate::web::signin::step($state, $tenant, $jar, &[$($action),+]).await? {
            Ok(flow) => flow,
            Err(redirect) => return Ok(redirect),
        }
    };
}
pub(super) use flow_at;

/// Loads the flow and checks that the action owed now is one of `actions`; otherwise
/// answers with the redirect to where the member has to be.
pub(super) async fn step(
    state: &AppState,
    tenant: &Tenant,
    jar: &CookieJar,
    actions: &[Action],
) -> poem::Result<Result<Flow, Response>> {
    let flow = match Flow::load(state, tenant, jar).await? {
        Ok(flow) => flow,
        Err(to) => return Ok(Err(Redirect::see_other(to).into_response())),
    };
    match flow.owed(tenant).first() {
        Some(owed) if actions.contains(owed) => Ok(Ok(flow)),
        Some(&owed) => Ok(Err(Redirect::see_other(owed.path()).into_response())),
        None => Ok(Err(Redirect::see_other("/login/next").into_response())),
    }
}

fn secure(state: &AppState) -> bool {
    state.config.secure_cookies()
}

// --- login -------------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct LoginQuery {
    expired: Option<String>,
    locked: Option<String>,
}

#[handler]
pub async fn login_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    query: poem::web::Query<LoginQuery>,
) -> Response {
    let mut ctx = tera::Context::new();
    if query.expired.is_some() {
        ctx.insert("notice", "expired");
    }
    if query.locked.is_some() {
        ctx.insert("error", "locked");
    }
    render(&state, &tenant.0, &meta, "login.html", ctx, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    password: String,
}

#[handler]
pub async fn login(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
    Form(form): Form<LoginForm>,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let store = &state.store;
    let now = now_unix();
    let failed = |status| {
        let mut ctx = tera::Context::new();
        ctx.insert("error", "invalid_credentials");
        ctx.insert("user_id", &form.user_id);
        render(&state, tenant, &meta, "login.html", ctx, status)
    };

    // One address trying many user IDs is slowed down before any hashing.
    let recent = store
        .events_from_ip(&meta.ip, "login_failed", now - THROTTLE_WINDOW_SECS)
        .await
        .map_err(internal)?;
    if recent >= THROTTLE_FAILURES {
        let mut ctx = tera::Context::new();
        ctx.insert("error", "throttled");
        return Ok(render(
            &state,
            tenant,
            &meta,
            "login.html",
            ctx,
            StatusCode::TOO_MANY_REQUESTS,
        ));
    }

    let user_id = form.user_id.trim().to_ascii_lowercase();
    let plausible = !user_id.is_empty()
        && user_id.chars().count() <= MAX_USER_ID_INPUT
        && !user_id.chars().any(char::is_control)
        && !form.password.is_empty()
        && form.password.chars().count() <= tenant.settings.password.max_length as usize
        && !form.password.chars().any(char::is_control);
    if !plausible {
        meta.audit(store, tenant, None, "login_failed", "malformed input")
            .await;
        return Ok(failed(StatusCode::OK));
    }

    let member = store
        .member_by_user_id(&tenant.id, &user_id)
        .await
        .map_err(internal)?;
    let usable = member.as_ref().filter(|m| m.state != MemberState::Disabled);
    // Unknown, disabled or locked: the same hash work runs, so timing tells nothing.
    let verification = match state
        .hasher
        .verify(&form.password, usable.map(|m| m.password_hash.as_str()))
        .await
    {
        Ok(v) => v,
        Err(HashError::Busy) => {
            let mut ctx = tera::Context::new();
            ctx.insert("error", "busy");
            return Ok(render(
                &state,
                tenant,
                &meta,
                "login.html",
                ctx,
                StatusCode::SERVICE_UNAVAILABLE,
            ));
        }
        Err(HashError::Internal(e)) => return Err(internal(e)),
    };

    let Some(member) = usable else {
        meta.audit(
            store,
            tenant,
            None,
            "login_failed",
            "unknown or disabled user ID",
        )
        .await;
        return Ok(failed(StatusCode::OK));
    };
    if member.is_locked(now) {
        // Only someone who knows the password learns that the account is locked.
        if verification.ok {
            meta.audit(store, tenant, Some(&member.id), "login_refused_locked", "")
                .await;
            let mut ctx = tera::Context::new();
            ctx.insert("error", "locked");
            return Ok(render(
                &state,
                tenant,
                &meta,
                "login.html",
                ctx,
                StatusCode::FORBIDDEN,
            ));
        }
        meta.audit(store, tenant, Some(&member.id), "login_failed", "locked")
            .await;
        return Ok(failed(StatusCode::OK));
    }
    if !verification.ok {
        lockout_failure(
            &state,
            tenant,
            &meta,
            member,
            "login_failed",
            "wrong password",
        )
        .await?;
        return Ok(failed(StatusCode::OK));
    }
    if verification.needs_rehash {
        if let Ok(hash) = state.hasher.hash(&form.password).await {
            store
                .rehash_password(&tenant.id, &member.id, &hash)
                .await
                .map_err(internal)?;
        }
    }

    meta.audit(store, tenant, Some(&member.id), "login_password_ok", "")
        .await;
    start_flow(
        &state,
        tenant,
        jar,
        StartFlow {
            member_id: &member.id,
            purpose: Purpose::Login,
            return_to: "/",
            lifetime_secs: FLOW_SECS,
            factor_verified: false,
        },
    )
    .await
}

/// A flow to open for a member whose password (or recent session) is proven.
pub(super) struct StartFlow<'a> {
    pub member_id: &'a str,
    pub purpose: Purpose,
    pub return_to: &'a str,
    pub lifetime_secs: i64,
    pub factor_verified: bool,
}

/// Opens a flow bound to a new `portal_flow` cookie and sends the member to its first
/// owed action.
pub(super) async fn start_flow(
    state: &AppState,
    tenant: &Tenant,
    jar: &CookieJar,
    start: StartFlow<'_>,
) -> poem::Result<Response> {
    let (token, token_hash) = session::new_token();
    state
        .store
        .create_flow(
            &tenant.id,
            &crate::store::NewFlow {
                token_hash: &token_hash,
                member_id: start.member_id,
                purpose: start.purpose.as_str(),
                return_to: start.return_to,
                expires_at: now_unix() + start.lifetime_secs,
                factor_verified: start.factor_verified,
            },
        )
        .await
        .map_err(internal)?;
    jar.add(session::cookie(
        FLOW_COOKIE,
        &token,
        secure(state),
        Some(start.lifetime_secs),
    ));
    Ok(Redirect::see_other("/login/next").into_response())
}

/// Counts a failure against the member and locks the account at the tenant's limit.
/// Counts a failed proof (`event`, e.g. `login_failed`) against the member and locks the
/// account at the tenant's limit. Returns true if this failure locked it.
pub(super) async fn lockout_failure(
    state: &AppState,
    tenant: &Tenant,
    meta: &RequestMeta,
    member: &Member,
    event: &str,
    what: &str,
) -> poem::Result<bool> {
    let policy = &tenant.settings.lockout;
    let until = match policy.mode {
        crate::tenant::settings::LockMode::Temporary => {
            now_unix() + i64::from(policy.duration_minutes) * 60
        }
        crate::tenant::settings::LockMode::UntilUnlocked => i64::MAX,
    };
    let locked = state
        .store
        .record_login_failure(&tenant.id, &member.id, policy.max_failures.into(), until)
        .await
        .map_err(internal)?;
    meta.audit(&state.store, tenant, Some(&member.id), event, what)
        .await;
    if locked {
        meta.audit(
            &state.store,
            tenant,
            Some(&member.id),
            "account_locked",
            what,
        )
        .await;
    }
    Ok(locked)
}

/// Sends the member to the action owed now, or finishes the sign-in.
#[handler]
pub async fn next(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    meta: RequestMeta,
    jar: &CookieJar,
) -> poem::Result<Response> {
    let tenant = &tenant.0;
    let flow = match Flow::load(&state, tenant, jar).await? {
        Ok(flow) => flow,
        Err(to) => return Ok(Redirect::see_other(to).into_response()),
    };
    if let Some(action) = flow.owed(tenant).first() {
        return Ok(Redirect::see_other(action.path()).into_response());
    }
    // Nothing owed: the session starts with a fresh token; the flow is spent.
    let store = &state.store;
    store
        .delete_flow(&tenant.id, &flow.token_hash)
        .await
        .map_err(internal)?;
    store
        .record_login_success(&tenant.id, &flow.member.id)
        .await
        .map_err(internal)?;
    if let Some(old) = session::cookie_token_hash(jar, SESSION_COOKIE) {
        store
            .delete_session(&tenant.id, &old)
            .await
            .map_err(internal)?;
    }
    let (token, token_hash) = session::new_token();
    let auth_method = flow.flow.factor_method.as_deref().unwrap_or("password");
    store
        .create_session(&tenant.id, &token_hash, &flow.member.id, auth_method)
        .await
        .map_err(internal)?;
    let event = match flow.purpose() {
        Purpose::Login => "login_succeeded",
        Purpose::StepUp => "step_up_succeeded",
        Purpose::Add(_) => "factor_add_finished",
    };
    meta.audit(store, tenant, Some(&flow.member.id), event, auth_method)
        .await;
    session::remove_cookie(jar, FLOW_COOKIE, secure(&state));
    jar.add(session::cookie(
        SESSION_COOKIE,
        &token,
        secure(&state),
        None,
    ));
    let to = if flow.flow.return_to.starts_with('/') {
        flow.flow.return_to.as_str()
    } else {
        "/"
    };
    Ok(Redirect::see_other(to).into_response())
}

/// The member header shown on signed-in pages.
pub fn member_view(member: &Member) -> MemberView {
    MemberView {
        name: member.display_name.clone(),
        user_id: member.user_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::{TenantId, Terms};

    fn tenant(methods: Vec<MfaMethod>, required: bool) -> Tenant {
        let mut settings = crate::tenant::settings::TenantSettings::default();
        settings.mfa.methods = methods;
        settings.mfa.required = required;
        Tenant {
            id: TenantId::from_db("t1".into()),
            slug: "t".into(),
            display_name: "T".into(),
            enabled: true,
            aliases: Vec::new(),
            settings,
            services: Vec::new(),
            terms: Terms {
                current: String::new(),
                versions: Vec::new(),
            },
            revision: 1,
        }
    }

    /// A member past the first login, who chose `method`.
    fn member(method: Option<&str>) -> Member {
        Member {
            id: "m1".into(),
            tenant_id: TenantId::from_db("t1".into()),
            user_id: "member-1".into(),
            display_name: "組合員".into(),
            birth_date: "1980-04-01".into(),
            email: "m@example.jp".into(),
            password_hash: String::new(),
            password_created_at: 0,
            state: MemberState::Active,
            user_id_chosen: true,
            email_reviewed: true,
            email_confirmed: true,
            mfa_method: method.map(str::to_owned),
            email_otp_enabled: false,
            failed_logins: 0,
            locked_until: None,
            terms_version: None,
        }
    }

    fn flow(purpose: &str) -> LoginFlow {
        LoginFlow {
            member_id: "m1".into(),
            purpose: purpose.into(),
            birth_date_verified: false,
            factor_verified: false,
            pending_secret: None,
            return_to: "/".into(),
            expires_at: i64::MAX,
            factor_method: None,
            setup_done: false,
            ceremony: None,
            ceremony_expires_at: None,
            email_code_hash: None,
            email_code_sent_at: None,
            email_code_expires_at: None,
            email_code_attempts: 0,
        }
    }

    fn device(kind: &str) -> Device {
        Device {
            id: format!("{kind}-1"),
            member_id: "m1".into(),
            kind: kind.into(),
            name: kind.into(),
            secret: String::new(),
            created_at: 0,
            last_used_at: None,
            credential_id: None,
        }
    }

    fn both() -> Vec<MfaMethod> {
        vec![MfaMethod::Passkey, MfaMethod::Totp]
    }

    #[test]
    fn a_member_without_a_factor_sets_up_the_chosen_one() {
        let t = tenant(both(), true);
        let none = Factors::default();
        let owed = |m: &Member| owed(m, &t, &flow("login"), &none);
        assert_eq!(owed(&member(Some("passkey"))), [Action::SetupPasskey]);
        assert_eq!(owed(&member(Some("totp"))), [Action::SetupTotp]);
        // Not chosen, or not allowed (any more): the society's first method.
        assert_eq!(owed(&member(None)), [Action::SetupPasskey]);
        assert_eq!(owed(&member(Some("email_otp"))), [Action::SetupPasskey]);
        // Where MFA is optional, nothing chosen means nothing to set up.
        let optional = tenant(both(), false);
        assert!(super::owed(&member(None), &optional, &flow("login"), &none).is_empty());
    }

    #[test]
    fn a_held_factor_is_asked_before_the_terms_and_only_while_allowed() {
        let mut t = tenant(both(), true);
        t.terms.current = "2026-01".into();
        let m = member(Some("passkey"));
        let factors = Factors::of(&t, &m, vec![device("totp")]);
        // The member removed their passkey but keeps an app: no passkey set-up is forced.
        assert_eq!(
            owed(&m, &t, &flow("login"), &factors),
            [Action::SecondFactor, Action::AcceptTerms]
        );
        let mut proven = flow("login");
        proven.factor_verified = true;
        assert_eq!(owed(&m, &t, &proven, &factors), [Action::AcceptTerms]);
        // A society that stops allowing apps no longer counts them.
        let passkeys_only = tenant(vec![MfaMethod::Passkey], true);
        let factors = Factors::of(&passkeys_only, &m, vec![device("totp")]);
        assert_eq!(factors.count(), 0);
        assert_eq!(
            owed(&m, &passkeys_only, &flow("login"), &factors),
            [Action::SetupPasskey]
        );
    }

    #[test]
    fn step_up_and_add_flows_owe_only_their_own_steps() {
        let mut t = tenant(
            vec![MfaMethod::Passkey, MfaMethod::Totp, MfaMethod::EmailOtp],
            true,
        );
        t.terms.current = "2026-01".into();
        let mut m = member(Some("totp"));
        m.email_otp_enabled = true;
        let factors = Factors::of(&t, &m, vec![device("totp")]);
        assert_eq!(factors.methods(), [MfaMethod::Totp, MfaMethod::EmailOtp]);
        assert_eq!(
            owed(&m, &t, &flow("step_up"), &factors),
            [Action::SecondFactor]
        );
        assert_eq!(
            owed(&m, &t, &flow("add_passkey"), &factors),
            [Action::SecondFactor, Action::SetupPasskey]
        );
        let mut proven = flow("add_email_otp");
        proven.factor_verified = true;
        assert_eq!(owed(&m, &t, &proven, &factors), [Action::SetupEmailOtp]);
        proven.setup_done = true;
        assert!(owed(&m, &t, &proven, &factors).is_empty());
        // An unknown purpose is treated as a full login, never as less.
        assert_eq!(Purpose::parse("anything"), Purpose::Login);
    }
}
