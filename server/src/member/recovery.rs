//! Self-service recovery for members who cannot sign in.
//!
//! - A forgotten user ID (manual §3-4): the birth date and the e-mail address on record
//!   are given; when both match members of the society, one mail lists their user IDs (a
//!   household may share an address).
//! - A forgotten password (manual §3-3): the user ID is given; an active member of the
//!   society gets a 「パスワードをリセット」 link, a 256-bit token stored as its hash, valid
//!   `links.reset_lifetime_minutes`, voided by a newer link or a sign-in.
//!
//! The answer never tells whether anything matched: a request is checked for form and
//! counted against its address, then queued; the look-up and the mail run after the answer
//! in one worker, behind a bounded queue, so a flood cannot pile up work without limit.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::mail::EmailAddress;
use crate::state::AppState;
use crate::store::{now_unix, Actor, AuditEvent, MemberState, StoreResult};
use crate::tenant::Tenant;

/// Requests one address may make in [`THROTTLE_WINDOW_SECS`], per kind; past that, a
/// request is answered as usual and nothing is done.
pub const THROTTLE_REQUESTS: i64 = 10;
pub const THROTTLE_WINDOW_SECS: i64 = 15 * 60;
/// Reset links one member may be sent in [`THROTTLE_WINDOW_SECS`], whoever asks.
pub const RESET_LINKS_PER_MEMBER: i64 = 3;
/// Requests waiting for the worker; past that, requests are answered and dropped.
const QUEUE_CAPACITY: usize = 1024;

/// Where a request comes from, for the audit log.
#[derive(Debug, Clone)]
pub struct Requester {
    pub ip: String,
    pub user_agent: String,
}

/// What a member asked for without signing in; done after the answer.
pub enum Job {
    RemindUserIds {
        tenant: Arc<Tenant>,
        birth_date: String,
        email: EmailAddress,
        from: Requester,
    },
    SendResetLink {
        tenant: Arc<Tenant>,
        user_id: String,
        from: Requester,
    },
}

/// The kinds of request, as the audit log names them.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    UserIdReminder,
    PasswordReset,
}

impl Kind {
    fn requested(self) -> &'static str {
        match self {
            Kind::UserIdReminder => "user_id_reminder_requested",
            Kind::PasswordReset => "password_reset_requested",
        }
    }

    fn throttled(self) -> &'static str {
        match self {
            Kind::UserIdReminder => "user_id_reminder_throttled",
            Kind::PasswordReset => "password_reset_throttled",
        }
    }
}

/// The bounded queue between the request handlers and the worker.
pub struct Queue {
    tx: mpsc::Sender<Job>,
    rx: Mutex<Option<mpsc::Receiver<Job>>>,
}

impl Default for Queue {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }
}

impl Queue {
    /// Queues a job; false if the queue is full (the job is dropped).
    pub fn submit(&self, job: Job) -> bool {
        self.tx.try_send(job).is_ok()
    }
}

/// Starts the worker that runs queued requests one after another. Called once at start-up.
pub fn spawn_worker(
    state: Arc<AppState>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let mut rx = state.recovery.rx.lock().ok().and_then(|mut rx| rx.take())?;
    Some(tokio::spawn(async move {
        loop {
            let job = tokio::select! {
                job = rx.recv() => job,
                // Stopping: the requests already answered are still served (their mail is
                // queued in the outbox, which outlives this node), then the worker ends.
                _ = stop.wait_for(|s| *s) => rx.try_recv().ok(),
            };
            let Some(job) = job else { return };
            let result = match &job {
                Job::RemindUserIds {
                    tenant,
                    birth_date,
                    email,
                    from,
                } => remind_user_ids(&state, tenant, birth_date, email, from)
                    .await
                    .map(|_| ()),
                Job::SendResetLink {
                    tenant,
                    user_id,
                    from,
                } => send_reset_link(&state, tenant, user_id, from).await,
            };
            if let Err(error) = result {
                tracing::error!(%error, "a self-service recovery request failed");
            }
        }
    }))
}

/// Writes one audit event of an anonymous requester, about `member` if given.
async fn record(
    state: &AppState,
    tenant: &Tenant,
    from: &Requester,
    event: &str,
    member: Option<&str>,
    detail: &str,
) -> StoreResult<()> {
    state
        .store
        .audit(&AuditEvent {
            tenant: Some(&tenant.id),
            member_id: member,
            actor: Actor::Anonymous,
            event,
            ip: &from.ip,
            user_agent: &from.user_agent,
            detail,
            before: None,
            after: None,
        })
        .await
}

/// Records a request of `kind`; false when the address has asked too often and the
/// request is to be dropped.
async fn accept_request(
    state: &AppState,
    tenant: &Tenant,
    from: &Requester,
    kind: Kind,
) -> StoreResult<bool> {
    let limit = crate::throttle::Limit {
        name: kind.requested(),
        max: THROTTLE_REQUESTS,
        window_secs: THROTTLE_WINDOW_SECS,
    };
    let accepted = limit.attempt(&state.store, &from.ip).await?.is_some();
    let event = if accepted {
        kind.requested()
    } else {
        kind.throttled()
    };
    record(state, tenant, from, event, None, "").await?;
    Ok(accepted)
}

impl Job {
    fn kind(&self) -> Kind {
        match self {
            Job::RemindUserIds { .. } => Kind::UserIdReminder,
            Job::SendResetLink { .. } => Kind::PasswordReset,
        }
    }

    fn origin(&self) -> (&Arc<Tenant>, &Requester) {
        match self {
            Job::RemindUserIds { tenant, from, .. } | Job::SendResetLink { tenant, from, .. } => {
                (tenant, from)
            }
        }
    }
}

/// A request of someone who cannot sign in, already checked for form: counted against its
/// address and, unless that address asked too often, queued for the worker. A full queue
/// drops it (and says so in the audit log). The caller answers the same either way.
pub async fn submit(state: &AppState, job: Job) -> StoreResult<()> {
    let (tenant, from) = job.origin();
    let (tenant, from) = (Arc::clone(tenant), from.clone());
    if !accept_request(state, &tenant, &from, job.kind()).await? {
        return Ok(());
    }
    if !state.recovery.submit(job) {
        record(
            state,
            &tenant,
            &from,
            "recovery_request_dropped",
            None,
            "queue full",
        )
        .await?;
    }
    Ok(())
}

/// Mails the user IDs of the society's members born on `birth_date` whose address is
/// `email` (compared without regard to case), if there are any; disabled members are left
/// out. Returns how many user IDs were sent.
pub async fn remind_user_ids(
    state: &AppState,
    tenant: &Tenant,
    birth_date: &str,
    email: &EmailAddress,
    from: &Requester,
) -> anyhow::Result<usize> {
    let wanted = email.as_str().to_lowercase();
    let members: Vec<_> = state
        .store
        .members_born_on(&tenant.id, birth_date)
        .await?
        .into_iter()
        .filter(|m| m.state != MemberState::Disabled && m.email.to_lowercase() == wanted)
        .collect();
    if members.is_empty() {
        record(state, tenant, from, "user_id_reminder_unmatched", None, "").await?;
        return Ok(0);
    }
    let user_ids: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
    let mut ctx = tera::Context::new();
    ctx.insert("user_ids", &user_ids);
    ctx.insert(
        "login_url",
        &format!("{}/login", crate::admin::tenant_url(state, tenant)),
    );
    state
        .mailer
        .send(&state.store, tenant, email, "user_id_reminder", ctx)
        .await?;
    for m in &members {
        let id = Some(m.id.as_str());
        record(state, tenant, from, "user_id_reminder_sent", id, "").await?;
    }
    Ok(members.len())
}

/// The purpose of reset links in `one_time_tokens`.
pub const RESET_PURPOSE: &str = "password_reset";

/// Mails a 「パスワードをリセット」 link to the member with `user_id`, if there is an active,
/// unlocked one who has not been sent too many links lately. A new link voids the older
/// ones; nothing else about the account changes until the link is used.
pub async fn send_reset_link(
    state: &AppState,
    tenant: &Tenant,
    user_id: &str,
    from: &Requester,
) -> anyhow::Result<()> {
    let store = &state.store;
    let now = now_unix();
    let Some(member) = store.member_by_user_id(&tenant.id, user_id).await? else {
        record(state, tenant, from, "password_reset_unmatched", None, "").await?;
        return Ok(());
    };
    let id = Some(member.id.as_str());
    // Letters' temporary credentials, disabled and locked accounts: the society helps.
    let refused = match member.state {
        _ if member.is_locked(now) => Some("locked"),
        MemberState::Active => None,
        MemberState::Temporary => Some("temporary"),
        MemberState::Disabled => Some("disabled"),
    };
    if let Some(why) = refused {
        record(state, tenant, from, "password_reset_refused", id, why).await?;
        return Ok(());
    }
    let sent = store
        .tokens_since(
            &tenant.id,
            &member.id,
            RESET_PURPOSE,
            now - THROTTLE_WINDOW_SECS,
        )
        .await?;
    if sent >= RESET_LINKS_PER_MEMBER {
        record(
            state,
            tenant,
            from,
            "password_reset_refused",
            id,
            "too many links",
        )
        .await?;
        return Ok(());
    }
    let email = EmailAddress::parse(&member.email)?;
    let link = crate::member::links::Link {
        purpose: RESET_PURPOSE,
        payload: "",
        lifetime_minutes: tenant.settings.links.reset_lifetime_minutes,
        path: "/password-reset",
        template: "password_reset",
    };
    crate::member::links::send(state, tenant, &member, &email, &link).await?;
    record(state, tenant, from, "password_reset_sent", id, "").await?;
    Ok(())
}

/// Finishes a reset opened from a link: spends the link (false if it was used or voided
/// meanwhile, and then nothing changes), sets `password_hash`, ends every other session
/// and flow of the member, and tells them by mail. `factors_replaced` says whether this
/// reset also replaced their second factors.
pub async fn finish_reset(
    state: &AppState,
    tenant: &Tenant,
    member: &crate::store::Member,
    token_hash: &str,
    flow_hash: &str,
    password_hash: &str,
    factors_replaced: bool,
) -> anyhow::Result<bool> {
    let done = state
        .store
        .finish_password_reset(&tenant.id, &member.id, token_hash, flow_hash, password_hash)
        .await?;
    if !done {
        return Ok(false);
    }
    if let Ok(to) = EmailAddress::parse(&member.email) {
        let mut ctx = tera::Context::new();
        ctx.insert("name", &member.display_name);
        ctx.insert("factors_replaced", &factors_replaced);
        ctx.insert("at", &crate::web::pages::date_time(now_unix()));
        ctx.insert(
            "login_url",
            &format!("{}/login", crate::admin::tenant_url(state, tenant)),
        );
        if let Err(error) = state
            .mailer
            .send(&state.store, tenant, &to, "password_reset_done", ctx)
            .await
        {
            tracing::error!(%error, "queueing a password reset notice failed");
        }
    }
    Ok(true)
}
