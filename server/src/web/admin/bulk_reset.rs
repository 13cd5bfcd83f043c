//! 「一括パスワードリセット」 pages: choose the members and the rule, see how many it touches
//! with a masked sample and who it cannot reach, then apply. Every action calls
//! [`crate::admin::bulk_reset`].

use std::collections::HashMap;
use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Form, Multipart};
use poem::{handler, Response};
use serde::{Deserialize, Serialize};

use super::console::{field_errors, read_form, Page};
use super::{ConsoleAdmin, ConsoleFullAdmin};
use crate::admin::bulk_reset::{self as service, Selection};
use crate::admin::{FieldProblem, ServiceError};
use crate::web::{AppState, CurrentTenant};

/// The rule of the kanekakenpo guide, offered as the default.
pub const GUIDE_RULE: &str = "{記号}{番号}{生年月日:YYYYMMDD}";

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct BulkForm {
    /// `all` | `search` | `ids`
    #[serde(default)]
    target: String,
    #[serde(default)]
    query: String,
    #[serde(default)]
    user_ids: String,
    #[serde(default)]
    rule: String,
}

impl BulkForm {
    fn selection(&self) -> Result<Selection, ServiceError> {
        let ids = self
            .user_ids
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        Selection::parse(&self.target, &self.query, ids)
    }
}

fn form_page(page: &Page<'_>, form: &BulkForm, errors: Option<&[FieldProblem]>) -> Response {
    let mut ctx = tera::Context::new();
    ctx.insert("form", form);
    let status = match errors {
        Some(problems) => {
            let map: HashMap<&str, Vec<String>> = field_errors(page.state, problems);
            ctx.insert("errors", &map);
            StatusCode::BAD_REQUEST
        }
        None => StatusCode::OK,
    };
    page.render("members", "bulk_reset.html", ctx, status)
}

#[handler]
pub async fn form_get(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let form = BulkForm {
        target: "all".into(),
        rule: GUIDE_RULE.into(),
        ..Default::default()
    };
    form_page(&page, &form, None)
}

/// The preview: how many, a masked sample, who is left out; then the confirmation. The
/// form may carry a list file of user IDs instead of typed ones.
#[handler]
pub async fn preview(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    ConsoleFullAdmin(admin, _full): ConsoleFullAdmin,
    multipart: Multipart,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let (fields, file) = read_form(multipart).await;
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let mut form = BulkForm {
        target: get("target"),
        query: get("query"),
        user_ids: get("user_ids"),
        rule: get("rule"),
    };
    let mut result = Ok(());
    if let Some((_, bytes)) = &file {
        match service::user_ids_from_file(bytes) {
            Ok(ids) => {
                form.target = "ids".into();
                form.user_ids = ids.join("\n");
            }
            Err(code) => {
                result = Err(ServiceError::Invalid(vec![FieldProblem::new(
                    "user_ids_file",
                    code,
                )]))
            }
        }
    }
    let result = match (result, form.selection()) {
        (Err(e), _) | (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(selection)) => service::preview(&page.service(), &selection, &form.rule).await,
    };
    match result {
        Ok(outcome) => {
            let mut ctx = tera::Context::new();
            ctx.insert("form", &form);
            ctx.insert("outcome", &outcome);
            page.render("members", "bulk_reset_confirm.html", ctx, StatusCode::OK)
        }
        Err(ServiceError::Invalid(problems)) => form_page(&page, &form, Some(&problems)),
        Err(e) => page.failure(e),
    }
}

#[handler]
pub async fn apply(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    ConsoleFullAdmin(admin, full): ConsoleFullAdmin,
    Form(form): Form<BulkForm>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let result = match form.selection() {
        Ok(selection) => service::apply(&page.service(), &full, &selection, &form.rule).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(outcome) => {
            let mut ctx = tera::Context::new();
            ctx.insert("outcome", &outcome);
            page.render("members", "bulk_reset_done.html", ctx, StatusCode::OK)
        }
        Err(ServiceError::Invalid(problems)) => form_page(&page, &form, Some(&problems)),
        Err(e) => page.failure(e),
    }
}
