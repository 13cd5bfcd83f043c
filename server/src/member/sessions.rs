//! What a member sees of their own sign-ins under 「ログイン方法変更」 (OWASP ASVS 5.0
//! §7.5.2): the browsers signed in now, which they can sign out (one or all the others),
//! and their recent sign-ins, failed ones included.

use std::sync::OnceLock;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::member::recovery::Requester;
use crate::state::AppState;
use crate::store::{Actor, AuditEvent, Member, StoreResult};
use crate::tenant::Tenant;

/// The events that make up a member's sign-in history.
pub const HISTORY_EVENTS: &[&str] = &[
    "login_succeeded",
    "login_failed",
    "login_refused_locked",
    "account_locked",
    "totp_failed",
    "passkey_failed",
    "email_otp_failed",
    "step_up_failed",
];
/// How many sign-ins the history shows.
pub const HISTORY_LENGTH: i64 = 20;

/// A browser signed in now.
#[derive(Debug, Clone, Serialize)]
pub struct Device {
    /// Names the session on the page without revealing anything that opens it.
    pub reference: String,
    /// 「Chrome（Android）」; empty when unknown.
    pub browser: String,
    pub ip: String,
    pub since: i64,
    pub last_seen: i64,
    pub method: String,
    /// The browser this page is shown in.
    pub current: bool,
}

/// One line of the sign-in history.
#[derive(Debug, Clone, Serialize)]
pub struct SignIn {
    pub at: i64,
    pub event: String,
    pub ok: bool,
    /// How a successful sign-in was made (`passkey`, `totp`, …).
    pub method: String,
    pub browser: String,
    pub ip: String,
}

/// The browser and system a User-Agent names, as people call them: 「Safari（iPhone）」.
pub fn browser_label(user_agent: &str) -> String {
    static PARSER: OnceLock<woothee::parser::Parser> = OnceLock::new();
    let parser = PARSER.get_or_init(woothee::parser::Parser::new);
    let Some(result) = parser.parse(user_agent) else {
        return String::new();
    };
    let known = |s: &str| !s.is_empty() && s != "UNKNOWN";
    match (known(result.name), known(result.os)) {
        (true, true) => format!("{}（{}）", result.name, result.os),
        (true, false) => result.name.to_owned(),
        (false, true) => result.os.to_owned(),
        (false, false) => String::new(),
    }
}

/// The page's name for a session: a hash of its token's hash, so the page never carries
/// what the database looks sessions up by.
pub fn reference(token_hash: &str) -> String {
    let digest = Sha256::digest(format!("session-ref:{token_hash}").as_bytes());
    hex::encode(&digest[..12])
}

/// Whether a session is still usable under the tenant's idle and absolute timeouts (an
/// expired one is deleted at its next request; until then it is not shown).
fn live(tenant: &Tenant, e: &crate::store::SessionEntry, now: i64) -> bool {
    let policy = &tenant.settings.session;
    now - e.last_seen_at <= i64::from(policy.idle_timeout_minutes) * 60
        && now - e.created_at <= i64::from(policy.absolute_timeout_minutes) * 60
}

/// The member's signed-in browsers, `current_hash` marking this one.
pub async fn devices(
    state: &AppState,
    tenant: &Tenant,
    member: &Member,
    current_hash: &str,
) -> StoreResult<Vec<Device>> {
    let entries = state.store.session_entries(&tenant.id, &member.id).await?;
    let now = crate::store::now_unix();
    Ok(entries
        .into_iter()
        .filter(|e| live(tenant, e, now))
        .map(|e| Device {
            reference: reference(&e.token_hash),
            browser: browser_label(&e.user_agent),
            ip: e.ip,
            since: e.created_at,
            last_seen: e.last_seen_at,
            method: e.auth_method,
            current: e.token_hash == current_hash,
        })
        .collect())
}

/// The member's recent sign-ins, newest first.
pub async fn history(
    state: &AppState,
    tenant: &Tenant,
    member: &Member,
) -> StoreResult<Vec<SignIn>> {
    let events = state
        .store
        .member_events(&tenant.id, &member.id, HISTORY_EVENTS, HISTORY_LENGTH)
        .await?;
    Ok(events
        .into_iter()
        .map(|e| {
            let ok = e.event == "login_succeeded";
            SignIn {
                at: e.created_at,
                method: if ok { e.detail } else { String::new() },
                ok,
                event: e.event,
                browser: browser_label(&e.user_agent),
                ip: e.ip,
            }
        })
        .collect())
}

/// Which sessions to end.
#[derive(Debug, Clone, Copy)]
pub enum Which<'a> {
    /// The one with this [`reference`].
    One(&'a str),
    /// Every session but the current one.
    Others,
}

/// Ends other sessions of the member (never the current one); audited. Returns how many
/// live sessions ended (expired ones named go too): 0 when the reference names none of
/// theirs.
pub async fn end(
    state: &AppState,
    tenant: &Tenant,
    member: &Member,
    current_hash: &str,
    which: Which<'_>,
    from: &Requester,
) -> StoreResult<u64> {
    let entries = state.store.session_entries(&tenant.id, &member.id).await?;
    let doomed: Vec<String> = entries
        .into_iter()
        .map(|e| e.token_hash)
        .filter(|hash| hash != current_hash)
        .filter(|hash| match which {
            Which::One(r) => {
                crate::crypto::constant_time_eq(reference(hash).as_bytes(), r.as_bytes())
            }
            Which::Others => true,
        })
        .collect();
    let ended = state
        .store
        .end_sessions(&tenant.id, &member.id, &doomed)
        .await?;
    if ended > 0 {
        let event = match which {
            Which::One(_) => "session_ended",
            Which::Others => "other_sessions_ended",
        };
        state
            .store
            .audit(&AuditEvent {
                tenant: Some(&tenant.id),
                member_id: Some(&member.id),
                actor: Actor::Member(&member.id),
                event,
                ip: &from.ip,
                user_agent: &from.user_agent,
                detail: &ended.to_string(),
                before: None,
                after: None,
            })
            .await?;
    }
    Ok(ended)
}
