//! Rendering pages with the tenant's theme.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Html};
use poem::{handler, IntoResponse, Response};
use serde::Serialize;

use super::{AppState, CurrentTenant};
use crate::tenant::Tenant;
use crate::theme::DEFAULT_THEME;

/// What every page knows about the tenant it is shown for.
#[derive(Serialize)]
struct TenantView<'a> {
    slug: &'a str,
    name: &'a str,
    contact: &'a str,
    welcome: &'a str,
    logo_url: String,
    theme_css_url: String,
}

impl<'a> TenantView<'a> {
    fn new(tenant: &'a Tenant) -> Self {
        Self {
            slug: &tenant.slug,
            name: &tenant.display_name,
            contact: &tenant.settings.contact,
            welcome: &tenant.settings.welcome,
            logo_url: format!("/static/{}", tenant.settings.theme.logo),
            theme_css_url: format!("/theme.css?v={}", tenant.revision),
        }
    }
}

/// Renders `template` in the tenant's theme (or the default theme when there is no
/// tenant), with `tenant` in the context.
fn render(
    state: &AppState,
    tenant: Option<&Tenant>,
    template: &str,
    mut context: tera::Context,
    status: StatusCode,
) -> Response {
    let slug = tenant.map_or(DEFAULT_THEME, |t| t.slug.as_str());
    if let Some(tenant) = tenant {
        context.insert("tenant", &TenantView::new(tenant));
    }
    let page = state
        .themes
        .get(slug)
        .and_then(|theme| theme.render(template, &mut context));
    match page {
        Ok(html) => Html(html).with_status(status).into_response(),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), template, "rendering failed");
            "Internal Server Error"
                .with_status(StatusCode::INTERNAL_SERVER_ERROR)
                .into_response()
        }
    }
}

#[handler]
pub async fn top(state: Data<&Arc<AppState>>, tenant: CurrentTenant) -> Response {
    render(
        &state,
        Some(&tenant.0),
        "top.html",
        tera::Context::new(),
        StatusCode::OK,
    )
}

#[derive(Debug, Clone, Copy)]
pub enum ErrorKind {
    /// The host belongs to no tenant. The page names no tenant.
    UnknownHost,
    NotFound,
    /// The tenant is disabled.
    Unavailable,
    Internal,
}

pub fn error_page(state: &AppState, tenant: Option<&Tenant>, kind: ErrorKind) -> Response {
    let (status, key) = match kind {
        ErrorKind::UnknownHost | ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    // A disabled tenant's page does not carry its branding either: only its absence.
    let tenant = match kind {
        ErrorKind::NotFound | ErrorKind::Internal => tenant,
        ErrorKind::UnknownHost | ErrorKind::Unavailable => None,
    };
    let mut context = tera::Context::new();
    context.insert("error", key);
    render(state, tenant, "error.html", context, status)
}
