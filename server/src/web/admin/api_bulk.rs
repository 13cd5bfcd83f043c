//! The roster import and the bulk reset in the admin API: the same dry run, 「取り込む」,
//! credentials CSV (once) and 「一括パスワードリセット」 as the console, through the same
//! service functions.

use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::api::{service_ctx, Problem, Reply, Tag, Token};
use crate::admin::bulk_reset::{self, Outcome, Selection};
use crate::admin::import::{self, Report};
use crate::admin::ServiceError;

#[derive(Debug, Clone, Object)]
pub struct RowProblemOut {
    /// The line of the file (the header is line 1).
    pub line: u64,
    /// The column's Japanese header.
    pub column: String,
    pub code: String,
    /// The reason, in Japanese.
    pub message: String,
}

#[derive(Debug, Clone, Object)]
pub struct ImportReportOut {
    /// Set when every row is good: commit it within an hour.
    #[oai(skip_serializing_if_is_none)]
    pub import_id: Option<String>,
    /// `UTF-8 (BOM)`, `UTF-8` or `Shift_JIS`.
    pub encoding: String,
    pub total: u64,
    pub good: u64,
    pub problems: Vec<RowProblemOut>,
}

impl ImportReportOut {
    fn of(r: Report) -> Self {
        Self {
            import_id: r.import_id,
            encoding: r.encoding.to_owned(),
            total: r.total as u64,
            good: r.good as u64,
            problems: r
                .problems
                .into_iter()
                .map(|p| RowProblemOut {
                    line: p.line as u64,
                    column: p.column.to_owned(),
                    code: p.code.to_owned(),
                    message: p.message,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Object)]
pub struct ImportedOut {
    pub import_id: String,
    /// Members registered.
    pub created: u64,
    /// The batch of letters for the console's print view (`/admin/letters/<batch>`).
    pub letter_batch: String,
}

/// The mail-merge CSV, or a problem document.
#[derive(ApiResponse)]
pub enum CsvReply {
    /// UTF-8 with a BOM, CRLF: 氏名, 氏名カナ, 生年月日, メールアドレス, 記号, 番号, ユーザID,
    /// 仮パスワード, ログインページ.
    #[oai(status = 200, content_type = "text/csv; charset=utf-8")]
    Ok(PlainText<String>),
    #[oai(status = 401, content_type = "application/problem+json")]
    Unauthorized(Json<Problem>),
    #[oai(status = 403, content_type = "application/problem+json")]
    Forbidden(Json<Problem>),
    #[oai(status = 404, content_type = "application/problem+json")]
    NotFound(Json<Problem>),
    /// Downloaded already: the credentials are handed out once.
    #[oai(status = 409, content_type = "application/problem+json")]
    Conflict(Json<Problem>),
    #[oai(status = 500, content_type = "application/problem+json")]
    Internal(Json<Problem>),
}

#[derive(Debug, Clone, Object)]
pub struct BulkResetIn {
    /// `all` | `search` | `ids`
    pub target: String,
    /// For `search`: as the member search.
    #[oai(default)]
    pub query: String,
    /// For `ids`.
    #[oai(default)]
    pub user_ids: Vec<String>,
    /// e.g. `{記号}{番号}{生年月日:YYYYMMDD}`
    pub rule: String,
}

impl BulkResetIn {
    fn selection(&self) -> Result<Selection, ServiceError> {
        Selection::parse(&self.target, &self.query, self.user_ids.clone())
    }
}

#[derive(Debug, Clone, Object)]
pub struct SkippedOut {
    pub user_id: String,
    pub code: String,
    pub reason: String,
}

#[derive(Debug, Clone, Object)]
pub struct BulkOut {
    pub selected: u64,
    pub reset: u64,
    /// Up to five results with their digits masked (preview only).
    pub sample: Vec<String>,
    pub skipped: Vec<SkippedOut>,
}

impl BulkOut {
    fn of(o: Outcome) -> Self {
        Self {
            selected: o.selected as u64,
            reset: o.reset as u64,
            sample: o.sample.into_iter().map(|s| s.masked).collect(),
            skipped: o
                .skipped
                .into_iter()
                .map(|s| SkippedOut {
                    user_id: s.user_id,
                    code: s.code.to_owned(),
                    reason: s.reason,
                })
                .collect(),
        }
    }
}

pub struct BulkApi;

#[OpenApi]
impl BulkApi {
    /// 「一括登録」 dry run: the roster file as the request body (CSV: UTF-8 with or
    /// without BOM, or Shift_JIS). Changes nothing (role `admin` only).
    #[oai(path = "/members/import", method = "post", tag = "Tag::Members")]
    async fn check_roster(
        &self,
        req: &Request,
        Token(acting): Token,
        /// The file's name, for the audit log.
        file_name: Query<Option<String>>,
        body: Binary<Vec<u8>>,
    ) -> Reply<ImportReportOut> {
        let ctx = service_ctx(req, &acting);
        let app = ctx.state;
        let result = async {
            let full = acting.require_admin()?;
            let name = file_name.0.unwrap_or_else(|| "roster.csv".to_owned());
            import::check(&ctx, &full, &name, &body.0).await
        }
        .await;
        Reply::from(app, result.map(ImportReportOut::of))
    }

    /// 「取り込む」: registers every row of a checked roster, or none (role `admin` only).
    #[oai(
        path = "/members/imports/:id/commit",
        method = "post",
        tag = "Tag::Members"
    )]
    async fn commit_roster(
        &self,
        req: &Request,
        Token(acting): Token,
        id: Path<String>,
    ) -> Reply<ImportedOut> {
        let ctx = service_ctx(req, &acting);
        let app = ctx.state;
        let result = async {
            let full = acting.require_admin()?;
            import::commit(&ctx, &full, &id.0).await
        }
        .await;
        Reply::from(
            app,
            result.map(|c| ImportedOut {
                import_id: c.import_id,
                created: c.created as u64,
                letter_batch: c.letter_batch,
            }),
        )
    }

    /// The credentials of an import for a mail merge, once (role `admin` only).
    #[oai(
        path = "/members/imports/:id/credentials",
        method = "get",
        tag = "Tag::Members"
    )]
    async fn roster_credentials(
        &self,
        req: &Request,
        Token(acting): Token,
        id: Path<String>,
    ) -> CsvReply {
        let ctx = service_ctx(req, &acting);
        let app = ctx.state;
        let result = async {
            let full = acting.require_admin()?;
            import::take_credentials(&ctx, &full, &id.0).await
        }
        .await;
        match result {
            Ok(Some(csv)) => CsvReply::Ok(PlainText(String::from_utf8_lossy(&csv).into_owned())),
            Ok(None) => match Reply::<ImportedOut>::failed(
                app,
                ServiceError::Conflict("roster_credentials_taken"),
            ) {
                Reply::Conflict(p) => CsvReply::Conflict(p),
                _ => unreachable!("a conflict is answered as one"),
            },
            Err(e) => match Reply::<ImportedOut>::failed(app, e) {
                Reply::Forbidden(p) => CsvReply::Forbidden(p),
                Reply::NotFound(p) => CsvReply::NotFound(p),
                Reply::Unauthorized(p) => CsvReply::Unauthorized(p),
                Reply::Conflict(p) => CsvReply::Conflict(p),
                Reply::Internal(p) | Reply::Invalid(p) | Reply::BadRequest(p) | Reply::Busy(p) => {
                    CsvReply::Internal(p)
                }
                Reply::Ok(_) | Reply::Created(_) => unreachable!("an error is not a result"),
            },
        }
    }

    /// 「一括パスワードリセット」 preview: how many members, a masked sample, who is left
    /// unchanged. Changes nothing (role `admin` only).
    #[oai(
        path = "/members/bulk-reset/preview",
        method = "post",
        tag = "Tag::Members"
    )]
    async fn bulk_preview(
        &self,
        req: &Request,
        Token(acting): Token,
        body: Json<BulkResetIn>,
    ) -> Reply<BulkOut> {
        let ctx = service_ctx(req, &acting);
        let app = ctx.state;
        let result = async {
            acting.require_admin()?;
            bulk_reset::preview(&ctx, &body.0.selection()?, &body.0.rule).await
        }
        .await;
        Reply::from(app, result.map(BulkOut::of))
    }

    /// 「一括パスワードリセット」: each reached member's password becomes the rule's value
    /// (role `admin` only).
    #[oai(path = "/members/bulk-reset", method = "post", tag = "Tag::Members")]
    async fn bulk_apply(
        &self,
        req: &Request,
        Token(acting): Token,
        body: Json<BulkResetIn>,
    ) -> Reply<BulkOut> {
        let ctx = service_ctx(req, &acting);
        let app = ctx.state;
        let result = async {
            let full = acting.require_admin()?;
            bulk_reset::apply(&ctx, &full, &body.0.selection()?, &body.0.rule).await
        }
        .await;
        Reply::from(app, result.map(BulkOut::of))
    }
}
