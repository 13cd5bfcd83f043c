//! 「一括登録」: a roster file is checked first (a dry run that changes nothing and names
//! every bad row), then 「取り込む」 registers every row or none. Each new member gets
//! temporary credentials; the import ends with one batch of printable letters and a
//! credentials CSV for a mail merge, handed out once.

use futures_util::{stream, StreamExt, TryStreamExt};
use serde::Serialize;

use super::members::{keep_letters, Letter, MemberInput};
use std::collections::HashSet;

use super::roster::{self, Column, Roster, RosterError, RowProblem};
use super::{Ctx, FieldProblem, FullAdmin, ServiceError};
use crate::ids::MemberId;
use crate::member::credentials;
use crate::member::policy::UserId;
use crate::store::{NewImport, NewMember, StoreError};

/// How long a checked roster waits for 「取り込む」.
pub const PENDING_SECS: i64 = 60 * 60;
/// Longest file name kept (for the page and the audit log).
const MAX_FILE_NAME: usize = 100;

/// Import ids are 32 hex digits; anything else names no import.
fn is_import_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One bad row as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemView {
    pub line: usize,
    pub column: &'static str,
    pub code: &'static str,
    pub message: String,
}

/// What a dry run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Set when every row is good: the import waiting for 「取り込む」.
    pub import_id: Option<String>,
    pub file_name: String,
    pub encoding: &'static str,
    pub total: usize,
    pub good: usize,
    pub problems: Vec<ProblemView>,
}

/// What 「取り込む」 did.
#[derive(Debug, Clone, Serialize)]
pub struct Committed {
    pub import_id: String,
    pub created: usize,
    pub letter_batch: String,
}

fn say(ctx: &Ctx<'_>, key: &str) -> String {
    super::settings::say(ctx, key, &[])
}

/// The Japanese reason of a row problem: the roster's own texts, else the member form's.
fn message(ctx: &Ctx<'_>, p: &RowProblem) -> String {
    let own = format!("roster.{}", p.code);
    let text = say(ctx, &own);
    if text != own {
        text
    } else {
        say(ctx, &format!("errors.{}", p.code))
    }
}

fn file_problem(e: &RosterError) -> ServiceError {
    ServiceError::Invalid(vec![FieldProblem::new(
        "file",
        match e {
            RosterError::Empty => "roster_empty",
            RosterError::TooLarge => "roster_too_large",
            RosterError::NotText => "roster_not_text",
            RosterError::Malformed => "roster_malformed",
            RosterError::MissingColumns(_) => "roster_missing_columns",
            RosterError::TooManyRows => "roster_too_many_rows",
        },
    )])
}

/// The identity (card, or name and birth date) of every member of the society.
async fn existing_identities(
    ctx: &Ctx<'_>,
) -> Result<std::collections::HashSet<String>, ServiceError> {
    Ok(ctx
        .state
        .store
        .member_identities(&ctx.tenant.id)
        .await?
        .into_iter()
        .map(|(name, birth, symbol, number)| {
            roster::identity(&MemberInput {
                display_name: name,
                birth_date: birth,
                card_symbol: symbol,
                card_number: number,
                ..Default::default()
            })
        })
        .collect())
}

/// Rows whose person is a member already (same insurance card, or same name and birth
/// date where the card is not given) become problems.
async fn refuse_existing(ctx: &Ctx<'_>, roster: &mut Roster) -> Result<(), ServiceError> {
    let existing = existing_identities(ctx).await?;
    let (by_card, by_name): (Vec<_>, Vec<_>) = roster
        .rows
        .iter()
        .filter(|r| existing.contains(&roster::identity(&r.input)))
        .partition(|r| !r.input.card_symbol.is_empty());
    let by_card: Vec<usize> = by_card.iter().map(|r| r.line).collect();
    let by_name: Vec<usize> = by_name.iter().map(|r| r.line).collect();
    roster.refuse(&by_card, Column::CardNumber, "already_member");
    roster.refuse(&by_name, Column::Name, "already_member");
    Ok(())
}

/// User IDs a roster keeps from the society's old system: each must follow the society's
/// rules (and is written as they store it: lower case), appear once in the file and not
/// be a member's already.
async fn check_user_ids(ctx: &Ctx<'_>, roster: &mut Roster) -> Result<(), ServiceError> {
    if roster.rows.iter().all(|r| r.input.user_id.is_empty()) {
        return Ok(());
    }
    let taken = ctx.state.store.member_user_ids(&ctx.tenant.id).await?;
    let policy = &ctx.tenant.settings.user_id;
    let mut seen = HashSet::new();
    let (mut broken, mut twice, mut in_use) = (Vec::new(), Vec::new(), Vec::new());
    for row in &mut roster.rows {
        if row.input.user_id.is_empty() {
            continue;
        }
        match UserId::parse(policy, &row.input.user_id) {
            Err(_) => broken.push(row.line),
            Ok(id) if taken.contains(id.as_str()) => in_use.push(row.line),
            Ok(id) if !seen.insert(id.as_str().to_owned()) => twice.push(row.line),
            Ok(id) => row.input.user_id = id.as_str().to_owned(),
        }
    }
    roster.refuse(&broken, Column::UserId, "user_id_rules");
    roster.refuse(&twice, Column::UserId, "user_id_duplicate");
    roster.refuse(&in_use, Column::UserId, "user_id_taken");
    Ok(())
}

/// The dry run: reads and checks `bytes`; changes nothing but, when every row is good,
/// keeps the rows (sealed) for 「取り込む」.
pub async fn check(
    ctx: &Ctx<'_>,
    _full: &FullAdmin,
    file_name: &str,
    bytes: &[u8],
) -> Result<Report, ServiceError> {
    let file_name: String = file_name
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FILE_NAME)
        .collect();
    let mut roster = roster::read(bytes).map_err(|e| file_problem(&e))?;
    refuse_existing(ctx, &mut roster).await?;
    check_user_ids(ctx, &mut roster).await?;
    let problems: Vec<ProblemView> = roster
        .problems
        .iter()
        .map(|p| ProblemView {
            line: p.line,
            column: p.column.header(),
            code: p.code,
            message: message(ctx, p),
        })
        .collect();
    let mut import_id = None;
    if problems.is_empty() && !roster.rows.is_empty() {
        let id = crate::random_token(16);
        let inputs: Vec<&MemberInput> = roster.rows.iter().map(|r| &r.input).collect();
        let json = serde_json::to_vec(&inputs).map_err(anyhow::Error::from)?;
        let sealed = ctx.state.secrets.seal(&json, &id);
        ctx.state
            .store
            .create_import(
                &ctx.tenant.id,
                &NewImport {
                    id: &id,
                    admin_id: ctx.acting.admin.as_str(),
                    file_name: &file_name,
                    encoding: roster.encoding,
                    total: roster.rows.len() as i64,
                    sealed_rows: &sealed,
                    expires_at: crate::store::now_unix() + PENDING_SECS,
                },
            )
            .await?;
        import_id = Some(id);
    }
    ctx.audit(
        "roster_checked",
        None,
        &format!(
            "{file_name}: {} rows, {} problems",
            roster.total,
            problems.len()
        ),
        None,
    )
    .await;
    Ok(Report {
        import_id,
        file_name,
        encoding: roster.encoding,
        total: roster.total,
        good: roster.rows.len(),
        problems,
    })
}

/// A waiting import of this society, not expired and not committed.
async fn pending(ctx: &Ctx<'_>, id: &str) -> Result<Vec<MemberInput>, ServiceError> {
    if !is_import_id(id) {
        return Err(ServiceError::NotFound);
    }
    let Some(row) = ctx.state.store.import(&ctx.tenant.id, id).await? else {
        return Err(ServiceError::NotFound);
    };
    if row.committed_at.is_some() {
        return Err(ServiceError::Conflict("roster_already_imported"));
    }
    if row.expires_at < crate::store::now_unix() {
        return Err(ServiceError::Conflict("roster_expired"));
    }
    let plain = ctx
        .state
        .secrets
        .open(&row.rows, id)
        .map_err(|_| anyhow::anyhow!("a pending import does not open"))?;
    Ok(serde_json::from_slice(&plain).map_err(anyhow::Error::from)?)
}

/// How many rows a waiting import holds (for the confirmation).
pub async fn pending_count(ctx: &Ctx<'_>, id: &str) -> Result<usize, ServiceError> {
    Ok(pending(ctx, id).await?.len())
}

/// 「取り込む」: registers every row of the checked roster in one transaction, or none (a
/// row that became a member since the dry run refuses the whole import).
pub async fn commit(ctx: &Ctx<'_>, _full: &FullAdmin, id: &str) -> Result<Committed, ServiceError> {
    let inputs = pending(ctx, id).await?;
    // Members registered since the dry run.
    let existing = existing_identities(ctx).await?;
    if inputs
        .iter()
        .any(|i| existing.contains(&roster::identity(i)))
    {
        return Err(ServiceError::Conflict("roster_changed"));
    }
    // One argon2id hash per member, as many at once as the hasher has workers.
    let passwords: Vec<String> = inputs
        .iter()
        .map(|_| credentials::temporary_password())
        .collect();
    let hasher = ctx.state.hasher.clone();
    let workers = hasher.concurrency().max(1);
    let hashes: Vec<String> = stream::iter(passwords.iter().cloned())
        .map(|p| {
            let hasher = hasher.clone();
            async move { hasher.hash(&p).await }
        })
        .buffered(workers)
        .try_collect()
        .await?;
    // User IDs kept from the old system, taken since the dry run.
    if inputs.iter().any(|i| !i.user_id.is_empty()) {
        let taken = ctx.state.store.member_user_ids(&ctx.tenant.id).await?;
        if inputs.iter().any(|i| taken.contains(&i.user_id)) {
            return Err(ServiceError::Conflict("roster_changed"));
        }
    }
    let mut created = None;
    for _ in 0..3 {
        let user_ids: Vec<String> = inputs
            .iter()
            .map(|i| {
                if i.user_id.is_empty() {
                    credentials::temporary_user_id()
                } else {
                    i.user_id.clone()
                }
            })
            .collect();
        let new: Vec<NewMember<'_>> = inputs
            .iter()
            .zip(&user_ids)
            .zip(&hashes)
            .map(|((i, user_id), hash)| NewMember {
                user_id,
                display_name: &i.display_name,
                birth_date: &i.birth_date,
                email: &i.email,
                password_hash: hash,
                card_symbol: &i.card_symbol,
                card_number: &i.card_number,
                name_kana: &i.name_kana,
                user_id_chosen: !i.user_id.is_empty(),
            })
            .collect();
        match ctx.state.store.create_members(&ctx.tenant.id, &new).await {
            Ok(ids) => {
                created = Some((ids, user_ids));
                break;
            }
            // A temporary user ID taken meanwhile: draw them all again.
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let Some((ids, user_ids)) = created else {
        return Err(anyhow::anyhow!("no free temporary user IDs").into());
    };
    let letters: Vec<(MemberId, Letter)> = ids
        .iter()
        .zip(&inputs)
        .zip(user_ids.iter().zip(&passwords))
        .map(|((id, input), (user_id, password))| {
            (
                id.clone(),
                Letter {
                    display_name: input.display_name.clone(),
                    user_id: user_id.clone(),
                    password: password.clone(),
                },
            )
        })
        .collect();
    let batch = keep_letters(ctx, &letters).await?;
    let csv = credentials_csv(ctx, &inputs, &user_ids, &passwords);
    let sealed = ctx.state.secrets.seal(&csv, &format!("{id}:credentials"));
    let first = ctx
        .state
        .store
        .finish_import(&ctx.tenant.id, id, ids.len() as i64, &batch, &sealed)
        .await?;
    if !first {
        return Err(ServiceError::Conflict("roster_already_imported"));
    }
    for (member, user_id) in ids.iter().zip(&user_ids) {
        ctx.audit("member_created", Some(member), user_id, None)
            .await;
    }
    ctx.audit(
        "roster_imported",
        None,
        &format!("{} members", ids.len()),
        None,
    )
    .await;
    Ok(Committed {
        import_id: id.to_owned(),
        created: ids.len(),
        letter_batch: batch,
    })
}

/// The mail-merge file: UTF-8 with a BOM (Excel opens it as such), CRLF, one row per new
/// member; cells a spreadsheet would run as a formula are quoted.
fn credentials_csv(
    ctx: &Ctx<'_>,
    inputs: &[MemberInput],
    user_ids: &[String],
    passwords: &[String],
) -> Vec<u8> {
    let url = super::tenant_url(ctx.state, ctx.tenant);
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(b"\xEF\xBB\xBF".to_vec());
    let header = [
        "氏名",
        "氏名カナ",
        "生年月日",
        "メールアドレス",
        "記号",
        "番号",
        "ユーザID",
        "仮パスワード",
        "ログインページ",
    ];
    let _ = writer.write_record(header);
    let login = format!("{url}/login");
    for ((i, user_id), password) in inputs.iter().zip(user_ids).zip(passwords) {
        let cells = [
            i.display_name.as_str(),
            i.name_kana.as_str(),
            i.birth_date.as_str(),
            i.email.as_str(),
            i.card_symbol.as_str(),
            i.card_number.as_str(),
            user_id.as_str(),
            password.as_str(),
            login.as_str(),
        ];
        let cells: Vec<std::borrow::Cow<'_, str>> =
            cells.iter().map(|c| crate::csv_cell(c)).collect();
        let _ = writer.write_record(cells.iter().map(|c| c.as_ref()));
    }
    writer.into_inner().unwrap_or_default()
}

/// The credentials CSV of a committed import, once (role `admin` only): claimed in one
/// statement, so of two downloads at once one gets it; `None` after the first download
/// or an hour after the import (the sweeper then removes it).
pub async fn take_credentials(
    ctx: &Ctx<'_>,
    _full: &FullAdmin,
    id: &str,
) -> Result<Option<Vec<u8>>, ServiceError> {
    if !is_import_id(id) {
        return Err(ServiceError::NotFound);
    }
    let Some(sealed) = ctx
        .state
        .store
        .take_import_credentials(&ctx.tenant.id, id, super::members::LETTER_SECS)
        .await?
    else {
        return Ok(None);
    };
    let plain = ctx
        .state
        .secrets
        .open(&sealed, &format!("{id}:credentials"))
        .map_err(|_| anyhow::anyhow!("import credentials do not open"))?;
    ctx.audit("roster_credentials_downloaded", None, id, None)
        .await;
    Ok(Some(plain))
}

/// The letters of a committed import, once: they are opened, handed over for printing and
/// removed. `None` once printed (or past their hour).
pub async fn take_letters(
    ctx: &Ctx<'_>,
    _full: &FullAdmin,
    id: &str,
) -> Result<Option<Vec<Letter>>, ServiceError> {
    let (_, batch, _) = committed(ctx, id).await?;
    let letters = super::members::take_letters(ctx, &batch).await?;
    Ok((!letters.is_empty()).then_some(letters))
}

/// A committed import as its done page shows it.
pub async fn committed(ctx: &Ctx<'_>, id: &str) -> Result<(i64, String, bool), ServiceError> {
    if !is_import_id(id) {
        return Err(ServiceError::NotFound);
    }
    let row = ctx
        .state
        .store
        .import(&ctx.tenant.id, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    match (row.created_members, row.letter_batch) {
        (Some(n), Some(batch)) => Ok((n, batch, row.credentials_taken_at.is_some())),
        _ => Err(ServiceError::NotFound),
    }
}
