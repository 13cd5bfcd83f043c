//! 「一括登録」 pages: upload a roster, see the dry run's report (every bad row with its line,
//! column and reason), 「取り込む」, then print the letters and download the credentials CSV
//! once. Every action calls [`crate::admin::import`].

use std::sync::Arc;

use poem::http::{header, StatusCode};
use poem::web::{Data, Multipart, Path, Redirect};
use poem::{handler, IntoResponse, Response};

use super::console::{field_errors, Page};
use super::{ConsoleAdmin, ConsoleFullAdmin};
use crate::admin::import as service;
use crate::admin::{FieldProblem, ServiceError};
use crate::web::{AppState, CurrentTenant};

#[handler]
pub async fn form_get(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    page.render(
        "import",
        "import.html",
        tera::Context::new(),
        StatusCode::OK,
    )
}

/// The dry run of an uploaded roster.
#[handler]
pub async fn check(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    ConsoleFullAdmin(admin, full): ConsoleFullAdmin,
    mut multipart: Multipart,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let mut file: Option<(String, Vec<u8>)> = None;
    while let Ok(Some(field)) = multipart.next_field().await {
        if field.name() == Some("file") {
            let name = field.file_name().unwrap_or("").to_owned();
            match field.bytes().await {
                Ok(bytes) => file = Some((name, bytes)),
                Err(_) => break,
            }
        }
    }
    let result = match &file {
        Some((name, bytes)) => service::check(&page.service(), &full, name, bytes).await,
        None => Err(ServiceError::Invalid(vec![FieldProblem::new(
            "file",
            "roster_empty",
        )])),
    };
    match result {
        Ok(report) => {
            let mut ctx = tera::Context::new();
            ctx.insert("report", &report);
            page.render("import", "import_report.html", ctx, StatusCode::OK)
        }
        Err(ServiceError::Invalid(problems)) => {
            let mut ctx = tera::Context::new();
            ctx.insert("errors", &field_errors(&state, &problems));
            page.render("import", "import.html", ctx, StatusCode::BAD_REQUEST)
        }
        Err(e) => page.failure(e),
    }
}

/// 「取り込む」
#[handler]
pub async fn commit(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    ConsoleFullAdmin(admin, full): ConsoleFullAdmin,
    Path(id): Path<String>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    match service::commit(&page.service(), &full, &id).await {
        Ok(c) => Redirect::see_other(format!("/admin/import/{}/done", c.import_id)).into_response(),
        Err(e) => page.failure(e),
    }
}

#[handler]
pub async fn done(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    ConsoleFullAdmin(admin, _full): ConsoleFullAdmin,
    Path(id): Path<String>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    match service::committed(&page.service(), &id).await {
        Ok((created, batch, taken)) => {
            let mut ctx = tera::Context::new();
            ctx.insert("created", &created);
            ctx.insert("letter_batch", &batch);
            ctx.insert("import_id", &id);
            ctx.insert("credentials_taken", &taken);
            page.render("import", "import_done.html", ctx, StatusCode::OK)
        }
        Err(e) => page.failure(e),
    }
}

/// The letters of the import to print, once.
#[handler]
pub async fn letters(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    ConsoleFullAdmin(admin, full): ConsoleFullAdmin,
    Path(id): Path<String>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    match service::take_letters(&page.service(), &full, &id).await {
        Ok(letters) => {
            super::console::render_letters(&page, letters.unwrap_or_default(), "printed")
        }
        Err(e) => page.failure(e),
    }
}

/// The credentials CSV, once.
#[handler]
pub async fn credentials(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    ConsoleFullAdmin(admin, full): ConsoleFullAdmin,
    Path(id): Path<String>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    match service::take_credentials(&page.service(), &full, &id).await {
        Ok(Some(csv)) => csv
            .with_content_type("text/csv; charset=utf-8")
            .with_header(
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"credentials.csv\"",
            )
            .with_header(header::CACHE_CONTROL, "no-store")
            .into_response(),
        Ok(None) => page.failure(ServiceError::Conflict("roster_credentials_taken")),
        Err(e) => page.failure(e),
    }
}
