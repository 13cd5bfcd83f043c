//! Resolves the tenant from the `Host` header before any handler runs.

use std::sync::Arc;

use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, FromRequest, IntoResponse, Request, RequestBody, Response};

use super::pages::{error_page, ErrorKind};
use super::AppState;
use crate::tenant::Tenant;

/// The tenant of the request's host; present for every handler behind the member listener.
#[derive(Clone)]
pub struct CurrentTenant(pub Arc<Tenant>);

impl<'a> FromRequest<'a> for CurrentTenant {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        req.extensions()
            .get::<CurrentTenant>()
            .cloned()
            .ok_or_else(|| poem::error::NotFoundError.into())
    }
}

const CSP: &str = "default-src 'self'; img-src 'self' https: data:; object-src 'none'; \
                   base-uri 'none'; frame-ancestors 'none'; form-action 'self'";
/// The API's interactive documentation is one page of the API library with inline script
/// and style; it holds no data of the tenant and sends nothing but what its reader types.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
                        style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                        object-src 'none'; base-uri 'none'; frame-ancestors 'none'";
/// Where the interactive API documentation is served.
const DOCS_PATH: &str = "/admin/api/docs";

pub async fn resolve_tenant<E: Endpoint>(next: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let state = req
        .data::<Arc<AppState>>()
        .cloned()
        .expect("AppState is attached to the member app");
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();

    let path = req.uri().path().to_owned();
    let console = path == "/admin" || path.starts_with("/admin/");
    let resolved = state.tenants.resolve(&host).await;
    let served = resolved
        .as_ref()
        .ok()
        .and_then(Option::as_ref)
        .map(|t| t.slug.clone());
    let mut response = match resolved {
        Err(e) => {
            tracing::error!(error = %e, "resolving tenant failed");
            error_page(&state, None, ErrorKind::Internal)
        }
        Ok(None) => error_page(&state, None, ErrorKind::UnknownHost),
        Ok(Some(tenant)) if !tenant.enabled => {
            error_page(&state, Some(&tenant), ErrorKind::Unavailable)
        }
        Ok(Some(tenant)) => {
            tracing::Span::current().record("tenant", tenant.slug.as_str());
            req.extensions_mut()
                .insert(CurrentTenant(Arc::clone(&tenant)));
            match next.call(req).await {
                Ok(resp) => resp.into_response(),
                // Pages for signed-in members or admins only: sign in first.
                Err(e) if e.status() == StatusCode::UNAUTHORIZED => {
                    let to = if console { "/admin/login" } else { "/login" };
                    poem::web::Redirect::see_other(to).into_response()
                }
                Err(e) if e.status() == StatusCode::SERVICE_UNAVAILABLE => {
                    error_page(&state, Some(&tenant), ErrorKind::Busy)
                }
                Err(e) if e.status() == StatusCode::NOT_FOUND => {
                    error_page(&state, Some(&tenant), ErrorKind::NotFound)
                }
                Err(e) if e.status().is_server_error() => {
                    tracing::error!(error = %e, "request failed");
                    error_page(&state, Some(&tenant), ErrorKind::Internal)
                }
                Err(e) => e.into_response(),
            }
        }
    };
    if let Some(slug) = served {
        response
            .extensions_mut()
            .insert(super::edge::ServedTenant(slug));
    }
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    // Only the console's previews may be framed, and only by the console itself.
    if !headers.contains_key(header::X_FRAME_OPTIONS) {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    // A response that set a stricter policy of its own (an SVG image) keeps it.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        let csp = if path.starts_with(DOCS_PATH) {
            DOCS_CSP
        } else {
            CSP
        };
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(csp),
        );
    }
    Ok(response)
}
