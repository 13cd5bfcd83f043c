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

use super::pages::{render, render_static, MemberView};
use super::{internal, AppState, CurrentTenant, RequestMeta};
use crate::auth::password::HashError;
use crate::auth::session::{self, FLOW_COOKIE, SESSION_COOKIE};
use crate::store::{now_unix, Device, LoginFlow, Member, MemberState, Owner, StoreResult};
use crate::tenant::{FactorSetup, FirstLoginStep, MfaMethod, Tenant};

/// How long a sign-in may take from password to the last step.
const FLOW_SECS: i64 = 30 * 60;
/// Longest user ID anyone may type; longer input is refused without a look-up.
const MAX_USER_ID_INPUT: usize = 64;

/// One step of a sign-in, in the order of the manuals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    VerifyBirthDate,
    AcceptTerms,
    ChooseUserId,
    UpdatePassword,
    /// The method on a screen of its own (kanekakenpo 【8】).
    ChooseMethod,
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
    /// Choose a new password in a flow opened from a 「パスワードをリセット」 link.
    ResetPassword,
}

impl Action {
    /// The page of this action on the member side; the console's is under `/admin`.
    pub fn path(self) -> &'static str {
        match self {
            Action::VerifyBirthDate => "/login/birth-date",
            Action::AcceptTerms => "/login/terms",
            Action::ChooseUserId => "/login/user-id",
            Action::ChooseMethod => "/login/method",
            Action::UpdatePassword => "/login/password",
            Action::ReviewEmail => "/login/email",
            Action::ConfirmEmail => "/login/email/confirm",
            Action::SecondFactor => "/login/factor",
            Action::SetupTotp => "/login/totp",
            Action::SetupPasskey => "/login/passkey/setup",
            Action::SetupEmailOtp => "/login/email-otp",
            Action::ResetPassword => "/password-reset/new",
        }
    }

    /// The set-up step of a kind of factor.
    pub fn setup(method: MfaMethod) -> Self {
        match method {
            MfaMethod::Passkey => Action::SetupPasskey,
            MfaMethod::Totp => Action::SetupTotp,
            MfaMethod::EmailOtp => Action::SetupEmailOtp,
        }
    }
}

/// Why a flow exists; `add_*` flows register one more factor from 「ログイン方法変更」;
/// `reset` flows are opened by a 「パスワードをリセット」 link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Login,
    StepUp,
    Add(MfaMethod),
    Reset,
}

impl Purpose {
    pub fn parse(s: &str) -> Self {
        match s {
            "step_up" => Purpose::StepUp,
            "add_totp" => Purpose::Add(MfaMethod::Totp),
            "add_passkey" => Purpose::Add(MfaMethod::Passkey),
            "add_email_otp" => Purpose::Add(MfaMethod::EmailOtp),
            "reset" => Purpose::Reset,
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
            Purpose::Reset => "reset",
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
        Self::allowed(
            &tenant.settings.mfa.methods,
            member.email_otp_enabled,
            devices,
        )
    }

    /// The devices of the kinds in `methods`; `email` if e-mail codes are a factor of the
    /// owner and allowed.
    pub fn allowed(methods: &[MfaMethod], email: bool, devices: Vec<Device>) -> Self {
        let allowed = |m: MfaMethod| methods.contains(&m);
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
            email: email && allowed(MfaMethod::EmailOtp),
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
        Purpose::Reset => return owed_in_reset(member, tenant, flow, factors),
        Purpose::Login => {}
    }
    let temporary = member.state == MemberState::Temporary;
    let first_login = &tenant.settings.first_login;
    if temporary && first_login.has(FirstLoginStep::BirthDate) && !member.birth_date_verified {
        actions.push(Action::VerifyBirthDate);
    }
    if second_factor {
        actions.push(Action::SecondFactor);
    }
    // The rest in the order of the society's guide; a step already done is passed, so a
    // member who left part-way resumes at the first step not done.
    for step in &first_login.steps {
        let action = match step {
            FirstLoginStep::BirthDate => None,
            FirstLoginStep::Terms => {
                let current = &tenant.terms.current;
                (!current.is_empty() && member.terms_version.as_deref() != Some(current.as_str()))
                    .then_some(Action::AcceptTerms)
            }
            FirstLoginStep::UserId => (!member.user_id_chosen).then_some(Action::ChooseUserId),
            // A member who keeps the user ID of the society's old system still chooses
            // the method, on the method's own screen.
            FirstLoginStep::UserIdAndMethod if !member.user_id_chosen => Some(Action::ChooseUserId),
            FirstLoginStep::UserIdAndMethod | FirstLoginStep::Method => {
                (member.first_login_done_at.is_none()
                    && factors.count() == 0
                    && member.mfa_method.is_none())
                .then_some(Action::ChooseMethod)
            }
            FirstLoginStep::Password => {
                (temporary || flow.password_outdated).then_some(Action::UpdatePassword)
            }
            FirstLoginStep::Email => (!member.email_reviewed).then_some(Action::ReviewEmail),
            FirstLoginStep::EmailLink => (!member.email_confirmed).then_some(Action::ConfirmEmail),
        };
        actions.extend(action);
    }
    // The factor: at the end of the first login, or where the society sets it up at the
    // next sign-in, at every sign-in after the first login until one is registered.
    let set_up_now = match first_login.factor_setup {
        FactorSetup::Now => true,
        FactorSetup::NextLogin => member.first_login_done_at.is_some(),
    };
    if factors.count() == 0 && set_up_now {
        if let Some(method) = method_to_set_up(member, tenant) {
            actions.push(Action::setup(method));
        }
    }
    actions
}

/// The factor a member without any sets up: the one chosen at first login; where the
/// society requires a second factor and none was chosen, its first method.
pub fn method_to_set_up(member: &Member, tenant: &Tenant) -> Option<MfaMethod> {
    let allowed = &tenant.settings.mfa.methods;
    let chosen = allowed
        .iter()
        .copied()
        .find(|m| member.mfa_method.as_deref() == Some(m.as_str()));
    match chosen {
        Some(m) => Some(m),
        None if tenant.settings.mfa.required => allowed.first().copied(),
        None => None,
    }
}

/// A reset (manual §3-3): where the society resets the factors with the password, the
/// member registers an authenticator app again (§3-3 ⑥–⑨), which replaces every factor
/// they held; elsewhere they first pass a factor they hold, or set one up if they hold
/// none and the society requires one. Then the new password, then terms not yet accepted.
fn owed_in_reset(
    member: &Member,
    tenant: &Tenant,
    flow: &LoginFlow,
    factors: &Factors,
) -> Vec<Action> {
    let mut actions = Vec::new();
    if !flow.setup_done {
        if tenant.settings.mfa.reset_with_password {
            if let Some(method) = reset_factor(member, tenant) {
                actions.push(Action::setup(method));
            }
        } else if factors.count() > 0 {
            if !flow.factor_verified {
                actions.push(Action::SecondFactor);
            }
        } else if let Some(method) = method_to_set_up(member, tenant) {
            actions.push(Action::setup(method));
        }
    }
    if flow.reset_token_hash.is_some() {
        actions.push(Action::ResetPassword);
    }
    let current = &tenant.terms.current;
    if !current.is_empty() && member.terms_version.as_deref() != Some(current.as_str()) {
        actions.push(Action::AcceptTerms);
    }
    actions
}

/// The factor a reset that replaces factors registers: an authenticator app as the manual
/// shows, or where the society does not allow apps, the member's own kind or its first.
pub fn reset_factor(member: &Member, tenant: &Tenant) -> Option<MfaMethod> {
    if tenant.settings.mfa.methods.contains(&MfaMethod::Totp) {
        return Some(MfaMethod::Totp);
    }
    method_to_set_up(member, tenant).or_else(|| tenant.settings.mfa.methods.first().copied())
}

/// Which side of the portal a sign-in belongs to: the member pages or the society admin
/// console. The steps are the same machine; the side decides the paths, the cookie and
/// the pages that show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Member,
    Admin,
}

impl Audience {
    /// `path` (a member-side path such as `/login/next`) on this side.
    pub fn path(self, path: &str) -> String {
        match self {
            Audience::Member => path.to_owned(),
            Audience::Admin => format!("/admin{path}"),
        }
    }

    pub fn flow_cookie(self) -> &'static str {
        match self {
            Audience::Member => FLOW_COOKIE,
            Audience::Admin => crate::auth::session::ADMIN_FLOW_COOKIE,
        }
    }

    fn cookie_path(self) -> &'static str {
        match self {
            Audience::Member => "/",
            Audience::Admin => "/admin",
        }
    }

    /// Renders a sign-in page of this side: the tenant's theme, or the console.
    pub fn render(
        self,
        state: &AppState,
        tenant: &Tenant,
        meta: &RequestMeta,
        template: &str,
        ctx: tera::Context,
        status: StatusCode,
    ) -> Response {
        match self {
            Audience::Member => render(state, tenant, meta, template, ctx, status),
            Audience::Admin => {
                crate::web::admin::console::render(state, tenant, meta, None, template, ctx, status)
            }
        }
    }

    fn redirect(self, path: &str) -> Response {
        Redirect::see_other(self.path(path)).into_response()
    }
}

/// Who signs in through a flow: a member or a society admin. The steps owed are computed
/// from the account and the tenant; the pages of every step are shared.
pub trait Subject: Sized + Send + Sync {
    const AUDIENCE: Audience;
    /// Loads the account a flow belongs to, if the flow is of this kind.
    fn load(
        state: &AppState,
        tenant: &Tenant,
        flow: &LoginFlow,
    ) -> impl std::future::Future<Output = StoreResult<Option<Self>>> + Send;
    fn owner(&self) -> Owner<'_>;
    /// The account name an authenticator app or a passkey prompt shows.
    fn account_label(&self) -> &str;
    /// The name a passkey prompt shows beside the account name.
    fn display_name(&self) -> &str;
    /// Where notices about the account's factors go, and the name they greet.
    fn notice_to(&self) -> (&str, &str);
    /// The kind of factor this account prefers at sign-in.
    fn preferred_method(&self) -> Option<&str>;
    fn unusable(&self, now: i64) -> bool;
    /// The second-factor kinds this account may hold under the tenant's policy.
    fn methods(tenant: &Tenant) -> Vec<MfaMethod>;
    fn email_factor(&self) -> bool;
    /// What the account still owes in this flow before a session may be issued.
    fn owed(&self, tenant: &Tenant, flow: &LoginFlow, factors: &Factors) -> Vec<Action>;
}

impl Subject for Member {
    const AUDIENCE: Audience = Audience::Member;

    async fn load(
        state: &AppState,
        tenant: &Tenant,
        flow: &LoginFlow,
    ) -> StoreResult<Option<Self>> {
        match &flow.member_id {
            Some(id) => state.store.member(&tenant.id, id).await,
            None => Ok(None),
        }
    }

    fn owner(&self) -> Owner<'_> {
        Owner::member(&self.id)
    }

    fn account_label(&self) -> &str {
        &self.user_id
    }

    fn display_name(&self) -> &str {
        &self.display_name
    }

    fn notice_to(&self) -> (&str, &str) {
        (&self.email, &self.display_name)
    }

    fn preferred_method(&self) -> Option<&str> {
        self.mfa_method.as_deref()
    }

    fn unusable(&self, now: i64) -> bool {
        self.is_locked(now) || self.state == MemberState::Disabled
    }

    fn methods(tenant: &Tenant) -> Vec<MfaMethod> {
        tenant.settings.mfa.methods.clone()
    }

    fn email_factor(&self) -> bool {
        self.email_otp_enabled
    }

    fn owed(&self, tenant: &Tenant, flow: &LoginFlow, factors: &Factors) -> Vec<Action> {
        owed(self, tenant, flow, factors)
    }
}

/// Names the kind of account a shared sign-in handler serves (`Side<Member>`,
/// `Side<Admin>`); taken from nothing in the request.
pub struct Side<S>(std::marker::PhantomData<S>);

impl<'a, S: Subject> poem::FromRequest<'a> for Side<S> {
    async fn from_request(
        _req: &'a poem::Request,
        _body: &mut poem::RequestBody,
    ) -> poem::Result<Self> {
        Ok(Self(std::marker::PhantomData))
    }
}

/// The flow of this request with its account, or a redirect to the login page.
pub struct Flow<S = Member> {
    pub token_hash: String,
    pub flow: LoginFlow,
    pub who: S,
    /// The second factors the account holds.
    pub factors: Factors,
}

/// Where an account goes when its flow is gone.
const EXPIRED: &str = "/login?expired=1";
const LOCKED: &str = "/login?locked=1";

impl<S: Subject> Flow<S> {
    async fn load(
        state: &AppState,
        tenant: &Tenant,
        jar: &CookieJar,
    ) -> poem::Result<Result<Self, &'static str>> {
        let Some(token_hash) = session::cookie_token_hash(jar, S::AUDIENCE.flow_cookie()) else {
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
        let Some(who) = S::load(state, tenant, &flow).await.map_err(internal)? else {
            return Ok(Err(EXPIRED));
        };
        if who.unusable(now_unix()) {
            state
                .store
                .delete_flow(&tenant.id, &token_hash)
                .await
                .map_err(internal)?;
            // The account proved the password in this flow: they may know why it ended.
            return Ok(Err(LOCKED));
        }
        let devices = state
            .store
            .devices(&tenant.id, &who.owner())
            .await
            .map_err(internal)?;
        let factors = Factors::allowed(&S::methods(tenant), who.email_factor(), devices);
        Ok(Ok(Self {
            token_hash,
            flow,
            who,
            factors,
        }))
    }

    pub fn owed(&self, tenant: &Tenant) -> Vec<Action> {
        self.who.owed(tenant, &self.flow, &self.factors)
    }

    pub fn purpose(&self) -> Purpose {
        Purpose::parse(&self.flow.purpose)
    }

    /// `path` on this flow's side.
    pub fn path(&self, path: &str) -> String {
        S::AUDIENCE.path(path)
    }

    /// Renders a page of this flow's side.
    pub fn render(
        &self,
        state: &AppState,
        tenant: &Tenant,
        meta: &RequestMeta,
        template: &str,
        ctx: tera::Context,
    ) -> Response {
        S::AUDIENCE.render(state, tenant, meta, template, ctx, StatusCode::OK)
    }

    /// On to the next owed action.
    pub fn next(&self) -> Response {
        S::AUDIENCE.redirect("/login/next")
    }

    /// The context every page of the flow starts from: a signed-in member adding a factor
    /// or stepping up may go back to 「ログイン方法変更」 (their session is untouched).
    pub fn context(&self) -> tera::Context {
        let mut ctx = tera::Context::new();
        match self.purpose() {
            Purpose::StepUp | Purpose::Add(_) => ctx.insert("cancel_to", "/login-methods"),
            // The factor pages of a reset say so, and lead on to the new password.
            Purpose::Reset => ctx.insert("reset", &true),
            Purpose::Login => {}
        }
        ctx
    }

    /// Whether registering a factor in this flow replaces every factor the account held:
    /// a reset where the society resets factors with the password.
    pub fn replaces_factors(&self, tenant: &Tenant) -> bool {
        self.purpose() == Purpose::Reset && tenant.settings.mfa.reset_with_password
    }

    /// Removes every factor of the account before a reset registers its new one.
    pub async fn clear_factors_for_reset(
        &self,
        state: &AppState,
        tenant: &Tenant,
    ) -> poem::Result<()> {
        if !self.replaces_factors(tenant) {
            return Ok(());
        }
        let owner = self.who.owner();
        let removed = state
            .store
            .delete_all_devices(&tenant.id, &owner)
            .await
            .map_err(internal)?;
        state
            .store
            .set_email_otp_enabled(&tenant.id, owner.id(), false)
            .await
            .map_err(internal)?;
        tracing::debug!(removed, "factors replaced by a reset");
        Ok(())
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
        state.metrics.sign_in(method.as_str(), "ok");
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
    (<$who:ty> $state:expr, $tenant:expr, $jar:expr, $($action:expr),+) => {
        match $crate::web::signin::step::<$who>($state, $tenant, $jar, &[$($action),+]).await? {
            Ok(flow) => flow,
            Err(redirect) => return Ok(redirect),
        }
    };
    ($state:expr, $tenant:expr, $jar:expr, $($action:expr),+) => {
        flow_at!(<$crate::store::Member> $state, $tenant, $jar, $($action),+)
    };
}
pub(crate) use flow_at;

/// Loads the flow and checks that the action owed now is one of `actions`; otherwise
/// answers with the redirect to where the member has to be.
pub async fn step<S: Subject>(
    state: &AppState,
    tenant: &Tenant,
    jar: &CookieJar,
    actions: &[Action],
) -> poem::Result<Result<Flow<S>, Response>> {
    let audience = S::AUDIENCE;
    let flow = match Flow::<S>::load(state, tenant, jar).await? {
        Ok(flow) => flow,
        Err(to) => return Ok(Err(audience.redirect(to))),
    };
    match flow.owed(tenant).first() {
        Some(owed) if actions.contains(owed) => Ok(Ok(flow)),
        Some(&owed) => Ok(Err(audience.redirect(owed.path()))),
        None => Ok(Err(audience.redirect("/login/next"))),
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
    if query.expired.is_none() && query.locked.is_none() {
        return render_static(&state, &tenant.0, &meta, "login.html");
    }
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
        state.metrics.sign_in("password", "failed");
        let mut ctx = tera::Context::new();
        ctx.insert("error", "invalid_credentials");
        ctx.insert("user_id", &form.user_id);
        render(&state, tenant, &meta, "login.html", ctx, status)
    };

    // One address trying many user IDs is slowed down before any hashing: the attempt is
    // counted first, and given back only when the password proves right.
    let Some(attempt) = crate::throttle::MEMBER_LOGIN
        .attempt(store, &meta.ip)
        .await
        .map_err(internal)?
    else {
        state.metrics.throttled.with_label_values(&["login"]).inc();
        state.metrics.sign_in("password", "throttled");
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
    };

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
            attempt.give_back(store).await.map_err(internal)?;
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

    attempt.give_back(store).await.map_err(internal)?;
    state.metrics.sign_in("password", "ok");
    meta.audit(store, tenant, Some(&member.id), "login_password_ok", "")
        .await;
    // A password that met the rules when it was set but not the society's rules of today
    // is replaced after this sign-in (a temporary password is replaced anyway).
    let password_outdated = member.state == MemberState::Active
        && crate::member::policy::check_password(
            &tenant.settings.password,
            &form.password,
            Some(&member.user_id),
        )
        .is_err();
    if password_outdated {
        meta.audit(store, tenant, Some(&member.id), "password_outdated", "")
            .await;
    }
    start_flow(
        &state,
        tenant,
        jar,
        StartFlow {
            owner: Owner::member(&member.id),
            purpose: Purpose::Login,
            return_to: "/",
            lifetime_secs: FLOW_SECS,
            factor_verified: false,
            reset_token_hash: None,
            password_outdated,
        },
    )
    .await
}

/// A flow to open for a member whose password (or recent session) is proven.
pub struct StartFlow<'a> {
    pub owner: Owner<'a>,
    pub purpose: Purpose,
    pub return_to: &'a str,
    pub lifetime_secs: i64,
    pub factor_verified: bool,
    /// A reset flow: the hash of the link's token, spent with the new password.
    pub reset_token_hash: Option<&'a str>,
    /// The password proven no longer meets the society's rules.
    pub password_outdated: bool,
}

/// Opens a flow bound to a new `portal_flow` cookie and sends the member to its first
/// owed action.
pub async fn start_flow(
    state: &AppState,
    tenant: &Tenant,
    jar: &CookieJar,
    start: StartFlow<'_>,
) -> poem::Result<Response> {
    let audience = match start.owner {
        Owner::Member(_) => Audience::Member,
        Owner::Admin(_) => Audience::Admin,
    };
    let (token, token_hash) = session::new_token();
    state
        .store
        .create_flow(
            &tenant.id,
            &crate::store::NewFlow {
                token_hash: &token_hash,
                owner: start.owner,
                purpose: start.purpose.as_str(),
                return_to: start.return_to,
                expires_at: now_unix() + start.lifetime_secs,
                factor_verified: start.factor_verified,
                reset_token_hash: start.reset_token_hash,
                password_outdated: start.password_outdated,
            },
        )
        .await
        .map_err(internal)?;
    let mut cookie = session::cookie(
        audience.flow_cookie(),
        &token,
        secure(state),
        Some(start.lifetime_secs),
    );
    cookie.set_path(audience.cookie_path());
    jar.add(cookie);
    Ok(audience.redirect("/login/next"))
}

/// Counts a failed proof (`event`, e.g. `login_failed`) against a member or admin and
/// locks the account at the tenant's limit. Returns true if this failure locked it.
pub async fn lockout_failure<S: Subject>(
    state: &AppState,
    tenant: &Tenant,
    meta: &RequestMeta,
    who: &S,
    event: &str,
    what: &str,
) -> poem::Result<bool> {
    // Password failures are counted where the password is checked; these are the second
    // factors'.
    for method in ["totp", "passkey", "email_otp"] {
        if event.starts_with(method) {
            state.metrics.sign_in(method, "failed");
        }
    }
    let policy = &tenant.settings.lockout;
    let until = match policy.mode {
        crate::tenant::settings::LockMode::Temporary => {
            now_unix() + i64::from(policy.duration_minutes) * 60
        }
        crate::tenant::settings::LockMode::UntilUnlocked => i64::MAX,
    };
    let locked = state
        .store
        .record_login_failure(&tenant.id, &who.owner(), policy.max_failures.into(), until)
        .await
        .map_err(internal)?;
    meta.audit_by(&state.store, tenant, who.owner(), event, what)
        .await;
    if locked {
        state
            .metrics
            .lockouts
            .with_label_values(&[tenant.slug.as_str()])
            .inc();
        meta.audit_by(&state.store, tenant, who.owner(), "account_locked", what)
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
    let flow = match Flow::<Member>::load(&state, tenant, jar).await? {
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
        .record_login_success(&tenant.id, &flow.who.owner())
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
    let client = crate::store::SessionClient {
        ip: &meta.ip,
        user_agent: &meta.user_agent,
    };
    store
        .create_session(&tenant.id, &token_hash, &flow.who.id, auth_method, &client)
        .await
        .map_err(internal)?;
    if flow.purpose() == Purpose::Login
        && flow.who.first_login_done_at.is_none()
        && store
            .first_login_done(&tenant.id, &flow.who.id)
            .await
            .map_err(internal)?
    {
        meta.audit(
            store,
            tenant,
            Some(&flow.who.id),
            "first_login_completed",
            "",
        )
        .await;
    }
    if flow.purpose() == Purpose::Login {
        // Signing in voids any 「パスワードをリセット」 link still waiting in the mailbox.
        store
            .void_tokens(&tenant.id, &flow.who.id, "password_reset")
            .await
            .map_err(internal)?;
    }
    let event = match flow.purpose() {
        Purpose::Login | Purpose::Reset => "login_succeeded",
        Purpose::StepUp => "step_up_succeeded",
        Purpose::Add(_) => "factor_add_finished",
    };
    meta.audit(store, tenant, Some(&flow.who.id), event, auth_method)
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
            page_key: Default::default(),
        }
    }

    /// A member past the first login, who chose `method`.
    fn member(method: Option<&str>) -> Member {
        Member {
            id: crate::ids::MemberId::from_db("m1".into()),
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
            terms_accepted_at: None,
            card_symbol: String::new(),
            card_number: String::new(),
            name_kana: String::new(),
            created_at: 0,
            birth_date_verified: false,
            first_login_done_at: Some(0),
        }
    }

    fn flow(purpose: &str) -> LoginFlow {
        LoginFlow {
            member_id: Some("m1".into()),
            admin_id: None,
            purpose: purpose.into(),
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
            reset_token_hash: None,
            password_outdated: false,
        }
    }

    fn device(kind: &str) -> Device {
        Device {
            id: format!("{kind}-1"),
            owner_id: "m1".into(),
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

    /// A member straight from the society's letter.
    fn temporary() -> Member {
        Member {
            state: MemberState::Temporary,
            user_id_chosen: false,
            email_reviewed: false,
            email_confirmed: false,
            first_login_done_at: None,
            ..member(None)
        }
    }

    #[test]
    fn the_first_login_follows_the_configured_order_and_resumes_where_it_stopped() {
        use crate::tenant::settings::FirstLoginPolicy;
        use FirstLoginStep as S;
        let mut t = tenant(
            vec![MfaMethod::Passkey, MfaMethod::Totp, MfaMethod::EmailOtp],
            true,
        );
        t.terms.current = "2026-01".into();
        // kanekakenpo's guide: no user ID step, the method on its own screen, the password
        // last, the method set up at the next login.
        t.settings.first_login = FirstLoginPolicy {
            steps: vec![
                S::BirthDate,
                S::Terms,
                S::Email,
                S::EmailLink,
                S::Method,
                S::Password,
            ],
            factor_setup: FactorSetup::NextLogin,
        };
        let none = Factors::default();
        let m = temporary();
        assert_eq!(
            owed(&m, &t, &flow("login"), &none),
            [
                Action::VerifyBirthDate,
                Action::AcceptTerms,
                Action::ReviewEmail,
                Action::ConfirmEmail,
                Action::ChooseMethod,
                Action::UpdatePassword
            ]
        );
        // Birth date proved and terms accepted in an earlier sign-in: the next one resumes
        // at the e-mail address.
        let resumed = Member {
            birth_date_verified: true,
            terms_version: Some("2026-01".into()),
            ..temporary()
        };
        assert_eq!(
            owed(&resumed, &t, &flow("login"), &none)[0],
            Action::ReviewEmail
        );
        // All done but the password: no set-up in this flow; the first login ends.
        let last = Member {
            email_reviewed: true,
            email_confirmed: true,
            mfa_method: Some("email_otp".into()),
            ..resumed
        };
        assert_eq!(
            owed(&last, &t, &flow("login"), &none),
            [Action::UpdatePassword]
        );
        // The next sign-in owes the set-up of the chosen method, and only that.
        let later = Member {
            state: MemberState::Active,
            first_login_done_at: Some(1),
            ..last
        };
        assert_eq!(
            owed(&later, &t, &flow("login"), &none),
            [Action::setup(MfaMethod::EmailOtp)]
        );
        // With the set-up now, the same member owes it in the first flow already.
        t.settings.first_login.factor_setup = FactorSetup::Now;
        let first = Member {
            first_login_done_at: None,
            ..later
        };
        assert_eq!(
            owed(&first, &t, &flow("login"), &none),
            [Action::setup(MfaMethod::EmailOtp)]
        );
    }

    #[test]
    fn a_kept_user_id_still_chooses_the_method_on_its_own_screen() {
        let t = tenant(both(), true);
        let kept = Member {
            user_id_chosen: true,
            ..temporary()
        };
        let owed = owed(&kept, &t, &flow("login"), &Factors::default());
        assert!(owed.contains(&Action::ChooseMethod), "{owed:?}");
        assert!(!owed.contains(&Action::ChooseUserId), "{owed:?}");
        let fresh = owed_of_fresh(&t);
        assert!(fresh.contains(&Action::ChooseUserId) && !fresh.contains(&Action::ChooseMethod));
    }

    fn owed_of_fresh(t: &Tenant) -> Vec<Action> {
        owed(&temporary(), t, &flow("login"), &Factors::default())
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
