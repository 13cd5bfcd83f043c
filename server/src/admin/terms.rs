//! 「利用規約」: a society writes a new version of its terms as a draft, previews it as
//! members will see it and publishes it with a date; every member accepts it at their next
//! sign-in (journey 13). Each version shows who published it, when, and how many members
//! accepted it; the evidence (member, version, time, address) downloads as CSV.

use serde::Serialize;

use super::{Ctx, FieldProblem, FullAdmin, ServiceError};
use crate::store::{StoreError, TermsDraft};
use crate::tenant::{Tenant, TermsVersion};

const MAX_VERSION: usize = 40;
const MAX_TITLE: usize = 100;
const MAX_BODY: usize = 20_000;

/// A version as the console lists it.
#[derive(Debug, Clone, Serialize)]
pub struct VersionView {
    pub version: String,
    pub title: String,
    /// The date members see, YYYY-MM-DD.
    pub published_at: String,
    /// `admin:<id>` or `file`.
    pub published_by: String,
    pub published_unix: Option<i64>,
    pub current: bool,
    pub accepted: i64,
    /// Accepted by this share of the members who are not disabled, in percent.
    pub rate: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// Newest first.
    pub versions: Vec<VersionView>,
    /// Members who are not disabled.
    pub members: i64,
}

fn invalid(field: &'static str, code: &'static str) -> FieldProblem {
    FieldProblem::new(field, code)
}

fn has_control(s: &str, newlines: bool) -> bool {
    s.chars()
        .any(|c| c.is_control() && !(newlines && matches!(c, '\n' | '\r' | '\t')))
}

/// The input checked field by field; every problem at once.
pub fn check_input(tenant: &Tenant, t: &TermsVersion) -> Result<TermsVersion, Vec<FieldProblem>> {
    let mut problems = Vec::new();
    let version = t.version.trim().to_owned();
    let title = t.title.trim().to_owned();
    let body = t.body.replace("\r\n", "\n").trim().to_owned();
    let published_at = t.published_at.trim().to_owned();
    if version.is_empty() {
        problems.push(invalid("version", "terms_version_empty"));
    } else if version.chars().count() > MAX_VERSION || has_control(&version, false) {
        problems.push(invalid("version", "terms_version_long"));
    } else if tenant.terms.versions.iter().any(|v| v.version == version) {
        problems.push(invalid("version", "terms_version_taken"));
    }
    if title.is_empty() {
        problems.push(invalid("title", "terms_title_empty"));
    } else if title.chars().count() > MAX_TITLE || has_control(&title, false) {
        problems.push(invalid("title", "terms_title_long"));
    }
    if body.is_empty() {
        problems.push(invalid("body", "terms_body_empty"));
    } else if body.chars().count() > MAX_BODY || has_control(&body, true) {
        problems.push(invalid("body", "terms_body_long"));
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    if time::Date::parse(&published_at, &format).is_err() {
        problems.push(invalid("published_at", "terms_date"));
    }
    if problems.is_empty() {
        Ok(TermsVersion {
            version,
            title,
            body,
            published_at,
        })
    } else {
        Err(problems)
    }
}

fn by(ctx: &Ctx<'_>) -> String {
    format!("admin:{}", ctx.acting.admin)
}

pub async fn overview(ctx: &Ctx<'_>) -> Result<Overview, ServiceError> {
    let store = &ctx.state.store;
    let members: i64 = store
        .member_state_counts(&ctx.tenant.id)
        .await?
        .into_iter()
        .filter(|(state, _)| state != "disabled")
        .map(|(_, n)| n)
        .sum();
    let counts = store.terms_acceptance_counts(&ctx.tenant.id).await?;
    let publications = store.terms_publications(&ctx.tenant.id).await?;
    let versions = ctx
        .tenant
        .terms
        .versions
        .iter()
        .rev()
        .map(|v| {
            let accepted = counts
                .iter()
                .find(|(version, _)| version == &v.version)
                .map_or(0, |(_, n)| *n);
            let publication = publications.iter().find(|p| p.version == v.version);
            VersionView {
                version: v.version.clone(),
                title: v.title.clone(),
                published_at: v.published_at.clone(),
                published_by: publication
                    .map_or_else(|| "file".to_owned(), |p| p.published_by.clone()),
                published_unix: publication.and_then(|p| p.published_unix),
                current: v.version == ctx.tenant.terms.current,
                accepted,
                rate: if members > 0 {
                    (accepted as f64 * 1000.0 / members as f64).round() / 10.0
                } else {
                    0.0
                },
            }
        })
        .collect();
    Ok(Overview { versions, members })
}

pub async fn draft(ctx: &Ctx<'_>) -> Result<Option<TermsDraft>, ServiceError> {
    Ok(ctx.state.store.terms_draft(&ctx.tenant.id).await?)
}

/// Saves the draft of a new version; nothing is saved if a field is wrong.
pub async fn save_draft(
    ctx: &Ctx<'_>,
    _full: &FullAdmin,
    input: &TermsVersion,
) -> Result<TermsVersion, ServiceError> {
    let clean = check_input(ctx.tenant, input).map_err(ServiceError::Invalid)?;
    ctx.state
        .store
        .save_terms_draft(&ctx.tenant.id, &clean, &by(ctx))
        .await?;
    ctx.audit("terms_draft_saved", None, &clean.version, None)
        .await;
    Ok(clean)
}

pub async fn discard(ctx: &Ctx<'_>, _full: &FullAdmin) -> Result<bool, ServiceError> {
    let had = ctx.state.store.discard_terms_draft(&ctx.tenant.id).await?;
    if had {
        ctx.audit("terms_draft_discarded", None, "", None).await;
    }
    Ok(had)
}

fn of_draft(d: &TermsDraft) -> TermsVersion {
    TermsVersion {
        version: d.version.clone(),
        title: d.title.clone(),
        body: d.body.clone(),
        published_at: d.published_at.clone(),
    }
}

/// The tenant as members would see it with the draft published (for the preview).
pub async fn preview(ctx: &Ctx<'_>) -> Result<Tenant, ServiceError> {
    let d = draft(ctx).await?.ok_or(ServiceError::NotFound)?;
    let mut tenant = ctx.tenant.clone();
    tenant.terms.versions.push(of_draft(&d));
    tenant.terms.current = d.version;
    Ok(tenant)
}

/// 「公開」: the draft becomes the version every member must accept at their next sign-in.
pub async fn publish(ctx: &Ctx<'_>, _full: &FullAdmin) -> Result<String, ServiceError> {
    let d = draft(ctx)
        .await?
        .ok_or(ServiceError::Conflict("terms_no_draft"))?;
    let clean = check_input(ctx.tenant, &of_draft(&d)).map_err(ServiceError::Invalid)?;
    match ctx
        .state
        .store
        .publish_terms(&ctx.tenant.id, &clean, &by(ctx))
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Err(ServiceError::Conflict("terms_version_taken")),
        Err(e) => return Err(e.into()),
    }
    ctx.audit(
        "terms_published",
        None,
        &clean.version,
        Some((&ctx.tenant.terms.current, &clean.version)),
    )
    .await;
    super::settings::refresh(ctx).await;
    Ok(clean.version)
}

/// The acceptances of `version` as CSV (UTF-8 with a BOM, CRLF): user ID, name, version,
/// time (Japan), IP address. Formula cells are neutralised.
pub async fn evidence_csv(ctx: &Ctx<'_>, version: &str) -> Result<Vec<u8>, ServiceError> {
    if !ctx
        .tenant
        .terms
        .versions
        .iter()
        .any(|v| v.version == version)
    {
        return Err(ServiceError::NotFound);
    }
    let rows = ctx
        .state
        .store
        .terms_evidence(&ctx.tenant.id, version)
        .await?;
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(b"\xEF\xBB\xBF".to_vec());
    let _ = writer.write_record(["ユーザID", "氏名", "版", "同意日時", "IPアドレス"]);
    for r in rows {
        let at = crate::web::pages::date_time(r.accepted_at);
        let cells = [&r.user_id, &r.display_name, &r.version, &at, &r.ip];
        let cells: Vec<std::borrow::Cow<'_, str>> =
            cells.iter().map(|c| crate::csv_cell(c)).collect();
        let _ = writer.write_record(cells.iter().map(|c| c.as_ref()));
    }
    ctx.audit("terms_evidence_downloaded", None, version, None)
        .await;
    Ok(writer.into_inner().unwrap_or_default())
}
