//! 「利用規約」 pages: the versions with who published them and how many members accepted
//! each, the evidence CSV, and a new version written as a draft, previewed as members will
//! see it, then published. Every action calls [`crate::admin::terms`].

use std::collections::HashMap;
use std::sync::Arc;

use poem::http::{header, StatusCode};
use poem::web::{Data, Form, Path, Query, Redirect};
use poem::{handler, IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::console::{field_errors, Page};
use super::settings::framed;
use super::{ConsoleAdmin, ConsoleFullAdmin};
use crate::admin::terms as service;
use crate::admin::ServiceError;
use crate::tenant::TermsVersion;
use crate::web::pages::{date_time, render_preview};
use crate::web::{AppState, CurrentTenant};

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

#[derive(Serialize)]
struct Row {
    version: String,
    title: String,
    published_at: String,
    published_by: String,
    published_unix: String,
    current: bool,
    accepted: i64,
    rate: String,
    evidence_url: String,
}

#[handler]
pub async fn list(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Query(q): Query<Done>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let ctx_s = page.service();
    let (overview, draft) = match (
        service::overview(&ctx_s).await,
        service::draft(&ctx_s).await,
    ) {
        (Ok(o), Ok(d)) => (o, d),
        (Err(e), _) | (_, Err(e)) => return page.failure(e),
    };
    let names: HashMap<String, String> = state
        .store
        .admins(&tenant.0.id)
        .await
        .map(|list| {
            list.into_iter()
                .map(|a| (format!("admin:{}", a.id), a.email))
                .collect()
        })
        .unwrap_or_default();
    let by_file = crate::admin::settings::say(&ctx_s, "settings.history.by_file", &[]);
    let rows: Vec<Row> = overview
        .versions
        .iter()
        .map(|v| Row {
            version: v.version.clone(),
            title: v.title.clone(),
            published_at: v.published_at.replace('-', "/"),
            published_by: names
                .get(&v.published_by)
                .cloned()
                .unwrap_or_else(|| by_file.clone()),
            published_unix: v.published_unix.map(date_time).unwrap_or_default(),
            current: v.current,
            accepted: v.accepted,
            rate: format!("{:.1}", v.rate),
            evidence_url: format!(
                "/admin/terms/{}/evidence.csv",
                form_urlencoded::byte_serialize(v.version.as_bytes()).collect::<String>()
            ),
        })
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("versions", &rows);
    ctx.insert("members", &overview.members);
    ctx.insert("draft", &draft.map(|d| d.version));
    ctx.insert(
        "done",
        &match q.done.as_deref() {
            Some("published") => Some("published"),
            Some("discarded") => Some("discarded"),
            _ => None,
        },
    );
    page.render("terms", "terms.html", ctx, StatusCode::OK)
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct TermsForm {
    #[serde(default)]
    version: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    published_at: String,
}

fn today() -> String {
    let now = time::OffsetDateTime::now_utc().to_offset(time::macros::offset!(+9));
    now.date().to_string()
}

#[handler]
pub async fn draft_form(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let form = match service::draft(&page.service()).await {
        Ok(Some(d)) => TermsForm {
            version: d.version,
            title: d.title,
            body: d.body,
            published_at: d.published_at,
        },
        Ok(None) => {
            let current = tenant
                .0
                .terms
                .versions
                .iter()
                .find(|v| v.version == tenant.0.terms.current);
            TermsForm {
                version: today()[..7].to_owned(),
                title: current.map(|c| c.title.clone()).unwrap_or_default(),
                body: current.map(|c| c.body.clone()).unwrap_or_default(),
                published_at: today(),
            }
        }
        Err(e) => return page.failure(e),
    };
    let mut ctx = tera::Context::new();
    ctx.insert("form", &form);
    page.render("terms", "terms_form.html", ctx, StatusCode::OK)
}

#[handler]
pub async fn save_draft(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    ConsoleFullAdmin(admin, full): ConsoleFullAdmin,
    Form(form): Form<TermsForm>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let input = TermsVersion {
        version: form.version.clone(),
        title: form.title.clone(),
        body: form.body.clone(),
        published_at: form.published_at.clone(),
    };
    match service::save_draft(&page.service(), &full, &input).await {
        Ok(_) => Redirect::see_other("/admin/terms/draft/review").into_response(),
        Err(ServiceError::Invalid(problems)) => {
            let mut ctx = tera::Context::new();
            ctx.insert("form", &form);
            ctx.insert("errors", &field_errors(&state, &problems));
            page.render("terms", "terms_form.html", ctx, StatusCode::BAD_REQUEST)
        }
        Err(e) => page.failure(e),
    }
}

#[handler]
pub async fn review(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    match service::draft(&page.service()).await {
        Ok(Some(d)) => {
            let mut ctx = tera::Context::new();
            ctx.insert("version", &d.version);
            ctx.insert("published_at", &d.published_at.replace('-', "/"));
            page.render("terms", "terms_review.html", ctx, StatusCode::OK)
        }
        Ok(None) => Redirect::see_other("/admin/terms").into_response(),
        Err(e) => page.failure(e),
    }
}

/// The member's terms page with the draft, for the preview's frames.
#[handler]
pub async fn frame(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let preview = match service::preview(&page.service()).await {
        Ok(t) => t,
        Err(e) => return page.failure(e),
    };
    let Some(current) = preview
        .terms
        .versions
        .iter()
        .find(|v| v.version == preview.terms.current)
    else {
        return page.failure(ServiceError::NotFound);
    };
    let mut ctx = tera::Context::new();
    ctx.insert("terms", current);
    ctx.insert("published_on", &current.published_at.replace('-', "/"));
    let css = format!("/theme.css?v={}", tenant.0.revision);
    framed(render_preview(
        &state,
        &preview,
        "login_terms.html",
        ctx,
        &css,
    ))
}

#[handler]
pub async fn publish(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    ConsoleFullAdmin(admin, full): ConsoleFullAdmin,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    page.after(
        service::publish(&page.service(), &full).await,
        "/admin/terms?done=published",
    )
}

#[handler]
pub async fn discard(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    ConsoleFullAdmin(admin, full): ConsoleFullAdmin,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    page.after(
        service::discard(&page.service(), &full).await,
        "/admin/terms?done=discarded",
    )
}

#[handler]
pub async fn evidence(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path(version): Path<String>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    match service::evidence_csv(&page.service(), &version).await {
        Ok(csv) => csv
            .with_content_type("text/csv; charset=utf-8")
            .with_header(
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"terms-evidence.csv\"",
            )
            .with_header(header::CACHE_CONTROL, "no-store")
            .into_response(),
        Err(e) => page.failure(e),
    }
}
