//! 「デザイン」 (colours, logo, welcome text) and 「サービスメニュー」 (the service icons) pages.
//! Both edit the draft of 「設定」, which is reviewed, previewed and published there. Every
//! action calls [`crate::admin::look`].

use std::collections::HashMap;
use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Form, Multipart, Path, Query, Redirect};
use poem::{handler, IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::console::{field_errors, read_form, Page};
use super::{ConsoleAdmin, ConsoleFullAdmin};
use crate::admin::look::{self as service, contrast_checks, LookEdit, ServiceEdit};
use crate::admin::settings;
use crate::admin::{FieldProblem, ServiceError};
use crate::web::{AppState, CurrentTenant};

#[derive(Serialize)]
struct CheckView {
    label: String,
    ratio: String,
    required: String,
    ok: bool,
}

/// The page with `primary`, `accent` and `welcome` as shown (the draft's, or what was typed),
/// the contrast table measured on those colours.
fn look_context(
    page: &Page<'_>,
    d: &settings::DraftState,
    primary: &str,
    accent: &str,
    welcome: &str,
) -> tera::Context {
    let ctx_s = page.service();
    let theme = &d.definition.settings.theme;
    let mut ctx = tera::Context::new();
    ctx.insert("primary_color", primary);
    ctx.insert("accent_color", accent);
    ctx.insert("welcome", welcome);
    ctx.insert("logo_url", &format!("/static/{}", theme.logo));
    let checks: Vec<CheckView> = contrast_checks(primary, accent)
        .into_iter()
        .map(|c| CheckView {
            label: settings::say(&ctx_s, &format!("look.checks.{}", c.what), &[]),
            ratio: format!("{:.2}", c.ratio),
            required: format!("{}", c.required),
            ok: c.ok,
        })
        .collect();
    ctx.insert("checks", &checks);
    ctx
}

#[handler]
pub async fn look_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    match settings::draft(&page.service()).await {
        Ok(d) => {
            let theme = &d.definition.settings.theme;
            let ctx = look_context(
                &page,
                &d,
                &theme.primary_color,
                &theme.accent_color,
                &d.definition.settings.welcome,
            );
            page.render("settings", "look.html", ctx, StatusCode::OK)
        }
        Err(e) => page.failure(e),
    }
}

#[handler]
pub async fn save_look(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    ConsoleFullAdmin(admin, full): ConsoleFullAdmin,
    multipart: Multipart,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let ctx_s = page.service();
    let (fields, file) = read_form(multipart).await;
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let mut edit = LookEdit {
        primary_color: get("primary_color"),
        accent_color: get("accent_color"),
        welcome: get("welcome"),
        logo: None,
    };
    let result = async {
        if let Some((name, bytes)) = &file {
            edit.logo = Some(service::upload(&ctx_s, &full, "theme.logo", name, bytes).await?);
        }
        service::save_look(&ctx_s, &full, &edit).await
    }
    .await;
    match result {
        Ok(_) => Redirect::see_other("/admin/settings/review?done=saved").into_response(),
        Err(ServiceError::Invalid(problems)) => {
            let d = match settings::draft(&ctx_s).await {
                Ok(d) => d,
                Err(e) => return page.failure(e),
            };
            let mut ctx = look_context(
                &page,
                &d,
                edit.primary_color.trim(),
                edit.accent_color.trim(),
                &edit.welcome,
            );
            // Problems are named by their setting (`theme.logo`), the form's fields by
            // their own names (`logo`).
            let errors: HashMap<String, Vec<String>> = field_errors(&state, &problems)
                .into_iter()
                .map(|(k, v)| (k.trim_start_matches("theme.").to_owned(), v))
                .collect();
            ctx.insert("errors", &errors);
            page.render("settings", "look.html", ctx, StatusCode::BAD_REQUEST)
        }
        Err(e) => page.failure(e),
    }
}

#[derive(Deserialize)]
pub struct Done {
    done: Option<String>,
}

#[derive(Serialize)]
struct ServiceView {
    id: String,
    title: String,
    url: String,
    image_url: String,
    visible: bool,
    first: bool,
    last: bool,
}

#[handler]
pub async fn services_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Query(q): Query<Done>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let d = match settings::draft(&page.service()).await {
        Ok(d) => d,
        Err(e) => return page.failure(e),
    };
    let n = d.definition.services.len();
    let services: Vec<ServiceView> = d
        .definition
        .services
        .iter()
        .enumerate()
        .map(|(i, s)| ServiceView {
            id: s.id.clone(),
            title: s.title.clone(),
            url: s.url.clone(),
            image_url: if s.image.starts_with("https://") {
                s.image.clone()
            } else {
                format!("/static/{}", s.image)
            },
            visible: s.visible,
            first: i == 0,
            last: i + 1 == n,
        })
        .collect();
    let mut ctx = tera::Context::new();
    ctx.insert("services", &services);
    ctx.insert("draft_saved", &d.saved);
    ctx.insert("done", &(q.done.as_deref() == Some("saved")));
    page.render("settings", "services.html", ctx, StatusCode::OK)
}

fn service_form(
    page: &Page<'_>,
    id: Option<&str>,
    values: &HashMap<String, String>,
    image_url: &str,
    problems: Option<&[FieldProblem]>,
) -> Response {
    let mut ctx = tera::Context::new();
    ctx.insert("id", &id);
    ctx.insert(
        "title_value",
        values.get("title").map_or("", String::as_str),
    );
    ctx.insert(
        "url_value",
        values.get("url").map_or("https://", String::as_str),
    );
    ctx.insert(
        "visible",
        &values.get("visible").is_some_and(|v| v == "true"),
    );
    ctx.insert("image_url", image_url);
    let status = match problems {
        Some(p) => {
            ctx.insert("errors", &field_errors(page.state, p));
            StatusCode::BAD_REQUEST
        }
        None => StatusCode::OK,
    };
    page.render("settings", "service_form.html", ctx, status)
}

#[handler]
pub async fn new_service_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let mut values = HashMap::new();
    values.insert("visible".to_owned(), "true".to_owned());
    service_form(&page, None, &values, "", None)
}

#[handler]
pub async fn edit_service_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let d = match settings::draft(&page.service()).await {
        Ok(d) => d,
        Err(e) => return page.failure(e),
    };
    let Some(s) = d.definition.services.iter().find(|s| s.id == id) else {
        return page.failure(ServiceError::NotFound);
    };
    let mut values = HashMap::new();
    values.insert("title".to_owned(), s.title.clone());
    values.insert("url".to_owned(), s.url.clone());
    values.insert("visible".to_owned(), s.visible.to_string());
    service_form(
        &page,
        Some(&id),
        &values,
        &format!("/static/{}", s.image),
        None,
    )
}

async fn save_service_form(
    page: &Page<'_>,
    full: &crate::admin::FullAdmin,
    id: Option<&str>,
    multipart: Multipart,
) -> Response {
    let ctx_s = page.service();
    let (fields, file) = read_form(multipart).await;
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let mut edit = ServiceEdit {
        title: get("title"),
        url: get("url"),
        visible: get("visible") == "true",
        image: None,
    };
    let result = async {
        if let Some((name, bytes)) = &file {
            edit.image = Some(service::upload(&ctx_s, full, "image", name, bytes).await?);
        }
        service::save_service(&ctx_s, full, id, &edit).await
    }
    .await;
    match result {
        Ok(_) => Redirect::see_other("/admin/services?done=saved").into_response(),
        Err(ServiceError::Invalid(problems)) => {
            let mut values = fields.clone();
            values.insert("visible".into(), edit.visible.to_string());
            service_form(page, id, &values, "", Some(&problems))
        }
        Err(e) => page.failure(e),
    }
}

#[handler]
pub async fn create_service(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    ConsoleFullAdmin(admin, full): ConsoleFullAdmin,
    multipart: Multipart,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    save_service_form(&page, &full, None, multipart).await
}

#[handler]
pub async fn update_service(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    ConsoleFullAdmin(admin, full): ConsoleFullAdmin,
    Path(id): Path<String>,
    multipart: Multipart,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    save_service_form(&page, &full, Some(&id), multipart).await
}

#[derive(Deserialize)]
pub struct Arrange {
    action: String,
}

/// 「上へ」「下へ」, and 「削除する」 after its confirmation page.
#[handler]
pub async fn arrange(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    ConsoleFullAdmin(admin, full): ConsoleFullAdmin,
    Path(id): Path<String>,
    Form(form): Form<Arrange>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    page.after(
        service::arrange_service(&page.service(), &full, &id, &form.action).await,
        "/admin/services?done=saved",
    )
}

#[handler]
pub async fn delete_page(
    state: Data<&Arc<AppState>>,
    tenant: CurrentTenant,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
) -> Response {
    let page = Page::new(&state, &tenant, &admin);
    let d = match settings::draft(&page.service()).await {
        Ok(d) => d,
        Err(e) => return page.failure(e),
    };
    let Some(s) = d.definition.services.iter().find(|s| s.id == id) else {
        return page.failure(ServiceError::NotFound);
    };
    let mut ctx = tera::Context::new();
    ctx.insert("id", &s.id);
    ctx.insert("title_value", &s.title);
    page.render("settings", "service_delete.html", ctx, StatusCode::OK)
}
