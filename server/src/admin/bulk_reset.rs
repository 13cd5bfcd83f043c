//! 「一括パスワードリセット」 (journey 15): returning members get a password built from their
//! own data by a rule such as `{記号}{番号}{生年月日:YYYYMMDD}`, as the kanekakenpo guide
//! describes (「パスワードは「記号＋番号＋生年月日」にリセットしています」). Their user ID
//! stays; at the next sign-in they prove their birth date and choose a new password.
//! Members whose data cannot build the rule are listed and left unchanged. Audited as one
//! bulk event plus one per member.

use futures_util::{stream, StreamExt, TryStreamExt};
use serde::Serialize;

use super::members::notify;
use super::{Ctx, FieldProblem, FullAdmin, ServiceError};
use crate::store::{Member, MemberSearch, MemberState};

/// The most members one bulk reset touches.
pub const MAX_MEMBERS: usize = 10_000;
/// How many results the preview shows.
const SAMPLE: usize = 5;
const MAX_RULE: usize = 100;
const MAX_IDS: usize = 10_000;

/// One piece of a rule: text as written, or a member's data.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    CardSymbol,
    CardNumber,
    /// The birth date in this shape: `YYYYMMDD`, `YYMMDD` or `MMDD`.
    BirthDate(&'static str),
}

/// A parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule(Vec<Part>);

impl Rule {
    /// `{記号}`, `{番号}` and `{生年月日:YYYYMMDD|YYMMDD|MMDD}` between text of ASCII
    /// letters, digits and symbols.
    pub fn parse(text: &str) -> Result<Rule, &'static str> {
        let text = text.trim();
        if text.is_empty() {
            return Err("rule_empty");
        }
        if text.chars().count() > MAX_RULE {
            return Err("rule_too_long");
        }
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let end = after.find('}').ok_or("rule_unclosed")?;
                let part = match &after[..end] {
                    "記号" => Part::CardSymbol,
                    "番号" => Part::CardNumber,
                    "生年月日" | "生年月日:YYYYMMDD" => Part::BirthDate("YYYYMMDD"),
                    "生年月日:YYMMDD" => Part::BirthDate("YYMMDD"),
                    "生年月日:MMDD" => Part::BirthDate("MMDD"),
                    _ => return Err("rule_unknown_field"),
                };
                parts.push(part);
                rest = &after[end + 1..];
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                let literal = &rest[..end];
                if literal.contains('}') || !literal.chars().all(|c| c.is_ascii_graphic()) {
                    return Err("rule_characters");
                }
                parts.push(Part::Text(literal.to_owned()));
                rest = &rest[end..];
            }
        }
        if parts.iter().all(|p| matches!(p, Part::Text(_))) {
            return Err("rule_no_field");
        }
        Ok(Rule(parts))
    }

    /// The password for `member`, or why their data cannot build it.
    pub fn value(&self, member: &Member) -> Result<String, &'static str> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::CardSymbol if member.card_symbol.trim().is_empty() => {
                    return Err("no_card_symbol")
                }
                Part::CardNumber if member.card_number.trim().is_empty() => {
                    return Err("no_card_number")
                }
                Part::CardSymbol => out.push_str(&plain(&member.card_symbol)),
                Part::CardNumber => out.push_str(&plain(&member.card_number)),
                Part::BirthDate(shape) => {
                    let digits: String = member
                        .birth_date
                        .chars()
                        .filter(char::is_ascii_digit)
                        .collect();
                    if digits.len() != 8 {
                        return Err("no_birth_date");
                    }
                    out.push_str(match *shape {
                        "YYMMDD" => &digits[2..],
                        "MMDD" => &digits[4..],
                        _ => &digits,
                    });
                }
            }
        }
        if out.chars().any(|c| !c.is_ascii_graphic()) {
            return Err("not_ascii");
        }
        Ok(out)
    }
}

/// Card values as typed on the card: full-width digits and letters become ASCII, spaces go.
fn plain(value: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    value.nfkc().filter(|c| !c.is_whitespace()).collect()
}

/// The user IDs of an uploaded list: a text or CSV file (UTF-8 or Shift_JIS), one member
/// per line, the user ID in the first column; a header line (「ユーザID」) and empty lines
/// are skipped.
pub fn user_ids_from_file(bytes: &[u8]) -> Result<Vec<String>, &'static str> {
    if bytes.is_empty() {
        return Err("bulk_ids_empty");
    }
    if bytes.len() > 1024 * 1024 {
        return Err("bulk_ids_file_too_large");
    }
    let (text, _) = super::roster::decode(bytes).map_err(|_| "bulk_ids_file_not_text")?;
    let ids: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let first = line.split([',', '\t']).next().unwrap_or("");
            let id = first.trim().trim_matches('"').trim();
            (!id.is_empty() && id.is_ascii()).then(|| id.to_owned())
        })
        .collect();
    if ids.is_empty() {
        return Err("bulk_ids_empty");
    }
    Ok(ids)
}

/// Which members a bulk reset is for.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every member who is not disabled.
    All,
    /// The members a search finds (as 「会員管理」 searches).
    Search(String),
    /// These user IDs (one per line in the console).
    UserIds(Vec<String>),
}

impl Selection {
    /// The selection a form or a request names: `all`, `search` (with `query`) or `ids`
    /// (with `user_ids`); anything else is a problem of the field `target`.
    pub fn parse(
        target: &str,
        query: &str,
        user_ids: Vec<String>,
    ) -> Result<Selection, ServiceError> {
        match target {
            "all" => Ok(Selection::All),
            "search" => Ok(Selection::Search(query.to_owned())),
            "ids" => Ok(Selection::UserIds(user_ids)),
            _ => Err(invalid("target", "bulk_target")),
        }
    }
}

/// A member the rule cannot reach, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub user_id: String,
    pub name: String,
    pub code: &'static str,
    pub reason: String,
}

/// One result of the preview, with its digits masked.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub user_id: String,
    pub name: String,
    pub masked: String,
}

/// What a bulk reset would do, or did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Members selected.
    pub selected: usize,
    /// Members whose password is (or would be) reset.
    pub reset: usize,
    pub sample: Vec<Sample>,
    pub skipped: Vec<Skipped>,
}

fn invalid(field: &'static str, code: &'static str) -> ServiceError {
    ServiceError::Invalid(vec![FieldProblem::new(field, code)])
}

/// Digits become ●, so the sample shows the shape and not the secret.
fn mask(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_ascii_digit() { '●' } else { c })
        .collect()
}

/// The members of the selection, disabled ones left out.
async fn select(
    ctx: &Ctx<'_>,
    selection: &Selection,
) -> Result<(Vec<Member>, Vec<Skipped>), ServiceError> {
    let store = &ctx.state.store;
    let mut members = Vec::new();
    let mut skipped = Vec::new();
    match selection {
        Selection::All | Selection::Search(_) => {
            let query = match selection {
                Selection::Search(q) => {
                    let q = q.trim();
                    if q.is_empty() {
                        return Err(invalid("query", "bulk_query_empty"));
                    }
                    let search = MemberSearch {
                        query: Some(q.to_owned()),
                        ..Default::default()
                    };
                    super::members::check_search(&search).map_err(ServiceError::Invalid)?;
                    Some(q.to_owned())
                }
                _ => None,
            };
            let mut after = None;
            loop {
                let page = store
                    .search_members(
                        &ctx.tenant.id,
                        &MemberSearch {
                            query: query.clone(),
                            after: after.clone(),
                            limit: 1000,
                            ..Default::default()
                        },
                    )
                    .await?;
                let n = page.len();
                after = page.last().map(|m| m.user_id.clone());
                members.extend(page);
                if members.len() > MAX_MEMBERS {
                    return Err(invalid("selection", "bulk_too_many"));
                }
                if n < 1000 {
                    break;
                }
            }
        }
        Selection::UserIds(ids) => {
            if ids.is_empty() {
                return Err(invalid("user_ids", "bulk_ids_empty"));
            }
            if ids.len() > MAX_IDS {
                return Err(invalid("user_ids", "bulk_too_many"));
            }
            for raw in ids {
                let id = raw.trim().to_ascii_lowercase();
                if id.is_empty() {
                    continue;
                }
                if id.chars().count() > 64 || id.chars().any(char::is_control) {
                    return Err(invalid("user_ids", "bulk_ids_invalid"));
                }
                match store.member_by_user_id(&ctx.tenant.id, &id).await? {
                    Some(m) if !members.iter().any(|x: &Member| x.id == m.id) => members.push(m),
                    Some(_) => {}
                    None => skipped.push(Skipped {
                        user_id: id,
                        name: String::new(),
                        code: "unknown_user_id",
                        reason: String::new(),
                    }),
                }
            }
        }
    }
    let (active, disabled): (Vec<Member>, Vec<Member>) = members
        .into_iter()
        .partition(|m| m.state != MemberState::Disabled);
    skipped.extend(disabled.into_iter().map(|m| Skipped {
        user_id: m.user_id,
        name: m.display_name,
        code: "disabled",
        reason: String::new(),
    }));
    Ok((active, skipped))
}

/// The members the rule reaches with their new passwords, and those it cannot.
async fn plan(
    ctx: &Ctx<'_>,
    selection: &Selection,
    rule: &str,
) -> Result<(Vec<(Member, String)>, Vec<Skipped>, usize), ServiceError> {
    let rule = Rule::parse(rule).map_err(|code| invalid("rule", code))?;
    let (members, mut skipped) = select(ctx, selection).await?;
    let selected = members.len() + skipped.len();
    let max = ctx.tenant.settings.password.max_length as usize;
    let mut planned = Vec::with_capacity(members.len());
    for m in members {
        match rule.value(&m) {
            Ok(v) if v.chars().count() > max => skipped.push(Skipped {
                user_id: m.user_id.clone(),
                name: m.display_name.clone(),
                code: "too_long",
                reason: String::new(),
            }),
            Ok(v) => planned.push((m, v)),
            Err(code) => skipped.push(Skipped {
                user_id: m.user_id.clone(),
                name: m.display_name.clone(),
                code,
                reason: String::new(),
            }),
        }
    }
    for s in &mut skipped {
        s.reason = super::settings::say(ctx, &format!("bulk_reset.skip.{}", s.code), &[]);
    }
    Ok((planned, skipped, selected))
}

/// What applying `rule` to `selection` would do: how many members, a masked sample, and
/// who would be left unchanged. Changes nothing.
pub async fn preview(
    ctx: &Ctx<'_>,
    selection: &Selection,
    rule: &str,
) -> Result<Outcome, ServiceError> {
    let (planned, skipped, selected) = plan(ctx, selection, rule).await?;
    Ok(Outcome {
        selected,
        reset: planned.len(),
        sample: planned
            .iter()
            .take(SAMPLE)
            .map(|(m, v)| Sample {
                user_id: m.user_id.clone(),
                name: m.display_name.clone(),
                masked: mask(v),
            })
            .collect(),
        skipped,
    })
}

/// Applies `rule`: each reached member's password becomes the rule's value, their user ID
/// stays, every session ends, and the next sign-in asks the birth date and a new password.
pub async fn apply(
    ctx: &Ctx<'_>,
    _full: &FullAdmin,
    selection: &Selection,
    rule: &str,
) -> Result<Outcome, ServiceError> {
    let (planned, skipped, selected) = plan(ctx, selection, rule).await?;
    if planned.is_empty() {
        return Err(ServiceError::Conflict("bulk_nobody"));
    }
    let hasher = ctx.state.hasher.clone();
    let workers = hasher.concurrency().max(1);
    let values: Vec<String> = planned.iter().map(|(_, v)| v.clone()).collect();
    let hashes: Vec<String> = stream::iter(values)
        .map(|v| {
            let hasher = hasher.clone();
            async move { hasher.hash(&v).await }
        })
        .buffered(workers)
        .try_collect()
        .await?;
    let store = &ctx.state.store;
    for ((member, _), hash) in planned.iter().zip(&hashes) {
        store
            .reset_member_password(&ctx.tenant.id, &member.id, hash)
            .await?;
        store
            .end_member_sessions(&ctx.tenant.id, &member.id)
            .await?;
        ctx.audit(
            "member_password_reset_by_rule",
            Some(&member.id),
            rule,
            None,
        )
        .await;
        notify(ctx, member, "password_reset").await;
    }
    ctx.audit(
        "bulk_password_reset",
        None,
        &format!(
            "rule {rule}: {} reset, {} left unchanged",
            planned.len(),
            skipped.len()
        ),
        None,
    )
    .await;
    Ok(Outcome {
        selected,
        reset: planned.len(),
        sample: Vec::new(),
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(symbol: &str, number: &str, birth: &str) -> Member {
        Member {
            id: crate::ids::MemberId::generate(),
            tenant_id: crate::tenant::TenantId::generate(),
            user_id: "u".into(),
            display_name: "n".into(),
            birth_date: birth.into(),
            email: String::new(),
            password_hash: String::new(),
            password_created_at: 0,
            state: MemberState::Active,
            user_id_chosen: true,
            email_reviewed: true,
            email_confirmed: true,
            mfa_method: None,
            email_otp_enabled: false,
            failed_logins: 0,
            locked_until: None,
            terms_version: None,
            terms_accepted_at: None,
            card_symbol: symbol.into(),
            card_number: number.into(),
            name_kana: String::new(),
            created_at: 0,
            birth_date_verified: false,
            first_login_done_at: Some(0),
        }
    }

    #[test]
    fn the_guide_rule_joins_card_and_birth_date() {
        let rule = Rule::parse("{記号}{番号}{生年月日:YYYYMMDD}").unwrap();
        let m = member("１２３４", "56 7", "1980-04-01");
        assert_eq!(rule.value(&m).unwrap(), "123456719800401");
        let short = Rule::parse("k-{番号}-{生年月日:MMDD}").unwrap();
        assert_eq!(short.value(&m).unwrap(), "k-567-0401");
    }

    #[test]
    fn missing_data_is_named() {
        let rule = Rule::parse("{記号}{番号}{生年月日}").unwrap();
        assert_eq!(
            rule.value(&member("", "1", "1980-04-01")),
            Err("no_card_symbol")
        );
        assert_eq!(
            rule.value(&member("1", "", "1980-04-01")),
            Err("no_card_number")
        );
    }

    #[test]
    fn bad_rules_are_refused() {
        assert_eq!(Rule::parse(""), Err("rule_empty"));
        assert_eq!(Rule::parse("abc"), Err("rule_no_field"));
        assert_eq!(Rule::parse("{氏名}"), Err("rule_unknown_field"));
        assert_eq!(Rule::parse("{記号"), Err("rule_unclosed"));
        assert_eq!(Rule::parse("あ{記号}"), Err("rule_characters"));
    }

    #[test]
    fn a_list_file_gives_its_first_column() {
        let file = "ユーザID,氏名\r\nabc-123,山田\r\n\r\n\"def.456\",佐藤\r\n";
        assert_eq!(
            user_ids_from_file(file.as_bytes()).unwrap(),
            ["abc-123", "def.456"]
        );
        let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(file);
        assert_eq!(user_ids_from_file(&sjis).unwrap(), ["abc-123", "def.456"]);
        assert_eq!(user_ids_from_file(b""), Err("bulk_ids_empty"));
    }

    #[test]
    fn the_sample_hides_every_digit() {
        assert_eq!(mask("k-1234"), "k-●●●●");
    }
}
