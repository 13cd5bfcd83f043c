//! Member actions of the console and the API: search, register (temporary credentials and
//! a letter), unlock, rename, reissue the password, reset the second factors, disable and
//! enable, end every session. Each asks nothing of its caller but parsed input, and each
//! is audited; those that change how a member signs in mail the member a notice.

use serde::Serialize;

use super::{Ctx, FieldProblem, ServiceError};
use crate::ids::MemberId;
use crate::mail::EmailAddress;
use crate::member::credentials;
use crate::store::{Device, Member, MemberSearch, NewMember, Session, StoreError};

/// How long printed-letter credentials are kept (sealed) for the print view.
pub const LETTER_SECS: i64 = 60 * 60;
/// Longest search text.
const MAX_QUERY: usize = 100;
const MAX_NAME: usize = 50;
const MAX_CARD: usize = 20;

/// What a clerk types to register a member.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct MemberInput {
    pub display_name: String,
    pub name_kana: String,
    pub birth_date: String,
    pub email: String,
    pub card_symbol: String,
    pub card_number: String,
    /// The user ID a member keeps from the society's old system (the roster's ユーザID
    /// column); empty where a temporary one is drawn. Checked against the society's rules
    /// by the import, which knows them.
    #[serde(default)]
    pub user_id: String,
}

/// A member registered, or given a new password: the credentials to hand over, shown once,
/// and the batch of letters that prints them.
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    pub member_id: MemberId,
    pub user_id: String,
    pub password: String,
    pub letter_batch: String,
}

/// One letter of a print batch.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Letter {
    pub display_name: String,
    pub user_id: String,
    pub password: String,
}

/// A member and what the console shows about them.
pub struct MemberDetail {
    pub member: Member,
    pub devices: Vec<Device>,
    pub sessions: Vec<Session>,
    pub events: Vec<crate::store::AuditRow>,
}

fn name_problems(field: &'static str, value: &str, required: bool) -> Option<FieldProblem> {
    let code = if value.is_empty() && required {
        "name_required"
    } else if value.chars().count() > MAX_NAME {
        if required {
            "name_too_long"
        } else {
            "kana_too_long"
        }
    } else if value.chars().any(char::is_control) {
        if required {
            "name_control"
        } else {
            "kana_control"
        }
    } else {
        return None;
    };
    Some(FieldProblem::new(field, code))
}

pub use crate::member::policy::parse_birth_date;

fn email_code(e: &crate::mail::AddressError) -> &'static str {
    use crate::mail::AddressError as E;
    match e {
        E::Empty => "email_empty",
        E::ControlCharacters => "email_control",
        E::TooLong => "email_too_long",
        E::NoDomain => "email_no_domain",
        E::Invalid => "email_invalid",
    }
}

fn card_problem(field: &'static str, value: &str) -> Option<FieldProblem> {
    if value.chars().count() > MAX_CARD {
        Some(FieldProblem::new(field, "card_too_long"))
    } else if value.chars().any(char::is_control) {
        Some(FieldProblem::new(field, "card_control"))
    } else {
        None
    }
}

/// The input checked field by field: every problem at once, or the clean values.
pub fn check_input(input: &MemberInput) -> Result<(MemberInput, EmailAddress), Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let display_name = input.display_name.trim().to_owned();
    let name_kana = input.name_kana.trim().to_owned();
    problems.extend(name_problems("display_name", &display_name, true));
    problems.extend(name_problems("name_kana", &name_kana, false));
    let birth_date = match parse_birth_date(&input.birth_date) {
        Ok(d) => d,
        Err(code) => {
            problems.push(FieldProblem::new("birth_date", code));
            String::new()
        }
    };
    let email = match EmailAddress::parse(input.email.trim()) {
        Ok(e) => Some(e),
        Err(e) => {
            problems.push(FieldProblem::new("email", email_code(&e)));
            None
        }
    };
    let card_symbol = input.card_symbol.trim().to_owned();
    let card_number = input.card_number.trim().to_owned();
    problems.extend(card_problem("card_symbol", &card_symbol));
    problems.extend(card_problem("card_number", &card_number));
    match email {
        Some(email) if problems.is_empty() => Ok((
            MemberInput {
                display_name,
                name_kana,
                birth_date,
                email: email.as_str().to_owned(),
                card_symbol,
                card_number,
                user_id: input.user_id.trim().to_owned(),
            },
            email,
        )),
        _ => Err(problems),
    }
}

/// Checks the console's search input.
pub fn check_search(search: &MemberSearch) -> Result<(), Vec<FieldProblem>> {
    let mut problems = Vec::new();
    if let Some(q) = &search.query {
        if q.chars().count() > MAX_QUERY || q.chars().any(char::is_control) {
            problems.push(FieldProblem::new("q", "query_too_long"));
        }
    }
    if let Some(date) = &search.birth_date {
        if parse_birth_date(date).is_err() {
            problems.push(FieldProblem::new("birth_date", "date_format"));
        }
    }
    if let Some(state) = &search.state {
        if !matches!(
            state.as_str(),
            "active" | "temporary" | "locked" | "disabled"
        ) {
            problems.push(FieldProblem::new("state", "state_unknown"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

pub async fn search(ctx: &Ctx<'_>, search: &MemberSearch) -> Result<Vec<Member>, ServiceError> {
    check_search(search).map_err(ServiceError::Invalid)?;
    let mut search = search.clone();
    if let Some(date) = &search.birth_date {
        search.birth_date = parse_birth_date(date).ok();
    }
    Ok(ctx
        .state
        .store
        .search_members(&ctx.tenant.id, &search)
        .await?)
}

pub async fn get(ctx: &Ctx<'_>, id: &MemberId) -> Result<Member, ServiceError> {
    ctx.state
        .store
        .member(&ctx.tenant.id, id)
        .await?
        .ok_or(ServiceError::NotFound)
}

pub async fn detail(ctx: &Ctx<'_>, id: &MemberId) -> Result<MemberDetail, ServiceError> {
    let store = &ctx.state.store;
    let member = get(ctx, id).await?;
    let devices = store
        .devices(&ctx.tenant.id, &crate::store::Owner::member(&member.id))
        .await?;
    let sessions = store.member_sessions(&ctx.tenant.id, &member.id).await?;
    let filter = crate::store::AuditFilter {
        member_id: Some(member.id.to_string()),
        ..Default::default()
    };
    let events = store.audit_page(&ctx.tenant.id, &filter, 20).await?;
    Ok(MemberDetail {
        member,
        devices,
        sessions,
        events,
    })
}

/// Registers a member with temporary credentials generated by the tenant's rules.
pub async fn create(ctx: &Ctx<'_>, input: &MemberInput) -> Result<Issued, ServiceError> {
    let (input, _email) = check_input(input).map_err(ServiceError::Invalid)?;
    let password = credentials::temporary_password();
    let hash = ctx.state.hasher.hash(&password).await?;
    let mut created = None;
    for _ in 0..5 {
        let user_id = credentials::temporary_user_id();
        let new = NewMember {
            user_id: &user_id,
            display_name: &input.display_name,
            birth_date: &input.birth_date,
            email: &input.email,
            password_hash: &hash,
            card_symbol: &input.card_symbol,
            card_number: &input.card_number,
            name_kana: &input.name_kana,
            user_id_chosen: false,
        };
        match ctx.state.store.create_member(&ctx.tenant.id, &new).await {
            Ok(id) => {
                created = Some((id, user_id));
                break;
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let Some((id, user_id)) = created else {
        return Err(anyhow::anyhow!("no free temporary user ID").into());
    };
    ctx.audit("member_created", Some(&id), &user_id, None).await;
    let letter = Letter {
        display_name: input.display_name.clone(),
        user_id: user_id.clone(),
        password: password.clone(),
    };
    let letter_batch = keep_letters(ctx, &[(id.clone(), letter)]).await?;
    Ok(Issued {
        member_id: id,
        user_id,
        password,
        letter_batch,
    })
}

/// Seals letters for the print view; returns the batch id.
pub(crate) async fn keep_letters(
    ctx: &Ctx<'_>,
    letters: &[(MemberId, Letter)],
) -> Result<String, ServiceError> {
    let batch = crate::random_token(16);
    let sealed: Vec<(String, String, String)> = letters
        .iter()
        .map(|(member, letter)| {
            let id = crate::random_token(16);
            let json = serde_json::to_vec(letter).expect("a letter serialises");
            let sealed = ctx.state.secrets.seal(&json, &id);
            (id, member.to_string(), sealed)
        })
        .collect();
    let expires = crate::store::now_unix() + LETTER_SECS;
    ctx.state
        .store
        .store_letters(&ctx.tenant.id, &ctx.acting.admin, &batch, &sealed, expires)
        .await?;
    Ok(batch)
}

/// The letters of a print batch, handed out once and only to the admin who issued them
/// (another admin, of either role, is refused): they are taken in one statement, so a
/// second request (or a second tab at the same moment) gets none. Empty once printed or
/// past their hour. Printing is audited.
pub async fn take_letters(ctx: &Ctx<'_>, batch: &str) -> Result<Vec<Letter>, ServiceError> {
    if batch.len() != 32 || !batch.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Vec::new());
    }
    let Some(stored) = ctx
        .state
        .store
        .take_letters(&ctx.tenant.id, &ctx.acting.admin, batch)
        .await?
    else {
        return Err(ServiceError::Forbidden);
    };
    let mut out = Vec::with_capacity(stored.len());
    for s in stored {
        let plain = ctx
            .state
            .secrets
            .open(&s.sealed, &s.id)
            .map_err(|_| anyhow::anyhow!("a stored letter does not open"))?;
        let letter: Letter = serde_json::from_slice(&plain).map_err(anyhow::Error::from)?;
        let member = MemberId::from_db(s.member_id);
        ctx.audit("letter_printed", Some(&member), &letter.user_id, None)
            .await;
        out.push(letter);
    }
    Ok(out)
}

/// 「ロック解除」: the lock is lifted and the failure count starts again.
pub async fn unlock(ctx: &Ctx<'_>, id: &MemberId) -> Result<Member, ServiceError> {
    let member = get(ctx, id).await?;
    ctx.state.store.unlock_member(&ctx.tenant.id, id).await?;
    ctx.audit("member_unlocked", Some(id), "", None).await;
    get(ctx, &member.id).await
}

/// 「氏名変更」: the display name (and kana) change; sign-in does not.
pub async fn rename(
    ctx: &Ctx<'_>,
    id: &MemberId,
    name: &str,
    kana: &str,
) -> Result<Member, ServiceError> {
    let (name, kana) = (name.trim(), kana.trim());
    let problems: Vec<FieldProblem> = name_problems("display_name", name, true)
        .into_iter()
        .chain(name_problems("name_kana", kana, false))
        .collect();
    if !problems.is_empty() {
        return Err(ServiceError::Invalid(problems));
    }
    let member = get(ctx, id).await?;
    ctx.state
        .store
        .rename_member(&ctx.tenant.id, id, name, kana)
        .await?;
    ctx.audit(
        "member_renamed",
        Some(id),
        "",
        Some((&member.display_name, name)),
    )
    .await;
    get(ctx, id).await
}

/// The society corrects a member's e-mail address (FAQ Q3: a member who cannot receive
/// mail at the registered address asks the society). The address is taken as confirmed by
/// the society; e-mail codes stop being a factor until the member proves the new address,
/// and both the old and the new address are told.
pub async fn change_email(
    ctx: &Ctx<'_>,
    id: &MemberId,
    email: &str,
) -> Result<Member, ServiceError> {
    let new = EmailAddress::parse(email.trim())
        .map_err(|e| ServiceError::Invalid(vec![FieldProblem::new("email", email_code(&e))]))?;
    let member = get(ctx, id).await?;
    if new.as_str().eq_ignore_ascii_case(&member.email) {
        return Err(ServiceError::Invalid(vec![FieldProblem::new(
            "email",
            "email_unchanged",
        )]));
    }
    ctx.state
        .store
        .correct_member_email(&ctx.tenant.id, id, new.as_str())
        .await?;
    ctx.audit(
        "member_email_changed",
        Some(id),
        "",
        Some((&member.email, new.as_str())),
    )
    .await;
    let mut mail = tera::Context::new();
    mail.insert("old", &member.email);
    mail.insert("new", new.as_str());
    let mut to = vec![new.clone()];
    to.extend(EmailAddress::parse(&member.email).ok());
    for address in &to {
        notify_at(ctx, &member, address, "email_corrected", mail.clone()).await;
    }
    get(ctx, id).await
}

/// The most members one batch of letters may reissue.
pub const MAX_BATCH: usize = 100;

/// New temporary credentials for one member: every session ends, the member is told.
async fn reissue(ctx: &Ctx<'_>, member: &Member) -> Result<Letter, ServiceError> {
    let password = credentials::temporary_password();
    let hash = ctx.state.hasher.hash(&password).await?;
    let store = &ctx.state.store;
    store
        .reset_member_password(&ctx.tenant.id, &member.id, &hash)
        .await?;
    store
        .end_member_sessions(&ctx.tenant.id, &member.id)
        .await?;
    ctx.audit("member_password_reset", Some(&member.id), "", None)
        .await;
    notify(ctx, member, "password_reset").await;
    Ok(Letter {
        display_name: member.display_name.clone(),
        user_id: member.user_id.clone(),
        password,
    })
}

/// 「パスワード再発行」: new temporary credentials and a letter; the member proves their
/// birth date and sets a new password at the next login. Every session ends.
pub async fn reset_password(ctx: &Ctx<'_>, id: &MemberId) -> Result<Issued, ServiceError> {
    let member = get(ctx, id).await?;
    let letter = reissue(ctx, &member).await?;
    let password = letter.password.clone();
    let letter_batch = keep_letters(ctx, &[(id.clone(), letter)]).await?;
    Ok(Issued {
        member_id: id.clone(),
        user_id: member.user_id,
        password,
        letter_batch,
    })
}

/// The members a batch action names, all of this society, in the order given; an unknown
/// id (another society's, or none) refuses the batch before anything changes.
pub async fn batch_members(ctx: &Ctx<'_>, ids: &[MemberId]) -> Result<Vec<Member>, ServiceError> {
    if ids.is_empty() || ids.len() > MAX_BATCH {
        return Err(ServiceError::Invalid(vec![FieldProblem::new(
            "ids",
            "batch_size",
        )]));
    }
    let mut members: Vec<Member> = Vec::with_capacity(ids.len());
    for id in ids {
        if members.iter().any(|m| &m.id == id) {
            continue;
        }
        members.push(get(ctx, id).await?);
    }
    Ok(members)
}

/// 「パスワード再発行」 for several members at once: one batch of letters, one per page.
pub async fn reset_passwords(
    ctx: &Ctx<'_>,
    ids: &[MemberId],
) -> Result<(Vec<Issued>, String), ServiceError> {
    let members = batch_members(ctx, ids).await?;
    let mut letters = Vec::with_capacity(members.len());
    for member in &members {
        letters.push((member.id.clone(), reissue(ctx, member).await?));
    }
    let batch = keep_letters(ctx, &letters).await?;
    let issued = letters
        .into_iter()
        .map(|(id, l)| Issued {
            member_id: id,
            user_id: l.user_id,
            password: l.password,
            letter_batch: batch.clone(),
        })
        .collect();
    Ok((issued, batch))
}

/// 「二要素認証リセット」: every second factor goes; the member sets one up at the next
/// login. Every session ends.
pub async fn reset_factors(ctx: &Ctx<'_>, id: &MemberId) -> Result<u64, ServiceError> {
    let member = get(ctx, id).await?;
    let store = &ctx.state.store;
    let removed = store.reset_member_factors(&ctx.tenant.id, id).await?;
    store.end_member_sessions(&ctx.tenant.id, id).await?;
    ctx.audit(
        "member_factors_reset",
        Some(id),
        &format!("{removed} removed"),
        None,
    )
    .await;
    notify(ctx, &member, "factors_reset").await;
    Ok(removed)
}

/// 「利用停止」 / 「利用再開」: a disabled member cannot sign in and every session ends at once.
pub async fn set_disabled(
    ctx: &Ctx<'_>,
    id: &MemberId,
    disabled: bool,
) -> Result<Member, ServiceError> {
    let member = get(ctx, id).await?;
    let store = &ctx.state.store;
    let before = member.console_state(crate::store::now_unix());
    store
        .set_member_disabled(&ctx.tenant.id, id, disabled)
        .await?;
    if disabled {
        store.end_member_sessions(&ctx.tenant.id, id).await?;
    }
    let after = get(ctx, id).await?;
    let now_state = after.console_state(crate::store::now_unix());
    let event = if disabled {
        "member_disabled"
    } else {
        "member_enabled"
    };
    ctx.audit(event, Some(id), "", Some((before, now_state)))
        .await;
    if before != now_state {
        notify(ctx, &member, if disabled { "disabled" } else { "enabled" }).await;
    }
    Ok(after)
}

/// 「ログアウトさせる」: every session and sign-in in progress of the member ends.
pub async fn end_sessions(ctx: &Ctx<'_>, id: &MemberId) -> Result<u64, ServiceError> {
    get(ctx, id).await?;
    let n = ctx
        .state
        .store
        .end_member_sessions(&ctx.tenant.id, id)
        .await?;
    ctx.audit(
        "member_sessions_ended",
        Some(id),
        &format!("{n} sessions"),
        None,
    )
    .await;
    Ok(n)
}

/// Mails the member that the society changed how they sign in (`what`: password_reset,
/// factors_reset, disabled, enabled). A failure is logged; the change stands.
pub(crate) async fn notify(ctx: &Ctx<'_>, member: &Member, what: &str) {
    let Ok(to) = EmailAddress::parse(&member.email) else {
        return;
    };
    notify_at(ctx, member, &to, what, tera::Context::new()).await;
}

/// An account notice about `member` to `to`, with `mail` holding what it names.
async fn notify_at(
    ctx: &Ctx<'_>,
    member: &Member,
    to: &EmailAddress,
    what: &str,
    mut mail: tera::Context,
) {
    mail.insert("name", &member.display_name);
    mail.insert("what", what);
    mail.insert(
        "at",
        &crate::web::pages::date_time(crate::store::now_unix()),
    );
    match ctx
        .state
        .mailer
        .send(&ctx.state.store, ctx.tenant, to, "account_notice", mail)
        .await
    {
        Ok(_) => {
            ctx.audit("account_notice_sent", Some(&member.id), what, None)
                .await
        }
        Err(error) => tracing::error!(%error, "queueing an account notice failed"),
    }
}
