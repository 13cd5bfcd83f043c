//! The settings endpoints of the admin API: the draft, what publishing it would do,
//! 「公開」, the revisions and 「この版に戻す」. Each calls [`crate::admin::settings`], as the
//! console's 「設定」 pages do.

use std::collections::HashMap;

use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;

use super::api::{service_ctx, Reply, Tag, Token};
use crate::admin::settings::{self as service, DraftState, Notice, Review};
use crate::admin::{Ctx, ServiceError};
use crate::store::Revision;
use crate::tenant::Change;

#[derive(Debug, Clone, Object)]
pub struct ChangeOut {
    /// The field's path in the tenant file, e.g. `password.min_length`.
    pub field: String,
    pub before: Value,
    pub after: Value,
}

#[derive(Debug, Clone, Object)]
pub struct NoticeOut {
    pub code: String,
    /// The sentence the console shows, in Japanese.
    pub text: String,
}

#[derive(Debug, Clone, Object)]
pub struct ReviewOut {
    pub changes: Vec<ChangeOut>,
    /// What changes for members.
    pub summary: Vec<NoticeOut>,
    /// How many members it touches, counted from the data.
    pub impact: Vec<NoticeOut>,
    /// Where the draft weakens security.
    pub warnings: Vec<NoticeOut>,
}

#[derive(Debug, Clone, Object)]
pub struct DraftOut {
    /// A draft is saved; otherwise `settings` are the live ones.
    pub saved: bool,
    /// Something was published after the draft was started.
    pub stale: bool,
    /// The settings of the draft, as in the tenant file.
    pub settings: Value,
    /// What publishing the draft would do.
    pub review: ReviewOut,
}

#[derive(Debug, Clone, Object)]
pub struct SettingsEdit {
    /// New values by field path (`{"password.min_length": 12}`); fields not named keep
    /// the draft's value.
    pub edits: HashMap<String, Value>,
}

#[derive(Debug, Clone, Object)]
pub struct PublishedOut {
    /// The number of the revision now live.
    pub revision: i64,
}

#[derive(Debug, Clone, Object)]
pub struct RevisionOut {
    pub number: i64,
    /// Unix seconds.
    pub published_at: i64,
    /// `admin:<id>` or `file`.
    pub published_by: String,
    #[oai(skip_serializing_if_is_none)]
    pub restored_from: Option<i64>,
    pub changes: Vec<ChangeOut>,
}

fn changes_out(changes: &[Change]) -> Vec<ChangeOut> {
    changes
        .iter()
        .map(|c| ChangeOut {
            field: c.field.clone(),
            before: c.before.clone(),
            after: c.after.clone(),
        })
        .collect()
}

fn notices(list: &[Notice]) -> Vec<NoticeOut> {
    list.iter()
        .map(|n| NoticeOut {
            code: n.code.clone(),
            text: n.text.clone(),
        })
        .collect()
}

fn review_out(r: &Review) -> ReviewOut {
    ReviewOut {
        changes: changes_out(&r.changes),
        summary: notices(&r.summary),
        impact: notices(&r.impact),
        warnings: notices(&r.warnings),
    }
}

async fn draft_out(ctx: &Ctx<'_>, d: DraftState) -> Result<DraftOut, ServiceError> {
    let review = service::review(ctx).await?;
    Ok(DraftOut {
        saved: d.saved,
        stale: d.stale,
        // Never the operator-owned fields (mail domain, SMTP relay, DKIM, retention).
        settings: crate::tenant::definition::society_settings_json(&d.definition.settings),
        review: review_out(&review),
    })
}

fn revision_out(r: &Revision) -> RevisionOut {
    RevisionOut {
        number: r.number,
        published_at: r.published_at,
        published_by: r.published_by.clone(),
        restored_from: r.restored_from,
        changes: changes_out(&r.changes),
    }
}

pub struct SettingsApi;

#[OpenApi]
impl SettingsApi {
    /// The draft (or the live settings when there is none) and what publishing it would do.
    #[oai(path = "/settings/draft", method = "get", tag = "Tag::Settings")]
    async fn get_draft(&self, req: &Request, Token(acting): Token) -> Reply<DraftOut> {
        let ctx = service_ctx(req, &acting);
        let app = ctx.state;
        let result = async { draft_out(&ctx, service::draft(&ctx).await?).await }.await;
        Reply::from(app, result)
    }

    /// Change fields of the draft (role `admin` only). Every field is checked; nothing is
    /// saved if any is wrong.
    #[oai(path = "/settings/draft", method = "put", tag = "Tag::Settings")]
    async fn put_draft(
        &self,
        req: &Request,
        Token(acting): Token,
        body: Json<SettingsEdit>,
    ) -> Reply<DraftOut> {
        let ctx = service_ctx(req, &acting);
        let app = ctx.state;
        let result = async {
            let full = acting.require_admin()?;
            let mut edits: Vec<(String, Value)> = body.0.edits.into_iter().collect();
            edits.sort_by(|a, b| a.0.cmp(&b.0));
            let d = service::save_settings(&ctx, &full, &edits).await?;
            draft_out(&ctx, d).await
        }
        .await;
        Reply::from(app, result)
    }

    /// Throw the draft away (role `admin` only); the live settings do not change.
    #[oai(path = "/settings/draft", method = "delete", tag = "Tag::Settings")]
    async fn delete_draft(&self, req: &Request, Token(acting): Token) -> Reply<DraftOut> {
        let ctx = service_ctx(req, &acting);
        let app = ctx.state;
        let result = async {
            let full = acting.require_admin()?;
            service::discard(&ctx, &full).await?;
            draft_out(&ctx, service::draft(&ctx).await?).await
        }
        .await;
        Reply::from(app, result)
    }

    /// 「公開」: the draft becomes live as a new revision (role `admin` only).
    #[oai(path = "/settings/publish", method = "post", tag = "Tag::Settings")]
    async fn publish(&self, req: &Request, Token(acting): Token) -> Reply<PublishedOut> {
        let ctx = service_ctx(req, &acting);
        let app = ctx.state;
        let result = async {
            let full = acting.require_admin()?;
            let revision = service::publish(&ctx, &full).await?;
            Ok(PublishedOut { revision })
        }
        .await;
        Reply::from(app, result)
    }

    /// Every published revision, newest first.
    #[oai(path = "/settings/revisions", method = "get", tag = "Tag::Settings")]
    async fn revisions(&self, req: &Request, Token(acting): Token) -> Reply<Vec<RevisionOut>> {
        let ctx = service_ctx(req, &acting);
        let app = ctx.state;
        let result = service::history(&ctx)
            .await
            .map(|list| list.iter().map(revision_out).collect());
        Reply::from(app, result)
    }

    /// 「この版に戻す」: publish an earlier revision again, as a new revision (role `admin`
    /// only).
    #[oai(
        path = "/settings/revisions/:number/restore",
        method = "post",
        tag = "Tag::Settings"
    )]
    async fn restore(
        &self,
        req: &Request,
        Token(acting): Token,
        number: Path<i64>,
    ) -> Reply<PublishedOut> {
        let ctx = service_ctx(req, &acting);
        let app = ctx.state;
        let result = async {
            let full = acting.require_admin()?;
            let revision = service::restore(&ctx, &full, number.0).await?;
            Ok(PublishedOut { revision })
        }
        .await;
        Reply::from(app, result)
    }
}
