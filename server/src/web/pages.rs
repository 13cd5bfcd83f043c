//! Rendering pages with the tenant's theme.

use std::sync::Arc;

use bytes::Bytes;
use poem::http::StatusCode;
use poem::web::Html;
use poem::{IntoResponse, Response};
use serde::Serialize;

use super::{AppState, RequestMeta};
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

/// The signed-in member as the page header shows them.
#[derive(Serialize)]
pub struct MemberView {
    pub name: String,
    pub user_id: String,
}

/// Renders a page of the tenant's theme, with the form token every form must carry.
pub fn render(
    state: &AppState,
    tenant: &Tenant,
    meta: &RequestMeta,
    template: &str,
    context: tera::Context,
    status: StatusCode,
) -> Response {
    // The token is made only for a page that has a form: the page is rendered with the
    // marker in its place, which a page without a form does not contain.
    let marker = state.pages.marker.as_str();
    let html = match render_marked(state, tenant, template, context) {
        Ok(html) => html,
        Err(e) => return rendering_failed(&e, template),
    };
    let html = if html.contains(marker) {
        html.replace(marker, &tera::escape_html(meta.csrf_token()))
    } else {
        html
    };
    Html(html).with_status(status).into_response()
}

/// Renders a member page of `tenant` for the console's preview: its colours come from
/// `theme_css_url`, and its forms carry no token (a preview posts nothing).
pub fn render_preview(
    state: &AppState,
    tenant: &Tenant,
    template: &str,
    mut context: tera::Context,
    theme_css_url: &str,
) -> Response {
    context.insert("csrf_token", "");
    let mut view = TenantView::new(tenant);
    view.theme_css_url = theme_css_url.to_owned();
    context.insert("tenant", &view);
    render_page(state, None, &tenant.slug, template, context, StatusCode::OK)
}

/// Pages as rendered for a tenant and a context, the HTML split where the form token goes:
/// pages that show nothing of the request but the token (the logged-out top page, the
/// login form) and a member's own top page. Keyed by the template, everything of the
/// tenant a page can show and the whole context, so any change is a new key, never a
/// stale page.
pub struct StaticPages {
    /// Rendered in place of the token, then split on; random, so no text can contain it.
    marker: String,
    pages: moka::sync::Cache<String, Arc<Vec<Bytes>>>,
}

/// Memory kept for rendered pages across all tenants.
const STATIC_PAGE_BYTES: u64 = 32 * 1024 * 1024;
/// A page not asked for this long is dropped (a member's page once they have gone).
const STATIC_PAGE_IDLE: std::time::Duration = std::time::Duration::from_secs(600);

impl Default for StaticPages {
    fn default() -> Self {
        Self {
            marker: format!("token{}", crate::random_token(16)),
            pages: moka::sync::Cache::builder()
                .weigher(|key: &String, parts: &Arc<Vec<Bytes>>| {
                    let bytes = key.len() + parts.iter().map(Bytes::len).sum::<usize>();
                    bytes.try_into().unwrap_or(u32::MAX)
                })
                .max_capacity(STATIC_PAGE_BYTES)
                .time_to_idle(STATIC_PAGE_IDLE)
                .build(),
        }
    }
}

/// What pages show of `tenant`, as JSON: part of the key of its rendered pages. Made once
/// for each loaded tenant (a changed tenant is loaded anew).
fn tenant_key(tenant: &Tenant) -> &str {
    tenant.page_key.get_or_init(|| {
        serde_json::to_string(&TenantView::new(tenant)).expect("a tenant view serialises")
    })
}

/// Renders a page whose context is the tenant and the form token only, from memory after
/// the first time: the same HTML [`render`] would give.
pub fn render_static(
    state: &AppState,
    tenant: &Tenant,
    meta: &RequestMeta,
    template: &str,
) -> Response {
    render_cached(state, tenant, meta, template, tera::Context::new())
}

/// Renders a page from memory when the same template was rendered for the same tenant
/// and the same context before: the same HTML [`render`] would give, status 200. For
/// pages asked for often whose context is small (it is copied into the key).
pub fn render_cached(
    state: &AppState,
    tenant: &Tenant,
    meta: &RequestMeta,
    template: &str,
    context: tera::Context,
) -> Response {
    let cache = &state.pages;
    let context = context.into_json();
    // Neither JSON text holds a raw line break, so the key parts cannot run together.
    let key = format!("{template}\n{}\n{context}", tenant_key(tenant));
    let parts = match cache.pages.get(&key) {
        Some(parts) => parts,
        None => {
            let context = match tera::Context::from_value(context) {
                Ok(context) => context,
                Err(e) => return rendering_failed(&e.into(), template),
            };
            let html = match render_marked(state, tenant, template, context) {
                Ok(html) => html,
                Err(e) => return rendering_failed(&e, template),
            };
            let parts: Arc<Vec<Bytes>> = Arc::new(
                html.split(cache.marker.as_str())
                    .map(|part| Bytes::copy_from_slice(part.as_bytes()))
                    .collect(),
            );
            cache.pages.insert(key, Arc::clone(&parts));
            parts
        }
    };
    let body = match parts.as_slice() {
        [whole] => whole.clone(),
        [first, rest @ ..] => {
            let token = tera::escape_html(meta.csrf_token());
            let mut out = Vec::with_capacity(
                parts.iter().map(Bytes::len).sum::<usize>() + rest.len() * token.len(),
            );
            out.extend_from_slice(first);
            for part in rest {
                out.extend_from_slice(token.as_bytes());
                out.extend_from_slice(part);
            }
            out.into()
        }
        [] => Bytes::new(),
    };
    Response::builder()
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// Renders `template` of the tenant's theme with the tenant and the marker of
/// [`StaticPages`] where the form token goes.
fn render_marked(
    state: &AppState,
    tenant: &Tenant,
    template: &str,
    mut context: tera::Context,
) -> anyhow::Result<String> {
    context.insert("csrf_token", &state.pages.marker);
    context.insert("tenant", &TenantView::new(tenant));
    state
        .themes
        .get(&tenant.slug)
        .and_then(|theme| theme.render(template, &mut context))
}

fn rendering_failed(e: &anyhow::Error, template: &str) -> Response {
    tracing::error!(error = %format!("{e:#}"), template, "rendering failed");
    "Internal Server Error"
        .with_status(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response()
}

/// Renders `template` in the tenant's theme (or the default theme when there is no
/// tenant), with `tenant` in the context.
fn render_page(
    state: &AppState,
    tenant: Option<&Tenant>,
    theme: &str,
    template: &str,
    mut context: tera::Context,
    status: StatusCode,
) -> Response {
    let slug = tenant.map_or(theme, |t| t.slug.as_str());
    if let Some(tenant) = tenant {
        context.insert("tenant", &TenantView::new(tenant));
    }
    let page = state
        .themes
        .get(slug)
        .and_then(|theme| theme.render(template, &mut context));
    match page {
        Ok(html) => Html(html).with_status(status).into_response(),
        Err(e) => rendering_failed(&e, template),
    }
}

#[derive(Debug, Clone, Copy)]
pub enum ErrorKind {
    /// The host belongs to no tenant. The page names no tenant.
    UnknownHost,
    NotFound,
    /// The tenant is disabled.
    Unavailable,
    /// A form without its CSRF token.
    Forbidden,
    TooLarge,
    /// Every password hasher is busy: try again shortly.
    Busy,
    Internal,
}

pub fn error_page(state: &AppState, tenant: Option<&Tenant>, kind: ErrorKind) -> Response {
    let (status, key) = match kind {
        ErrorKind::UnknownHost | ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
        ErrorKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        ErrorKind::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    // A disabled tenant's page does not carry its branding either: only its absence.
    let tenant = match kind {
        ErrorKind::NotFound
        | ErrorKind::Internal
        | ErrorKind::Forbidden
        | ErrorKind::TooLarge
        | ErrorKind::Busy => tenant,
        ErrorKind::UnknownHost | ErrorKind::Unavailable => None,
    };
    let mut context = tera::Context::new();
    context.insert("error", key);
    // Quoted by a member who calls the society, it finds this request in the logs.
    context.insert("request_id", &super::edge::current_request_id());
    render_page(state, tenant, DEFAULT_THEME, "error.html", context, status)
}

/// A time in Japan, for notices: `2026/11/21 09:30`.
pub fn date_time(unix: i64) -> String {
    let format = time::macros::format_description!("[year]/[month]/[day] [hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| t.to_offset(time::macros::offset!(+9)))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// A date in Japan: `2026/11/21`.
pub fn date(unix: i64) -> String {
    let format = time::macros::format_description!("[year]/[month]/[day]");
    // Shown in Japan time.
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| t.to_offset(time::macros::offset!(+9)))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}
